"""``--timeout-request-body``: a request body that stops arriving ends its request.

The worker's sweep is called by hand here (``conn.state.sweep()``), after sleeping past a
short timeout, so each case takes a fraction of a second: 408 with ``connection: close``
when no response started, a cut connection when one did, http.disconnect for the app
either way. The clock restarts with each byte, and does not run while the server itself
holds the client back (reading paused because the app has not taken what is buffered) or
while "100 Continue" is owed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mockconn import MockConnection, PausingTransport, Runner
from tlspeer import Certs, tls_connection

#: The timeout of these tests, and a sleep safely past it.
TIMEOUT = 0.05
PAST = TIMEOUT * 2


class BodyApp:
    """Reads the whole body (unless ``/hold``, which first waits for ``release``), then
    answers with its size; ``/stream`` starts a response first. Records every message."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.finished = False
        self.error: BaseException | None = None
        self.release = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await self.serve(scope, receive, send)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.finished = True

    async def serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/hold":
            await self.release.wait()
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"started", "more_body": True})
        size = 0
        while True:
            message = await receive()
            self.messages.append(message)
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = str(size).encode()
        if scope["path"] == "/stream":
            await send({"type": "http.response.body", "body": body})
            return
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @property
    def disconnected(self) -> bool:
        return any(m["type"] == "http.disconnect" for m in self.messages)


def post(path: str, *headers: str) -> bytes:
    lines = "".join(f"{h}\r\n" for h in headers)
    return f"POST {path} HTTP/1.1\r\nHost: test\r\n{lines}\r\n".encode()


async def sweep_past(conn: MockConnection, times: int = 1) -> None:
    """Let more than the timeout pass, then sweep, ``times`` over."""
    for _ in range(times):
        await asyncio.sleep(PAST)
        conn.state.sweep()
    await conn.idle()


async def expect_408(conn: MockConnection, app: BodyApp) -> None:
    """The request was answered 408, the connection closed (not aborted: the 408 is
    delivered) and the app told."""
    await conn.until(lambda: conn.transport.closed, "the close after the body timeout")
    assert not conn.transport.aborted
    [resp] = await conn.responses(1, ("POST",))
    assert resp.status == 408
    assert resp.headers.get("connection") == "close"
    await conn.until(lambda: app.finished, "the app's end")
    assert app.disconnected, app.messages
    assert app.error is None, app.error


@pytest.mark.parametrize(
    ("headers", "partial"),
    [
        (("Content-Length: 100000",), b"x" * 10),
        (("Transfer-Encoding: chunked",), b"a\r\n0123456789\r\n5\r\nab"),
    ],
    ids=["content-length", "chunked"],
)
def test_a_stalled_body_is_answered_408_and_closed(
    run: Runner, error_lines: list[str], headers: tuple[str], partial: bytes
) -> None:
    app = BodyApp()

    async def scenario() -> None:
        conn = MockConnection(app, timeout_request_body=TIMEOUT)
        conn.send(post("/", *headers) + partial)
        await conn.until(lambda: app.messages, "the first body message")
        await sweep_past(conn)
        await expect_408(conn, app)

    run(scenario)
    assert error_lines == [
        "Request body timed out from 127.0.0.1: no byte for 0.05 s (--timeout-request-body)"
    ]


def test_a_started_response_is_cut_without_408(run: Runner, error_lines: list[str]) -> None:
    """The connection is aborted, not closed: a client that reads nothing must not keep
    it open with the response's buffered part. The app that returns on http.disconnect
    leaves nothing to complain about."""
    app = BodyApp()

    async def scenario() -> None:
        conn = MockConnection(app, timeout_request_body=TIMEOUT)
        conn.send(post("/stream", "Content-Length: 100") + b"x")
        await conn.until(lambda: b"started" in conn.transport.written, "the response's start")
        await sweep_past(conn)
        await conn.until(lambda: conn.transport.closed, "the close after the body timeout")
        assert conn.transport.aborted
        await conn.until(lambda: app.finished, "the app's end")
        assert app.disconnected
        assert app.error is None, app.error
        assert b" 408 " not in conn.transport.written

    run(scenario)
    assert error_lines == [
        "Request body timed out from 127.0.0.1: no byte for 0.05 s (--timeout-request-body)"
    ]


