"""The native HTTP protocol driven in-process through a mock transport, on both loops.

Each test feeds request bytes to one protocol made from the worker's own state factory and
asserts on the bytes it wrote and how it treated the transport. The black-box suites cover
the same behaviours over real sockets; these are the seconds-long loop for protocol work.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from length_apps import disconnect_listener_app
from mockconn import MockConnection, Runner


class App:
    """An ASGI app whose answer each test picks by path; it records what it received."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.finished = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        try:
            handler = getattr(self, "path_" + scope["path"].strip("/").replace("-", "_"))
            await handler(receive, send)
        finally:
            self.finished += 1

    async def read_body(self, receive: Any) -> bytes:
        body = b""
        while True:
            message = await receive()
            self.messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                return body

    async def path_echo(self, receive: Any, send: Any) -> None:
        body = await self.read_body(receive)
        scope = self.scopes[-1]
        answer = f"{scope['method']} {scope['path']} ".encode() + body
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(answer)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def path_boom(self, receive: Any, send: Any) -> None:
        raise RuntimeError("the app broke before answering")

    async def path_stream(self, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})

    async def path_wait(self, receive: Any, send: Any) -> None:
        await self.read_body(receive)
        self.messages.append(await receive())  # nothing more to read: waits for the client


def get(path: str, *headers: str, version: str = "1.1") -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_get(run: Runner) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(get("/echo"))
        [resp] = await conn.responses(1)
        assert resp.status == 200
        assert resp.body == b"GET /echo "
        assert resp.headers["content-length"] == "10"
        assert app.scopes[0]["client"] == ("127.0.0.1", 50123)
        assert app.scopes[0]["server"] == ("127.0.0.1", 8000)

    run(scenario)


@pytest.mark.parametrize(
    ("peername", "sockname", "client", "server"),
    [
        (("::1", 50123, 0, 0), ("::1", 8000, 0, 0), ("::1", 50123), ("::1", 8000)),
        ("", "/run/app.sock", None, ("/run/app.sock", None)),
    ],
    ids=["ipv6", "unix"],
)
def test_scope_addresses(
    run: Runner, peername: Any, sockname: Any, client: Any, server: Any
) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app, extra={"peername": peername, "sockname": sockname})
        conn.send(get("/echo"))
        [resp] = await conn.responses(1)
        assert resp.status == 200
        assert app.scopes[0]["client"] == client
        assert app.scopes[0]["server"] == server

    run(scenario)


def test_scope_addresses_on_every_keep_alive_request(run: Runner) -> None:
    """From its second request on a connection's scopes copy a template holding its
    addresses: each request still gets them, and an app's changes to one scope stay in
    it."""

    class Changing(App):
        def __init__(self) -> None:
            super().__init__()
            self.addresses: list[Any] = []

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            self.addresses.append((scope["client"], scope["server"]))
            scope["client"] = ("changed", 1)
            del scope["server"]
            await super().__call__(scope, receive, send)

    app = Changing()

    async def scenario() -> None:
        conn = MockConnection(app)
        for done in range(1, 5):
            conn.send(get("/echo"))
            await conn.responses(done)
        assert app.addresses == [(("127.0.0.1", 50123), ("127.0.0.1", 8000))] * 4

    run(scenario)


def test_forwarded_client_is_per_request_on_a_keep_alive_connection(run: Runner) -> None:
    app = App()
    forwarded = "X-Forwarded-For: 203.0.113.7"

    async def scenario() -> None:
        conn = MockConnection(app, proxy_headers=True, forwarded_allow_ips="*")
        for done, headers in enumerate([(), (forwarded,), (), (forwarded,), ()], start=1):
            conn.send(get("/echo", *headers))
            await conn.responses(done)
        clients = [s["client"] for s in app.scopes]
        peer, proxied = ("127.0.0.1", 50123), ("203.0.113.7", 0)
        assert clients == [peer, proxied, peer, proxied, peer]
        assert all(s["server"] == ("127.0.0.1", 8000) for s in app.scopes)

    run(scenario)


def test_scope_fields_differing_from_the_usual_request(run: Runner) -> None:
    """A scope starts from a template holding the usual values (GET, HTTP/1.1, http, no
    query) and only what differs is set: each request on one connection gets its own."""
    app = App()
    head = b"HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n"
    requests = [
        b"GET /echo " + head,
        b"POST /echo?a=1&b " + head,
        b"GET /echo " + head,
        b"DELETE /echo? " + head,
        b"GET /echo HTTP/1.0\r\nHost: test\r\nConnection: keep-alive\r\n\r\n",
        b"GET /echo?x " + head,
    ]
    expected = [
        ("GET", "1.1", b""),
        ("POST", "1.1", b"a=1&b"),
        ("GET", "1.1", b""),
        ("DELETE", "1.1", b""),
        ("GET", "1.0", b""),
        ("GET", "1.1", b"x"),
    ]

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(b"".join(requests))
        responses = await conn.responses(len(requests))
        assert [r.status for r in responses] == [200] * len(requests)
        seen = [(s["method"], s["http_version"], s["query_string"]) for s in app.scopes]
        assert seen == expected
        assert all(s["scheme"] == "http" and s["type"] == "http" for s in app.scopes)
        assert len({id(s) for s in app.scopes}) == len(requests)

    run(scenario)


