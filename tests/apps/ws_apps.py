"""WebSocket test app: the behaviour is chosen by the path (query parameters tune it).

Events a test must see from the app's side (the disconnect code, an exception raised by
send) are recorded as JSON lines in $TESTAPP_RECORD. Plain HTTP requests get a short
answer naming their scope type, so `--ws none` and the "still serving" checks use it too.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import parse_qs

RECORD = os.environ.get("TESTAPP_RECORD")
BOUND = 30.0  # seconds any wait in this app may last


def record(**event: Any) -> None:
    if RECORD:
        with open(RECORD, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")


def query(scope: dict[str, Any]) -> dict[str, str]:
    parsed = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


async def receive_bounded(receive: Any) -> dict[str, Any]:
    message: dict[str, Any] = await asyncio.wait_for(receive(), BOUND)
    return message


async def accept(receive: Any, send: Any, **extra: Any) -> None:
    message = await receive_bounded(receive)
    assert message["type"] == "websocket.connect", message
    await send({"type": "websocket.accept", **extra})


async def until_disconnect(
    receive: Any, send: Any, path: str, echo: bool, tag: str | None = None
) -> None:
    """Echo (or just read) until the client leaves; record how it left (with the
    connection's `tag` query parameter, so a test can tell its record from a late one)."""
    while True:
        message = await receive_bounded(receive)
        if message["type"] == "websocket.disconnect":
            record(
                event="disconnect",
                path=path,
                tag=tag,
                code=message["code"],
                reason=message.get("reason", ""),
            )
            return
        if echo:
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})


async def echo(scope: Any, receive: Any, send: Any) -> None:
    offered = scope["subprotocols"]
    pick = query(scope).get("pick")
    await accept(receive, send, subprotocol=pick if pick in offered else None)
    await until_disconnect(receive, send, scope["path"], echo=True, tag=query(scope).get("tag"))


async def scope_view(scope: Any, receive: Any, send: Any) -> None:
    await accept(receive, send, headers=[(b"x-custom", b"yes")])
    view = {
        "type": scope["type"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "query_string": scope["query_string"].decode(),
        "subprotocols": scope["subprotocols"],
        "extensions": scope["extensions"],
        "http_version": scope["http_version"],
        "asgi": scope["asgi"],
        "has_method": "method" in scope,
    }
    await send({"type": "websocket.send", "text": json.dumps(view)})
    await until_disconnect(receive, send, scope["path"], echo=False)


async def close_before_accept(scope: Any, receive: Any, send: Any) -> None:
    await receive_bounded(receive)
    await send({"type": "websocket.close"})


async def bad_accept_header(scope: Any, receive: Any, send: Any) -> None:
    """Accept with the header given hex-encoded in the query; when that is refused, record
    it and accept without it."""
    params = query(scope)
    header = (bytes.fromhex(params["name"]), bytes.fromhex(params["value"]))
    await receive_bounded(receive)
    try:
        await send({"type": "websocket.accept", "headers": [header]})
    except ValueError as exc:
        record(event="bad-accept-header", error=type(exc).__name__)
        await send({"type": "websocket.accept"})
    await until_disconnect(receive, send, scope["path"], echo=True)


async def deny(scope: Any, receive: Any, send: Any) -> None:
    await receive_bounded(receive)
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"1")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"away"})


async def close_with(scope: Any, receive: Any, send: Any) -> None:
    params = query(scope)
    await accept(receive, send)
    await receive_bounded(receive)  # wait for one message first
    await send(
        {
            "type": "websocket.close",
            "code": int(params.get("code", "1000")),
            "reason": params.get("reason", ""),
        }
    )
    try:
        await send({"type": "websocket.send", "text": "after close"})
    except RuntimeError as exc:
        record(event="send-after-app-close", error=type(exc).__name__)
    await until_disconnect(receive, send, scope["path"], echo=False)


async def raise_before(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("boom before accept")


async def return_before(scope: Any, receive: Any, send: Any) -> None:
    await receive_bounded(receive)


async def raise_after(scope: Any, receive: Any, send: Any) -> None:
    await accept(receive, send)
    await receive_bounded(receive)
    raise RuntimeError("boom after accept")


async def return_after(scope: Any, receive: Any, send: Any) -> None:
    await accept(receive, send)
    await receive_bounded(receive)


async def send_after_disconnect(scope: Any, receive: Any, send: Any) -> None:
    await accept(receive, send)
    await until_disconnect(receive, send, scope["path"], echo=False)
    try:
        await send({"type": "websocket.send", "text": "too late"})
    except OSError as exc:
        record(event="send-after-disconnect", error=type(exc).__name__, oserror=True)
    except Exception as exc:
        record(event="send-after-disconnect", error=type(exc).__name__, oserror=False)


async def flood(scope: Any, receive: Any, send: Any) -> None:
    """Send `count` numbered messages, then echo until the client leaves."""
    count = int(query(scope).get("count", "1000"))
    await accept(receive, send)
    for i in range(count):
        await send({"type": "websocket.send", "text": str(i)})
    await until_disconnect(receive, send, scope["path"], echo=True)


async def late_reader(scope: Any, receive: Any, send: Any) -> None:
    """Read nothing until the client says "go" on a second channel (a file), then count."""
    await accept(receive, send)
    gate = query(scope)["gate"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while not os.path.exists(gate) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    count = 0
    while True:
        message = await receive_bounded(receive)
        if message["type"] == "websocket.disconnect":
            break
        if message.get("text") == "done":
            await send({"type": "websocket.send", "text": str(count)})
            continue
        count += 1
    record(event="late-reader", count=count)


async def http(scope: Any, receive: Any, send: Any) -> None:
    body = f"http {scope['path']}".encode()
    record(
        event="http",
        path=scope["path"],
        upgrade=dict(scope["headers"]).get(b"upgrade", b"").decode(),
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def timed_out_receive(scope: Any, receive: Any, send: Any) -> None:
    """Give up on one receive(), then read: the message must still be there. Also: a
    second receive() while one waits is refused."""
    await accept(receive, send)
    try:
        await asyncio.wait_for(receive(), 0.3)
        first = "early"
    except TimeoutError:
        first = "timeout"
        record(event="receive-timed-out", path=scope["path"])  # the client sends now
    await asyncio.sleep(0.6)  # the message arrives while the cancelled receive() is pending
    got = await receive_bounded(receive)
    pending = asyncio.ensure_future(receive())
    await asyncio.sleep(0)
    try:
        await receive()
        second = "accepted"
    except RuntimeError:
        second = "refused"
    pending.cancel()
    await send({"type": "websocket.send", "text": f"{first} {got.get('text')} {second}"})
    await send({"type": "websocket.close"})


async def close_unread(scope: Any, receive: Any, send: Any) -> None:
    """Close while the client has filled the receive queue with unread messages."""
    await accept(receive, send)
    await asyncio.sleep(0.5)
    await send({"type": "websocket.close", "code": 1000})


ROUTES = {
    "/close-unread": close_unread,
    "/timed-out-receive": timed_out_receive,
    "/echo": echo,
    "/scope": scope_view,
    "/close-before-accept": close_before_accept,
    "/deny": deny,
    "/bad-accept-header": bad_accept_header,
    "/close": close_with,
    "/raise-before": raise_before,
    "/return-before": return_before,
    "/raise-after": raise_after,
    "/return-after": return_after,
    "/send-after-disconnect": send_after_disconnect,
    "/flood": flood,
    "/late-reader": late_reader,
}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await http(scope, receive, send)
        return
    record(event="websocket", path=scope["path"])
    await ROUTES.get(scope["path"], echo)(scope, receive, send)
