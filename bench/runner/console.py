"""What the run prints as it goes: one line per measured round, a summary per workload."""

from __future__ import annotations

import sys
from typing import Any

from runner.aggregate import ratio
from runner.paths import BASELINE
from runner.report import fmt, fmt_int, fmt_ratio
from runner.workloads import Workload


def describe(row: dict[str, Any], w: Workload) -> str:
    if "error" in row:
        return f"FAILED: {row['error']}"
    extra = f" {row['mbps']:8.1f} MB/s" if w.throughput else ""
    cpu = row["cpu_us_per_req"]
    noise = (
        f"  noise {row['other_load'] * 100:.0f}%/{row['client_other_load'] * 100:.0f}%"
        if "client_other_load" in row
        else ""
    )
    return (
        f"{row['rps']:>10,.0f} {w.unit}/s{extra}  p50 {fmt(row['p50_us'], 2, 1000):>6} ms  "
        f"p99 {fmt(row['p99_us'], 2, 1000):>6} ms  {fmt(cpu):>6} µs/{w.unit}  "
        f"core {fmt(row.get('server_busy'), 0, 0.01):>3}%  "
        f"RSS {row['rss_kib'] / 1024:6.1f} MiB  errors {row['errors']}{noise}"
    )


def describe_memory(m: dict[str, Any]) -> str:
    if "error" in m:
        return f"FAILED: {m['error']}"
    samples = " ".join(f"{kib / 1024:.1f}" for _, kib in m["samples"])
    return (
        f"{m['rps']:,.0f} req/s; worker RSS MiB every {m['samples'][0][0]:.0f} s: {samples}; "
        f"growth {m['growth_kib'] / 1024:+.1f} MiB"
    )


def print_summary(w: Workload, aggs: dict[str, dict[str, Any]], order: list[str]) -> None:
    key = "mbps" if w.throughput else "rps"
    unit = "MB/s" if w.throughput else f"{w.unit}/s"
    print(f"--- {w.name}: median {unit} and ratio to uvicorn")
    for name in order:
        a = aggs[name]
        if "na" in a:
            print(f"    {name:16} n/a: {a['na']}")
        elif "error" in a:
            print(f"    {name:16} failed: {a['error']}")
        else:
            print(
                f"    {name:16} {a[key]:>10,.1f}  {fmt_ratio(ratio(aggs, name, BASELINE, key))}"
                f"  ({fmt_int(a['rps_min'])}-{fmt_int(a['rps_max'])} {w.unit}/s)"
            )
    sys.stdout.flush()
