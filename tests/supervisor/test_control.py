"""--control-socket and ``ruvicorn ctl``: each command against a real master."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from rawhttp import wait_for
from realserver import clean_env
from sup_helpers import Server

pytestmark = pytest.mark.timeout(120)


def ctl(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruvicorn", "ctl", str(path), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=clean_env(),
    )


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    return directory / "ctl.sock"


def _serve(start: Callable[..., Server], path: Path, *args: str) -> Server:
    server = start("basic:app", "--workers", "2", "--control-socket", str(path), *args)
    server.wait_ready()
    return server


def test_status_reports_every_worker(start: Callable[..., Server], sock_path: Path) -> None:
    server = _serve(start, sock_path)
    mode = os.stat(sock_path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    result = ctl(sock_path, "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["master"] == server.pid and status["state"] == "serving"
    assert status["target"] == 2 and status["last_reload"] is None
    assert {w["pid"] for w in status["workers"]} == server.workers()
    assert all(w["state"] == "ready" and w["rss"] > 0 and w["age"] >= 0 for w in status["workers"])
    text = ctl(sock_path, "status")
    assert text.returncode == 0
    assert f"master {server.pid}: serving, 2 workers wanted" in text.stdout
    assert all(str(pid) in text.stdout for pid in server.workers())


@pytest.mark.parametrize("fork", [[], ["--preload"]], ids=["master", "zygote"])
def test_status_counts_requests_with_metrics(
    start: Callable[..., Server], sock_path: Path, fork: list[str]
) -> None:
    """The counters' shared page reaches workers forked by the zygote too."""
    server = _serve(start, sock_path, "--metrics-bind", "127.0.0.1:0", *fork)
    for _ in range(20):
        assert server.get("/")[0] == 200

    def served() -> int:
        status = json.loads(ctl(sock_path, "status", "--json").stdout)
        return sum(w["requests"] for w in status["workers"])

    wait_for(lambda: served() == 20, 20, "the requests counted")


def test_reload_scale_reopen_logs_and_stop(start: Callable[..., Server], sock_path: Path) -> None:
    server = _serve(start, sock_path)
    first = server.workers()
    result = ctl(sock_path, "reload")
    assert result.returncode == 0 and "SIGHUP" in result.stdout
    server.wait_log("Reload complete", timeout=60)
    assert "Control socket: reload" in server.log() and "Received SIGHUP" in server.log()
    wait_for(lambda: len(server.workers()) == 2, 30, "retired workers gone")
    assert server.workers().isdisjoint(first)
    status = json.loads(ctl(sock_path, "status", "--json").stdout)
    assert status["last_reload"]["reason"] == "SIGHUP"

    assert ctl(sock_path, "scale", "3").returncode == 0
    server.wait_log("Worker count set to 3")
    wait_for(lambda: len(server.workers()) == 3, 30, "a third worker")

    assert ctl(sock_path, "reopen-logs").returncode == 0
    server.wait_log("Received SIGUSR1")

    assert ctl(sock_path, "stop").returncode == 0
    assert server.wait_exit(30) == 0
    assert "Shutting down (SIGTERM)" in server.log()
    assert not sock_path.exists()


def test_stop_fast(start: Callable[..., Server], sock_path: Path) -> None:
    server = _serve(start, sock_path)
    assert ctl(sock_path, "stop", "--fast").returncode == 0
    server.wait_exit(30)
    assert "Shutting down fast (SIGQUIT)" in server.log()


def test_bad_commands_are_one_line_errors(start: Callable[..., Server], sock_path: Path) -> None:
    _serve(start, sock_path)
    result = ctl(sock_path, "scale", "0")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: scale: the worker count must be 1 to 1024"
    ]
    missing = ctl(sock_path.parent / "nothing.sock", "status")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"Error: {sock_path.parent / 'nothing.sock'}: no answer from a ruvicorn master "
        "(No such file or directory)"
    ]


def test_a_second_master_on_the_same_socket_exits(
    start: Callable[..., Server], sock_path: Path
) -> None:
    first = _serve(start, sock_path)
    second = start("basic:app", "--control-socket", str(sock_path))
    assert second.wait_exit(30) == 2
    assert "another ruvicorn master is running on this control socket" in second.log()
    assert len(second.log().strip().splitlines()) == 1
    assert ctl(sock_path, "status").returncode == 0  # The first one still answers.
    assert first.running


def test_a_stale_socket_is_replaced(start: Callable[..., Server], sock_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()  # The file stays, nobody listens.
    _serve(start, sock_path)
    assert ctl(sock_path, "status").returncode == 0


@pytest.mark.parametrize("problem", ["world-writable directory", "regular file"])
def test_an_unsafe_path_is_refused(
    start: Callable[..., Server], sock_path: Path, problem: str
) -> None:
    if problem == "regular file":
        sock_path.write_text("")
        expected = "the path exists and is not a socket"
    else:
        sock_path.parent.chmod(0o777)
        expected = "is writable by every user"
    server = start("basic:app", "--control-socket", str(sock_path))
    assert server.wait_exit(30) == 2
    assert expected in server.log() and "Listening" not in server.log()


def test_a_slow_client_never_blocks_the_master(
    start: Callable[..., Server], sock_path: Path
) -> None:
    server = _serve(start, sock_path)
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(sock_path))
    silent.sendall(b'{"command": "sta')  # And never more.
    flood = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    flood.connect(str(sock_path))
    flood.settimeout(10)
    flood.sendall(b"x" * 5000)
    assert json.loads(flood.recv(4096))["message"] == "request too long"
    assert ctl(sock_path, "status").returncode == 0
    assert server.get("/")[0] == 200
    silent.settimeout(10)  # A master that never drops it fails the test here.
    assert silent.recv(100) == b""  # Dropped after its deadline.
    silent.close()
    flood.close()
