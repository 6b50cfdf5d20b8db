"""bench/runner's HTTP/2 workloads: h2load's command line and how its report is read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from runner import chart, load, servers  # noqa: E402
from runner.paths import OUT  # noqa: E402
from runner.workloads import WORKLOADS  # noqa: E402

REPORT = "\n".join(
    [
        "finished in 3.00s, 46256.67 req/s, 1.95MB/s",
        "requests: 138770 total, 138770 started, 138770 done, 138768 succeeded, 2 failed, "
        "2 errored, 0 timeout",
        "status codes: 138760 2xx, 0 3xx, 8 4xx, 0 5xx",
        "traffic: 5.84MB (6123456) total, 1.06MB (1111111) headers (space savings 90.12%), "
        "1.76MB (1804010) data",
        "",
    ]
)


def test_h2load_report_reads_as_wrk_totals(tmp_path: Path) -> None:
    log = tmp_path / "h2load.tsv"
    rows = [f"1700000000{i:06d}\t200\t{i * 10}" for i in range(1, 101)]
    log.write_text("\n".join([*rows, "1700000000000999\t-1\t5"]) + "\n")
    result = load.read_h2load(REPORT, log)
    assert result is not None
    assert result["requests"] == 138_760
    assert result["duration_us"] == 3_000_000
    assert result["bytes"] == 6_123_456
    assert (result["read"], result["status"], result["timeout"]) == (2, 8, 0)
    # Failed streams (status -1) are no latency sample.
    assert (result["p50_us"], result["p99_us"], result["max_us"]) == (510, 1000, 1000)


def test_an_unreadable_h2load_report_is_none(tmp_path: Path) -> None:
    assert load.read_h2load("h2load: connect refused\n", tmp_path / "missing.tsv") is None


def test_h2load_over_tls_offers_h2_only_and_posts_the_echo_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(OUT, "results", tmp_path)
    (tmp_path / "raw").mkdir()
    tls_argv = load.h2load_argv(WORKLOADS["h2-tls-plaintext"], 9000, ["-n", "1"])
    assert tls_argv[tls_argv.index("--npn-list") + 1] == "h2"
    assert tls_argv[-1] == "https://127.0.0.1:9000/"
    echo = load.h2load_argv(WORKLOADS["h2-echo"], 9000, [])
    body = Path(echo[echo.index("-d") + 1])
    assert body.stat().st_size == 4096
    assert "--npn-list" not in echo
    assert echo[echo.index("-m") + 1] == "10"


def test_granian_serves_only_http2_on_the_h2_workloads() -> None:
    granian = servers.SERVERS["granian"]
    h2 = granian.start(WORKLOADS["h2-plaintext"], 9000)
    h1 = granian.start(WORKLOADS["plaintext"], 9000)
    assert h2 is not None and h1 is not None
    assert h2.argv[h2.argv.index("--http") + 1] == "2"
    assert "--http" not in h1.argv
    assert [n for n, s in servers.SERVERS.items() if s.chosen(WORKLOADS["h2-echo"])] == [
        "ruvicorn",
        "granian",
        "hypercorn",
    ]


def test_the_chart_compares_a_workload_uvicorn_cannot_serve_with_its_first_peer() -> None:
    served = {"rps": 1000.0}
    h2 = {"ruvicorn": {"rps": 3000.0}, "granian": served, "hypercorn": {"rps": 100.0}}
    present = ["ruvicorn", "granian", "hypercorn"]
    assert chart.chart_baseline(h2, present) == "granian"
    ratios = chart.chart_ratios({"h2-plaintext": h2}, [("h2-plaintext", present)])
    assert ratios[("h2-plaintext", "ruvicorn")] == 3.0
    assert chart.tick_label("h2-plaintext", h2, present) == "h2-plaintext\n(vs granian)"
    # A peer that failed is no baseline; uvicorn stays the baseline wherever it served.
    failed = {**h2, "granian": {"error": "down"}}
    assert chart.chart_baseline(failed, present) == "hypercorn"
    h1 = {"ruvicorn": {"rps": 3000.0}, "uvicorn": served, "granian": served}
    assert chart.chart_baseline(h1, ["ruvicorn", "uvicorn", "granian"]) == "uvicorn"