def test_a_cut_response_over_tls_gets_no_close_notify(run: Runner, certs: Certs) -> None:
    """The abort sends no close_notify first: it would tell the client the response
    ended cleanly (one delimited by the close would read as complete)."""
    app = BodyApp()

    async def scenario() -> None:
        peer = tls_connection(app, certs, timeout_request_body=TIMEOUT)
        conn = peer.conn
        peer.send(post("/stream", "Content-Length: 100") + b"x")
        await peer.until(lambda: b"started" in peer.plain, "the response's start")
        await sweep_past(conn)
        await conn.until(lambda: conn.transport.aborted, "the abort")
        peer.read()
        assert not peer.close_notify

    run(scenario)


class UndrainedTransport(PausingTransport):
    """Pauses writing at its first write and never drains: its ``close()`` reports no
    loss, as a socket transport's does not while its buffer waits for a reader."""

    def close(self) -> None:
        self.closed = True


def test_a_cut_response_frees_a_send_waiting_for_the_transport(
    run: Runner, error_lines: list[str]
) -> None:
    """A send() waiting for the transport to drain is answered when the body timeout cuts
    the response; the app's next send() is refused (the connection is closing), and its
    end adds no complaint about the unfinished response."""
    outcomes: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        # Written at once, it fills the transport's buffer: this send() waits for a drain.
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        outcomes.append("drained")
        try:
            await send({"type": "http.response.body", "body": b"refused"})
        except OSError:
            outcomes.append("refused")

    async def scenario() -> None:
        conn = MockConnection(app, transport=UndrainedTransport, timeout_request_body=TIMEOUT)
        conn.send(post("/", "Content-Length: 100") + b"x")
        await conn.until(lambda: b"started" in conn.transport.written, "the response's start")
        await conn.idle()
        assert outcomes == [], "send() did not wait for the paused transport"
        await sweep_past(conn)
        await conn.until(lambda: len(outcomes) == 2, "the app's last send()")
        assert outcomes == ["drained", "refused"]
        assert conn.transport.closed and conn.transport.aborted

    run(scenario)
    assert error_lines == [
        "Request body timed out from 127.0.0.1: no byte for 0.05 s (--timeout-request-body)"
    ]


def test_each_byte_restarts_the_clock(run: Runner) -> None:
    """A slow but steady client is never cut, however long the whole body takes."""
    app = BodyApp()
    body = b"0123456789"

    async def scenario() -> None:
        conn = MockConnection(app, timeout_request_body=TIMEOUT)
        conn.send(post("/", f"Content-Length: {len(body)}"))
        for i in range(len(body)):
            await asyncio.sleep(TIMEOUT * 0.6)
            conn.send(body[i : i + 1])
            conn.state.sweep()
        # The whole body took several timeouts; no gap reached one.
        [resp] = await conn.responses(1, ("POST",))
        assert (resp.status, resp.body) == (200, b"10")
        assert not conn.transport.closed

    run(scenario)


def test_the_clock_starts_with_the_head_when_no_body_byte_comes(run: Runner) -> None:
    app = BodyApp()

    async def scenario() -> None:
        conn = MockConnection(app, timeout_request_body=TIMEOUT)
        conn.send(post("/", "Content-Length: 5"))
        await sweep_past(conn)
        await expect_408(conn, app)

    run(scenario)


