"""The master: bind once, fork workers, own every signal, reload without dropping requests.

One thread, one loop: signal handlers only enqueue (see ``signals``), and every decision
(spawn, retire, kill, reload, stop) is taken here, in ``Master.loop``. The listening
sockets stay open in the master the whole time, so connections queued in the kernel
survive any worker coming or going.
"""

from __future__ import annotations

import functools
import os
import select
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ruvicorn import exitcodes, identity, logs, tls
from ruvicorn.config import Config, ConfigError
from ruvicorn.hooks import NO_HOOKS, ServerHooks
from ruvicorn.supervisor import commands, metrics, metrics_server, pidfile, proctitle
from ruvicorn.supervisor.metrics_server import MetricsServer
from ruvicorn.supervisor.pool import Pool
from ruvicorn.supervisor.sd_notify import Notifier
from ruvicorn.supervisor.signals import SignalQueue, name

if TYPE_CHECKING:
    # Imported where they are started: the master forks its workers with everything it
    # imported, so what only --control-socket, --reload or --preload use (JSON, ctypes)
    # stays out of a worker that serves without them.
    from ruvicorn.supervisor.control import ControlServer
    from ruvicorn.supervisor.reload import ReloadWatcher
    from ruvicorn.supervisor.zygote import Zygotes

log = logs.error_log

#: Extra seconds past --timeout-graceful-shutdown a stopping worker gets for lifespan
#: shutdown before it is killed.
STOP_MARGIN = 3.0
#: Seconds a fast stop (SIGQUIT, or a second SIGTERM/SIGINT) waits before SIGKILL.
FAST_STOP_SECONDS = 5.0
#: Longest sleep of the master loop; timers (deadlines, samples) are checked this often.
TICK = 0.2


def run_master(config: Config, hooks: ServerHooks = NO_HOOKS, app: Any = None) -> int:
    """Serve ``config`` with supervised workers until stopped; returns the exit code.

    ``app``: an application object the workers serve (inherited through fork) instead of
    importing ``config.app``.
    """
    return Master(config, hooks, app).run()


