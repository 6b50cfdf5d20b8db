"""Server hooks: functions a Python config file defines, called at points of the server's life.

The names and moments are the ones operators know from gunicorn config files:

=====================================  ==========  ===============================================
hook                                   runs in     when
=====================================  ==========  ===============================================
``on_starting(server)``                master      before the listeners are bound
``when_ready(server)``                 master      every worker has booted and serves (READY=1)
``pre_fork(server, worker)``           master      just before a worker is forked (``worker.pid``
                                                   is None)
``post_fork(server, worker)``          worker      just after fork, before privileges are dropped
                                                   and before the app is imported
``post_worker_init(worker)``           worker      the app is loaded and its lifespan started,
                                                   just before the worker accepts
``worker_exit(server, worker)``        worker      the worker stopped serving, just before it exits
``child_exit(server, worker)``         master      a worker process has exited (it was reaped);
                                                   ``worker.exit_code`` says how
``on_reload(server)``                  master      a rolling restart begins (SIGHUP, --reload)
``on_exit(server)``                    master      just before the master exits
=====================================  ==========  ===============================================

``server`` is a :class:`ServerInfo` and ``worker`` a :class:`WorkerInfo`: small read-only
views, not the supervisor's own objects, so a hook cannot break the master's bookkeeping.
A hook that raises is logged with its traceback and the server carries on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from logging import Logger
from typing import Any

from ruvicorn.config import Config
from ruvicorn.logs import error_log

#: Hooks other servers call that ruvicorn does not, with what to use instead.
UNSUPPORTED_HOOKS = {
    "pre_request": "use ASGI middleware",
    "post_request": "use ASGI middleware",
    "pre_exec": "ruvicorn reloads by forking new workers, never by re-executing the master",
    "nworkers_changed": "use on_reload, pre_fork and child_exit",
    "worker_int": "use worker_exit",
    "worker_abort": "use worker_exit (a hung worker's traceback is logged on its own)",
    "ssl_context": "TLS is configured by the ssl_* settings (ssl_certfile, ssl_keyfile, ...), "
    "not by an ssl.SSLContext",
}


@dataclass(frozen=True)
class WorkerInfo:
    """One worker, as hooks see it."""

    #: The worker's process id; None in ``pre_fork``.
    pid: int | None
    #: The nth worker this master started (1, 2, ...): a worker's generation, never reused.
    age: int
    #: Wall-clock time (``time.time()``) the worker was forked.
    started_at: float
    config: Config
    #: ``os.waitstatus_to_exitcode`` of the process (``-N`` = killed by signal N) in
    #: ``child_exit``; None elsewhere.
    exit_code: int | None = None
    log: Logger = field(default=error_log, repr=False)


class ServerInfo:
    """The master, as hooks see it: read-only, and always current in the master."""

    def __init__(
        self,
        config: Config,
        workers: Callable[[], tuple[WorkerInfo, ...]],
        target: Callable[[], int],
        pid: int | None = None,
    ) -> None:
        self._config = config
        self._workers = workers
        self._target = target
        self._pid = pid if pid is not None else os.getpid()
        self._started_at = time.time()

    @property
    def pid(self) -> int:
        """The master's process id."""
        return self._pid

    @property
    def config(self) -> Config:
        return self._config

    @property
    def started_at(self) -> float:
        """Wall-clock time the master started."""
        return self._started_at

    @property
    def num_workers(self) -> int:
        """How many workers the master keeps (``--workers``, changed by SIGTTIN/SIGTTOU)."""
        return self._target()

    @property
    def workers(self) -> tuple[WorkerInfo, ...]:
        """The live workers (in a worker's hooks: those alive when it was forked)."""
        return self._workers()

    @property
    def log(self) -> Logger:
        """ruvicorn's error log, where a hook's lines join the server's."""
        return error_log

    def __repr__(self) -> str:
        return f"<ruvicorn server pid={self.pid} workers={self.num_workers}>"


@dataclass(frozen=True)
class ServerHooks:
    """The hooks one server runs; each is optional."""

    on_starting: Callable[[ServerInfo], object] | None = None
    when_ready: Callable[[ServerInfo], object] | None = None
    pre_fork: Callable[[ServerInfo, WorkerInfo], object] | None = None
    post_fork: Callable[[ServerInfo, WorkerInfo], object] | None = None
    post_worker_init: Callable[[WorkerInfo], object] | None = None
    worker_exit: Callable[[ServerInfo, WorkerInfo], object] | None = None
    child_exit: Callable[[ServerInfo, WorkerInfo], object] | None = None
    on_reload: Callable[[ServerInfo], object] | None = None
    on_exit: Callable[[ServerInfo], object] | None = None

    def names(self) -> list[str]:
        """The hooks that are set, in declaration order."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def call(self, name: str, *args: Any) -> None:
        """Run hook ``name`` if set; an exception is logged with its traceback, not raised."""
        hook = getattr(self, name)
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:
            error_log.exception("The %s hook raised; carrying on", name)


NO_HOOKS = ServerHooks()
HOOK_NAMES = tuple(f.name for f in fields(ServerHooks))
