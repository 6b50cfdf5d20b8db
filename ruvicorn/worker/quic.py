"""HTTP/3 in a worker: each UDP listener's datagrams go to a native QUIC endpoint.

The endpoint (``_native.QuicEndpoint``) owns every QUIC connection of its socket, sends
through the socket's transport and keeps one loop timer for the engine's deadlines; each
connection's request streams run through the same native protocol as HTTP/2's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Sequence
from typing import Any

from ruvicorn import _native
from ruvicorn.config import Config
from ruvicorn.listeners import is_quic
from ruvicorn.logs import error_log

#: How long clients may remember where HTTP/3 is served (alt-svc ``ma``), in seconds.
ALT_SVC_MAX_AGE = 86400


class QuicProtocol(asyncio.DatagramProtocol):
    """asyncio's side of one UDP socket: every datagram to the endpoint, as it comes."""

    def __init__(self, endpoint: _native.QuicEndpoint) -> None:
        self.endpoint = endpoint

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.endpoint.connection_made(transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """An error here is logged, never raised: some loops close a datagram transport
        whose protocol raised, which would end every connection of the socket."""
        try:
            self.endpoint.datagram_received(data, addr)
        except Exception:
            error_log.exception("HTTP/3: handling a datagram failed")

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for an earlier datagram: QUIC's loss recovery deals with it."""

    def connection_lost(self, exc: Exception | None) -> None:
        self.endpoint.connection_lost(exc)


async def serve(
    state: _native.ServerState, loop: asyncio.AbstractEventLoop, sock: socket.socket
) -> asyncio.DatagramTransport:
    """Serve HTTP/3 on UDP socket ``sock``."""
    endpoint = _native.QuicEndpoint(state, loop)
    transport, _ = await loop.create_datagram_endpoint(lambda: QuicProtocol(endpoint), sock=sock)
    return transport


def advertised(config: Config, sockets: Sequence[socket.socket]) -> Config:
    """``config`` with an ``alt-svc`` default header naming the HTTP/3 ports among
    ``sockets``, so every TCP response tells clients where HTTP/3 is (once, in the
    native default headers)."""
    ports = sorted({sock.getsockname()[1] for sock in sockets if is_quic(sock)})
    if not config.http3 or not ports:
        return config
    value = ", ".join(f'h3=":{port}"; ma={ALT_SVC_MAX_AGE}' for port in ports)
    return dataclasses.replace(config, header=(*config.header, f"alt-svc:{value}"))
