"""WebSocket over real sockets: the `websockets` client for what a well-behaved peer does,
raw sockets for the bytes a broken one sends. Apps are in tests/apps/ws_apps.py."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from rawhttp import RawClient, Response, request, wait_for
from realserver import REPO, ServerProcess
from serialtls import SerialTLS
from test_flow_control import flood_until_refused
from tlscerts import TLSCerts, over_tls
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

TIMEOUT = 10.0
KEY = base64.b64encode(b"0123456789abcdef").decode()


@pytest.fixture(scope="module")
def ws_server(module_server_factory: Any, loop: str, tls: TLSCerts | None) -> ServerProcess:
    return module_server_factory("ws_apps:app", loop=loop, tls=tls)


def url(server: ServerProcess, path: str) -> str:
    scheme = "wss" if server.tls is not None else "ws"
    return f"{scheme}://{server.host}:{server.port}{path}"


def ws(server: ServerProcess, path: str = "/echo", **kw: Any) -> Any:
    """The websockets client, over TLS (wss) when the server serves it (through
    serialtls.py: its reading thread and its sends must not enter OpenSSL together)."""
    kw.setdefault("open_timeout", TIMEOUT)
    kw.setdefault("close_timeout", TIMEOUT)
    kw.setdefault("max_size", 4 * 1024 * 1024)
    context = server.client_context()
    if context is not None:
        kw.setdefault("ssl", SerialTLS(context))
    return connect(url(server, path), **kw)


def assert_ws_serving(server: ServerProcess) -> None:
    """A fresh connection still gets an echo, and plain HTTP still works."""
    with ws(server) as conn:
        conn.send("still here")
        assert conn.recv(timeout=TIMEOUT) == "still here"
    resp = server.get("/ok")
    assert resp.status == 200 and resp.body == b"http /ok"


def wait_record(server: ServerProcess, mark: int, **match: Any) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for rec in server.records_since(mark):
            if all(rec.get(k) == v for k, v in match.items()):
                return rec
        return None

    found: dict[str, Any] = wait_for(find, timeout=TIMEOUT)
    return found


# -- a raw client: the handshake and frames byte by byte


def upgrade_request(
    path: str = "/echo", extra: list[tuple[str, str]] | None = None, **kw: Any
) -> bytes:
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
        *(extra or []),
    ]
    return request("GET", path, headers=headers, **kw)


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """One client frame; `length` overrides the announced payload length."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length is None else length
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", first, mask_bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body


class RawWebSocket:
    def __init__(self, server: ServerProcess, path: str = "/echo", **kw: Any) -> None:
        self.client = server.client(TIMEOUT)
        self.client.send(upgrade_request(path, **kw))
        self.response: Response = self.client.read_head()

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def send(self, data: bytes) -> None:
        self.client.send(data)

    def read_frame(self) -> tuple[int, int, bytes]:
        """(first byte, opcode, payload) of the next server frame."""
        head, ok = self.client._read_exact(2)
        assert ok, "connection closed before a frame"
        first, second = head
        assert second & 0x80 == 0, "server frames are never masked"
        n = second & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.client._read_exact(2)[0])[0]
        elif n == 127:
            n = struct.unpack("!Q", self.client._read_exact(8)[0])[0]
        payload, ok = self.client._read_exact(n)
        assert ok, "connection closed inside a frame"
        return first, first & 0x0F, payload

    def read_close(self) -> tuple[int, bytes]:
        """Skip to the close frame; return its code and reason."""
        while True:
            _, opcode, payload = self.read_frame()
            if opcode == 0x8:
                if not payload:
                    return 1005, b""
                return struct.unpack("!H", payload[:2])[0], payload[2:]


# -- the handshake


@over_tls
def test_echo_text_and_binary(ws_server: ServerProcess) -> None:
    with ws(ws_server) as conn:
        conn.send("hello ✓")
        assert conn.recv(timeout=TIMEOUT) == "hello ✓"
        conn.send(b"\x00\x01\xff")
        assert conn.recv(timeout=TIMEOUT) == b"\x00\x01\xff"
        conn.send("")
        assert conn.recv(timeout=TIMEOUT) == ""


