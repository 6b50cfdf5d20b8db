"""What a person sees when the app cannot start: one line and the right exit code, before
any "Listening on" line (the master never imports the app unless --preload)."""

from __future__ import annotations

import pytest
from rawhttp import wait_for
from realserver import ServerProcess

from ruvicorn import exitcodes

BOUND = 30.0


def run_to_exit(server_factory, app: str, *args: str) -> tuple[int, list[str]]:
    srv: ServerProcess = server_factory(app, *args, start=False)
    srv.expect_exit = None
    srv.start(wait=False)
    code = srv.wait_exit(BOUND)
    return code, srv.stderr().strip().splitlines()


@pytest.mark.parametrize("workers", ["1", "3"])
def test_missing_module_is_one_line(server_factory, workers: str) -> None:
    code, lines = run_to_exit(server_factory, "nosuch_module_xyz:app", "--workers", workers)
    assert code == exitcodes.APP_LOAD_FAILED
    assert len(lines) == 1, lines
    assert (
        "[ERROR] Could not load the app: could not import module 'nosuch_module_xyz'" in (lines[0])
    )


def test_missing_attribute_is_one_line(server_factory) -> None:
    code, lines = run_to_exit(server_factory, "testapp:nosuch_attr")
    assert code == exitcodes.APP_LOAD_FAILED
    assert len(lines) == 1, lines
    assert "has no attribute 'nosuch_attr'" in lines[0]


@pytest.mark.parametrize("app", ["hello", "testapp:", "test app:app"])
def test_bad_app_reference_is_a_usage_error(server_factory, app: str) -> None:
    code, lines = run_to_exit(server_factory, app)
    assert code == exitcodes.USAGE
    assert lines == [
        f"Error: app {app!r} is not in module:attribute form (e.g. 'main:app' or 'pkg.mod:obj.app')"
    ]


def test_out_of_range_port_is_a_usage_error(server_factory) -> None:
    srv: ServerProcess = server_factory("testapp:app", start=False, port=65536)
    srv.expect_exit = None
    srv.start(wait=False)
    assert srv.wait_exit(BOUND) == exitcodes.USAGE
    assert srv.stderr().strip().splitlines() == ["Error: --port must be at most 65535, not 65536"]


def test_good_start_says_where_it_listens(server_factory) -> None:
    srv: ServerProcess = server_factory("testapp:app", "--workers", "2")
    srv.assert_serving()
    text = wait_for(lambda: "Ready: 2 workers serving" in srv.stderr() and srv.stderr())
    assert f"Listening on http://127.0.0.1:{srv.port}" in text
    assert "with 2 workers" in text and "1 workers" not in text
