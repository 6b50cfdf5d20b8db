"""``--timeout-request-body`` on HTTP/2 and HTTP/3 streams.

As in test_native_body_timeout.py the worker's sweep is called by hand after sleeping
past a short timeout. A stalled stream gets 408 and the rest of its request is refused
(HTTP/2 RST_STREAM NO_ERROR, HTTP/3 STOP_SENDING H3_NO_ERROR); a stream whose response
started is reset (CANCEL, H3_REQUEST_CANCELLED). The app's receive() gets http.disconnect
and its Task ends on its own; the connection's other streams carry on. No clock runs
while the connection holds body bytes an app has not taken (flow control the server
holds closed).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aioquic.quic.events import QuicEvent, StopSendingReceived, StreamReset
from h2peer import H2Client, server_frames
from h3client import BOUND, H3Client, ResetByServer, h3_connect
from mockconn import MockConnection, Runner, worker_state
from tlspeer import Certs

from ruvicorn import _native
from ruvicorn.worker.quic import QuicProtocol

#: The timeout of these tests, and a sleep safely past it.
TIMEOUT = 0.05
PAST = TIMEOUT * 2

LINE = "Request body timed out from 127.0.0.1: no byte for 0.05 s (--timeout-request-body)"

RST_STREAM = 0x3
NO_ERROR, CANCEL = 0x0, 0x8
H3_NO_ERROR, H3_REQUEST_CANCELLED = 0x100, 0x10C


class BodyApp:
    """Reads the whole body (``/hold`` first waits for ``release``; ``/stream`` starts a
    response first; ``/linger`` waits for ``release`` after http.disconnect) and answers
    with its size; ``GET`` answers at once; ``/early`` answers at once and waits for
    ``release`` without reading. Records each stream's messages by path."""

    def __init__(self) -> None:
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.finished: list[str] = []
        self.errors: list[BaseException] = []
        self.release = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await self.serve(scope, receive, send)
        except BaseException as exc:
            self.errors.append(exc)
            raise
        finally:
            self.finished.append(scope["path"])

    async def serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        got = self.messages.setdefault(path, [])
        if path == "/early":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"early"})
            await self.release.wait()
            return
        if path == "/hold":
            await self.release.wait()
        if path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"started", "more_body": True})
        size = 0
        while scope["method"] != "GET":
            message = await receive()
            got.append(message)
            if message["type"] == "http.disconnect":
                if path == "/linger":
                    await self.release.wait()
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = str(size).encode()
        if path != "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    def disconnected(self, path: str) -> bool:
        return any(m["type"] == "http.disconnect" for m in self.messages.get(path, []))


# HTTP/2 ---------------------------------------------------------------------------------


def resets(mock: MockConnection, stream: int) -> list[int]:
    """The RST_STREAM codes the server sent on ``stream``."""
    return [
        f.error_code
        for f in server_frames(mock.transport.written)
        if f.type == RST_STREAM and f.stream_id == stream
    ]


async def h2_sweep_past(mock: MockConnection, client: H2Client, times: int = 1) -> None:
    for _ in range(times):
        await asyncio.sleep(PAST)
        mock.state.sweep()
    await mock.idle()
    client.pump()


@pytest.mark.parametrize("partial", [b"", b"x" * 10], ids=["no-data", "some-data"])
def test_h2_a_stalled_stream_gets_408_and_no_error_reset(
    run: Runner, error_lines: list[str], partial: bytes
) -> None:
    app = BodyApp()

    async def scenario() -> None:
        mock = MockConnection(app, timeout_request_body=TIMEOUT)
        client = H2Client(mock)
        stream = client.request("/linger", "POST", open_body=True)
        if partial:
            client.conn.send_data(stream, partial)
            client.flush()
            await mock.until(lambda: app.messages.get("/linger"), "the first body message")
        await h2_sweep_past(mock, client)
        status, _, body, _ = await client.response(stream)
        assert (status, body) == (408, b"")
        # The rest of the request is refused at once, not when the app returns.
        await mock.until(lambda: resets(mock, stream), "the reset after the 408")
        assert resets(mock, stream) == [NO_ERROR]
        assert app.disconnected("/linger"), app.messages
        assert not app.finished
        app.release.set()
        await mock.until(lambda: app.finished, "the app's end")
        assert app.errors == []
        assert not mock.transport.closed

    run(scenario)
    assert error_lines == [LINE]


