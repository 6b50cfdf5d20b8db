"""Differential test: random valid requests, parsed by h11 (test-only reference) and by the
server, must give the app the same method, target, headers and body."""

from __future__ import annotations

import random
import string
from typing import Any

import h11
import pytest
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
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    request, body = None, bytearray()
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
        else:
            raise AssertionError(f"h11 did not parse a whole request: {event!r}")
    assert request is not None
    return {
        "method": request.method.decode(),
        "http_version": request.http_version.decode(),
        "target": request.target.decode("latin-1"),
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in request.headers],
        "body": body.decode("latin-1"),
    }


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
            got = resp.json()
            target = got["raw_path"] + ("?" + got["query_string"] if got["query_string"] else "")
            actual = {
                "method": got["method"],
                "http_version": got["http_version"],
                "target": target,
                "headers": got["headers"],
                "body": got["body"],
            }
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
