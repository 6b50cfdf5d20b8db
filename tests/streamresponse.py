"""A response as a test client reads it off one HTTP/2 or HTTP/3 stream: the in-process
HTTP/2 client (``h2``'s events, tests/inprocess/test_native_http2.py) and
tests/h3client.py (aioquic's HTTP/3 events) fold what they receive into it with
``collect``, so both read heads, bodies, trailers and stream ends the same way."""

from __future__ import annotations

from dataclasses import dataclass, field

import aioquic.h3.events
import h2.events

Fields = list[tuple[bytes, bytes]]

#: Events that carry a field section (the first of a stream is its head, a later one its
#: trailers; one with a 1xx status before the head an interim response), body bytes, or
#: only the end of the stream.
FIELDS = (
    h2.events.InformationalResponseReceived,
    h2.events.ResponseReceived,
    h2.events.TrailersReceived,
    aioquic.h3.events.HeadersReceived,
)
DATA = (h2.events.DataReceived, aioquic.h3.events.DataReceived)
END = (h2.events.StreamEnded,)


@dataclass
class StreamResponse:
    """The head's fields (pseudo-headers included), the body, the trailers, and the
    interim (1xx) heads that came before the head."""

    status: int = 0
    headers: Fields = field(default_factory=list)
    body: bytes = b""
    trailers: Fields = field(default_factory=list)
    ended: bool = False
    interim: list[Fields] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)


def collect(responses: dict[int, StreamResponse], event: object) -> StreamResponse | None:
    """Add ``event`` to its stream's response in ``responses``; that response, or None for
    an event that is none of a response's parts (settings, window updates, resets)."""
    if not isinstance(event, FIELDS + DATA + END):
        return None
    response = responses.setdefault(event.stream_id, StreamResponse())
    if isinstance(event, FIELDS):
        fields = [(bytes(n), bytes(v)) for n, v in event.headers or []]
        status = dict(fields).get(b":status", b"")
        if response.status == 0 and status.startswith(b"1"):
            response.interim.append(fields)
        elif response.status == 0:
            response.headers = fields
            response.status = int(status)
        else:
            response.trailers = fields
    elif isinstance(event, DATA):
        response.body += event.data or b""
    # (aioquic's events say whether they ended the stream; h2 adds a StreamEnded event.)
    response.ended |= isinstance(event, END) or bool(getattr(event, "stream_ended", False))
    return response
