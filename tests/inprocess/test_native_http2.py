"""HTTP/2 in the native protocol, in-process: the python ``h2`` library as the client.

Each stream is one ASGI HTTP cycle; these cases check the mapping (scope, response,
trailers, HEAD), flow control driven by the app's ``receive()``, resets and many
streams on one connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h2.errors
import h2.events
import hyperframe.frame
import pytest
from h2peer import H2Client, server_frames
from length_apps import disconnect_listener_app, mismatched_length_app
from mockconn import MockConnection, Runner
from tlspeer import Certs, tls_connection


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_scope_maps_pseudo_headers_authority_and_cookies(run: Runner) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await hello(scope, receive, send)

    async def scenario() -> None:
        client = H2Client(MockConnection(app))
        stream = client.request(
            "/p%20q?x=1", extra=[(b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"b=2")]
        )
        status, headers, body, _ = await client.response(stream)
        assert (status, body) == (200, b"hello")
        assert (b"x-a", b"1") in headers
        assert (b"server", b"ruvicorn") in headers
        scope = seen[0]
        assert scope["http_version"] == "2"
        assert scope["method"] == "GET"
        assert scope["path"] == "/p q"
        assert scope["query_string"] == b"x=1"
        assert scope["headers"][0] == (b"host", b"example.test")
        assert (b"cookie", b"a=1; b=2") in scope["headers"]
        assert not any(name.startswith(b":") for name, _ in scope["headers"])
        assert "http.response.trailers" in scope["extensions"]

    run(scenario)


def test_request_body_larger_than_the_window_is_echoed(run: Runner) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB: four times the initial window

    async def scenario() -> None:
        client = H2Client(MockConnection(echo))
        stream = client.request("/", "POST", payload)
        status, _, body, _ = await client.response(stream)
        assert status == 200
        assert body == payload

    run(scenario)


def test_window_opens_only_as_the_app_reads(run: Runner) -> None:
    release = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await release.wait()
        await echo(scope, receive, send)

    async def scenario() -> None:
        mock = MockConnection(app)
        client = H2Client(mock)
        stream = client.request("/", "POST", b"x" * 200_000)
        await mock.idle(50)
        client.pump()
        client.push()
        # The app has read nothing: the client is stuck at the initial window.
        assert client.conn.local_flow_control_window(stream) == 0
        assert stream in client.pending
        release.set()
        status, _, body, _ = await client.response(stream)
        assert (status, len(body)) == (200, 200_000)

    run(scenario)


def test_head_and_204_carry_no_data(run: Runner) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        status = 204 if scope["path"] == "/empty" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ignored"})

    async def scenario() -> None:
        client = H2Client(MockConnection(app))
        head = client.request("/", "HEAD")
        empty = client.request("/empty")
        assert (await client.response(head))[::2] == (200, b"")
        assert (await client.response(empty))[::2] == (204, b"")

    run(scenario)


def test_response_trailers(run: Runner) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"data"})
        await send({"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")]})

    async def scenario() -> None:
        client = H2Client(MockConnection(app))
        stream = client.request()
        status, _, body, trailers = await client.response(stream)
        assert (status, body) == (200, b"data")
        assert trailers == [(b"grpc-status", b"0")]

    run(scenario)


def test_connection_specific_response_fields_are_dropped(run: Runner) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"connection", b"close"), (b"keep-alive", b"5"), (b"x-ok", b"1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> None:
        client = H2Client(MockConnection(app))
        _, headers, _, _ = await client.response(client.request())
        names = [name for name, _ in headers]
        assert b"x-ok" in names
        assert b"connection" not in names and b"keep-alive" not in names

    run(scenario)


@pytest.mark.parametrize("body", [b"toolong", b"ab"])
def test_a_body_not_matching_its_content_length_is_reset(run: Runner, body: bytes) -> None:
    """Never past the declared length and never ended as complete: RST_STREAM; a body
    too long makes the app's send() raise, as on HTTP/1.1."""
    raised: list[Exception] = []
    app = mismatched_length_app(body, raised)

    async def scenario() -> None:
        client = H2Client(MockConnection(app))
        stream = client.request()
        await client.mock.until(lambda: (client.pump(), client.finished(stream))[1], "the end")
        resets = [e for e in client.events if isinstance(e, h2.events.StreamReset)]
        assert [e.error_code for e in resets] == [h2.errors.ErrorCodes.INTERNAL_ERROR]
        assert not any(isinstance(e, h2.events.StreamEnded) for e in client.events)
        data = [e.data for e in client.events if isinstance(e, h2.events.DataReceived)]
        assert len(b"".join(data)) <= 4
        assert len(raised) == (len(body) > 4)

    run(scenario)


