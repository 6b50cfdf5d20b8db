"""One measured run of one server, and the memory soak."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.load import run_load, run_wrk
from runner.paths import OUT, WSLOAD
from runner.probes import tail, wait_port_free
from runner.procfs import core_ticks, cpu_seconds, other_load, parse_cpus, rss_kib, worker_pids
from runner.running import Running, StartFailed
from runner.servers import Server
from runner.workloads import MEMORY, WORKLOADS, Workload


@dataclasses.dataclass
class Options:
    duration: int
    warmup: int
    rounds: int
    port: int
    server_cpu: str
    client_cpu: str
    start_timeout: float
    memory_duration: int
    memory_interval: int
    retry_noisy: float = 20.0  # percent; 0 = never


def with_server(
    server: Server, w: Workload, opt: Options, row: dict[str, Any], body: Callable[[Running], None]
) -> dict[str, Any]:
    """Start ``server`` for ``w``, wait until it serves, run ``body``, stop it. A failure of
    the server lands in ``row["error"]`` (with its log's tail), never as an exception."""
    log = Path(row["log"])
    if not wait_port_free(opt.port, 15):
        row["error"] = f"port {opt.port} still busy before start"
        return row
    try:
        running = Running(server, w, opt.port, log, opt.server_cpu)
    except StartFailed as exc:
        row["error"] = str(exc)
        return row
    try:
        running.wait_ready(opt.start_timeout)
        body(running)
    except StartFailed as exc:
        row["error"] = str(exc)
    finally:
        running.stop()
    if "error" in row:
        row["log_tail"] = tail(log)
    return row


def check_result(running: Running, result: dict[str, Any]) -> None:
    """Raise when the load generator failed or the server died under it."""
    if "error" in result:
        raise StartFailed(result["error"])
    if not running.alive():
        raise StartFailed(f"died during the run (code {running.proc.returncode})")


def check_access_log(path: Path, row: dict[str, Any]) -> None:
    """Raise unless the access log holds a line for every measured request: a row measured
    with the log silently off (a level, a flag) would compare nothing."""
    lines = 0
    with contextlib.suppress(OSError), path.open("rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
    row["access_log_lines"] = lines
    if lines < row["requests"]:
        raise StartFailed(f"{path.name} has {lines} lines for {row['requests']} requests")


def measure(server: Server, w: Workload, rnd: int, opt: Options) -> dict[str, Any]:
    """Start, warm up, measure once, stop. Never raises for a server's own failure."""
    log = OUT.raw / f"{w.name}-{server.name}-r{rnd}.log"
    row: dict[str, Any] = {"server": server.name, "workload": w.name, "round": rnd, "log": str(log)}
    if w.client.startswith("wsload") and not WSLOAD.exists():
        row["error"] = "bench/.venv/bin/wsload is missing: run bash bench/setup.sh (needs cargo)"
        return row
    return with_server(server, w, opt, row, lambda running: measure_once(running, w, opt, row))


def measure_once(running: Running, w: Workload, opt: Options, row: dict[str, Any]) -> None:
    if opt.warmup > 0:
        warm = run_load(w, opt.port, opt.warmup, opt.client_cpu)
        if "error" in warm:
            raise StartFailed(f"warm-up: {warm['error']}")
    cpus = parse_cpus(opt.server_cpu)
    client_cpus = parse_cpus(opt.client_cpu)
    wrk0, core0, before = core_ticks(client_cpus), core_ticks(cpus), running.tree()
    result = run_load(w, opt.port, opt.duration, opt.client_cpu)
    after, core1, wrk1 = running.tree(), core_ticks(cpus), core_ticks(client_cpus)
    check_result(running, result)
    row.update(result)
    if running.access_log is not None:
        check_access_log(running.access_log, row)
    cpu = cpu_seconds(before, after)
    row["server_cpu_s"] = cpu
    row["server_busy"] = cpu / (result["duration_us"] / 1e6) if result["duration_us"] else 0
    server_user = sum(
        p.user - (before[pid].user if pid in before and before[pid].start == p.start else 0)
        for pid, p in after.items()
    )
    row["other_load"] = other_load(core0, core1, server_user)
    row["client_other_load"] = other_load(wrk0, wrk1, result.pop("client_user_ticks"))
    row["noise"] = max(row["other_load"], row["client_other_load"])
    row["cpu_us_per_req"] = cpu * 1e6 / result["requests"] if result["requests"] else None
    # The memory target is per worker: a master (ruvicorn's, gunicorn's) that
    # serves nothing is left out, as in the memory soak.
    row["rss_kib"] = sum(rss_kib(pid) for pid in worker_pids(after, running.pid))
    row["processes"] = len(after)


def memory_soak(server: Server, opt: Options) -> dict[str, Any]:
    """Plaintext load for a minute; the serving processes' RSS sampled every few seconds."""
    log = OUT.raw / f"memory-{server.name}.log"
    row: dict[str, Any] = {"server": server.name, "workload": MEMORY, "log": str(log)}
    w = WORKLOADS["plaintext"]
    return with_server(server, w, opt, row, lambda running: soak_once(running, w, opt, row))


def soak_once(running: Running, w: Workload, opt: Options, row: dict[str, Any]) -> None:
    def worker_rss() -> int:
        return sum(rss_kib(p) for p in worker_pids(running.tree(), running.pid))

    row["rss_idle_kib"] = worker_rss()
    box: dict[str, Any] = {}
    load = threading.Thread(
        target=lambda: box.update(run_wrk(w, opt.port, opt.memory_duration, opt.client_cpu))
    )
    t0 = time.monotonic()
    load.start()
    samples: list[tuple[float, int]] = []
    while True:
        load.join(opt.memory_interval)
        rss = worker_rss()  # one last sample right after the load ends
        samples.append((round(time.monotonic() - t0, 1), rss))
        if not load.is_alive():
            break
    check_result(running, box)
    row.update(box)
    row["samples"] = samples
    values = [kib for _, kib in samples]
    row["rss_first_kib"], row["rss_last_kib"], row["rss_max_kib"] = (
        values[0],
        values[-1],
        max(values),
    )
    row["growth_kib"] = values[-1] - values[0]
