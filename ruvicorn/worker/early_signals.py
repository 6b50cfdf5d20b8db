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

#: Every signal a worker handles, and what it does (``worker.run._StopSignals`` runs the
#: action of that name): stop (TERM, INT), stop because replaced (HUP), stop fast (QUIT),
#: reopen the log files (USR1).
ACTIONS = {
    signal.SIGTERM: "graceful",
    signal.SIGINT: "graceful",
    signal.SIGHUP: "replaced",
    signal.SIGQUIT: "fast",
    signal.SIGUSR1: "reopen_logs",
}

_held: list[int] = []


def hold() -> None:
    """Record each signal of ``ACTIONS`` from now on, until the loop's handlers replace
    these."""
    for signum in ACTIONS:
        signal.signal(signum, _record)


def _record(signum: int, frame: FrameType | None) -> None:
    _held.append(signum)


def release() -> list[int]:
    """The signals recorded so far, in order of arrival (each one once)."""
    held = list(_held)
    _held.clear()
    return held
