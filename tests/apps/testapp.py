"""The core test app: one ASGI app whose behaviour is chosen by the request path.

Every HTTP request is recorded (one JSON line in $TESTAPP_RECORD) the moment the app is
called, so a test can prove the app never saw a request the server had to refuse. Other
events (body complete, disconnect seen, exceptions raised by send) are recorded too.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

RECORD = os.environ.get("TESTAPP_RECORD")
GATE_BOUND = 60.0  # seconds any wait in this app may last


def record(**event: Any) -> None:
    if RECORD:
        with open(RECORD, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")


def jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def type_name(value: Any) -> str:
    return type(value).__name__


def query(scope: dict[str, Any]) -> dict[str, str]:
    parsed = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


async def respond(
    send: Any,
    body: bytes,
    status: int = 200,
    headers: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = b"text/plain",
) -> None:
    hdrs = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": hdrs + (headers or [])})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any) -> tuple[bytes, int, bool]:
    """The whole request body, the number of http.request messages, and disconnected."""
    body = bytearray()
    messages = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body), messages, True
        messages += 1
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body), messages, False


async def wait_for_file(path: str) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GATE_BOUND
    while not os.path.exists(path):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


# -- lifespan


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["from_lifespan"] = "yes"
            scope["state"]["shared_list"] = []
            record(event="startup")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            record(event="shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


#: Every ``tls`` extension dict seen, held so that no two are ever confused (an id could be
#: reused once a dict is freed).
TLS_DICTS: list[Any] = []


def tls_dict_number(scope: dict[str, Any]) -> int | None:
    """Which ``tls`` extension dict this request has (the same for requests sharing one)."""
    tls = scope.get("extensions", {}).get("tls")
    if tls is None:
        return None
    for number, seen in enumerate(TLS_DICTS):
        if seen is tls:
            return number
    TLS_DICTS.append(tls)
    return len(TLS_DICTS) - 1


# -- routes


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await respond(send, b"ok")


async def scope_view(scope: Any, receive: Any, send: Any) -> None:
    """The scope as JSON (bytes as latin-1 text) plus the Python type of every key."""
    body, _, _ = await read_body(receive)
    data = {k: jsonable(v) for k, v in scope.items() if k != "state"}
    data["state_keys"] = sorted(scope.get("state", {}))
    data["types"] = {k: type_name(v) for k, v in scope.items()}
    data["header_types"] = sorted(
        {f"{type_name(n)}/{type_name(v)}" for n, v in scope["headers"]}
        | {type_name(h) for h in scope["headers"]}
    )
    data["body"] = body.decode("latin-1")
    data["tls_dict"] = tls_dict_number(scope)
    # An app may add to its scope's extensions: the next request must not see it.
    scope["extensions"]["testapp.seen"] = True
    await respond(send, json.dumps(data).encode(), content_type=b"application/json")


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """Read the whole body, then answer it with a Content-Length."""
    body, messages, disconnected = await read_body(receive)
    record(event="body", path=scope["path"], size=len(body), disconnected=disconnected)
    if disconnected:
        return
    await respond(send, body, headers=[(b"x-body-messages", str(messages).encode())])


async def echo_stream(scope: Any, receive: Any, send: Any) -> None:
    """Echo each body message as it arrives, with no Content-Length (chunked framing)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
        await send(
            {"type": "http.response.body", "body": message.get("body", b""), "more_body": more}
        )
        if not more:
            return


