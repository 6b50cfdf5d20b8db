"""An HTTP/2 client for in-process tests: the python ``h2`` library over a
``MockConnection``, and the frames a server wrote, parsed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import hyperframe.frame
from mockconn import MockConnection
from streamresponse import StreamResponse, collect

Headers = list[tuple[bytes, bytes]]
Fields = tuple[tuple[bytes, bytes], ...] | Headers


class H2Client:
    """A client connection over a ``MockConnection``: frames out, events back."""

    def __init__(
        self,
        mock: MockConnection,
        send: Callable[[bytes], None] | None = None,
        received: Callable[[], bytes] | None = None,
    ) -> None:
        """``send`` and ``received`` (everything read so far) default to the mock's
        cleartext; a TLS peer passes its own."""
        self.mock = mock
        self.send = send or mock.send
        self.received = received or (lambda: bytes(mock.transport.written))
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.read = 0
        self.events: list[h2.events.Event] = []
        self.responses: dict[int, StreamResponse] = {}
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.send(data)

    def pump(self) -> None:
        """Read what the server wrote since the last call (acknowledging its DATA)."""
        written = self.received()
        new, self.read = written[self.read :], len(written)
        if new:
            for event in self.conn.receive_data(new):
                self.events.append(event)
                collect(self.responses, event)
                if isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            self.flush()

    def request(
        self,
        path: str = "/",
        method: str = "GET",
        body: bytes = b"",
        extra: Fields = (),
        open_body: bool = False,
    ) -> int:
        stream = self.conn.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"http"),
            (b":authority", b"example.test"),
            (b":path", path.encode()),
            *extra,
        ]
        self.conn.send_headers(stream, headers, end_stream=not body and not open_body)
        if body:
            self.send_body(stream, body)
        self.flush()
        return stream

    def send_body(self, stream: int, body: bytes) -> None:
        """Send as much as flow control allows; the rest goes as the window reopens."""
        self.pending = getattr(self, "pending", {})
        self.pending[stream] = body
        self.push()

    def push(self) -> None:
        for stream, body in list(getattr(self, "pending", {}).items()):
            rest = body
            while rest:
                room = min(
                    self.conn.local_flow_control_window(stream),
                    self.conn.max_outbound_frame_size,
                    len(rest),
                )
                if room <= 0:
                    break
                self.conn.send_data(stream, rest[:room])
                rest = rest[room:]
            if rest:
                self.pending[stream] = rest
            else:
                del self.pending[stream]
                self.conn.end_stream(stream)
        self.flush()

    def finished(self, stream: int) -> bool:
        return any(
            isinstance(e, h2.events.StreamEnded | h2.events.StreamReset) and e.stream_id == stream
            for e in self.events
        )

    async def response(self, stream: int) -> tuple[int, Headers, bytes, Headers]:
        """Wait for the whole response of ``stream``: status, headers, body, trailers."""

        def done() -> bool:
            self.pump()
            self.push()
            return self.finished(stream)

        await self.mock.until(done, f"the end of stream {stream}")
        response = self.responses.get(stream)
        assert response and response.status, f"no response head on stream {stream}: {self.events}"
        headers = [h for h in response.headers if not h[0].startswith(b":")]
        return response.status, headers, response.body, response.trailers


def server_frames(written: bytes | bytearray) -> list[Any]:
    """Every frame the server wrote (after the client's view of the preface)."""
    frames, data = [], memoryview(bytes(written))
    while len(data) >= 9:
        frame, length = hyperframe.frame.Frame.parse_frame_header(data[:9])
        frame.parse_body(data[9 : 9 + length])
        frames.append(frame)
        data = data[9 + length :]
    return frames
