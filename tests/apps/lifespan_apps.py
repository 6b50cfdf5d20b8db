"""Apps for the lifespan tests; each records its lifespan events in $TESTAPP_RECORD."""

from __future__ import annotations

import json
import os
from typing import Any

RECORD = os.environ.get("TESTAPP_RECORD")


def record(**event: Any) -> None:
    if RECORD:
        with open(RECORD, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")


async def answer_json(send: Any, data: Any) -> None:
    body = json.dumps(data).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def http_state(scope: Any, send: Any) -> None:
    record(event="request", path=scope["path"], method=scope["method"])
    await answer_json(send, {"state": dict(scope.get("state", {}))})


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    """Startup fills the state; shutdown is recorded after startup."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["pool"] = "connected"
                scope["state"]["counter"] = 41
                record(event="startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                record(event="shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    await http_state(scope, send)


async def failing_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send(
            {
                "type": "lifespan.startup.failed",
                "message": "Traceback (most recent call last):\n  File 'db.py', line 3\n"
                "ConnectionError: database unreachable\n",
            }
        )
        return
    record(event="request", path=scope["path"])


async def raising_app(scope: Any, receive: Any, send: Any) -> None:
    """Does not speak lifespan: raises on the lifespan scope."""
    if scope["type"] == "lifespan":
        raise RuntimeError("lifespan is not for me")
    await http_state(scope, send)


async def raising_startup_app(scope: Any, receive: Any, send: Any) -> None:
    """Speaks lifespan but its startup raises after receiving the event."""
    if scope["type"] == "lifespan":
        await receive()
        raise ValueError("cache warmup exploded")
    await http_state(scope, send)
