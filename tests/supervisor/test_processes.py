"""Process model: N workers, respawn, boot failures, backoff, scaling, master death."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from rawhttp import wait_for
from sup_helpers import Load, Server

pytestmark = pytest.mark.timeout(90)


def test_n_workers_distinct_pids_and_sigkill_is_replaced(start: Callable[..., Server]) -> None:
    server = start("basic:app", "--workers", "3")
    server.wait_ready()
    workers = server.workers()
    assert len(workers) == 3
    seen: set[int] = set()
    for _ in range(300):
        status, body = server.get("/")
        assert status == 200
        seen.add(int(body))
        if seen == workers:
            break
    assert seen <= workers and len(seen) >= 2
    victim = next(iter(workers))
    os.kill(victim, signal.SIGKILL)
    server.wait_log(rf"Worker {victim} died unexpectedly \(killed by SIGKILL\)")
    wait_for(lambda: len(server.workers()) == 3 and victim not in server.workers(), 30, "respawn")
    server.wait_log(r"Worker \d+ ready", count=4)
    for _ in range(20):
        status, body = server.get("/")
        assert status == 200 and int(body) != victim


@pytest.mark.parametrize("preload", [False, True])
def test_master_sigkill_takes_workers_and_watcher_down(
    start: Callable[..., Server], tmp_path: Path, preload: bool
) -> None:
    server = start(
        "basic:app",
        *(["--preload"] if preload else []),
        "--workers",
        "2",
        "--reload-dir",
        str(tmp_path),
        env={"RUVICORN_RELOAD": "1"},
    )
    server.wait_ready()
    server.wait_log("Watching")
    children = psutil.Process(server.pid).children()
    # Two workers and the file watcher (and the zygote).
    assert len(children) == (4 if preload else 3)
    server.signal(signal.SIGKILL)
    server.wait_exit(10)
    _, alive = psutil.wait_procs(children, timeout=15)
    assert alive == []


def test_master_imports_no_app_code_unless_preload(start: Callable[..., Server]) -> None:
    server = start("basic:app", "--workers", "2")
    server.wait_ready()
    importers = {pid for event, pid in server.events() if event == "import"}
    assert importers == server.workers()  # Each worker imported the app; the master did not.
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0


def test_preload_imports_once_in_a_zygote(start: Callable[..., Server]) -> None:
    server = start("basic:app", "--workers", "2", env={"RUVICORN_PRELOAD": "1"})
    server.wait_ready()
    importers = [pid for event, pid in server.events() if event == "import"]
    assert importers == list(server.zygotes()) and server.pid not in importers
    status, body = server.get("/")
    assert status == 200 and int(body) in server.workers()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0


@pytest.mark.parametrize(
    ("app", "code", "reason"),
    [
        ("broken_import:app", 3, "the application could not be loaded"),
        ("lifespan_fail:app", 4, "lifespan startup failed"),
    ],
)
def test_boot_failure_stops_the_server(
    start: Callable[..., Server], app: str, code: int, reason: str
) -> None:
    server = start(app, "--workers", "3", "--lifespan", "on", "--log-level", "debug")
    assert server.wait_exit(30) == code
    log = server.log()
    assert f"failed to boot: {reason}; stopping the server" in log
    # The first worker boots alone, so a broken app fails once (and never respawns).
    assert server.count(r"Started worker") == 1
    assert "Listening on" not in log


def test_crash_looping_worker_backs_off(start: Callable[..., Server]) -> None:
    server = start("crashloop:app", "--workers", "1")
    server.wait_log(r"died unexpectedly", count=4, timeout=60)
    delays = [float(d) for d in re.findall(r"starting the next worker in ([\d.]+) s", server.log())]
    assert len(delays) >= 2
    assert delays == sorted(delays) and delays[-1] > delays[0]
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0


def test_sigttin_sigttou_change_the_worker_count(start: Callable[..., Server]) -> None:
    server = start("basic:app", "--workers", "1")
    server.wait_ready()
    first = server.workers()
    # Keep-alive clients throughout: the worker SIGTTOU retires loses none of them.
    load = Load(server, {"close": 2, "pool": 2, "eager": 2}, max_seconds=60)
    try:
        server.signal(signal.SIGTTIN)
        server.wait_log(r"Worker count set to 2")
        wait_for(lambda: len(server.workers()) == 2, 30, "a second worker")
        server.wait_log(r"Worker \d+ ready", count=2)
        load.wait_count(load.ok + 200)
        server.signal(signal.SIGTTOU)
        server.wait_log(r"Worker count set to 1")
        server.wait_log(r"Worker \d+ stopped \(exit code 0\)")
        wait_for(lambda: len(server.workers()) == 1, 30, "one worker")
        load.wait_count(load.ok + 200)
    finally:
        load.stop()
    assert load.failures == []
    assert server.workers().isdisjoint(first)  # The oldest worker is the one retired.


def test_unix_socket_and_pidfile(start: Callable[..., Server], tmp_path: Path) -> None:
    uds = tmp_path / "web.sock"
    pidfile = tmp_path / "web.pid"
    server = start("basic:app", "--workers", "2", "--uds", str(uds), "--pid", str(pidfile))
    server.wait_ready()
    assert pidfile.read_text().strip() == str(server.pid)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(uds))
    conn = http.client.HTTPConnection("localhost", timeout=10)
    conn.sock = sock
    conn.request("GET", "/", headers={"Connection": "close"})
    response = conn.getresponse()
    assert response.status == 200 and int(response.read()) in server.workers()
    conn.close()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
    assert not uds.exists()
    assert not pidfile.exists()


def test_address_in_use_is_one_clear_line(start: Callable[..., Server]) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = start("basic:app", port=port)
        assert server.wait_exit(30) == 2
    lines = [line for line in server.log().splitlines() if "ERROR" in line]
    assert lines and lines[0].endswith(f"cannot bind 127.0.0.1:{port}: address already in use")
    assert "Traceback" not in server.log()


def test_each_worker_has_its_own_socket_and_serves_new_connections(
    start: Callable[..., Server],
) -> None:
    server = start("basic:app", "--workers", "4", "--socket-per-worker", "on")
    server.wait_ready()
    workers = server.workers()
    listening = {c.fd for c in psutil.Process(server.pid).net_connections() if c.status == "LISTEN"}
    assert len(listening) == 4
    load = Load(server, {"close": 4}, max_requests=800, max_seconds=60)
    try:
        load.wait_count(800)
    finally:
        load.stop()
    assert load.failures == []
    assert set(load.served_by()) == workers


def test_sigttou_and_sigttin_under_new_connections_lose_nothing(
    start: Callable[..., Server],
) -> None:
    """The sockets of the slots SIGTTOU empties stay open and every worker serves them:
    connections the kernel queued there are answered, none hangs."""
    server = start("basic:app", "--workers", "4", "--socket-per-worker", "on")
    server.wait_ready()
    load = Load(server, {"close": 6}, max_seconds=80)
    try:
        load.wait_count(200)
        for count in (3, 2):
            server.signal(signal.SIGTTOU)
            server.wait_log(rf"Worker count set to {count}")
            wait_for(lambda n=count: len(server.workers()) == n, 30, f"{count} workers")
            load.wait_count(load.ok + 300)
        server.signal(signal.SIGTTIN)
        server.wait_log(r"Worker \d+ ready", count=5)
        load.wait_count(load.ok + 300)
    finally:
        load.stop()
    assert load.failures == []
    # The master logs a stop when it reaps the worker, after workers() (which skips
    # zombies) stopped counting it: wait for both lines, then check there is no third.
    server.wait_log(r"Worker \d+ stopped \(exit code 0\)", count=2)
    assert server.count(r"Worker \d+ stopped \(exit code 0\)") == 2


def test_sigkill_of_a_worker_under_new_connections_loses_nothing(
    start: Callable[..., Server],
) -> None:
    """Connections queued on the killed worker's socket wait for its replacement. Only the
    requests the worker was answering when killed fail (at most one per client)."""
    clients = 6
    server = start("basic:app", "--workers", "4", "--socket-per-worker", "on")
    server.wait_ready()
    load = Load(server, {"close": clients}, max_seconds=80)
    try:
        load.wait_count(200)
        victim = next(iter(server.workers()))
        os.kill(victim, signal.SIGKILL)
        server.wait_log(rf"Worker {victim} died unexpectedly")
        server.wait_log(r"Worker \d+ ready", count=5)
        cut = list(load.failures)
        load.wait_count(load.ok + 300)
    finally:
        load.stop()
    assert len(cut) <= clients
    assert all("RemoteDisconnected" in f or "ConnectionReset" in f for f in cut), cut
    assert load.failures == cut  # None timed out waiting on the victim's socket.
    # The four first workers and the replacement, which took over the victim's socket.
    assert len(load.served_by()) == 5


def test_second_server_on_the_same_port_is_one_clear_line(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    """The port's sockets allow SO_REUSEPORT, yet a second server is refused, not let in."""
    first = start("basic:app", "--workers", "2", "--socket-per-worker", "on")
    first.wait_ready()
    (tmp_path / "second").mkdir()
    second = Server(
        tmp_path / "second",
        "basic:app",
        "--workers",
        "2",
        "--socket-per-worker",
        "on",
        port=first.port,
    )
    try:
        assert second.wait_exit(30) == 2
    finally:
        second.close()
    lines = [line for line in second.log().splitlines() if "ERROR" in line]
    assert lines and lines[0].endswith(
        f"cannot bind 127.0.0.1:{first.port}: address already in use"
    )
    assert "Traceback" not in second.log()
    assert first.get("/")[0] == 200


def test_reload_watches_a_noisy_folder(start: Callable[..., Server], tmp_path: Path) -> None:
    """A file the watcher ignores is written all the time in the watched folder (a log,
    say): "Watching" still comes once the watches are in place, and an edit to a .py file
    still rolls the workers."""
    noise = tmp_path / "app.log"
    stop = threading.Event()

    def write_noise() -> None:
        with noise.open("a") as out:
            for _ in range(3000):  # At most about a minute.
                if stop.wait(0.02):
                    return
                out.write("x\n")
                out.flush()

    writer = threading.Thread(target=write_noise, daemon=True)
    writer.start()
    try:
        server = start("basic:app", "--reload-dir", str(tmp_path), env={"RUVICORN_RELOAD": "1"})
        server.wait_ready()
        server.wait_watching()
        (tmp_path / "touched.py").write_text("x = 1\n")
        server.wait_log("Reload complete", timeout=30)
    finally:
        stop.set()
        writer.join(5)
