"""RFC 9113 §3.4 (connection preface), §4 (frame format, frame size, field section
compression), §5.4-§5.5 (error handling, extensions)."""

from __future__ import annotations

import pytest
from h2client import (
    PREFACE,
    ErrorCodes,
    F,
    H2Conn,
    T,
    Target,
    block,
    data,
    raw,
    request,
)
from hyperframe.frame import PingFrame, SettingsFrame

# -- §3.4 connection preface


def test_preface_is_answered_with_settings(h2server: Target) -> None:
    with h2server.connect() as c:
        assert c.get(1).status == 200


def test_preface_followed_by_a_frame_other_than_settings(h2server: Target) -> None:
    """The client preface's first frame must be SETTINGS (§3.4): PROTOCOL_ERROR."""
    with H2Conn(h2server.host, h2server.port) as c:
        c.send(PREFACE, PingFrame(0, b"12345678"))
        c.expect_goaway(ErrorCodes.PROTOCOL_ERROR)


def test_mangled_preface_gets_no_http2_service(h2server: Target) -> None:
    """A preface that goes wrong after ``PRI * HTTP/2.0`` is not HTTP/2: the server ends the
    connection (with a GOAWAY or an HTTP/1.1 error, it may not know which) and serves nothing."""
    with H2Conn(h2server.host, h2server.port) as c:
        c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", SettingsFrame(0), c.headers(1))
        received = c.read_all()
        assert raw(T.DATA, F.END_STREAM, 1, b"ok") not in received, received[:200]


# -- §4.1 frame format: unknown types, unknown flags and the reserved bit are ignored


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(raw(0x20, 0, 0, b"extension"), id="unknown-type"),
        pytest.param(raw(0x20, 0, 1, b"on-idle-stream"), id="unknown-type-on-a-stream"),
        pytest.param(raw(T.PING, 0x16, 0, b"alive!!!"), id="undefined-flags"),
        pytest.param(raw(T.PING, 0, 0x80000000, b"alive!!!"), id="reserved-bit"),
    ],
)
def test_ignored_frame_parts(conn: H2Conn, frame: bytes) -> None:
    conn.send(frame)
    conn.expect_alive()
    assert conn.get(1).status == 200


def test_reserved_bit_in_stream_id_of_headers(conn: H2Conn) -> None:
    conn.send(raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, 0x80000001, block(request())))
    assert conn.response(1).status == 200


# -- §4.2 frame size


def test_data_of_the_default_max_frame_size(conn: H2Conn) -> None:
    body = b"x" * 16384
    conn.send(conn.headers(1, request("/echo", "POST"), end_stream=False), data(1, body))
    resp = conn.response(1, window_updates=True)
    assert (resp.status, resp.body) == (200, body)


def test_data_above_max_frame_size(conn: H2Conn) -> None:
    """FRAME_SIZE_ERROR; a stream error for DATA (§4.2), the connection may go too."""
    limit = conn.server_settings.get(SettingsFrame.MAX_FRAME_SIZE, 16384)
    conn.send(conn.headers(1, request("/echo", "POST"), end_stream=False))
    conn.send(raw(T.DATA, F.END_STREAM, 1, b"x" * (limit + 1)))
    conn.expect_stream_error(1, ErrorCodes.FRAME_SIZE_ERROR)


def test_headers_above_max_frame_size(conn: H2Conn) -> None:
    """A frame that alters connection state (a field block) must be a connection error."""
    limit = conn.server_settings.get(SettingsFrame.MAX_FRAME_SIZE, 16384)
    payload = block(request(extra=[("x-big", "a" * (limit + 16))]))
    conn.send(raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, payload))
    conn.expect_goaway(ErrorCodes.FRAME_SIZE_ERROR)


# -- §4.3 field section compression and decompression


def test_invalid_field_block_fragment(conn: H2Conn) -> None:
    """Index 0 in an indexed field is undecodable: COMPRESSION_ERROR for the connection."""
    conn.send(raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, b"\x80"))
    conn.expect_goaway(ErrorCodes.COMPRESSION_ERROR)


@pytest.mark.parametrize(
    "interloper",
    [
        pytest.param(raw(T.PRIORITY, 0, 1, b"\0\0\0\0\x10"), id="priority"),
        pytest.param(
            raw(T.HEADERS, F.END_HEADERS | F.END_STREAM, 3, block(request())), id="headers"
        ),
        pytest.param(raw(T.DATA, 0, 1, b"x"), id="data"),
        pytest.param(raw(0x20, 0, 0, b"extension"), id="extension"),  # §5.5
    ],
)
def test_frame_inside_a_field_block(conn: H2Conn, interloper: bytes) -> None:
    """A field block is contiguous: any other frame before its end is PROTOCOL_ERROR."""
    head = block(request())
    conn.send(raw(T.HEADERS, F.END_STREAM, 1, head[:3]), interloper)
    conn.expect_goaway(ErrorCodes.PROTOCOL_ERROR)


# -- §5.4.1 connection error handling


def test_connection_error_sends_goaway_then_closes(conn: H2Conn) -> None:
    conn.send(raw(T.PING, 0, 0, b"short"))
    goaway = conn.expect_goaway(ErrorCodes.FRAME_SIZE_ERROR)
    assert goaway.last_stream_id == 0
    for frame in conn.frames():
        assert not isinstance(frame, PingFrame), f"still answering after GOAWAY: {conn.seen}"
