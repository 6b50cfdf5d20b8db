"""Unit tests: sd_notify messages, recycling rules, backoff, reload filter, heartbeat."""

from __future__ import annotations

import os
import random
import socket
import struct
from pathlib import Path

import pytest

from ruvicorn.config import Config
from ruvicorn.supervisor import pidfile
from ruvicorn.supervisor.heartbeat import Heartbeat
from ruvicorn.supervisor.pool import Pool
from ruvicorn.supervisor.recycling import Backoff, MemoryWatch, lifetime_exceeded, request_limit
from ruvicorn.supervisor.reload_helper import make_filter
from ruvicorn.supervisor.sd_notify import Notifier
from ruvicorn.supervisor.worker_process import Worker

pytestmark = pytest.mark.timeout(30)


def _receiver(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "n.sock"))
    sock.settimeout(5)
    return sock


def _fields(sock: socket.socket) -> dict[str, str]:
    return dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())


def test_notifier_messages(tmp_path: Path) -> None:
    receiver = _receiver(tmp_path)
    env = {"NOTIFY_SOCKET": str(tmp_path / "n.sock"), "WATCHDOG_USEC": "4000000"}
    notifier = Notifier(env)
    assert env == {}  # Taken out so workers never inherit them.
    assert notifier.watchdog_interval == 2.0
    notifier.ready("1 of 1 workers ready")
    assert _fields(receiver) == {"READY": "1", "STATUS": "1 of 1 workers ready"}
    notifier.reloading("reloading")
    message = _fields(receiver)
    assert message["RELOADING"] == "1" and int(message["MONOTONIC_USEC"]) > 0
    notifier.watchdog(100.0, healthy=False)
    notifier.watchdog(100.0, healthy=True)
    notifier.watchdog(101.0, healthy=True)  # Within the interval: no second ping.
    notifier.stopping("bye")
    assert _fields(receiver) == {"WATCHDOG": "1"}
    assert _fields(receiver) == {"STOPPING": "1", "STATUS": "bye"}
    notifier.close()
    receiver.close()


def test_notifier_disabled_and_foreign_watchdog() -> None:
    notifier = Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert not notifier.enabled and notifier.watchdog_interval == 0.0
    notifier.ready("nothing happens")  # No socket: a silent no-op.


def test_notifier_abstract_address() -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "@sd"})
    assert notifier.address == "\0sd"
    notifier.close()


def test_request_limit_with_jitter() -> None:
    assert request_limit(Config()) == 0
    rng = random.Random(1)
    limits = {
        request_limit(Config(limit_max_requests=100, limit_max_requests_jitter=10), rng)
        for _ in range(200)
    }
    assert min(limits) >= 100 and max(limits) <= 110 and len(limits) > 1


def test_memory_watch_needs_consecutive_samples() -> None:
    watch = MemoryWatch(limit_mib=1, samples=3)  # This test process is above 1 MiB.
    assert [watch.sample(os.getpid()) for _ in range(3)] == [False, False, True]
    assert watch.last_rss > 1024 * 1024
    assert not MemoryWatch(limit_mib=0).sample(os.getpid())
    assert not MemoryWatch(limit_mib=1).sample(2**22 + 12345)  # No such process.


def test_lifetime() -> None:
    assert not lifetime_exceeded(Config(), 0.0, 1e9)
    config = Config(max_worker_lifetime=10)
    assert not lifetime_exceeded(config, 100.0, 109.0)
    assert lifetime_exceeded(config, 100.0, 110.0)


def test_backoff_grows_and_resets_after_window() -> None:
    backoff = Backoff(first=0.5, cap=4.0, window=60.0)
    assert [backoff.crashed(t) for t in (0, 1, 2, 3, 4, 5)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff.crashed(1000.0) == 0.0


def test_reload_filter() -> None:
    accept = make_filter((), ("*_test.py",))
    assert accept(None, "/src/app.py")
    assert not accept(None, "/src/app_test.py")
    assert not accept(None, "/src/readme.md")
    assert not accept(None, "/src/.git/app.py")
    templates = make_filter(("*.html", "*.py"), ())
    assert templates(None, "/src/t/index.html")


def test_heartbeat_is_shared_across_fork() -> None:
    heartbeat = Heartbeat()
    heartbeat._map[:8] = struct.pack("d", 0.0)  # A stamp from long ago.
    assert heartbeat.age() > 5.0
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        heartbeat.beat()
        os._exit(0)
    os.waitpid(pid, 0)
    assert heartbeat.age() < 5.0
    heartbeat.close()


def test_pidfile(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    pidfile.write(str(path))
    assert path.read_text() == f"{os.getpid()}\n"
    path.write_text("1\n")  # Another server took it over: not ours to remove.
    pidfile.remove(str(path))
    assert path.exists()
    path.write_text(f"{os.getpid()}\n")
    pidfile.remove(str(path))
    assert not path.exists()


def test_a_slots_next_worker_takes_the_handover_end_its_newest_worker_does_not_hold() -> None:
    """A new worker of a slot and the slot's newest live one (maybe draining) hold opposite
    ends of the slot's HTTP/3 handover channel, so each reads what the other sends."""
    pool = Pool(Config(app="m:app"), Notifier({}), -1, list)

    def worker(pid: int, started: float, quic: dict[int, int], ready: bool = True) -> Worker:
        beat = Heartbeat()
        record = Worker(pid, -1, beat, started, MemoryWatch(0), quic=quic, ready=ready)
        beat.close()
        return record

    assert pool._handover_ends({0, 1}) == {0: 0, 1: 0}
    pool.workers = {
        1: worker(1, 1.0, {0: 0, 1: 1}),
        # Slot 1's newest worker (it took the other end) and one for slot 0 since.
        2: worker(2, 2.0, {1: 0}),
        3: worker(3, 3.0, {0: 1}),
    }
    assert pool._handover_ends({0, 1, 2}) == {0: 0, 1: 1, 2: 0}
    # Slot 0's newest worker never got ready (a reload retired it while it booted): the
    # next one pairs with the older worker that holds the connections.
    pool.workers[3] = worker(3, 3.0, {0: 1}, ready=False)
    assert pool._handover_ends({0}) == {0: 1}
