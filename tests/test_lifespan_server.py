"""Lifespan through a real server process: startup, state in requests, shutdown, failures."""

from __future__ import annotations

import signal

import pytest
from realserver import ServerProcess

from ruvicorn import exitcodes

BOUND = 30.0


def error_lines(server: ServerProcess) -> list[str]:
    return [line for line in server.stderr().splitlines() if "[ERROR]" in line]


def assert_traceback_then_summary(server: ServerProcess, *needles: str) -> None:
    """A startup failure is the app's bug: its traceback is shown by default, and the last
    line of the output is the one-line summary."""
    text = server.stderr()
    before, _, _ = text.rpartition("Application startup failed")
    assert "Traceback (most recent call last)" in before, text
    last = text.strip().splitlines()[-1]
    assert "[ERROR] Application startup failed: " in last, text
    assert all(n in last for n in needles), text


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_startup_state_and_shutdown(server_factory, mode: str) -> None:
    srv: ServerProcess = server_factory("lifespan_apps:ok_app", "--lifespan", mode)
    resp = srv.get("/")
    assert resp.status == 200
    assert resp.json()["state"] == {"pool": "connected", "counter": 41}
    assert srv.stop(signal.SIGTERM) == 0
    events = [r["event"] for r in srv.records()]
    assert events == ["startup", "request", "shutdown"]


def test_lifespan_off_never_runs_lifespan(server_factory) -> None:
    srv: ServerProcess = server_factory("lifespan_apps:ok_app", "--lifespan", "off")
    resp = srv.get("/")
    assert resp.status == 200
    assert resp.json()["state"] == {}
    assert srv.stop() == 0
    assert [r["event"] for r in srv.records()] == ["request"]


def test_startup_failure_shows_the_traceback_then_one_line(server_factory) -> None:
    srv: ServerProcess = server_factory("lifespan_apps:failing_app", start=False)
    srv.expect_exit = None
    srv.start(wait=False)
    code = srv.wait_exit(BOUND)
    assert code != 0
    assert_traceback_then_summary(srv, "database unreachable")
    assert not [r for r in srv.records() if r.get("event") == "request"]


def test_startup_failure_exit_code_is_lifespan_failed(server_factory) -> None:

    srv: ServerProcess = server_factory("lifespan_apps:failing_app", start=False)
    srv.expect_exit = None
    srv.start(wait=False)
    assert srv.wait_exit(BOUND) == exitcodes.LIFESPAN_FAILED


def test_on_mode_app_raising_in_startup_fails(server_factory) -> None:
    srv: ServerProcess = server_factory(
        "lifespan_apps:raising_startup_app", "--lifespan", "on", start=False
    )
    srv.expect_exit = None
    srv.start(wait=False)
    assert srv.wait_exit(BOUND) != 0
    assert_traceback_then_summary(srv, "cache warmup exploded")


def test_on_mode_app_without_lifespan_fails(server_factory) -> None:
    srv: ServerProcess = server_factory(
        "lifespan_apps:raising_app", "--lifespan", "on", start=False
    )
    srv.expect_exit = None
    srv.start(wait=False)
    assert srv.wait_exit(BOUND) == exitcodes.LIFESPAN_FAILED
    assert_traceback_then_summary(srv, "lifespan is not for me")


def test_auto_mode_app_without_lifespan_serves(server_factory) -> None:
    srv: ServerProcess = server_factory("lifespan_apps:raising_app", "--lifespan", "auto")
    resp = srv.get("/")
    assert resp.status == 200
    assert srv.stop() == 0
    assert error_lines(srv) == []