class Master:
    """The state of the supervisor; see the module docstring."""

    def __init__(self, config: Config, hooks: ServerHooks = NO_HOOKS, app: Any = None) -> None:
        self.config = config
        self.hooks = hooks
        self.app = app
        self.signals = SignalQueue()
        self.notifier = Notifier()
        self.watcher: ReloadWatcher | None = None
        #: --preload: the processes that import the app and fork the workers.
        self.zygotes: Zygotes | None = None
        self.control: ControlServer | None = None
        #: When and why the last reload began (for ``ruvicorn ctl status``).
        self.last_reload: dict[str, Any] | None = None
        self.metrics: MetricsServer | None = None
        # The master holds the write end and never writes: the kernel closes it when the
        # master dies, which wakes every worker's reader (see worker_process).
        self.alive_r, self.alive_w = os.pipe()
        self.pool = Pool(config, self.notifier, self.alive_r, self._master_fds, hooks)
        self.server_info = self.pool.server_info
        self.stopping = ""  # "", "graceful" or "fast"
        #: When a delayed stop (--timeout-shutdown-delay) begins its graceful stop, or 0.
        self.stop_at = 0.0
        self.exit_code = exitcodes.OK
        #: The first boot failed with the app's error: the master stops without more lines.
        self.quiet = False
        self._last_status = ""

    def _master_fds(self) -> list[int]:
        """Descriptors only the master may hold; a forked worker closes them."""
        fds = [self.signals.read_fd, self.signals.write_fd, self.alive_w]
        if self.notifier.enabled:
            fds.append(self.notifier.fileno())
        if self.watcher is not None:
            fds.extend(self.watcher.master_fds())
        if self.zygotes is not None:
            fds.extend(self.zygotes.channels())
        if self.control is not None:
            fds.extend(self.control.fds())
        if self.metrics is not None:
            fds.extend(self.metrics.fds())
        return fds

    # -- life cycle

    def run(self) -> int:
        config = self.config
        problem = identity.switch_problem(config.user, config.group) or tls.problem(config)
        if problem is not None:
            log.error("%s", problem)
            return exitcodes.USAGE
        self.hooks.call("on_starting", self.server_info)
        try:
            if config.control_socket:
                from ruvicorn.supervisor.control import ControlServer

                self.control = ControlServer(
                    config.control_socket, lambda c, a: commands.answer(self, c, a)
                )
            self.pool.slots.bind()
            if config.metrics_bind:
                self._serve_metrics(config.metrics_bind)
            if config.pid:
                pidfile.write(config.pid)
        except ConfigError as exc:
            log.error("%s", exc)
            self.pool.slots.close()
            if self.control is not None:
                self.control.close()
                self.control = None
            return exitcodes.USAGE
        try:
            return self._serve()
        finally:
            self._cleanup()

    def _serve_metrics(self, address: str) -> None:
        listener = metrics_server.bind(address)
        pool = self.pool
        self.metrics = MetricsServer(
            listener, lambda: metrics.render(pool.tally, list(pool.workers.values()))
        )
        host, port = listener.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        log.info("Metrics on http://%s:%d/metrics", host, port)

    def _serve(self) -> int:
        config = self.config
        if self.app is not None:
            self.pool.app = self.app  # ruvicorn.run() was given the object itself
        elif config.preload:
            from ruvicorn.supervisor.zygote import Zygotes, become_subreaper

            if not become_subreaper():
                log.error("--preload needs Linux (a child subreaper adopts the workers)")
                return exitcodes.USAGE
            self.zygotes = Zygotes(config, self.pool, self._master_fds)
            self.pool.forker = self.zygotes
        self.signals.install()
        proctitle.set_title("master", config.app)
        if config.reload:
            from ruvicorn.supervisor.reload import ReloadWatcher

            self.watcher = ReloadWatcher(config)
        try:
            self.loop()
        except Exception:
            log.exception("The master failed; stopping every worker")
            self.exit_code = 1
        return self.exit_code

    def _cleanup(self) -> None:
        self.pool.kill_all()
        if self.zygotes is not None:
            self.zygotes.kill_all()
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        self.pool.slots.close()
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if self.config.pid:
            pidfile.remove(self.config.pid)
        if self.control is not None:
            self.control.close()
            self.control = None
        self.hooks.call("on_exit", self.server_info)
        self.signals.close()
        self.notifier.close()
        for fd in (self.alive_r, self.alive_w):
            os.close(fd)
        say = log.debug if self.quiet else log.info
        say("Master %d exits with code %d", os.getpid(), self.exit_code)

    # -- the loop

    def loop(self) -> None:
        pool = self.pool
        while True:
            for signum in self.signals.pop_all():
                self.on_signal(signum)
            pool.reap(self.stopping != "")
            if pool.fatal_code is not None and not self.stopping:
                self.exit_code = pool.fatal_code
                # The worker already said why in one line; the rest is noise.
                self.quiet = pool.fatal_code in exitcodes.BOOT_FAILURES
                self.begin_stop("fast", "a worker failed to boot")
            now = time.monotonic()
            if self.stop_at and not self.stopping and now >= self.stop_at:
                self.begin_stop("graceful", "--timeout-shutdown-delay is over")
            if self.stopping:
                if not pool.workers:
                    return
                pool.enforce_deadlines(now)
            else:
                pool.check(now)
                if self.zygotes is not None:
                    self.zygotes.check(now)
                pool.maintain(now)
            self._report(now)
            for responder in (self.metrics, self.control):
                if responder is not None:
                    responder.expire(now)
            self._wait()

    def _wait(self) -> None:
        """Sleep until a signal, a message, a file change, a client or the next tick."""
        watched = self._watched()
        poller = select.poll()
        for fd, (mask, _) in watched.items():
            poller.register(fd, mask)
        responders = [r for r in (self.metrics, self.control) if r is not None]
        for responder in responders:
            responder.register(poller)
        try:
            events = poller.poll(TICK * 1000)
        except InterruptedError:
            return
        for fd, _ in events:
            if fd in watched:
                watched[fd][1]()
            for responder in responders:
                if responder.owns(fd):
                    responder.on_ready(fd)

    def _watched(self) -> dict[int, tuple[int, Callable[[], None]]]:
        """fd -> (poll mask, what to do when it is ready)."""
        watched: dict[int, tuple[int, Callable[[], None]]] = {
            self.signals.read_fd: (select.POLLIN, lambda: None)
        }
        for fd, worker in self.pool.status_fds().items():
            watched[fd] = (select.POLLIN, functools.partial(self.pool.on_status, worker))
        if self.watcher is not None:
            watched[self.watcher.fd] = (select.POLLIN, self._on_file_changes)
        if self.zygotes is not None:
            for fd, zygote in self.zygotes.channels().items():
                watched[fd] = (select.POLLIN, functools.partial(self.zygotes.on_readable, zygote))
        return watched

    def _on_file_changes(self) -> None:
        assert self.watcher is not None
        batches = self.watcher.read_changes()
        if batches is None:
            log.error("The file watcher stopped; --reload is off from now on")
            self.watcher.stop()
            self.watcher = None
            return
        paths = sorted({p for batch in batches for p in batch})
        if paths and not self.stopping and not self.stop_at:
            shown = ", ".join(os.path.relpath(p) for p in paths[:3])
            more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
            self.reload(f"changes in {shown}{more}")

    def _report(self, now: float) -> None:
        status = self.pool.status_line()
        if self.stop_at and not self.stopping:
            left = max(0.0, self.stop_at - now)
            status = f"not ready: stopping in {left:.0f} s, still serving"
        if self.stopping:
            status = f"stopping: {logs.plural(len(self.pool.workers), 'worker')} left"
        if status != self._last_status:
            self._last_status = status
            self.notifier.status(status)
        self.notifier.watchdog(now, not self.stopping and self.pool.healthy())

    # -- signals

    def on_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            return  # Reaping happens on every turn of the loop.
        if signum == signal.SIGUSR1:
            logs.reopen_files()  # First, so this very line lands in the new file.
        log.info("Received %s", name(signum))
        if signum in (signal.SIGTERM, signal.SIGINT):
            if self.stopping:
                self.begin_stop("fast", f"second {name(signum)}")
            elif self.stop_at:
                self.begin_stop("graceful", f"second {name(signum)}")
            elif self.config.timeout_shutdown_delay > 0:
                self.delay_stop(name(signum))
            else:
                self.begin_stop("graceful", name(signum))
        elif signum == signal.SIGQUIT:
            self.begin_stop("fast", name(signum))
        elif not (self.stopping or self.stop_at):
            self._on_pool_signal(signum)

    def _on_pool_signal(self, signum: int) -> None:
        """The signals that change the running pool (refused once a stop began or is delayed)."""
        if signum == signal.SIGHUP:
            self.reload("SIGHUP")
        elif signum == signal.SIGTTIN:
            self.pool.resize(self.pool.target + 1)
        elif signum == signal.SIGTTOU:
            self.pool.resize(self.pool.target - 1)
        elif signum == signal.SIGUSR1:
            self.pool.signal_all(signal.SIGUSR1)

    def reload(self, why: str) -> None:
        """Roll the workers onto the code on disk (with --preload, a new zygote loads it),
        and the TLS files anew: checked first, so a broken replacement file leaves the old
        workers serving."""
        problem = tls.problem(self.config)
        if problem is not None:
            log.error(
                "Not reloading (%s): %s; the workers keep serving the certificate they loaded",
                why,
                problem,
            )
            return
        self.last_reload = {"at": time.time(), "reason": why}
        if self.zygotes is not None:
            self.zygotes.reload(why)
        else:
            self.pool.begin_reload(why)

    def delay_stop(self, why: str) -> None:
        """--timeout-shutdown-delay: keep serving while load balancers notice the stop.

        Everything keeps accepting and answering; only the reported state changes (systemd
        gets STOPPING=1 and a not-ready STATUS) and reloads and resizes are refused. A second
        SIGTERM/SIGINT starts the graceful stop at once, SIGQUIT stops fast.
        """
        delay = self.config.timeout_shutdown_delay
        self.stop_at = time.monotonic() + delay
        log.info(
            "Stopping (%s) in %g s: still serving until then (--timeout-shutdown-delay)",
            why,
            delay,
        )
        self.notifier.stopping(f"not ready: stopping in {delay:g} s ({why}), still serving")

    def begin_stop(self, mode: str, why: str) -> None:
        """Stop serving: close the listeners and tell every worker to stop."""
        if self.stopping in ("fast", mode):
            return
        self.stopping = mode
        now = time.monotonic()
        graceful = mode == "graceful"
        self.notifier.stopping(f"stopping ({why})")
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.pool.slots.close()
        if self.zygotes is not None:
            self.zygotes.stop()  # They hold the listeners too.
        if graceful:
            limit = self.config.timeout_graceful_shutdown
            log.info("Shutting down (%s): workers finish their requests (up to %.0f s)", why, limit)
            self.pool.stop_all(signal.SIGTERM, now + limit + STOP_MARGIN)
        else:
            (log.debug if self.quiet else log.info)("Shutting down fast (%s)", why)
            self.pool.stop_all(signal.SIGQUIT, now + FAST_STOP_SECONDS)
