"""The load generators: wrk for HTTP, bench/wsload for the WebSocket echo and for a full TLS
handshake per request (wrk resumes the session of its last connection instead)."""

from __future__ import annotations

import json
import re
import resource
import subprocess
from pathlib import Path
from typing import Any

from runner.paths import APPS, CLK_TCK, HOST, OUT, WS_MESSAGE, WSLOAD
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


def run_wsload(
    w: Workload, port: int, seconds: int, cpu: str, connections: int | None = None
) -> dict[str, Any]:
    """bench/wsload (the WebSocket echo, or ``--tls-close``), pinned like wrk, reporting in
    wrk's format."""
    if not WSLOAD.exists():
        return {"error": "bench/.venv/bin/wsload is missing: run bash bench/setup.sh (needs cargo)"}
    argv = [
        "taskset",
        "-c",
        cpu,
        str(WSLOAD),
        *w.client.split()[1:],
        "--host",
        HOST,
        "--port",
        str(port),
        "--path",
        w.path,
        "-c",
        str(connections or w.connections),
        "-d",
        str(seconds),
        "--timeout",
        "5",
    ]
    if w.websocket:
        argv += ["--size", str(len(WS_MESSAGE))]
    return run_client("wsload", argv, seconds)


def run_load(
    w: Workload, port: int, seconds: int, cpu: str, connections: int | None = None
) -> dict[str, Any]:
    """The workload's load generator for ``seconds``: its totals, or {"error": why}."""
    run = run_wsload if w.client.startswith("wsload") else run_wrk
    return run(w, port, seconds, cpu, connections)


def run_client(name: str, argv: list[str], seconds: int) -> dict[str, Any]:
    """Run one load generator and read its BENCH_JSON line, plus its own CPU share."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{name} did not finish within {seconds + 30} s"}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"^BENCH_JSON (\{.*\})$", out.stdout, re.M)
    if not m:
        last = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"{name} failed (code {out.returncode}): {last[0]}"}
    result: dict[str, Any] = json.loads(m.group(1))
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
