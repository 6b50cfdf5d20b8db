"""The master's certificate check, in process: what it passes to the native check, and
what the master and a worker do with its answer (the native side is replaced here; the
real files are exercised in test_tls.py)."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from ruvicorn import _native, tls
from ruvicorn.config import Config
from ruvicorn.supervisor.master import Master

TLS_CONFIG = {
    "ssl_certfile": "chain.pem",
    "ssl_keyfile": "key.pem",
    "ssl_keyfile_password": "pw",
    "ssl_ca_certs": "ca.pem",
    "ssl_cert_reqs": 1,
    "ssl_ciphers": "TLS_AES_128_GCM_SHA256",
}


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Calls of the native check; a call whose certfile is 'bad.pem' fails in two lines."""
    calls: list[tuple[Any, ...]] = []

    def check_tls(*args: Any) -> None:
        calls.append(args)
        if args[0] == "bad.pem":
            raise ValueError("--ssl-certfile bad.pem: no certificate found\nsecond line")

    monkeypatch.setattr(_native, "check_tls", check_tls, raising=False)
    return calls


def test_no_check_without_tls(checked: list[tuple[Any, ...]]) -> None:
    assert tls.problem(Config()) is None
    assert checked == []


def test_the_check_gets_every_setting_in_the_contract_order(
    checked: list[tuple[Any, ...]],
) -> None:
    assert tls.problem(Config(**TLS_CONFIG)) is None
    assert checked == [("chain.pem", "key.pem", "pw", "ca.pem", 1, "TLS_AES_128_GCM_SHA256")]


def test_a_problem_is_one_line(checked: list[tuple[Any, ...]]) -> None:
    problem = tls.problem(Config(ssl_certfile="bad.pem"))
    assert problem == "TLS: --ssl-certfile bad.pem: no certificate found"


def close_fds(master: Master) -> None:
    master.signals.close()
    master.notifier.close()
    for fd in (master.alive_r, master.alive_w):
        os.close(fd)


def test_reload_with_broken_files_keeps_the_workers(
    checked: list[tuple[Any, ...]],
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    master = Master(Config(ssl_certfile="bad.pem"))
    request.addfinalizer(lambda: close_fds(master))
    rolls: list[str] = []
    master.pool.begin_reload = rolls.append  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="ruvicorn.error"):
        master.reload("SIGHUP")
    assert rolls == []
    [record] = [r for r in caplog.records if "Not reloading" in r.getMessage()]
    assert record.getMessage().startswith("Not reloading (SIGHUP): TLS: --ssl-certfile bad.pem")
    master.config = Config(ssl_certfile="good.pem")
    master.reload("SIGHUP")
    assert rolls == ["SIGHUP"]