def test_a_body_the_app_does_not_take_is_not_timed_out_while_reading_is_paused(
    run: Runner,
) -> None:
    """The app waits on something else while more than the read high-water mark is
    buffered: the server stopped reading, so the client cannot be blamed for the silence."""
    app = BodyApp()
    size = 600_000
    first = 300_000

    async def scenario() -> None:
        conn = MockConnection(app, timeout_request_body=TIMEOUT)
        conn.send(post("/hold", f"Content-Length: {size}") + b"x" * first)
        await conn.idle()
        assert not conn.transport.reading, "reading goes on past the high-water mark"
        await sweep_past(conn, times=3)
        assert not conn.transport.closed, bytes(conn.transport.written)
        app.release.set()
        await conn.until(lambda: conn.transport.reading, "reading resumed")
        # Reading resumed; the client then has the whole timeout for its next byte.
        conn.state.sweep()
        conn.send(b"x" * (size - first))
        [resp] = await conn.responses(1, ("POST",))
        assert (resp.status, resp.body) == (200, str(size).encode())

    run(scenario)


def test_a_stalled_body_the_app_has_not_asked_for_yet_is_timed_out(run: Runner) -> None:
    """Below the high-water mark the server goes on reading whatever the app does, so a
    client that stops sending is timed out even while the app is busy elsewhere; the app's
    first receive() then says the client is gone."""
    app = BodyApp()

    async def scenario() -> None:
        conn = MockConnection(app, timeout_request_body=TIMEOUT)
        conn.send(post("/hold", "Content-Length: 100") + b"x" * 10)
        await sweep_past(conn)
        await conn.until(lambda: conn.transport.closed, "the close after the body timeout")
        [resp] = await conn.responses(1, ("POST",))
        assert resp.status == 408
        app.release.set()
        await conn.until(lambda: app.finished, "the app's end")
        assert app.messages == [{"type": "http.disconnect"}]

    run(scenario)


def test_no_clock_while_100_continue_is_owed(run: Runner) -> None:
    """A client that asked for "100 Continue" rightly sends nothing until it gets one."""
    app = BodyApp()

    async def scenario() -> None:
        conn = MockConnection(app, timeout_request_body=TIMEOUT)
        conn.send(post("/hold", "Content-Length: 3", "Expect: 100-continue"))
        await sweep_past(conn, times=2)
        assert not conn.transport.closed, bytes(conn.transport.written)
        app.release.set()
        await conn.until(lambda: b"100 Continue" in conn.transport.written, "100 Continue")
        conn.send(b"abc")
        await conn.until(lambda: app.finished, "the app's end")
        assert conn.transport.written.endswith(b"\r\n\r\n3")

    run(scenario)


def test_zero_turns_the_timeout_off(run: Runner) -> None:
    app = BodyApp()

    async def scenario() -> None:
        conn = MockConnection(app, timeout_request_body=0)
        conn.send(post("/", "Content-Length: 5") + b"ab")
        await sweep_past(conn, times=2)
        assert not conn.transport.closed
        conn.send(b"cde")
        [resp] = await conn.responses(1, ("POST",))
        assert (resp.status, resp.body) == (200, b"5")

    run(scenario)


def test_a_complete_body_leaves_the_exchange_alone(run: Runner) -> None:
    """Once the body is in, the app may take as long as it likes to answer."""
    app = BodyApp()

    async def scenario() -> None:
        conn = MockConnection(app, timeout_request_body=TIMEOUT)
        conn.send(post("/hold", "Content-Length: 3") + b"abc")
        await sweep_past(conn, times=2)
        assert not conn.transport.closed
        app.release.set()
        [resp] = await conn.responses(1, ("POST",))
        assert (resp.status, resp.body) == (200, b"3")

    run(scenario)


def test_other_connections_carry_on(run: Runner) -> None:
    """Two connections of one worker: the stalled one is ended, the other is served."""
    app = BodyApp()

    async def scenario() -> None:
        stalled = MockConnection(app, timeout_request_body=TIMEOUT)
        stalled.send(post("/", "Content-Length: 100") + b"x")
        other = MockConnection(app, state=stalled.state)
        await asyncio.sleep(PAST)
        other.send(post("/", "Content-Length: 3") + b"a")
        stalled.state.sweep()
        await stalled.until(lambda: stalled.transport.closed, "the stalled connection's close")
        other.send(b"bc")
        [resp] = await other.responses(1, ("POST",))
        assert (resp.status, resp.body) == (200, b"3")
        assert not other.transport.closed

    run(scenario)
