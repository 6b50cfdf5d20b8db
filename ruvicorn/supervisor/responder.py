"""A listener of the master that answers each client once, never holding up the loop.

The master is the supervisor: nothing may delay its loop, which reaps workers and handles
signals. So there is no thread and no blocking call here: the listener and each client are
polled with the master's other descriptors. Everything is bounded: a few clients at a
time (the rest wait in the listen backlog), a request of at most ``max_request`` bytes, a
deadline per client to send it and read the answer. Used by ``--metrics-bind`` and
``--control-socket``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

#: Given the bytes a client sent so far: None while the request is incomplete, else the
#: answer to send (b"": close without one).
Answer = Callable[[bytes], bytes | None]


@dataclass
class _Client:
    sock: socket.socket
    deadline: float
    inbox: bytes = b""
    #: The answer still to send; None until the request is complete.
    out: bytes | None = None


class Responder:
    """One answer per client for ``listener``; driven by the master's poll."""

    def __init__(
        self,
        listener: socket.socket,
        answer: Answer,
        *,
        max_clients: int,
        max_request: int,
        timeout: float,
        too_long: bytes = b"",
    ) -> None:
        listener.setblocking(False)
        self.listener = listener
        self.answer = answer
        self.max_clients = max_clients
        self.max_request = max_request
        self.timeout = timeout
        #: What a client whose request exceeds ``max_request`` is told before closing.
        self.too_long = too_long
        self.clients: dict[int, _Client] = {}

    def fds(self) -> list[int]:
        """Every descriptor of this responder (a forked child closes them)."""
        return [self.listener.fileno(), *self.clients]

    def register(self, poller: select.poll) -> None:
        if len(self.clients) < self.max_clients:
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
        self.clients[sock.fileno()] = _Client(sock, time.monotonic() + self.timeout)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(self.max_request + 1 - len(client.inbox))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(client)
            return
        client.inbox += data
        if len(client.inbox) > self.max_request:
            client.out = self.too_long
        else:
            client.out = self.answer(client.inbox)
        if client.out is not None:
            self._write(client)

    def _write(self, client: _Client) -> None:
        assert client.out is not None
        try:
            sent = client.sock.send(client.out) if client.out else 0
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
