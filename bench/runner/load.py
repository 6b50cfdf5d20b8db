"""The load generators: wrk for HTTP, bench/wsload for the WebSocket echo, for a full TLS
handshake per request (wrk resumes the session of its last connection instead) and for
HTTP/3, h2load for HTTP/2."""

from __future__ import annotations

import json
import re
import resource
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.paths import APPS, CLK_TCK, ECHO_BODY, HOST, OUT, WS_MESSAGE, WSLOAD
from runner.workloads import Workload


def wrk_script(w: Workload) -> Path:
    """The workload's lua script with the JSON reporter appended, in the raw directory."""
    parts = []
    if w.script:
        parts.append((APPS / w.script).read_text())
    parts.append((APPS / "report.lua").read_text())
    path = OUT.raw / f"wrk-{w.name}.lua"
    path.write_text("\n".join(parts))
    return path


def run_wrk(
    w: Workload, port: int, seconds: int, cpu: str, connections: int | None = None
) -> dict[str, Any]:
    conns = connections or w.connections
    argv = [
        "taskset",
        "-c",
        cpu,
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(wrk_script(w)),
    ]
    for h in w.headers:
        argv += ["-H", h]
    argv.append(f"{'https' if w.tls else 'http'}://{HOST}:{port}{w.path}")
    return run_client("wrk", argv, seconds)


def wsload_argv(w: Workload, port: int, options: list[str]) -> list[str]:
    """bench/wsload in the workload's mode with ``options``; over HTTP/3 ``w.streams``
    requests in flight on each connection, and the echo body for a POST."""
    argv = [str(WSLOAD), *w.client.split()[1:], "--host", HOST, "--port", str(port)]
    argv += ["--path", w.path, *options]
    if w.websocket:
        argv += ["--size", str(len(WS_MESSAGE))]
    if w.http3:
        argv += ["-m", str(w.streams)]
        if w.method == "POST":
            argv += ["--body", str(len(ECHO_BODY))]
    return argv


def run_wsload(
    w: Workload, port: int, seconds: int, cpu: str, connections: int | None = None
) -> dict[str, Any]:
    """bench/wsload (the WebSocket echo, ``--tls-close`` or ``--h3``), pinned like wrk,
    reporting in wrk's format."""
    if not WSLOAD.exists():
        return {"error": "bench/.venv/bin/wsload is missing: run bash bench/setup.sh (needs cargo)"}
    options = ["-c", str(connections or w.connections), "-d", str(seconds), "--timeout", "5"]
    return run_client("wsload", ["taskset", "-c", cpu, *wsload_argv(w, port, options)], seconds)


def h2load_argv(w: Workload, port: int, options: list[str]) -> list[str]:
    """h2load with ``options``, ``w.streams`` requests in flight on each connection; over
    TLS it offers ALPN h2 alone, so a server cannot fall back to HTTP/1.1."""
    argv = ["h2load", *options, "-m", str(w.streams)]
    if w.tls:
        argv += ["--npn-list", "h2"]
    if w.method == "POST":
        body = OUT.raw / "h2load-body.bin"
        body.write_bytes(ECHO_BODY)
        argv += ["-d", str(body), "-H", "content-type: application/octet-stream"]
    return [*argv, f"{'https' if w.tls else 'http'}://{HOST}:{port}{w.path}"]


def run_h2load(
    w: Workload, port: int, seconds: int, cpu: str, connections: int | None = None
) -> dict[str, Any]:
    """h2load (HTTP/2), pinned like wrk, its totals and per-request log read into wrk's
    format."""
    log = OUT.raw / f"h2load-{w.name}.tsv"
    options = ["-t1", "-c", str(connections or w.connections), "-D", str(seconds)]
    argv = ["taskset", "-c", cpu, *h2load_argv(w, port, [*options, "--log-file", str(log)])]
    try:
        return run_client("h2load", argv, seconds, lambda out: read_h2load(out, log))
    finally:
        log.unlink(missing_ok=True)


H2LOAD_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def read_h2load(out: str, log: Path) -> dict[str, Any] | None:
    """h2load's summary as wrk's BENCH_JSON fields; latencies from its per-request log."""
    finished = re.search(r"^finished in ([\d.]+)(us|ms|s),", out, re.M)
    counts = re.search(
        r"^requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, \d+ failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
        re.M,
    )
    status = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out, re.M)
    traffic = re.search(r"^traffic: \S+ \((\d+)\) total", out, re.M)
    if not (finished and counts and status and traffic):
        return None
    errored, timeout = (int(g) for g in counts.groups())
    latencies = sorted(
        int(row[2])
        for row in (line.split("\t") for line in log.read_text().splitlines())
        if len(row) >= 3 and row[1].startswith("2")
    )

    def percentile(q: float) -> int:
        return latencies[min(int(len(latencies) * q), len(latencies) - 1)] if latencies else 0

    return {
        "requests": int(status.group(1)),
        "duration_us": round(float(finished.group(1)) * H2LOAD_UNITS[finished.group(2)]),
        "bytes": int(traffic.group(1)),
        "connect": 0,
        "read": errored,
        "write": 0,
        "status": sum(int(g) for g in status.groups()[1:]),
        "timeout": timeout,
        "p50_us": percentile(0.5),
        "p90_us": percentile(0.9),
        "p99_us": percentile(0.99),
        "max_us": latencies[-1] if latencies else 0,
        "mean_us": sum(latencies) / len(latencies) if latencies else 0.0,
    }


def run_load(
    w: Workload, port: int, seconds: int, cpu: str, connections: int | None = None
) -> dict[str, Any]:
    """The workload's load generator for ``seconds``: its totals, or {"error": why}."""
    run = run_wsload if w.client.startswith("wsload") else run_h2load if w.http2 else run_wrk
    return run(w, port, seconds, cpu, connections)


def bench_json(out: str) -> dict[str, Any] | None:
    """The BENCH_JSON line wrk's reporter (and wsload) print."""
    m = re.search(r"^BENCH_JSON (\{.*\})$", out, re.M)
    return json.loads(m.group(1)) if m else None


def run_client(
    name: str,
    argv: list[str],
    seconds: int,
    read: Callable[[str], dict[str, Any] | None] = bench_json,
) -> dict[str, Any]:
    """Run one load generator and ``read`` its totals from its output, plus its own CPU
    share."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{name} did not finish within {seconds + 30} s"}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = read(out.stdout)
    if result is None:
        last = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"{name} failed (code {out.returncode}): {last[0]}"}
    for key in ("p50_us", "p90_us", "p99_us"):
        if not result[key]:  # wrk's histogram gives 0 when it lost samples: unknown, not 0
            result[key] = None
    wall = result["duration_us"] / 1e6
    client_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    result["client_cpu_share"] = client_cpu / wall if wall else 0.0
    result["client_user_ticks"] = round((after.ru_utime - before.ru_utime) * CLK_TCK)
    result["rps"] = result["requests"] / wall if wall else 0.0
    result["mbps"] = result["bytes"] / wall / 1e6 if wall else 0.0
    result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return result
