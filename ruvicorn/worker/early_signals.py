"""Signals that reach a forked worker before its event loop handles them.

Until the loop's handlers are in place (after the app loaded and its lifespan started) a
signal's default action would kill the worker mid-boot, its lifespan never shut down: a
SIGHUP roll or SIGTTOU retiring a worker still booting, a stop, a SIGUSR1 log rotation.
From the fork on they are recorded instead, and handled as soon as the loop takes over
(``worker.run._StopSignals``).
"""

from __future__ import annotations

import signal
from types import FrameType

#: What a worker handles: stop (TERM, INT), replaced (HUP), stop fast (QUIT), reopen logs.
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)

_held: list[int] = []


def hold() -> None:
    """Record each of ``SIGNALS`` from now on, until the loop's handlers replace these."""
    for signum in SIGNALS:
        signal.signal(signum, _record)


def _record(signum: int, frame: FrameType | None) -> None:
    _held.append(signum)


def release() -> list[int]:
    """The signals recorded so far, in order of arrival (each one once)."""
    held = list(_held)
    _held.clear()
    return held
