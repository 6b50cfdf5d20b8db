"""A client that does not read what it is sent: the protocol starts no further request and
owes at most one pong while the transport is paused, on both loops.

``PausingTransport`` pauses the protocol on its first write, as a socket transport does
once its buffer passes the high-water mark; the test resumes it, as the transport would
once the client read.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from mockconn import MockConnection, PausingTransport, Runner, parse

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


class PathApp:
    """Answers each request with its path, start and one final body part."""

    def __init__(self) -> None:
        self.started: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.started.append(scope["path"])
        body = scope["path"].encode()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def paused_connection(app: Any) -> tuple[MockConnection, PausingTransport]:
    conn = MockConnection(app, transport=PausingTransport)
    assert isinstance(conn.transport, PausingTransport)
    return conn, conn.transport


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def test_pipelined_requests_wait_while_the_client_does_not_read(run: Runner) -> None:
    app = PathApp()
    paths = [f"/{n}" for n in range(50)]

    async def scenario() -> None:
        conn, transport = paused_connection(app)
        conn.send(b"".join(get(p) for p in paths))
        await conn.responses(1)
        await conn.idle()
        # The answer that paused the transport may have had the next request started
        # already; nothing after it.
        assert len(app.started) <= 2, app.started
        assert not transport.reading, "reading goes on while the client reads nothing"
        transport.resume()
        responses = await conn.responses(len(paths))
        assert [r.body.decode() for r in responses] == paths
        assert app.started == paths
        assert transport.reading

    run(scenario)


def test_a_request_arriving_while_paused_waits_for_the_drain(run: Runner) -> None:
    """Not pipelined: the next request arrives after the last answer went out, while the
    client still has not read it."""
    app = PathApp()

    async def scenario() -> None:
        conn, transport = paused_connection(app)
        conn.send(get("/first"))
        await conn.responses(1)
        conn.send(get("/second"))
        await conn.idle()
        assert app.started == ["/first"]
        assert not transport.reading
        transport.resume()
        responses = await conn.responses(2)
        assert [r.body for r in responses] == [b"/first", b"/second"]
        assert transport.reading

    run(scenario)


def test_a_held_head_is_not_timed_out_while_paused(run: Runner) -> None:
    """The next head began before the pause and was completed while paused: it waits for
    the drain, not for the head timeout (its bytes are all there)."""
    app = PathApp()

    async def scenario() -> None:
        conn = MockConnection(app, transport=PausingTransport, timeout_request_header=0.01)
        transport = conn.transport
        assert isinstance(transport, PausingTransport)
        conn.send(get("/first") + b"GET /second HTTP/1.1\r\nHo")
        await conn.responses(1)
        conn.send(b"st: test\r\n\r\n")
        await asyncio.sleep(0.02)
        conn.state.sweep()
        await conn.idle()
        assert not transport.closed, bytes(transport.written)
        transport.resume()
        responses = await conn.responses(2)
        assert [r.body for r in responses] == [b"/first", b"/second"]

    run(scenario)


def test_each_drain_lets_the_next_requests_through(run: Runner) -> None:
    """A client that reads a little at a time gets every answer, in order."""
    app = PathApp()
    paths = [f"/{n}" for n in range(20)]

    async def scenario() -> None:
        conn, transport = paused_connection(app)
        transport.pause_again = True
        conn.send(b"".join(get(p) for p in paths))
        for _ in range(len(paths)):
            await conn.idle()
            if len(parse(transport.written, ("GET",) * len(paths))) == len(paths):
                break
            transport.resume()
        responses = await conn.responses(len(paths))
        assert [r.body.decode() for r in responses] == paths

    run(scenario)


async def ws_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


def client_frame(opcode: int, payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + body


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    frames, at = [], 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        assert length < 126
        frames.append((opcode, data[at + 2 : at + 2 + length]))
        at += 2 + length
    return frames


def test_pings_from_a_client_that_does_not_read_owe_one_pong(run: Runner) -> None:
    upgrade = (
        "GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()

    async def scenario() -> None:
        conn, transport = paused_connection(ws_app)
        conn.send(upgrade)
        await conn.until(lambda: b"\r\n\r\n" in transport.written, "the 101")
        assert transport.written.startswith(b"HTTP/1.1 101")
        after_handshake = len(transport.written)
        for n in range(1000):
            conn.send(client_frame(0x9, b"ping %d" % n))
        await conn.idle()
        assert len(transport.written) == after_handshake, "a pong per ping piles up"
        transport.resume()
        await conn.idle()
        frames = server_frames(bytes(transport.written[after_handshake:]))
        assert frames == [(0xA, b"ping 999")]
        conn.send(client_frame(0x9, b"after"))
        await conn.idle()
        frames = server_frames(bytes(transport.written[after_handshake:]))
        assert frames[-1] == (0xA, b"after"), "a ping after the drain is answered at once"

    run(scenario)
