"""A tiny HTTP/1.1 client over raw sockets, for tests that must control every byte.

Every read has a timeout (``READ_TIMEOUT``); a read that times out fails the test instead of
hanging it. Responses are parsed strictly enough to notice a server that frames wrongly.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

READ_TIMEOUT = 10.0
MAX_RESPONSE = 512 * 1024 * 1024


class ResponseError(AssertionError):
    """The server's bytes are not a well-formed HTTP/1.x response."""


@dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    #: How the body was framed: "length", "chunked", "close" or "none".
    framing: str = "none"
    trailers: list[tuple[str, str]] = field(default_factory=list)
    #: The body ended before its announced length (the connection closed early).
    incomplete: bool = False

    def header(self, name: str) -> str | None:
        values = self.header_list(name)
        return values[0] if values else None

    def header_list(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def keeps_alive(self) -> bool:
        tokens = {t.strip().lower() for v in self.header_list("connection") for t in v.split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


def connect(
    host: str,
    port: int,
    timeout: float = READ_TIMEOUT,
    tls: ssl.SSLContext | None = None,
    preamble: bytes = b"",
) -> socket.socket:
    """A connected socket with ``timeout`` on every operation; with ``tls`` (a client
    context) a TLS socket whose handshake is done. ``preamble`` (a PROXY protocol header)
    is sent first, in cleartext."""
    sock = socket.create_connection((host, port), timeout=timeout)
    if preamble:
        sock.sendall(preamble)
    if tls is None:
        return sock
    try:
        return tls.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


class RawClient:
    """One TCP connection; ``send`` bytes, ``read_response`` parses what comes back.

    With ``tls`` (a client context) the connection is TLS, the handshake done at once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float = READ_TIMEOUT,
        tls: ssl.SSLContext | None = None,
        preamble: bytes = b"",
    ) -> None:
        self.sock = connect(host, port, timeout, tls, preamble)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    # -- reading

    def _fill(self) -> bool:
        """Read more bytes into the buffer; False at EOF. Times out per ``self.timeout``."""
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(1024 * 1024)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            chunk = b""
        except TimeoutError:
            raise AssertionError(
                f"no bytes from the server within {self.timeout}s (buffered: {self.buf[:200]!r})"
            ) from None
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        if len(self.buf) > MAX_RESPONSE:
            raise ResponseError("response larger than the test bound")
        return True

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ResponseError(f"connection closed mid-line: {self.buf[:200]!r}")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _read_exact(self, n: int) -> tuple[bytes, bool]:
        while len(self.buf) < n:
            if not self._fill():
                data, self.buf = self.buf, b""
                return data, False
        data, self.buf = self.buf[:n], self.buf[n:]
        return data, True

    def read_head(self) -> Response:
        """The status line and headers of the next response (interim 1xx included)."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                if not self.buf:
                    raise ResponseError("connection closed before any response")
                raise ResponseError(f"connection closed mid-head: {self.buf[:300]!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ResponseError(f"bad status line: {lines[0]!r}")
        headers = []
        for raw in lines[1:]:
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep or name != name.strip() or not name:
                raise ResponseError(f"bad response header line: {raw!r}")
            headers.append((name, value.strip(" \t")))
        return Response(
            status=int(parts[1]),
            reason=parts[2] if len(parts) > 2 else "",
            version=parts[0],
            headers=headers,
        )

    def read_response(self, *, head_request: bool = False, skip_interim: bool = True) -> Response:
        """Read one full response; for a HEAD request pass ``head_request=True``."""
        while True:
            resp = self.read_head()
            if 100 <= resp.status < 200 and skip_interim and resp.status != 101:
                continue
            break
        if head_request or resp.status in (204, 304) or 100 <= resp.status < 200:
            return resp
        te = resp.header_list("transfer-encoding")
        cl = resp.header_list("content-length")
        if te:
            if cl:
                raise ResponseError("response has both Content-Length and Transfer-Encoding")
            if te[-1].split(",")[-1].strip().lower() != "chunked":
                raise ResponseError(f"unexpected response Transfer-Encoding {te}")
            resp.framing = "chunked"
            self._read_chunked(resp)
        elif cl:
            if len(set(cl)) != 1:
                raise ResponseError(f"conflicting Content-Length {cl}")
            resp.framing = "length"
            resp.body, complete = self._read_exact(int(cl[0]))
            resp.incomplete = not complete
        else:
            resp.framing = "close"
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def _read_chunked(self, resp: Response) -> None:
        body = bytearray()
        try:
            while True:
                size_line = self._read_line()
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                data, complete = self._read_exact(size)
                body += data
                if not complete:
                    resp.incomplete = True
                    resp.body = bytes(body)
                    return
                if self._read_line() != b"":
                    raise ResponseError("chunk data not followed by CRLF")
            while True:
                line = self._read_line()
                if not line:
                    break
                name, _, value = line.decode("latin-1").partition(":")
                resp.trailers.append((name.strip(), value.strip()))
        except ResponseError:
            if self.eof:
                resp.incomplete = True
                resp.body = bytes(body)
                return
            raise
        resp.body = bytes(body)

    def read_responses(self, n: int, *, head_request: bool = False) -> list[Response]:
        """``n`` pipelined responses, in order."""
        return [self.read_response(head_request=head_request) for _ in range(n)]

    def expect_closed(self, timeout: float | None = None) -> bytes:
        """Assert the server closes the connection (within ``timeout``); return leftovers."""
        old = self.sock.gettimeout()
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            while self._fill():
                pass
        finally:
            self.sock.settimeout(old)
        left, self.buf = self.buf, b""
        return left

    def nothing_received_for(self, seconds: float) -> bool:
        """True if the server sends nothing (and does not close) within ``seconds``."""
        if self.buf:
            return False
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            self.eof = True
            return False
        finally:
            self.sock.settimeout(self.timeout)
        if not chunk:
            self.eof = True
        self.buf += chunk
        return False


def request(
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    host: str | None = "testserver",
    version: str = "HTTP/1.1",
) -> bytes:
    """A well-formed request's bytes; Content-Length is added when there is a body."""
    lines = [f"{method} {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    names = {k.lower() for k, _ in headers or []}
    for k, v in headers or []:
        lines.append(f"{k}: {v}")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*chunks: bytes, trailers: bytes = b"") -> bytes:
    """A chunked body made of ``chunks`` (empty chunks are skipped) and optional trailers."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c)
    return out + b"0\r\n" + trailers + b"\r\n"


def exchange(
    host: str, port: int, data: bytes, tls: ssl.SSLContext | None = None, **kw: Any
) -> Response:
    """Send ``data`` on a new connection (TLS with a client context) and read one response."""
    with RawClient(host, port, tls=tls) as client:
        client.send(data)
        return client.read_response(**kw)


class WaitTimeout(AssertionError):
    """``wait_for`` gave up (a failure of the test, which callers may annotate)."""


def wait_for(
    predicate: Any, timeout: float = 10.0, what: str | None = None, *, interval: float = 0.02
) -> Any:
    """Poll ``predicate`` until it returns a truthy value, which is returned; fail the test
    after ``timeout`` seconds. The one poll loop of the test suite."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)
