"""ruvicorn from Python: ``run()`` for a supervised server, ``Server`` to embed one in a loop.

``run(app, **options)`` takes every command-line option by its setting name
(``timeout_keep_alive=10``) or its flag's name (``keep_alive=10``), checked exactly as the
command line checks them; a bad one raises :class:`ruvicorn.ConfigError` with one line.

``Server`` serves in the calling process and event loop, without a master or workers: for
tests and notebooks::

    server = ruvicorn.Server(ruvicorn.Config(port=0), app=app)
    task = asyncio.create_task(server.serve())
    await server.wait_started()
    ...  # talk to server.url
    await server.shutdown()
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from ruvicorn import coerce, listeners
from ruvicorn.config import Config, ConfigError, flag_of
from ruvicorn.hooks import NO_HOOKS, ServerHooks

#: Settings that shape processes, which an embedded server (one process, someone else's
#: loop) cannot honour.
PROCESS_ONLY = (
    "workers",
    "reload",
    "preload",
    "user",
    "group",
    "chdir",
    "umask",
    "pid",
    "metrics_bind",
)


def run(app: Any, /, *, hooks: ServerHooks | None = None, **options: Any) -> int:
    """Serve ``app`` with ruvicorn's master and workers until stopped; returns the exit code
    (0 after a clean stop, see ``ruvicorn.exitcodes``).

    ``app`` is ``"module:attribute"`` or the application object itself (workers inherit it
    through fork; ``reload`` needs the string form). ``options`` are the command line's
    settings; ``hooks`` are server hooks (see ``ruvicorn.hooks``). Environment variables and
    config files are not read: what is passed is what is served. Must be called from the
    main thread, which the master's signal handling needs.

    Raises ConfigError (one line) for an unknown option or a bad value.
    """
    from ruvicorn.main import run_from_config

    config, app_object = _config(app, options, "ruvicorn.run()")
    if app_object is not None and config.reload:
        raise ConfigError("ruvicorn.run(): reload needs the app as 'module:attribute'")
    return run_from_config(config, hooks or NO_HOOKS, app_object)


def _config(app: Any, options: dict[str, Any], where: str) -> tuple[Config, Any]:
    if "app" in options:
        raise ConfigError(f"{where}: pass the app as the first argument, not app=")
    if isinstance(app, str):
        options = {**options, "app": app}
        app = None
    return Config(**coerce.values(options, where)), app


class Server:
    """One ruvicorn server in the current process and event loop (no master, no workers).

    Stop it with ``await server.shutdown()``, or by setting ``server.should_exit = True``
    (noticed within 0.1 s, also when set from another thread); ``force_exit`` skips the
    graceful drain. Signals are left to the caller. ``serve()`` raises ConfigError when a
    listener cannot be bound and ``ruvicorn.StartupError`` when the app cannot be loaded or
    its lifespan startup fails.
    """

    def __init__(self, config: Config, app: Any = None) -> None:
        """``app``: the application object; when None, ``config.app`` is imported."""
        for name in PROCESS_ONLY:
            if getattr(config, name) != getattr(Config(), name):
                flag = flag_of(name)
                raise ConfigError(f"{flag} needs ruvicorn.run() or the command line, not Server")
        if app is None and not config.app:
            raise ConfigError("Server needs an app: pass app= or Config(app='module:attribute')")
        self.config = config
        self.app = app
        self.should_exit = False
        self.force_exit = False
        #: True while the server accepts connections.
        self.started = False
        #: The listening sockets, once ``serve()`` has bound them.
        self.sockets: list[socket.socket] = []
        self._started = asyncio.Event()
        self._done = asyncio.Event()

    @property
    def url(self) -> str:
        """Where the first listener serves, e.g. ``http://127.0.0.1:8000`` (port 0 resolved;
        ``https://`` with TLS)."""
        if not self.sockets:
            raise RuntimeError("the server has not bound its listeners yet")
        return listeners.describe(self.sockets[0], self.config.tls)

    async def wait_started(self) -> None:
        """Return once the server accepts connections (or has already stopped)."""
        await self._started.wait()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until stopped; ``sockets`` are already-bound listeners to use instead."""
        from ruvicorn.worker.hooks import WorkerHooks
        from ruvicorn.worker.run import finish, prepare

        self._done.clear()
        self.should_exit = False
        own = sockets is None
        self.sockets = listeners.bind_listeners(self.config) if sockets is None else sockets
        try:
            server, lifespan = await prepare(self.config, WorkerHooks(), self.app, self.sockets)
            await server.start(self.sockets)
            self.started = True
            self._started.set()
            while not self.should_exit:
                await asyncio.sleep(0.1)
            timeout = 0.0 if self.force_exit else self.config.timeout_graceful_shutdown
            await finish(server, lifespan, timeout, finish_tasks=False)
        finally:
            self.started = False
            self._started.set()  # nobody waits forever for a server that failed
            if own:
                listeners.close_listeners(self.sockets)
            self._done.set()

    async def shutdown(self) -> None:
        """Stop gracefully and wait until ``serve()`` has returned."""
        self.should_exit = True
        if self._started.is_set() or self.started:
            await self._done.wait()
