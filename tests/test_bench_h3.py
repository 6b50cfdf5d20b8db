"""bench/runner's HTTP/3 workloads: wsload's command line, its report, and the probe's verdict."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from runner import load, probes, report, servers, tls  # noqa: E402
from runner.workloads import WORKLOADS  # noqa: E402

LINE = (
    'BENCH_JSON {"requests": 11062, "duration_us": 2010209, "bytes": 46504648, "connect": 0, '
    '"read": 0, "write": 0, "status": 0, "timeout": 0, "p50_us": 9068, "p90_us": 31997, '
    '"p99_us": 75388, "max_us": 156771, "mean_us": 14421.0, "connections": 8, "size": 13, '
    '"body_bytes": 45309952}'
)


@pytest.fixture
def certs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Certificate paths for the command lines (no file is read)."""
    monkeypatch.setattr(tls.CERTS, "directory", tmp_path)
    return tmp_path


def test_wsload_h3_posts_the_echo_body_with_streams_in_flight() -> None:
    echo = load.wsload_argv(WORKLOADS["h3-echo"], 9000, ["-c", "64"])
    assert echo[1] == "--h3"
    assert echo[echo.index("--path") + 1] == "/echo"
    assert echo[echo.index("-m") + 1] == "10"
    assert echo[echo.index("--body") + 1] == "4096"
    assert echo[echo.index("--port") + 1] == "9000"
    plain = load.wsload_argv(WORKLOADS["h3-plaintext"], 9000, [])
    assert "--body" not in plain
    assert plain[plain.index("--path") + 1] == "/"
    ws = load.wsload_argv(WORKLOADS["websocket"], 9000, [])
    assert "-m" not in ws and ws[ws.index("--size") + 1] == "13"


def test_the_h3_report_reads_as_wrk_totals_with_the_body_size() -> None:
    result = load.bench_json("wsload: first error: x\n" + LINE + "\n")
    assert result is not None
    assert (result["requests"], result["body_bytes"], result["p99_us"]) == (
        11062,
        45309952,
        75388,
    )


def wsload_report(**fields: int) -> dict[str, Any]:
    base = {"requests": 1, "connect": 0, "status": 0, "body_bytes": 13}
    return {**base, **fields}


def test_the_h3_probe_wants_one_2xx_answer_of_the_right_size() -> None:
    plain, echo = WORKLOADS["h3-plaintext"], WORKLOADS["h3-echo"]
    assert probes.read_h3_probe(plain, wsload_report(), "") is None
    assert probes.read_h3_probe(echo, wsload_report(body_bytes=4096), "") is None
    wrong = probes.read_h3_probe(echo, wsload_report(), "")
    assert wrong == "h3 probe POST /echo: expected a 4096-byte body, got 13"
    failed = probes.read_h3_probe(plain, wsload_report(status=1), "wsload: first error: x\n")
    assert failed == "h3 probe GET /: no 2xx answer (wsload: first error: x)"
    broken = probes.read_h3_probe(plain, None, "wsload: --port is required\n")
    assert broken == "h3 probe GET /: wsload failed: wsload: --port is required"


def test_an_unanswered_handshake_means_not_listening_yet() -> None:
    with pytest.raises(ConnectionRefusedError):
        probes.read_h3_probe(WORKLOADS["h3-plaintext"], wsload_report(requests=0, connect=1), "")


@pytest.mark.usefixtures("certs")
def test_ruvicorn_and_hypercorn_serve_quic_on_the_h3_workloads() -> None:
    assert [n for n, s in servers.SERVERS.items() if s.chosen(WORKLOADS["h3-echo"])] == [
        "ruvicorn",
        "hypercorn",
    ]
    ruvicorn = servers.SERVERS["ruvicorn"]
    h3 = ruvicorn.start(WORKLOADS["h3-plaintext"], 9000)
    h2 = ruvicorn.start(WORKLOADS["h2-tls-plaintext"], 9000)
    assert h3 is not None and h2 is not None
    assert "--http3" in h3.argv and "--http3" not in h2.argv
    hypercorn = servers.SERVERS["hypercorn"]
    launch = hypercorn.start(WORKLOADS["h3-echo"], 9000)
    assert launch is not None
    argv = launch.argv
    assert argv[argv.index("--quic-bind") + 1] == "127.0.0.1:9000"
    assert argv[argv.index("--keyfile") + 1].endswith("key.pem")
    assert argv[argv.index("--certfile") + 1].endswith("cert.pem")
    assert argv[-1] == str(BENCH / "apps" / "benchapp:echo")
    # hypercorn is measured on HTTP/2 and HTTP/3 only; QUIC only on the HTTP/3 ones
    assert hypercorn.workloads == (
        "h2-plaintext",
        "h2-echo",
        "h2-tls-plaintext",
        "h3-plaintext",
        "h3-echo",
    )
    h2c = hypercorn.start(WORKLOADS["h2-plaintext"], 9000)
    assert h2c is not None and "--quic-bind" not in h2c.argv and "--certfile" not in h2c.argv


def test_the_h3_section_says_how_it_was_loaded() -> None:
    section = report.workload_section(WORKLOADS["h3-echo"], {}, [])
    assert section[2].startswith(
        "64 QUIC connections x 10 concurrent HTTP/3 streams; load from bench/wsload --h3"
    )
    assert "TLS 1.3" in section[2]
