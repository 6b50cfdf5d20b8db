"""The native protocol driven in-process: a recording transport instead of a socket.

A ``MockConnection`` builds the worker's shared state exactly as a worker does (a
``ruvicorn.worker.server.WorkerServer``, which never listens here), makes one protocol
from it and hands it a ``MockTransport``. Tests feed request bytes with ``send`` and run
the event loop until what they wait for happened; no process, no socket, so each case
takes milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import h11

from ruvicorn.config import Config
from ruvicorn.worker.hooks import WorkerHooks
from ruvicorn.worker.server import WorkerServer

PEER = ("127.0.0.1", 50123)
LOCAL = ("127.0.0.1", 8000)
#: Bound on any wait for the loop to make progress: a hang fails the test, not the run.
SETTLE_TIMEOUT = 5.0

Scenario = Callable[[], Awaitable[None]]
#: Runs one scenario to completion on a fresh loop (the ``run`` fixture of conftest.py).
Runner = Callable[[Scenario], None]


class MockTransport:
    """Records what the protocol writes and how it drives the connection.

    ``close()`` and ``abort()`` report ``connection_lost`` on the next loop turn, as a
    socket transport does.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.protocol: asyncio.BaseProtocol | None = None
        self.written = bytearray()
        #: Each object handed to ``write`` (or in ``writelines``), to tell a copy from the
        #: app's own ``bytes``.
        self.writes: list[bytes | bytearray | memoryview] = []
        #: The bytes of each call of ``write`` or ``writelines``.
        self.calls: list[int] = []
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.reading = True
        self.extra: dict[str, Any] = {"peername": PEER, "sockname": LOCAL, "socket": None}

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._record(data)
        self.calls.append(len(data))

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self._record(chunk)
        self.calls.append(sum(map(len, chunks)))

    def _record(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self.written += data
        self.writes.append(data)

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self._lose()

    def abort(self) -> None:
        self.aborted = True
        self._lose()

    def _lose(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.protocol is not None:
            self.loop.call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


class PausingTransport(MockTransport):
    """Pauses its protocol at its first write, as a socket transport does once its buffer
    passes the high-water mark (a reader that fell behind). ``resume()`` resumes it, as a
    drain would; with ``auto_resume`` the loop's next turn does; with ``pause_again`` the
    first write after each resume pauses it again."""

    auto_resume = False
    pause_again = False
    armed = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        super().write(data)
        self._maybe_pause()

    def writelines(self, chunks: list[bytes]) -> None:
        super().writelines(chunks)
        self._maybe_pause()

    def _maybe_pause(self) -> None:
        protocol: Any = self.protocol
        if protocol is not None and self.armed:
            self.armed = False
            protocol.pause_writing()
            if self.auto_resume:
                self.loop.call_soon(self.resume)

    def resume(self) -> None:
        protocol: Any = self.protocol
        self.armed = self.pause_again
        protocol.resume_writing()


def worker_state(app: Any, **settings: Any) -> Any:
    """The native state of a worker serving ``app`` with ``settings`` (Config field names)
    on the running loop, as a worker builds it; it makes each connection's protocol (or,
    with ``http3``, the QUIC endpoint's)."""
    config = Config(app="inprocess:app", **settings)
    return WorkerServer(config, app, asyncio.get_running_loop(), None, WorkerHooks()).state


class MockConnection:
    """One connection of a worker serving ``app`` with ``settings`` (Config field names);
    ``extra`` replaces what the transport's ``get_extra_info`` answers (its addresses),
    ``transport`` is the transport's class; ``state`` is another connection's worker
    state, for a second connection of the same worker (``settings`` are then unused)."""

    def __init__(
        self,
        app: Any,
        *,
        extra: dict[str, Any] | None = None,
        transport: type[MockTransport] = MockTransport,
        state: Any = None,
        **settings: Any,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.state = worker_state(app, **settings) if state is None else state
        self.transport = transport(self.loop)
        self.transport.extra.update(extra or {})
        self.protocol = self.state()
        self.transport.protocol = self.protocol
        self.protocol.connection_made(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def disconnect(self) -> None:
        """The client went away (the transport reports the loss, as asyncio does)."""
        self.transport.closed = True
        self.protocol.connection_lost(None)

    async def until(self, predicate: Callable[[], object], what: str) -> None:
        """Run the loop until ``predicate()`` holds; fail after ``SETTLE_TIMEOUT`` seconds."""
        deadline = self.loop.time() + SETTLE_TIMEOUT
        while not predicate():
            if self.loop.time() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}; written: {bytes(self.transport.written)!r}"
                )
            await asyncio.sleep(0.001)

    async def responses(self, n: int, methods: tuple[str, ...] = ()) -> list[Parsed]:
        """Run the loop until ``n`` complete responses were written; parse them."""
        methods = methods or ("GET",) * n
        await self.until(lambda: len(parse(self.transport.written, methods)) >= n, f"{n} responses")
        return parse(self.transport.written, methods)

    async def idle(self, turns: int = 20) -> None:
        """Let the loop run a little (for asserting that nothing more happens)."""
        for _ in range(turns):
            await asyncio.sleep(0)


class Parsed:
    """One response as h11 (a client-side parser independent of the server's) read it."""

    def __init__(self, response: h11.Response) -> None:
        self.status = response.status_code
        self.headers = {k.decode().lower(): v.decode() for k, v in response.headers}
        self.body = b""
        self.complete = False

    def __repr__(self) -> str:
        return f"<Parsed {self.status} {self.headers} {self.body[:60]!r}>"


def parse(data: bytes | bytearray, methods: tuple[str, ...]) -> list[Parsed]:
    """The complete responses in ``data``, one per request method in ``methods``."""
    client = h11.Connection(h11.CLIENT)
    if data:  # (no bytes at all would tell h11 the connection closed)
        client.receive_data(bytes(data))
    out: list[Parsed] = []
    for method in methods:
        client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        client.send(h11.EndOfMessage())
        current = _read_one(client)
        if current is None:
            break
        out.append(current)
        if client.our_state is not h11.DONE or client.their_state is not h11.DONE:
            break
        client.start_next_cycle()
    return out


def _read_one(client: h11.Connection) -> Parsed | None:
    current: Parsed | None = None
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, h11.Response):
            current = Parsed(event)
        elif isinstance(event, h11.Data) and current is not None:
            current.body += event.data
        elif isinstance(event, h11.EndOfMessage) and current is not None:
            current.complete = True
            return current