async def stream(scope: Any, receive: Any, send: Any) -> None:
    """``chunks`` chunks of ``size`` bytes; with ``cl=1`` a Content-Length is sent."""
    q = query(scope)
    chunks, size = int(q.get("chunks", "3")), int(q.get("size", "5"))
    headers = [(b"content-type", b"application/octet-stream")]
    if q.get("cl") == "1":
        headers.append((b"content-length", str(chunks * size).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for i in range(chunks):
        piece = (b"%d" % (i % 10)) * size
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def slow(scope: Any, receive: Any, send: Any) -> None:
    seconds = float(query(scope).get("seconds", "1"))
    record(event="slow-start", path=scope["path"])
    await asyncio.sleep(seconds)
    await respond(send, b"slow done")
    record(event="slow-done")


async def pid(scope: Any, receive: Any, send: Any) -> None:
    """Which worker process served the request, and how many body bytes it read."""
    body, _, disconnected = await read_body(receive)
    if not disconnected:
        await respond(send, b"%d %d" % (os.getpid(), len(body)))


async def raise_before(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("raised before the response started")


async def raise_after(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("raised after the response started")


async def no_response(scope: Any, receive: Any, send: Any) -> None:
    return


async def short_cl(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]}
    )
    await send({"type": "http.response.body", "body": b"12345"})


async def close_header(scope: Any, receive: Any, send: Any) -> None:
    await respond(send, b"closing", headers=[(b"connection", b"close")])


async def wait_disconnect(scope: Any, receive: Any, send: Any) -> None:
    """Never answer; record when the client's disconnect is delivered."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            record(event="disconnect", path=scope["path"])
            return


async def stream_until_disconnect(scope: Any, receive: Any, send: Any) -> None:
    """Stream chunks while watching receive(): the disconnect must arrive mid-stream."""
    disconnected = asyncio.Event()

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                record(event="disconnect", path=scope["path"])
                disconnected.set()
                return

    watcher = asyncio.ensure_future(watch())
    await send({"type": "http.response.start", "status": 200, "headers": []})
    error = None
    try:
        for _ in range(int(GATE_BOUND / 0.01)):
            if disconnected.is_set():
                break
            await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
            await asyncio.sleep(0.01)
    except OSError as exc:
        error = type(exc).__name__
    record(event="stream-ended", disconnected=disconnected.is_set(), error=error)
    if not disconnected.is_set():
        await asyncio.wait([watcher], timeout=GATE_BOUND)
    watcher.cancel()


async def send_after_disconnect(scope: Any, receive: Any, send: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    try:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"too late"})
    except Exception as exc:
        record(
            event="send-after-disconnect",
            raised=type(exc).__name__,
            is_oserror=isinstance(exc, OSError),
        )
    else:
        record(event="send-after-disconnect", raised=None, is_oserror=False)


async def pathsend(scope: Any, receive: Any, send: Any) -> None:
    q = query(scope)
    path = q["file"]
    headers = [(b"content-type", b"application/octet-stream")]
    if q.get("cl") == "1":
        headers.append((b"content-length", str(Path(path).stat().st_size).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.pathsend", "path": path})


async def gate(scope: Any, receive: Any, send: Any) -> None:
    """Record entry, wait for the gate file to exist, only then receive() the body."""
    record(event="gate-entered", path=scope["path"])
    if not await wait_for_file(query(scope)["gate"]):
        await respond(send, b"gate never opened", status=500)
        return
    body, _, _ = await read_body(receive)
    await respond(send, body)


async def respond_then_wait(scope: Any, receive: Any, send: Any) -> None:
    """Answer at once, then keep working until the gate file exists (a background task)."""
    await respond(send, b"answered")
    await wait_for_file(query(scope)["gate"])
    record(event="after-response-done", path=scope["path"])


async def no_read(scope: Any, receive: Any, send: Any) -> None:
    """Answer without reading the request body (100-continue must not be sent)."""
    await respond(send, b"did not read")


async def hold_body(scope: Any, receive: Any, send: Any) -> None:
    """Never read the body until the gate opens; then answer (body left unread)."""
    record(event="hold-entered")
    await wait_for_file(query(scope)["gate"])
    await respond(send, b"held")


def flood_chunk(offset: int, size: int) -> bytes:
    """The numbered chunk of a /flood body at ``offset``."""
    return (b"%016d" % offset + b"f" * size)[:size]


async def flood(scope: Any, receive: Any, send: Any) -> None:
    """Stream ``total`` bytes as fast as send() allows; progress goes to ``progress``.
    With ``numbered=1`` each chunk starts with its offset (16 digits), so a client can
    tell a body whose pieces were lost, repeated or reordered (see ``flood_chunk``)."""
    q = query(scope)
    total, size = int(q["total"]), int(q.get("size", str(64 * 1024)))
    progress = q["progress"]
    numbered = q.get("numbered") == "1"
    chunk = b"f" * size
    await send({"type": "http.response.start", "status": 200, "headers": []})
    sent = 0
    try:
        while sent < total:
            if numbered:
                chunk = flood_chunk(sent, size)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += size
            if sent % (1024 * 1024) < size:
                Path(progress).write_text(str(sent))
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except BaseException as exc:
        record(event="flood-ended", raised=type(exc).__name__)
        raise
    finally:
        Path(progress).write_text(str(sent))


async def cancel_me(scope: Any, receive: Any, send: Any) -> None:
    """Sleep long; record the cancellation when it comes and what a send() then raises.
    With ``?gate=`` the app ignores its cancellation and waits for the gate file."""
    q = query(scope)
    record(event="cancel-me-start", path=scope["path"])
    try:
        await asyncio.sleep(GATE_BOUND)
    except asyncio.CancelledError:
        raised = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except Exception as exc:
            raised = type(exc).__name__
        record(event="cancelled", send_raised=raised)
        if "gate" not in q:
            raise
        await wait_for_file(q["gate"])
        return
    await respond(send, b"never cancelled")


async def state_view(scope: Any, receive: Any, send: Any) -> None:
    state = scope["state"]
    snapshot = {k: v for k, v in state.items() if k != "shared_list"}
    state["mutated_by_request"] = True  # must not leak into the next request's scope
    await respond(send, json.dumps(snapshot).encode(), content_type=b"application/json")


async def head_stream(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"streamed body", "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def status(scope: Any, receive: Any, send: Any) -> None:
    code = int(query(scope).get("code", "200"))
    body = b"" if code in (204, 304) else b"status body"
    headers = [] if code in (204, 304) else [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def task_context(scope: Any, receive: Any, send: Any) -> None:
    """The app runs in a real asyncio Task: contextvars, anyio task groups, cancellation."""
    import anyio

    token = query(scope).get("token", "")
    before = REQUEST_ID.get()
    REQUEST_ID.set(token)
    seen_in_child: list[str] = []

    async def child() -> None:
        await anyio.sleep(0)
        seen_in_child.append(REQUEST_ID.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(child)
    cancelled = False
    with anyio.move_on_after(0.01) as cancel_scope:
        await anyio.sleep(5)
    cancelled = cancel_scope.cancelled_caught
    data = {
        "has_task": asyncio.current_task() is not None,
        "before": before,
        "child_saw": seen_in_child,
        "cancel_scope_worked": cancelled,
    }
    await respond(send, json.dumps(data).encode(), content_type=b"application/json")


async def long_cl(scope: Any, receive: Any, send: Any) -> None:
    """Send more body than the Content-Length announced."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]}
    )
    await send({"type": "http.response.body", "body": b"abcHTTP/1.1 200 OK\r\n\r\n"})


async def bad_response_header(scope: Any, receive: Any, send: Any) -> None:
    """Try to split the response with CRLF in a header value (or name)."""
    where = query(scope).get("where", "value")
    header = (
        (b"x-ok", b"a\r\nx-injected: yes") if where == "value" else (b"x-ok\r\nx-injected", b"yes")
    )
    try:
        await send({"type": "http.response.start", "status": 200, "headers": [header]})
        await send({"type": "http.response.body", "body": b"split"})
    except Exception as exc:
        record(event="bad-header-refused", error=type(exc).__name__)
        raise


async def body_before_start(scope: Any, receive: Any, send: Any) -> None:
    try:
        await send({"type": "http.response.body", "body": b"no start"})
    except Exception as exc:
        record(event="out-of-order-refused", error=type(exc).__name__)
        raise


async def cancelled_receive(scope: Any, receive: Any, send: Any) -> None:
    """Give up on a receive() (as a timeout or cancel scope does), then read the body."""
    try:
        await asyncio.wait_for(receive(), 0.3)
    except TimeoutError:
        record(event="receive-timed-out", path=scope["path"])
    await asyncio.sleep(0.6)  # the body arrives while the cancelled receive() is pending
    body, _, _ = await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"got:" + body})


