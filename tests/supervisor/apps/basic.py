"""A test app: answers with its pid; records lifespan events; can sleep, block, allocate.

Routes: / -> pid, /sleep?s=N (async sleep), /block?s=N (blocks the event loop),
/alloc?mb=N (keeps N MiB alive), /crash (kills its worker), /env?name=X (a variable),
/code -> "PID CODE".
Events are appended to $RUVICORN_TEST_EVENTS as "import PID" (module imported),
"startup PID", "shutdown PID" and
"request/sleep PID" / "request/block PID" when such a request reaches the app.
$RUVICORN_TEST_CODE names a file read once at import, standing in for the code a worker
runs (recorded as "code:CODE PID"); $RUVICORN_TEST_STARTUP_DELAY makes lifespan startup
take that many seconds (a worker that is slow to boot).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

_hoard: list[bytearray] = []


def _record(event: str) -> None:
    path = os.environ.get("RUVICORN_TEST_EVENTS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{event} {os.getpid()}\n".encode())
        finally:
            os.close(fd)


_record("import")
_code_file = os.environ.get("RUVICORN_TEST_CODE")
# No pathlib here: test_user_group_umask_chdir imports this app as nobody, who cannot read
# an interpreter installed under a root-only home; only the modules the worker already
# had before it switched users load then, and ruvicorn no longer imports pathlib.
if _code_file:
    with open(_code_file) as _handle:
        CODE = _handle.read().strip()
else:
    CODE = ""
if _code_file:
    _record(f"code:{CODE}")


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await asyncio.sleep(float(os.environ.get("RUVICORN_TEST_STARTUP_DELAY", "0")))
            _record("startup")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _record("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    query = dict(
        part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part
    )
    path = scope["path"]
    if path in ("/sleep", "/block"):
        _record(f"request{path}")
    if path == "/sleep":
        await asyncio.sleep(float(query.get("s", "1")))
    elif path == "/block":
        time.sleep(float(query.get("s", "1")))
    elif path == "/alloc":
        chunk = bytearray(int(query.get("mb", "1")) * 1024 * 1024)
        chunk[::4096] = b"x" * len(chunk[::4096])  # Touch every page so RSS grows.
        _hoard.append(chunk)
    elif path == "/crash":
        os._exit(1)
    body = str(os.getpid()).encode()
    if path == "/env":
        body = os.environ.get(query.get("name", ""), "").encode()
    elif path == "/code":
        body = f"{os.getpid()} {CODE}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})
