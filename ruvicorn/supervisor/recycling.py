"""When a healthy worker should be replaced: request count, memory, age.

Recycling never kills a worker outright: the worker stops accepting at once (the request
that spends its budget does that inside the worker; memory and age are sampled by the
master, which then retires it), answers what it already has, and the master starts its
replacement meanwhile. New connections wait in the kernel's queue, so none is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ruvicorn.config import MIB, Config

if TYPE_CHECKING:
    import random

#: Consecutive one-second RSS samples above the limit before a worker is recycled, so a
#: short spike (one large request) does not cost a restart.
MEMORY_SAMPLES = 3


def request_limit(config: Config, rng: random.Random | None = None) -> int:
    """This worker's request budget (0 = unlimited), jittered so workers do not all
    recycle at the same moment."""
    if config.limit_max_requests <= 0:
        return 0
    jitter = max(0, config.limit_max_requests_jitter)
    if rng is None:
        # Imported by the one worker that draws, not by the master that forks them all.
        import random

        draw = random.randint
    else:
        draw = rng.randint
    return config.limit_max_requests + draw(0, jitter)


class MemoryWatch:
    """Counts consecutive samples of one worker's RSS above ``--max-worker-memory``."""

    def __init__(self, limit_mib: int, samples: int = MEMORY_SAMPLES) -> None:
        self.limit_bytes = limit_mib * MIB
        self.samples = samples
        self.over = 0
        self.last_rss = 0

    def sample(self, pid: int) -> bool:
        """Take one sample; True once the limit was exceeded ``samples`` times in a row."""
        if self.limit_bytes <= 0:
            return False
        import psutil  # here: a master without --max-worker-memory never needs it

        try:
            self.last_rss = int(psutil.Process(pid).memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False
        self.over = self.over + 1 if self.last_rss > self.limit_bytes else 0
        return self.over >= self.samples


def lifetime_exceeded(config: Config, started: float, now: float) -> bool:
    """True when the worker has served longer than ``--max-worker-lifetime``."""
    return config.max_worker_lifetime > 0 and now - started >= config.max_worker_lifetime


class Backoff:
    """Delay before respawning after crashes: the first replacement starts at once, then
    the delay doubles with every further crash within ``window`` seconds, up to ``cap``."""

    def __init__(self, first: float = 0.5, cap: float = 30.0, window: float = 60.0) -> None:
        self.first = first
        self.cap = cap
        self.window = window
        self._crashes: list[float] = []

    def crashed(self, now: float) -> float:
        """Record a crash at ``now``; return how long to wait before the next spawn."""
        self._crashes = [t for t in self._crashes if now - t < self.window]
        self._crashes.append(now)
        count = len(self._crashes)
        if count <= 1:
            return 0.0
        return float(min(self.cap, self.first * 2 ** (count - 2)))
