"""Recycling through the rolling path: max requests, max memory, hung event loop."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sup_helpers import Server, wait_for

pytestmark = pytest.mark.timeout(120)


def test_max_requests_recycles_without_failures(start: Callable[..., Server]) -> None:
    server = start("basic:app", "--workers", "1", "--limit-max-requests", "20")
    server.wait_ready()
    (first,) = server.workers()
    pids = []
    deadline = time.monotonic() + 60
    while len(pids) < 100000 and time.monotonic() < deadline:
        status, body = server.get("/")
        assert status == 200
        pids.append(int(body))
        if int(body) != first:
            break
    assert pids[0] == first and pids[-1] != first
    assert pids.count(first) >= 20
    server.wait_log(rf"Recycling worker {first}: reached --limit-max-requests")
    server.wait_log(rf"Worker {first} stopped \(exit code 0\)")


def test_max_memory_recycles_a_growing_worker(start: Callable[..., Server]) -> None:
    server = start("basic:app", "--workers", "1", "--max-worker-memory", "120")
    server.wait_ready()
    (first,) = server.workers()
    assert server.get("/alloc?mb=200")[0] == 200
    server.wait_log(rf"Recycling worker {first}: RSS \d+ MiB over --max-worker-memory", 60)
    server.wait_log(rf"Worker {first} stopped \(exit code 0\)", 60)
    status, body = server.get("/")
    assert status == 200 and int(body) != first


def test_blocked_event_loop_gets_sigabrt_then_replaced(start: Callable[..., Server]) -> None:
    server = start("basic:app", "--workers", "2", "--timeout-worker", "2")
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
