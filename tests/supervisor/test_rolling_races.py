"""Signals that reach the master while a roll or a resize is still under way: under load,
no request fails, and the pool ends with the wanted count of workers, all started after the
last SIGHUP, so all run the newest code.

The workers' lifespan startup takes STARTUP_DELAY seconds, so a roll lasts long enough for
the next signal to reach it while replacements are still booting.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rawhttp import wait_for
from sup_helpers import Load, Server

pytestmark = pytest.mark.timeout(240)

#: One-shot clients beside keep-alive pools, eager keep-alive clients (see test_rolling)
#: and clients pipelining three requests at a time.
MIXED = {"close": 4, "pool": 2, "eager": 2, "pipeline": 2}
STARTUP_DELAY = "1"
#: SIGHUPs in a burst, each after a new version of the code is in place.
BURST = 4
#: Requests the load completes before the first step, and after each step once only the
#: newest workers are left (so they alone answer them).
PROGRESS = 150


class Code:
    """The file the app reads once at import: a stand-in for the code a worker runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = 0
        self.bump()

    def bump(self) -> None:
        """Put the next version in place (atomically: a worker may be importing now)."""
        self.version += 1
        staged = self.path.with_suffix(".new")
        staged.write_text(self.current())
        os.replace(staged, self.path)

    def current(self) -> str:
        return f"v{self.version}"


def _start(
    start: Callable[..., Server], tmp_path: Path, workers: int, loop: str, sockets: str
) -> tuple[Server, Code]:
    code = Code(tmp_path / "code.txt")
    server = start(
        "basic:app",
        "--workers",
        str(workers),
        "--loop",
        loop,
        "--socket-per-worker",
        sockets,
        env={"RUVICORN_TEST_CODE": str(code.path), "RUVICORN_TEST_STARTUP_DELAY": STARTUP_DELAY},
    )
    server.wait_ready()
    return server, code


@contextlib.contextmanager
def _under_load(
    start: Callable[..., Server], tmp_path: Path, workers: int, loop: str, sockets: str
) -> Iterator[tuple[Server, Code, Load]]:
    """A server under the mixed load, once it made progress; afterwards no request may
    have failed, and the server stops gracefully."""
    server, code = _start(start, tmp_path, workers, loop, sockets)
    load = Load(server, MIXED, max_requests=1_000_000, max_seconds=150)
    try:
        load.wait_count(PROGRESS)
        yield server, code, load
    finally:
        load.stop()
    assert load.failures == []
    _stop(server)


def _newest_only(server: Server, workers: int) -> set[int] | None:
    """The live workers once a reload completed after the last SIGHUP and only ``workers``
    workers started after it are left; else None."""
    log = server.log()
    last_hup = log.rfind("Received SIGHUP")
    if last_hup < 0 or log.find("Reload complete", last_hup) < 0:
        return None
    started_after = {int(pid) for pid in re.findall(r"Started worker (\d+)", log[last_hup:])}
    live = server.workers()
    return live if len(live) == workers and live <= started_after else None


def _settle(server: Server, load: Load, workers: int) -> set[int]:
    """Wait until only workers started after the last SIGHUP are left and the load made
    progress with them; returns them."""
    newest = wait_for(lambda: _newest_only(server, workers), 90, "only the newest workers")
    assert isinstance(newest, set)
    load.wait_count(load.ok + len(load.failures) + PROGRESS)
    return set(newest)


def _check_newest(server: Server, newest: set[int], code: Code) -> None:
    """Every worker left runs the newest code, and every other one exited 0 after its
    lifespan shutdown, with no traceback anywhere."""
    codes = {pid: event[len("code:") :] for event, pid in server.events() if "code:" in event}
    assert {pid: codes.get(pid) for pid in newest} == dict.fromkeys(newest, code.current())
    for _ in range(4 * len(newest)):
        pid, value = server.get("/code")[1].split()
        assert int(pid) in newest and value == code.current()
    # A worker may be gone before it imported the app; the first one is started unlogged.
    imported = {pid for event, pid in server.events() if event == "import"}
    started = {int(pid) for pid in re.findall(r"Started worker (\d+)", server.log())}
    gone = (imported | started) - newest

    def stopped() -> dict[int, str] | None:
        exits = re.findall(r"Worker (\d+) stopped \((.*?)\)", server.log())
        found = {int(pid): how for pid, how in exits}
        return found if found.keys() >= gone else None

    assert wait_for(stopped, 30, "the old workers' exits") == dict.fromkeys(gone, "exit code 0")
    assert "Traceback" not in server.log()


def _stop(server: Server) -> None:
    """A graceful stop: exit 0, and every worker whose lifespan started shut it down."""
    server.signal(signal.SIGTERM)
    assert server.wait_exit(60) == 0
    events = server.events()
    started = sorted(pid for event, pid in events if event == "startup")
    assert started == sorted(pid for event, pid in events if event == "shutdown")
    assert "Traceback" not in server.log()


@pytest.mark.parametrize(
    ("loop", "sockets", "workers"),
    [("uvloop", "off", 2), ("asyncio", "on", 2), ("uvloop", "on", 4)],
)
def test_sighups_during_a_roll_end_on_the_newest_code(
    start: Callable[..., Server], tmp_path: Path, loop: str, sockets: str, workers: int
) -> None:
    with _under_load(start, tmp_path, workers, loop, sockets) as (server, code, load):
        # A second SIGHUP as soon as the first roll began: the replacement it started is
        # still booting, and is stale already.
        code.bump()
        server.signal(signal.SIGHUP)
        server.wait_log(r"Reloading \(SIGHUP\)", timeout=30)
        code.bump()
        server.signal(signal.SIGHUP)
        server.wait_log("Received SIGHUP", count=2, timeout=30)
        log = server.log()
        hups = [m.start() for m in re.finditer("Received SIGHUP", log)]
        # The second arrived while the first roll was under way (STARTUP_DELAY sees to it).
        assert "Reload complete" not in log[: hups[1]]
        _check_newest(server, _settle(server, load, workers), code)

        # A burst, each SIGHUP a moment after the last, a new version before each.
        for _ in range(BURST):
            code.bump()
            server.signal(signal.SIGHUP)
            time.sleep(0.05)
        _check_newest(server, _settle(server, load, workers), code)


#: Resizes and reloads together: the signals sent at once, those sent once the roll began
#: (its replacement still booting), and the worker count after them, relative to the start.
RESIZES = [
    ((signal.SIGTTIN, signal.SIGHUP), (), 1),
    ((signal.SIGTTOU, signal.SIGHUP), (), 0),
    ((signal.SIGHUP,), (signal.SIGTTIN,), 1),
    ((signal.SIGHUP,), (signal.SIGTTOU,), 0),
    ((signal.SIGTTOU, signal.SIGHUP), (signal.SIGTTOU,), -2),
]


@pytest.mark.parametrize(
    ("loop", "sockets", "workers"),
    [("asyncio", "off", 3), ("uvloop", "on", 4)],
)
def test_sighup_and_resizes_together_end_on_the_newest_code(
    start: Callable[..., Server], tmp_path: Path, loop: str, sockets: str, workers: int
) -> None:
    with _under_load(start, tmp_path, workers, loop, sockets) as (server, code, load):
        for reloads, (at_once, during_roll, change) in enumerate(RESIZES, 1):
            code.bump()
            for signum in at_once:
                server.signal(signum)
            server.wait_log(r"Reloading \(SIGHUP\)", count=reloads, timeout=30)
            for signum in during_roll:
                server.signal(signum)
            _check_newest(server, _settle(server, load, workers + change), code)
