"""bench/runner's TLS and access-log workloads: which servers run them and how they are
started, the run's certificates, and the targets that compare across workloads or on CPU."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from runner import servers, targets, tls  # noqa: E402
from runner.measure import check_access_log  # noqa: E402
from runner.running import StartFailed  # noqa: E402
from runner.workloads import WORKLOADS  # noqa: E402

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


@pytest.fixture
def certs() -> Any:
    tls.CERTS.mint()
    yield tls.CERTS
    tls.CERTS.remove()


def test_a_server_without_tls_is_an_na_row_on_the_tls_workloads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(servers, "serves_tls", lambda exe, flag: exe != "ruvicorn")
    ruvicorn, uvicorn, gunicorn = (servers.SERVERS[n] for n in ("ruvicorn", "uvicorn", "gunicorn"))
    for name in ("tls-plaintext", "tls-close"):
        w = WORKLOADS[name]
        why = ruvicorn.na_reason(w)
        assert why is not None and "--ssl-certfile" in why
        assert not ruvicorn.applies(w)
        assert uvicorn.applies(w) and uvicorn.na_reason(w) is None
        # Not compared on TLS at all: neither measured nor listed as n/a.
        assert not gunicorn.applies(w) and gunicorn.na_reason(w) is None
    assert ruvicorn.applies(WORKLOADS["plaintext"])
    assert servers.SERVERS["uvicorn-asyncio"].applies(WORKLOADS["tls-plaintext"])
    assert not servers.SERVERS["uvicorn-asyncio"].applies(WORKLOADS["tls-close"])


@needs_openssl
def test_certificates_are_ecdsa_p256_signed_by_the_ca_and_removed(certs: Any) -> None:
    directory = certs.directory
    text = subprocess.run(
        ["openssl", "x509", "-in", str(certs.cert), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "prime256v1" in text or "P-256" in text
    assert certs.key.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certs.cert, certs.key)  # raises when the key does not match
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(certs.ca), str(certs.cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    certs.remove()
    assert not directory.exists()


@needs_openssl
def test_tls_servers_get_the_certificates_under_their_own_option_names(certs: Any) -> None:
    w = WORKLOADS["tls-plaintext"]
    for name, flag in (("uvicorn", "--ssl-certfile"), ("granian", "--ssl-certificate")):
        launch = servers.SERVERS[name].start(w, 18080)
        assert launch is not None
        at = launch.argv.index(flag)
        assert launch.argv[at + 1] == str(certs.cert)
        assert launch.argv[launch.argv.index("--ssl-keyfile") + 1] == str(certs.key)
    cleartext = servers.SERVERS["uvicorn"].start(WORKLOADS["plaintext"], 18080)
    assert cleartext is not None and "--ssl-certfile" not in cleartext.argv


def test_access_log_workload_writes_each_server_log_to_a_file() -> None:
    w = WORKLOADS["plaintext-accesslog"]
    assert [s for s in servers.SERVERS.values() if s.applies(w)] == [
        servers.SERVERS["ruvicorn"],
        servers.SERVERS["uvicorn"],
    ]
    ru = servers.SERVERS["ruvicorn"].start(w, 18080)
    uv = servers.SERVERS["uvicorn"].start(w, 18080)
    assert ru is not None and uv is not None
    try:
        assert ru.access_log is not None and uv.access_log is not None
        assert "--no-access-log" not in ru.argv and "--no-access-log" not in uv.argv
        assert ru.argv[ru.argv.index("--access-logfile") + 1] == str(ru.access_log)
        assert ru.argv[ru.argv.index("--log-level") + 1] == "info"
        config = json.loads(Path(uv.argv[uv.argv.index("--log-config") + 1]).read_text())
        assert config["handlers"]["access"]["filename"] == str(uv.access_log)
        assert config["loggers"]["uvicorn.access"]["handlers"] == ["access"]
    finally:
        for launch in (ru, uv):
            assert launch.cleanup is not None
            launch.cleanup()
    assert not ru.access_log.parent.exists() and not uv.access_log.parent.exists()
    off = servers.SERVERS["ruvicorn"].start(WORKLOADS["plaintext"], 18080)
    assert off is not None and off.access_log is None and "--no-access-log" in off.argv


def test_a_log_with_fewer_lines_than_requests_fails_the_round(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("GET /\n" * 10)
    row: dict[str, Any] = {"requests": 10}
    check_access_log(log, row)
    assert row["access_log_lines"] == 10
    with pytest.raises(StartFailed, match="has 10 lines for 11 requests"):
        check_access_log(log, {"requests": 11})
    with pytest.raises(StartFailed, match="has 0 lines"):
        check_access_log(tmp_path / "missing.log", {"requests": 1})


def test_targets_across_workloads_and_on_cpu() -> None:
    aggs = {
        "plaintext": {"ruvicorn": {"rps": 100.0, "cpu_us_per_req": 10.0}},
        "tls-plaintext": {"ruvicorn": {"rps": 90.0, "cpu_us_per_req": 11.0}},
        "tls-close": {
            "ruvicorn": {"rps": 50.0, "cpu_us_per_req": 200.0},
            "granian": {"rps": 50.0, "cpu_us_per_req": 250.0},
            "uvicorn": {"rps": 40.0, "cpu_us_per_req": 500.0},
        },
    }
    rows = {
        (t.workload, t.reference, t.ref_workload): targets.target_row(t, aggs)
        for t in targets.TARGETS
    }
    own = rows[("tls-plaintext", "ruvicorn", "plaintext")]
    assert own is not None and "| 0.90x | yes |" in own
    vs_granian = rows[("tls-close", "granian", None)]
    assert vs_granian is not None and "| 1.25x | yes |" in vs_granian
    vs_uvicorn = rows[("tls-close", "uvicorn", None)]
    assert vs_uvicorn is not None and "| 2.50x | yes |" in vs_uvicorn
    assert rows[("echo", "uvicorn", None)] is None  # not measured: no row
