"""A keep-alive connection hands its last cycle (``receive`` and ``send``) to its next
request only when nothing else refers to it: an app that kept its callables, strongly
or weakly, never reaches the next request through them."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from mockconn import MockConnection, Runner


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


class App:
    """Answers each request with its path; what it keeps of its callables is up to the
    test."""

    def __init__(self) -> None:
        self.ids: list[tuple[int, int]] = []
        self.kept: tuple[Any, Any] | None = None
        self.weak: weakref.ref[Any] | None = None
        self.stale_send_error: BaseException | None = None
        self.weak_target_was_current: bool | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        self.ids.append((id(receive), id(send)))
        if path == "/keep":
            self.kept = (receive, send)
        elif path == "/keep-weakly":
            self.weak = weakref.ref(send)
        elif path == "/use-kept" and self.kept is not None:
            try:
                await self.kept[1]({"type": "http.response.start", "status": 418})
            except Exception as exc:  # a stale send may refuse; it must not answer
                self.stale_send_error = exc
        elif path == "/check-weak" and self.weak is not None:
            self.weak_target_was_current = self.weak() is send
        body = path.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _serve_one(conn: MockConnection, path: str, done: int) -> None:
    conn.send(get(path))
    await conn.responses(done)
    await conn.idle()  # the request's Task ends and lets go of its callables


def test_keep_alive_requests_reuse_one_cycle(run: Runner) -> None:
    app = App()
    fillers: list[Any] = []

    async def scenario() -> None:
        conn = MockConnection(app)
        for done in (1, 2, 3):
            await _serve_one(conn, "/plain", done)
            # Occupy the memory a freed cycle would leave, so a new cycle cannot land at
            # the same addresses by chance.
            fillers.extend(gc.collect for _ in range(64))
        assert app.ids[0] == app.ids[1] == app.ids[2]

    run(scenario)


def test_a_send_the_app_kept_never_reaches_the_next_request(run: Runner) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app)
        await _serve_one(conn, "/keep", 1)
        await _serve_one(conn, "/use-kept", 2)
        first, second = await conn.responses(2)
        assert (first.status, first.body) == (200, b"/keep")
        assert (second.status, second.body) == (200, b"/use-kept")
        assert app.kept is not None
        assert app.ids[1] != (id(app.kept[0]), id(app.kept[1]))

    run(scenario)


def test_a_send_weakly_referred_to_is_not_handed_on(run: Runner) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app)
        await _serve_one(conn, "/keep-weakly", 1)
        await _serve_one(conn, "/check-weak", 2)
        assert app.weak_target_was_current is False

    run(scenario)


def test_the_kept_cycle_is_let_go_with_the_connection(run: Runner) -> None:
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app)
        await _serve_one(conn, "/keep-weakly", 1)
        assert app.weak is not None and app.weak() is not None  # kept for a next request
        conn.disconnect()
        await conn.idle()
        gc.collect()
        assert app.weak() is None

    run(scenario)
