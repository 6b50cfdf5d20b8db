"""Choosing the worker's event loop."""

from __future__ import annotations

import asyncio
import importlib.util


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A fresh loop of ``kind``: auto (uvloop when importable), asyncio or uvloop."""
    if kind == "uvloop" or (kind == "auto" and uvloop_available()):
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()