@over_tls
def test_scope_and_accept_headers(ws_server: ServerProcess) -> None:
    with ws(ws_server, "/scope?a=1", subprotocols=["one", "two"]) as conn:
        view = json.loads(conn.recv(timeout=TIMEOUT))
        assert conn.response.headers["x-custom"] == "yes"
        assert conn.response.headers["server"] == "ruvicorn"
    assert view["type"] == "websocket"
    assert view["scheme"] == ("wss" if ws_server.tls is not None else "ws")
    assert view["path"] == "/scope"
    assert view["query_string"] == "a=1"
    assert view["subprotocols"] == ["one", "two"]
    tls_extension = {"tls"} if ws_server.tls is not None else set()
    assert set(view["extensions"]) == {"websocket.http.response", *tls_extension}
    assert view["extensions"]["websocket.http.response"] == {}
    assert view["http_version"] == "1.1"
    assert not view["has_method"]


@over_tls
def test_one_mib_messages(ws_server: ServerProcess) -> None:
    data = os.urandom(1 << 20)
    text = "é" * (1 << 19)
    with ws(ws_server) as conn:
        conn.send(data)
        assert conn.recv(timeout=TIMEOUT) == data
        conn.send(text)
        assert conn.recv(timeout=TIMEOUT) == text


@over_tls
def test_fragmented_message(ws_server: ServerProcess) -> None:
    with ws(ws_server) as conn:
        conn.send(["frag", "men", "ted ✓"])
        assert conn.recv(timeout=TIMEOUT) == "fragmented ✓"
        conn.send([b"\x00" * 1000, b"\x01" * 70000])
        assert conn.recv(timeout=TIMEOUT) == b"\x00" * 1000 + b"\x01" * 70000


@over_tls
def test_fragments_with_a_ping_between(ws_server: ServerProcess) -> None:
    with RawWebSocket(ws_server) as raw:
        assert raw.response.status == 101
        raw.send(frame(0x1, b"ab", fin=False) + frame(0x9, b"p") + frame(0x0, b"cd"))
        assert raw.read_frame()[1:] == (0xA, b"p")
        assert raw.read_frame()[1:] == (0x1, b"abcd")


@over_tls
def test_many_small_messages_both_ways(ws_server: ServerProcess) -> None:
    count = 2000
    with ws(ws_server) as conn:
        for i in range(count):
            conn.send(str(i))
        got = [conn.recv(timeout=TIMEOUT) for _ in range(count)]
    assert got == [str(i) for i in range(count)]
    with ws(ws_server, f"/flood?count={count}") as conn:
        got = [conn.recv(timeout=TIMEOUT) for _ in range(count)]
    assert got == [str(i) for i in range(count)]


def test_client_ping_gets_pong(ws_server: ServerProcess) -> None:
    with ws(ws_server) as conn:
        for i in range(3):
            assert conn.ping(f"p{i}").wait(TIMEOUT)
        conn.send("after pings")
        assert conn.recv(timeout=TIMEOUT) == "after pings"


def test_ping_flood_from_a_client_that_never_reads(ws_server: ServerProcess) -> None:
    """Pings from a client that reads nothing: the worker owes one pong (the latest ping's,
    RFC 6455 5.5.3) instead of queueing a pong per ping, and the connection still works
    once the client reads."""
    mib = 1024 * 1024
    baseline = ws_server.rss()
    pings = frame(0x9, b"p" * 125) * 2048
    with RawWebSocket(ws_server) as raw:
        assert raw.response.status == 101
        sock = raw.client.sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sent = flood_until_refused(sock, pings, 512 * mib)
        growth = ws_server.rss() - baseline
        assert growth < 128 * mib, f"{sent // mib} MiB of pings grew the worker {growth // mib} MiB"
        sock.settimeout(TIMEOUT)
        raw.send(frame(0x1, b"still here"))
        while True:
            _, opcode, payload = raw.read_frame()
            if opcode == 0x1:
                break
            assert opcode == 0xA, (opcode, payload[:80])
        assert payload == b"still here"
    assert_ws_serving(ws_server)


def test_subprotocol_selection(ws_server: ServerProcess) -> None:
    with ws(ws_server, "/echo?pick=chat", subprotocols=["superchat", "chat"]) as conn:
        assert conn.subprotocol == "chat"
    with ws(ws_server, "/echo?pick=none", subprotocols=["superchat"]) as conn:
        assert conn.subprotocol is None


# -- closing, each way


