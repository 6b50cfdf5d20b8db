"""The QUIC endpoint in-process: a real loopback UDP socket and aioquic's client on the
test's own loop, with the loop the endpoint sees wrapped to watch its timer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from h3client import BOUND, H3Client, ResetByServer, h3_connect
from length_apps import disconnect_listener_app, mismatched_length_app
from mockconn import Runner, worker_state
from tlspeer import Certs

from ruvicorn import _native
from ruvicorn.worker.quic import QuicProtocol


class TimerWatch:
    """The loop as the endpoint sees it; every ``call_at`` it makes is checked: the timer
    it armed before has run or was cancelled (one timer per endpoint, never more)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.handles: list[asyncio.TimerHandle] = []
        self.fired: set[int] = set()
        self.overlaps = 0

    def call_at(self, when: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        live = [h for h in self.handles if not h.cancelled() and id(h) not in self.fired]
        self.overlaps += len(live)
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            assert handle is not None
            self.fired.add(id(handle))
            callback(*args)

        handle = self.loop.call_at(when, fire)
        self.handles.append(handle)
        return handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = body or json.dumps({"http_version": scope["http_version"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": answer})


def test_one_timer_per_endpoint(run: Runner, certs: Certs, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    certs.ca.cert_pem.write_to_path(str(ca_file))

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        state = worker_state(echo, http3=True, **certs.settings())
        watch = TimerWatch(loop)
        endpoint = _native.QuicEndpoint(state, watch)  # type: ignore[arg-type]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(
            lambda: QuicProtocol(endpoint), sock=sock
        )
        try:
            async with h3_connect("127.0.0.1", port, ca_file) as client:
                first = await client.request("GET", "/")
                assert json.loads(first.body) == {"http_version": "3"}
                bodies = [os.urandom(64 * 1024 + i) for i in range(8)]
                waiters = [client.start("POST", "/", body) for body in bodies]
                answers = await asyncio.wait_for(asyncio.gather(*waiters), 10)
                assert [a.body for a in answers] == bodies
                assert endpoint.connections == 1
        finally:
            transport.close()
        assert watch.handles, "the endpoint never armed its timer"
        assert watch.overlaps == 0

    run(scenario)


def test_a_client_leaving_with_no_error_is_no_protocol_error(
    run: Runner, certs: Certs, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """This client leaves with code 0, which names no HTTP/3 error: counted as
    H3_NO_ERROR (RFC 9114 8.1), the connection ends cleanly, with no "Protocol error"."""
    ca_file = tmp_path / "ca.pem"
    certs.ca.cert_pem.write_to_path(str(ca_file))

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        endpoint = _native.QuicEndpoint(worker_state(echo, http3=True, **certs.settings()), loop)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        transport, _ = await loop.create_datagram_endpoint(
            lambda: QuicProtocol(endpoint), sock=sock
        )
        try:
            async with h3_connect("127.0.0.1", sock.getsockname()[1], ca_file) as client:
                assert (await client.request("GET", "/")).status == 200
            deadline = loop.time() + BOUND
            while endpoint.connections and loop.time() < deadline:
                await asyncio.sleep(0.01)
            assert endpoint.connections == 0, "the client's close never reached the endpoint"
        finally:
            transport.close()

    run(scenario)
    assert not [r for r in caplog.records if "Protocol error" in r.getMessage()]


@asynccontextmanager
async def serve(app: Any, certs: Certs, tmp_path: Path) -> AsyncIterator[H3Client]:
    """``app`` on an endpoint of a loopback UDP socket, and a client connected to it."""
    ca_file = tmp_path / "ca.pem"
    certs.ca.cert_pem.write_to_path(str(ca_file))
    loop = asyncio.get_running_loop()
    endpoint = _native.QuicEndpoint(worker_state(app, http3=True, **certs.settings()), loop)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    transport, _ = await loop.create_datagram_endpoint(lambda: QuicProtocol(endpoint), sock=sock)
    try:
        async with h3_connect("127.0.0.1", sock.getsockname()[1], ca_file) as client:
            yield client
    finally:
        transport.close()


@pytest.mark.parametrize("body", [b"toolong", b"ab"])
def test_a_body_not_matching_its_content_length_is_reset(
    run: Runner, certs: Certs, tmp_path: Path, body: bytes
) -> None:
    """Never past the declared length and never ended as complete: the stream is reset
    with H3_INTERNAL_ERROR after the head; a body too long makes send() raise."""
    raised: list[Exception] = []
    app = mismatched_length_app(body, raised)

    async def scenario() -> None:
        async with serve(app, certs, tmp_path) as client:
            with pytest.raises(ResetByServer, match="stream reset 0x102"):
                await client.request("GET", "/")
            (response,) = client.responses.values()
            assert response.status == 200
            assert not response.ended
            assert len(response.body) <= 4
            assert client.terminated is None

    run(scenario)
    assert len(raised) == (len(body) > 4)


@pytest.mark.parametrize("body", [b"abcd", b"ab", b"toolong"], ids=["whole", "short", "long"])
def test_a_waiting_receive_gets_the_disconnect_once_the_response_is_done(
    run: Runner, certs: Certs, tmp_path: Path, body: bytes
) -> None:
    """As on HTTP/1.1 and HTTP/2: once the response is complete (or cut for not matching
    its content-length), a receive() left waiting is answered."""
    got: list[str] = []

    async def scenario() -> None:
        async with serve(disconnect_listener_app(body, got), certs, tmp_path) as client:
            with contextlib.suppress(ResetByServer):
                await client.request("GET", "/")
            deadline = asyncio.get_running_loop().time() + 5
            while not got and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
        assert got == ["disconnect"]

    run(scenario)


CONNECT = [(b":method", b"CONNECT"), (b":authority", b"example.test:443")]


def counting(called: list[str]) -> Any:
    """``echo``, noting each request's method in ``called``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        called.append(scope["method"])
        await echo(scope, receive, send)

    return app


@pytest.mark.parametrize("end", [True, False], ids=["ended", "tunnel-bytes-open"])
def test_connect_is_answered_501_without_the_app(
    run: Runner, certs: Certs, tmp_path: Path, end: bool
) -> None:
    """As on HTTP/2: ruvicorn opens no tunnels, and a status (unlike H3_REQUEST_REJECTED)
    does not invite the client to retry; the connection serves on."""
    called: list[str] = []

    async def scenario() -> None:
        async with serve(counting(called), certs, tmp_path) as client:
            _, waiter = client.send_head(CONNECT, end=end)
            client.transmit()
            response = await asyncio.wait_for(waiter, BOUND)
            assert (response.status, response.body, response.ended) == (501, b"", True)
            assert called == []
            assert (await client.request("GET", "/")).status == 200
            assert called == ["GET"]

    run(scenario)


def refused_as_malformed(
    run: Runner, certs: Certs, tmp_path: Path, fields: list[tuple[bytes, bytes]]
) -> None:
    """A request head of ``fields`` is a stream error H3_MESSAGE_ERROR (0x10e, RFC 9114
    4.1.2): its stream reset, the app never called, the connection serving a GET after."""
    called: list[str] = []

    async def scenario() -> None:
        async with serve(counting(called), certs, tmp_path) as client:
            _, waiter = client.send_head(fields, end=True)
            client.transmit()
            with pytest.raises(ResetByServer, match="stream reset 0x10e"):
                await asyncio.wait_for(waiter, BOUND)
            assert called == []
            assert (await client.request("GET", "/")).status == 200
            assert called == ["GET"]

    run(scenario)


@pytest.mark.parametrize(
    "fields",
    [
        [(b":method", b"CONNECT")],
        [*CONNECT, (b":scheme", b"https"), (b":path", b"/")],
        [*CONNECT, (b":path", b"/")],
    ],
    ids=["no-authority", "scheme-and-path", "path"],
)
def test_a_malformed_connect_is_a_message_error(
    run: Runner, certs: Certs, tmp_path: Path, fields: list[tuple[bytes, bytes]]
) -> None:
    """RFC 9114 4.4: a malformed CONNECT is a message error, like any malformed head."""
    refused_as_malformed(run, certs, tmp_path, fields)


GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")]


@pytest.mark.parametrize(
    "fields",
    [
        [*GET, (b":authority", b"user@localhost")],
        [*GET, (b":authority", b"localhost:8a")],
        [*GET, (b":authority", b"")],
        [*GET, (b"host", b"a, b")],
        [*GET, (b"host", b"localhost"), (b"host", b"other.test")],
        [*GET, (b"host", b"localhost"), (b"host", b"localhost")],
        [*GET, (b":authority", b"localhost"), (b"host", b"other.test")],
        [*GET, (b":authority", b"localhost"), (b"host", b"")],
    ],
    ids=[
        "userinfo",
        "bad-port",
        "empty-authority",
        "bad-host",
        "two-hosts",
        "same-host-twice",
        "host-differs",
        "empty-host-with-authority",
    ],
)
def test_a_bad_authority_is_a_message_error(
    run: Runner, certs: Certs, tmp_path: Path, fields: list[tuple[bytes, bytes]]
) -> None:
    """RFC 9114 4.3.1: :authority and host are read as HTTP/1.1 reads Host (and HTTP/2
    reads both), and agree when both are sent; without :authority, one host at most (as
    HTTP/1.1 takes one Host, whatever a second one holds). Otherwise the stream is reset
    with H3_MESSAGE_ERROR (0x10e), the app never called, the connection kept."""
    refused_as_malformed(run, certs, tmp_path, fields)


@pytest.mark.parametrize(
    ("scheme", "path"),
    [(b"https", b"/a#b"), (b"https", b"/a b"), (b"https", b"/a\tb"), (b"ht tps", b"/")],
    ids=["hash-in-path", "space-in-path", "tab-in-path", "bad-scheme"],
)
def test_a_bad_path_or_scheme_is_a_message_error(
    run: Runner, certs: Certs, tmp_path: Path, scheme: bytes, path: bytes
) -> None:
    """As on HTTP/2 (and as HTTP/1.1 refuses such a target): H3_MESSAGE_ERROR (0x10e),
    the app never called, the connection kept."""
    head = [(b":method", b"GET"), (b":scheme", scheme), (b":authority", b"localhost")]
    refused_as_malformed(run, certs, tmp_path, [*head, (b":path", path)])


def test_a_host_that_agrees_with_the_authority_is_served_once(
    run: Runner, certs: Certs, tmp_path: Path
) -> None:
    """The same value in both: served, the app sees one host header."""
    hosts: list[list[bytes]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        hosts.append([v for n, v in scope["headers"] if n == b"host"])
        await echo(scope, receive, send)

    async def scenario() -> None:
        async with serve(app, certs, tmp_path) as client:
            head = [*GET, (b":authority", b"localhost:4433"), (b"host", b"localhost:4433")]
            _, waiter = client.send_head(head, end=True)
            client.transmit()
            assert (await asyncio.wait_for(waiter, BOUND)).status == 200
            assert hosts == [[b"localhost:4433"]]

    run(scenario)
