"""Stopping: graceful with in-flight requests, bounded when a worker hangs, fast on demand."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rawhttp import RawClient, request, wait_for
from sup_helpers import Load, Server
from tlscerts import TLSCerts, over_tls

pytestmark = pytest.mark.timeout(90)


def _request_in_background(server: Server, path: str) -> Callable[[], tuple[int, str]]:
    """Send ``path`` from a thread; the returned callable waits for its response (an error
    fails the test)."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["response"] = server.get(path, timeout=30)
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def response() -> tuple[int, str]:
        thread.join(timeout=10)
        assert "error" not in result, result.get("error")
        status, body = result["response"]  # type: ignore[misc]
        return int(status), str(body)

    return response


@over_tls
def test_sigterm_lets_an_in_flight_request_finish(
    start: Callable[..., Server], tls: TLSCerts | None
) -> None:
    server = start("basic:app", "--workers", "2", tls=tls)
    server.wait_ready()
    workers = server.workers()
    response = _request_in_background(server, "/sleep?s=2")
    wait_for(lambda: any(e == "request/sleep" for e, _ in server.events()), 20, "request")
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
    status, body = response()
    assert status == 200 and int(body) in workers
    shutdowns = {pid for event, pid in server.events() if event == "shutdown"}
    assert shutdowns == workers  # Lifespan shutdown ran in every worker.
    assert "Master" in server.log() and "exits with code 0" in server.log()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_sigterm_under_keep_alive_load_fails_no_accepted_request(
    start: Callable[..., Server], loop: str
) -> None:
    server = start("basic:app", "--workers", "2", "--loop", loop)
    server.wait_ready()
    clients = {"close": 8, "pool": 4, "eager": 4}
    # Every client keeps sending through the stop; once the listener is gone its next
    # connection is refused, which ends it. Anything else is a lost request.
    load = Load(server, clients, max_requests=200000, max_seconds=60, refusal_ends=True)
    try:
        load.wait_count(500)
        server.signal(signal.SIGTERM)
        assert server.wait_exit(60) == 0
        wait_for(lambda: load.refused == sum(clients.values()), 30, "every client refused")
    finally:
        load.stop()
    assert load.failures == []


def test_sigterm_during_a_reload_lets_the_retiring_worker_finish(
    start: Callable[..., Server],
) -> None:
    server = start("basic:app", "--workers", "1")
    server.wait_ready()
    (old,) = server.workers()
    response = _request_in_background(server, "/sleep?s=3")
    wait_for(lambda: ("request/sleep", old) in server.events(), 20, "the slow request")
    server.signal(signal.SIGHUP)
    server.wait_log(rf"Retiring worker {old}", timeout=30)
    # The retiring worker is already stopping gracefully: a second signal would make it
    # stop fast and cut the request.
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
    assert response() == (200, str(old))


def test_an_idle_keep_alive_connection_is_half_closed_not_reset(
    start: Callable[..., Server],
) -> None:
    server = start("basic:app", "--workers", "1")
    server.wait_ready()
    with RawClient("127.0.0.1", server.port, timeout=30) as conn:
        conn.send(request("GET", "/"))
        assert conn.read_response().keeps_alive
        server.signal(signal.SIGTERM)
        # Idle through the linger: the server sends its FIN...
        assert conn.sock.recv(1024) == b""
        # ...and keeps reading, so requests that crossed it are dropped quietly. A fully
        # closed socket would answer the first with a reset, failing the second send.
        conn.sock.sendall(request("GET", "/"))
        time.sleep(0.2)  # give a reset time to arrive; not an assertion on timing
        conn.sock.sendall(request("GET", "/"))
        assert conn.sock.recv(1024) == b""
    assert server.wait_exit(30) == 0


