"""A worker process from start to exit: loop, app, lifespan, serving, graceful stop."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from ruvicorn import _native, exitcodes, logs, tls
from ruvicorn.config import Config
from ruvicorn.exitcodes import StartupError
from ruvicorn.listeners import describe, is_handover
from ruvicorn.logs import error_log
from ruvicorn.worker import early_signals, quic
from ruvicorn.worker.app_loading import AppLoadError, adapt, load_app
from ruvicorn.worker.hooks import WorkerHooks
from ruvicorn.worker.lifespan import Lifespan
from ruvicorn.worker.loop import new_event_loop
from ruvicorn.worker.server import WorkerServer
from ruvicorn.worker.task_registry import install_task_registrar


def run_worker(
    config: Config,
    sockets: list[socket.socket],
    hooks: WorkerHooks | None = None,
    app: Any = None,
) -> int:
    """Serve until told to stop; returns an exit code from ``exitcodes``.

    ``app`` is given when the master preloaded it; otherwise the worker imports it, so a
    reload picks up new code.
    """
    logs.enable_fault_tracebacks()
    loop = new_event_loop(config.loop)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve(config, sockets, hooks or WorkerHooks(), app))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


async def prepare(
    config: Config, hooks: WorkerHooks, app: Any, sockets: Sequence[socket.socket] = ()
) -> tuple[WorkerServer, Lifespan]:
    """Load the app (or adapt the one given) and run its lifespan startup; the server is
    made, not started. Raises :class:`StartupError`.

    The TLS files are checked first: they may have changed since the master checked them
    (a worker replacing one that crashed or was recycled), and a worker that cannot serve
    them must say so in one line before it imports anything.
    """
    problem = tls.problem(config)
    if problem is not None:
        raise StartupError(exitcodes.TLS_FAILED, problem)
    try:
        app = load_app(config) if app is None else adapt(app)
    except AppLoadError as exc:
        raise StartupError(exitcodes.APP_LOAD_FAILED, f"Could not load the app: {exc}") from None
    lifespan = Lifespan(app, config.lifespan, error_log)
    if not await lifespan.startup():
        raise StartupError(exitcodes.LIFESPAN_FAILED, "The application's lifespan startup failed")
    if hooks.on_app_started is not None:
        hooks.on_app_started()
    loop = asyncio.get_running_loop()
    state = lifespan.state if lifespan.supported else None
    served = quic.advertised(config, sockets)
    return WorkerServer(served, app, loop, state, hooks), lifespan


async def finish(
    server: WorkerServer,
    lifespan: Lifespan,
    timeout: float,
    restart: bool = False,
    finish_tasks: bool = True,
) -> None:
    """Drain the connections within ``timeout``, then run lifespan shutdown."""
    try:
        await server.shutdown(
            timeout, spare=lifespan.task, restart=restart, finish_tasks=finish_tasks
        )
        await lifespan.shutdown()
    finally:
        server.stop_ticking()


async def _serve(config: Config, sockets: list[socket.socket], hooks: WorkerHooks, app: Any) -> int:
    loop = asyncio.get_running_loop()
    try:
        server, lifespan = await prepare(config, hooks, app, sockets)
    except StartupError as exc:
        if exc.code != exitcodes.LIFESPAN_FAILED:  # lifespan failures were logged already
            error_log.error("%s", exc)
        return exc.code
    stop = _StopSignals(loop, server)
    await server.start(sockets)
    for sock in sockets:
        if not is_handover(sock):
            error_log.info("Worker %d listening on %s", os.getpid(), describe(sock, config.tls))
    # Everything alive now (modules, the app, its startup state) lives as long as the
    # worker: keep it out of the cyclic collector's scans, which otherwise walk it all on
    # every full collection while requests allocate.
    gc.freeze()
    # Importing and starting the app freed much of what it allocated in the C heap, whose
    # pages the allocator would otherwise keep for the worker's whole life: hand them back
    # once, before the first request.
    _native.trim_heap()
    # Each request's Task is registered with asyncio without Python frames.
    install_task_registrar()
    if hooks.on_ready is not None:
        hooks.on_ready()
    stop_wait = asyncio.ensure_future(stop.requested.wait())
    retire_wait = asyncio.ensure_future(server.retire.wait())
    await asyncio.wait({stop_wait, retire_wait}, return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    retire_wait.cancel()
    timeout = 0.0 if stop.fast else config.timeout_graceful_shutdown
    await finish(server, lifespan, timeout, restart=stop.restart or server.retire.is_set())
    stop.uninstall()
    return exitcodes.OK


class _StopSignals:
    """SIGTERM/SIGINT: graceful stop (a second one: fast); SIGHUP: graceful stop because a
    replacement takes over (the master's rolling restarts); SIGQUIT: fast; SIGUSR1: reopen
    logs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: WorkerServer) -> None:
        self.loop = loop
        self.server = server
        self.requested = asyncio.Event()
        self.fast = False
        self.restart = False
        handlers: dict[int, Callable[[], None]] = {
            signum: getattr(self, f"_{action}") for signum, action in early_signals.ACTIONS.items()
        }
        for signum, handler in handlers.items():
            loop.add_signal_handler(signum, handler)
        # What reached the worker while it booted, in order (see early_signals).
        for signum in early_signals.release():
            handlers[signum]()

    def _graceful(self) -> None:
        if self.requested.is_set():
            self._fast()
            return
        self.requested.set()

    def _replaced(self) -> None:
        self.restart = True
        self._graceful()

    def _fast(self) -> None:
        self.fast = True
        self.requested.set()
        self.server.state.close_all()

    def _reopen_logs(self) -> None:
        logs.reopen_files()

    def uninstall(self) -> None:
        for signum in early_signals.ACTIONS:
            self.loop.remove_signal_handler(signum)
