"""An HTTP/3 test client over aioquic: whole responses per request stream, every wait
bounded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection
from aioquic.h3.events import H3Event
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset
from aioquic.tls import CipherSuite
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from streamresponse import StreamResponse, collect

#: The longest any single wait of a test may take.
BOUND = 20.0


class RecordingH3(H3Connection):
    """aioquic's HTTP/3 connection, which skips GOAWAY frames; this one notes their
    arrival (from the frame header aioquic checks)."""

    goaway = False

    def _check_control_frame_type(self, frame_type: int) -> None:
        if frame_type == FrameType.GOAWAY:
            self.goaway = True
        super()._check_control_frame_type(frame_type)


class ResetByServer(Exception):
    """The server reset the request stream (or closed the connection)."""


class H3Client(QuicConnectionProtocol):
    """One QUIC connection; ``request`` runs one request stream to its end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = RecordingH3(self._quic)
        self.responses: dict[int, StreamResponse] = {}
        self.waiters: dict[int, asyncio.Future[StreamResponse]] = {}
        self.terminated: ConnectionTerminated | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamReset):
            self._fail(event.stream_id, ResetByServer(f"stream reset {event.error_code:#x}"))
            return
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            for stream_id in list(self.waiters):
                self._fail(stream_id, ResetByServer(f"connection closed {event.error_code:#x}"))
            return
        for h3_event in self.h3.handle_event(event):
            self.h3_event_received(h3_event)

    def h3_event_received(self, event: H3Event) -> None:
        """One HTTP/3 event: folded into its stream's response, which completes its
        waiter once whole. (A subclass may take some streams' events itself.)"""
        response = collect(self.responses, event)
        if response is not None and response.ended:
            waiter = self.waiters.pop(event.stream_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(response)

    def _fail(self, stream_id: int, exc: Exception) -> None:
        waiter = self.waiters.pop(stream_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def start(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: tuple[tuple[bytes, bytes], ...] = (),
        end: bool = True,
    ) -> asyncio.Future[StreamResponse]:
        """Send one request; the future completes with its whole response. ``end=False``
        leaves the request body open (more is sent with ``h3.send_data``)."""
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
            *headers,
        ]
        stream_id, waiter = self.send_head(fields, end=end and not body)
        if body:
            self.h3.send_data(stream_id, body, end_stream=end)
        self.transmit()
        return waiter

    def send_head(
        self, fields: list[tuple[bytes, bytes]], end: bool
    ) -> tuple[int, asyncio.Future[StreamResponse]]:
        """Open a request stream whose head is ``fields`` exactly (pseudo-headers too, so
        also heads ``start`` would not send); its id, and the future of its whole
        response. Nothing goes out before ``transmit()``."""
        stream_id = self._quic.get_next_available_stream_id()
        waiter: asyncio.Future[StreamResponse] = asyncio.get_running_loop().create_future()
        self.waiters[stream_id] = waiter
        self.h3.send_headers(stream_id, fields, end_stream=end)
        return stream_id, waiter

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> StreamResponse:
        return await asyncio.wait_for(self.start(method, path, body, headers), BOUND)


@dataclass(frozen=True)
class Options:
    """What a test may change about the client's TLS: the ALPN list, the cipher suites
    offered (in preference order), and a client certificate (its key and chain in one
    PEM file, key first)."""

    alpn: list[str] | None = None
    cipher_suites: list[CipherSuite] | None = None
    client_file: Path | None = None


def configuration(ca_file: Path, options: Options) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=options.alpn or H3_ALPN)
    config.load_verify_locations(str(ca_file))
    config.server_name = "localhost"
    config.idle_timeout = BOUND
    config.cipher_suites = options.cipher_suites
    if options.client_file is not None:
        pem = options.client_file.read_bytes()
        certificates = x509.load_pem_x509_certificates(pem)
        config.certificate, config.certificate_chain = certificates[0], certificates[1:]
        config.private_key = serialization.load_pem_private_key(pem, password=None)
    return config


@contextlib.asynccontextmanager
async def h3_connect(
    host: str,
    port: int,
    ca_file: Path,
    options: Options | None = None,
    protocol: type[H3Client] = H3Client,
) -> AsyncIterator[H3Client]:
    """A connected client (the handshake bounded by BOUND), an instance of ``protocol``."""
    opened = connect(
        host,
        port,
        configuration=configuration(ca_file, options or Options()),
        create_protocol=protocol,
        wait_connected=True,
    )
    client = await asyncio.wait_for(opened.__aenter__(), BOUND)
    try:
        assert isinstance(client, protocol)
        yield client
    finally:
        await asyncio.wait_for(opened.__aexit__(None, None, None), BOUND)
