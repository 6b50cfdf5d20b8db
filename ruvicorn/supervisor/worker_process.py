"""Forking one worker, and everything the child does before it starts serving.

Parent side: a status channel (worker -> master: ready, retiring at its request budget;
master -> worker: more listening sockets to serve), a shared heartbeat page, signals
blocked around ``fork`` so no master handler runs in the child.
Child side: default signal handlers, master-only descriptors closed (faulthandler on: a
SIGABRT from the master dumps every thread's traceback to the log, enabled by
``run_worker``), its own process group, a thread that stops the worker when the master
dies, the ``post_fork`` hook, ``--user``/``--group``, then ``run_worker`` (which runs
``post_worker_init``), ``worker_exit`` and ``os._exit`` with its code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ruvicorn import identity, logs
from ruvicorn.config import Config
from ruvicorn.hooks import NO_HOOKS, ServerHooks, ServerInfo, WorkerInfo
from ruvicorn.supervisor import metrics, proctitle, signals
from ruvicorn.supervisor.heartbeat import INTERVAL, Heartbeat
from ruvicorn.supervisor.recycling import MemoryWatch, request_limit
from ruvicorn.worker import early_signals
from ruvicorn.worker.hooks import WorkerHooks

#: Worker -> master messages on the status channel, one byte each.
MSG_READY = b"R"
#: The worker spent its request budget: it no longer accepts and is retiring on its own.
MSG_RECYCLE = b"M"
#: Master -> worker, with listening sockets attached: serve these too (orphaned slots).
MSG_LISTENERS = b"L"


@dataclass
class Worker:
    """The master's record of one worker process."""

    pid: int
    status_fd: int
    heartbeat: Heartbeat
    started: float
    memory: MemoryWatch
    #: What hooks are told about this worker (its pid unset: it was made before fork).
    about: WorkerInfo | None = None
    #: Its worker slot (see ``slots``), and every slot whose socket it serves.
    slot: int = 0
    serves: set[int] = field(default_factory=set)
    #: The slots whose HTTP/3 socket it serves, each with its end of the handover channel.
    quic: dict[int, int] = field(default_factory=dict)
    ready: bool = False
    #: Why this worker should be replaced ("" = it should not): reload or recycling.
    replace_reason: str = ""
    #: Told to stop (retired, stopping, or hung); no longer counts as capacity.
    retiring: bool = False
    #: When a retiring worker gets SIGKILL if it is still alive.
    kill_at: float = 0.0
    killed: bool = False
    hung: bool = False
    boot_timed_out: bool = False
    messages: list[bytes] = field(default_factory=list)

    def info(self, config: Config, exit_code: int | None = None) -> WorkerInfo:
        """This worker as hooks see it."""
        age, started_at = (self.about.age, self.about.started_at) if self.about else (0, 0.0)
        return WorkerInfo(
            pid=self.pid, age=age, started_at=started_at, config=config, exit_code=exit_code
        )

    def counters(self) -> tuple[int, ...]:
        """This worker's request counters now (``--metrics-bind``): its final ones once it
        has exited."""
        return self.heartbeat.read_counters(metrics.SLOTS)

    def lag(self) -> float:
        """How late its event loop runs: its last tick's lag, or the stall going on now."""
        return max(self.heartbeat.lag(), self.heartbeat.age() - INTERVAL)

    def signal(self, signum: int) -> None:
        """Send ``signum``, ignoring a worker that is already gone."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def send_listeners(self, sockets: list[socket.socket]) -> None:
        """Have this worker serve ``sockets`` too; they travel on its status channel."""
        if self.status_fd < 0 or not sockets:
            return
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(self.status_fd)) as chan:
            socket.send_fds(chan, [MSG_LISTENERS], [sock.fileno() for sock in sockets])

    def read_status(self) -> bool:
        """Collect pending status bytes; False once the worker closed its end (EOF)."""
        if self.status_fd < 0:
            return False
        while True:
            try:
                data = os.read(self.status_fd, 512)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                data = b""
            if not data:
                self.close_status()
                return False
            self.messages.extend(data[i : i + 1] for i in range(len(data)))

    def close_status(self) -> None:
        if self.status_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.status_fd)
            self.status_fd = -1


def spawn(
    config: Config,
    sockets: list[socket.socket],
    alive_fd: int,
    close_in_child: Iterable[int],
    *,
    app: Any = None,
    hooks: ServerHooks = NO_HOOKS,
    server_info: ServerInfo | None = None,
    about: WorkerInfo | None = None,
) -> Worker:
    """Fork a worker serving ``sockets``; returns at once in the master.

    ``app`` is the application the master preloaded (``--preload``), else None: the
    worker imports it itself, which is how a reload picks up new code.
    """
    status_r, status_w = status_channel()
    heartbeat = Heartbeat()
    master_pid = os.getpid()
    try:
        pid, old_mask = fork_from_master()
    except OSError:
        os.close(status_r)
        os.close(status_w)
        heartbeat.close()
        raise
    if pid == 0:
        child_main(
            config,
            sockets,
            status_w=status_w,
            heartbeat=heartbeat,
            alive_fd=alive_fd,
            master_pid=master_pid,
            close_fds=[status_r, *close_in_child],
            old_mask=old_mask,
            app=app,
            hooks=hooks,
            server_info=server_info,
            about=about,
        )
    os.close(status_w)
    return supervised(config, pid, status_r, heartbeat, about)


def status_channel() -> tuple[int, int]:
    """The master's and the worker's ends of a worker's status channel: a socket pair,
    so the master can pass the worker listening sockets on it later."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return ours.detach(), theirs.detach()


