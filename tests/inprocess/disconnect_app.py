"""An app that waits for the disconnect while it answers, as a streaming response's
listener does: the HTTP/2 and HTTP/3 cases check that the wait ends."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


def disconnect_listener_app(body: bytes, got: list[str]) -> Any:
    """An app that leaves a receive() waiting for the disconnect (as a streaming
    response's listener does) while it sends a response of content-length 4 with
    ``body``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            got.append("disconnect")

        listener = asyncio.ensure_future(listen())
        await asyncio.sleep(0)
        headers = [(b"content-length", b"4")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        with contextlib.suppress(RuntimeError):
            await send({"type": "http.response.body", "body": body})
        await listener

    return app
