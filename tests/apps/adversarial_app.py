"""The core test app plus a route that reads its request body slowly.

``/slow-read?gate=PATH&progress=PATH&delay=S`` sleeps ``delay`` seconds after each body
message until the gate file exists, then reads the rest at full speed; the bytes read so far
go to the progress file so a test can compare them with what the client managed to send.
Every other path is served by ``testapp``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import testapp


async def slow_read(scope: dict[str, Any], receive: Any, send: Any) -> None:
    q = testapp.query(scope)
    gate, progress = q["gate"], Path(q["progress"])
    delay = float(q.get("delay", "0.05"))
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            testapp.record(event="slow-read-disconnect", size=total)
            return
        total += len(message.get("body", b""))
        progress.write_text(str(total))
        if not message.get("more_body", False):
            break
        if not os.path.exists(gate):
            await asyncio.sleep(delay)
    await testapp.respond(send, str(total).encode())


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/slow-read":
        testapp.record(event="request", method=scope["method"], path=scope["path"])
        await slow_read(scope, receive, send)
        return
    await testapp.app(scope, receive, send)
