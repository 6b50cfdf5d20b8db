"""HTTP/3 in a worker: each UDP listener's datagrams go to a native QUIC endpoint.

The endpoint (``_native.QuicEndpoint``) owns every QUIC connection of its socket, sends
through the socket's transport and keeps one loop timer for the engine's deadlines; each
connection's request streams run through the same native protocol as HTTP/2's.

A worker slot's UDP socket is read by two workers while one replaces the other; each
hands the other, over a unix datagram channel (``Handover``), the datagrams of
connections it does not hold and, while it drains, new connections.
"""

from __future__ import annotations

import asyncio
import contextlib
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


#: The largest message on a handover channel: a UDP datagram and the client's address.
MAX_HANDOVER = 65536 + 32
#: Messages taken from a handover channel per wake-up, so the loop's other work goes on.
HANDOVER_BATCH = 64


class Handover:
    """This worker's end of the channel to the other worker of one HTTP/3 socket.

    Sends never wait: a message that finds the channel full is dropped (QUIC's loss
    recovery sends the datagram again). The descriptor is shared with the master and the
    slot's other workers, so it stays blocking and each call says it must not wait.
    """

    def __init__(
        self, sock: socket.socket, endpoint: _native.QuicEndpoint, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.sock = sock
        self.endpoint = endpoint
        self.loop = loop
        loop.add_reader(sock.fileno(), self._read)

    def send(self, message: bytes) -> None:
        with contextlib.suppress(OSError):  # full, or nobody holds the other end
            self.sock.send(message, socket.MSG_DONTWAIT)

    def _read(self) -> None:
        for _ in range(HANDOVER_BATCH):
            try:
                message = self.sock.recv(MAX_HANDOVER, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            try:
                self.endpoint.forwarded_received(message)
            except Exception:
                error_log.exception("HTTP/3: handling a handed-over datagram failed")

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class QuicProtocol(asyncio.DatagramProtocol):
    """asyncio's side of one UDP socket: every datagram to the endpoint, as it comes;
    what the endpoint cannot use to the socket's other worker."""

    def __init__(self, endpoint: _native.QuicEndpoint, handover: Handover | None = None) -> None:
        self.endpoint = endpoint
        self.handover = handover

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.endpoint.connection_made(transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """An error here is logged, never raised: some loops close a datagram transport
        whose protocol raised, which would end every connection of the socket."""
        try:
            message = self.endpoint.datagram_received(data, addr)
        except Exception:
            error_log.exception("HTTP/3: handling a datagram failed")
            return
        if message is not None and self.handover is not None:
            self.handover.send(message)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for an earlier datagram: QUIC's loss recovery deals with it."""

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handover is not None:
            self.handover.close()
        self.endpoint.connection_lost(exc)


async def serve(
    state: _native.ServerState,
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    channel: socket.socket | None = None,
) -> asyncio.DatagramTransport:
    """Serve HTTP/3 on UDP socket ``sock``; ``channel`` is this worker's end of the
    handover channel to the socket's other worker, if it has one."""
    endpoint = _native.QuicEndpoint(state, loop, forwarding=channel is not None)
    handover = None if channel is None else Handover(channel, endpoint, loop)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: QuicProtocol(endpoint, handover), sock=sock
    )
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
