"""Access records: the fields of one request, as data any logging formatter can use.

The native protocol calls :class:`AccessLogger` once per response with the request's
scope (a copy taken when the request started, so the app's changes to it do not show),
the status, the response body's size and the time taken. The record's ``args`` is an
:class:`Atoms` mapping: the ``--access-log-format`` atoms (``h``, ``r``, ``s`` ...) and the
named fields (``method``, ``path``, ``status`` ...) the JSON format writes.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from ruvicorn.logs import ACCESS_FIELDS, access_log

#: The line ruvicorn writes by default: ``127.0.0.1:51234 - "GET / HTTP/1.1" 200``.
DEFAULT_FORMAT = '%(client)s - "%(r)s" %(s)s'

#: The atoms of a gunicorn access log format this access record fills.
ATOMS = frozenset("hlutrmUqHsBbfaTDMLp")
_KEY = re.compile(r"%\(([^)]*)\)")


class Atoms(dict[str, Any]):
    """The fields of one access record; ``{name}i`` keys read request headers on demand."""

    __slots__ = ("_headers",)

    def __init__(self, fields: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(fields)
        self._headers = headers

    def __missing__(self, key: str) -> str:
        if key.startswith("{") and key.endswith("}i"):
            name = key[1:-2].lower().encode("latin-1", "replace")
            values = [v.decode("latin-1") for k, v in self._headers if k.lower() == name]
            return ",".join(values) if values else "-"
        raise KeyError(key)


def format_problem(fmt: str) -> str | None:
    """What is wrong with an access log format (a key no access record has), if anything."""
    for key in _KEY.findall(fmt):
        if key.startswith("{") and key.endswith("}o"):
            return f"response headers (%({key})s) are not available to the access log"
        if key.startswith("{") and key.endswith("}i"):
            continue
        if key not in ATOMS and key not in ACCESS_FIELDS:
            return f"unknown atom %({key})s"
    try:
        fmt % Atoms(dict.fromkeys((*ATOMS, *ACCESS_FIELDS), 0), [])
    except (ValueError, TypeError) as exc:
        return f"not a %-format: {exc}"
    return None


def _user(authorization: str) -> str:
    """The user name of Basic credentials, else ``-``."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic":
        return "-"
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return "-"
    return decoded.partition(":")[0] or "-"


def atoms(scope: Mapping[str, Any], status: int, size: int | None, seconds: float) -> Atoms:
    """Every field of the access record of one response."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
    wanted: dict[bytes, str] = {}
    for name, value in headers:
        if name in (b"user-agent", b"referer", b"x-request-id", b"authorization"):
            wanted.setdefault(name, value.decode("latin-1"))
    client = scope.get("client")
    host = str(client[0]) if client else "-"
    method = scope.get("method", "GET")
    path = scope.get("path", "")
    raw = scope.get("raw_path")
    query = scope.get("query_string", b"").decode("latin-1")
    target = raw.decode("latin-1") if raw else path
    if query:
        target = f"{target}?{query}"
    protocol = f"HTTP/{scope.get('http_version', '1.1')}"
    micros = int(seconds * 1_000_000)
    fields: dict[str, Any] = {
        "h": host,
        "l": "-",
        "u": _user(wanted[b"authorization"]) if b"authorization" in wanted else "-",
        "t": time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
        "r": f"{method} {target} {protocol}",
        "m": method,
        "U": path,
        "q": query,
        "H": protocol,
        "s": status,
        "B": size if size is not None else "-",
        "b": size if size else "-",
        "f": wanted.get(b"referer", "-"),
        "a": wanted.get(b"user-agent", "-"),
        "T": int(seconds),
        "D": micros,
        "M": micros // 1000,
        "L": f"{seconds:.6f}",
        "p": f"<{os.getpid()}>",
        "method": method,
        "path": path,
        "query": query,
        "status": status,
        "bytes": size,
        "duration_ms": round(seconds * 1000, 3),
        "client": f"{host}:{client[1]}" if client and client[1] is not None else host,
        "user_agent": wanted.get(b"user-agent"),
        "request_id": wanted.get(b"x-request-id"),
    }
    return Atoms(fields, headers)


class AccessLogger:
    """What the native protocol calls once per response (only when access logging is on)."""

    __slots__ = ("fmt",)

    def __init__(self, fmt: str | None) -> None:
        self.fmt = fmt or DEFAULT_FORMAT

    def __call__(
        self, scope: Mapping[str, Any], status: int, size: int | None, seconds: float
    ) -> None:
        access_log.info(self.fmt, atoms(scope, status, size, seconds))