def test_h2_a_started_response_is_cancelled(run: Runner, error_lines: list[str]) -> None:
    app = BodyApp()

    async def scenario() -> None:
        mock = MockConnection(app, timeout_request_body=TIMEOUT)
        client = H2Client(mock)
        stream = client.request("/stream", "POST", open_body=True)
        await mock.until(lambda: b"started" in mock.transport.written, "the response's start")
        await h2_sweep_past(mock, client)
        await mock.until(lambda: resets(mock, stream), "the reset")
        assert resets(mock, stream) == [CANCEL]
        await mock.until(lambda: app.finished, "the app's end")
        assert app.disconnected("/stream")
        assert app.errors == []
        assert b"408" not in mock.transport.written
        assert not mock.transport.closed

    run(scenario)
    assert error_lines == [LINE]


def test_h2_a_steady_trickle_is_not_cut(run: Runner) -> None:
    app = BodyApp()

    async def scenario() -> None:
        mock = MockConnection(app, timeout_request_body=TIMEOUT)
        client = H2Client(mock)
        stream = client.request("/", "POST", open_body=True)
        for _ in range(8):
            await asyncio.sleep(TIMEOUT * 0.6)
            client.conn.send_data(stream, b"x")
            client.flush()
            mock.state.sweep()
        client.conn.end_stream(stream)
        client.flush()
        status, _, body, _ = await client.response(stream)
        assert (status, body) == (200, b"8")
        assert resets(mock, stream) == []

    run(scenario)


def test_h2_a_stream_whose_app_does_not_read_is_not_cut(run: Runner) -> None:
    """The app has not taken the body: the stream's window is exhausted by the server's
    doing, so the client's silence is not timed."""
    app = BodyApp()

    async def scenario() -> None:
        mock = MockConnection(app, timeout_request_body=TIMEOUT)
        client = H2Client(mock)
        stream = client.request("/hold", "POST", b"x" * 200_000)
        await mock.idle(50)
        client.pump()
        client.push()
        assert client.conn.local_flow_control_window(stream) == 0
        await h2_sweep_past(mock, client, times=3)
        assert resets(mock, stream) == []
        app.release.set()
        status, _, body, _ = await client.response(stream)
        assert (status, body) == (200, b"200000")

    run(scenario)


def test_h2_other_streams_carry_on(run: Runner, error_lines: list[str]) -> None:
    app = BodyApp()

    async def scenario() -> None:
        mock = MockConnection(app, timeout_request_body=TIMEOUT)
        client = H2Client(mock)
        stalled = client.request("/", "POST", open_body=True)
        await asyncio.sleep(PAST)
        served = client.request("/other", "POST", b"abc")
        assert (await client.response(served))[::2] == (200, b"3")
        mock.state.sweep()
        status, _, _, _ = await client.response(stalled)
        assert status == 408
        later = client.request("/later", "GET")
        assert (await client.response(later))[::2] == (200, b"0")
        assert resets(mock, served) == resets(mock, later) == []
        assert not mock.transport.closed

    run(scenario)
    assert error_lines == [LINE]