@over_tls
def test_client_close_code_reaches_app(ws_server: ServerProcess) -> None:
    mark = ws_server.mark()
    with ws(ws_server, "/echo?tag=client-close") as conn:
        conn.send("x")
        conn.recv(timeout=TIMEOUT)
        conn.close(code=4000, reason="bye now")
        assert conn.close_code == 4000
    rec = wait_record(ws_server, mark, event="disconnect", path="/echo", tag="client-close")
    assert (rec["code"], rec["reason"]) == (4000, "bye now")


@over_tls
def test_client_drop_is_1006(ws_server: ServerProcess) -> None:
    mark = ws_server.mark()
    with RawWebSocket(ws_server, "/echo?tag=drop") as raw:
        assert raw.response.status == 101
    rec = wait_record(ws_server, mark, event="disconnect", path="/echo", tag="drop")
    assert rec["code"] == 1006


@over_tls
def test_app_close_with_code_and_reason(ws_server: ServerProcess) -> None:
    mark = ws_server.mark()
    with ws(ws_server, "/close?code=4001&reason=done+here") as conn:
        conn.send("go")
        with pytest.raises(ConnectionClosed):
            conn.recv(timeout=TIMEOUT)
        assert conn.close_code == 4001
        assert conn.close_reason == "done here"
    wait_record(ws_server, mark, event="send-after-app-close", error="RuntimeError")


@pytest.mark.parametrize(("path", "code"), [("/return-after", 1000), ("/raise-after", 1011)])
def test_app_end_after_accept(ws_server: ServerProcess, path: str, code: int) -> None:
    with ws(ws_server, path) as conn:
        conn.send("go")
        with pytest.raises(ConnectionClosed):
            conn.recv(timeout=TIMEOUT)
        assert conn.close_code == code
    assert_ws_serving(ws_server)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/close-before-accept", 403), ("/raise-before", 500), ("/return-before", 500)],
)
def test_handshake_refused_by_app(ws_server: ServerProcess, path: str, status: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws(ws_server, path)
    assert info.value.response.status_code == status
    assert_ws_serving(ws_server)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"x-bad", b"a\x01b"),
        (b"x-bad", b"a\x7fb"),
        (b"x-bad", b"a\rb"),
        (b"x-bad", b"a\nb"),
        (b"x-bad", b"a\x00b"),
        (b"x bad", b"v"),
        (b"x-bad:", b"v"),
    ],
)
def test_accept_headers_are_checked_like_response_headers(
    ws_server: ServerProcess, name: bytes, value: bytes
) -> None:
    mark = ws_server.mark()
    with ws(ws_server, f"/bad-accept-header?name={name.hex()}&value={value.hex()}") as conn:
        assert not any(key.startswith("x") for key in conn.response.headers)
        conn.send("still open")
        assert conn.recv(timeout=TIMEOUT) == "still open"
    wait_record(ws_server, mark, event="bad-accept-header", error="ValueError")


def test_denial_response(ws_server: ServerProcess) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws(ws_server, "/deny")
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["x-denied"] == "1"
    assert response.body == b"go away"
    with RawClient(ws_server.host, ws_server.port, TIMEOUT) as client:
        client.send(upgrade_request("/deny"))
        resp = client.read_response()
        assert resp.status == 401
        assert resp.body == b"go away"
        assert not resp.keeps_alive
        client.expect_closed()


def test_send_after_disconnect_raises_oserror(ws_server: ServerProcess) -> None:
    mark = ws_server.mark()
    with ws(ws_server, "/send-after-disconnect") as conn:
        conn.send("x")
    rec = wait_record(ws_server, mark, event="send-after-disconnect")
    assert rec["oserror"], rec
    assert rec["error"] == "ClientDisconnected"
    assert_ws_serving(ws_server)


# -- bad handshakes


UPGRADE = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
V13 = ("Sec-WebSocket-Version", "13")


