"""The ``http.response.pathsend`` extension: the server streams a file the app names.

The native protocol announces the file's length; this coroutine feeds it through the same
``send`` the app uses, so flow control and framing stay in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

CHUNK = 256 * 1024


async def send_file(send: Callable[[dict[str, Any]], Awaitable[None]], path: str) -> None:
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