def supervised(
    config: Config, pid: int, status_r: int, heartbeat: Heartbeat, about: WorkerInfo | None
) -> Worker:
    """The master's record of worker ``pid``, however it was forked."""
    os.set_blocking(status_r, False)
    return Worker(
        pid=pid,
        status_fd=status_r,
        heartbeat=heartbeat,
        started=time.monotonic(),
        memory=MemoryWatch(config.max_worker_memory),
        about=about,
    )


def fork_from_master() -> tuple[int, list[int]]:
    """``os.fork`` with the master's signals blocked, so no master handler runs in the
    child; returns the pid and the mask the child restores in :func:`detach`."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals.HANDLED)
    pid = -1
    try:
        pid = os.fork()
    finally:
        # Whatever ``fork`` raised (3.12 may warn after forking), the master must not
        # keep its signals blocked: a SIGTERM would then wait forever.
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return pid, list(old_mask)


def detach(close_fds: Iterable[int], old_mask: Iterable[int], role: str, app: str) -> None:
    """A freshly forked child leaves the master's ways: default signal handlers (a worker's
    recorded until its loop handles them, ``early_signals``), the master-only descriptors
    closed, the mask restored, its own process group."""
    signals.reset_to_default()
    if role == "worker":
        early_signals.hold()
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    for fd in close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    # Its own process group: a terminal's Ctrl+C reaches only the master, which then
    # stops each child exactly once (a second signal would make a worker stop fast).
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    proctitle.set_title(role, app)


class _ChildHooks:
    """The WorkerHooks a supervised worker runs on its loop."""

    def __init__(self, status_fd: int, heartbeat: Heartbeat, master_pid: int):
        self.status_fd = status_fd
        self.heartbeat = heartbeat
        self.master_pid = master_pid

    def _send(self, message: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self.status_fd, message)

    def on_ready(self) -> None:
        self.heartbeat.beat()
        self._send(MSG_READY)

    def on_tick(self, lag: float) -> bool:
        self.heartbeat.beat(lag)
        if os.getppid() != self.master_pid:
            logs.error_log.warning("The master process is gone; this worker stops")
            return True
        return False

    def on_recycle(self) -> None:
        self._send(MSG_RECYCLE)


def _watch_master(alive_fd: int, grace: float) -> None:
    """Stop this worker when the master dies, even by SIGKILL.

    The master holds the write end of the ``alive`` pipe and never writes; the kernel
    closes it when the master dies, so this read returns EOF at that moment. The worker
    then stops gracefully, and exits hard if that takes longer than the grace period.
    """

    def watch() -> None:
        try:
            os.read(alive_fd, 1)
        except OSError:
            return
        logs.error_log.warning("The master process died; this worker stops")
        with contextlib.suppress(OSError):
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    threading.Thread(target=watch, name="ruvicorn-master-watch", daemon=True).start()


def child_main(
    config: Config,
    sockets: list[socket.socket],
    *,
    status_w: int,
    heartbeat: Heartbeat,
    alive_fd: int,
    master_pid: int,
    close_fds: list[int],
    old_mask: Iterable[int],
    app: Any,
    hooks: ServerHooks,
    server_info: ServerInfo | None,
    about: WorkerInfo | None,
) -> None:
    """Everything a freshly forked worker does; never returns."""
    code = 1
    me = WorkerInfo(
        pid=os.getpid(),
        age=about.age if about else 0,
        started_at=about.started_at if about else time.time(),
        config=config,
    )
    try:
        detach(close_fds, old_mask, "worker", config.app)
        _watch_master(alive_fd, config.timeout_graceful_shutdown + 5.0)
        if server_info is not None:
            hooks.call("post_fork", server_info, me)
        # Imported only in the child: the master never loads the protocol or the app. Before
        # dropping privileges, so ruvicorn itself loads even when the new user could not
        # read the interpreter's directories (the request budget too: its jitter imports
        # random).
        from ruvicorn.worker.run import run_worker

        budget = request_limit(config)
        try:
            identity.drop_privileges(config.user, config.group)
        except OSError as exc:
            logs.error_log.error("Could not switch to --user/--group: %s", exc.strerror)
            raise SystemExit(1) from None
        hooks_impl = _ChildHooks(status_w, heartbeat, master_pid)
        worker_hooks = WorkerHooks(
            on_ready=hooks_impl.on_ready,
            on_tick=hooks_impl.on_tick,
            request_limit=budget,
            on_recycle=hooks_impl.on_recycle,
            on_app_started=lambda: hooks.call("post_worker_init", me),
            metrics=heartbeat.counters(metrics.SLOTS) if config.metrics_bind else None,
            listener_channel=status_w,
        )
        if app is None:
            code = run_worker(config, sockets, worker_hooks)
        else:
            code = run_worker(config, sockets, worker_hooks, app=app)
        if server_info is not None:
            hooks.call("worker_exit", server_info, dataclasses.replace(me, exit_code=code))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        logs.error_log.exception("Worker crashed")
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
