"""Body parts an app sends in one step of its Task go out in one write (``conn/cork.rs``),
and never later than the end of that step, in the order they were sent."""

from __future__ import annotations

import asyncio
from typing import Any

from mockconn import MockConnection, Runner

START = {"type": "http.response.start", "status": 200, "headers": []}
GET = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
#: What the server holds back at most before writing anyway (CORK_LIMIT).
LIMIT = 1024 * 1024


def part(body: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.response.body", "body": body, "more_body": more}


def test_parts_sent_in_one_step_go_out_in_one_write(run: Runner) -> None:
    """Small parts, a large one (the app's own bytes on uvloop) and the last, empty."""
    parts = [b"a" * 10, b"b" * 40_000, b"c" * 5]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        for body in parts:
            await send(part(body))
        await send(part(b"", more=False))

    async def scenario() -> None:
        conn = MockConnection(app)
        for _ in range(2):  # keep-alive: the second response follows the first intact
            conn.send(GET)
        first, second = await conn.responses(2)
        for resp in (first, second):
            assert resp.body == b"".join(parts)
            assert resp.headers["transfer-encoding"] == "chunked"
        assert len(conn.transport.calls) == 2

    run(scenario)


def test_a_part_is_written_before_the_app_suspends(run: Runner) -> None:
    """Nothing is held past the step: a server-sent-events app that waits between parts
    has each part on the wire while it waits."""
    go_on = asyncio.Event()
    waiting = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        await send(part(b"data: first\n\n"))
        waiting.set()
        await go_on.wait()
        await send(part(b"data: second\n\n", more=False))

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(GET)
        await asyncio.wait_for(waiting.wait(), 5)
        assert bytes(conn.transport.written).endswith(b"\r\ndata: first\n\n\r\n")
        go_on.set()
        [resp] = await conn.responses(1)
        assert resp.body == b"data: first\n\ndata: second\n\n"

    run(scenario)


def test_a_part_sent_by_another_task_is_written_at_once(run: Runner) -> None:
    """Only the app's own Task holds parts back (its step's end writes them): a task it
    started sends as it goes, or its parts would wait for a step that may never come."""
    go_on = asyncio.Event()
    waiting = asyncio.Event()

    async def producer(send: Any) -> None:
        await send(part(b"from the producer"))
        waiting.set()
        await go_on.wait()
        await send(part(b"", more=False))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        await asyncio.create_task(producer(send))

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(GET)
        await asyncio.wait_for(waiting.wait(), 5)
        assert b"from the producer" in conn.transport.written
        go_on.set()
        [resp] = await conn.responses(1)
        assert resp.body == b"from the producer"

    run(scenario)


def test_held_parts_go_out_before_the_cut_of_an_unfinished_response(run: Runner) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        await send(part(b"half of it"))

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(GET)
        await conn.until(lambda: conn.transport.closed, "the connection cut")
        written = bytes(conn.transport.written)
        assert written.endswith(b"\r\nhalf of it\r\n")  # no last chunk: the client sees a cut
        assert conn.transport.calls[-1] == len(written)  # one write, before the close

    run(scenario)


def test_holding_back_stops_at_the_limit(run: Runner) -> None:
    """2.5 MiB sent in one step is not held whole: the transport's flow control sees it
    by the limit."""
    parts = [bytes([n]) * (64 * 1024) for n in range(40)]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        for body in parts:
            await send(part(body))
        await send(part(b"", more=False))

    async def scenario() -> None:
        conn = MockConnection(app)
        conn.send(GET)
        [resp] = await conn.responses(1)
        assert resp.body == b"".join(parts)
        calls = conn.transport.calls
        assert len(calls) >= 3
        assert max(calls) < LIMIT + 2 * len(parts[0])

    run(scenario)
