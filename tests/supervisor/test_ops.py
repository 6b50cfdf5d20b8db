"""Operations against real servers: hooks from a Python config file, --user/--group,
--umask, --chdir, --env-file, --timeout-shutdown-delay and ruvicorn.run()."""

from __future__ import annotations

import os
import pwd
import signal
import stat
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rawhttp import wait_for
from realserver import free_port
from sup_helpers import APPS, NotifySocket, Server

pytestmark = pytest.mark.timeout(90)

HOOKS = """
import os

_OUT = os.environ["HOOKS_OUT"]


def _write(*parts):
    fd = os.open(_OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (" ".join(str(p) for p in parts) + "\\n").encode())
    finally:
        os.close(fd)


def on_starting(server):
    _write("on_starting", os.getpid(), server.pid, server.num_workers)


def when_ready(server):
    _write("when_ready", os.getpid(), len(server.workers))


def pre_fork(server, worker):
    _write("pre_fork", os.getpid(), worker.pid, worker.age)


def post_fork(server, worker):
    _write("post_fork", os.getpid(), worker.pid, worker.age, server.pid)


def post_worker_init(worker):
    mask = os.umask(0)
    os.umask(mask)
    _write("post_worker_init", os.getpid(), worker.pid, oct(mask), os.getcwd(), os.getuid())


def worker_exit(server, worker):
    _write("worker_exit", os.getpid(), worker.pid, worker.exit_code)


def child_exit(server, worker):
    _write("child_exit", os.getpid(), worker.pid, worker.exit_code)


def on_reload(server):
    _write("on_reload", os.getpid(), len(server.workers))


def on_exit(server):
    _write("on_exit", os.getpid())
"""


def read_lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines()]


def named(lines: list[list[str]], hook: str) -> list[list[str]]:
    return [line for line in lines if line[0] == hook]


@pytest.fixture
def hooks_file(tmp_path: Path) -> tuple[Path, Path]:
    conf = tmp_path / "ruvicorn_conf.py"
    conf.write_text(HOOKS)
    return conf, tmp_path / "hooks.txt"


@pytest.mark.parametrize("fork", [[], ["--preload"]], ids=["master", "zygote"])
def test_every_hook_runs_where_and_when_it_should(
    start: Callable[..., Server], hooks_file: tuple[Path, Path], fork: list[str]
) -> None:
    conf, out = hooks_file
    server = start(
        "basic:app", "-c", str(conf), "--workers", "2", *fork, env={"HOOKS_OUT": str(out)}
    )
    server.wait_ready()
    master = server.pid
    first = server.workers()
    wait_for(lambda: len(named(read_lines(out), "when_ready")) == 1, 10, "when_ready")
    lines = read_lines(out)
    assert lines[0] == ["on_starting", str(master), str(master), "2"]
    assert [line[1:] for line in named(lines, "pre_fork")] == [
        [str(master), "None", "1"],
        [str(master), "None", "2"],
    ]
    post_fork = named(lines, "post_fork")
    assert {int(line[1]) for line in post_fork} == first
    assert all(line[1] == line[2] and line[4] == str(master) for line in post_fork)
    assert sorted(line[3] for line in post_fork) == ["1", "2"]
    inits = named(lines, "post_worker_init")
    assert {int(line[1]) for line in inits} == first
    assert named(lines, "when_ready") == [["when_ready", str(master), "2"]]
    # when_ready comes after both workers finished post_worker_init.
    assert lines.index(named(lines, "when_ready")[0]) > max(lines.index(i) for i in inits)

    server.signal(signal.SIGHUP)
    server.wait_log("Reload complete")
    wait_for(lambda: len(named(read_lines(out), "child_exit")) == 2, 10, "child_exit x2")
    lines = read_lines(out)
    assert named(lines, "on_reload") == [["on_reload", str(master), "2"]]
    assert sorted(line[3] for line in named(lines, "pre_fork")) == ["1", "2", "3", "4"]
    exited = named(lines, "child_exit")
    assert {int(line[2]) for line in exited} == first
    assert all(line[1] == str(master) and line[3] == "0" for line in exited)
    retired_exits = named(lines, "worker_exit")
    assert {int(line[1]) for line in retired_exits} == first
    assert all(line[1] == line[2] and line[3] == "0" for line in retired_exits)

    second = server.workers()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
    lines = read_lines(out)
    assert {int(line[2]) for line in named(lines, "child_exit")} == first | second
    assert {int(line[1]) for line in named(lines, "worker_exit")} == first | second
    assert lines[-1] == ["on_exit", str(master)]


