"""RFC 9113 §5.1 (stream states and identifiers), §5.1.2 (concurrency), §5.3 (priority: the
scheme is deprecated but its fields are still parsed), §6.9 with §5.2 (flow control)."""

from __future__ import annotations

import pytest
from h2client import (
    ErrorCodes,
    F,
    H2Conn,
    T,
    Target,
    block,
    continuation,
    data,
    raw,
    request,
    rst,
)
from hyperframe.frame import (
    DataFrame,
    HeadersFrame,
    PriorityFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

MAX_WINDOW = 2**31 - 1

# -- §5.1 idle: only HEADERS and PRIORITY may open or touch an idle stream


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(data(1, b"x"), id="data"),
        pytest.param(rst(1), id="rst-stream"),
        pytest.param(WindowUpdateFrame(1, 100), id="window-update"),
        pytest.param(raw(T.CONTINUATION, F.END_HEADERS, 1, block(request())), id="continuation"),
    ],
)
def test_frame_on_idle_stream(conn: H2Conn, frame: object) -> None:
    conn.send(frame)  # type: ignore[arg-type]
    conn.expect_goaway(ErrorCodes.PROTOCOL_ERROR)


def test_priority_on_idle_stream_then_lower_stream_opens(conn: H2Conn) -> None:
    conn.send(PriorityFrame(5, depends_on=0, stream_weight=16))
    assert conn.get(3).status == 200


# -- §5.1 half-closed (remote) and closed: more frames are STREAM_CLOSED


def _half_closed(conn: H2Conn) -> None:
    """Stream 1 ended by the client, its response held back by the server."""
    conn.send(conn.headers(1, request("/slow?seconds=0.5")))


def _reset(conn: H2Conn) -> None:
    conn.send(conn.headers(1, request("/slow?seconds=0.5")), rst(1))


def _finished(conn: H2Conn) -> None:
    assert conn.get(1).status == 200


TRAILER = block([("x-trailer", "1")])


LATE_FRAMES = {
    "data": data(1, b"late"),
    "headers": HeadersFrame(1, TRAILER, flags=["END_STREAM", "END_HEADERS"]),
}


@pytest.mark.parametrize(
    ("frame", "state"),
    [
        pytest.param(frame, state, id=f"{name}-{state.__name__}")
        for name, frame in LATE_FRAMES.items()
        for state in (_half_closed, _reset, _finished)
    ],
)
def test_frame_on_stream_the_client_ended(conn: H2Conn, state: object, frame: object) -> None:
    state(conn)  # type: ignore[operator]
    conn.send(frame)  # type: ignore[arg-type]
    conn.expect_stream_error(1, ErrorCodes.STREAM_CLOSED)


@pytest.mark.parametrize("state", [_half_closed, _finished], ids=lambda f: f.__name__)
def test_continuation_on_stream_the_client_ended(conn: H2Conn, state: object) -> None:
    """No field block is open (§6.10: connection PROTOCOL_ERROR) on a stream the client
    ended (§5.1: STREAM_CLOSED); either rule may be applied."""
    state(conn)  # type: ignore[operator]
    conn.send(continuation(1, TRAILER))
    conn.expect_stream_error(1, ErrorCodes.PROTOCOL_ERROR, ErrorCodes.STREAM_CLOSED)


def test_priority_on_closed_stream_is_allowed(conn: H2Conn) -> None:
    _finished(conn)
    conn.send(PriorityFrame(1, depends_on=0, stream_weight=16))
    conn.expect_alive()


# -- §5.1.1 stream identifiers


def test_even_stream_id_from_client(conn: H2Conn) -> None:
    conn.send(conn.headers(2))
    conn.expect_goaway(ErrorCodes.PROTOCOL_ERROR)


def test_stream_id_lower_than_a_used_one(conn: H2Conn) -> None:
    assert conn.get(5).status == 200
    conn.send(conn.headers(3))
    conn.expect_goaway(ErrorCodes.PROTOCOL_ERROR)


# -- §5.1.2 stream concurrency


