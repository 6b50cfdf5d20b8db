"""``--timeout-send``: a response whose client reads nothing ends its connection.

The clock runs while the transport has paused writing (``pause_writing()`` without a
``resume_writing()`` since); once it has run for the timeout the worker's sweep aborts the
connection. The sweep is called by hand here (``conn.state.sweep()``) after sleeping past
a short timeout, so each case takes a fraction of a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from h2peer import H2Client
from mockconn import MockConnection, MockTransport, PausingTransport, Runner
from tlspeer import Certs, TlsPeer

#: The timeout of these tests, and a sleep safely past it.
TIMEOUT = 0.05
PAST = TIMEOUT * 2

LINE = "Send timed out to 127.0.0.1: the client read nothing for 0.05 s (--timeout-send)"
GET = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class UndrainedTransport(PausingTransport):
    """Pauses writing at its first write and never drains: its ``close()`` reports no
    loss, as a socket transport's does not while its buffer waits for a reader."""

    def close(self) -> None:
        self.closed = True


def beside_hello(app: Any, serves: Callable[[dict[str, Any]], bool]) -> Any:
    """An app that hands the scopes `serves` picks to `app` and answers the others with a
    plain 200: a second connection of the same worker shows it is not held up."""

    async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if serves(scope):
            await app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})

    return hello


class StreamApp:
    """Starts a response and sends three parts of it, then its end, unless a send
    raises; records each part's outcome (``sent`` for a send that returned, ``refused``
    for one that raised), then what ``receive()`` says."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.received: list[str] = []
        self.finished = False
        self.error: BaseException | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(3):
                try:
                    await send({"type": "http.response.body", "body": b"part", "more_body": True})
                except OSError:
                    self.outcomes.append("refused")
                    break
                self.outcomes.append("sent")
            else:
                await send({"type": "http.response.body", "body": b""})
            message = await asyncio.wait_for(receive(), 5)
            self.received.append(message["type"])
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.finished = True


async def sweep_past(conn: MockConnection) -> None:
    await asyncio.sleep(PAST)
    conn.state.sweep()
    await conn.idle()


async def cut_after_the_timeout(conn: MockConnection, app: Any) -> None:
    """`app`'s send() waits for the paused transport; a sweep before the timeout leaves the
    connection be, one after it aborts it: that send() returns and the next is refused."""
    await conn.idle()
    assert app.outcomes == [], "send() did not wait for the paused transport"
    # Not yet: the timeout has not passed.
    conn.state.sweep()
    await conn.idle()
    assert not conn.transport.closed
    await sweep_past(conn)
    await conn.until(lambda: app.finished, "the app's end")
    assert conn.transport.closed and conn.transport.aborted
    assert app.outcomes == ["sent", "refused"]


def test_a_client_that_reads_nothing_is_aborted(run: Runner, error_lines: list[str]) -> None:
    """The send() waiting for the drain is released, the next raises, receive() says
    http.disconnect; the connection is aborted (close() would wait for the reader)."""
    app = StreamApp()

    async def scenario() -> None:
        conn = MockConnection(app, transport=UndrainedTransport, timeout_send=TIMEOUT)
        conn.send(GET)
        await conn.until(lambda: b"part" in conn.transport.written, "the first part")
        await cut_after_the_timeout(conn, app)
        assert app.received == ["http.disconnect"]
        assert app.error is None, app.error

    run(scenario)
    assert error_lines == [LINE]


def test_a_response_complete_but_unread_is_aborted(run: Runner, error_lines: list[str]) -> None:
    """A connection closing after its last response waits in close() for a reader that
    never comes: the timeout aborts it too."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"connection", b"close")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"all"})

    async def scenario() -> None:
        conn = MockConnection(app, transport=UndrainedTransport, timeout_send=TIMEOUT)
        conn.send(GET)
        await conn.until(lambda: conn.transport.closed, "the close after the response")
        assert not conn.transport.aborted
        await sweep_past(conn)
        assert conn.transport.aborted

    run(scenario)
    assert error_lines == [LINE]


def test_a_client_that_reads_in_time_is_not_cut(run: Runner, error_lines: list[str]) -> None:
    """Each resume stops the clock; the next pause starts it afresh, so a slow reader
    paused many times, each shorter than the timeout, is never cut."""

    class Transport(PausingTransport):
        pause_again = True

    app = StreamApp()

    async def scenario() -> None:
        conn = MockConnection(app, transport=Transport, timeout_send=TIMEOUT)
        conn.send(GET)
        # A pause at each of the four writes, each shorter than the timeout, more than
        # twice the timeout in all.
        for _ in range(4):
            await conn.until(lambda: not conn.transport.armed, "a pause")
            await asyncio.sleep(TIMEOUT * 0.6)
            conn.state.sweep()
            assert isinstance(conn.transport, PausingTransport)
            conn.transport.resume()
            await conn.idle()
        await conn.until(lambda: app.finished, "the app's end")
        assert app.outcomes == ["sent"] * 3
        [resp] = await conn.responses(1)
        assert (resp.status, resp.body) == (200, b"part" * 3)
        assert not conn.transport.closed

    run(scenario)
    assert error_lines == []


