"""The master's signal queue, in a child process (handlers must not change pytest's own)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

ACK_TIMEOUT = 5.0

#: The child installs the queue and reports every signal it pops, one byte each.
CHILD = """
import os, select, signal, sys, time
from ruvicorn.supervisor.signals import SignalQueue
report = int(sys.argv[1])
queue = SignalQueue()
queue.install()
queue.post(signal.SIGTTIN)  # A control command's signal.
os.write(report, b"r")
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    select.select([queue.read_fd], [], [], 0.05)
    for signum in queue.pop_all():
        if signum != signal.SIGCHLD:
            os.write(report, bytes([signum]))
        if signum == signal.SIGTERM:
            sys.exit(0)
sys.exit(1)
"""


def _read_one(report_r: int) -> int | None:
    ready, _, _ = select.select([report_r], [], [], ACK_TIMEOUT)
    return os.read(report_r, 1)[0] if ready else None


def test_every_signal_is_popped_once_in_order_and_none_is_lost() -> None:
    report_r, report_w = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(report_w)], pass_fds=(report_w,))
    os.close(report_w)
    try:
        assert _read_one(report_r) == ord("r")
        assert _read_one(report_r) == signal.SIGTTIN
        # One at a time, each acknowledged before the next: a lost signal shows as a
        # missing acknowledgement, whatever moment of the child's loop it hit.
        sent = [signal.SIGUSR1, signal.SIGHUP] * 150 + [signal.SIGTERM]
        seen = []
        for signum in sent:
            child.send_signal(signum)
            seen.append(_read_one(report_r))
        assert seen == sent
        assert child.wait(timeout=10) == 0
    finally:
        os.close(report_r)
        if child.poll() is None:
            child.kill()
            child.wait()
