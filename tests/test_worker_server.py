"""``WorkerServer`` in-process: what its drain counts as accepted."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from ruvicorn import listeners
from ruvicorn.config import Config
from ruvicorn.worker.hooks import WorkerHooks
from ruvicorn.worker.loop import new_event_loop
from ruvicorn.worker.run import prepare


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


class _SeesAccepts:
    """The server state, but its listeners' protocol factories report each accept: the
    loop calls a factory as it accepts, before it has attached the connection."""

    def __init__(self, state: Any, accepted: asyncio.Event) -> None:
        self._state = state
        self._accepted = accepted

    def listener(self, address: Any) -> Callable[[], Any]:
        make = self._state.listener(address)

        def factory() -> Any:
            self._accepted.set()
            return make()

        return factory

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)


class _Client(threading.Thread):
    """Sends one request, reads the answer and leaves, like a one-shot client."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.answer = b""
        self.finished = threading.Event()

    def run(self) -> None:
        with socket.create_connection(self.address, timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            while not self.answer.endswith(b"served") and (chunk := sock.recv(65536)):
                self.answer += chunk
        self.finished.set()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_connection_accepted_as_the_drain_starts_is_answered_before_it_ends(loop: str) -> None:
    """A worker told to stop in the loop turn that accepted a connection (its protocol made,
    not yet attached) must still count that connection and answer it before its drain
    ends; one that ended at once let the worker exit and close the connection unanswered
    (a request lost on reload)."""
    config = Config(port=0, access_log=False, lifespan="off", loop=loop)
    sockets = listeners.bind_listeners(config)
    client = _Client(sockets[0].getsockname())

    async def main() -> tuple[bool, bool]:
        server, _ = await prepare(config, WorkerHooks(), app, sockets)
        accepted = asyncio.Event()
        server.state = _SeesAccepts(server.state, accepted)  # type: ignore[assignment]
        await server.start(sockets)
        client.start()
        # Awaited directly (no wrapping task), this task wakes in the turn of the accept,
        # ahead of the connection's attachment.
        guard = asyncio.get_running_loop().call_later(5, accepted.set)
        await accepted.wait()
        guard.cancel()
        clean = await server.shutdown(5.0, restart=True, finish_tasks=False)
        answered_by_then = client.finished.is_set()
        await asyncio.to_thread(client.join, 5)  # on failure, lets the loop finish it
        return clean, answered_by_then

    event_loop = new_event_loop(loop)
    try:
        clean, answered_by_then = event_loop.run_until_complete(main())
    finally:
        event_loop.close()
        listeners.close_listeners(sockets)
    assert clean
    assert answered_by_then
    assert client.answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert client.answer.endswith(b"served")
