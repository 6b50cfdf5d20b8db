"""The targets table of RESULTS.md: each issue's minimum ratio, and what the run measured."""

from __future__ import annotations

import dataclasses
from typing import Any

from runner.aggregate import cpu_ratio, ratio
from runner.workloads import WORKLOADS


@dataclasses.dataclass(frozen=True)
class Target:
    """``server`` on ``workload`` against ``reference`` on ``ref_workload`` (the same
    workload when None): req/s (MB/s for a throughput workload), or with ``by_cpu`` the
    reference's CPU per request over the server's, at least ``need``."""

    workload: str
    server: str
    reference: str
    need: float
    ref_workload: str | None = None
    by_cpu: bool = False

    def label(self) -> str:
        ref = self.reference + (f" {self.ref_workload}" if self.ref_workload else "")
        return (
            f"{self.reference} / {self.server} CPU µs/req"
            if self.by_cpu
            else (f"{self.server} / {ref}")
        )


TARGETS: list[Target] = [
    Target("plaintext", "ruvicorn", "uvicorn", 2.2),
    Target("plaintext", "ruvicorn", "granian", 1.4),
    Target("plaintext", "ruvicorn", "floor", 0.5),
    Target("plaintext", "ruvicorn-asyncio", "uvicorn-asyncio", 2.0),
    Target("echo", "ruvicorn", "uvicorn", 2.0),
    Target("close", "ruvicorn", "uvicorn", 1.3),
    Target("close", "ruvicorn", "granian", 1.0),
    Target("json", "ruvicorn", "uvicorn", 1.15),
    Target("stream", "ruvicorn", "uvicorn", 1.0),
    Target("pipeline", "ruvicorn", "uvicorn", 2.5),
    Target("plaintext-accesslog", "ruvicorn", "uvicorn", 2.0),
    Target("tls-plaintext", "ruvicorn", "uvicorn", 2.0),
    Target("tls-plaintext", "ruvicorn", "granian", 1.5),
    Target("tls-plaintext", "ruvicorn", "ruvicorn", 0.85, ref_workload="plaintext"),
    # A full handshake costs the load generator too: compare the server's own CPU.
    Target("tls-close", "ruvicorn", "granian", 1.0, by_cpu=True),
    Target("tls-close", "ruvicorn", "uvicorn", 2.0, by_cpu=True),
    Target("h2-plaintext", "ruvicorn", "granian", 1.3),
    Target("h2-plaintext", "ruvicorn", "hypercorn", 10.0),
    Target("h2-plaintext", "ruvicorn", "ruvicorn", 0.9, ref_workload="plaintext"),
    Target("h2-echo", "ruvicorn", "granian", 1.3),
    Target("h3-plaintext", "ruvicorn", "hypercorn", 5.0),
    Target("h3-echo", "ruvicorn", "hypercorn", 5.0),
]


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def target_row(t: Target, all_aggs: dict[str, dict[str, dict[str, Any]]]) -> str | None:
    """One line of the table, or None when the run did not measure that workload."""
    if t.workload not in all_aggs:
        return None
    ref_workload = t.ref_workload or t.workload
    aggs = {
        "server": all_aggs[t.workload].get(t.server, {}),
        "reference": all_aggs.get(ref_workload, {}).get(t.reference, {}),
    }
    key = "mbps" if WORKLOADS[t.workload].throughput else "rps"
    by_cpu = cpu_ratio(aggs, "server", "reference") if key == "rps" else None
    r = by_cpu if t.by_cpu else ratio(aggs, "server", "reference", key)
    met = "-" if r is None else ("yes" if r >= t.need else "**no**")
    return (
        f"| {t.workload} | {t.label()} | ≥ {t.need:.2f}x | {_fmt(r)} | {met} "
        f"| {'-' if t.by_cpu else _fmt(by_cpu)} |"
    )


def targets_table(
    all_aggs: dict[str, dict[str, dict[str, Any]]], memory: dict[str, dict[str, Any]]
) -> list[str]:
    lines = [
        "| workload | ratio | target | measured | met | by CPU µs/req |",
        "|---|---|---|---|---|---|",
    ]
    lines += [row for t in TARGETS if (row := target_row(t, all_aggs)) is not None]
    ru, uv = memory.get("ruvicorn", {}), memory.get("uvicorn", {})
    if "rss_last_kib" in ru and "rss_last_kib" in uv:
        diff = (ru["rss_last_kib"] - uv["rss_last_kib"]) / 1024
        lines.append(
            f"| memory | worker RSS - uvicorn's | ≤ +10 MiB | {diff:+.1f} MiB | "
            f"{'yes' if diff <= 10 else '**no**'} | - |"
        )
    if "growth_kib" in ru:
        growth = ru["growth_kib"] / 1024
        lines.append(
            f"| memory | worker RSS growth over the soak | flat (≤ 1 MiB) | "
            f"{growth:+.1f} MiB | {'yes' if growth <= 1 else '**no**'} | - |"
        )
    return lines