def test_h2_a_complete_response_runs_no_clock(run: Runner, error_lines: list[str]) -> None:
    """The app answered without reading the body and still runs: nothing waits on the
    rest of the body, so the client's silence is not timed (no line, no reset)."""
    app = BodyApp()

    async def scenario() -> None:
        mock = MockConnection(app, timeout_request_body=TIMEOUT)
        client = H2Client(mock)
        stream = client.request("/early", "POST", open_body=True)
        assert (await client.response(stream))[::2] == (200, b"early")
        await h2_sweep_past(mock, client, times=2)
        assert resets(mock, stream) == []
        assert not app.finished
        app.release.set()
        await mock.until(lambda: app.finished, "the app's end")
        assert app.errors == []

    run(scenario)
    assert error_lines == []


def test_h2_zero_turns_the_timeout_off(run: Runner) -> None:
    app = BodyApp()

    async def scenario() -> None:
        mock = MockConnection(app, timeout_request_body=0)
        client = H2Client(mock)
        stream = client.request("/", "POST", open_body=True)
        client.conn.send_data(stream, b"ab")
        client.flush()
        await h2_sweep_past(mock, client, times=2)
        assert resets(mock, stream) == []
        client.conn.send_data(stream, b"cde", end_stream=True)
        client.flush()
        assert (await client.response(stream))[::2] == (200, b"5")

    run(scenario)


# HTTP/3 ---------------------------------------------------------------------------------


