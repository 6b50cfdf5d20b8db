"""What a supervisor can plug into a worker without the worker knowing about it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerHooks:
    """Callbacks run on the worker's event loop.

    ``on_ready`` runs once, after lifespan startup, when every listener accepts.
    ``on_tick`` runs about once a second while the loop is healthy (the heartbeat), with
    how many seconds late that tick ran; it returns True to ask the worker to stop
    gracefully.
    ``request_limit`` is this worker's request budget (0 = none). The request that spends
    it makes the worker stop accepting at once and retire; ``on_recycle`` then runs once,
    so the supervisor can start a replacement.
    ``on_app_started`` runs once the app is loaded and its lifespan started, before the
    worker accepts (the ``post_worker_init`` server hook).
    ``metrics`` is the writable buffer the native protocol counts requests into
    (``--metrics-bind``; see ``ruvicorn.supervisor.metrics``), or None; nothing else may
    write it once handed over.
    """

    on_ready: Callable[[], None] | None = None
    on_tick: Callable[[float], bool] | None = None
    request_limit: int = 0
    on_recycle: Callable[[], None] | None = None
    on_app_started: Callable[[], None] | None = None
    metrics: memoryview | None = None
