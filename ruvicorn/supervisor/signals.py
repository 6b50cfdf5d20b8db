"""Master signal handling: handlers only record the signal; the master loop acts on it.

Doing real work inside a Python signal handler would run it at an arbitrary point of the
master loop. Instead each handler appends the signal number to a queue, and
``signal.set_wakeup_fd`` writes a byte to a non-blocking self-pipe so the loop's ``select``
wakes at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import deque
from types import FrameType

#: The signals the master owns (see the table in the master's docs).
HANDLED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGCHLD,
)


class SignalQueue:
    """Signals received and not yet handled, plus the fd that wakes the master loop."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self._pending: deque[int] = deque()
        self._previous_wakeup = -1

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._pending.append(signum)

    def install(self) -> None:
        """Route every handled signal into this queue."""
        for signum in HANDLED:
            signal.signal(signum, self._handle)
        self._previous_wakeup = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)

    def drain_wakeups(self) -> None:
        """Empty the self-pipe (its bytes only served to wake ``select``)."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self.read_fd, 4096):
                pass

    def post(self, signum: int) -> None:
        """Act as if ``signum`` was received (a control socket command)."""
        self._pending.append(signum)

    def pop_all(self) -> list[int]:
        """The signals received since the last call, oldest first."""
        self.drain_wakeups()
        received = list(self._pending)
        self._pending.clear()
        return received

    def close(self) -> None:
        """Stop routing signals here (used in a freshly forked child and at exit)."""
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def reset_to_default() -> None:
    """Give a forked worker default handlers; it installs its own in its event loop."""
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_DFL)


def name(signum: int) -> str:
    """SIGTERM rather than 15 in log lines."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
