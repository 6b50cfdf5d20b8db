"""An application factory, served with --factory."""

from __future__ import annotations

from typing import Any


def create_app() -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"7")]}
        )
        await send({"type": "http.response.body", "body": b"factory"})

    return app


def broken_factory() -> Any:
    raise ValueError("missing SECRET_KEY")


not_callable = 42