def test_body_messages_are_whole_and_each_its_own(run: Runner) -> None:
    """Each body message carries type, body and more_body, and is a dict of its own: an
    app that changes one (as middleware may) does not change the next."""
    received: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(dict(message))
            message["body"] = b"changed"
            message["more_body"] = "changed"
            if received[-1]["more_body"] is False:
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    head = b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(head + b"2\r\nab\r\n")
        await conn.until(lambda: received, "the first body part")
        conn.send(b"1\r\nc\r\n")
        await conn.until(lambda: len(received) == 2, "the second body part")
        conn.send(b"0\r\n\r\n")
        [resp] = await conn.responses(1)
        assert resp.status == 204
        assert received == [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"c", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": False},
        ]

    run(scenario)


def test_post_with_a_chunked_body(run: Runner) -> None:
    app = App()
    head = b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(head + b"5\r\nhello\r\n")
        await conn.until(lambda: app.messages, "the first body chunk")
        conn.send(b"6\r\n world\r\n0\r\n\r\n")
        [resp] = await conn.responses(1)
        assert resp.status == 200
        assert resp.body == b"POST /echo hello world"
        assert all(m["type"] == "http.request" for m in app.messages)
        assert app.messages[-1].get("more_body", False) is False

    run(scenario)


def test_pipelined_requests_are_answered_in_order(run: Runner) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(get("/echo?1") + get("/echo") + get("/echo?3"))
        responses = await conn.responses(3)
        assert [r.status for r in responses] == [200, 200, 200]
        assert [s["query_string"] for s in app.scopes] == [b"1", b"", b"3"]
        assert all(r.body == b"GET /echo " for r in responses)
        assert not conn.transport.closed

    run(scenario)


def test_malformed_head_is_400_and_closes(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(b"GET /echo HTTP/1.1\r\nHost: test\r\nBad Header\r\n\r\n")
        [resp] = await conn.responses(1)
        assert resp.status == 400
        await conn.until(lambda: conn.transport.closed, "the close after a 400")
        assert app.scopes == []

    with caplog.at_level(logging.WARNING):
        run(scenario)
    assert "Invalid HTTP request from 127.0.0.1: " in caplog.text


@pytest.mark.parametrize(
    ("request_bytes", "closes"),
    [
        (get("/echo"), False),
        (get("/echo", "Connection: close"), True),
        (get("/echo", version="1.0"), True),
        (get("/echo", "Connection: keep-alive", version="1.0"), False),
    ],
    ids=["1.1", "1.1-close", "1.0", "1.0-keep-alive"],
)
def test_keep_alive_or_close(run: Runner, request_bytes: bytes, closes: bool) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(request_bytes)
        [resp] = await conn.responses(1)
        assert resp.status == 200
        await conn.idle()
        assert conn.transport.closed is closes
        assert (resp.headers.get("connection", "").lower() == "close") is closes

    run(scenario)


def test_app_exception_is_500_and_logged(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(get("/boom"))
        [resp] = await conn.responses(1)
        assert resp.status == 500
        await conn.until(lambda: app.finished, "the app's end")

    logger = logging.getLogger("ruvicorn.error")
    logger.addHandler(caplog.handler)
    try:
        run(scenario)
    finally:
        logger.removeHandler(caplog.handler)
    assert "the app broke before answering" in caplog.text


def test_streaming_response_is_chunked(run: Runner) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(get("/stream"))
        [resp] = await conn.responses(1)
        assert resp.status == 200
        assert resp.headers["transfer-encoding"] == "chunked"
        assert resp.body == b"one,two,three"
        assert bytes(conn.transport.written).endswith(b"0\r\n\r\n")

    run(scenario)


@pytest.mark.parametrize("length", [False, True], ids=["chunked", "content-length"])
def test_large_body_parts_are_written_from_the_apps_own_bytes(run: Runner, length: bool) -> None:
    """On uvloop a large body part goes to the transport as the app's object (no copy in
    user space), framed correctly before and after; a small one is copied together with its
    framing. On asyncio's loop, whose selector transports do not pause the protocol from
    ``writelines`` on every Python this runs on, every part is copied into one write."""
    parts = [bytes([n]) * (64 * 1024) for n in range(3)] + [b"tail"]
    headers = [(b"content-length", str(sum(map(len, parts))).encode())] if length else []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, part in enumerate(parts):
            more = index < len(parts) - 1
            await send({"type": "http.response.body", "body": part, "more_body": more})

    async def scenario() -> None:
        conn = MockConnection(app)
        for _ in range(2):  # keep-alive: the second response follows the first intact
            conn.send(get("/"))
        first, second = await conn.responses(2)
        for resp in (first, second):
            assert resp.status == 200
            assert resp.body == b"".join(parts)
            assert ("content-length" in resp.headers) is length
        written = conn.transport.writes
        vectored = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        for part in parts[:3]:
            assert sum(1 for chunk in written if chunk is part) == (2 if vectored else 0)
        assert not any(chunk is parts[3] for chunk in written)

    run(scenario)


def test_an_app_returning_another_awaitable_is_served(run: Runner) -> None:
    """Apps need not be ``async def``: any awaitable (Cython and class-based apps return
    such) runs, across a suspension on a foreign future."""

    async def answer(send: Any) -> None:
        await asyncio.sleep(0.001)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"awaited"})

    class Awaitable:
        def __init__(self, scope: Any, receive: Any, send: Any) -> None:
            self.send = send

        def __await__(self) -> Any:
            return answer(self.send).__await__()

    async def scenario() -> None:
        conn = MockConnection(Awaitable)
        conn.send(get("/") + get("/"))
        first, second = await conn.responses(2)
        assert (first.status, first.body) == (200, b"awaited")
        assert (second.status, second.body) == (200, b"awaited")

    run(scenario)