def test_zero_turns_the_timeout_off(run: Runner, error_lines: list[str]) -> None:
    app = StreamApp()

    async def scenario() -> None:
        conn = MockConnection(app, transport=UndrainedTransport, timeout_send=0)
        conn.send(GET)
        await conn.until(lambda: b"part" in conn.transport.written, "the first part")
        await sweep_past(conn)
        assert not conn.transport.closed
        assert app.outcomes == []

    run(scenario)
    # (The app, still waiting when the test ends, is cancelled: only that is logged.)
    assert not [line for line in error_lines if "--timeout-send" in line]


def test_another_connection_carries_on(run: Runner, error_lines: list[str]) -> None:
    app = StreamApp()

    hello = beside_hello(app, lambda scope: scope["path"] == "/stream")

    async def scenario() -> None:
        stuck = MockConnection(hello, transport=UndrainedTransport, timeout_send=TIMEOUT)
        other = MockConnection(hello, transport=MockTransport, state=stuck.state)
        stuck.send(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        await stuck.until(lambda: b"part" in stuck.transport.written, "the first part")
        other.send(GET)
        await other.responses(1)
        await sweep_past(stuck)
        assert stuck.transport.aborted
        other.send(GET)
        [_, resp] = await other.responses(2)
        assert (resp.status, resp.body) == (200, b"hello")
        assert not other.transport.closed

    run(scenario)
    assert error_lines == [LINE]


def test_h2_a_client_that_reads_nothing_is_aborted(run: Runner, error_lines: list[str]) -> None:
    """The pause is the connection's: on HTTP/2 the whole connection is aborted, and
    the stream's waiting send() is released as after a disconnect."""
    app = StreamApp()

    async def scenario() -> None:
        mock = MockConnection(app, transport=UndrainedTransport, timeout_send=TIMEOUT)
        client = H2Client(mock)
        client.request("/stream")
        await mock.until(lambda: app.outcomes or b"part" in mock.transport.written, "a part")
        await mock.idle()
        assert app.outcomes == [], "send() did not wait for the paused transport"
        await sweep_past(mock)
        await mock.until(lambda: app.finished, "the app's end")
        assert mock.transport.closed and mock.transport.aborted
        assert app.outcomes in (["refused"], ["sent", "refused"])
        assert app.received == ["http.disconnect"]
        assert app.error is None, app.error

    run(scenario)
    assert error_lines == [LINE]


class WsApp:
    """Accepts the WebSocket and sends three messages, unless a send raises; records each
    send's outcome as ``StreamApp`` does, then what ``receive()`` says (type and code)."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.received: list[tuple[str, object]] = []
        self.finished = False
        self.error: BaseException | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            for _ in range(3):
                try:
                    await send({"type": "websocket.send", "bytes": b"part"})
                except OSError:
                    self.outcomes.append("refused")
                    break
                self.outcomes.append("sent")
            message = await asyncio.wait_for(receive(), 5)
            self.received.append((message["type"], message.get("code")))
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.finished = True


def test_websocket_a_client_that_reads_nothing_is_aborted(
    run: Runner, error_lines: list[str]
) -> None:
    """The 101 pauses the transport; the first message's send() waits for the drain. The
    timeout aborts the connection: that send() is released, the next raises, and
    ``receive()`` says websocket.disconnect with 1006 (no close frame was exchanged).
    Another connection of the worker carries on."""
    app = WsApp()

    hello = beside_hello(app, lambda scope: scope["type"] == "websocket")

    async def scenario() -> None:
        conn = MockConnection(hello, transport=UndrainedTransport, timeout_send=TIMEOUT)
        other = MockConnection(hello, transport=MockTransport, state=conn.state)
        conn.send(UPGRADE)
        await conn.until(lambda: b"part" in conn.transport.written, "the first message")
        assert conn.transport.written.startswith(b"HTTP/1.1 101")
        await cut_after_the_timeout(conn, app)
        assert app.received == [("websocket.disconnect", 1006)]
        assert app.error is None, app.error
        other.send(GET)
        [resp] = await other.responses(1)
        assert (resp.status, resp.body) == (200, b"hello")
        assert not other.transport.closed

    run(scenario)
    assert error_lines == [LINE]


def test_tls_a_client_that_reads_nothing_is_aborted(
    run: Runner, certs: Certs, error_lines: list[str]
) -> None:
    """Over TLS the pause starts once the handshake is done (at the response's first
    record). The abort writes no close_notify: the client must not read the cut as a
    clean end of the data."""
    app = StreamApp()

    async def scenario() -> None:
        conn = MockConnection(
            app, transport=UndrainedTransport, **certs.settings(timeout_send=TIMEOUT)
        )
        transport = conn.transport
        assert isinstance(transport, PausingTransport)
        transport.armed = False  # (the handshake is read in time)
        peer = TlsPeer(conn, certs.client_context())
        peer.handshake()
        transport.armed = True
        peer.send(GET)
        await peer.until(lambda: b"part" in peer.plain, "the first part")
        await conn.idle()
        assert not transport.armed, "the transport did not pause"
        assert app.outcomes == [], "send() did not wait for the paused transport"
        conn.state.sweep()
        await conn.idle()
        assert not transport.closed
        await sweep_past(conn)
        await conn.until(lambda: app.finished, "the app's end")
        assert transport.closed and transport.aborted
        assert app.outcomes == ["sent", "refused"]
        assert app.received == ["http.disconnect"]
        assert app.error is None, app.error
        peer.read()
        assert not peer.close_notify, "close_notify before the abort"
        assert peer.plain.startswith(b"HTTP/1.1 200")

    run(scenario)
    assert error_lines == [LINE]
