"""Worker liveness without a round trip: a timestamp in memory shared by master and worker.

Before forking, the master maps one small anonymous shared page per worker. The worker's
event loop stores ``time.monotonic()`` there on every tick; the master only reads it. A
loop blocked by the application stops the ticks, so the age of the stamp is exactly how
long the loop has been stuck. CLOCK_MONOTONIC is system-wide, so both processes agree.

The same page carries how late the last tick ran (the event loop's lag) and, with
``--metrics-bind``, the worker's request counters: the native protocol counts straight
into the page with atomic adds (see ``ruvicorn.supervisor.metrics``), so the master reads
a dead worker's final counts from the page, however it died, before it is unmapped.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

#: Seconds between a healthy worker's beats.
INTERVAL = 1.0
#: The stamp and the lag of the last tick, in seconds.
_STAMP = struct.Struct("dd")
#: Where the counters start (a cache line past the stamp).
COUNTERS_AT = 64


class Heartbeat:
    """One worker's shared page."""

    def __init__(self, fd: int = -1) -> None:
        """``fd``: a page from :func:`page_fd`, for a worker the master does not fork itself
        (the zygote's): the descriptor travels to it, the anonymous mapping could not."""
        self._map = mmap.mmap(fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED)
        self.beat()

    def beat(self, lag: float = 0.0) -> None:
        """Record that the loop is alive now, its last tick ``lag`` seconds late (worker
        side)."""
        _STAMP.pack_into(self._map, 0, time.monotonic(), lag)

    def age(self) -> float:
        """Seconds since the last beat (master side)."""
        stamp, _ = _STAMP.unpack_from(self._map, 0)
        return max(0.0, time.monotonic() - float(stamp))

    def lag(self) -> float:
        """How late the last tick ran, in seconds (master side)."""
        _, lag = _STAMP.unpack_from(self._map, 0)
        return float(lag)

    def counters(self, slots: int) -> memoryview:
        """The counter slots as a writable buffer of native ``u64`` (worker side), for the
        native protocol only: it holds the buffer, so the page cannot be closed under it."""
        return memoryview(self._map)[COUNTERS_AT : COUNTERS_AT + 8 * slots].cast("Q")

    def read_counters(self, slots: int) -> tuple[int, ...]:
        """The worker's counters now (master side); after it died, its final ones."""
        return struct.unpack_from(f"{slots}Q", self._map, COUNTERS_AT)

    def close(self) -> None:
        if not self._map.closed:
            self._map.close()


def page_fd() -> int:
    """A descriptor of one shareable page (the caller closes it once mapped and sent)."""
    fd = os.memfd_create("ruvicorn-heartbeat")
    os.ftruncate(fd, mmap.PAGESIZE)
    return fd
