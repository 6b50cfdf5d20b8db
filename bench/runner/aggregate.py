"""Rounds folded into one row per server: medians, spreads, ratios."""

from __future__ import annotations

import statistics
from typing import Any


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if "error" not in r]
    agg: dict[str, Any] = {"rounds": len(rows), "ok_rounds": len(ok)}
    if not ok:
        agg["error"] = rows[-1].get("error", "no run") if rows else "no run"
        return agg

    def med(key: str) -> float | None:
        vals = [r[key] for r in ok if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    rps = [r["rps"] for r in ok]
    mbps = [r["mbps"] for r in ok]
    agg.update(
        rps=statistics.median(rps),
        rps_min=min(rps),
        rps_max=max(rps),
        mbps=statistics.median(mbps),
        mbps_min=min(mbps),
        mbps_max=max(mbps),
        p50_us=med("p50_us"),
        p99_us=med("p99_us"),
        cpu_us_per_req=med("cpu_us_per_req"),
        rss_kib=med("rss_kib"),
        errors=sum(r["errors"] for r in ok),
        requests=sum(r["requests"] for r in ok),
        client_cpu_share=med("client_cpu_share"),
        other_load=max((r.get("other_load", 0.0) for r in ok), default=0.0),
        client_other_load=max((r.get("client_other_load", 0.0) for r in ok), default=0.0),
        server_busy=med("server_busy"),
    )
    if len(ok) < len(rows):
        agg["note"] = f"{len(rows) - len(ok)} round(s) failed: {rows[-1].get('error', '')}"
    return agg


def ratio(aggs: dict[str, dict[str, Any]], name: str, base: str, key: str) -> float | None:
    a, b = aggs.get(name, {}).get(key), aggs.get(base, {}).get(key)
    return a / b if a and b else None


def cpu_ratio(aggs: dict[str, dict[str, Any]], name: str, base: str) -> float | None:
    """How many times less CPU per request than ``base``: the ratio a quiet machine would
    show for two servers that both saturate their core, and one that noise hardly moves."""
    return ratio(aggs, base, name, "cpu_us_per_req")
