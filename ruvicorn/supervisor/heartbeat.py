"""Worker liveness without a round trip: a timestamp in memory shared by master and worker.

Before forking, the master maps one small anonymous shared page per worker. The worker's
event loop stores ``time.monotonic()`` there on every tick; the master only reads it. A
loop blocked by the application stops the ticks, so the age of the stamp is exactly how
long the loop has been stuck. CLOCK_MONOTONIC is system-wide, so both processes agree.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

_STAMP = struct.Struct("d")


class Heartbeat:
    """One worker's shared timestamp."""

    def __init__(self, fd: int = -1) -> None:
        """``fd``: a page from :func:`page_fd`, for a worker the master does not fork itself
        (the zygote's): the descriptor travels to it, the anonymous mapping could not."""
        self._map = mmap.mmap(fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED)
        self.beat()

    def beat(self) -> None:
        """Record that the loop is alive now (worker side)."""
        _STAMP.pack_into(self._map, 0, time.monotonic())

    def age(self) -> float:
        """Seconds since the last beat (master side)."""
        (stamp,) = _STAMP.unpack_from(self._map, 0)
        return max(0.0, time.monotonic() - float(stamp))

    def close(self) -> None:
        if not self._map.closed:
            self._map.close()


def page_fd() -> int:
    """A descriptor of one shareable page (the caller closes it once mapped and sent)."""
    fd = os.memfd_create("ruvicorn-heartbeat")
    os.ftruncate(fd, mmap.PAGESIZE)
    return fd
