"""Access records: the fields of one request, as data any logging formatter can use.

The native protocol calls :class:`AccessLogger` once per response with the request's
scope (a copy taken when the request started, so the app's changes to it do not show),
the status, the response body's size, the time taken and the app's response headers. The
headers are kept only when the format reads them (``%({name}o)s``, see
``AccessLogger.response_headers``); otherwise None is passed. The record's ``args`` is an
:class:`Atoms` mapping: the ``--access-log-format`` atoms (``h``, ``r``, ``s`` ...) and the
named fields (``method``, ``path``, ``status`` ...) the JSON format writes.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ruvicorn.logs import ACCESS_FIELDS, access_log

#: The line ruvicorn writes by default: ``127.0.0.1:51234 - "GET / HTTP/1.1" 200``.
DEFAULT_FORMAT = '%(client)s - "%(r)s" %(s)s'

#: The atoms of a gunicorn access log format this access record fills.
ATOMS = frozenset("hlutrmUqHsBbfaTDMLp")
_KEY = re.compile(r"%\(([^)]*)\)")


Headers = Sequence[tuple[bytes, bytes]]


def _header(headers: Headers | None, key: str) -> str:
    """The values of the header ``{name}i``/``{name}o`` names, joined; ``-`` when absent."""
    name = key[1:-2].lower().encode("latin-1", "replace")
    values = [bytes(v).decode("latin-1") for k, v in headers or () if bytes(k).lower() == name]
    return ",".join(values) if values else "-"


def _is_header_atom(key: str) -> bool:
    return key.startswith("{") and key[-2:] in ("}i", "}o")


class Atoms(dict[str, Any]):
    """The fields of one access record; ``{name}i`` and ``{name}o`` keys read request and
    response headers on demand."""

    __slots__ = ("_headers", "_response_headers")

    def __init__(
        self,
        fields: dict[str, Any],
        headers: Headers,
        response_headers: Headers | None = None,
    ) -> None:
        super().__init__(fields)
        self._headers = headers
        self._response_headers = response_headers

    def __missing__(self, key: str) -> str:
        if _is_header_atom(key):
            return _header(self._headers if key.endswith("i") else self._response_headers, key)
        raise KeyError(key)


def reads_response_headers(fmt: str) -> bool:
    """Whether a format has a ``%({name}o)s`` atom (only then are they kept per request)."""
    return any(_is_header_atom(key) and key.endswith("o") for key in _KEY.findall(fmt))


def format_problem(fmt: str) -> str | None:
    """What is wrong with an access log format (a key no access record has), if anything."""
    for key in _KEY.findall(fmt):
        if _is_header_atom(key):
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


def atoms(
    scope: Mapping[str, Any],
    status: int,
    size: int | None,
    seconds: float,
    response_headers: Headers | None = None,
) -> Atoms:
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
    return Atoms(fields, headers, response_headers)


class AccessLogger:
    """What the native protocol calls once per response (only when access logging is on).

    ``response_headers`` tells the native protocol to keep each response's headers for
    the record; False (the format reads none) keeps the hot path free of them."""

    __slots__ = ("fmt", "response_headers")

    def __init__(self, fmt: str | None) -> None:
        self.fmt = fmt or DEFAULT_FORMAT
        self.response_headers = reads_response_headers(self.fmt)

    def __call__(
        self,
        scope: Mapping[str, Any],
        status: int,
        size: int | None,
        seconds: float,
        response_headers: Headers | None,
    ) -> None:
        access_log.info(self.fmt, atoms(scope, status, size, seconds, response_headers))