@pytest.mark.parametrize(
    ("headers", "method", "status"),
    [
        pytest.param([*UPGRADE, V13], "GET", 400, id="no-key"),
        pytest.param([*UPGRADE, ("Sec-WebSocket-Key", "short"), V13], "GET", 400, id="bad-key"),
        pytest.param(
            [*UPGRADE, ("Sec-WebSocket-Key", KEY), ("Sec-WebSocket-Version", "8")],
            "GET",
            426,
            id="version-8",
        ),
        pytest.param([*UPGRADE, ("Sec-WebSocket-Key", KEY), V13], "POST", 400, id="post"),
    ],
)
def test_bad_handshake(
    ws_server: ServerProcess, headers: list[tuple[str, str]], method: str, status: int
) -> None:
    mark = ws_server.mark()
    with RawClient(ws_server.host, ws_server.port, TIMEOUT) as client:
        client.send(request(method, "/echo", headers=headers))
        resp = client.read_response()
        assert resp.status == status
        if status == 426:
            assert resp.header("sec-websocket-version") == "13"
        client.expect_closed()
    assert not [r for r in ws_server.records_since(mark) if r.get("event") == "websocket"]


def test_upgrade_header_without_connection_upgrade_is_http(ws_server: ServerProcess) -> None:
    """Without `Connection: upgrade` nothing asks to switch protocols: plain HTTP."""
    headers = [("Upgrade", "websocket"), ("Sec-WebSocket-Key", KEY), V13]
    resp = ws_server.get("/echo", headers=headers)
    assert resp.status == 200
    assert resp.body == b"http /echo"


# -- protocol violations on raw sockets: the right close code, and the worker goes on

VIOLATIONS = [
    pytest.param(frame(0x1, b"hi", masked=False), 1002, id="unmasked"),
    pytest.param(frame(0x1, b"hi", rsv=0b010), 1002, id="rsv2"),
    pytest.param(frame(0x1, b"hi", rsv=0b100), 1002, id="rsv1-without-deflate"),
    pytest.param(frame(0x3, b"hi"), 1002, id="bad-opcode-3"),
    pytest.param(frame(0xB, b""), 1002, id="bad-opcode-b"),
    pytest.param(frame(0x9, b"x" * 126), 1002, id="control-too-long"),
    pytest.param(frame(0x9, b"x", fin=False), 1002, id="fragmented-control"),
    pytest.param(frame(0x1, b"\xff\xfe"), 1007, id="invalid-utf8"),
    pytest.param(frame(0x1, b"ok", fin=False) + frame(0x0, b"\xc3"), 1007, id="utf8-cut"),
    pytest.param(frame(0x0, b"x"), 1002, id="continuation-first"),
    pytest.param(frame(0x1, b"a", fin=False) + frame(0x2, b"b"), 1002, id="new-inside-fragmented"),
    pytest.param(frame(0x8, b"\x03\xe8\xff"), 1007, id="close-reason-not-utf8"),
    pytest.param(frame(0x8, b"\x03"), 1002, id="close-one-byte"),
    pytest.param(frame(0x8, struct.pack("!H", 1005)), 1002, id="close-code-1005"),
]


@over_tls
@pytest.mark.parametrize(("data", "code"), VIOLATIONS)
def test_protocol_violation(ws_server: ServerProcess, data: bytes, code: int) -> None:
    mark = ws_server.mark()
    tag = f"violation-{data.hex()}"
    with RawWebSocket(ws_server, f"/echo?tag={tag}") as raw:
        assert raw.response.status == 101
        raw.send(data)
        assert raw.read_close()[0] == code
        raw.client.expect_closed()
    rec = wait_record(ws_server, mark, event="disconnect", path="/echo", tag=tag)
    assert rec["code"] == code
    assert_ws_serving(ws_server)


def test_message_too_big(server_factory: Any) -> None:
    server = server_factory("ws_apps:app", "--ws-max-size", "1000")
    with RawWebSocket(server) as raw:
        raw.send(frame(0x2, b"x" * 1000))
        assert raw.read_frame()[1:] == (0x2, b"x" * 1000)
        raw.send(frame(0x2, b"x" * 1001))
        assert raw.read_close()[0] == 1009
    with RawWebSocket(server) as raw:
        # The length alone is enough to refuse it.
        raw.send(frame(0x2, b"", length=1 << 40))
        assert raw.read_close()[0] == 1009
    with RawWebSocket(server) as raw:
        raw.send(frame(0x2, b"x" * 600, fin=False) + frame(0x0, b"x" * 600))
        assert raw.read_close()[0] == 1009
    assert_ws_serving(server)


# -- compression


