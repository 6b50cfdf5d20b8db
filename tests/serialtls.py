"""TLS for the `websockets` sync client whose OpenSSL calls never overlap.

That client reads in a background thread (it waits for the socket to be readable, then
calls ``recv()``) from the moment the connection is made, while the caller's thread sends.
On an ``ssl.SSLSocket`` the two end up in ``SSL_read`` and ``SSL_write`` on one OpenSSL
connection at the same time, which OpenSSL does not support. Over TLS 1.3 the overlap is
likeliest right after the handshake: the reading thread handles the server's session
tickets while the other writes the upgrade request, and on a loaded machine that request
was now and then never sent at all (the socket's counters showed the client's handshake
bytes and nothing after them; the client then waited 10 s for a response to a request the
server never got).

Here the TLS state is an ``ssl.SSLObject`` over memory buffers: every call into it holds one
lock, and no lock is held while the socket waits, so a send never waits for a ``recv()``
that is blocked on the network (nor the other way round).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
#: A TLS record starts with its type (1 byte), version (2) and length (2).
RECORD_HEADER = 5


class SerialTLS:
    """What the client is handed as its ``ssl`` argument: it only calls ``wrap_socket``."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    def wrap_socket(self, sock: socket.socket, server_hostname: str | None = None) -> Any:
        return SerialTLSSocket(sock, self.context, server_hostname)


class SerialTLSSocket:
    """The socket the client uses: ``recv``/``send``/``sendall`` through TLS, everything else
    (timeouts, ``shutdown``, ``close``, addresses) on the TCP socket underneath."""

    def __init__(
        self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str | None
    ) -> None:
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        #: Held for each call into the TLS state (none of them waits).
        self.state_lock = threading.Lock()
        #: Held while encrypted bytes go out, so records reach the socket in the order they
        #: were made; and while bytes come in, so they reach the TLS state in order.
        self.send_lock = threading.Lock()
        self.recv_lock = threading.Lock()
        #: How many times bytes from the socket were handed to the TLS state.
        self.fed = 0
        self._until_done(self.tls.do_handshake)

    def _until_done(self, call: Callable[..., T], *args: Any) -> T:
        """``call`` on the TLS state, feeding it what the socket receives until it stops
        asking for more; whatever it has to send goes out first."""
        while True:
            with self.state_lock:
                fed = self.fed
                try:
                    result = call(*args)
                except ssl.SSLWantReadError:
                    wants_input = True
                else:
                    wants_input = False
            self._flush()
            if not wants_input:
                return result
            self._fill(fed)

    def _fill(self, fed: int) -> None:
        """Read one TLS record from the socket, unless another thread fed the TLS state
        since it last asked for more (``fed``): then it may have what it needs already.
        Only one record: the client waits for the socket to be readable before each
        ``recv()``, so what is not needed yet has to stay in the socket."""
        with self.recv_lock:
            if self.fed != fed:
                return
            head = self._read_exactly(RECORD_HEADER)
            length = int.from_bytes(head[3:5], "big") if len(head) == RECORD_HEADER else 0
            data = head + self._read_exactly(length)
            with self.state_lock:
                self.fed += 1
                self.incoming.write(data)
                if len(data) < RECORD_HEADER + length:  # the connection ended
                    self.incoming.write_eof()

    def _read_exactly(self, size: int) -> bytes:
        """``size`` bytes from the socket, or fewer if it ends first."""
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def _flush(self) -> None:
        with self.send_lock:
            with self.state_lock:
                data = self.outgoing.read()
            if data:
                self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        try:
            data: bytes = self._until_done(self.tls.read, size)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""  # close_notify, or the TCP connection ended without one
        return data

    def send(self, data: bytes | bytearray | memoryview) -> int:
        sent: int = self._until_done(self.tls.write, data)
        return sent

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        with memoryview(data) as view, view.cast("B") as octets:
            done = 0
            while done < len(octets):
                done += self.send(octets[done:])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)
