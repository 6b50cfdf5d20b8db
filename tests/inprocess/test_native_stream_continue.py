"""``expect: 100-continue`` on HTTP/2 and HTTP/3 streams, in-process.

As on HTTP/1.1: the interim 100 (a HEADERS with ``:status 100`` before the response
head) goes out when the app first calls receive() with the body not yet begun, once, and
never once the app sent http.response.start; and ``--timeout-request-body`` does not run
while the 100 is owed, as the client may rightly wait for it (RFC 9110 10.1.1). The
worker's sweep is called by hand, as in test_native_stream_body_timeout.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from h2peer import H2Client
from h3client import BOUND, H3Client, h3_connect
from mockconn import MockConnection, Runner, worker_state
from tlspeer import Certs

from ruvicorn import _native
from ruvicorn.worker.quic import QuicProtocol

TIMEOUT = 0.05
PAST = TIMEOUT * 2
LINE = "Request body timed out from 127.0.0.1: no byte for 0.05 s (--timeout-request-body)"

EXPECT = (b"expect", b"100-continue")
CONTINUE = [[(b":status", b"100")]]


class ContinueApp:
    """``/read`` waits for ``go``, then reads the whole body and echoes it; ``/start``
    sends http.response.start first (held by the server until a body part comes), then
    does the same; ``/onwire`` sends its start and a first body part before reading;
    ``/answer`` answers without reading. Every message receive() returned is kept."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        start = {"type": "http.response.start", "status": 200, "headers": []}
        if path == "/answer":
            await send(start)
            await send({"type": "http.response.body", "body": b"unread"})
            return
        if path == "/start":
            await send(start)
        elif path == "/onwire":
            await send(start)
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
        else:
            await self.go.wait()
        body = b""
        while True:
            message = await receive()
            self.messages.append(message)
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if path == "/read":
            await send(start)
        await send({"type": "http.response.body", "body": body})

    def bodies(self) -> int:
        return sum(1 for m in self.messages if m["type"] == "http.request")


# HTTP/2 ---------------------------------------------------------------------------------


def h2_interim(client: H2Client, stream: int) -> list[Any]:
    client.pump()
    response = client.responses.get(stream)
    return response.interim if response else []


def h2_post(client: H2Client, path: str) -> int:
    return client.request(path, "POST", extra=[EXPECT], open_body=True)


def test_h2_the_100_goes_once_when_the_app_first_reads(run: Runner) -> None:
    app = ContinueApp()

    async def scenario() -> None:
        mock = MockConnection(app)
        client = H2Client(mock)
        stream = h2_post(client, "/read")
        await mock.idle(50)
        assert h2_interim(client, stream) == [], "sent before the app read"
        app.go.set()
        await mock.until(lambda: h2_interim(client, stream), "the 100")
        # The body flows; each later receive() waits again, with no second 100.
        for count, piece in enumerate([b"ab", b"cd"], 1):
            client.conn.send_data(stream, piece)
            client.flush()
            await mock.until(lambda n=count: app.bodies() == n, "the piece")  # type: ignore[misc]
        client.conn.end_stream(stream)
        client.flush()
        status, _, body, _ = await client.response(stream)
        assert (status, body) == (200, b"abcd")
        assert client.responses[stream].interim == CONTINUE

    run(scenario)


def test_h2_no_100_for_an_app_that_answers_without_reading(run: Runner) -> None:
    async def scenario() -> None:
        client = H2Client(MockConnection(ContinueApp()))
        stream = h2_post(client, "/answer")
        status, _, body, _ = await client.response(stream)
        assert (status, body) == (200, b"unread")
        assert client.responses[stream].interim == []

    run(scenario)


def test_h2_the_100_goes_before_a_started_response_held_for_its_body(run: Runner) -> None:
    """http.response.start alone puts nothing on the wire (the head waits for the first
    body part), so the 100 still goes, ahead of the final head, as on HTTP/1.1."""

    async def scenario() -> None:
        mock = MockConnection(ContinueApp())
        client = H2Client(mock)
        stream = h2_post(client, "/start")
        await mock.until(lambda: h2_interim(client, stream), "the 100")
        client.conn.send_data(stream, b"xy", end_stream=True)
        client.flush()
        status, _, body, _ = await client.response(stream)
        assert (status, body) == (200, b"xy")
        assert client.responses[stream].interim == CONTINUE

    run(scenario)


def test_h2_no_100_once_the_response_is_on_the_wire(run: Runner) -> None:
    async def scenario() -> None:
        mock = MockConnection(ContinueApp())
        client = H2Client(mock)
        stream = h2_post(client, "/onwire")
        await mock.idle(50)
        client.conn.send_data(stream, b"xy", end_stream=True)
        client.flush()
        status, _, body, _ = await client.response(stream)
        assert (status, body) == (200, b"firstxy")
        assert client.responses[stream].interim == []

    run(scenario)


