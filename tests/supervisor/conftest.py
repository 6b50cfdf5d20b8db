"""Fixtures for the supervisor tests (helpers live in ``sup_helpers``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sup_helpers import Server


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers for a test; all of them are killed at its end."""
    servers: list[Server] = []

    def _start(app: str, *args: str, **kwargs: object) -> Server:
        server = Server(tmp_path, app, *args, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.close()