@pytest.mark.parametrize("body", [b"abcd", b"ab", b"toolong"], ids=["whole", "short", "long"])
def test_a_waiting_receive_gets_the_disconnect_once_the_response_is_done(
    run: Runner, body: bytes
) -> None:
    """As on HTTP/1.1: once the response is complete (or cut for not matching its
    content-length), a receive() left waiting is answered, though the client's own body
    is still open."""
    got: list[str] = []

    async def scenario() -> None:
        client = H2Client(MockConnection(disconnect_listener_app(body, got)))
        client.request(open_body=True)
        await client.mock.until(lambda: (client.pump(), got)[1], "the disconnect")
        assert got == ["disconnect"]

    run(scenario)


def recording_hello(called: list[str]) -> Any:
    """``hello`` that notes each request's method, to tell whether the app was called."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        called.append(scope["method"])
        await hello(scope, receive, send)

    return app


@pytest.mark.parametrize("end", [True, False], ids=["ended", "tunnel-bytes-open"])
def test_connect_is_answered_501_without_the_app(run: Runner, end: bool) -> None:
    """ruvicorn opens no tunnels: an app answering 200 would tell the client one opened."""
    called: list[str] = []
    app = recording_hello(called)

    async def scenario() -> None:
        client = H2Client(MockConnection(app))
        stream = client.conn.get_next_available_stream_id()
        fields = [(b":method", b"CONNECT"), (b":authority", b"example.test:443")]
        client.conn.send_headers(stream, fields, end_stream=end)
        client.flush()
        status, _, body, _ = await client.response(stream)
        assert (status, body) == (501, b"")
        assert called == []

    run(scenario)


@pytest.mark.parametrize("second", [b"other.test", b"example.test"], ids=["differing", "same"])
def test_two_hosts_without_authority_are_malformed(run: Runner, second: bytes) -> None:
    """Without :authority the host field names the request's authority: a second one,
    whatever its value, is refused as HTTP/1.1 refuses a second Host (RFC 9110 7.2). A
    malformed request (RFC 9113 8.1.1): RST_STREAM PROTOCOL_ERROR, the app never called,
    the connection kept."""
    called: list[str] = []
    app = recording_hello(called)

    async def scenario() -> None:
        client = H2Client(MockConnection(app))
        stream = client.conn.get_next_available_stream_id()
        fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")]
        fields += [(b"host", b"example.test"), (b"host", second)]
        client.conn.config.validate_outbound_headers = False
        client.conn.send_headers(stream, fields, end_stream=True)
        client.flush()
        await client.mock.until(lambda: (client.pump(), client.finished(stream))[1], "the reset")
        resets = [e.error_code for e in client.events if isinstance(e, h2.events.StreamReset)]
        assert resets == [h2.errors.ErrorCodes.PROTOCOL_ERROR]
        assert called == []
        status, _, body, _ = await client.response(client.request())
        assert (status, body, called) == (200, b"hello", ["GET"])

    run(scenario)


def test_a_connection_error_is_logged_once(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        mock = MockConnection(hello)
        H2Client(mock)
        mock.send(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")  # DATA on stream 0
        await mock.until(lambda: mock.transport.closed, "the close after GOAWAY")

    with caplog.at_level(logging.DEBUG, logger="ruvicorn.error"):
        run(scenario)
    lines = [r for r in caplog.records if "Protocol error from" in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.WARNING], caplog.text
    assert "HTTP/2 PROTOCOL_ERROR" in lines[0].getMessage()


def test_a_response_head_refused_by_http2_is_logged(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"te", b"gzip")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x"})

    async def scenario() -> None:
        client = H2Client(MockConnection(app))
        status, _, _, _ = await client.response(client.request())
        assert status == 500

    with caplog.at_level(logging.ERROR, logger="ruvicorn.error"):
        run(scenario)
    assert "te other than 'trailers'" in caplog.text


def test_client_reset_cancels_the_app(run: Runner) -> None:
    """A reset while the app awaits receive(): its Task is cancelled there."""
    messages: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        messages.append(await receive())
        try:
            messages.append(await receive())
        except asyncio.CancelledError:
            messages.append({"type": "cancelled"})
            raise

    async def scenario() -> None:
        mock = MockConnection(app)
        client = H2Client(mock)
        stream = client.request("/", "POST", open_body=True)
        client.conn.send_data(stream, b"part")  # and the body never ends
        client.flush()
        await mock.until(lambda: len(messages) == 1, "the first body part")
        client.conn.reset_stream(stream)
        client.flush()
        await mock.until(lambda: len(messages) == 2, "the cancellation")
        assert messages[0] == {"type": "http.request", "body": b"part", "more_body": True}
        assert messages[1] == {"type": "cancelled"}

    run(scenario)


def test_app_without_response_gets_500(run: Runner) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return None

    async def scenario() -> None:
        client = H2Client(MockConnection(app))
        status, _, _, _ = await client.response(client.request())
        assert status == 500

    run(scenario)


def test_a_hundred_concurrent_streams(run: Runner) -> None:
    gate = asyncio.Event()
    running = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal running
        running += 1
        await gate.wait()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async def scenario() -> None:
        mock = MockConnection(app)
        client = H2Client(mock)
        streams = [client.request(f"/{i}") for i in range(100)]
        await mock.until(lambda: running == 100, "100 apps running at once")
        gate.set()
        for i, stream in enumerate(streams):
            assert (await client.response(stream))[2] == f"/{i}".encode()

    run(scenario)


def test_graceful_drain_sends_goaway_and_finishes_in_flight(run: Runner) -> None:
    gate = asyncio.Event()
    done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await gate.wait()
        await hello(scope, receive, send)
        done.set()

    async def scenario() -> None:
        mock = MockConnection(app)
        client = H2Client(mock)
        stream = client.request()
        await mock.idle(10)
        mock.state.drain()
        await mock.idle(10)
        goaways = [f for f in server_frames(mock.transport.written) if f.type == 0x7]
        assert goaways, "GOAWAY on drain"
        # The in-flight stream still completes; then the final GOAWAY names it.
        ping = next(f for f in server_frames(mock.transport.written) if f.type == 0x6)
        mock.send(
            hyperframe.frame.PingFrame(0, flags=["ACK"], opaque_data=ping.opaque_data).serialize()
        )
        gate.set()
        await asyncio.wait_for(done.wait(), 5)
        await mock.idle(10)
        frames = server_frames(mock.transport.written)
        data = [f for f in frames if f.type == 0x0 and f.stream_id == stream]
        assert b"".join(f.data for f in data) == b"hello"
        assert "END_STREAM" in data[-1].flags
        assert [f for f in frames if f.type == 0x7][-1].last_stream_id == stream

    run(scenario)


def test_idle_connection_gets_goaway_from_the_sweep(run: Runner) -> None:
    async def scenario() -> None:
        mock = MockConnection(hello, timeout_keep_alive=0.05)
        client = H2Client(mock)
        assert (await client.response(client.request()))[::2] == (200, b"hello")
        await asyncio.sleep(0.1)
        mock.state.sweep()
        await mock.until(lambda: mock.transport.closed, "the close")
        goaway = [f for f in server_frames(mock.transport.written) if f.type == 0x7]
        assert goaway and goaway[-1].error_code == 0 and goaway[-1].last_stream_id == 1

    run(scenario)


@pytest.mark.parametrize("http", ["1", "h11"])
def test_http1_only_does_not_speak_http2(run: Runner, http: str) -> None:
    async def scenario() -> None:
        mock = MockConnection(hello, http=http)
        H2Client(mock)
        await mock.until(lambda: mock.transport.closed, "the connection closing")
        # The preface's request-line `PRI * HTTP/2.0` names another major version.
        assert mock.transport.written.startswith(b"HTTP/1.1 505")

    run(scenario)


def test_first_bytes_arriving_one_by_one_choose_right(run: Runner) -> None:
    async def scenario() -> None:
        http1 = MockConnection(echo)
        for byte in b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi":
            http1.send(bytes([byte]))
        (response,) = await http1.responses(1)
        assert (response.status, response.body) == (200, b"hi")
        mock = MockConnection(hello)

        def byte_by_byte(data: bytes) -> None:
            for i in range(len(data)):
                mock.send(data[i : i + 1])

        client = H2Client(mock, send=byte_by_byte)
        assert (await client.response(client.request()))[::2] == (200, b"hello")

    run(scenario)


def test_http1_still_served_in_auto(run: Runner) -> None:
    async def scenario() -> None:
        mock = MockConnection(hello)
        mock.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        (response,) = await mock.responses(1)
        assert (response.status, response.body) == (200, b"hello")

    run(scenario)


@pytest.mark.parametrize(("http", "alpn"), [("auto", "h2"), ("2", "h2"), ("1", "http/1.1")])
def test_alpn_over_tls(run: Runner, certs: Certs, http: str, alpn: str) -> None:
    async def scenario() -> None:
        peer = tls_connection(hello, certs, http=http)
        assert peer.tls.selected_alpn_protocol() == alpn
        if alpn != "h2":
            return
        client = H2Client(peer.conn, peer.send, peer.read)
        status, _, body, _ = await client.response(client.request())
        assert (status, body) == (200, b"hello")

    run(scenario)


class AccessLines(logging.Handler):
    """Keeps each access log line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_answers_of_the_server_are_logged(run: Runner) -> None:
    """A stream answered by ruvicorn rather than the app gets its access line with that
    status: 500 for an app that returned without a response, 503 over
    ``--limit-concurrency``, 408 for a stalled body."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/stall":
            while (await receive())["type"] != "http.disconnect":
                pass

    logger = logging.getLogger("ruvicorn.access")
    handler, level = AccessLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    async def scenario() -> None:
        mock = MockConnection(app, timeout_request_body=0.05, limit_concurrency=1)
        client = H2Client(mock)
        status, _, _, _ = await client.response(client.request("/none"))
        assert status == 500
        await mock.until(lambda: not mock.state.running, "the app's end")
        stalled = client.request("/stall", "POST", open_body=True)
        await mock.until(lambda: mock.state.running, "the app's start")
        status, _, _, _ = await client.response(client.request("/busy"))
        assert status == 503
        await asyncio.sleep(0.1)
        mock.state.sweep()
        status, _, body, _ = await client.response(stalled)
        assert (status, body) == (408, b"")
        await mock.until(lambda: len(handler.lines) == 3, "three access lines")

    try:
        run(scenario)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    suffixes = [line.split(" - ", 1)[1] for line in handler.lines]
    assert suffixes == [
        '"GET /none HTTP/2" 500',
        '"GET /busy HTTP/2" 503',
        '"POST /stall HTTP/2" 408',
    ]
