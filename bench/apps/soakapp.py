"""The soak's app: the benchmark workloads behind one path router, each answer tagged with the
pid of the worker that produced it.

``x-worker-pid`` on every response (and on the WebSocket handshake) lets bench/soak.py tell a
request lost with the worker it SIGKILLed from one lost anywhere else.
"""

from __future__ import annotations

import os
from typing import Any

from benchapp import Message, Receive, Scope, Send, echo, plaintext, stream, websocket

ROUTES = {"/plain": plaintext, "/echo": echo, "/stream": stream}


def tagged(send: Send) -> Send:
    """``send`` with ``x-worker-pid`` added to the response start or the WebSocket accept."""
    pid = str(os.getpid()).encode()

    async def wrapper(message: Message) -> None:
        if message["type"] in ("http.response.start", "websocket.accept"):
            message = {**message, "headers": [*message.get("headers", []), (b"x-worker-pid", pid)]}
        await send(message)

    return wrapper


async def app(scope: Scope, receive: Receive, send: Send) -> Any:
    if scope["type"] == "websocket":
        return await websocket(scope, receive, tagged(send))
    if scope["type"] == "http":
        return await ROUTES.get(scope["path"], plaintext)(scope, receive, tagged(send))
    return await plaintext(scope, receive, send)  # lifespan
