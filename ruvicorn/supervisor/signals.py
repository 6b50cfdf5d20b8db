"""Master signal handling: signals are recorded, and the master loop acts on them.

Doing real work inside a Python signal handler would run it at an arbitrary point of the
master loop. Instead ``signal.set_wakeup_fd`` has the C-level handler write each signal's
number as one byte to a non-blocking self-pipe: the loop's ``poll`` wakes at once, and
the bytes themselves are the record of what arrived. The Python-level handler does
nothing; it only exists so the signals are caught. Reading the pipe rather than a list a
Python handler appends to leaves no window in which a signal can be lost between being
recorded and being taken (a master once ignored a SIGTERM for 40 s in a test run).
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
    """Signals received and not yet handled: the wakeup pipe, plus signals posted by
    control commands."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self._posted: deque[int] = deque()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        """Nothing to do: the C-level handler already wrote ``signum`` to the pipe."""

    def install(self) -> None:
        """Route every handled signal into this queue."""
        for signum in HANDLED:
            signal.signal(signum, self._handle)
        signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)

    def post(self, signum: int) -> None:
        """Act as if ``signum`` was received (a control socket command)."""
        self._posted.append(signum)

    def pop_all(self) -> list[int]:
        """The signals received since the last call, oldest first, then those posted."""
        received: list[int] = []
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while chunk := os.read(self.read_fd, 4096):
                received.extend(chunk)
        while self._posted:
            received.append(self._posted.popleft())
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
