"""The set of workers: keep ``target`` of them serving, replace them one at a time.

A reload (SIGHUP or ``--reload``) rolls: mark the old worker, start a new one, wait until it
reports ready, then retire the old one gracefully. A replacement that fails to boot aborts
the roll and the old workers keep serving. Recycling (request budget, memory, lifetime)
retires first: the worker stops accepting at once, so it never serves past its limit,
while the kernel queues new connections for the other workers and its replacement.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

from ruvicorn import exitcodes, listeners, logs
from ruvicorn.config import MIB, Config, ConfigError
from ruvicorn.hooks import NO_HOOKS, ServerHooks, ServerInfo, WorkerInfo
from ruvicorn.supervisor import worker_process
from ruvicorn.supervisor.metrics import Tally
from ruvicorn.supervisor.recycling import Backoff, lifetime_exceeded
from ruvicorn.supervisor.sd_notify import Notifier
from ruvicorn.supervisor.signals import name
from ruvicorn.supervisor.slots import Slots
from ruvicorn.supervisor.worker_process import Worker

log = logs.error_log

#: Seconds between SIGABRT (traceback) and SIGKILL for a worker whose loop is stuck.
ABORT_GRACE = 2.0
#: Seconds between recycling samples (RSS, lifetime).
SAMPLE_INTERVAL = 1.0
#: Extra seconds past --timeout-graceful-shutdown a retiring worker gets.
RETIRE_MARGIN = 3.0

BOOT_REASONS = {
    exitcodes.APP_LOAD_FAILED: "the application could not be loaded",
    exitcodes.LIFESPAN_FAILED: "lifespan startup failed",
    exitcodes.TLS_FAILED: "the TLS files could not be loaded",
}


class Forker(Protocol):
    """Where workers come from when the master does not fork them itself (the zygote)."""

    def ready(self) -> bool: ...

    def fork(self, about: WorkerInfo, sockets: list[socket.socket]) -> Worker: ...

    def reaped(self, pid: int, status: int) -> bool: ...


def describe_exit(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"killed by {name(-code)}"
    return f"exit code {code}"


class Pool:
    """The master's workers and the rules that keep them serving."""

    def __init__(
        self,
        config: Config,
        notifier: Notifier,
        alive_fd: int,
        master_fds: Callable[[], list[int]],
        hooks: ServerHooks = NO_HOOKS,
    ) -> None:
        self.config = config
        self.hooks = hooks
        self.server_info = ServerInfo(config, self.worker_infos, lambda: self.target)
        #: Workers started so far: the next one's ``age``.
        self.spawned = 0
        self.notifier = notifier
        self.alive_fd = alive_fd
        self.master_fds = master_fds
        self.slots = Slots(config)
        self.workers: dict[int, Worker] = {}
        self.target = config.workers
        self.backoff = Backoff()
        self.spawn_not_before = 0.0
        #: True once ``target`` workers were ready together the first time.
        self.booted = False
        #: The listeners were announced (when the first worker became ready).
        self.announced = False
        #: A reload (SIGHUP or --reload) is rolling and READY=1 is still owed to systemd.
        self.reloading = False
        #: When a stop that is under way kills whatever worker is left (monotonic clock).
        self.stop_deadline = float("inf")
        #: Set when a worker fails during the first boot: the master must stop with it.
        self.fatal_code: int | None = None
        self._next_sample = 0.0
        #: The application object given to ruvicorn.run(), forked with the master, else None.
        self.app: Any = None
        #: Forks workers instead of the master (--preload: the zygote), else None.
        self.forker: Forker | None = None
        #: Restarts, reloads and the counters of exited workers (--metrics-bind).
        self.tally = Tally()

    # -- views

    def active(self) -> list[Worker]:
        return [w for w in self.workers.values() if not w.retiring]

    def worker_infos(self) -> tuple[WorkerInfo, ...]:
        return tuple(w.info(self.config) for w in self.workers.values())

    def status_fds(self) -> dict[int, Worker]:
        return {w.status_fd: w for w in self.workers.values() if w.status_fd >= 0}

    def status_line(self) -> str:
        ready = sum(1 for w in self.active() if w.ready)
        text = f"{ready} of {self.target} workers ready"
        return f"{text}, reloading" if self.reloading else text

    def healthy(self) -> bool:
        """At least one ready worker whose loop is alive (for the systemd watchdog)."""
        limit = self.config.timeout_worker or float("inf")
        return any(w.ready and w.heartbeat.age() < limit for w in self.active())

    # -- worker messages and exits

    def on_status(self, worker: Worker) -> None:
        worker.read_status()
        self._handle_messages(worker)

    def _handle_messages(self, worker: Worker) -> None:
        messages, worker.messages = worker.messages, []
        for message in messages:
            if message == worker_process.MSG_READY and not worker.ready:
                worker.ready = True
                log.info("Worker %d ready", worker.pid)
                if worker.retiring and not worker.killed:
                    # Retired while booting, it handles its stop signal only now: the
                    # drain gets its whole grace, within a stop's deadline.
                    drain_end = time.monotonic() + self._drain_allowance()
                    worker.kill_at = min(max(worker.kill_at, drain_end), self.stop_deadline)
                if not self.announced and not worker.retiring:
                    self._announce()
                self._after_ready()
            elif message == worker_process.MSG_RECYCLE and not worker.retiring:
                # The worker already stopped accepting and drains on its own.
                self._recycle(worker, "reached --limit-max-requests", signal_it=False)

    def _announce(self) -> None:
        """The first worker serves: only now say where, so an app that cannot start fails
        with its own error line alone."""
        self.announced = True
        for sock in self.slots.first():
            log.info("Listening on %s", listeners.describe(sock, self.config.tls))
        log.info(
            "Master process %d serving with %s", os.getpid(), logs.plural(self.target, "worker")
        )

    def _after_ready(self) -> None:
        active = self.active()
        fresh_ready = [w for w in active if w.ready and not w.replace_reason]
        if not self.booted and len(fresh_ready) >= self.target:
            self.booted = True
            log.info("Ready: %s serving", logs.plural(self.target, "worker"))
            self.notifier.ready(self.status_line())
            self.hooks.call("when_ready", self.server_info)

    def reap(self, stopping: bool) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None and self.forker is not None:
                self.forker.reaped(pid, status)
            elif worker is not None:
                worker.read_status()  # A ready message may still sit in the pipe.
                self._handle_messages(worker)
                worker.close_status()
                self.tally.fold(worker.counters())
                worker.heartbeat.close()
                reason = self._exited(worker, status, stopping)
                if reason:
                    self.tally.restarted(reason)
                exited = worker.info(self.config, os.waitstatus_to_exitcode(status))
                self.hooks.call("child_exit", self.server_info, exited)

    def _exited(self, worker: Worker, status: int, stopping: bool) -> str:
        """Log why ``worker`` exited; returns why it is being replaced ("" = it is not):
        crash, recycle, reload or timeout."""
        pid, how = worker.pid, describe_exit(status)
        code = os.waitstatus_to_exitcode(status)
        now = time.monotonic()
        if stopping or (worker.retiring and not worker.hung and not worker.boot_timed_out):
            level = log.warning if worker.killed else log.info
            level("Worker %d stopped (%s)", pid, how)
            if stopping or not worker.replace_reason:
                return ""
            return "reload" if worker.replace_reason.startswith("reload") else "recycle"
        reason = "timeout" if worker.hung or worker.boot_timed_out else "crash"
        if not worker.ready:
            why = BOOT_REASONS.get(code, how)
            if worker.boot_timed_out:
                limit = self.config.timeout_worker_ready
                why = f"not ready within --timeout-worker-ready {limit:g} s"
            if not self.booted:
                # An app that cannot load or start explained itself in the worker's log.
                say = log.debug if code in exitcodes.BOOT_FAILURES else log.error
                say("Worker %d failed to boot: %s; stopping the server", pid, why)
                self.fatal_code = code if code in exitcodes.BOOT_FAILURES else 1
                return ""
            if any(w.replace_reason for w in self.active()):
                log.error(
                    "Worker %d failed to boot: %s. The replacement was aborted and the old "
                    "workers keep serving; fix the error above (the next change or SIGHUP "
                    "tries again)",
                    pid,
                    why,
                )
                self._abort_roll()
            else:
                log.error("Worker %d failed to boot: %s", pid, why)
        elif worker.hung:
            log.error("Worker %d was stopped after its event loop hung (%s)", pid, how)
        else:
            log.error("Worker %d died unexpectedly (%s)", pid, how)
        delay = self.backoff.crashed(now)
        self.spawn_not_before = max(self.spawn_not_before, now + delay)
        if delay:
            log.warning("Repeated worker failures: starting the next worker in %.1f s", delay)
        return reason

    def _abort_roll(self) -> None:
        for worker in self.active():
            worker.replace_reason = ""
        if self.reloading:
            self.reloading = False
            self.notifier.ready(f"{self.status_line()}; the last reload failed")

    # -- periodic checks

    def check(self, now: float) -> None:
        """Deadlines, boot timeouts, hung loops and recycling rules."""
        self.enforce_deadlines(now)
        sample = now >= self._next_sample
        if sample:
            self._next_sample = now + SAMPLE_INTERVAL
        for worker in list(self.workers.values()):
            if worker.hung or worker.killed:
                continue
            if not worker.ready:
                if not worker.retiring:
                    self._kill_if_boot_late(worker, now)
                continue
            # A draining worker still beats; one whose loop blocks is as hung as any.
            if self._kill_if_hung(worker, now) or worker.retiring or not sample:
                continue
            if lifetime_exceeded(self.config, worker.started, now):
                self._recycle(worker, "reached --max-worker-lifetime")
            elif worker.memory.sample(worker.pid):
                rss = worker.memory.last_rss / MIB
                self._recycle(worker, f"RSS {rss:.0f} MiB over --max-worker-memory")

    def _kill_if_boot_late(self, worker: Worker, now: float) -> None:
        if now - worker.started > self.config.timeout_worker_ready:
            log.error(
                "Worker %d not ready after %g s (--timeout-worker-ready); killing it",
                worker.pid,
                self.config.timeout_worker_ready,
            )
            worker.boot_timed_out = True
            worker.signal(signal.SIGKILL)
            worker.killed = True
            worker.retiring = True

    def _kill_if_hung(self, worker: Worker, now: float) -> bool:
        """SIGABRT (for its traceback, SIGKILL after a grace) a worker whose loop stopped
        beating for longer than --timeout-worker; whether it did."""
        age = worker.heartbeat.age()
        if not 0 < self.config.timeout_worker < age:
            return False
        log.error(
            "Worker %d: event loop blocked for %.0f s (over --timeout-worker %g s); "
            "sending SIGABRT for its traceback, then SIGKILL",
            worker.pid,
            age,
            self.config.timeout_worker,
        )
        worker.hung = True
        worker.retiring = True
        worker.kill_at = now + ABORT_GRACE
        worker.signal(signal.SIGABRT)
        return True

    def enforce_deadlines(self, now: float) -> None:
        for worker in self.workers.values():
            if worker.retiring and not worker.killed and worker.kill_at and now >= worker.kill_at:
                log.warning("Worker %d did not stop in time; sending SIGKILL", worker.pid)
                worker.signal(signal.SIGKILL)
                worker.killed = True

    def _recycle(self, worker: Worker, reason: str, signal_it: bool = True) -> None:
        """Retire ``worker`` now; ``maintain`` starts its replacement on this same turn."""
        log.info("Recycling worker %d: %s", worker.pid, reason)
        worker.replace_reason = reason
        if signal_it:
            self._retire(worker, time.monotonic())
        else:
            self._retiring(worker, time.monotonic())

    # -- keeping the pool at its target

    def maintain(self, now: float) -> None:
        active = self.active()
        fresh = [w for w in active if not w.replace_reason]
        fresh_ready = [w for w in fresh if w.ready]
        # The first to leave is one whose slot a ready fresh worker serves already, so
        # every slot's socket keeps a worker accepting from it.
        taken = {w.slot for w in fresh_ready}
        stale = sorted(
            (w for w in active if w.replace_reason),
            key=lambda w: (w.slot not in taken, w.ready, w.started),
        )
        # A stale worker leaves once a ready fresh one can take its place.
        while stale and len(fresh_ready) + len(stale) > self.target:
            self._retire(stale.pop(0), now)
        # SIGTTOU: too many workers; those in the slots now orphaned (with a socket per
        # worker), the not-yet-ready, then the oldest, go first.
        per_worker = self.slots.count() > 0 or self.slots.quic_count() > 1
        extra = sorted(
            fresh, key=lambda w: (per_worker and w.slot < self.target, w.ready, w.started)
        )
        while len(extra) > self.target:
            self._retire(extra.pop(0), now)
        fresh = [w for w in fresh if not w.retiring]
        missing = self.target - len(fresh)
        if missing > 0 and now >= self.spawn_not_before:
            if stale:  # Rolling: one replacement at a time keeps capacity steady.
                missing = 0 if any(not w.ready for w in fresh) else 1
            elif not self.booted and not any(w.ready for w in fresh):
                # The first worker boots alone: an app that cannot start fails once.
                missing = 0 if fresh else 1
            for _ in range(missing):
                if not self._spawn(now):
                    break
        self._share_orphans()
        settled = len(fresh) == self.target and all(w.ready for w in fresh)
        if self.reloading and not stale and settled:
            self.reloading = False
            log.info("Reload complete: %s serving the new code", logs.plural(self.target, "worker"))
            self.notifier.ready(self.status_line())

    def _share_orphans(self) -> None:
        """Every worker serves the sockets of orphaned slots (at or past the target); the
        HTTP/3 socket of each is served by one fresh worker (``Slots.quic_serving``)."""
        orphans = set(range(self.target, self.slots.count()))
        for worker in self.active():
            missing = orphans - worker.serves
            if missing:
                worker.send_listeners(self.slots.of_slots(missing))
                worker.serves |= missing
            if worker.replace_reason:
                continue
            adopted = self.slots.quic_serving(worker.slot, self.target) - worker.quic.keys()
            if adopted:
                ends = self._handover_ends(adopted)
                worker.send_listeners(self.slots.quic_sockets(ends))
                worker.quic |= ends

    def _handover_ends(self, slots: set[int]) -> dict[int, int]:
        """Which end of each slot's handover channel a worker starting to serve its HTTP/3
        socket takes: the one the slot's newest worker (still alive, maybe draining) does
        not hold, so the two hand datagrams to each other. A worker that never got ready
        (retired while booting, in a burst of reloads) holds no connections: the newest
        one that did is preferred."""
        ends = {}
        for slot in slots:
            holders = [w for w in self.workers.values() if slot in w.quic]
            newest = max(holders, key=lambda w: (w.ready, w.started), default=None)
            ends[slot] = 0 if newest is None else 1 - newest.quic[slot]
        return ends

    def _free_slot(self) -> int:
        """The lowest slot no fresh worker holds: a replacement takes its predecessor's."""
        taken = {w.slot for w in self.active() if not w.replace_reason}
        slot = 0
        while slot in taken:
            slot += 1
        return slot

    def _spawn(self, now: float) -> bool:
        if self.forker is not None and not self.forker.ready():
            return False
        slot = self._free_slot()
        try:
            self.slots.ensure(slot + 1)
        except ConfigError as exc:
            log.error("Could not start a worker: %s", exc)
            self.spawn_not_before = now + self.backoff.crashed(now) + 1.0
            return False
        serves = self.slots.serving(slot, self.target)
        ends = self._handover_ends(self.slots.quic_serving(slot, self.target))
        sockets = self.slots.sockets(serves) + self.slots.quic_sockets(ends)
        self.spawned += 1
        about = WorkerInfo(pid=None, age=self.spawned, started_at=time.time(), config=self.config)
        self.hooks.call("pre_fork", self.server_info, about)
        try:
            if self.forker is not None:
                worker = self.forker.fork(about, sockets)
            else:
                served = {sock.fileno() for sock in sockets}
                others = [s.fileno() for s in self.slots.all() if s.fileno() not in served]
                worker = worker_process.spawn(
                    self.config,
                    sockets,
                    self.alive_fd,
                    self.master_fds() + self._fds() + others,
                    app=self.app,
                    hooks=self.hooks,
                    server_info=self.server_info,
                    about=about,
                )
        except OSError as exc:
            log.error("Could not start a worker: %s", logs.one_line(exc))
            self.spawn_not_before = now + self.backoff.crashed(now) + 1.0
            return False
        worker.slot, worker.serves, worker.quic = slot, serves, ends
        self.workers[worker.pid] = worker
        # Before the first boot this is noise next to the app's own error, if it fails.
        (log.info if self.announced else log.debug)("Started worker %d", worker.pid)
        return True

    def _fds(self) -> list[int]:
        return [w.status_fd for w in self.workers.values() if w.status_fd >= 0]

    def _retire(self, worker: Worker, now: float) -> None:
        reason = worker.replace_reason or "fewer workers wanted"
        log.info("Retiring worker %d (%s)", worker.pid, reason)
        self._retiring(worker, now)
        # SIGHUP tells the worker a replacement takes over (its WebSockets close with 1012,
        # service restart; its HTTP/3 sockets hand new connections to the next worker);
        # fewer workers wanted is a plain graceful stop, unless the worker serves HTTP/3
        # sockets, which another worker adopts (``_share_orphans``).
        # A worker still booting handles it once its loop runs (``early_signals``).
        replaced = worker.replace_reason or worker.quic
        worker.signal(signal.SIGHUP if replaced else signal.SIGTERM)

    def _retiring(self, worker: Worker, now: float) -> None:
        worker.retiring = True
        worker.kill_at = now + self._drain_allowance()

    def _drain_allowance(self) -> float:
        """How long a retired worker may take to drain before it is killed."""
        return self.config.timeout_graceful_shutdown + RETIRE_MARGIN

    # -- requests from the master

    def begin_reload(self, why: str) -> None:
        active = self.active()
        log.info(
            "Reloading (%s): replacing %s one at a time", why, logs.plural(len(active), "worker")
        )
        self.tally.reloads += 1
        for worker in active:
            worker.replace_reason = f"reload: {why}"
        if active:
            self.reloading = True
            self.notifier.reloading(f"reloading ({why})")
        self.hooks.call("on_reload", self.server_info)

    def resize(self, target: int) -> None:
        self.target = max(1, target)
        log.info("Worker count set to %d", self.target)

    def signal_all(self, signum: int) -> None:
        for worker in self.workers.values():
            worker.signal(signum)

    def stop_all(self, signum: int, deadline: float) -> None:
        """Signal every worker; a graceful stop skips those already retiring (a second
        signal would make them stop fast)."""
        self.stop_deadline = min(self.stop_deadline, deadline)
        graceful = signum != signal.SIGQUIT
        for worker in self.workers.values():
            if not worker.killed and not (graceful and worker.retiring):
                worker.signal(signum)
            worker.retiring = True
            worker.kill_at = min(worker.kill_at or deadline, deadline)

    def kill_all(self) -> None:
        """Last resort at exit: nothing the master started may outlive it."""
        for worker in self.workers.values():
            worker.signal(signal.SIGKILL)
        for pid in list(self.workers):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self.workers.pop(pid).close_status()
