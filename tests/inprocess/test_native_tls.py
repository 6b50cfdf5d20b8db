"""TLS in the native protocol, in-process: a Python ``ssl`` client over memory BIOs talks
to one protocol through the mock transport, on both loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mockconn import MockConnection, Runner, parse
from tlspeer import Certs, TlsPeer, tls_connection

from ruvicorn import _native


class Records(logging.Handler):
    """Keeps every record it is handed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)


@pytest.fixture
def logged() -> Iterator[Records]:
    """Every record of ruvicorn's error log, debug included."""
    logger = logging.getLogger("ruvicorn.error")
    level = logger.level
    records = Records()
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)


class App:
    """Answers with the request body (or a large download at /big); keeps the scopes."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/big":
            body = bytes(range(256)) * 4096 * 4
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def get(path: str = "/", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: localhost\r\n{extra}\r\n".encode()


def test_get_over_tls13_with_the_tls_extension(run: Runner, certs: Certs) -> None:
    app = App()

    async def scenario() -> None:
        # --http 1: ALPN offers only http/1.1 (HTTP/2 over TLS: test_native_http2.py).
        peer = tls_connection(app, certs, http="1")
        assert peer.tls.selected_alpn_protocol() == "http/1.1"
        peer.send(get() + get())
        await peer.until(lambda: len(parse(peer.plain, ("GET", "GET"))) == 2, "two responses")
        first, second = app.scopes
        assert first["scheme"] == "https"
        tls = first["extensions"]["tls"]
        assert second["extensions"]["tls"] is tls
        assert ssl.PEM_cert_to_DER_cert(tls["server_cert"]) == peer.tls.getpeercert(True)
        assert tls["client_cert_chain"] == []
        assert tls["client_cert_name"] is None
        assert tls["client_cert_error"] is None
        assert tls["tls_version"] == 0x0304
        cipher = peer.tls.cipher()
        assert cipher is not None
        ids = {"TLS_AES_128_GCM_SHA256": 0x1301, "TLS_AES_256_GCM_SHA384": 0x1302}
        ids["TLS_CHACHA20_POLY1305_SHA256"] = 0x1303
        assert tls["cipher_suite"] == ids[cipher[0]]

    run(scenario)


def test_tls12(run: Runner, certs: Certs) -> None:
    app = App()

    async def scenario() -> None:
        peer = tls_connection(app, certs, certs.client_context(version=ssl.TLSVersion.TLSv1_2))
        peer.send(get())
        await peer.until(lambda: parse(peer.plain, ("GET",)), "a response")
        tls = app.scopes[0]["extensions"]["tls"]
        assert tls["tls_version"] == 0x0303
        assert tls["cipher_suite"] in {0xC02B, 0xC02C, 0xCCA9}

    run(scenario)


@pytest.mark.parametrize("cert_reqs", [1, 2])
def test_client_certificate(run: Runner, certs: Certs, cert_reqs: int) -> None:
    app = App()

    async def scenario() -> None:
        peer = tls_connection(
            app,
            certs,
            certs.client_context(cert=True),
            ssl_ca_certs=certs.client_ca_file,
            ssl_cert_reqs=cert_reqs,
        )
        peer.send(get())
        await peer.until(lambda: parse(peer.plain, ("GET",)), "a response")
        tls = app.scopes[0]["extensions"]["tls"]
        leaf = certs.client.cert_chain_pems[0].bytes()
        assert [ssl.PEM_cert_to_DER_cert(p) for p in tls["client_cert_chain"]] == [
            ssl.PEM_cert_to_DER_cert(leaf.decode())
        ]
        subject = x509.load_pem_x509_certificate(leaf).subject.rfc4514_string()
        assert tls["client_cert_name"] == subject
        assert tls["client_cert_error"] is None

    run(scenario)


def test_required_client_certificate_fails_the_handshake_without_one(
    run: Runner, certs: Certs, logged: Records
) -> None:
    app = App()

    async def scenario() -> None:
        # TLS 1.3: the client finishes its handshake before the server judges it.
        peer = tls_connection(app, certs, ssl_ca_certs=certs.client_ca_file, ssl_cert_reqs=2)
        conn = peer.conn
        with pytest.raises(ssl.SSLError):
            peer.send(get())
            peer.read()
        await conn.until(lambda: conn.transport.closed, "the close")
        await conn.idle()
        assert app.scopes == []

    run(scenario)
    assert len(logged.records) <= 1
    assert all(r.levelno <= logging.INFO and not r.exc_info for r in logged.records)


def test_optional_client_certificate_may_be_omitted(run: Runner, certs: Certs) -> None:
    app = App()

    async def scenario() -> None:
        peer = tls_connection(app, certs, ssl_ca_certs=certs.client_ca_file, ssl_cert_reqs=1)
        peer.send(get())
        await peer.until(lambda: parse(peer.plain, ("GET",)), "a response")
        assert app.scopes[0]["extensions"]["tls"]["client_cert_chain"] == []

    run(scenario)


def test_connection_close_sends_close_notify_before_closing(run: Runner, certs: Certs) -> None:
    app = App()

    async def scenario() -> None:
        peer = tls_connection(app, certs)
        conn = peer.conn
        peer.send(get(extra="connection: close\r\n"))
        await peer.until(lambda: peer.close_notify, "close_notify")
        assert parse(peer.plain, ("GET",))[0].status == 200
        await conn.until(lambda: conn.transport.closed, "the close")

    run(scenario)


def test_idle_half_close_sends_close_notify_then_fin(run: Runner, certs: Certs) -> None:
    app = App()

    async def scenario() -> None:
        peer = tls_connection(app, certs, timeout_keep_alive=0.01)
        conn = peer.conn
        peer.send(get())
        await peer.until(lambda: parse(peer.plain, ("GET",)), "a response")
        await conn.until(lambda: not conn.state.running, "the app's end")
        await asyncio.sleep(0.02)
        conn.state.sweep()
        assert conn.transport.eof_written
        peer.read()
        assert peer.close_notify

    run(scenario)


def test_plain_http_on_the_tls_port_gets_a_cleartext_400(
    run: Runner, certs: Certs, logged: Records
) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app, **certs.settings())
        conn.send(get())
        [resp] = await conn.responses(1)
        assert resp.status == 400
        await conn.until(lambda: conn.transport.closed, "the close")
        await conn.idle()
        assert app.scopes == []

    run(scenario)
    assert [r.levelno for r in logged.records] == [logging.DEBUG]


def test_a_bad_handshake_is_closed_with_one_debug_line(
    run: Runner, certs: Certs, logged: Records
) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app, **certs.settings())
        conn.send(b"\x16\x03\x01\x00\x05hello")
        await conn.until(lambda: conn.transport.closed, "the close")
        written = bytes(conn.transport.written)
        assert written[:1] in (b"", b"\x15")  # nothing, or a TLS alert record

    run(scenario)
    assert [r.levelno for r in logged.records] == [logging.DEBUG]
    assert "TLS handshake failed" in logged.text


def test_handshake_deadline(run: Runner, certs: Certs) -> None:
    async def scenario() -> None:
        conn = MockConnection(App(), **certs.settings(timeout_request_header=0.01))
        peer = TlsPeer(conn, certs.client_context())
        with contextlib.suppress(ssl.SSLWantReadError):
            peer.tls.do_handshake()  # the ClientHello is made, but never sent
        await asyncio.sleep(0.02)
        conn.state.sweep()
        assert conn.transport.closed
        assert conn.transport.written == b""

    run(scenario)


def test_truncated_stream_is_a_disconnect(run: Runner, certs: Certs, logged: Records) -> None:
    app = App()

    async def scenario() -> None:
        peer = tls_connection(app, certs)
        conn = peer.conn
        peer.send(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        await conn.until(lambda: app.scopes, "the app's start")
        conn.disconnect()
        await conn.until(lambda: not conn.state.running, "the app's end")

    run(scenario)
    assert all(r.levelno <= logging.DEBUG for r in logged.records), logged.text


def test_large_upload_and_download(run: Runner, certs: Certs) -> None:
    app = App()
    upload = bytes(range(251)) * 8000

    async def scenario() -> None:
        peer = tls_connection(app, certs)
        head = f"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {len(upload)}\r\n\r\n"
        peer.send(head.encode() + upload)
        await peer.until(lambda: parse(peer.plain, ("POST",)), "the echo")
        [echo] = parse(peer.plain, ("POST",))
        assert hashlib.sha256(echo.body).digest() == hashlib.sha256(upload).digest()
        peer.plain.clear()
        peer.send(get("/big"))
        await peer.until(lambda: parse(peer.plain, ("GET",)), "the download")
        assert len(parse(peer.plain, ("GET",))[0].body) == 256 * 4096 * 4

    run(scenario)


def test_websocket_over_tls_is_wss(run: Runner, certs: Certs) -> None:
    app = App()

    async def scenario() -> None:
        peer = tls_connection(app, certs)
        upgrade = (
            "upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\n"
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        )
        peer.send(get("/ws", upgrade))
        await peer.until(lambda: b"\r\n\r\n" in peer.plain, "the 101")
        assert peer.plain.startswith(b"HTTP/1.1 101")
        scope = app.scopes[0]
        assert scope["scheme"] == "wss"
        assert set(scope["extensions"]) == {"tls", "websocket.http.response"}

    run(scenario)


def test_check_tls_shares_the_workers_configuration(certs: Certs, tmp_path: Path) -> None:
    _native.check_tls(certs.certfile, None, None, None, 0, None)
    _native.check_tls(certs.certfile, None, None, certs.client_ca_file, 2, "TLS_AES_128_GCM_SHA256")
    key = serialization.load_pem_private_key(certs.server.private_key_pem.bytes(), None)
    encrypted = tmp_path / "key.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    chain = tmp_path / "chain.pem"
    chain.write_bytes(b"".join(p.bytes() for p in certs.server.cert_chain_pems))
    _native.check_tls(str(chain), str(encrypted), "s3cret", None, 0, None)
    cases = [
        ((str(chain), str(encrypted), "wrong", None, 0, None), "wrong password"),
        ((str(chain), str(encrypted), None, None, 0, None), "encrypted"),
        ((certs.certfile, None, None, None, 0, "ECDHE+AESGCM"), "IANA"),
        ((certs.certfile, None, None, None, 0, "HIGH:!aNULL"), "IANA"),
        ((certs.certfile, None, None, None, 2, None), "ssl_ca_certs"),
        ((str(tmp_path / "absent.pem"), None, None, None, 0, None), "cannot read"),
        ((certs.client_ca_file, None, None, None, 0, None), "no private key"),
    ]
    for args, fragment in cases:
        with pytest.raises(ValueError, match=fragment) as caught:
            _native.check_tls(*args)
        assert "\n" not in str(caught.value)
        assert "s3cret" not in str(caught.value)


class SlowReader:
    """Waits for ``go`` before it reads the body; answers 100-continue requests too."""

    def __init__(self) -> None:
        self.go = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.go.wait()
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = str(size).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def test_reading_pauses_while_the_app_does_not_read(run: Runner, certs: Certs) -> None:
    app = SlowReader()
    size = 4 * 1024 * 1024

    async def scenario() -> None:
        peer = tls_connection(app, certs)
        conn = peer.conn
        head = f"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {size}\r\n\r\n".encode()
        peer.send(head + b"x" * size)
        await conn.idle()
        assert not conn.transport.reading
        app.go.set()
        await peer.until(lambda: parse(peer.plain, ("POST",)), "the answer")
        assert parse(peer.plain, ("POST",))[0].body == str(size).encode()
        assert conn.transport.reading

    run(scenario)


def test_expect_100_continue_and_pipelining(run: Runner, certs: Certs) -> None:
    app = SlowReader()
    app.go.set()

    async def scenario() -> None:
        peer = tls_connection(app, certs)
        peer.send(
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n"
        )
        await peer.until(lambda: peer.plain.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), "100")
        peer.plain.clear()
        peer.send(b"abc" + get() + get())
        methods = ("POST", "GET", "GET")
        await peer.until(lambda: len(parse(peer.plain, methods)) == 3, "three responses")
        assert [r.body for r in parse(peer.plain, methods)] == [b"3", b"0", b"0"]

    run(scenario)
