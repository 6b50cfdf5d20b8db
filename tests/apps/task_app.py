"""An app that reports the asyncio task semantics its requests run under.

With ``TASK_APP_EAGER=1`` its lifespan startup installs ``asyncio.eager_task_factory`` on
the running loop (Python 3.12+), as some apps and libraries do, so the tests can check that
ruvicorn's own scheduling stays correct under it.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import sys
from typing import Any

request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="")


def _stack_depth() -> int:
    frame = sys._getframe()
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return depth


async def _timeout() -> dict[str, Any]:
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(5)
    except TimeoutError:
        pass
    else:
        return {"timed_out": False}
    # The request task must still be usable after its own timeout fired.
    await asyncio.sleep(0)
    return {"timed_out": True, "cancelling": _current().cancelling()}


async def _task_group() -> dict[str, Any]:
    async def fail() -> None:
        await asyncio.sleep(0)
        raise ValueError("child failed")

    async def sleeper() -> None:
        await asyncio.sleep(5)

    caught: list[str] = []
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(sleeper())
            group.create_task(fail())
    except* ValueError as group_error:
        caught = [str(e) for e in group_error.exceptions]
    return {"caught": caught, "cancelling": _current().cancelling()}


async def _context(path: str) -> dict[str, Any]:
    request_var.set(path)
    await asyncio.sleep(0)
    child = await asyncio.get_running_loop().create_task(_read_var())
    return {"var": request_var.get(), "child_saw": child}


async def _read_var() -> str:
    return request_var.get()


async def _registry() -> dict[str, Any]:
    """Whether this request's Task is registered with asyncio before and after it
    suspends, how many weak references asyncio's set of Tasks holds, and what adds to it."""
    me = _current()
    listed_at_start = me in asyncio.all_tasks()
    await asyncio.sleep(0)
    registry = getattr(asyncio.tasks, "_scheduled_tasks", None)
    if registry is None:
        registry = asyncio.tasks._all_tasks  # type: ignore[attr-defined]
    return {
        "listed": [listed_at_start, me in asyncio.all_tasks()],
        "registered": len(registry.data),
        "adder": type(vars(registry).get("add")).__name__,
    }


def _current() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None
    return task


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if os.environ.get("TASK_APP_EAGER") == "1":
                asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class _App:
    """Called as a plain function, as a class-based app is: what its call sees of the
    context, before any coroutine runs, is reported too."""

    def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        return _serve(scope, receive, send, request_var.get())


app = _App()


async def _serve(scope: Any, receive: Any, send: Any, seen_at_call: str) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope["path"]
    if path == "/timeout":
        data = await _timeout()
    elif path == "/taskgroup":
        data = await _task_group()
    elif path == "/registry":
        data = await _registry()
    elif path.startswith("/context/"):
        data = await _context(path)
    else:
        data = {"depth": _stack_depth(), "task": _current().get_name(), "path": path}
    if request_var.get() not in ("", path):
        data["leaked"] = request_var.get()
    if seen_at_call:
        data["leaked_at_call"] = seen_at_call
    body = json.dumps(data).encode()
    if path.startswith("/child/"):
        # Sent from a child Task, as a streaming response does: the next pipelined request
        # then starts inside that child's send().
        await asyncio.get_running_loop().create_task(_respond(send, body))
        return
    await _respond(send, body)


async def _respond(send: Any, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