def test_a_hook_that_raises_is_logged_and_the_server_carries_on(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    conf = tmp_path / "conf.py"
    conf.write_text(
        "def when_ready(server):\n    raise RuntimeError('when_ready broke')\n"
        "def pre_fork(server, worker):\n    raise ValueError('pre_fork broke')\n"
        "def post_worker_init(worker):\n    raise KeyError('post_worker_init broke')\n"
        "def on_exit(server):\n    raise OSError('on_exit broke')\n"
    )
    server = start("basic:app", "-c", str(conf), "--workers", "2")
    server.wait_ready()
    server.wait_log("The when_ready hook raised")
    status, body = server.get("/")
    assert status == 200 and int(body) in server.workers()
    log = server.log()
    for hook in ("when_ready", "pre_fork", "post_worker_init"):
        assert f"The {hook} hook raised; carrying on" in log
        assert f"{hook} broke" in log
    assert "Traceback (most recent call last)" in log
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
    assert "on_exit broke" in server.log()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user may write (pytest's own tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="ruvicorn-ops-"))
    path.chmod(0o777)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_group_umask_chdir(
    start: Callable[..., Server], hooks_file: tuple[Path, Path], shared_dir: Path
) -> None:
    conf, _ = hooks_file
    out = shared_dir / "hooks.txt"
    out.touch()
    out.chmod(0o666)  # the master writes first, under --umask 027; the worker must append
    nobody = pwd.getpwnam("nobody")
    server = start(
        "basic:app",
        "-c",
        str(conf),
        "--loop",
        "asyncio",
        "--user",
        "nobody",
        "--umask",
        "027",
        "--chdir",
        str(shared_dir),
        "--pid",
        "server.pid",
        env={"HOOKS_OUT": str(out), "RUVICORN_TEST_EVENTS": str(shared_dir / "events.txt")},
    )
    server.wait_ready()
    status, body = server.get("/")
    assert status == 200
    worker = int(body)
    assert os.stat(f"/proc/{worker}").st_uid == nobody.pw_uid
    assert os.stat(f"/proc/{server.pid}").st_uid == 0  # the master keeps its identity
    [init] = named(read_lines(out), "post_worker_init")
    assert init[3:] == [oct(0o027), str(shared_dir), str(nobody.pw_uid)]
    # The master works in --chdir with --umask too: its pid file is relative and masked.
    pid_file = shared_dir / "server.pid"
    assert pid_file.read_text().strip() == str(server.pid)
    assert stat.S_IMODE(pid_file.stat().st_mode) == 0o640
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0


def test_user_switch_without_root_is_one_line(start: Callable[..., Server]) -> None:
    if os.geteuid() == 0:
        server = start("basic:app", "--user", "root")  # a switch to itself is no switch
        server.wait_ready()
        server.signal(signal.SIGTERM)
        assert server.wait_exit(30) == 0
        return
    server = start("basic:app", "--user", "0")
    assert server.wait_exit(30) == 2
    assert "needs the master to run as root" in server.log()


def test_env_file_reaches_the_app(start: Callable[..., Server], tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("export FROM_FILE='hello world'\nALREADY=file\n")
    server = start("basic:app", "--env-file", str(env_file), env={"ALREADY": "env"})
    server.wait_ready()
    assert server.get("/env?name=FROM_FILE") == (200, "hello world")
    assert server.get("/env?name=ALREADY") == (200, "env")
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0


def test_bad_env_file_is_one_line(start: Callable[..., Server], tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("GOOD=1\nnot a line\n")
    server = start("basic:app", "--env-file", str(env_file))
    assert server.wait_exit(30) == 2
    assert f"{env_file}:2: expected KEY=VALUE" in server.log()
    assert "Traceback" not in server.log()


def test_shutdown_delay_keeps_serving_then_stops(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        server = start(
            "basic:app",
            "--workers",
            "2",
            "--timeout-shutdown-delay",
            "2",
            env={"NOTIFY_SOCKET": notify.path},
        )
        notify.wait_for("READY", "1")
        server.signal(signal.SIGTERM)
        stopping = notify.wait_for("STOPPING", "1")
        assert stopping["STATUS"].startswith("not ready: stopping in 2 s")
        served = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and served < 5000:
            began = "Shutting down" in server.log()
            try:
                status, _ = server.get("/", timeout=5)
            except OSError:
                # Refused only once the graceful stop has closed the listeners.
                assert began or "Shutting down" in server.log(), server.log()
                break
            assert status == 200
            if not began:
                served += 1
        assert served > 0
        assert server.wait_exit(30) == 0
        log = server.log()
        assert "still serving until then (--timeout-shutdown-delay)" in log
        assert "Shutting down (--timeout-shutdown-delay is over)" in log
    finally:
        notify.close()


def test_second_sigterm_ends_the_delay(start: Callable[..., Server]) -> None:
    server = start("basic:app", "--timeout-shutdown-delay", "600")
    server.wait_ready()
    server.signal(signal.SIGTERM)
    server.wait_log("still serving until then")
    assert server.get("/")[0] == 200
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
    assert "Shutting down (second SIGTERM)" in server.log()


RUN_SCRIPT = """
import os, sys
import ruvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": str(os.getpid()).encode()}})

sys.exit(ruvicorn.run(app, port={port}, workers=2, access_log=False, graceful_timeout=5))
"""


def test_run_serves_an_app_object_with_workers(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    port = free_port()
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent(RUN_SCRIPT.format(port=port)))
    server = start("", argv=[sys.executable, str(script)], cwd=APPS, port=port)
    server.wait_ready()
    status, body = server.get("/")
    assert status == 200 and int(body) != server.pid
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