@over_tls
def test_compression_negotiated_and_used(ws_server: ServerProcess) -> None:
    with ws(ws_server) as conn:
        assert [type(e).__name__ for e in conn.protocol.extensions] == ["PerMessageDeflate"]
        text = "compress me " * 5000
        conn.send(text)
        assert conn.recv(timeout=TIMEOUT) == text
    offer = [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]
    with RawWebSocket(ws_server, extra=offer) as raw:
        assert raw.response.status == 101
        assert raw.response.header("sec-websocket-extensions").startswith("permessage-deflate")
        text_bytes = b"a" * 10000
        raw.send(frame(0x1, text_bytes))  # an uncompressed message is still allowed
        first, opcode, payload = raw.read_frame()
        assert opcode == 0x1 and first & 0x40, "the echo is compressed (RSV1)"
        assert len(payload) < 200
        inflate = zlib.decompressobj(-15)
        assert inflate.decompress(payload + b"\x00\x00\xff\xff") == text_bytes
        # A compressed message from the client.
        deflate = zlib.compressobj(wbits=-15)
        body = deflate.compress(b"hello hello hello") + deflate.flush(zlib.Z_SYNC_FLUSH)
        raw.send(frame(0x1, body[:-4], rsv=0b100))
        first, opcode, payload = raw.read_frame()
        assert inflate.decompress(payload + b"\x00\x00\xff\xff") == b"hello hello hello"


def test_compression_off(server_factory: Any) -> None:
    server = server_factory("ws_apps:app", "--no-ws-per-message-deflate")
    with ws(server) as conn:
        assert conn.protocol.extensions == []
        conn.send("plain " * 100)
        assert conn.recv(timeout=TIMEOUT) == "plain " * 100
    offer = [("Sec-WebSocket-Extensions", "permessage-deflate")]
    with RawWebSocket(server, extra=offer) as raw:
        assert raw.response.status == 101
        assert raw.response.header("sec-websocket-extensions") is None
        raw.send(frame(0x1, b"a" * 1000))
        first, _, payload = raw.read_frame()
        assert not first & 0x40 and payload == b"a" * 1000


# -- settings


def test_ws_none_serves_upgrade_as_http(server_factory: Any) -> None:
    server = server_factory("ws_apps:app", "--ws", "none")
    mark = server.mark()
    with RawClient(server.host, server.port, TIMEOUT) as client:
        client.send(upgrade_request("/echo"))
        resp = client.read_response()
    assert resp.status == 200
    assert resp.body == b"http /echo"
    rec = wait_record(server, mark, event="http", path="/echo")
    assert rec["upgrade"] == "websocket"


@pytest.mark.parametrize("name", ["websockets", "wsproto", "websockets-sansio"])
def test_other_implementation_names_are_served_natively(server_factory: Any, name: str) -> None:
    server = server_factory("ws_apps:app", "--ws", name)
    assert_ws_serving(server)
    assert f"--ws {name}: WebSocket connections are served by ruvicorn's native" in (
        server.stderr()
    )


def test_server_pings_and_drops_a_silent_peer(server_factory: Any) -> None:
    server = server_factory("ws_apps:app", "--ws-ping-interval", "1", "--ws-ping-timeout", "1")
    mark = server.mark()
    with RawWebSocket(server) as raw:
        assert raw.response.status == 101
        # A ping comes within a few sweeps; answering it keeps the connection.
        _, opcode, payload = raw.read_frame()
        assert opcode == 0x9
        raw.send(frame(0xA, payload))
        _, opcode, payload = raw.read_frame()
        assert opcode == 0x9
        raw.send(frame(0x1, b"alive"))
        while True:  # on a busy machine another ping may come first: answer it
            _, opcode, payload = raw.read_frame()
            if opcode != 0x9:
                break
            raw.send(frame(0xA, payload))
        assert (opcode, payload) == (0x1, b"alive")
        # Silence: the next ping goes unanswered and the server closes with 1011.
        assert raw.read_close()[0] == 1011
        raw.client.expect_closed()
    rec = wait_record(server, mark, event="disconnect", path="/echo")
    assert rec["code"] == 1011
    # A client that answers pings stays connected across several intervals.
    with ws(server, ping_interval=None) as conn:
        for i in range(3):
            conn.send(str(i))
            assert conn.recv(timeout=TIMEOUT) == str(i)
            with pytest.raises(TimeoutError):
                conn.recv(timeout=1.0)


