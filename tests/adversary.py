"""What every adversarial test needs: the serving worker's memory and fds, and an ordinary
client that keeps asking for ``/ok`` while the attack runs.

An attack is only defended if it costs the worker a bounded amount of memory *and* other
clients are still served meanwhile; these helpers measure both without asserting on time.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Self

import psutil
from rawhttp import RawClient, request, wait_for
from realserver import ServerProcess

MIB = 1024 * 1024
#: How much a worker's resident memory may grow under an attack (peak over the warm baseline).
RSS_GROWTH_BOUND = 30 * MIB


def worker(server: ServerProcess) -> psutil.Process:
    """The one live worker of a ``--workers 1`` server."""
    assert server.proc is not None
    master = psutil.Process(server.proc.pid)

    def live() -> list[psutil.Process]:
        out = []
        for child in master.children():
            with contextlib.suppress(psutil.Error):
                if child.status() != psutil.STATUS_ZOMBIE:
                    out.append(child)
        return out

    children = wait_for(lambda: len(live()) == 1 and live())
    return children[0]


def warm(server: ServerProcess, requests: int = 50) -> None:
    """Settle the worker's allocator before taking a baseline."""
    with server.client() as c:
        for _ in range(requests):
            c.send(request("GET", "/ok"))
            assert c.read_response().status == 200


class Background:
    """A loop in a daemon thread for the length of a ``with`` block."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class RssWatch(Background):
    """Samples a process's RSS in a thread and keeps the peak."""

    def __init__(self, proc: psutil.Process, interval: float = 0.05) -> None:
        super().__init__()
        self.proc = proc
        self.interval = interval
        self.baseline = proc.memory_info().rss
        self.peak = self.baseline

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def assert_bounded(self, bound: int = RSS_GROWTH_BOUND) -> None:
        assert self.growth < bound, (
            f"worker RSS grew by {self.growth / MIB:.1f} MiB "
            f"(baseline {self.baseline / MIB:.1f} MiB, bound {bound / MIB:.0f} MiB)"
        )


class OrdinaryClient(Background):
    """A well-behaved keep-alive client asking for ``/ok`` every ``pause`` seconds.

    Every request must be answered 200 ``ok`` (each read is bounded by the raw client's
    timeout); a connection the server closes is replaced by a new one.
    """

    def __init__(self, server: ServerProcess, pause: float = 0.1, max_requests: int = 5000):
        super().__init__()
        self.server = server
        self.pause = pause
        self.max_requests = max_requests
        self.answered = 0
        self.failures: list[str] = []

    def _run(self) -> None:
        client: RawClient | None = None
        while not self._stop.is_set() and self.answered + len(self.failures) < self.max_requests:
            try:
                if client is None:
                    client = self.server.client()
                client.send(request("GET", "/ok"))
                resp = client.read_response()
                if resp.status == 200 and resp.body == b"ok":
                    self.answered += 1
                else:
                    self.failures.append(f"status {resp.status} body {resp.body[:60]!r}")
                if not resp.keeps_alive:
                    client.close()
                    client = None
            except (OSError, AssertionError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                if client is not None:
                    client.close()
                client = None
            self._stop.wait(self.pause)
        if client is not None:
            client.close()

    def wait_answers(self, count: int, timeout: float = 30.0) -> None:
        """Wait (bounded) until ``count`` more answers arrived than now."""
        target = self.answered + count
        wait_for(lambda: self.answered >= target or self.failures, timeout)
        self.assert_fine()

    def assert_fine(self) -> None:
        assert not self.failures, f"an ordinary client was not served: {self.failures[:5]}"
        assert self.answered > 0, "the ordinary client got no answer at all"


def open_fds(proc: psutil.Process) -> int:
    return int(proc.num_fds())


def wait_fds_at_most(proc: psutil.Process, bound: int, timeout: float = 60.0) -> None:
    """Wait until the worker holds at most ``bound`` fds: its connections were reclaimed."""
    try:
        wait_for(lambda: open_fds(proc) <= bound, timeout, interval=0.2)
    except AssertionError:
        raise AssertionError(
            f"worker still holds {open_fds(proc)} fds after {timeout}s (expected <= {bound})"
        ) from None
