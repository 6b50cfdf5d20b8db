"""Access records: the fields of one request, as data any logging formatter can use.

The native protocol calls :class:`AccessLogger` once per response with the request's
scope (a copy taken when the request started, so the app's changes to it do not show),
the status, the response body's size, the time taken and the app's response headers. The
headers are kept only when the format reads them (``%({name}o)s``, see
``AccessLogger.response_headers``); otherwise None is passed. The record's ``args`` is an
:class:`Atoms` mapping: the ``--access-log-format`` atoms (``h``, ``r``, ``s`` ...) and the
named fields (``method``, ``path``, ``status`` ...) the JSON format writes.

This runs once per request, so it does only what the line needs: a field is computed the
first time a formatter reads it, the record is built without walking the caller's stack,
and the pid and the timestamp of the current second are kept rather than asked for again.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import threading
import time
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, Sequence, ValuesView
from typing import Any

from ruvicorn.logs import SecondClock, access_log

#: The line ruvicorn writes by default: ``127.0.0.1:51234 - "GET / HTTP/1.1" 200``.
DEFAULT_FORMAT = '%(client)s - "%(r)s" %(s)s'

_KEY = re.compile(r"%\(([^)]*)\)")

Headers = Sequence[tuple[bytes, bytes]]

#: The request headers some field reads; found in one pass over the headers.
_WANTED = (b"user-agent", b"referer", b"x-request-id", b"authorization")


def _header(headers: Headers | None, key: str) -> str:
    """The values of the header ``{name}i``/``{name}o`` names, joined; ``-`` when absent."""
    name = key[1:-2].lower().encode("latin-1", "replace")
    values = [bytes(v).decode("latin-1") for k, v in headers or () if bytes(k).lower() == name]
    return ",".join(values) if values else "-"


def _is_header_atom(key: str) -> bool:
    return key.startswith("{") and key[-2:] in ("}i", "}o")


def _user(authorization: str | None) -> str:
    """The user name of Basic credentials, else ``-``."""
    if authorization is None:
        return "-"
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic":
        return "-"
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return "-"
    return decoded.partition(":")[0] or "-"


_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def process_id() -> int:
    """This process's pid, asked of the kernel once per process (again after a fork)."""
    return _pid


_clock = SecondClock()

#: When logging was imported, which a record's ``relativeCreated`` counts from.
_started: float = logging._startTime  # type: ignore[attr-defined]


class Atoms(dict[str, Any]):
    """The fields of one access record, each computed on first read and kept.

    It is a ``dict`` so a formatter can treat it as one: reading a key, ``get``, ``in``,
    iterating or copying it see every field (iteration computes the rest first).
    ``{name}i`` and ``{name}o`` keys read request and response headers on demand."""

    __slots__ = ("_wanted", "created", "response_headers", "scope", "seconds", "size", "status")

    def __init__(
        self,
        scope: Mapping[str, Any],
        status: int,
        size: int | None,
        seconds: float,
        response_headers: Headers | None = None,
    ) -> None:
        self.scope = scope
        self.status = self["s"] = self["status"] = status
        self.size = size
        self.seconds = seconds
        self.created = time.time()
        self.response_headers = response_headers
        self._wanted: dict[bytes, str] | None = None

    def header(self, name: bytes) -> str | None:
        """The first value of one of the request headers in ``_WANTED``."""
        wanted = self._wanted
        if wanted is None:
            wanted = self._wanted = {}
            for key, value in self.scope.get("headers") or ():
                if key in _WANTED:
                    wanted.setdefault(key, value.decode("latin-1"))
        return wanted.get(name)

    def __missing__(self, key: str) -> Any:
        compute = _FIELDS.get(key)
        if compute is not None:
            value = self[key] = compute(self)
            return value
        if isinstance(key, str) and _is_header_atom(key):
            headers = self.scope.get("headers") if key.endswith("i") else self.response_headers
            return _header(headers, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return key in _FIELDS or dict.__contains__(self, key)

    def __bool__(self) -> bool:
        return True

    def complete(self) -> Atoms:
        """Compute every field not read yet."""
        for key, compute in _FIELDS.items():
            if not dict.__contains__(self, key):
                self[key] = compute(self)
        return self

    def __iter__(self) -> Iterator[str]:
        return dict.__iter__(self.complete())

    def __len__(self) -> int:
        return dict.__len__(self.complete())

    def keys(self) -> KeysView[str]:  # type: ignore[override]
        return dict.keys(self.complete())

    def values(self) -> ValuesView[Any]:  # type: ignore[override]
        return dict.values(self.complete())

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]
        return dict.items(self.complete())

    def copy(self) -> dict[str, Any]:
        return dict(self.complete())

    def __eq__(self, other: object) -> bool:
        return dict.__eq__(self.complete(), other)

    __hash__ = None

    def __repr__(self) -> str:
        return dict.__repr__(self.complete())


def _client(a: Atoms) -> str:
    client = a.scope.get("client")
    host = str(client[0]) if client else "-"
    return f"{host}:{client[1]}" if client and client[1] is not None else host


def _request_line(a: Atoms) -> str:
    scope = a.scope
    raw = scope.get("raw_path")
    target = raw.decode("latin-1") if raw else scope.get("path", "")
    query = scope.get("query_string")
    if query:
        target = f"{target}?{query.decode('latin-1')}"
    return f"{scope.get('method', 'GET')} {target} HTTP/{scope.get('http_version', '1.1')}"


def _micros(a: Atoms) -> int:
    return int(a.seconds * 1_000_000)