def test_h2_the_body_clock_waits_for_the_100(run: Runner, error_lines: list[str]) -> None:
    """Owed, the 100 stops the clock (the app has not read yet); sent, the client's
    silence is timed from then on, and the stream gets 408."""
    app = ContinueApp()

    async def sweep_past(mock: MockConnection, times: int) -> None:
        for _ in range(times):
            await asyncio.sleep(PAST)
            mock.state.sweep()
        await mock.idle()

    async def scenario() -> None:
        mock = MockConnection(app, timeout_request_body=TIMEOUT)
        client = H2Client(mock)
        stream = h2_post(client, "/read")
        await sweep_past(mock, 3)
        client.pump()
        assert stream not in client.responses, "cut while the 100 was owed"
        app.go.set()
        await mock.until(lambda: h2_interim(client, stream), "the 100")
        await sweep_past(mock, 2)
        status, _, body, _ = await client.response(stream)
        assert (status, body) == (408, b"")
        assert client.responses[stream].interim == CONTINUE

    run(scenario)
    assert error_lines == [LINE]


# HTTP/3 ---------------------------------------------------------------------------------


@asynccontextmanager
async def serve_h3(
    app: Any, certs: Certs, tmp_path: Path, **settings: Any
) -> AsyncIterator[tuple[H3Client, Any]]:
    """``app`` on a loopback QUIC endpoint; a connected client, and the worker state."""
    ca_file = tmp_path / "ca.pem"
    certs.ca.cert_pem.write_to_path(str(ca_file))
    loop = asyncio.get_running_loop()
    state = worker_state(app, http3=True, **settings, **certs.settings())
    endpoint = _native.QuicEndpoint(state, loop)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    transport, _ = await loop.create_datagram_endpoint(lambda: QuicProtocol(endpoint), sock=sock)
    try:
        async with h3_connect("127.0.0.1", sock.getsockname()[1], ca_file) as client:
            yield client, state
    finally:
        transport.close()


async def until(check: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + BOUND
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"no {what}"
        await asyncio.sleep(0.005)


def h3_post(client: H3Client, path: str) -> tuple[int, Any]:
    fields = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"localhost"),
        (b":path", path.encode()),
        EXPECT,
    ]
    stream, waiter = client.send_head(fields, end=False)
    client.transmit()
    return stream, waiter


def h3_interim(client: H3Client, stream: int) -> list[Any]:
    response = client.responses.get(stream)
    return response.interim if response else []


def test_h3_the_100_goes_once_when_the_app_first_reads_and_stops_the_clock_till_then(
    run: Runner, certs: Certs, tmp_path: Path, error_lines: list[str]
) -> None:
    app = ContinueApp()

    async def scenario() -> None:
        async with serve_h3(app, certs, tmp_path, timeout_request_body=TIMEOUT) as (
            client,
            state,
        ):
            stream, waiter = h3_post(client, "/read")
            for _ in range(3):
                await asyncio.sleep(PAST)
                state.sweep()
            assert h3_interim(client, stream) == [], "sent before the app read"
            assert not waiter.done(), "cut while the 100 was owed"
            app.go.set()
            await until(lambda: h3_interim(client, stream), "the 100")
            for count, piece in enumerate([b"ab", b"cd"], 1):
                client.h3.send_data(stream, piece, end_stream=False)
                client.transmit()
                await until(lambda n=count: app.bodies() == n, "the piece")  # type: ignore[misc]
            client.h3.send_data(stream, b"", end_stream=True)
            client.transmit()
            response = await asyncio.wait_for(waiter, BOUND)
            assert (response.status, response.body) == (200, b"abcd")
            assert response.interim == CONTINUE

    run(scenario)
    assert [line for line in error_lines if "timed out" in line] == []


def test_h3_no_100_for_an_app_that_answers_without_reading(
    run: Runner, certs: Certs, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with serve_h3(ContinueApp(), certs, tmp_path) as (client, _):
            _, waiter = h3_post(client, "/answer")
            response = await asyncio.wait_for(waiter, BOUND)
            assert (response.status, response.body) == (200, b"unread")
            assert response.interim == []

    run(scenario)


def test_h3_the_100_goes_before_a_started_response_held_for_its_body(
    run: Runner, certs: Certs, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with serve_h3(ContinueApp(), certs, tmp_path) as (client, _):
            stream, waiter = h3_post(client, "/start")
            await until(lambda: h3_interim(client, stream), "the 100")
            client.h3.send_data(stream, b"xy", end_stream=True)
            client.transmit()
            response = await asyncio.wait_for(waiter, BOUND)
            assert (response.status, response.body) == (200, b"xy")
            assert response.interim == CONTINUE

    run(scenario)


def test_h3_no_100_once_the_response_is_on_the_wire(
    run: Runner, certs: Certs, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with serve_h3(ContinueApp(), certs, tmp_path) as (client, _):
            stream, waiter = h3_post(client, "/onwire")
            await asyncio.sleep(0.05)
            client.h3.send_data(stream, b"xy", end_stream=True)
            client.transmit()
            response = await asyncio.wait_for(waiter, BOUND)
            assert (response.status, response.body) == (200, b"firstxy")
            assert response.interim == []

    run(scenario)
