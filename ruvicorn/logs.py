"""Logging for master and workers: one line per record, tagged with the writer's pid.

Every record is written with a single ``write`` on an unbuffered stream so lines from many
processes sharing stderr or a log file never interleave mid-line.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
from typing import IO

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}

error_log = logging.getLogger("ruvicorn.error")
access_log = logging.getLogger("ruvicorn.access")

_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
_DATEFMT = "%Y-%m-%d %H:%M:%S %z"


class AtomicLineHandler(logging.Handler):
    """Writes each formatted record, newline included, with one ``os.write``."""

    def __init__(self, path: str | None) -> None:
        super().__init__()
        self.path = path
        self._fd = -1
        self._stream: IO[str] | None = None
        self.reopen()

    def reopen(self) -> None:
        """Reopen the log file (after rotation); stderr needs nothing."""
        if self.path is None:
            self._fd = sys.stderr.fileno()
            return
        new_fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        old_fd, self._fd = self._fd, new_fd
        if old_fd > 2:
            os.close(old_fd)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        except Exception:
            self.handleError(record)


def configure(level: str, log_file: str | None = None) -> None:
    """Install ruvicorn's handler on its loggers (idempotent: replaces an earlier one)."""
    handler = AtomicLineHandler(log_file)
    handler.setFormatter(logging.Formatter(_FORMAT, _DATEFMT))
    for logger in (error_log, access_log):
        for old in list(logger.handlers):
            if isinstance(old, AtomicLineHandler):
                logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(LEVELS[level.lower()])
        logger.propagate = False


def reopen_files() -> None:
    """Reopen every log file ruvicorn writes (SIGUSR1)."""
    for logger in (error_log, access_log):
        for handler in logger.handlers:
            if isinstance(handler, AtomicLineHandler):
                handler.reopen()
    if faulthandler.is_enabled():
        enable_fault_tracebacks()


_fault_file: IO[str] | None = None


def enable_fault_tracebacks() -> None:
    """Send the tracebacks of a hung or crashing process where the logs go (SIGABRT from the
    master's heartbeat check writes them)."""
    global _fault_file
    path = next(
        (
            h.path
            for h in error_log.handlers
            if isinstance(h, AtomicLineHandler) and h.path is not None
        ),
        None,
    )
    old, _fault_file = _fault_file, open(path, "a") if path else None  # noqa: SIM115
    faulthandler.enable(file=_fault_file or sys.stderr, all_threads=True)
    if old is not None:
        old.close()


def one_line(exc: BaseException) -> str:
    """An exception as the one line a person reads: type and message, no traceback."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def plural(count: int, noun: str) -> str:
    """``1 worker``, ``2 workers``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
