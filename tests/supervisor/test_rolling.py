"""Rolling restarts (SIGHUP and --reload) under load: zero failed requests."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sup_helpers import Load, Server, wait_for

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_sighup_under_load_drops_nothing(start: Callable[..., Server], loop: str) -> None:
    server = start("basic:app", "--workers", "2", "--loop", loop)
    server.wait_ready()
    first = server.workers()
    load = Load(server, threads=4, max_requests=2400, max_seconds=150)
    try:
        load.wait_count(200)
        for reload_number in range(1, 4):
            server.signal(signal.SIGHUP)
            server.wait_log("Reload complete", count=reload_number, timeout=60)
            load.wait_count(200 + 500 * reload_number)
        load.wait_count(2000, timeout=120)
    finally:
        load.stop()
    assert load.failures == []
    assert load.ok >= 2000
    server.wait_log(r"Worker \d+ stopped \(exit code 0\)", count=6, timeout=60)
    last = server.workers()
    assert len(last) == 2 and last.isdisjoint(first)
    served_by = {int(body) for body in load.bodies}
    # Workers of the first and of later generations both served during the rolls.
    assert served_by & first and served_by - first
    server.signal(signal.SIGTERM)
    assert server.wait_exit(60) == 0
    events = server.events()
    started = [pid for event, pid in events if event == "startup"]
    stopped = [pid for event, pid in events if event == "shutdown"]
    assert len(started) == 8 and len(set(started)) == 8  # 2 + 2 per reload, one each.
    assert sorted(started) == sorted(stopped)


def _write_app(path: Path, body: str) -> None:
    path.write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        f"    await send({{'type': 'http.response.body', 'body': {body!r}}})\n"
    )


def test_reload_serves_new_code_and_survives_a_broken_change(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    module = code_dir / "watched.py"
    _write_app(module, b"version one")
    server = start(
        "watched:app",
        "--workers",
        "2",
        "--reload-dir",
        str(code_dir),
        "--app-dir",
        str(code_dir),
        "--lifespan",
        "off",
        # The environment form of --reload works whether or not the flag takes a value.
        env={"PYTHONDONTWRITEBYTECODE": "1", "RUVICORN_RELOAD": "1"},
    )
    server.wait_ready()
    server.wait_log("Watching")
    time.sleep(1.0)  # Let the watcher start before the first edit (not an assertion).
    load = Load(server, threads=2, max_requests=20000, max_seconds=150)
    try:
        load.wait_count(50)
        _write_app(module, b"version two, longer")
        wait_for(lambda: server.get("/")[1] == "version two, longer", 60, "new code")
        server.wait_log("Reload complete", timeout=60)

        module.write_text("def app(:\n")  # A syntax error.
        server.wait_log("replacement was aborted", timeout=60)
        assert server.get("/") == (200, "version two, longer")

        _write_app(module, b"version three")
        wait_for(lambda: server.get("/")[1] == "version three", 60, "fixed code")
        server.wait_log("Reload complete", count=2, timeout=60)
    finally:
        load.stop()
    assert load.failures == []
    # Retired workers may still be finishing their last requests when the reload is logged.
    wait_for(lambda: len(server.workers()) == 2, 30, "retired workers gone")
    assert "SyntaxError" in server.log()
