"""Plain ASGI apps for the benchmark workloads, with no framework in the way.

Each attribute is one workload's app, so every server is measured on exactly the same
application code: ``plaintext`` (also used by ``close``, ``pipeline`` and ``memory``),
``echo``, ``stream`` and ``websocket``. All of them answer the lifespan protocol, so no server
logs a lifespan error or takes a slower fallback path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HELLO = b"Hello, world!"
PLAIN_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
STREAM_CHUNK = b"x" * 65536
STREAM_CHUNKS = 16  # 16 x 64 KiB = 1 MiB
STREAM_HEADERS = [(b"content-type", b"application/octet-stream")]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def plaintext(scope: Scope, receive: Receive, send: Send) -> None:
    """13-byte body with a content-length: the per-request cost of the server itself."""
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await send({"type": "http.response.start", "status": 200, "headers": PLAIN_HEADERS})
    await send({"type": "http.response.body", "body": HELLO})
    return None


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the whole request body, then send it back: request-body delivery cost."""
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return None


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    """1 MiB as 16 body messages with no content-length: chunked streaming throughput."""
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
    for _ in range(STREAM_CHUNKS - 1):
        await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": STREAM_CHUNK})
    return None


async def websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept, then send every message back as it came until the client disconnects: the
    per-message cost of the server's WebSocket path (the ``websocket`` workload)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] != "websocket":
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"10")]
        await send({"type": "http.response.start", "status": 426, "headers": headers})
        await send({"type": "http.response.body", "body": b"websocket\n"})
        return None
    message = await receive()
    if message["type"] != "websocket.connect":
        return None
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return None  # websocket.disconnect
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