@over_tls
def test_backpressure_with_small_queue(
    server_factory: Any, tmp_path: Path, tls: TLSCerts | None
) -> None:
    """With --ws-max-queue 2 the server stops reading while the app does not; every
    message still arrives, in order, once the app reads."""
    server = server_factory("ws_apps:app", "--ws-max-queue", "2", tls=tls)
    gate = tmp_path / "gate"
    mark = server.mark()
    count = 300
    opener = threading.Timer(0.5, gate.touch)
    with ws(server, f"/late-reader?gate={gate}", ping_interval=None) as conn:
        # The sends fill the socket buffers while the app reads nothing (they may block
        # until the gate opens).
        opener.start()
        payload = b"x" * 4096
        try:
            for _ in range(count):
                conn.send(payload)
        finally:
            opener.join(TIMEOUT)
        conn.send("done")
        assert conn.recv(timeout=TIMEOUT) == str(count)
    wait_record(server, mark, event="late-reader", count=count)


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGTERM, 1001), (signal.SIGHUP, 1012)],
    ids=["stop-going-away", "reload-service-restart"],
)
@over_tls
def test_graceful_stop_or_reload_closes_with_its_code(
    server_factory: Any, sig: signal.Signals, code: int, tls: TLSCerts | None
) -> None:
    """A stop says 1001 (going away); a rolling restart says 1012 (service restart)."""
    server = server_factory("ws_apps:app", tls=tls)
    mark = server.mark()
    with ws(server) as conn:
        conn.send("x")
        assert conn.recv(timeout=TIMEOUT) == "x"
        server.send_signal(sig)
        with pytest.raises(ConnectionClosed):
            conn.recv(timeout=TIMEOUT)
        assert conn.close_code == code
    rec = wait_record(server, mark, event="disconnect", path="/echo")
    assert rec["code"] == code
    if sig == signal.SIGHUP:
        with ws(server) as conn:  # the replacement serves
            conn.send("y")
            assert conn.recv(timeout=TIMEOUT) == "y"
        server.send_signal(signal.SIGTERM)
    assert server.wait_exit() == 0


def test_cancelled_receive_keeps_the_message_and_one_receive_waits(
    ws_server: ServerProcess,
) -> None:
    mark = ws_server.mark()
    with ws(ws_server, "/timed-out-receive") as conn:
        # Sent once the app's receive() timed out (a fixed sleep could beat the app's
        # 0.3 s timer on a busy machine and make the first receive() succeed).
        wait_record(ws_server, mark, event="receive-timed-out", path="/timed-out-receive")
        conn.send("hello")
        assert conn.recv(timeout=TIMEOUT) == "timeout hello refused"


@over_tls
def test_close_with_a_full_queue_completes_the_handshake(ws_server: ServerProcess) -> None:
    """Reading paused for a full queue must resume for the client's close reply; else the
    server waits out its whole close timeout (20 s) before dropping the connection."""
    with RawWebSocket(ws_server, "/close-unread") as raw:
        assert raw.response.status == 101
        raw.send(b"".join(frame(0x1, b"x" * 10) for _ in range(64)))  # twice --ws-max-queue
        code, _ = raw.read_close()
        assert code == 1000
        raw.send(frame(0x8, struct.pack("!H", 1000)))
        assert raw.client.expect_closed(timeout=TIMEOUT) == b""


# -- frameworks: the websocket routes of the example Starlette and FastAPI apps


@pytest.fixture(scope="module", params=["starlette_app", "fastapi_app"])
def framework(request: pytest.FixtureRequest, module_server_factory: Any) -> ServerProcess:
    return module_server_factory(f"{request.param}:app", app_dir=REPO / "examples")


def test_framework_websocket_route(framework: ServerProcess) -> None:
    with ws(framework, "/ws") as conn:
        for text in ["one", "two ✓", "x" * 100_000]:
            conn.send(text)
            assert conn.recv(timeout=TIMEOUT) == text
    # No websocket route here: the framework closes before accepting, which is a 403.
    with pytest.raises(InvalidStatus) as info:
        ws(framework, "/no-such-socket")
    assert info.value.response.status_code == 403
    with ws(framework, "/ws") as conn:
        conn.send("again")
        assert conn.recv(timeout=TIMEOUT) == "again"
