"""A raw HTTP/2 client for the conformance suite.

Frames are built with hyperframe (or as raw bytes where hyperframe refuses an invalid frame),
so a test can send sequences a conforming client library would never emit, then read the
server's exact reaction: a GOAWAY or RST_STREAM with a given error code, or a response.
Header blocks are encoded without touching the HPACK dynamic table, so a block the server
rejects never leaves the two sides' tables out of step.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum

from h2.errors import ErrorCodes
from hpack import Decoder, Encoder, NeverIndexedHeaderTuple
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
READ_TIMEOUT = 5.0
#: The server under test is ruvicorn unless this names a reference server.
REFERENCE = os.environ.get("RUVICORN_H2_REFERENCE", "")


class T(IntEnum):
    """Frame type codes, for raw frames."""

    DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
    PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9


class F:
    """Frame flag bits, for raw frames."""

    END_STREAM = ACK = 0x1
    END_HEADERS = 0x4
    PADDED = 0x8
    PRIORITY = 0x20


Headers = list[tuple[str, str]]


def raw(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame exactly as given: lengths, flags and stream ids nothing else would send."""
    return (
        struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, stream_id) + payload
    )


def block(headers: Iterable[tuple[str, str]]) -> bytes:
    """An HPACK block in the order given, with no dynamic-table insertions."""
    fields = [NeverIndexedHeaderTuple(n, v) for n, v in headers]
    return bytes(Encoder().encode(fields, huffman=False))


