"""Body parts an app sends in a burst within one step of its Task go out in few writes
(``conn/cork.rs``): the first at once, the rest together, never later than the end of
that step, in the order they were sent; nothing is held for a reader that falls behind.
Over TLS the held parts are encrypted together when they go out."""

from __future__ import annotations

import asyncio
from typing import Any

from mockconn import MockConnection, PausingTransport, Runner, parse
from tlspeer import Certs, tls_connection

START = {"type": "http.response.start", "status": 200, "headers": []}
GET = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
#: What the server holds back at most before writing anyway (CORK_LIMIT).
LIMIT = 1024 * 1024


def part(body: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.response.body", "body": body, "more_body": more}


async def send_parts(send: Any, parts: list[bytes]) -> None:
    for body in parts:
        await send(part(body))


def streaming(parts: list[bytes]) -> Any:
    """An app sending ``parts`` in one step, then an empty last part."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        await send_parts(send, parts)
        await send(part(b"", more=False))

    return app


class Pause:
    """Sends parts, then waits until the test lets it finish the response."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.waiting = asyncio.Event()
        self.go_on = asyncio.Event()

    async def send(self, send: Any) -> None:
        await send_parts(send, self.parts)
        self.waiting.set()
        await self.go_on.wait()
        await send(part(b"", more=False))

    async def check(self, conn: MockConnection) -> None:
        """Every part is on the wire while the sender waits."""
        conn.send(GET)
        await asyncio.wait_for(self.waiting.wait(), 5)
        assert bytes(conn.transport.written).endswith(b"\r\n" + self.parts[-1] + b"\r\n")
        self.go_on.set()
        [resp] = await conn.responses(1)
        assert resp.body == b"".join(self.parts)


def test_a_burst_of_parts_goes_out_in_few_writes(run: Runner) -> None:
    """Small parts, large ones (the app's own bytes on uvloop) and the last, empty: the
    first part goes out at once, the rest of the burst together (a write more only when
    the app's thread is held up for longer than the window between two sends)."""
    parts = [b"a" * 10, b"b" * 40_000, b"c" * 5] * 20

    async def scenario() -> None:
        conn = MockConnection(streaming(parts))
        for _ in range(2):  # keep-alive: the second response follows the first intact
            conn.send(GET)
        first, second = await conn.responses(2)
        for resp in (first, second):
            assert resp.body == b"".join(parts)
            assert resp.headers["transfer-encoding"] == "chunked"
        assert len(conn.transport.calls) < len(parts)

    run(scenario)


async def stream_over_tls(parts: list[bytes], certs: Certs, responses: int) -> list[int]:
    """``responses`` keep-alive responses of ``parts`` each over TLS, checked whole and in
    order; the sizes of the writes after the handshake."""
    peer = tls_connection(streaming(parts), certs)
    handshake = len(peer.conn.transport.calls)
    gets = ("GET",) * responses
    for _ in gets:
        peer.send(GET)
    await peer.until(lambda: len(parse(peer.plain, gets)) == responses, "the responses")
    for resp in parse(peer.plain, gets):
        assert resp.body == b"".join(parts)
    return peer.conn.transport.calls[handshake:]


def test_a_burst_over_tls_is_encrypted_together(run: Runner, certs: Certs) -> None:
    parts = [b"a" * 10, b"b" * 1000, b"c" * 5] * 10

    async def scenario() -> None:
        assert len(await stream_over_tls(parts, certs, 2)) < len(parts)

    run(scenario)


def test_over_tls_holding_back_stops_at_a_record(run: Runner, certs: Certs) -> None:
    """Over TLS a burst is held up to one record's worth (16 KiB of plaintext): the copy
    encryption makes anyway gains nothing from larger bursts."""
    parts = [bytes([n]) * 4096 for n in range(40)]

    async def scenario() -> None:
        calls = await stream_over_tls(parts, certs, 1)
        assert len(calls) >= 8
        assert max(calls) < 2 * 16 * 1024

    run(scenario)


def test_held_parts_are_encrypted_before_the_close_over_tls(run: Runner, certs: Certs) -> None:
    """A part past the response's length cuts the connection in the decision that also
    lets the held part out: it is encrypted ahead of the close_notify."""
    failed: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({**START, "headers": [(b"content-length", b"20")]})
        try:
            await send_parts(send, [b"half ", b"of it", b"more than was announced"])
        except RuntimeError as exc:
            failed.append(str(exc))

    async def scenario() -> None:
        peer = tls_connection(app, certs)
        peer.send(GET)
        await peer.conn.until(lambda: peer.conn.transport.closed, "the connection cut")
        assert peer.read().endswith(b"\r\n\r\nhalf of it")
        assert peer.close_notify
        assert failed

    run(scenario)


def test_held_parts_are_written_before_the_app_suspends(run: Runner) -> None:
    """Nothing is held past the step: a server-sent-events app that waits between bursts
    has each burst on the wire while it waits."""
    pause = Pause([b"data: first\n\n", b"data: second\n\n"])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        await pause.send(send)

    async def scenario() -> None:
        await pause.check(MockConnection(app))

    run(scenario)


def test_a_part_sent_by_another_task_is_written_at_once(run: Runner) -> None:
    """Only the app's own Task holds parts back (its step's end writes them): a task it
    started sends as it goes, or its parts would wait for a step that may never come."""
    pause = Pause([b"from the producer, ", b"twice"])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        await asyncio.create_task(pause.send(send))

    async def scenario() -> None:
        await pause.check(MockConnection(app))

    run(scenario)


def test_held_parts_go_out_before_the_cut_of_an_unfinished_response(run: Runner) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        await send_parts(send, [b"half ", b"of it"])

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(GET)
        await conn.until(lambda: conn.transport.closed, "the connection cut")
        written = bytes(conn.transport.written)
        assert written.endswith(b"\r\nof it\r\n")  # no last chunk: the client sees a cut
        assert sum(conn.transport.calls) == len(written)  # written before the close

    run(scenario)


def test_holding_back_stops_at_the_limit(run: Runner) -> None:
    """2.5 MiB sent in one step is not held whole: the transport's flow control sees it
    by the limit."""
    parts = [bytes([n]) * (64 * 1024) for n in range(40)]

    async def scenario() -> None:
        conn = MockConnection(streaming(parts))
        conn.send(GET)
        [resp] = await conn.responses(1)
        assert resp.body == b"".join(parts)
        calls = conn.transport.calls
        assert len(calls) >= 3
        assert max(calls) < LIMIT + 2 * len(parts[0])

    run(scenario)


class FellBehindOnce(PausingTransport):
    """Pauses its protocol at the first write and resumes it on the next loop turn."""

    auto_resume = True


def test_nothing_is_held_once_the_reader_fell_behind(run: Runner) -> None:
    """After a pause the transport's flow control alone bounds what waits for the reader:
    each part is written as it is sent."""
    parts = [bytes([n]) * 1000 for n in range(10)]

    async def scenario() -> None:
        conn = MockConnection(streaming(parts), transport=FellBehindOnce)
        conn.send(GET)
        [resp] = await conn.responses(1)
        assert resp.body == b"".join(parts)
        assert len(conn.transport.calls) == len(parts) + 1

    run(scenario)