def test_worker_hung_past_graceful_timeout_is_killed(start: Callable[..., Server]) -> None:
    server = start("basic:app", "--workers", "1", "--timeout-graceful-shutdown", "1")
    server.wait_ready()
    _request_in_background(server, "/block?s=60")
    wait_for(lambda: any(e == "request/block" for e, _ in server.events()), 20, "request")
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
    assert "did not stop in time; sending SIGKILL" in server.log()
    assert "stopped (killed by SIGKILL)" in server.log()


def test_sigquit_and_second_sigterm_stop_fast(start: Callable[..., Server]) -> None:
    server = start("basic:app", "--workers", "2", "--timeout-graceful-shutdown", "60")
    server.wait_ready()
    _request_in_background(server, "/sleep?s=50")
    wait_for(lambda: any(e == "request/sleep" for e, _ in server.events()), 20, "request")
    server.signal(signal.SIGTERM)
    server.wait_log("Shutting down \\(SIGTERM\\)")
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
    assert "Shutting down fast (second SIGTERM)" in server.log()

    other = start("basic:app", "--workers", "2")
    other.wait_ready()
    other.signal(signal.SIGQUIT)
    assert other.wait_exit(30) == 0
    assert "Shutting down fast (SIGQUIT)" in other.log()


def test_sigusr1_reopens_log_files_in_master_and_workers(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    log_file = tmp_path / "ruvicorn.log"
    server = start("basic:app", "--workers", "2", "--log-file", str(log_file), "--access-log")
    wait_for(lambda: log_file.exists() and "Ready:" in log_file.read_text(), 30, "ready")
    workers = server.workers()
    rotated = tmp_path / "ruvicorn.log.1"
    log_file.rename(rotated)
    server.signal(signal.SIGUSR1)
    wait_for(lambda: log_file.exists() and "Received SIGUSR1" in log_file.read_text(), 30, "reopen")
    # Each worker reopens too: its access lines land in the new file. The master logs
    # that line before its workers have reopened, so a request answered until then still
    # goes to the rotated file: keep asking until every worker has written to the new one.
    pids = {f"[{pid}]" for pid in workers}

    def every_worker_writes_anew() -> bool:
        server.get("/")
        text = log_file.read_text()
        return all(p in text for p in pids)

    wait_for(every_worker_writes_anew, 30, "worker lines in the new file")
    assert "Received SIGUSR1" not in rotated.read_text()


def _booting(start: Callable[..., Server], *args: str) -> tuple[Server, int]:
    """A master whose one worker takes 2 s over its lifespan startup; returns once that
    worker imported the app (it is booting), with its pid."""
    server = start("basic:app", *args, env={"RUVICORN_TEST_STARTUP_DELAY": "2"})
    imported = wait_for(
        lambda: [pid for event, pid in server.events() if event == "import"], 30, "the import"
    )
    return server, imported[0]


def test_a_stop_during_boot_waits_for_startup_then_shuts_down(
    start: Callable[..., Server],
) -> None:
    # The signal reaches the worker before its loop handles signals; its default action
    # would kill it after the app's startup ran and before its shutdown could.
    server, pid = _booting(start)
    server.signal(signal.SIGTERM)
    assert server.wait_exit(60) == 0
    assert ("startup", pid) in server.events() and ("shutdown", pid) in server.events()
    assert "killed by" not in server.log() and "Traceback" not in server.log()


def test_sigusr1_and_sighup_during_boot_neither_kill_the_worker(
    start: Callable[..., Server],
) -> None:
    server, pid = _booting(start, "--workers", "1")
    server.signal(signal.SIGUSR1)  # Reopens the log files once the worker serves.
    server.wait_log("Received SIGUSR1")
    server.signal(signal.SIGHUP)  # Retires the booting worker: it starts, then drains.
    server.wait_log("Reload complete", timeout=60)
    server.wait_log(rf"Worker {pid} stopped \(exit code 0\)", timeout=60)
    assert ("startup", pid) in server.events() and ("shutdown", pid) in server.events()
    assert server.get("/")[0] == 200
    assert "killed by" not in server.log() and "Traceback" not in server.log()