async def stream_then_receive(scope: Any, receive: Any, send: Any) -> None:
    """Start streaming before reading a body that expects 100-continue."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    message = await asyncio.wait_for(receive(), 2.0)
    record(event="after-stream-receive", type=message["type"])
    await send({"type": "http.response.body", "body": b""})


async def start_then_raise(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise RuntimeError("raised after start, before any body")


async def two_receivers(scope: Any, receive: Any, send: Any) -> None:
    """Two receive() calls wait at once: one gets the body, the other is not forgotten."""
    first = asyncio.ensure_future(receive())
    second = asyncio.ensure_future(receive())
    done, _ = await asyncio.wait({first, second}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    message = done.pop().result() if done else {"body": b"none"}
    other = second if first in done or not done else first
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": message.get("body", b"")})
    later = await asyncio.wait_for(other, 5)
    record(event="second-receive", path=scope["path"], type=later["type"])


ROUTES = {
    "/cancelled-receive": cancelled_receive,
    "/stream-then-receive": stream_then_receive,
    "/start-then-raise": start_then_raise,
    "/two-receivers": two_receivers,
    "/long-cl": long_cl,
    "/bad-response-header": bad_response_header,
    "/body-before-start": body_before_start,
    "/task-context": task_context,
    "/ok": ok,
    "/scope": scope_view,
    "/echo": echo,
    "/echo-stream": echo_stream,
    "/stream": stream,
    "/slow": slow,
    "/pid": pid,
    "/raise-before": raise_before,
    "/raise-after": raise_after,
    "/no-response": no_response,
    "/short-cl": short_cl,
    "/close": close_header,
    "/wait-disconnect": wait_disconnect,
    "/stream-until-disconnect": stream_until_disconnect,
    "/send-after-disconnect": send_after_disconnect,
    "/pathsend": pathsend,
    "/gate": gate,
    "/no-read": no_read,
    "/respond-then-wait": respond_then_wait,
    "/hold-body": hold_body,
    "/flood": flood,
    "/cancel-me": cancel_me,
    "/state": state_view,
    "/head-stream": head_stream,
    "/status": status,
}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    record(event="request", method=scope["method"], path=scope["path"])
    route = ROUTES.get(scope["path"], scope_view)
    await route(scope, receive, send)
