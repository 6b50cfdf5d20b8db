"""Recycling: max requests, max memory and lifetime retire the worker at once (it stops
accepting, answers what it has, and the master starts its replacement); a hung event loop
gets SIGABRT then SIGKILL."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rawhttp import wait_for
from sup_helpers import Load, Server

pytestmark = pytest.mark.timeout(120)


#: Workers forked by the master, and by the zygote (--preload) then adopted by the master.
FORKS = pytest.mark.parametrize("fork", [[], ["--preload"]], ids=["master", "zygote"])


@FORKS
def test_max_requests_recycles_without_failures(
    start: Callable[..., Server], fork: list[str]
) -> None:
    server = start("basic:app", "--workers", "1", "--limit-max-requests", "20", *fork)
    server.wait_ready()
    (first,) = server.workers()
    pids = []
    deadline = time.monotonic() + 60
    while len(pids) < 1000 and time.monotonic() < deadline:
        status, body = server.get("/")
        assert status == 200
        pids.append(int(body))
        if int(body) != first:
            break
    # One request at a time: the worker stops accepting with its 20th, so not one more
    # reaches it; the next connection waits in the kernel for the replacement.
    assert pids[-1] != first and pids.count(first) == 20
    server.wait_log(rf"Recycling worker {first}: reached --limit-max-requests")
    server.wait_log(rf"Worker {first} stopped \(exit code 0\)")


#: Requests arriving every 30 ms from a keep-alive and a one-shot client.
SPACED = {"pool": 1, "close": 1}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_max_requests_is_not_overshot(start: Callable[..., Server], workers: str) -> None:
    budget = 10
    server = start("basic:app", "--workers", workers, "--limit-max-requests", str(budget))
    server.wait_ready()
    load = Load(server, SPACED, max_requests=150, max_seconds=60, interval=0.03)
    try:
        load.wait_count(150, timeout=60)
    finally:
        load.stop()
    assert load.failures == []
    served = load.served_by()
    # A worker serves at most its budget plus one request per client connection it had
    # open when the budget ran out (that one is answered with connection: close).
    assert max(served.values()) <= budget + sum(SPACED.values()), served
    assert len(served) >= 150 // (budget + 2), served  # it did recycle, again and again
    assert server.count(r"reached --limit-max-requests") >= len(served) - int(workers)


MIXED = {"close": 8, "pool": 4, "eager": 4}


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_max_requests_under_keep_alive_load_drops_nothing(
    start: Callable[..., Server], loop: str
) -> None:
    budget = 300
    server = start(
        "basic:app", "--workers", "2", "--limit-max-requests", str(budget), "--loop", loop
    )
    server.wait_ready()
    load = Load(server, MIXED, max_requests=200000, max_seconds=90)
    try:
        server.wait_log("Recycling worker", count=10, timeout=90)
    finally:
        load.stop()
    assert load.failures == []
    served = load.served_by()
    assert max(served.values()) <= budget + sum(MIXED.values()), served


def test_max_lifetime_recycles_under_load(start: Callable[..., Server]) -> None:
    server = start("basic:app", "--workers", "2", "--max-worker-lifetime", "2")
    server.wait_ready()
    first = server.workers()
    load = Load(server, MIXED, max_requests=200000, max_seconds=60)
    try:
        server.wait_log("Recycling worker .*: reached --max-worker-lifetime", count=4, timeout=60)
        load.wait_count(load.ok + len(load.failures) + 100)
    finally:
        load.stop()
    assert load.failures == []
    assert set(load.served_by()) - first


def test_max_memory_recycles_a_growing_worker(start: Callable[..., Server]) -> None:
    server = start("basic:app", "--workers", "1", "--max-worker-memory", "120")
    server.wait_ready()
    (first,) = server.workers()
    load = Load(server, MIXED, max_requests=200000, max_seconds=90)
    try:
        assert server.get("/alloc?mb=200")[0] == 200
        server.wait_log(rf"Recycling worker {first}: RSS \d+ MiB over --max-worker-memory", 60)
        server.wait_log(rf"Worker {first} stopped \(exit code 0\)", 60)
        load.wait_count(load.ok + len(load.failures) + 100)
    finally:
        load.stop()
    assert load.failures == []
    assert set(load.served_by()) - {first}
    status, body = server.get("/")
    assert status == 200 and int(body) != first


@FORKS
@pytest.mark.parametrize("retiring", [False, True], ids=["serving", "retiring"])
def test_blocked_event_loop_gets_sigabrt_then_replaced(
    start: Callable[..., Server], fork: list[str], retiring: bool
) -> None:
    # Retiring: the blocking request spends the worker's budget, so the worker is already
    # draining when its loop blocks; it is as hung as a serving one.
    budget = ["--limit-max-requests", "1"] if retiring else []
    server = start("basic:app", "--workers", "2", "--timeout-worker", "2", *fork, *budget)
    server.wait_ready()
    workers = server.workers()
    # The request itself is lost with its worker: that is the point.
    with contextlib.suppress(OSError):
        server.get("/block?s=60", timeout=1)
    wait_for(lambda: any(e == "request/block" for e, _ in server.events()), 20, "request")
    (hung,) = [pid for event, pid in server.events() if event == "request/block"]
    server.wait_log(rf"Worker {hung}: event loop blocked for \d+ s", 60)
    server.wait_log(rf"Worker {hung} was stopped after its event loop hung", 30)
    log = server.log()
    assert "basic.py" in log.split("event loop blocked", 1)[1]  # faulthandler's traceback.
    wait_for(lambda: len(server.workers() - workers) == 1, 30, "a replacement")
    server.wait_log(r"Worker \d+ ready", count=3)
    assert server.get("/")[0] == 200
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0


def test_hung_worker_traceback_lands_in_the_log_file(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    log_file = tmp_path / "ruvicorn.log"
    server = start(
        "basic:app", "--workers", "1", "--timeout-worker", "2", "--log-file", str(log_file)
    )

    def logged(text: str) -> bool:
        return log_file.exists() and text in log_file.read_text(errors="replace")

    wait_for(lambda: logged("Ready: 1 worker serving"), 30, "ready in the log file")
    with contextlib.suppress(OSError):
        server.get("/block?s=60", timeout=1)
    wait_for(lambda: logged("event loop blocked"), 60, "the hang logged")

    def traceback_logged() -> bool:
        after_hang = log_file.read_text(errors="replace").split("event loop blocked", 1)[1]
        return "basic.py" in after_hang  # faulthandler names the blocking frame

    wait_for(traceback_logged, 30, "faulthandler's traceback in the log file")
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
