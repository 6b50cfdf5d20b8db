"""The master's ``GET /metrics`` responder: non-blocking sockets on the master's own poll.

The master is the supervisor: nothing may hold up its loop, which reaps workers and
handles signals. So there is no thread and no blocking call here. The listener and each
client socket are polled with the master's other descriptors; a client gets one response
and is closed. Everything is bounded: a few clients at a time, a small request head, a
deadline per client. Anything but ``GET /metrics`` is answered 404; a request that is not
HTTP is closed without an answer.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from ruvicorn.config import ConfigError

#: Clients served at once; more wait in the listen backlog.
MAX_CLIENTS = 8
#: Largest request head read; a longer one is closed.
MAX_HEAD = 8 * 1024
#: Seconds a client has to send its request and read the response.
CLIENT_TIMEOUT = 5.0
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


@dataclass
class _Client:
    sock: socket.socket
    deadline: float
    head: bytes = b""
    #: The response still to send; None until the request head is complete.
    out: bytes | None = None


def _response(status: bytes, body: bytes, content_type: bytes = b"text/plain") -> bytes:
    head = (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
    )  # fmt: skip
    return head + body


def bind(address: str) -> socket.socket:
    """The listener of ``--metrics-bind HOST:PORT`` (checked by Config); ConfigError (one
    line) when it cannot be bound."""
    from ruvicorn.listeners import parse_address

    parsed = parse_address(address)
    family = socket.AF_INET6 if ":" in parsed.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((parsed.host, parsed.port))
        sock.listen(64)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--metrics-bind {parsed}: {exc.strerror or exc}") from None
    return sock


class MetricsServer:
    """Answers ``GET /metrics`` with ``render()``; driven by the master's loop."""

    def __init__(self, listener: socket.socket, render: Callable[[], bytes]) -> None:
        self.listener = listener
        self.render = render
        self.clients: dict[int, _Client] = {}

    def fds(self) -> list[int]:
        """Every descriptor of this server (a forked worker closes them)."""
        return [self.listener.fileno(), *self.clients]

    def register(self, poller: select.poll) -> None:
        if len(self.clients) < MAX_CLIENTS:
            poller.register(self.listener.fileno(), select.POLLIN)
        for fd, client in self.clients.items():
            poller.register(fd, select.POLLIN if client.out is None else select.POLLOUT)

    def owns(self, fd: int) -> bool:
        return fd == self.listener.fileno() or fd in self.clients

    def on_ready(self, fd: int) -> None:
        """``fd`` polled ready: accept, read or write, never waiting."""
        if fd == self.listener.fileno():
            self._accept()
            return
        client = self.clients[fd]
        if client.out is None:
            self._read(client)
        else:
            self._write(client)

    def expire(self, now: float) -> None:
        """Close the clients past their deadline."""
        for client in [c for c in self.clients.values() if now >= c.deadline]:
            self._close(client)

    def close(self) -> None:
        for client in list(self.clients.values()):
            self._close(client)
        with contextlib.suppress(OSError):
            self.listener.close()

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:  # gone before accept, or out of descriptors: try on the next poll
            return
        sock.setblocking(False)
        self.clients[sock.fileno()] = _Client(sock, time.monotonic() + CLIENT_TIMEOUT)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(MAX_HEAD)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        client.head += data
        if not data or len(client.head) > MAX_HEAD:
            self._close(client)
            return
        if b"\r\n\r\n" not in client.head and b"\n\n" not in client.head:
            return
        line = client.head.split(b"\n", 1)[0].rstrip(b"\r").split(b" ")
        if len(line) != 3 or not line[2].startswith(b"HTTP/1."):
            self._close(client)
            return
        method, target = line[0], line[1].split(b"?", 1)[0]
        if method == b"GET" and target == b"/metrics":
            client.out = _response(b"200 OK", self.render(), CONTENT_TYPE)
        else:
            client.out = _response(b"404 Not Found", b"Not Found: ruvicorn serves GET /metrics\n")
        self._write(client)

    def _write(self, client: _Client) -> None:
        assert client.out is not None
        try:
            sent = client.sock.send(client.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(client)
            return
        client.out = client.out[sent:]
        if not client.out:
            self._close(client)

    def _close(self, client: _Client) -> None:
        self.clients.pop(client.sock.fileno(), None)
        with contextlib.suppress(OSError):
            client.sock.close()
