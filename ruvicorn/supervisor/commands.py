"""What the master answers on its control socket (``ruvicorn ctl``).

Each command that changes something posts the event its signal would (SIGHUP, SIGTERM,
SIGQUIT, SIGUSR1) to the master loop, so it behaves and logs exactly like the signal;
``scale N`` has no signal of its own and sets the worker count as SIGTTIN/SIGTTOU do.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any

from ruvicorn import logs
from ruvicorn.supervisor import metrics

if TYPE_CHECKING:
    from ruvicorn.supervisor.master import Master

log = logs.error_log

#: Commands that act as a signal.
SIGNALS = {
    "reload": signal.SIGHUP,
    "stop": signal.SIGTERM,
    "stop --fast": signal.SIGQUIT,
    "reopen-logs": signal.SIGUSR1,
}
#: The most workers ``scale`` accepts (a typo must not fork thousands of processes).
MAX_SCALE = 1024


def answer(master: Master, command: str, args: list[Any]) -> dict[str, Any]:
    if command == "status":
        return {"ok": True, **status(master)}
    if command == "stop" and args == ["--fast"]:
        command = "stop --fast"
    elif args and command != "scale":
        return {"ok": False, "message": f"{command} takes no arguments"}
    if command in SIGNALS:
        log.info("Control socket: %s", command)
        master.signals.post(SIGNALS[command])
        return {
            "ok": True,
            "message": f"{command}: done as {signal.Signals(SIGNALS[command]).name}",
        }
    if command == "scale":
        return _scale(master, args)
    return {"ok": False, "message": f"unknown command {command!r}"}


def _scale(master: Master, args: list[Any]) -> dict[str, Any]:
    try:
        (count,) = (int(a) for a in args)
    except (ValueError, TypeError):
        return {"ok": False, "message": "scale takes one number of workers"}
    if not 1 <= count <= MAX_SCALE:
        return {"ok": False, "message": f"scale: the worker count must be 1 to {MAX_SCALE}"}
    if master.stopping or master.stop_at:
        return {"ok": False, "message": "scale: the server is stopping"}
    log.info("Control socket: scale %d", count)
    master.pool.resize(count)
    return {"ok": True, "message": f"scale: {logs.plural(count, 'worker')} wanted"}


def status(master: Master) -> dict[str, Any]:
    """The server's state as JSON-ready values."""
    pool = master.pool
    now = time.monotonic()
    zygotes = master.zygotes
    zygote = zygotes.current if zygotes is not None else None
    counted = master.config.metrics_bind is not None
    return {
        "master": os.getpid(),
        "state": _state(master),
        "target": pool.target,
        "zygote": zygote.pid if zygote is not None else None,
        "last_reload": master.last_reload,
        "workers": [
            {
                "pid": w.pid,
                "age": round(now - w.started, 3),
                "state": "retiring" if w.retiring else "ready" if w.ready else "booting",
                "rss": _rss(w.pid),
                # Counted by workers into their heartbeat page only with --metrics-bind.
                "requests": _requests(w.counters()) if counted else None,
            }
            for w in sorted(pool.workers.values(), key=lambda w: w.started)
        ],
    }


def _state(master: Master) -> str:
    if master.stopping:
        return f"stopping ({master.stopping})"
    if master.stop_at:
        return "stopping soon (--timeout-shutdown-delay)"
    if master.pool.reloading or (master.zygotes is not None and master.zygotes.next is not None):
        return "reloading"
    return "serving" if master.pool.booted else "starting"


def _requests(counters: tuple[int, ...]) -> int:
    """Every request answered: the sum of the per method and status class slots."""
    return sum(counters[metrics.REQUESTS : metrics.BUCKETS])


def _rss(pid: int) -> int | None:
    import psutil  # here: only a status command needs it

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None
