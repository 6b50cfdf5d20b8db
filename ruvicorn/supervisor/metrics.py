"""The master's view of ``--metrics-bind``: every worker's counters, summed, as Prometheus text.

Workers count in their native protocol with atomic adds straight into their heartbeat
page (see ``heartbeat``), so the page always holds every count made. The master adds up
the pages of the live workers and the totals of the dead ones: when a worker exits, even
by SIGKILL, its final page is folded into ``Tally.folded`` once it is reaped and before
the page is unmapped, so a counter never goes back and no count is lost. Gauges (requests
in flight, open connections) are only summed over live workers: a dead worker's drop out.

The slot layout mirrors the native one (``ruvicorn._native.METRICS_LAYOUT``, checked by the
tests); the master never imports the native module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

#: Methods counted on their own; the rest are ``other``.
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: Request-duration bucket bounds in microseconds; one more slot holds the slower requests.
BUCKETS_US = (
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
)
#: Open connections by protocol.
PROTOCOLS = ("http/1.1", "websocket", "h2", "h3")
#: Why a worker was replaced.
RESTART_REASONS = ("crash", "recycle", "reload", "timeout")

REQUESTS = 0
BUCKETS = REQUESTS + (len(METHODS) + 1) * len(CLASSES)
DURATION_SUM_US = BUCKETS + len(BUCKETS_US) + 1
IN_FLIGHT = DURATION_SUM_US + 1
BYTES_IN = IN_FLIGHT + 1
BYTES_OUT = BYTES_IN + 1
WS_SESSIONS = BYTES_OUT + 1
OPEN = WS_SESSIONS + 1
SLOTS = OPEN + len(PROTOCOLS)
#: Slots that are gauges: a dead worker's are dropped, not folded.
GAUGES = frozenset({IN_FLIGHT, *range(OPEN, SLOTS)})

#: What the native side must agree with.
LAYOUT = {
    "methods": list(METHODS),
    "classes": len(CLASSES),
    "buckets_us": list(BUCKETS_US),
    "protocols": list(PROTOCOLS),
    "slots": SLOTS,
}

#: A gauge slot holds a count that went down as an unsigned 64-bit wrap.
_WRAP = 2**64


class WorkerView(Protocol):
    """What the exposition reads of one live worker."""

    pid: int

    def counters(self) -> tuple[int, ...]: ...
    def lag(self) -> float:
        """Seconds the event loop runs late (its last tick's, or the current stall's)."""
        ...


@dataclass
class Tally:
    """What the master counts itself, and the folded counts of exited workers."""

    folded: list[int] = field(default_factory=lambda: [0] * SLOTS)
    restarts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESTART_REASONS, 0))
    reloads: int = 0

    def fold(self, counts: Iterable[int]) -> None:
        """Add an exited worker's last counters (its gauges are gone with it)."""
        for slot, value in enumerate(counts):
            if slot not in GAUGES:
                self.folded[slot] += value

    def restarted(self, reason: str) -> None:
        self.restarts[reason] += 1


def _signed(value: int) -> int:
    return value - _WRAP if value >= _WRAP // 2 else value


def _rss(pid: int) -> int | None:
    import psutil  # here: only a scrape needs it

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


class _Text:
    """Prometheus text exposition, family by family."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        if labels:
            inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
            name = f"{name}{{{inner}}}"
        self.lines.append(f"{name} {value!r}")

    def encode(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


def render(tally: Tally, workers: list[WorkerView]) -> bytes:
    """The exposition of every metric."""
    totals = list(tally.folded)
    gauges = [0] * SLOTS
    for worker in workers:
        for slot, value in enumerate(worker.counters()):
            if slot in GAUGES:
                gauges[slot] += _signed(value)
            else:
                totals[slot] += value
    out = _Text()
    _requests(out, totals)
    out.family("ruvicorn_requests_in_flight", "gauge", "HTTP requests whose app is running.")
    out.sample("ruvicorn_requests_in_flight", max(0, gauges[IN_FLIGHT]))
    out.family("ruvicorn_connections_open", "gauge", "Open client connections by protocol.")
    for index, protocol in enumerate(PROTOCOLS):
        out.sample("ruvicorn_connections_open", max(0, gauges[OPEN + index]), protocol=protocol)
    for name, slot, help_text in (
        ("ruvicorn_received_bytes_total", BYTES_IN, "Bytes read from clients."),
        ("ruvicorn_sent_bytes_total", BYTES_OUT, "Bytes written to clients."),
        ("ruvicorn_websocket_sessions_total", WS_SESSIONS, "WebSocket handshakes accepted."),
    ):
        out.family(name, "counter", help_text)
        out.sample(name, totals[slot])
    out.family("ruvicorn_worker_restarts_total", "counter", "Workers replaced, by reason.")
    for reason in RESTART_REASONS:
        out.sample("ruvicorn_worker_restarts_total", tally.restarts[reason], reason=reason)
    out.family("ruvicorn_reloads_total", "counter", "Reloads begun (SIGHUP or --reload).")
    out.sample("ruvicorn_reloads_total", tally.reloads)
    _per_worker(out, workers)
    return out.encode()


def _requests(out: _Text, totals: list[int]) -> None:
    out.family("ruvicorn_requests_total", "counter", "Requests answered, by method and status.")
    for m, method in enumerate((*METHODS, "other")):
        for c, status in enumerate(CLASSES):
            count = totals[REQUESTS + m * len(CLASSES) + c]
            if count:
                out.sample("ruvicorn_requests_total", count, method=method, status=status)
    name = "ruvicorn_request_duration_seconds"
    out.family(name, "histogram", "Time from a request's head to the end of its response.")
    cumulative = 0
    for index, bound in enumerate(BUCKETS_US):
        cumulative += totals[BUCKETS + index]
        out.sample(f"{name}_bucket", cumulative, le=f"{bound / 1_000_000:g}")
    cumulative += totals[BUCKETS + len(BUCKETS_US)]
    out.sample(f"{name}_bucket", cumulative, le="+Inf")
    out.sample(f"{name}_sum", totals[DURATION_SUM_US] / 1_000_000)
    out.sample(f"{name}_count", cumulative)


def _per_worker(out: _Text, workers: list[WorkerView]) -> None:
    out.family("ruvicorn_workers", "gauge", "Worker processes alive.")
    out.sample("ruvicorn_workers", len(workers))
    name = "ruvicorn_event_loop_lag_seconds"
    out.family(name, "gauge", "How late the worker's event loop runs its heartbeat tick.")
    for worker in workers:
        out.sample(name, float(max(worker.lag(), 0.0)), pid=str(worker.pid))
    out.family("ruvicorn_worker_rss_bytes", "gauge", "Resident memory of each worker.")
    for worker in workers:
        rss = _rss(worker.pid)
        if rss is not None:
            out.sample("ruvicorn_worker_rss_bytes", rss, pid=str(worker.pid))
