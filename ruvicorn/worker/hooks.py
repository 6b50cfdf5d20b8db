"""What a supervisor can plug into a worker without the worker knowing about it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerStats:
    """A snapshot handed to ``on_tick``."""

    requests_served: int
    connections: int


@dataclass(frozen=True)
class WorkerHooks:
    """Callbacks run on the worker's event loop.

    ``on_ready`` runs once, after lifespan startup, when every listener accepts.
    ``on_tick`` runs about once a second while the loop is healthy (the heartbeat); it
    returns True to ask the worker to retire gracefully (recycling).
    """

    on_ready: Callable[[], None] | None = None
    on_tick: Callable[[WorkerStats], bool] | None = None