def test_a_receive_answered_at_once_is_a_coroutine_every_way_it_is_awaited(run: Runner) -> None:
    """``receive()`` with its message already there returns an awaitable built for speed
    (on 3.11 a native one, else a coroutine); apps and libraries await it directly, through
    ``ensure_future``, ``create_task`` and ``wait_for``, or drive it by hand."""
    got: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        got.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        # The response is complete: each receive() now answers a disconnect at once.
        got.append(await asyncio.ensure_future(receive()))
        got.append(await asyncio.create_task(receive()))
        got.append(await asyncio.wait_for(receive(), 5))
        pending = receive()
        assert asyncio.iscoroutine(pending)
        with pytest.raises(StopIteration) as stopped:
            pending.send(None)
        got.append(stopped.value.value)
        with pytest.raises(KeyError, match="thrown in"):
            receive().throw(KeyError("thrown in"))
        receive().close()
        got.append(await receive())

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nab")
        [resp] = await conn.responses(1)
        assert resp.status == 204
        await conn.until(lambda: len(got) == 6, "the app's last receive()")
        assert got[0] == {"type": "http.request", "body": b"ab", "more_body": False}
        assert got[1:] == [{"type": "http.disconnect"}] * 5

    run(scenario)


def test_a_send_that_need_not_wait_is_a_coroutine_every_way_it_is_awaited(run: Runner) -> None:
    """``send()`` that has nothing to wait for returns one shared awaitable; apps and
    libraries await it directly, through ``ensure_future``, ``create_task`` and
    ``wait_for``, or drive it by hand, and each time it gives None."""
    got: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        got.append(await send({"type": "http.response.start", "status": 200, "headers": []}))
        for way in ("ensure_future", "create_task", "wait_for", "by_hand", "await"):
            pending = send({"type": "http.response.body", "body": b"ab", "more_body": True})
            assert asyncio.iscoroutine(pending)
            if way == "ensure_future":
                got.append(await asyncio.ensure_future(pending))
            elif way == "create_task":
                got.append(await asyncio.create_task(pending))
            elif way == "wait_for":
                got.append(await asyncio.wait_for(pending, 5))
            elif way == "by_hand":
                with pytest.raises(StopIteration) as stopped:
                    pending.send(None)
                got.append(stopped.value.value)
                with pytest.raises(StopIteration):
                    next(pending.__await__())
            else:
                got.append(await pending)
        with pytest.raises(KeyError, match="thrown in"):
            send({"type": "http.response.body", "body": b"", "more_body": True}).throw(
                KeyError("thrown in")
            )
        send({"type": "http.response.body", "body": b"", "more_body": True}).close()
        got.append(await send({"type": "http.response.body", "body": b"end"}))

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(get("/"))
        [resp] = await conn.responses(1)
        assert (resp.status, resp.body) == (200, b"ab" * 5 + b"end")
        assert got == [None] * 7

    run(scenario)


@pytest.mark.parametrize("body", [b"abcd", b"ab", b"toolong"], ids=["whole", "short", "long"])
def test_a_waiting_receive_gets_the_disconnect_once_the_response_is_done(
    run: Runner, body: bytes
) -> None:
    """As on HTTP/2 and HTTP/3: once the response is complete (or cut for not matching its
    content-length), a receive() left waiting is answered; for a complete one while the
    connection stays open for the next request."""
    got: list[str] = []

    async def scenario() -> None:
        conn = MockConnection(disconnect_listener_app(body, got))
        conn.send(get("/"))
        await conn.until(lambda: got, "the disconnect")
        assert got == ["disconnect"]
        if body == b"abcd":
            assert not conn.transport.closed
            assert [r.status for r in await conn.responses(1)] == [200]

    run(scenario)


def test_disconnect_while_the_app_waits_in_receive(run: Runner) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(get("/wait"))
        await conn.until(lambda: app.messages, "the request body")
        await conn.idle()
        assert app.finished == 0, "receive() returned before the client left"
        conn.disconnect()
        await conn.until(lambda: app.finished, "the app's end")
        assert app.messages[-1] == {"type": "http.disconnect"}
        assert conn.transport.written == b""
        await conn.until(lambda: conn.state.connections == 0, "the connection's release")

    run(scenario)