def integer(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """§5.1 integer representation with ``first`` in the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 | 0x80)
        value //= 128
    out.append(value)
    return bytes(out)


def request(
    path: str = "/ok", method: str = "GET", extra: Iterable[tuple[str, str]] = ()
) -> Headers:
    return [
        (":method", method),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        *extra,
    ]


@dataclass
class Response:
    status: int = 0
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    trailers: Headers = field(default_factory=list)
    data_frames: list[int] = field(default_factory=list)


class H2Conn:
    """One client connection; ``seen`` keeps every frame read, for failure messages."""

    def __init__(self, host: str, port: int, timeout: float = READ_TIMEOUT) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.decoder = Decoder()
        self.pending: dict[int, bytes] = {}
        self.decoded: dict[int, Headers] = {}
        self.server_settings: dict[int, int] = {}
        self.seen: list[str] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending

    def send(self, *frames: Frame | bytes) -> None:
        self.sock.sendall(b"".join(f if isinstance(f, bytes) else f.serialize() for f in frames))

    def handshake(self, settings: dict[int, int] | None = None) -> None:
        """Preface and SETTINGS; waits for the server's SETTINGS and acknowledges them."""
        self.send(PREFACE, SettingsFrame(0, settings or {}))
        for frame in self.frames():
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                self.server_settings = dict(frame.settings)
                self.send(SettingsFrame(0, flags=["ACK"]))
                return
        raise AssertionError(f"no SETTINGS from the server; saw {self.seen}")

    def headers(
        self,
        stream_id: int,
        headers: Headers | None = None,
        *,
        end_stream: bool = True,
        end_headers: bool = True,
    ) -> HeadersFrame:
        flags = ["END_STREAM"] * end_stream + ["END_HEADERS"] * end_headers
        return HeadersFrame(stream_id, block(headers or request()), flags=flags)

    def get(self, stream_id: int, path: str = "/ok") -> Response:
        self.send(self.headers(stream_id, request(path)))
        return self.response(stream_id)

    # -- reading

    def read_frame(self) -> Frame | None:
        """The next frame, or None once the server closed the connection."""
        while True:
            if len(self.buf) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) >= 9 + length:
                    frame.parse_body(memoryview(self.buf[9 : 9 + length]))
                    self.buf = self.buf[9 + length :]
                    self._decode(frame)
                    self.seen.append(repr(frame)[:160])
                    return frame
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.seen.append("<closed>")
                return None
            self.buf += chunk

    def read_all(self) -> bytes:
        """Raw bytes until the server closes; silence past the timeout fails the test."""
        deadline = time.monotonic() + self.timeout
        received = self.buf
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk
        raise AssertionError(f"connection still open after {self.timeout}s: {received[:200]!r}")

    def _decode(self, frame: Frame) -> None:
        """Decode every header block the server sends, in order, as HPACK requires."""
        if isinstance(frame, HeadersFrame | PushPromiseFrame | ContinuationFrame):
            self.pending[frame.stream_id] = self.pending.get(frame.stream_id, b"") + frame.data
            if "END_HEADERS" in frame.flags:
                fields = self.decoder.decode(self.pending.pop(frame.stream_id))
                self.decoded[frame.stream_id] = [(str(n), str(v)) for n, v in fields]

    def frames(self, timeout: float | None = None) -> Iterator[Frame]:
        """Frames until the connection closes; a read timeout fails the test with what was seen."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                frame = self.read_frame()
            except TimeoutError:
                raise AssertionError(f"server silent; frames so far: {self.seen}") from None
            if frame is None:
                return
            yield frame

    def expect_goaway(self, *codes: ErrorCodes) -> GoAwayFrame:
        """A connection error: GOAWAY carrying one of ``codes``."""
        for frame in self.frames():
            if isinstance(frame, GoAwayFrame):
                assert frame.error_code in codes, f"GOAWAY {frame.error_code}, want {codes}"
                return frame
        raise AssertionError(f"closed without GOAWAY {codes}; saw {self.seen}")

    def expect_stream_error(self, stream_id: int, *codes: ErrorCodes) -> None:
        """A stream error: RST_STREAM on the stream, or (RFC 9113 §5.4.1: an endpoint may
        treat a stream error as a connection error) GOAWAY, carrying one of ``codes``."""
        for frame in self.frames():
            stopped = isinstance(frame, GoAwayFrame)
            if stopped or (isinstance(frame, RstStreamFrame) and frame.stream_id == stream_id):
                name = type(frame).__name__
                assert frame.error_code in codes, f"{name} {frame.error_code}, want {codes}"
                return
        raise AssertionError(f"closed without RST_STREAM/GOAWAY {codes}; saw {self.seen}")

    def response(self, stream_id: int, window_updates: bool = False) -> Response:
        """The whole response on ``stream_id``; an error on it fails the test."""
        resp = Response()
        for frame in self.frames():
            if frame.stream_id == stream_id and isinstance(frame, RstStreamFrame):
                raise AssertionError(f"RST_STREAM {frame.error_code}; saw {self.seen}")
            if isinstance(frame, GoAwayFrame) and frame.error_code != ErrorCodes.NO_ERROR:
                raise AssertionError(f"GOAWAY {frame.error_code}; saw {self.seen}")
            if frame.stream_id != stream_id:
                continue
            if stream_id in self.decoded:
                fields = self.decoded.pop(stream_id)
                if resp.status:
                    resp.trailers = fields
                else:
                    resp.headers = fields
                    resp.status = int(dict(fields)[":status"])
            if isinstance(frame, DataFrame):
                resp.body += frame.data
                resp.data_frames.append(len(frame.data))
                if window_updates and frame.flow_controlled_length:
                    n = frame.flow_controlled_length
                    self.send(WindowUpdateFrame(0, n), WindowUpdateFrame(stream_id, n))
            if "END_STREAM" in frame.flags:
                return resp
        raise AssertionError(f"closed before the response ended; saw {self.seen}")

    def expect_alive(self, payload: bytes = b"alive!!!") -> None:
        """The connection still works: a PING is acknowledged with its payload."""
        self.send(PingFrame(0, payload))
        for frame in self.frames():
            if isinstance(frame, GoAwayFrame):
                raise AssertionError(f"GOAWAY {frame.error_code}; saw {self.seen}")
            if isinstance(frame, PingFrame) and "ACK" in frame.flags:
                assert frame.opaque_data == payload, f"PING ACK carries {frame.opaque_data!r}"
                return
        raise AssertionError(f"closed instead of answering PING; saw {self.seen}")


def connect(host: str, port: int, settings: dict[int, int] | None = None) -> H2Conn:
    conn = H2Conn(host, port)
    conn.handshake(settings)
    return conn


@dataclass
class Target:
    """Where the server listens, and what it is called in failure messages."""

    name: str
    host: str
    port: int

    def connect(self, settings: dict[int, int] | None = None) -> H2Conn:
        return connect(self.host, self.port, settings)


def rst(stream_id: int, code: ErrorCodes = ErrorCodes.CANCEL) -> RstStreamFrame:
    return RstStreamFrame(stream_id, int(code))


def data(stream_id: int, payload: bytes, end_stream: bool = True) -> DataFrame:
    return DataFrame(stream_id, payload, flags=["END_STREAM"] * end_stream)


def continuation(stream_id: int, payload: bytes, end_headers: bool = True) -> ContinuationFrame:
    return ContinuationFrame(stream_id, payload, flags=["END_HEADERS"] * end_headers)
