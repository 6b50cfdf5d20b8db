"""systemd notifications ($NOTIFY_SOCKET) and the watchdog ($WATCHDOG_USEC).

Everything here is a no-op when not started by systemd. The variables are taken out of
the environment once read so that workers and the application never talk to systemd on
the master's behalf.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time


class Notifier:
    """Sends sd_notify datagrams for the master."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", "")
        raw_usec = env.pop("WATCHDOG_USEC", "")
        watchdog_pid = env.pop("WATCHDOG_PID", "")
        self.address: str | None = None
        if address.startswith("@"):
            self.address = "\0" + address[1:]  # Abstract namespace.
        elif address.startswith("/"):
            self.address = address
        self.sock: socket.socket | None = None
        if self.address is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        usec = int(raw_usec) if raw_usec.isdigit() else 0
        for_us = not watchdog_pid or watchdog_pid == str(os.getpid())
        #: Seconds between WATCHDOG=1 pings (half the interval systemd enforces), or 0.
        self.watchdog_interval = usec / 2_000_000 if usec and for_us else 0.0
        self._next_ping = 0.0

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def send(self, **fields: str | int) -> None:
        """Send one message, e.g. ``send(READY=1, STATUS="4 workers")``; never raises."""
        if self.sock is None or self.address is None:
            return
        text = "".join(f"{key}={value}\n" for key, value in fields.items())
        with contextlib.suppress(OSError):
            self.sock.sendto(text.encode("utf-8", "replace"), self.address)

    def ready(self, status: str) -> None:
        self.send(READY=1, STATUS=status)

    def reloading(self, status: str) -> None:
        """RELOADING=1 with the monotonic timestamp Type=notify-reload requires."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(RELOADING=1, MONOTONIC_USEC=usec, STATUS=status)

    def stopping(self, status: str) -> None:
        self.send(STOPPING=1, STATUS=status)

    def status(self, status: str) -> None:
        self.send(STATUS=status)

    def watchdog(self, now: float, healthy: bool) -> None:
        """Ping the watchdog at half its interval, but only while workers are healthy."""
        if not self.watchdog_interval or not healthy or now < self._next_ping:
            return
        self._next_ping = now + self.watchdog_interval
        self.send(WATCHDOG=1)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
