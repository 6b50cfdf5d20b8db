"""RESULTS.md: the machine, the versions, the targets and one table per workload."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from runner.aggregate import cpu_ratio, ratio
from runner.paths import BASELINE, OUT, WS_MESSAGE
from runner.servers import SERVERS
from runner.targets import targets_table
from runner.workloads import WORKLOADS, Workload


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in (
        "ruvicorn",
        "uvicorn",
        "uvicorn-worker",
        "httptools",
        "uvloop",
        "h11",
        "granian",
        "gunicorn",
        "fastapi",
        "starlette",
        "pydantic",
        "websockets",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    for tool, argv in (("nginx", ["nginx", "-v"]), ("wrk", ["wrk", "-v"])):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            text = (p.stdout + p.stderr).strip().splitlines()
            words = re.sub(r"^nginx version: ", "", text[0]).split() if text else ["?"]
            out[tool] = " ".join(words[:2])
        except (OSError, subprocess.TimeoutExpired):
            out[tool] = "not installed"
    return out


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
    }


def fmt_int(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def fmt(x: float | None, digits: int = 1, scale: float = 1.0) -> str:
    return "-" if x is None else f"{x / scale:.{digits}f}"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def table_head(w: Workload) -> list[str]:
    head = ["server", f"{w.unit}/s (median)", "min-max"]
    if w.throughput:
        head += ["MB/s (median)", "MB/s min-max"]
    head += [
        "vs uvicorn",
        "by CPU",
        "p50 ms",
        "p99 ms",
        f"CPU µs/{w.unit}",
        "core %",
        "RSS MiB",
        "errors",
    ]
    head += [f"noise % server / {w.client}"]
    return head


def table_cells(w: Workload, aggs: dict[str, dict[str, Any]], name: str) -> list[str]:
    """The cells of one measured server's row."""
    a = aggs[name]
    key = "mbps" if w.throughput else "rps"
    cells = [
        SERVERS[name].label + (" ¹" if (a.get("client_cpu_share") or 0) > 0.95 else ""),
        fmt_int(a["rps"]),
        f"{fmt_int(a['rps_min'])}-{fmt_int(a['rps_max'])}",
    ]
    if w.throughput:
        cells += [fmt(a["mbps"]), f"{fmt(a['mbps_min'])}-{fmt(a['mbps_max'])}"]
    cells += [
        fmt_ratio(ratio(aggs, name, BASELINE, key)),
        fmt_ratio(cpu_ratio(aggs, name, BASELINE)),
        fmt(a["p50_us"], 2, 1000),
        fmt(a["p99_us"], 2, 1000),
        fmt(a["cpu_us_per_req"]),
        fmt(a.get("server_busy"), 0, 0.01),
        fmt(a["rss_kib"], 1, 1024),
        f"{a['errors']:,}",
        f"{fmt(a.get('other_load'), 0, 0.01)} / {fmt(a.get('client_other_load'), 0, 0.01)}",
    ]
    return cells


def workload_table(w: Workload, aggs: dict[str, dict[str, Any]], order: list[str]) -> list[str]:
    head = table_head(w)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    pad = " |" * (len(head) - 2)
    for name in order:
        if name not in aggs:
            continue
        a = aggs[name]
        label = SERVERS[name].label
        if "na" in a:
            lines.append(f"| {label} | n/a: {a['na']} |" + pad)
        elif "error" in a:
            lines.append(f"| {label} | failed: {a['error'][:120].replace('|', '/')} |" + pad)
        else:
            lines.append("| " + " | ".join(table_cells(w, aggs, name)) + " |")
    return lines


def preamble(meta: dict[str, Any]) -> list[str]:
    """The run's circumstances, and what the columns mean."""
    o = meta["options"]
    return [
        "# ruvicorn benchmark results",
        "",
        f"- date: {meta['date']}  ",
        f"- mode: {meta['mode']}: {o['rounds']} round(s) x {o['duration']} s per server and "
        f"workload, {o['warmup']} s warm-up, servers interleaved and restarted every round  ",
        f"- pinning: server on CPU {o['server_cpu']}, wrk (1 thread; wsload for websocket) on "
        f"CPU {o['client_cpu']}; "
        "loopback only  ",
        f"- machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, kernel "
        f"{meta['machine']['kernel']}, Python {meta['machine']['python']}  ",
        f"- command: `{meta['command']}`",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        "Columns (details in bench/README.md): req/s median and min-max over rounds; "
        "vs uvicorn = median / median of uvicorn httptools+uvloop (MB/s for stream); "
        "p50/p99 = median over rounds of wrk's latency percentiles; CPU µs/req = user+system "
        "CPU of the server's process tree during the measured window / requests; RSS = the "
        "serving worker's (a master that serves nothing is left out) after the run; "
        "core % = that CPU / the window (under 100: the "
        "server waited, for the client or on a stall); errors = wrk socket errors + "
        "responses ≥ 400, "
        "summed over rounds; noise = the most, over rounds, of the server's core / of wrk's "
        "core that other processes took during the window. ¹ = wrk's core was saturated "
        "(the server may be faster than shown).",
        "",
        "![ratio to uvicorn](ratios.png)",
        "",
    ]


