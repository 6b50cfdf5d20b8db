"""Black-box defences (issue 12): each attack is bounded in frames and seconds; the attacker's
connection must be stopped (GOAWAY ENHANCE_YOUR_CALM or closed; a header-size attack may
instead be refused per request) while an ordinary second client keeps being served."""

from __future__ import annotations

import time

import pytest
from h2client import (
    ErrorCodes,
    F,
    H2Conn,
    T,
    Target,
    block,
    integer,
    raw,
    request,
    rst,
)
from hyperframe.frame import GoAwayFrame, RstStreamFrame

FLOOD_SECONDS = 10.0
BATCH = 1000
STOPPED = {"closed", f"GOAWAY {ErrorCodes.ENHANCE_YOUR_CALM.name}"}


def drain(conn: H2Conn, wait: float, answers: bool = False) -> str | None:
    """What the server did to the attacker so far: a GOAWAY, closed, or None (still open);
    with ``answers``, also a reset or a complete response on stream 1."""
    conn.sock.settimeout(wait)
    while True:
        try:
            frame = conn.read_frame()
        except TimeoutError:
            return None
        except OSError:
            return "closed"
        if frame is None:
            return "closed"
        if isinstance(frame, GoAwayFrame):
            return f"GOAWAY {ErrorCodes(frame.error_code).name}"
        if answers and isinstance(frame, RstStreamFrame) and frame.stream_id == 1:
            return f"RST_STREAM {ErrorCodes(frame.error_code).name}"
        if answers and frame.stream_id == 1 and "END_STREAM" in frame.flags:
            return f"response {conn.decoded.get(1)}"


def flood(conn: H2Conn, batch: bytes, batches: int, answers: bool = False) -> str:
    """Send ``batch`` up to ``batches`` times while reading; a server that stops reading ends
    the sending (it is not overwhelmed), and its reaction is then awaited until the bound."""
    deadline = time.monotonic() + FLOOD_SECONDS
    sent = 0
    while time.monotonic() < deadline:
        if sent < batches:
            conn.sock.settimeout(1.0)
            try:
                conn.sock.sendall(batch)
                sent += 1
            except TimeoutError:
                sent = batches
            except OSError:
                return "closed"
        wait = 0.001 if sent < batches else max(0.01, deadline - time.monotonic())
        outcome = drain(conn, wait, answers)
        if outcome:
            return outcome
    return f"still open after {sent} batches of {len(batch)} bytes"


def assert_ordinary_client_served(target: Target) -> None:
    with target.connect() as ordinary:
        resp = ordinary.get(1)
        assert (resp.status, resp.body) == (200, b"ok"), f"ordinary client got {resp}"


FLOODS = {
    "ping": (b"", raw(T.PING, 0, 0, b"pingpong") * BATCH),
    "settings": (b"", raw(T.SETTINGS, 0, 0) * BATCH),
    "empty-data": (
        raw(T.HEADERS, F.END_HEADERS, 1, block(request("/echo", "POST"))),
        raw(T.DATA, 0, 1) * BATCH,
    ),
}


@pytest.mark.parametrize("case", list(FLOODS))
def test_frame_flood(h2server: Target, case: str) -> None:
    opening, batch = FLOODS[case]
    with h2server.connect() as attacker:
        if opening:
            attacker.send(opening)
        outcome = flood(attacker, batch, 200)
        assert_ordinary_client_served(h2server)
    assert outcome in STOPPED, outcome


def test_rapid_reset(h2server: Target) -> None:
    """CVE-2023-44487: streams opened and reset at once, their app tasks still running."""
    slow = block(request("/slow?seconds=5"))

    def pairs(first: int) -> bytes:
        return b"".join(
            raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, sid, slow) + rst(sid).serialize()
            for sid in range(first, first + 200, 2)
        )

    with h2server.connect() as attacker:
        batches = b"".join(pairs(1 + 200 * i) for i in range(100))  # 10 000 streams
        outcome = flood(attacker, batches, 1)
        assert_ordinary_client_served(h2server)
    assert outcome in STOPPED, outcome


def _hpack_bomb() -> bytes:
    """One 4 KB entry put in the dynamic table, then referenced 12 000 times: 48 MB decoded."""
    value = b"b" * 4000
    entry = b"\x40\x06x-bomb" + integer(len(value), 7) + value  # literal, incremental indexing
    return raw(
        T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, block(request()) + entry + b"\xbe" * 12000
    )


def _oversized_header_list() -> bytes:
    """1 MiB of distinct fields over HEADERS and 64 CONTINUATION frames."""
    frames = [raw(T.HEADERS, F.END_STREAM, 1, block(request()))]
    for i in range(64):
        piece = block([(f"x-big-{i}", "v" * 16000)])
        frames.append(raw(T.CONTINUATION, F.END_HEADERS * (i == 63), 1, piece))
    return b"".join(frames)


#: (frames sent once, frames sent up to 200 times): field sections too large to accept.
HEADER_ATTACKS = {
    "hpack-bomb": (b"", _hpack_bomb()),
    "oversized-header-list": (b"", _oversized_header_list()),
    "continuation-flood": (
        raw(T.HEADERS, F.END_STREAM, 1, block(request())),
        raw(T.CONTINUATION, 0, 1, block([("x-c", "c" * 100)])) * 100,
    ),
}


@pytest.mark.parametrize("case", list(HEADER_ATTACKS))
def test_header_size_attack(h2server: Target, case: str) -> None:
    """Refused and never served: a 431, a RST_STREAM, or the connection stopped; RFC 9113
    §10.5.1 lets the connection error carry any code."""
    opening, batch = HEADER_ATTACKS[case]
    with h2server.connect() as attacker:
        attacker.send(opening)
        outcome = flood(attacker, batch, 1 if not opening else 200, answers=True)
        assert_ordinary_client_served(h2server)
    refused = ("RST_STREAM", "response [(':status', '431')", "GOAWAY")
    assert outcome == "closed" or outcome.startswith(refused), outcome
    assert outcome != "GOAWAY NO_ERROR", outcome


def test_requests_per_connection_are_capped(h2server: Target) -> None:
    """One connection cannot be used forever: the server ends it with GOAWAY within 10 000
    requests (sent in batches of 50 streams)."""
    get = block(request())
    with h2server.connect() as client:
        deadline, sid, goaway = time.monotonic() + 30.0, 1, None
        while goaway is None and sid < 20000 and time.monotonic() < deadline:
            client.send(
                b"".join(
                    raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, s, get)
                    for s in range(sid, sid + 100, 2)
                )
            )
            sid += 100
            for frame in client.frames():
                if isinstance(frame, GoAwayFrame):
                    goaway = frame
                    break
                last = frame.stream_id == sid - 2
                if last and ("END_STREAM" in frame.flags or isinstance(frame, RstStreamFrame)):
                    break
        assert_ordinary_client_served(h2server)
    assert goaway is not None, f"no GOAWAY after {sid // 2} requests"
    assert goaway.error_code in (ErrorCodes.NO_ERROR, ErrorCodes.ENHANCE_YOUR_CALM), goaway
