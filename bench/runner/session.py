"""The measuring loop: servers interleaved round by round, noisy rounds measured again, a
server that cannot start given up on, and what was measured kept on an interrupt."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import time
from typing import Any

from runner.aggregate import aggregate
from runner.chart import write_chart
from runner.console import describe, describe_memory, print_summary
from runner.measure import Options, measure, memory_soak
from runner.paths import OUT, VENV
from runner.report import machine, versions, write_markdown
from runner.running import LIVE
from runner.servers import Server
from runner.workloads import Workload

Plan = list[tuple[Workload, list[Server], list[Server]]]


def log(line: str) -> None:
    print(line, flush=True)


def not_installed(servers: list[Server]) -> dict[str, str]:
    """Servers whose executable is missing from the bench venv, and why they are skipped."""
    unusable: dict[str, str] = {}
    for s in servers:
        if s.need and not (VENV / "bin" / s.need).exists():
            why = f"{s.need} is not installed in bench/.venv"
            if s.need == "ruvicorn":
                why += " (the build log is bench/.venv/ruvicorn-build.log)"
            unusable[s.name] = why
    return unusable


class Session:
    """One run's progress and results; ``run`` measures, ``write`` reports."""

    def __init__(
        self, work: Plan, mem_servers: list[Server], opt: Options, meta: dict[str, Any]
    ) -> None:
        self.work, self.mem_servers, self.opt, self.meta = work, mem_servers, opt, meta
        self.runs = sum(len(servers) for _, servers, _ in work) * opt.rounds
        self.rows: list[dict[str, Any]] = []
        self.all_aggs: dict[str, dict[str, dict[str, Any]]] = {}
        self.orders: dict[str, list[str]] = {}
        self.memory: dict[str, dict[str, Any]] = {}
        self.done = 0
        self.retries, self.retry_budget = 0, -(-self.runs * 15 // 100)  # at most 15% more runs
        self.current = ""  # the workload being measured
        self.per: dict[str, list[dict[str, Any]]] = {}
        # A server that is not installed, or failed to start in two workloads, is not retried.
        measured = {s.name: s for _, ss, _ in work for s in ss}
        self.unusable = not_installed([*measured.values(), *mem_servers])
        self.start_failures: dict[str, int] = {}

    def run(self) -> bool:
        """Measure everything planned; False when interrupted (what was measured is kept)."""
        try:
            for w, servers, not_applicable in self.work:
                self.run_workload(w, servers, not_applicable)
            for s in self.mem_servers:
                self.run_memory(s)
        except KeyboardInterrupt:
            log("\nbench: interrupted; writing what was measured")
            for running in list(LIVE):
                running.stop()
            if self.current and self.current not in self.all_aggs and any(self.per.values()):
                self.all_aggs[self.current] = {
                    name: aggregate(rs) for name, rs in self.per.items() if rs
                }
            return False
        return True

    def run_workload(
        self, w: Workload, servers: list[Server], not_applicable: list[Server]
    ) -> None:
        self.current = w.name
        self.orders[w.name] = [s.name for s in servers]
        self.per = {s.name: [] for s in servers}
        for rnd in range(1, self.opt.rounds + 1):
            for s in servers:
                self.done += 1
                self.run_round(w, s, rnd)
        self.all_aggs[w.name] = {name: aggregate(rs) for name, rs in self.per.items()}
        for s in not_applicable:
            log(f"{'':15} {w.name:9} {s.name:16} n/a: {s.na_reason(w)}")
            self.all_aggs[w.name][s.name] = {"na": s.na_reason(w)}
            self.orders[w.name].append(s.name)
        print_summary(w, self.all_aggs[w.name], self.orders[w.name])

    def run_round(self, w: Workload, s: Server, rnd: int) -> None:
        """One server, one round: skipped, given up on, or measured and recorded."""
        progress = f"[{self.done:3}/{self.runs}] {w.name:9}"
        if s.name in self.unusable:
            if rnd == 1:
                why = self.unusable[s.name]
                self.per[s.name].append(
                    {"server": s.name, "workload": w.name, "round": rnd, "error": why}
                )
                log(f"{progress} {s.name:16} skipped: {why}")
            return
        if self.per[s.name] and all("error" in r for r in self.per[s.name]):
            return  # failed to start in this workload already
        row = self.measure_quietly(w, s, rnd, progress)
        self.rows.append(row)
        self.per[s.name].append(row)
        log(f"{progress} r{rnd} {s.name:16} " + describe(row, w))
        if "error" in row:
            self.failed(s, row, rnd)

    def measure_quietly(self, w: Workload, s: Server, rnd: int, progress: str) -> dict[str, Any]:
        """Measure; when another process took the server's core, measure that round again
        (once, within a budget) and keep the quieter of the two."""
        row = measure(s, w, rnd, self.opt)
        noise = row.get("noise", 0.0) * 100
        retry = self.opt.retry_noisy and noise > self.opt.retry_noisy
        if not retry or self.retries >= self.retry_budget:
            return row
        self.retries += 1
        log(
            f"{progress} r{rnd} {s.name:16} noise {noise:.0f}%:"
            f" measuring again ({self.retries}/{self.retry_budget} retries)"
        )
        again = measure(s, w, rnd, self.opt)
        if "error" not in again and again["noise"] < row["noise"]:
            again["noisy_first_try"] = row["noise"]
            return again
        return row

    def failed(self, s: Server, row: dict[str, Any], rnd: int) -> None:
        if row.get("log_tail"):
            log(row["log_tail"])
        if rnd == 1:
            self.start_failures[s.name] = self.start_failures.get(s.name, 0) + 1
            if self.start_failures[s.name] >= 2:
                self.unusable[s.name] = "failed to start twice; not retried"

    def run_memory(self, s: Server) -> None:
        if s.name in self.unusable:
            self.memory[s.name] = {"error": self.unusable[s.name]}
            log(f"bench: memory soak of {s.name} skipped: {self.unusable[s.name]}")
            return
        log(f"bench: memory soak of {s.name}, {self.opt.memory_duration} s")
        m = memory_soak(s, self.opt)
        self.rows.append(m)
        self.memory[s.name] = m
        log(f"         {s.name:16} " + describe_memory(m))

    def write(self) -> None:
        write_reports(self.meta, self.all_aggs, self.orders, self.memory, self.rows)


def run_meta(mode: str, argv: list[str], opt: Options) -> dict[str, Any]:
    """``mode``: full, quick or partial (fewer workloads, servers, rounds or seconds)."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": mode,
        "command": "python bench/run.py " + " ".join(argv),
        "options": dataclasses.asdict(opt),
        "machine": machine(),
        "versions": versions(),
    }


def measure_all(session: Session) -> int:
    """Run the session and write its reports; the exit code (130 when interrupted)."""
    started = time.monotonic()
    interrupted = not session.run()
    session.meta["elapsed_s"] = round(time.monotonic() - started, 1)
    session.meta["interrupted"] = interrupted
    log(f"bench: measured for {session.meta['elapsed_s'] / 60:.1f} min")
    session.write()
    return 130 if interrupted else 0


def write_reports(
    meta: dict[str, Any],
    all_aggs: dict[str, dict[str, dict[str, Any]]],
    orders: dict[str, list[str]],
    memory: dict[str, dict[str, Any]],
    rows: list[dict[str, Any]],
) -> None:
    opt = Options(**meta["options"])
    title = (
        f"ruvicorn bench, {meta['mode']} run, {meta['date']}: ratio of req/s to uvicorn or the "
        f"peer named\n(1 worker, server on CPU {opt.server_cpu}, wrk on CPU {opt.client_cpu})"
    )
    md = write_markdown(meta, all_aggs, orders, memory)
    chart = write_chart(all_aggs, orders, title) if all_aggs else None
    results = OUT.results / "results.json"
    results.write_text(
        json.dumps(
            {"meta": meta, "aggregates": all_aggs, "memory": memory, "runs": rows},
            indent=1,
            default=str,
        )
    )
    log(f"bench: wrote {md}" + (f", {chart}" if chart else "") + f", {results}")


def report_only() -> int:
    """Rewrite RESULTS.md and ratios.png from results.json (after changing the report code)."""
    path = OUT.results / "results.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        sys.exit(f"bench: cannot read {path}: {exc}")
    aggs = data["aggregates"]
    orders = {w: list(a) for w, a in aggs.items()}
    write_reports(data["meta"], aggs, orders, data["memory"], data["runs"])
    return 0