class StopRecording(H3Client):
    """Notes the STOP_SENDING and RESET_STREAM codes the server sends, per stream."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stops: dict[int, int] = {}
        self.resets: dict[int, int] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StopSendingReceived):
            self.stops[event.stream_id] = event.error_code
        if isinstance(event, StreamReset):
            self.resets[event.stream_id] = event.error_code
        super().quic_event_received(event)


@asynccontextmanager
async def serve_h3(
    app: Any, certs: Certs, tmp_path: Path, timeout: float = TIMEOUT
) -> AsyncIterator[tuple[StopRecording, Any]]:
    """``app`` on a loopback QUIC endpoint; a connected client, and the worker state."""
    ca_file = tmp_path / "ca.pem"
    certs.ca.cert_pem.write_to_path(str(ca_file))
    loop = asyncio.get_running_loop()
    state = worker_state(app, http3=True, timeout_request_body=timeout, **certs.settings())
    endpoint = _native.QuicEndpoint(state, loop)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    transport, _ = await loop.create_datagram_endpoint(lambda: QuicProtocol(endpoint), sock=sock)
    try:
        port = sock.getsockname()[1]
        async with h3_connect("127.0.0.1", port, ca_file, protocol=StopRecording) as client:
            assert isinstance(client, StopRecording)
            yield client, state
    finally:
        transport.close()


def timed_out(lines: list[str]) -> list[str]:
    """The body timeout's lines (aioquic's client closes with QUIC's code 0, which the
    endpoint logs as it ends the connection)."""
    return [line for line in lines if "timed out" in line]


async def until(check: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + BOUND
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"no {what}"
        await asyncio.sleep(0.005)


def open_stream(client: H3Client, path: str, data: bytes = b"") -> tuple[int, Any]:
    fields = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"localhost"),
        (b":path", path.encode()),
    ]
    stream, waiter = client.send_head(fields, end=False)
    if data:
        client.h3.send_data(stream, data, end_stream=False)
    client.transmit()
    return stream, waiter


def test_h3_a_stalled_stream_gets_408_and_stop_sending(
    run: Runner, certs: Certs, tmp_path: Path, error_lines: list[str]
) -> None:
    app = BodyApp()

    async def scenario() -> None:
        async with serve_h3(app, certs, tmp_path) as (client, state):
            stream, waiter = open_stream(client, "/linger", b"x" * 10)
            await until(lambda: app.messages.get("/linger"), "first body message")
            await asyncio.sleep(PAST)
            state.sweep()
            response = await asyncio.wait_for(waiter, BOUND)
            assert (response.status, response.body, response.ended) == (408, b"", True)
            # The rest of the request is refused at once, not when the app returns.
            await until(lambda: stream in client.stops, "STOP_SENDING")
            assert client.stops[stream] == H3_NO_ERROR
            await until(lambda: app.disconnected("/linger"), "the disconnect")
            assert not app.finished
            app.release.set()
            await until(lambda: app.finished, "the app's end")
            assert app.errors == []
            # The connection serves on.
            assert (await client.request("GET", "/later")).status == 200

    run(scenario)
    assert timed_out(error_lines) == [LINE]


def test_h3_a_started_response_is_reset_request_cancelled(
    run: Runner, certs: Certs, tmp_path: Path, error_lines: list[str]
) -> None:
    app = BodyApp()

    async def scenario() -> None:
        async with serve_h3(app, certs, tmp_path) as (client, state):
            stream, waiter = open_stream(client, "/stream")
            await until(lambda: stream in client.responses, "the response's start")
            await asyncio.sleep(PAST)
            state.sweep()
            with pytest.raises(ResetByServer, match="stream reset 0x10c"):
                await asyncio.wait_for(waiter, BOUND)
            assert client.resets[stream] == H3_REQUEST_CANCELLED
            await until(lambda: app.finished, "the app's end")
            assert app.disconnected("/stream")
            assert app.errors == []
            assert (await client.request("GET", "/later")).status == 200

    run(scenario)
    assert timed_out(error_lines) == [LINE]


def test_h3_a_steady_trickle_and_a_held_body_are_not_cut(
    run: Runner, certs: Certs, tmp_path: Path
) -> None:
    """One stream trickles a byte at a time, another's body waits untaken by its app:
    neither is cut, and the held one stops every clock of the connection meanwhile."""
    app = BodyApp()

    async def scenario() -> None:
        async with serve_h3(app, certs, tmp_path) as (client, state):
            stream, waiter = open_stream(client, "/")
            for _ in range(4):
                await asyncio.sleep(TIMEOUT * 0.6)
                client.h3.send_data(stream, b"x", end_stream=False)
                client.transmit()
                state.sweep()
            client.h3.send_data(stream, b"", end_stream=True)
            client.transmit()
            response = await asyncio.wait_for(waiter, BOUND)
            assert (response.status, response.body) == (200, b"4")
            held, held_waiter = open_stream(client, "/hold", b"y" * 100_000)
            for _ in range(3):
                await asyncio.sleep(PAST)
                state.sweep()
            assert held not in client.stops and held not in client.resets
            app.release.set()
            client.h3.send_data(held, b"", end_stream=True)
            client.transmit()
            response = await asyncio.wait_for(held_waiter, BOUND)
            assert (response.status, response.body) == (200, b"100000")

    run(scenario)


def test_h3_a_complete_response_runs_no_clock(
    run: Runner, certs: Certs, tmp_path: Path, error_lines: list[str]
) -> None:
    app = BodyApp()

    async def scenario() -> None:
        async with serve_h3(app, certs, tmp_path) as (client, state):
            stream, waiter = open_stream(client, "/early")
            response = await asyncio.wait_for(waiter, BOUND)
            assert (response.status, response.body) == (200, b"early")
            for _ in range(2):
                await asyncio.sleep(PAST)
                state.sweep()
            await asyncio.sleep(PAST)
            assert stream not in client.stops and stream not in client.resets
            assert not app.finished
            app.release.set()
            await until(lambda: app.finished, "the app's end")
            assert app.errors == []

    run(scenario)
    assert timed_out(error_lines) == []


def test_h3_zero_turns_the_timeout_off(run: Runner, certs: Certs, tmp_path: Path) -> None:
    app = BodyApp()

    async def scenario() -> None:
        async with serve_h3(app, certs, tmp_path, timeout=0) as (client, state):
            stream, waiter = open_stream(client, "/", b"ab")
            for _ in range(2):
                await asyncio.sleep(PAST)
                state.sweep()
            client.h3.send_data(stream, b"cde", end_stream=True)
            client.transmit()
            response = await asyncio.wait_for(waiter, BOUND)
            assert (response.status, response.body) == (200, b"5")

    run(scenario)