#: How each field is computed from the response: the gunicorn atoms, then the named fields.
_FIELDS: dict[str, Callable[[Atoms], Any]] = {
    "h": lambda a: str(a.scope["client"][0]) if a.scope.get("client") else "-",
    "l": lambda a: "-",
    "u": lambda a: _user(a.header(b"authorization")),
    "t": lambda a: _clock.text(a.created, "[%d/%b/%Y:%H:%M:%S %z]", time.localtime),
    "r": _request_line,
    "m": lambda a: a.scope.get("method", "GET"),
    "U": lambda a: a.scope.get("path", ""),
    "q": lambda a: a.scope.get("query_string", b"").decode("latin-1"),
    "H": lambda a: f"HTTP/{a.scope.get('http_version', '1.1')}",
    "s": lambda a: a.status,
    "B": lambda a: a.size if a.size is not None else "-",
    "b": lambda a: a.size if a.size else "-",
    "f": lambda a: a.header(b"referer") or "-",
    "a": lambda a: a.header(b"user-agent") or "-",
    "T": lambda a: int(a.seconds),
    "D": _micros,
    "M": lambda a: _micros(a) // 1000,
    "L": lambda a: f"{a.seconds:.6f}",
    "p": lambda a: f"<{process_id()}>",
    "method": lambda a: a["m"],
    "path": lambda a: a["U"],
    "query": lambda a: a["q"],
    "protocol": lambda a: a["H"],
    "status": lambda a: a.status,
    "bytes": lambda a: a.size,
    "duration_ms": lambda a: round(a.seconds * 1000, 3),
    "client": _client,
    "user_agent": lambda a: a.header(b"user-agent"),
    "request_id": lambda a: a.header(b"x-request-id"),
}

#: The atoms of a gunicorn access log format this access record fills.
ATOMS = frozenset("hlutrmUqHsBbfaTDMLp")


def reads_response_headers(fmt: str) -> bool:
    """Whether a format has a ``%({name}o)s`` atom (only then are they kept per request)."""
    return any(_is_header_atom(key) and key.endswith("o") for key in _KEY.findall(fmt))


def format_problem(fmt: str) -> str | None:
    """What is wrong with an access log format (a key no access record has), if anything."""
    for key in _KEY.findall(fmt):
        if _is_header_atom(key):
            continue
        if key not in _FIELDS:
            return f"unknown atom %({key})s"
    try:
        fmt % (dict.fromkeys(_KEY.findall(fmt), "-") | dict.fromkeys(_FIELDS, 0))
    except (ValueError, TypeError) as exc:
        return f"not a %-format: {exc}"
    return None


def atoms(
    scope: Mapping[str, Any],
    status: int,
    size: int | None,
    seconds: float,
    response_headers: Headers | None = None,
) -> Atoms:
    """The fields of the access record of one response."""
    return Atoms(scope, status, size, seconds, response_headers)


class _RecordMaker:
    """Builds access records as ``Logger.makeRecord`` would, minus its per-record cost.

    The fields that do not change within a process and thread (the logger's name, the
    pid, the process and thread names ...) are prepared once (again after a fork or on
    another thread) and copied into each record. A record factory installed with
    ``logging.setLogRecordFactory`` is honoured: records then come from ``makeRecord``."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.owner: tuple[int, int] | None = None
        self.fixed: dict[str, Any] = {}

    def _prepare(self, owner: tuple[int, int]) -> dict[str, Any]:
        sample = self.logger.makeRecord(
            self.logger.name, logging.INFO, __file__, 0, "", (), None, "__call__"
        )
        fixed = dict(sample.__dict__)
        for name in ("msg", "args", "created", "msecs", "relativeCreated"):
            fixed.pop(name, None)
        self.fixed, self.owner = fixed, owner
        return fixed

    def __call__(self, fmt: str, args: Atoms) -> logging.LogRecord:
        if logging.getLogRecordFactory() is not logging.LogRecord:
            return self.logger.makeRecord(
                self.logger.name, logging.INFO, __file__, 0, fmt, args, None, "__call__"
            )
        owner = (_pid, threading.get_ident())
        fixed = self.fixed if owner == self.owner else self._prepare(owner)
        record = logging.LogRecord.__new__(logging.LogRecord)
        fields = record.__dict__
        fields.update(fixed)
        created = args.created
        fields["msg"] = fmt
        fields["args"] = args
        fields["created"] = created
        fields["msecs"] = int((created - int(created)) * 1000) + 0.0
        fields["relativeCreated"] = (created - _started) * 1000
        return record


class AccessLogger:
    """What the native protocol calls once per response (only when access logging is on).

    ``response_headers`` tells the native protocol to keep each response's headers for
    the record; False (the format reads none) keeps the hot path free of them."""

    __slots__ = ("_make", "fmt", "response_headers")

    def __init__(self, fmt: str | None) -> None:
        self.fmt = fmt or DEFAULT_FORMAT
        self.response_headers = reads_response_headers(self.fmt)
        self._make = _RecordMaker(access_log)

    def __call__(
        self,
        scope: Mapping[str, Any],
        status: int,
        size: int | None,
        seconds: float,
        response_headers: Headers | None,
    ) -> None:
        if access_log.isEnabledFor(logging.INFO):
            record = self._make(self.fmt, Atoms(scope, status, size, seconds, response_headers))
            if access_log.filters or access_log.disabled:
                access_log.handle(record)
            else:  # what handle() does when it has nothing to filter
                access_log.callHandlers(record)