def test_streams_beyond_max_concurrent_streams(conn: H2Conn) -> None:
    """The stream past the advertised limit is refused (PROTOCOL_ERROR or REFUSED_STREAM)."""
    limit = conn.server_settings.get(SettingsFrame.MAX_CONCURRENT_STREAMS)
    if limit is None or limit > 1000:
        pytest.skip(f"server advertises no usable SETTINGS_MAX_CONCURRENT_STREAMS ({limit})")
    post = request("/echo", "POST")
    conn.send(*(conn.headers(1 + 2 * i, post, end_stream=False) for i in range(limit + 1)))
    conn.expect_stream_error(1 + 2 * limit, ErrorCodes.REFUSED_STREAM, ErrorCodes.PROTOCOL_ERROR)


# -- §5.3.1 stream dependencies: a stream cannot depend on itself


def test_headers_depending_on_itself(conn: H2Conn) -> None:
    frame = HeadersFrame(1, block(request()), flags=["END_STREAM", "END_HEADERS", "PRIORITY"])
    frame.depends_on, frame.stream_weight = 1, 16
    conn.send(frame)
    conn.expect_stream_error(1, ErrorCodes.PROTOCOL_ERROR)


def test_priority_depending_on_itself(conn: H2Conn) -> None:
    conn.send(PriorityFrame(1, depends_on=1, stream_weight=16))
    conn.expect_stream_error(1, ErrorCodes.PROTOCOL_ERROR)


# -- §6.9 / §5.2 flow control


@pytest.mark.parametrize("stream_id", [0, 1], ids=["connection", "stream"])
def test_window_update_of_zero(conn: H2Conn, stream_id: int) -> None:
    if stream_id:
        conn.send(conn.headers(1, request("/echo", "POST"), end_stream=False))
    conn.send(raw(T.WINDOW_UPDATE, 0, stream_id, b"\0\0\0\0"))
    if stream_id:
        conn.expect_stream_error(1, ErrorCodes.PROTOCOL_ERROR)
    else:
        conn.expect_goaway(ErrorCodes.PROTOCOL_ERROR)


@pytest.mark.parametrize("stream_id", [0, 1], ids=["connection", "stream"])
def test_window_update_overflowing_the_window(conn: H2Conn, stream_id: int) -> None:
    if stream_id:
        conn.send(conn.headers(1, request("/echo", "POST"), end_stream=False))
    conn.send(WindowUpdateFrame(stream_id, MAX_WINDOW), WindowUpdateFrame(stream_id, MAX_WINDOW))
    if stream_id:
        conn.expect_stream_error(1, ErrorCodes.FLOW_CONTROL_ERROR)
    else:
        conn.expect_goaway(ErrorCodes.FLOW_CONTROL_ERROR)


def test_server_respects_a_tiny_initial_window(h2server: Target) -> None:
    """With SETTINGS_INITIAL_WINDOW_SIZE 1 the server sends one byte per window update."""
    with h2server.connect({SettingsFrame.INITIAL_WINDOW_SIZE: 1}) as c:
        body = b"abc"
        c.send(c.headers(1, request("/echo", "POST"), end_stream=False), data(1, body))
        resp = c.response(1, window_updates=True)
        assert resp.body == body
        assert max(resp.data_frames) <= 1, resp.data_frames


def test_initial_window_reduced_below_what_was_sent(h2server: Target) -> None:
    """§6.9.2: a SETTINGS change can make a stream window negative; the server then waits until
    WINDOW_UPDATEs bring it above zero: window 5, 5 bytes sent, window set to 3 (-2), +3 -> 1."""
    window = SettingsFrame.INITIAL_WINDOW_SIZE
    with h2server.connect({window: 5}) as c:
        c.send(c.headers(1, request("/echo", "POST"), end_stream=False), data(1, b"0123456789"))
        received = 0
        for frame in c.frames():
            if isinstance(frame, DataFrame) and frame.stream_id == 1:
                received += len(frame.data)
                if received >= 5:
                    break
        assert received == 5
        c.send(SettingsFrame(0, {window: 3}), WindowUpdateFrame(1, 3))
        for frame in c.frames():
            if isinstance(frame, DataFrame) and frame.stream_id == 1:
                assert len(frame.data) == 1, c.seen
                return
        raise AssertionError(f"no DATA after the window reopened; saw {c.seen}")
