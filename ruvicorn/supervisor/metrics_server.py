"""The master's ``GET /metrics`` responder: non-blocking sockets on the master's own poll
(see ``responder``): a client gets one response and is closed. Anything but
``GET /metrics`` is answered 404; a request that is not HTTP, or whose head is too long,
is closed without an answer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from ruvicorn.config import ConfigError
from ruvicorn.supervisor.responder import Responder

#: Clients served at once; more wait in the listen backlog.
MAX_CLIENTS = 8
#: Largest request head read; a longer one is closed.
MAX_HEAD = 8 * 1024
#: Seconds a client has to send its request and read the response.
CLIENT_TIMEOUT = 5.0
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


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


class MetricsServer(Responder):
    """Answers ``GET /metrics`` with ``render()``; driven by the master's loop."""

    def __init__(self, listener: socket.socket, render: Callable[[], bytes]) -> None:
        super().__init__(
            listener,
            self._answer,
            max_clients=MAX_CLIENTS,
            max_request=MAX_HEAD,
            timeout=CLIENT_TIMEOUT,
        )
        self.render = render

    def _answer(self, head: bytes) -> bytes | None:
        if b"\r\n\r\n" not in head and b"\n\n" not in head:
            return None
        line = head.split(b"\n", 1)[0].rstrip(b"\r").split(b" ")
        if len(line) != 3 or not line[2].startswith(b"HTTP/1."):
            return b""
        method, target = line[0], line[1].split(b"?", 1)[0]
        if method == b"GET" and target == b"/metrics":
            return _response(b"200 OK", self.render(), CONTENT_TYPE)
        return _response(b"404 Not Found", b"Not Found: ruvicorn serves GET /metrics\n")
