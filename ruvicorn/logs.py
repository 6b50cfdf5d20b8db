"""Logging for master and workers: one line per record, tagged with the writer's pid.

Every record is written with a single ``write`` on an unbuffered stream so lines from many
processes sharing stderr or a log file never interleave mid-line. ``--log-format json``
makes each line one JSON object, a traceback included, so a collector never has to stitch
lines together.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

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

#: The named fields of an access record (see ``ruvicorn.access``), in the order the JSON
#: format writes them.
ACCESS_FIELDS = (
    "method",
    "path",
    "query",
    "protocol",
    "status",
    "bytes",
    "duration_ms",
    "client",
    "user_agent",
    "request_id",
)


#: Level names as a terminal shows them with --use-colors.
_COLORED_LEVELS = {
    level: f"\x1b[{code}m{logging.getLevelName(level)}\x1b[0m"
    for level, code in (
        (TRACE, "34"),
        (logging.DEBUG, "36"),
        (logging.INFO, "32"),
        (logging.WARNING, "33"),
        (logging.ERROR, "31"),
        (logging.CRITICAL, "91"),
    )
}


class SecondClock:
    """A time formatted to the second, formatted once per second: a busy access log
    writes thousands of lines that share it."""

    __slots__ = ("_key", "_text")

    def __init__(self) -> None:
        self._key: tuple[int, str, Any] | None = None
        self._text = ""

    def text(
        self, created: float, datefmt: str, converter: Callable[[float | None], time.struct_time]
    ) -> str:
        key = (int(created), datefmt, converter)
        if key != self._key:
            self._text = time.strftime(datefmt, converter(created))
            self._key = key
        return self._text


class TextFormatter(logging.Formatter):
    """The text line (a %-style format); its timestamp (no fraction of a second) comes
    from a SecondClock. A record without a traceback or stack takes a short path, as
    every access record does."""

    def __init__(
        self, fmt: str | None = None, datefmt: str | None = None, *, colors: bool = False
    ) -> None:
        super().__init__(fmt, datefmt)
        self._clock = SecondClock()
        self._uses_time = self.usesTime()
        self._colors = colors

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = record.getMessage()
        if self._uses_time:
            record.asctime = self.formatTime(record, self.datefmt)
        if self._colors:
            return self.formatMessage(record)
        return self._style._fmt % record.__dict__

    def formatMessage(self, record: logging.LogRecord) -> str:
        if not self._colors:
            return super().formatMessage(record)
        # A copy: other handlers of the same record must not see the escape codes.
        level = _COLORED_LEVELS.get(record.levelno, record.levelname)
        return self._style._fmt % {**record.__dict__, "levelname": level}

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if not datefmt:
            return super().formatTime(record, datefmt)
        return self._clock.text(record.created, datefmt, self.converter)


class IsoClock:
    """ISO 8601 local times with milliseconds (``2026-01-02T03:04:05.678+01:00``): the
    date, time of day and offset formatted once per second, the milliseconds per call."""

    __slots__ = ("_fromtimestamp", "_offset", "_second", "_start")

    def __init__(self) -> None:
        # Imported with the first clock, not with this module: only --log-format json needs
        # datetime, and a module the master imports is forked into every worker. Not later
        # either: a worker may run as a --user that cannot read the interpreter's files.
        from datetime import datetime

        self._fromtimestamp = datetime.fromtimestamp
        self._second: int | None = None
        self._start = self._offset = ""

    def text(self, created: float) -> str:
        # Rounded to the microsecond as datetime.fromtimestamp rounds (half to even).
        second = int(created)
        micros = round((created - second) * 1_000_000)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        if second != self._second:
            whole = self._fromtimestamp(second).astimezone().isoformat(timespec="seconds")
            self._start, self._offset, self._second = whole[:19], whole[19:], second
        return f"{self._start}.{micros // 1000:03d}{self._offset}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record. A traceback is a field of its record, and an access
    record's fields are top-level keys, so a collector indexes them without parsing."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = IsoClock()
        # Imported with the first JSON formatter, not with this module (see IsoClock).
        import json

        self._dumps = json.dumps

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "time": self._clock.text(record.created),
            "level": record.levelname,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if isinstance(record.args, Mapping):
            for name in ACCESS_FIELDS:
                value = record.args.get(name)
                if value is not None:
                    obj[name] = value
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        return self._dumps(obj, ensure_ascii=False, default=str)


class AtomicLineHandler(logging.Handler):
    """Writes each formatted record, newline included, with one ``os.write``.

    ``path`` None is stderr, ``-`` stdout.
    """

    def __init__(self, path: str | None) -> None:
        super().__init__()
        self.path = path
        self._fd = -1
        self._stream: IO[str] | None = None
        self.reopen()

    def reopen(self) -> None:
        """Reopen the log file (after rotation); stderr and stdout need nothing."""
        if self.path is None or self.path == "-":
            self._fd = (sys.stderr if self.path is None else sys.stdout).fileno()
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


def configure(
    level: str,
    log_file: str | None = None,
    *,
    log_format: str = "text",
    access_file: str | None = None,
    colors: bool = False,
) -> None:
    """Install ruvicorn's handlers on its loggers (idempotent: replaces earlier ones).

    Access records go to ``access_file`` when given (``-`` is stdout), else where the
    other records go.
    """
    formatter: logging.Formatter = (
        JsonFormatter() if log_format == "json" else TextFormatter(_FORMAT, _DATEFMT, colors=colors)
    )
    handler = AtomicLineHandler(log_file)
    handler.setFormatter(formatter)
    access_handler = handler
    if access_file is not None:
        access_handler = AtomicLineHandler(access_file)
        access_handler.setFormatter(formatter)
    for logger, new in ((error_log, handler), (access_log, access_handler)):
        for old in list(logger.handlers):
            if isinstance(old, AtomicLineHandler):
                logger.removeHandler(old)
        logger.addHandler(new)
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
            if isinstance(h, AtomicLineHandler) and h.path not in (None, "-")
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
