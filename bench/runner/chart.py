"""ratios.png: every server's ratio to the baseline, grouped by workload."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from runner.aggregate import ratio
from runner.paths import BASELINE, OUT
from runner.servers import SERVERS
from runner.workloads import WORKLOADS

COLORS = {
    "ruvicorn": "#d62728",
    "ruvicorn-asyncio": "#ff9896",
    "uvicorn": "#7f7f7f",
    "uvicorn-asyncio": "#c7c7c7",
    "uvicorn-h11": "#bcbd22",
    "granian": "#1f77b4",
    "gunicorn": "#2ca02c",
    "floor": "#9467bd",
    "nginx": "#8c564b",
}
OTHER_COLOR = "#17becf"
#: The floors answer canned bytes, so on app-heavy workloads they tower over every ASGI
#: server: the axis stops just above the tallest ASGI server, and taller bars are cut
#: with their value printed.
FLOORS = {"floor", "nginx"}

Groups = list[tuple[str, list[str]]]  # per workload, the servers drawn, in order
Ratios = dict[tuple[str, str], float | None]


def chart_groups(
    all_aggs: dict[str, dict[str, dict[str, Any]]], orders: dict[str, list[str]]
) -> Groups:
    workloads = [w for w in all_aggs if all_aggs[w]]
    return [
        (w, [s for s in orders[w] if s in all_aggs[w] and "na" not in all_aggs[w][s]])
        for w in workloads
    ]


def chart_baseline(aggs: dict[str, dict[str, Any]], present: list[str]) -> str:
    """uvicorn where it served the workload; else the first peer that did (granian on
    HTTP/2, hypercorn on HTTP/3), so a workload uvicorn cannot serve still has bars."""
    if BASELINE in aggs and "error" not in aggs[BASELINE]:
        return BASELINE
    peers = [s for s in present if not s.startswith("ruvicorn") and s not in FLOORS]
    ok = [s for s in peers if "error" not in aggs[s]]
    return (ok or peers or [BASELINE])[0]


def chart_ratios(all_aggs: dict[str, dict[str, dict[str, Any]]], groups: Groups) -> Ratios:
    ratios: Ratios = {}
    for w, present in groups:
        base = chart_baseline(all_aggs[w], present)
        key = "mbps" if WORKLOADS[w].throughput else "rps"
        for name in present:
            ratios[(w, name)] = ratio(all_aggs[w], name, base, key)
    return ratios


def tick_label(w: str, aggs: dict[str, dict[str, Any]], present: list[str]) -> str:
    base = chart_baseline(aggs, present)
    return w if base == BASELINE else f"{w}\n(vs {base})"


def draw_bars(ax: Any, groups: Groups, ratios: Ratios, cap: float) -> list[float]:
    """One bar per server, groups side by side; the x of each group's middle."""
    x, ticks = 0.0, []
    for w, present in groups:
        ticks.append(x + (len(present) - 1) / 2)
        for name in present:
            r = ratios[(w, name)]
            color = COLORS.get(name, OTHER_COLOR)
            if r is None:
                ax.text(
                    x,
                    0.04,
                    "failed",
                    rotation=90,
                    fontsize=6,
                    ha="center",
                    va="bottom",
                    color=color,
                )
            else:
                shown = min(r, cap * 0.93)
                ax.bar(x, shown, 0.92, color=color, hatch="//" if shown < r else None)
                label = f"{r:.2f}" + ("↑" if shown < r else "")
                ax.text(x, shown, label, rotation=90, fontsize=6, ha="center", va="bottom")
            x += 1
        x += 1.2
    return ticks


def write_chart(
    all_aggs: dict[str, dict[str, dict[str, Any]]], orders: dict[str, list[str]], title: str
) -> Path | None:
    try:
        # Imported here: only the chart needs it, and only the bench venv has it.
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing: no chart (run bench/setup.sh)", file=sys.stderr)
        return None
    from matplotlib.patches import Patch

    groups = chart_groups(all_aggs, orders)
    servers: list[str] = []
    for w, _ in groups:
        servers += [s for s in orders[w] if s not in servers]
    servers = [s for s in servers if any(s in present for _, present in groups)]
    slots = sum(len(g) for _, g in groups) + 1.2 * len(groups)
    fig, ax = plt.subplots(figsize=(min(18, max(7, 0.3 * slots + 2)), 5.4), dpi=110)
    ratios = chart_ratios(all_aggs, groups)
    asgi = [r for (_, name), r in ratios.items() if r is not None and name not in FLOORS]
    cap = max([1.5, *asgi]) * 1.35
    ticks = draw_bars(ax, groups, ratios, cap)
    handles = [Patch(color=COLORS.get(n, OTHER_COLOR), label=SERVERS[n].label) for n in servers]
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(ticks, [tick_label(w, all_aggs[w], present) for w, present in groups])
    ax.set_ylabel(
        "ratio to uvicorn httptools+uvloop, or the peer named\n"
        "(req/s; MB/s for stream; msg/s for websocket)"
    )
    ax.set_title(title, fontsize=9)
    ax.legend(handles=handles, fontsize=7, ncol=3, loc="upper left")
    ax.set_ylim(0, cap)
    fig.tight_layout()
    path = OUT.results / "ratios.png"
    fig.savefig(path)
    plt.close(fig)
    return path
