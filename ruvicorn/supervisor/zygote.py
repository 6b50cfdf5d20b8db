"""``--preload``: one process imports the app, and every worker is forked from it.

The master never imports application code. It forks a *zygote* that imports the app once,
freezes the collector (``gc.freeze``: a collection never rewrites those objects, so their
pages stay shared copy-on-write with every worker) and forks a worker whenever the master
asks. The zygote forks twice: the middle process exits at once, so the worker is orphaned
and adopted by the master, a child subreaper. From then on the worker is the master's child
like any other (reaped, signalled, watched through its heartbeat); the zygote only reports
its pid. A zygote that dies takes no worker with it.

A reload starts a new zygote that imports the new code; once it is ready the old one stops
and the pool rolls as usual. If the new one cannot import the app, the old zygote and its
workers keep serving.

Zygote -> master, one SEQPACKET message each: ``R`` ready, ``E<text>`` the app could not be
loaded, ``P<pid>`` a worker was forked, ``F<text>`` the fork failed. Master -> zygote: the
worker's age and start time as JSON, its status channel, heartbeat page and the listening
sockets it serves attached (the zygote's own copies of the listeners are never served: a
worker serves its slot's sockets, and slots bound after the zygote started are not in it).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from ruvicorn import exitcodes, logs
from ruvicorn.config import Config
from ruvicorn.hooks import ServerHooks, ServerInfo, WorkerInfo
from ruvicorn.supervisor import heartbeat, worker_process
from ruvicorn.supervisor.heartbeat import Heartbeat
from ruvicorn.supervisor.pool import Pool, describe_exit
from ruvicorn.supervisor.worker_process import Worker

log = logs.error_log

PR_SET_CHILD_SUBREAPER = 36
#: Seconds the master waits for the zygote to report a forked worker's pid.
FORK_REPLY_SECONDS = 5.0
#: Seconds a new worker waits to be adopted by the master before it starts anyway.
ADOPTION_SECONDS = 5.0
MAX_MESSAGE = 4096
#: Most descriptors one message carries (the kernel's SCM_MAX_FD).
MAX_FDS = 253


def become_subreaper() -> bool:
    """Make orphaned descendants (the zygote's workers) children of this process (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


@dataclass
class Zygote:
    """The master's record of one zygote process."""

    pid: int
    chan: socket.socket
    generation: int
    #: Why it was started: "" for the first one or a replacement, else the reload's reason.
    why: str
    started: float
    ready: bool = False


class Zygotes:
    """The zygote serving the pool now, and the one importing new code for a reload."""

    def __init__(self, config: Config, pool: Pool, master_fds: Callable[[], list[int]]) -> None:
        self.config = config
        self.pool = pool
        self.master_fds = master_fds
        self.current: Zygote | None = None
        self.next: Zygote | None = None
        #: Stopped on purpose: reaped without a word.
        self.retired: dict[int, Zygote] = {}
        self.generation = 0
        #: The last import failed after the first boot: no new zygote until a reload.
        self.failed = False

    def live(self) -> list[Zygote]:
        return [z for z in (self.current, self.next, *self.retired.values()) if z is not None]

    def channels(self) -> dict[int, Zygote]:
        return {z.chan.fileno(): z for z in self.live() if z.chan.fileno() >= 0}

    # -- the pool's forker

    def ready(self) -> bool:
        """Whether a worker can be forked now; starts a zygote when none is coming."""
        if self.current is not None:
            return self.current.ready
        if self.next is None and not self.failed:
            self.current = self._start("")
            if self.current is not None and self.generation > 1:
                log.info("Zygote %d imports the app to fork workers again", self.current.pid)
        return False

    def fork(self, about: WorkerInfo, sockets: list[socket.socket]) -> Worker:
        """Ask the current zygote for a worker serving ``sockets``; OSError when it cannot
        give one."""
        zygote = self.current
        assert zygote is not None
        status_r, status_w = worker_process.status_channel()
        page = heartbeat.page_fd()
        beat = Heartbeat(page)
        try:
            request = json.dumps({"age": about.age, "started_at": about.started_at}).encode()
            fds = [status_w, page, *(sock.fileno() for sock in sockets)]
            socket.send_fds(zygote.chan, [request], fds)
            reply = self._reply(zygote)
        except OSError:
            os.close(status_r)
            beat.close()
            self._lost(zygote, "it did not answer a fork request")
            raise
        finally:
            os.close(status_w)
            os.close(page)
        if not reply.startswith(b"P"):
            os.close(status_r)
            beat.close()
            raise OSError(reply[1:].decode("utf-8", "replace"))
        return worker_process.supervised(self.config, int(reply[1:]), status_r, beat, about)

    def _reply(self, zygote: Zygote) -> bytes:
        deadline = time.monotonic() + FORK_REPLY_SECONDS
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([zygote.chan], [], [], left)[0]:
                raise OSError("the zygote did not answer in time")
            message = zygote.chan.recv(MAX_MESSAGE)
            if not message:
                raise OSError("the zygote is gone")
            if message[:1] in (b"P", b"F"):
                return message

    def reaped(self, pid: int, status: int) -> bool:
        """The master reaped ``pid``; True when it was a zygote."""
        zygote = next((z for z in self.live() if z.pid == pid), None)
        if zygote is None:
            return False
        if zygote in (self.current, self.next):
            self.on_readable(zygote)  # An error message may precede the exit.
        if zygote in (self.current, self.next):
            self._lost(zygote, describe_exit(status), signal_it=False)
        self.retired.pop(pid, None)
        zygote.chan.close()
        return True

    # -- messages

    def on_readable(self, zygote: Zygote) -> None:
        while True:
            try:
                message = zygote.chan.recv(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message = b""
            if not message:
                return
            if message == b"R":
                self._on_ready(zygote)
            elif message.startswith(b"E"):
                self._on_load_error(zygote, message[1:].decode("utf-8", "replace"))

    def _on_ready(self, zygote: Zygote) -> None:
        zygote.ready = True
        if zygote is self.current:
            log.info("Zygote %d loaded the app; workers are forked from it", zygote.pid)
        elif zygote is self.next:
            self.next = None
            if self.current is not None:
                self._retire(self.current)
            self.current = zygote
            log.info("Zygote %d loaded the new code", zygote.pid)
            self.pool.begin_reload(zygote.why)

    def _on_load_error(self, zygote: Zygote, text: str) -> None:
        self._gone(zygote, f"could not load the app: {text}", retry=False)

    def _lost(self, zygote: Zygote, how: str, signal_it: bool = True) -> None:
        self._gone(zygote, f"zygote {zygote.pid} died ({how})", retry=True, signal_it=signal_it)

    def _gone(self, zygote: Zygote, problem: str, *, retry: bool, signal_it: bool = True) -> None:
        """``zygote`` cannot fork workers (it could not load the app, died or stopped
        answering): forget it, in one log line. Its workers serve on. ``retry``: a new
        zygote may start at once (it died), else only on the next reload (the code is bad)."""
        self._retire(zygote, signal_it)
        if zygote is self.next:
            self.next = None
            log.error("Reload (%s) failed: %s; the old workers keep serving", zygote.why, problem)
            self.pool.notifier.ready(f"{self.pool.status_line()}; the last reload failed")
            return
        if zygote is not self.current:
            return
        self.current = None
        said = problem[:1].upper() + problem[1:]
        if not self.pool.booted:
            log.error("%s", said)
            self.pool.fatal_code = 1 if retry else exitcodes.APP_LOAD_FAILED
        elif retry:
            log.error("%s; its workers serve on, a new one starts when needed", said)
        else:
            self.failed = True
            log.error("%s; no worker starts until a reload", said)

    # -- requests from the master

    def check(self, now: float) -> None:
        """A zygote still importing after --timeout-worker-ready is given up, as a worker
        would be."""
        limit = self.config.timeout_worker_ready
        for zygote in (self.current, self.next):
            if zygote is not None and not zygote.ready and now - zygote.started > limit:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(zygote.pid, signal.SIGKILL)
                problem = f"zygote {zygote.pid} not ready within --timeout-worker-ready {limit:g} s"
                self._gone(zygote, problem, retry=False, signal_it=False)
                if self.pool.fatal_code is not None:
                    self.pool.fatal_code = 1  # As for a worker that timed out booting.

    def reload(self, why: str) -> None:
        """A new zygote imports the code; the pool rolls once it is ready."""
        if self.next is not None:
            self._retire(self.next)
        self.failed = False
        self.next = self._start(why)
        if self.next is not None:
            log.info("Reloading (%s): zygote %d imports the app", why, self.next.pid)
            # Now, not once the import is done: systemd's reload waits for this.
            self.pool.notifier.reloading(f"reloading ({why}): importing the app")

    def stop(self) -> None:
        """No more forks: every zygote stops (they hold the listening sockets too)."""
        for zygote in (self.current, self.next):
            if zygote is not None:
                self._retire(zygote)
        self.current = self.next = None
        self.failed = True

    def kill_all(self) -> None:
        """At exit: nothing the master started may outlive it."""
        self.stop()
        for pid, zygote in list(self.retired.items()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            zygote.chan.close()
        self.retired.clear()

    def _retire(self, zygote: Zygote, signal_it: bool = True) -> None:
        if signal_it:
            with contextlib.suppress(ProcessLookupError):
                os.kill(zygote.pid, signal.SIGTERM)
        self.retired[zygote.pid] = zygote

    def _start(self, why: str) -> Zygote | None:
        self.generation += 1
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        close_in_child = [*self.master_fds(), *self.channels(), *self.pool.status_fds()]
        try:
            pid, old_mask = worker_process.fork_from_master()
        except OSError as exc:
            ours.close()
            theirs.close()
            log.error("Could not start a zygote: %s", logs.one_line(exc))
            self.failed = True
            return None
        if pid == 0:
            ours.close()
            _zygote_main(
                self.config,
                theirs,
                self.pool,
                close_fds=close_in_child,
                old_mask=old_mask,
            )
        theirs.close()
        ours.setblocking(False)
        log.debug("Zygote %d started (generation %d)", pid, self.generation)
        return Zygote(
            pid=pid, chan=ours, generation=self.generation, why=why, started=time.monotonic()
        )


# -- the zygote process


@dataclass
class _Inherited:
    """What every worker of this zygote gets from it."""

    config: Config
    app: Any
    chan: socket.socket
    sockets: list[socket.socket]
    alive_fd: int
    master_pid: int
    hooks: ServerHooks
    server_info: ServerInfo


def _zygote_main(
    config: Config, chan: socket.socket, pool: Pool, *, close_fds: list[int], old_mask: list[int]
) -> NoReturn:
    """Import the app, then fork workers on request until the master closes the channel."""
    code = 1
    try:
        worker_process.detach(close_fds, old_mask, "zygote", config.app)
        code = _load_and_serve(config, chan, pool)
    except BaseException:
        log.exception("The zygote crashed")
    _exit(code)


def _load_and_serve(config: Config, chan: socket.socket, pool: Pool) -> int:
    # The worker's own modules (server, native protocol, event loop) are imported here
    # too, so their pages are shared by every worker rather than copied into each.
    import ruvicorn.worker.run  # noqa: F401
    from ruvicorn.worker.app_loading import AppLoadError, load_app
    from ruvicorn.worker.loop import uvloop_available

    if config.loop != "asyncio" and uvloop_available():
        import uvloop  # noqa: F401

    try:
        app = load_app(config)
    except AppLoadError as exc:
        chan.send(b"E" + str(exc).encode("utf-8", "replace")[: MAX_MESSAGE - 1])
        return exitcodes.APP_LOAD_FAILED
    listening = pool.slots.all()
    own = {chan.fileno(), pool.alive_fd, *(s.fileno() for s in listening)}
    found = import_side_effects(own)
    if found:
        log.warning(
            "Importing the app started %s in the zygote; workers do not inherit them: "
            "create them at lifespan startup instead",
            found,
        )
    gc.freeze()
    chan.send(b"R")
    master_pid = os.getppid()
    _serve_forks(
        _Inherited(
            config, app, chan, listening, pool.alive_fd, master_pid, pool.hooks, pool.server_info
        )
    )
    return exitcodes.OK


def _exit(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _serve_forks(inherited: _Inherited) -> None:
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(inherited.chan, MAX_MESSAGE, MAX_FDS)
        except InterruptedError:
            continue
        if not data:
            return  # The master is gone or stopped this zygote.
        try:
            if len(fds) >= 2:
                _fork_worker(inherited, json.loads(data), fds[0], fds[1], fds[2:])
        finally:
            for fd in fds:
                os.close(fd)


def _fork_worker(
    inherited: _Inherited, about: dict[str, Any], status_w: int, page: int, serve: list[int]
) -> None:
    """Fork twice: the middle process reports the worker's pid and exits, so the worker is
    orphaned and the master (a subreaper) adopts it."""
    try:
        middle = os.fork()
    except OSError as exc:
        inherited.chan.send(b"F" + logs.one_line(exc).encode())
        return
    if middle == 0:
        try:
            pid = os.fork()
            if pid == 0:
                _worker_main(inherited, about, status_w, page, serve)
            inherited.chan.send(b"P%d" % pid)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                inherited.chan.send(b"F" + logs.one_line(exc).encode())
        os._exit(0)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(middle, 0)


def _worker_main(
    inherited: _Inherited, about: dict[str, Any], status_w: int, page: int, serve: list[int]
) -> None:
    deadline = time.monotonic() + ADOPTION_SECONDS
    while os.getppid() != inherited.master_pid and time.monotonic() < deadline:
        time.sleep(0.001)
    beat = Heartbeat(page)
    os.close(page)
    config = inherited.config
    worker_process.child_main(
        config,
        [socket.socket(fileno=fd) for fd in serve],
        status_w=status_w,
        heartbeat=beat,
        alive_fd=inherited.alive_fd,
        master_pid=inherited.master_pid,
        close_fds=[inherited.chan.fileno(), *(sock.fileno() for sock in inherited.sockets)],
        old_mask=list(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        app=inherited.app,
        hooks=inherited.hooks,
        server_info=inherited.server_info,
        about=WorkerInfo(
            pid=None,
            age=int(about.get("age", 0)),
            started_at=float(about.get("started_at", time.time())),
            config=config,
        ),
    )


def import_side_effects(own_fds: set[int]) -> str:
    """Threads, event loops and sockets the app's import left in this process, as words
    ("" when none): none of them survives the fork into a worker."""
    found = []
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if threads:
        found.append(f"{logs.plural(len(threads), 'thread')} ({', '.join(threads[:3])})")
    sockets = loops = 0
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc/self/fd"):
            fd = int(entry)
            if fd <= 2 or fd in own_fds:
                continue
            try:
                target = os.readlink(f"/proc/self/fd/{entry}")
            except OSError:
                continue
            if target == "anon_inode:[eventpoll]":
                loops += 1
            elif target.startswith("socket:"):
                sockets += 1
    if loops:
        found.append(logs.plural(loops, "event loop"))
    if sockets:
        found.append(logs.plural(sockets, "socket"))
    return ", ".join(found)