def noise_warning(all_aggs: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    worst = max(
        (
            max(a.get("other_load", 0.0), a.get("client_other_load", 0.0))
            for aggs in all_aggs.values()
            for a in aggs.values()
        ),
        default=0.0,
    )
    if worst <= 0.10:
        return []
    return [
        f"**Noisy run**: other processes took up to {worst:.0%} of a benchmark core "
        "during a measured window (column noise). Ratios of req/s are unreliable here; "
        "the by CPU ratios much less so. Rerun on a quiet machine for numbers to keep.",
        "",
    ]


def workload_section(w: Workload, aggs: dict[str, dict[str, Any]], order: list[str]) -> list[str]:
    out = [f"## {w.title}", "", f"{w.connections} connections.", ""]
    if w.websocket:
        out[-2:] = [
            f"{w.connections} connections, each sending a {len(WS_MESSAGE)}-byte text "
            "message and waiting for its echo before the next (closed loop); load from "
            "bench/wsload, pinned like wrk. msg/s = echoes per second, p50/p99 = round "
            "trip, CPU µs/msg = server CPU per echoed message.",
            "",
        ]
    if w.http2:
        out[-2] = (
            f"{w.connections} connections x {w.streams} concurrent HTTP/2 streams; load from "
            "h2load (nghttp2), pinned like wrk."
        )
    if w.http3:
        out[-2] = (
            f"{w.connections} QUIC connections x {w.streams} concurrent HTTP/3 streams; load "
            "from bench/wsload --h3, pinned like wrk."
        )
    if w.tls:
        out[-2] += (
            " TLS 1.3 with an ECDSA P-256 certificate minted for the run, X25519 key exchange."
        )
    if w.name == "tls-close":
        out[-2] += (
            " Every request is a new connection and a full handshake (bench/wsload --tls-close"
            " resumes no session); where its core is saturated (¹) compare CPU µs/req."
        )
    out += workload_table(w, aggs, order)
    if w.name in ("plaintext", "tls-plaintext"):
        r = ratio(aggs, "ruvicorn-asyncio", "uvicorn-asyncio", "rps")
        if r is not None:
            out += ["", f"On the stdlib asyncio loop: ruvicorn / uvicorn = {r:.2f}x."]
    out.append("")
    return out


def memory_section(o: dict[str, Any], memory: dict[str, dict[str, Any]]) -> list[str]:
    if not memory:
        return []
    out = [
        "## memory: plaintext soak, serving processes' RSS",
        "",
        f"{o['memory_duration']} s of plaintext load, RSS sampled every "
        f"{o['memory_interval']} s (worker processes only where there is a master).",
        "",
        "| server | req/s | RSS idle MiB | RSS first sample | RSS last | max | growth |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in memory.items():
        label = SERVERS[name].label
        if "error" in m:
            out.append(f"| {label} | failed: {m['error'][:120]} | | | | | |")
            continue
        out.append(
            f"| {label} | {fmt_int(m['rps'])} | {fmt(m['rss_idle_kib'], 1, 1024)} | "
            f"{fmt(m['rss_first_kib'], 1, 1024)} | {fmt(m['rss_last_kib'], 1, 1024)} | "
            f"{fmt(m['rss_max_kib'], 1, 1024)} | {m['growth_kib'] / 1024:+.1f} MiB |"
        )
    out.append("")
    return out


def write_markdown(
    meta: dict[str, Any],
    all_aggs: dict[str, dict[str, dict[str, Any]]],
    orders: dict[str, list[str]],
    memory: dict[str, dict[str, Any]],
) -> Path:
    out = preamble(meta) + noise_warning(all_aggs)
    targets = targets_table(all_aggs, memory)
    if len(targets) > 2:  # more than the header: some workload with a target was measured
        out += ["## Targets (from the benchmark issue)", "", *targets, ""]
    for wname, aggs in all_aggs.items():
        out += workload_section(WORKLOADS[wname], aggs, orders[wname])
    out += memory_section(meta["options"], memory)
    path = OUT.results / "RESULTS.md"
    path.write_text("\n".join(out))
    return path
