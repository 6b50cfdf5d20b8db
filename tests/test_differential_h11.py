"""Differential tests against h11 (a test-only reference parser).

Random valid requests must give the app the same method, target, headers and body as h11
parses. Random near-valid requests (tests/nearvalid.py) check the framing property: any
request ruvicorn serves is framed exactly as h11 frames it (same method, target, header list,
body bytes, and the pipelined request after it starts where h11 says it does); ruvicorn may
refuse what h11 accepts (a 4xx, or 501, and a closed connection), never the other way round.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any

import h11
import pytest
from nearvalid import near_valid_request, reference, wire
from rawhttp import RawClient, Response, ResponseError
from realserver import ServerProcess

SEED = 20240611
COUNT = 150
TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"
VCHAR = "".join(chr(c) for c in range(0x21, 0x7F))
OBS_TEXT = "".join(chr(c) for c in range(0x80, 0x100))
RESERVED_NAMES = {
    "host",
    "content-length",
    "transfer-encoding",
    "expect",
    "connection",
    "upgrade",
    "te",
    "trailer",
}


@pytest.fixture(scope="module")
def diff_server(module_server_factory, loop: str) -> ServerProcess:
    return module_server_factory(
        "diff_app:app", "--lifespan", "off", "--no-proxy-headers", loop=loop
    )


def token(rng: random.Random, lo: int = 1, hi: int = 12) -> str:
    return "".join(rng.choice(TCHAR) for _ in range(rng.randint(lo, hi)))


def segment(rng: random.Random) -> str:
    out = []
    for _ in range(rng.randint(0, 10)):
        if rng.random() < 0.15:
            out.append("%" + format(rng.randrange(256), "02X"))
        else:
            out.append(rng.choice(PCHAR))
    return "".join(out)


def target(rng: random.Random) -> str:
    path = "/" + "/".join(segment(rng) for _ in range(rng.randint(0, 4)))
    if rng.random() < 0.5:
        query = "".join(rng.choice(PCHAR + "/?") for _ in range(rng.randint(1, 20)))
        path += "?" + query
    return path


def field_value(rng: random.Random) -> str:
    alphabet = VCHAR + (OBS_TEXT if rng.random() < 0.2 else "")
    words = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 15)))
        for _ in range(rng.randint(0, 4))
    ]
    value = "".join(w + rng.choice([" ", "\t", "  "]) for w in words).rstrip(" \t")
    ows = lambda: rng.choice(["", " ", "\t", " \t "])  # noqa: E731
    return ows() + value + ows()


def random_request(rng: random.Random) -> bytes:
    method = rng.choice(
        [
            "GET",
            "POST",
            "PUT",
            "DELETE",
            "PATCH",
            "OPTIONS",
            "PROPFIND",
            "MKCOL",
            token(rng).upper(),
        ]
    )
    version = "HTTP/1.1" if rng.random() < 0.9 else "HTTP/1.0"
    lines = [f"{method} {target(rng)} {version}"]
    headers = [("Host", rng.choice(["example.com", "a.b.c:8080", "[::1]:1", "x"]))]
    for _ in range(rng.randint(0, 10)):
        name = token(rng)
        if name.lower() not in RESERVED_NAMES:
            headers.append((name, field_value(rng)))
    rng.shuffle(headers)
    body = b""
    kind = (
        rng.choice(["none", "length", "chunked"])
        if version == "HTTP/1.1"
        else rng.choice(["none", "length"])
    )
    payload = rng.randbytes(rng.choice([0, 1, 17, 1000, 70000]))
    if kind == "length":
        headers.append(("Content-Length", str(len(payload))))
        body = payload
    elif kind == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        pieces, i = [], 0
        while i < len(payload):
            n = rng.randint(1, max(1, len(payload) // 3 + 1))
            piece = payload[i : i + n]
            ext = f";{token(rng)}={token(rng)}" if rng.random() < 0.2 else ""
            pieces.append(f"{len(piece):x}{ext}\r\n".encode() + piece + b"\r\n")
            i += n
        trailers = f"X-Trailer-{token(rng)}: {token(rng)}\r\n" if rng.random() < 0.2 else ""
        body = b"".join(pieces) + b"0\r\n" + trailers.encode() + b"\r\n"
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def h11_view(data: bytes) -> dict[str, Any]:
    framed = h11_frame(data)
    assert framed.view is not None, f"h11 did not parse a whole request: {data[:300]!r}"
    return framed.view


def test_random_valid_requests_match_h11(diff_server: ServerProcess) -> None:
    rng = random.Random(SEED)
    mismatches = []
    c = diff_server.client()  # replaced when an HTTP/1.0 request ends its connection
    try:
        for i in range(COUNT):
            data = random_request(rng)
            expected = h11_view(data)
            c.send(data)
            resp = c.read_response()
            assert resp.status == 200, (i, data[:300], resp.status)
            actual = app_view(resp)
            if actual != expected:
                diff = {k: (expected[k], actual[k]) for k in expected if expected[k] != actual[k]}
                mismatches.append((i, data[:500], diff))
            if expected["http_version"] == "1.0" and not resp.keeps_alive:
                c.close()
                c = diff_server.client()
    finally:
        c.close()
    assert not mismatches, f"{len(mismatches)} of {COUNT} differ; first: {mismatches[0]}"


def test_generator_is_valid_for_h11() -> None:
    rng = random.Random(SEED)
    for _ in range(COUNT):
        h11_view(random_request(rng))


# -- near-valid requests: the framing property

NEAR_VALID_SEED = 20261206
NEAR_VALID_COUNT = 300
#: What ruvicorn may answer a request it refuses with (always closing the connection).
REFUSALS = {400, 413, 414, 431, 501, 505}


@dataclass
class Framed:
    """How h11 frames the start of a byte stream: ``view`` is the first request as the app
    would see it (``None`` if h11 refuses it or needs more bytes), ``rest`` the bytes after
    its end, where the next request starts."""

    view: dict[str, Any] | None
    rest: bytes = b""
    refused: bool = False


def split_target(target: str) -> tuple[str, str, str | None]:
    """``(raw_path, query_string, authority)`` from a request-target: the first two as
    ASGI gives them, the authority of an absolute-form target (else None)."""
    lower = target.lower()
    authority = None
    for scheme in ("http://", "https://"):
        if lower.startswith(scheme):
            rest = target[len(scheme) :]
            cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
            authority, target = rest[:cut], rest[cut:]
            if not target.startswith("/"):
                target = "/" + target
    path, _, query = target.partition("?")
    return path, query, authority


def with_target_host(headers: list[list[str]], authority: str | None) -> list[list[str]]:
    """h11 reports the Host header as sent; an absolute-form target's authority replaces
    it for the app (RFC 9112 3.2.2)."""
    if authority is None:
        return headers
    return [[n, authority if n == "host" else v] for n, v in headers]


def h11_frame(data: bytes) -> Framed:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    request, body = None, bytearray()
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return Framed(None)  # NEED_DATA: the request is not complete
    except h11.RemoteProtocolError:
        return Framed(None, refused=True)
    assert request is not None
    path, query, authority = split_target(request.target.decode("latin-1"))
    headers = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in request.headers]
    view = {
        "method": request.method.decode(),
        # HTTP/1.2 and up are served as HTTP/1.1 (RFC 9110 6.2); h11 reports them as sent.
        "http_version": min(request.http_version.decode(), "1.1"),
        "raw_path": path,
        "query_string": query,
        "headers": with_target_host(headers, authority),
        "body": body.decode("latin-1"),
    }
    return Framed(view, rest=conn.trailing_data[0])


def app_view(resp: Response) -> dict[str, Any]:
    """The request as the diff app saw it; h11 lower-cases a Transfer-Encoding value (the
    app gets it as sent), so compare that one value without case."""
    view: dict[str, Any] = resp.json()
    view["headers"] = [
        [n, v.lower() if n == "transfer-encoding" else v] for n, v in view["headers"]
    ]
    return view


def read_or_none(c: RawClient) -> Response | None:
    """The next response, or None if the server closed without answering."""
    try:
        return c.read_response()
    except ResponseError:
        if c.eof:
            return None
        raise


def check_near_valid(server: ServerProcess, data: bytes, ref: bytes) -> str:
    """Send ``data`` on a new connection; return "served" or "refused", or raise with the
    difference from how h11 frames ``ref``."""
    expected = h11_frame(ref)
    with server.client() as c:
        c.send(data)
        if expected.view is None:
            # h11 refuses it or wants more: ruvicorn must not serve it. Half-close so that a
            # server waiting for more bytes answers (or closes) now.
            c.shutdown_write()
        first = read_or_none(c)
        if first is None:
            assert expected.view is None, f"closed without answering; h11 read {expected.view}"
            return "refused"
        if first.status != 200:
            assert first.status in REFUSALS, (first.status, first.reason)
            leftover = c.expect_closed()
            assert b"HTTP/1." not in leftover, f"answered after refusing: {leftover[:200]!r}"
            return "refused"
        got = app_view(first)
        assert expected.view is not None, (
            f"served what h11 {'refuses' if expected.refused else 'finds incomplete'}: {got}"
        )
        assert got == expected.view, {
            k: (expected.view[k], got[k]) for k in got if got[k] != expected.view[k]
        }
        # Where the next request starts: ruvicorn must serve exactly what h11 reads there.
        following = h11_frame(expected.rest)
        assert following.view is not None, f"h11 reads no request after it: {expected.rest!r}"
        second = read_or_none(c)
        assert second is not None and second.status == 200, (
            f"the pipelined request was not served: {second}"
        )
        assert app_view(second) == following.view, (app_view(second), following.view)
        return "served"


def test_near_valid_requests_are_framed_as_h11_frames_them(diff_server: ServerProcess) -> None:
    rng = random.Random(NEAR_VALID_SEED)
    outcomes = {"served": 0, "refused": 0}
    failures = []
    for i in range(NEAR_VALID_COUNT):
        parts = near_valid_request(rng, i)
        data, ref = wire(parts), reference(parts)
        try:
            outcomes[check_near_valid(diff_server, data, ref)] += 1
        except AssertionError as e:
            failures.append((i, data[:400], str(e)[:600]))
    assert not failures, f"{len(failures)} of {NEAR_VALID_COUNT} differ; first: {failures[0]}"
    # The generator must keep producing both kinds, or the property tests nothing.
    assert outcomes["served"] >= NEAR_VALID_COUNT // 5, outcomes
    assert outcomes["refused"] >= NEAR_VALID_COUNT // 5, outcomes
