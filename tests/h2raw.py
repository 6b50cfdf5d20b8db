"""HTTP/2 clients for the black-box tests: httpx speaking only HTTP/2, and a bare
cleartext client over a socket, for tests that need bytes before the preface (a PROXY
header) or a connection kept open across several requests."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import httpx
from hyperframe.frame import Frame, PingFrame, RstStreamFrame

if TYPE_CHECKING:
    from realserver import ServerProcess

BOUND = 30.0


def h2_httpx(server: ServerProcess) -> httpx.Client:
    """httpx speaking HTTP/2 only: prior knowledge on cleartext, ALPN h2 over TLS."""
    verify: ssl.SSLContext | bool = server.client_context() or False
    return httpx.Client(base_url=server.url, http1=False, http2=True, verify=verify, timeout=BOUND)


def open_h2(
    host: str, port: int, preamble: bytes = b""
) -> tuple[socket.socket, h2.connection.H2Connection]:
    """A connection with ``preamble`` (a PROXY header) and the preface sent."""
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    sock = socket.create_connection((host, port), timeout=BOUND)
    sock.sendall(preamble + conn.data_to_send())
    return sock, conn


def h2_request(
    sock: socket.socket,
    conn: h2.connection.H2Connection,
    method: str,
    path: str,
    body: bytes = b"",
) -> tuple[int, bytes]:
    """One request on a new stream: its status and body (bounded by reads and the timeout)."""
    stream = h2_send_request(sock, conn, method, path, body)
    return h2_responses(sock, conn, {stream})[stream]


def request_headers(method: str, path: str) -> list[tuple[bytes, bytes]]:
    """The pseudo-headers of a cleartext request for ``path``."""
    return [
        (b":method", method.encode()),
        (b":scheme", b"http"),
        (b":authority", b"localhost"),
        (b":path", path.encode()),
    ]


def read_until_goaway(
    sock: socket.socket, conn: h2.connection.H2Connection, stream: int = 0
) -> list[h2.events.Event]:
    """Events until the server's GOAWAY, the end or reset of ``stream``, or the server's
    close (bounded by reads and the timeout)."""
    events: list[h2.events.Event] = []
    for _ in range(10_000):
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        try:
            events.extend(conn.receive_data(data))
        except h2.exceptions.ProtocolError:
            break
        if any(
            isinstance(e, h2.events.ConnectionTerminated)
            or (
                isinstance(e, h2.events.StreamEnded | h2.events.StreamReset)
                and e.stream_id == stream
            )
            for e in events
        ):
            break
    return events


def h2_send_request(
    sock: socket.socket,
    conn: h2.connection.H2Connection,
    method: str,
    path: str,
    body: bytes = b"",
) -> int:
    """Open a stream with a request, without waiting for its response; its id."""
    stream: int = conn.get_next_available_stream_id()
    conn.send_headers(stream, request_headers(method, path), end_stream=not body)
    if body:
        conn.send_data(stream, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    return stream


def h2_responses(
    sock: socket.socket, conn: h2.connection.H2Connection, streams: set[int]
) -> dict[int, tuple[int, bytes]]:
    """The status and body of each of ``streams`` once all ended (bounded by reads and the
    timeout); received data is acknowledged, so flow control never stalls them."""
    status: dict[int, int] = {}
    bodies = dict.fromkeys(streams, b"")
    ended: set[int] = set()
    for _ in range(10_000):
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if getattr(event, "stream_id", None) not in streams:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                status[event.stream_id] = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                bodies[event.stream_id] += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                ended.add(event.stream_id)
        sock.sendall(conn.data_to_send())
        if ended == streams:
            return {s: (status.get(s, 0), bodies[s]) for s in streams}
    raise AssertionError(f"streams {sorted(streams - ended)} did not end (statuses {status})")


class FrameReader:
    """Raw frames from the server, for what a client library hides (the frames after a
    GOAWAY): PINGs are acknowledged as a live client does, and bytes of a frame not yet
    complete are kept for the next read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.frames: list[Frame] = []

    def until(self, done: Callable[[list[Frame]], bool]) -> list[Frame]:
        """Read until ``done(frames)`` (all frames so far) or the server closes; bounded by
        the number of reads and the socket's timeout."""
        for _ in range(1000):
            if done(self.frames):
                break
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            self.buffer += data
            self._parse()
        return self.frames

    def _parse(self) -> None:
        while len(self.buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
            if len(self.buffer) < 9 + length:
                return
            frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
            self.buffer = self.buffer[9 + length :]
            self.frames.append(frame)
            if isinstance(frame, PingFrame) and "ACK" not in frame.flags:
                ack = PingFrame(0, flags=["ACK"])
                ack.opaque_data = frame.opaque_data
                self.sock.sendall(ack.serialize())


def ended(frames: list[Frame], stream: int) -> bool:
    """Whether ``stream`` ended (END_STREAM) or was reset among ``frames``."""
    return any(
        f.stream_id == stream
        and (isinstance(f, RstStreamFrame) or ("END_STREAM" in f.flags and f.type in (0x0, 0x1)))
        for f in frames
    )
