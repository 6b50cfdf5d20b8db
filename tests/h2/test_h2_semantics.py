"""RFC 9113 §8: HTTP semantics. A malformed request (§8.1.1) is a stream error of type
PROTOCOL_ERROR and never reaches the app; well-formed variants are served."""

from __future__ import annotations

import pytest
from h2client import ErrorCodes, F, H2Conn, T, block, data, raw

BASE = [(":method", "GET"), (":scheme", "http"), (":path", "/ok"), (":authority", "localhost")]


def without(name: str) -> list[tuple[str, str]]:
    return [(n, v) for n, v in BASE if n != name]


def twice(name: str) -> list[tuple[str, str]]:
    return BASE + [(n, v) for n, v in BASE if n == name]


MALFORMED = {
    "missing-method": without(":method"),
    "missing-scheme": without(":scheme"),
    "missing-path": without(":path"),
    "duplicate-method": twice(":method"),
    "duplicate-scheme": twice(":scheme"),
    "duplicate-path": twice(":path"),
    "empty-path": [*without(":path"), (":path", "")],
    "unknown-pseudo-header": [*BASE, (":foo", "bar")],
    "response-pseudo-header": [*BASE, (":status", "200")],
    "pseudo-header-after-regular": [*BASE[:2], ("x-a", "1"), *BASE[2:]],
    "uppercase-field-name": [*BASE, ("X-Upper", "1")],
    "connection": [*BASE, ("connection", "keep-alive")],
    "keep-alive": [*BASE, ("keep-alive", "timeout=5")],
    "proxy-connection": [*BASE, ("proxy-connection", "keep-alive")],
    "transfer-encoding": [*BASE, ("transfer-encoding", "chunked")],
    "upgrade": [*BASE, ("upgrade", "websocket")],
    "te-other-than-trailers": [*BASE, ("te", "gzip")],
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_request_headers(conn: H2Conn, case: str) -> None:
    conn.send(raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, block(MALFORMED[case])))
    conn.expect_stream_error(1, ErrorCodes.PROTOCOL_ERROR)


WELL_FORMED = {
    "te-trailers": [*BASE, ("te", "trailers")],
    "host-instead-of-authority": [*without(":authority"), ("host", "localhost")],
    "split-cookies": [*BASE, ("cookie", "a=1"), ("cookie", "b=2")],
    "options-asterisk": [(":method", "OPTIONS"), (":scheme", "http"), (":path", "*"), BASE[3]],
}


@pytest.mark.parametrize("case", list(WELL_FORMED))
def test_well_formed_request_headers(conn: H2Conn, case: str) -> None:
    conn.send(raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, block(WELL_FORMED[case])))
    assert conn.response(1).status < 500


POST = [(":method", "POST"), (":scheme", "http"), (":path", "/echo"), (":authority", "x")]


@pytest.mark.parametrize(
    ("length", "chunks"),
    [
        pytest.param(4, [b"ab"], id="fewer-bytes"),
        pytest.param(1, [b"abc"], id="more-bytes"),
        pytest.param(3, [b"ab", b"cd"], id="more-bytes-over-two-frames"),
        pytest.param(2, [], id="no-data"),
    ],
)
def test_content_length_mismatch(conn: H2Conn, length: int, chunks: list[bytes]) -> None:
    """§8.1.1: DATA lengths must sum to content-length."""
    head = block([*POST, ("content-length", str(length))])
    conn.send(raw(T.HEADERS, F.END_HEADERS | F.END_STREAM * (not chunks), 1, head))
    conn.send(*(data(1, c, end_stream=i == len(chunks) - 1) for i, c in enumerate(chunks)))
    conn.expect_stream_error(1, ErrorCodes.PROTOCOL_ERROR)


def test_content_length_matching_the_data(conn: H2Conn) -> None:
    conn.send(raw(T.HEADERS, F.END_HEADERS, 1, block([*POST, ("content-length", "4")])))
    conn.send(data(1, b"ab", end_stream=False), data(1, b"cd"))
    assert conn.response(1).body == b"abcd"


# -- trailers


def _post_with_body(conn: H2Conn) -> None:
    conn.send(raw(T.HEADERS, F.END_HEADERS, 1, block(POST)), data(1, b"body", end_stream=False))


def test_trailers_are_accepted(conn: H2Conn) -> None:
    _post_with_body(conn)
    conn.send(raw(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, block([("x-checksum", "1")])))
    assert conn.response(1).body == b"body"


@pytest.mark.parametrize(
    ("fields", "flags"),
    [
        pytest.param(
            [(":path", "/x")],
            F.END_HEADERS | F.END_STREAM,
            id="pseudo-header-in-trailers",
        ),
        pytest.param([("x-checksum", "1")], F.END_HEADERS, id="trailers-without-end-stream"),
    ],
)
def test_malformed_trailers(conn: H2Conn, fields: list[tuple[str, str]], flags: int) -> None:
    _post_with_body(conn)
    conn.send(raw(T.HEADERS, flags, 1, block(fields)))
    conn.expect_stream_error(1, ErrorCodes.PROTOCOL_ERROR)


def test_malformed_request_leaves_the_connection_usable(conn: H2Conn) -> None:
    """A stream error is confined to its stream when the server does not escalate it."""
    conn.send(raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, block(MALFORMED["missing-path"])))
    conn.expect_stream_error(1, ErrorCodes.PROTOCOL_ERROR)
    if "GoAwayFrame" not in "".join(conn.seen):
        assert conn.get(3).status == 200
