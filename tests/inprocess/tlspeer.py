"""A TLS client in memory for the in-process tests: Python's ``ssl`` over memory BIOs,
wired to a ``MockConnection`` (its requests go to ``data_received``, the protocol's
writes to the client), with certificates minted by trustme.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme
from mockconn import SETTLE_TIMEOUT, MockConnection


class Certs:
    """A server CA and certificate for ``localhost``, and a client CA with one client."""

    def __init__(self, tmp: Path) -> None:
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("localhost")
        self.client_ca = trustme.CA()
        self.client = self.client_ca.issue_cert("alice@example.org", common_name="alice")
        self.certfile = str(tmp / "server.pem")
        self.server.private_key_and_cert_chain_pem.write_to_path(self.certfile)
        self.client_ca_file = str(tmp / "client-ca.pem")
        self.client_ca.cert_pem.write_to_path(self.client_ca_file)

    def settings(self, **more: object) -> dict[str, object]:
        """The Config settings of a TLS listener (key and chain in one file)."""
        return {"ssl_certfile": self.certfile, **more}

    def client_context(
        self, *, cert: bool = False, version: ssl.TLSVersion | None = None
    ) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(ctx)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        if cert:
            self.client.configure_cert(ctx)
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        return ctx


class TlsPeer:
    """One TLS client on ``conn``; ``plain`` collects what it decrypted."""

    def __init__(self, conn: MockConnection, ctx: ssl.SSLContext) -> None:
        self.conn = conn
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.seen = 0
        self.plain = bytearray()
        #: The server sent close_notify.
        self.close_notify = False

    def pump(self) -> None:
        """Move bytes both ways once."""
        out = self.outgoing.read()
        if out:
            self.conn.send(out)
        written = self.conn.transport.written
        if len(written) > self.seen:
            self.incoming.write(bytes(written[self.seen :]))
            self.seen = len(written)

    def handshake(self) -> None:
        """Run the handshake (the server answers within ``data_received``)."""
        for _ in range(10):
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.pump()
                continue
            self.pump()
            return
        raise AssertionError("the handshake did not finish")

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self.pump()

    def read(self) -> bytes:
        """Pump, then decrypt everything that arrived."""
        self.pump()
        while True:
            try:
                chunk = self.tls.read(1 << 20)
            except ssl.SSLWantReadError:
                break
            if not chunk:  # (what ssl's read returns after close_notify)
                self.close_notify = True
                break
            self.plain += chunk
        return bytes(self.plain)

    async def until(self, predicate: Callable[[], object], what: str) -> None:
        """Read until ``predicate()`` holds (bounded by the settle timeout)."""
        loop = self.conn.loop
        deadline = loop.time() + SETTLE_TIMEOUT
        while not predicate():
            self.read()
            if predicate():
                return
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; read: {bytes(self.plain)!r}")
            await asyncio.sleep(0.001)


def tls_connection(
    app: Any, certs: Certs, ctx: ssl.SSLContext | None = None, **settings: Any
) -> TlsPeer:
    """A connection of a worker serving ``app`` on a TLS listener (``certs``' server
    certificate, and ``settings``), with a client (``ctx``, by default
    ``certs.client_context()``) whose handshake is done; the connection is its ``conn``."""
    peer = TlsPeer(MockConnection(app, **certs.settings(**settings)), ctx or certs.client_context())
    peer.handshake()
    return peer
