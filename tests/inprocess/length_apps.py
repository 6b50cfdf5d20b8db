"""Apps that declare a response of content-length 4 and send ``body`` (which may be
longer or shorter), shared by the HTTP/2 and HTTP/3 cases."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

LENGTH_HEADERS = [(b"content-length", b"4")]


def mismatched_length_app(body: bytes, raised: list[Exception]) -> Any:
    """Sends ``body`` whole and records the error its send() raised, if any."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": LENGTH_HEADERS})
        try:
            await send({"type": "http.response.body", "body": body})
        except RuntimeError as exc:
            raised.append(exc)

    return app


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
        await send({"type": "http.response.start", "status": 200, "headers": LENGTH_HEADERS})
        with contextlib.suppress(RuntimeError):
            await send({"type": "http.response.body", "body": body})
        await listener

    return app
