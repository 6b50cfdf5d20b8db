"""The single-process server as a person runs it: app loading errors, signals, options,
environment variables, listeners and logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rawhttp import RawClient, exchange, request, wait_for
from realserver import APPS, REPO, ServerProcess, clean_env, free_port

from ruvicorn import exitcodes

BOUND = 30.0
#: Every test here runs ``python -m ruvicorn``, some without the fixtures that mark them.
pytestmark = pytest.mark.blackbox


def failed_start(server_factory, app: str, *args: str) -> ServerProcess:
    srv: ServerProcess = server_factory(app, *args, start=False)
    srv.expect_exit = None
    srv.start(wait=False)
    srv.wait_exit(BOUND)
    return srv


def assert_one_line_error(srv: ServerProcess, *needles: str) -> None:
    text = srv.stderr()
    assert srv.returncode is not None
    assert srv.returncode >= 2, f"exit code {srv.returncode}:\n{text}"
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if all(n in line for n in needles)]
    assert lines, f"no line naming {needles}:\n{text}"


# -- app loading


def test_missing_module(server_factory) -> None:
    srv = failed_start(server_factory, "no_such_module_abc:app")
    assert_one_line_error(srv, "no_such_module_abc")


def test_missing_dependency_inside_module(server_factory) -> None:
    srv = failed_start(server_factory, "broken_import:app")
    assert_one_line_error(srv, "broken_import", "definitely_missing_dependency_xyz")


def test_module_raising_at_import(server_factory) -> None:
    srv = failed_start(server_factory, "raises_at_import:app")
    assert_one_line_error(srv, "raises_at_import", "configuration file missing")


def test_missing_attribute(server_factory) -> None:
    srv = failed_start(server_factory, "testapp:no_such_attribute")
    assert_one_line_error(srv, "no_such_attribute")


def test_not_module_attr(server_factory) -> None:
    srv = failed_start(server_factory, "testapp")
    assert_one_line_error(srv, "testapp")


def test_factory_raising(server_factory) -> None:
    srv = failed_start(server_factory, "factory_app:broken_factory", "--factory")
    assert_one_line_error(srv, "missing SECRET_KEY")


def test_not_callable(server_factory) -> None:
    srv = failed_start(server_factory, "factory_app:not_callable")
    assert_one_line_error(srv, "not callable")


def test_app_load_failure_exit_code(server_factory) -> None:

    srv = failed_start(server_factory, "no_such_module_abc:app")
    assert srv.returncode == exitcodes.APP_LOAD_FAILED


def test_factory(server_factory) -> None:
    srv = server_factory("factory_app:create_app", "--factory")
    assert srv.get("/").body == b"factory"


def test_asgi2_app(server_factory) -> None:
    srv = server_factory("asgi2_app:App")
    assert srv.get("/two").body == b"asgi2 /two"


def test_python_dash_m_and_console_script_agree() -> None:
    """`ruvicorn --help` works through both entry points."""
    out = subprocess.run(
        [sys.executable, "-m", "ruvicorn", "--help"],
        capture_output=True,
        timeout=BOUND,
        cwd=REPO,
        env=clean_env(),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    for flag in (
        b"--host",
        b"--port",
        b"--uds",
        b"--fd",
        b"--factory",
        b"--app-dir",
        b"--root-path",
        b"--backlog",
        b"--log-level",
        b"--access-log",
        b"--proxy-headers",
        b"--forwarded-allow-ips",
        b"--lifespan",
        b"--loop",
        b"--limit-request-line",
        b"--timeout-keep-alive",
        b"--timeout-request-header",
        b"--timeout-graceful-shutdown",
        b"--no-server-header",
        b"--no-date-header",
        b"--header",
    ):
        assert flag in out.stdout, flag


# -- signals and graceful shutdown


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_finishes_in_flight_request(server_factory, sig: int) -> None:
    srv: ServerProcess = server_factory("testapp:app")
    mark = srv.mark()
    with srv.client(timeout=BOUND) as c:
        c.send(request("GET", "/slow?seconds=2"))
        wait_for(lambda: any(r.get("event") == "slow-start" for r in srv.records_since(mark)))
        srv.send_signal(sig)
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == b"slow done"
    assert srv.wait_exit(BOUND) == 0
    events = [r["event"] for r in srv.records()]
    assert "shutdown" in events, f"lifespan shutdown never ran: {events}"
    assert events.index("slow-done") < events.index("shutdown"), events


def test_shutdown_closes_idle_keep_alive_connections(server_factory) -> None:
    srv: ServerProcess = server_factory(
        "testapp:app", "--timeout-keep-alive", "300", "--timeout-graceful-shutdown", "300"
    )
    with srv.client(timeout=BOUND) as c:
        c.send(request("GET", "/ok"))
        assert c.read_response().body == b"ok"
        srv.send_signal(signal.SIGTERM)
        assert c.expect_closed() == b""
    # far below the 300 s graceful timeout: idle connections did not hold the exit
    assert srv.wait_exit(BOUND) == 0


def test_graceful_shutdown_timeout_is_bounded(server_factory) -> None:
    srv: ServerProcess = server_factory("testapp:app", "--timeout-graceful-shutdown", "1")
    srv.expect_exit = None
    mark = srv.mark()
    with srv.client(timeout=BOUND) as c:
        c.send(request("GET", "/slow?seconds=600"))
        wait_for(lambda: any(r.get("event") == "slow-start" for r in srv.records_since(mark)))
        srv.send_signal(signal.SIGTERM)
        srv.wait_exit(BOUND)  # fails if the server waits for the 600 s request


def refuses(srv: ServerProcess) -> bool:
    """Whether a new connection to ``srv`` is refused (no process holds the listener)."""
    try:
        socket.create_connection((srv.host, srv.port), timeout=BOUND).close()
    except ConnectionRefusedError:
        return True
    return False


def test_stops_accepting_after_signal(server_factory) -> None:
    srv: ServerProcess = server_factory("testapp:app")
    mark = srv.mark()
    with srv.client(timeout=BOUND) as c:
        c.send(request("GET", "/slow?seconds=3"))
        wait_for(lambda: any(r.get("event") == "slow-start" for r in srv.records_since(mark)))
        srv.send_signal(signal.SIGTERM)
        # Until the worker closes its copy of the listener, a new connection is still
        # queued and answered; wait (bounded) for the refusal instead of sleeping for it.
        wait_for(lambda: refuses(srv), BOUND, "new connections to be refused")
        with pytest.raises(ConnectionRefusedError):
            RawClient(srv.host, srv.port, timeout=BOUND).send(request("GET", "/late"))
        assert c.read_response().body == b"slow done"
    assert srv.wait_exit(BOUND) == 0
    assert "/late" not in srv.paths_seen_since(mark)


# -- options


def test_access_log_on_and_off(server_factory) -> None:
    on: ServerProcess = server_factory("testapp:app")
    on.get("/access-check-on")
    wait_for(lambda: "/access-check-on" in on.stderr())
    line = next(x for x in on.stderr().splitlines() if "/access-check-on" in x)
    assert "200" in line
    assert "GET" in line
    off: ServerProcess = server_factory("testapp:app", "--no-access-log")
    off.get("/access-check-off")
    off.stop()
    assert "/access-check-off" not in off.stderr()


def test_log_level_warning_hides_info(server_factory) -> None:
    srv: ServerProcess = server_factory("testapp:app", "--log-level", "warning")
    srv.get("/quiet")
    srv.stop()
    assert "[INFO]" not in srv.stderr()


def test_unix_domain_socket(server_factory, tmp_path: Path) -> None:
    path = str(tmp_path / "ruvicorn.sock")
    srv: ServerProcess = server_factory(
        "testapp:app", "--uds", path, start=False, use_port_flag=False
    )
    srv.start(wait=False)
    wait_for(lambda: os.path.exists(path) or not srv.running, timeout=BOUND)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    deadline = time.monotonic() + BOUND
    while True:
        try:
            sock.connect(path)
            break
        except OSError:
            if time.monotonic() > deadline or not srv.running:
                raise
            time.sleep(0.05)
    try:
        sock.sendall(request("GET", "/scope", headers=[("Connection", "close")]))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200")
        scope = json.loads(data.partition(b"\r\n\r\n")[2])
        assert scope["server"] == [path, None]
        assert scope["client"] is None
    finally:
        sock.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_scope_server_on_specific_and_wildcard_listeners(server_factory, loop: str) -> None:
    """The listener on one address gives every connection its address; a wildcard one gives
    each connection its own local address."""
    specific, wildcard = free_port(), free_port()
    binds = ["--bind", f"127.0.0.1:{specific}", "--bind", f"0.0.0.0:{wildcard}"]
    srv: ServerProcess = server_factory(
        "testapp:app", *binds, loop=loop, port=specific, use_port_flag=False
    )
    for port in (specific, wildcard):
        for _ in range(2):
            scope = exchange("127.0.0.1", port, request("GET", "/scope")).json()
            assert scope["server"] == ["127.0.0.1", port]
            assert scope["client"][0] == "127.0.0.1"
    srv.stop()


def test_inherited_fd(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    err = open(tmp_path / "stderr", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "ruvicorn", "--fd", str(fd), "--app-dir", str(APPS), "testapp:app"],
        cwd=REPO,
        env=clean_env({"TESTAPP_RECORD": str(tmp_path / "rec")}),
        pass_fds=[fd],
        stdout=err,
        stderr=err,
        start_new_session=True,
    )
    listener.close()
    try:
        with RawClient("127.0.0.1", port, timeout=BOUND) as c:
            c.send(request("GET", "/ok"))
            assert c.read_response().body == b"ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(BOUND)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            err.close()
    assert code == 0, (tmp_path / "stderr").read_text()


# -- environment variables


def test_options_from_environment(server_factory, tmp_path: Path) -> None:
    port = free_port()
    srv: ServerProcess = server_factory(
        "",
        start=False,
        use_port_flag=False,
        port=port,
        env={
            "RUVICORN_APP": "testapp:app",
            "RUVICORN_HOST": "127.0.0.1",
            "RUVICORN_PORT": str(port),
            "RUVICORN_ROOT_PATH": "/mounted",
            "RUVICORN_SERVER_HEADER": "false",
            "RUVICORN_HEADER": "x-from-env:yes",
            "RUVICORN_LIMIT_REQUEST_FIELDS": "5",
        },
    )
    srv.start()
    resp = srv.get("/p")
    assert resp.status == 200
    assert resp.json()["root_path"] == "/mounted"
    assert resp.header("server") is None
    assert resp.header("x-from-env") == "yes"
    too_many = [(f"X-{i}", "v") for i in range(6)]
    assert srv.get("/p", headers=too_many).status == 431
