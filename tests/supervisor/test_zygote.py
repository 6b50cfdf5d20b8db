"""--preload: a zygote imports the app once, workers are forked from it and supervised by
the master; SIGHUP and --reload load new code in a new zygote."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from rawhttp import wait_for
from sup_helpers import Load, Server

pytestmark = pytest.mark.timeout(240)

MIXED = {"close": 4, "pool": 2, "eager": 2}


def _write_app(path: Path, version: str, extra: str = "") -> None:
    """An app answering ``VERSION PID``; its import appends ``import PID`` to the events."""
    path.write_text(
        "import os\n"
        f"{extra}\n"
        "def _record(event):\n"
        "    with open(os.environ['RUVICORN_TEST_EVENTS'], 'a') as f:\n"
        "        f.write(f'{event} {os.getpid()}\\n')\n"
        "_record('import')\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'lifespan':\n"
        "        while True:\n"
        "            message = await receive()\n"
        "            if message['type'] == 'lifespan.startup':\n"
        "                _record('startup')\n"
        "                await send({'type': 'lifespan.startup.complete'})\n"
        "            else:\n"
        "                await send({'type': 'lifespan.shutdown.complete'})\n"
        "                return\n"
        f"    body = f'{version} {{os.getpid()}}'.encode()\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': body})\n"
    )


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    path = tmp_path / "code"
    path.mkdir()
    _write_app(path / "versioned.py", "one")
    return path


def _start(start: Callable[..., Server], code_dir: Path, *args: str) -> Server:
    server = start(
        "versioned:app",
        "--preload",
        "--app-dir",
        str(code_dir),
        *args,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )
    server.wait_ready()
    return server


def _importers(server: Server) -> list[int]:
    return [pid for event, pid in server.events() if event == "import"]


def _answer(server: Server) -> tuple[str, int]:
    status, body = server.get("/")
    assert status == 200
    version, pid = body.split()
    return version, int(pid)


def _versions(load: Load) -> list[str]:
    return [body.split()[0] for body in load.bodies]


def test_workers_are_forked_from_one_zygote_and_supervised_by_the_master(
    start: Callable[..., Server], code_dir: Path
) -> None:
    server = _start(start, code_dir, "--workers", "2")
    (zygote,) = _importers(server)  # One import, in neither the master nor a worker.
    workers = server.workers()
    assert len(workers) == 2 and zygote not in workers and zygote != server.pid
    assert psutil.Process(zygote).ppid() == server.pid
    assert all(psutil.Process(pid).ppid() == server.pid for pid in workers)
    # Lifespan runs in each worker, not in the zygote.
    assert {pid for event, pid in server.events() if event == "startup"} == workers
    assert _answer(server)[1] in workers

    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    server.wait_log(rf"Worker {victim} died unexpectedly")
    wait_for(lambda: len(server.workers() - {victim}) == 2, 30, "a replacement")
    (new,) = server.workers() - workers
    assert psutil.Process(new).ppid() == server.pid
    assert _importers(server) == [zygote]  # Forked, not imported again.
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
    assert not psutil.pid_exists(zygote) or psutil.Process(zygote).status() == "zombie"


def test_workers_beyond_the_first_count_serve_their_own_new_sockets(
    start: Callable[..., Server], code_dir: Path
) -> None:
    """SIGTTIN past the initial count binds a slot socket the zygote never had: the fork
    request carries it to the new worker. SIGTTOU then leaves it to the other workers."""
    server = _start(start, code_dir, "--workers", "2", "--socket-per-worker", "on")
    server.signal(signal.SIGTTIN)
    server.wait_log(r"Worker \d+ ready", count=3)
    workers = server.workers()
    load = Load(server, {"close": 4}, max_requests=3000, max_seconds=60)
    try:
        wait_for(
            lambda: {int(body.split()[1]) for body in list(load.bodies)} == workers,
            50,
            "every worker answering",
        )
        server.signal(signal.SIGTTOU)
        server.wait_log(r"Worker \d+ stopped \(exit code 0\)")
        load.wait_count(load.ok + 300)
    finally:
        load.stop()
    assert load.failures == []


def test_sighup_serves_new_code_from_a_new_zygote_dropping_nothing(
    start: Callable[..., Server], code_dir: Path
) -> None:
    server = _start(start, code_dir, "--workers", "2")
    first = server.workers()
    load = Load(server, MIXED, max_requests=1_000_000, max_seconds=120)
    try:
        load.wait_count(200)
        for number, version in enumerate(["two", "three", "four"], start=1):
            _write_app(code_dir / "versioned.py", version)
            server.signal(signal.SIGHUP)
            server.wait_log("Reload complete", count=number, timeout=60)
            load.wait_count(load.ok + len(load.failures) + 200)
    finally:
        load.stop()
    assert load.failures == []
    versions = _versions(load)
    assert versions[0] == "one" and versions[-1] == "four"
    assert {"two", "three"} <= set(versions)
    # Retired workers may still be finishing their last requests when the reload is logged.
    wait_for(lambda: len(server.workers()) == 2, 30, "retired workers gone")
    assert server.workers().isdisjoint(first)
    assert len(_importers(server)) == 4  # One import per zygote generation.
    assert _answer(server)[0] == "four"


def test_a_broken_new_import_keeps_the_old_code_serving(
    start: Callable[..., Server], code_dir: Path
) -> None:
    server = _start(start, code_dir, "--workers", "2")
    workers = server.workers()
    (code_dir / "versioned.py").write_text("raise RuntimeError('not today')\n")
    server.signal(signal.SIGHUP)
    server.wait_log(r"Reload \(SIGHUP\) failed: could not load the app: .*not today")
    assert server.count("not today") == 1  # One line says why.
    assert _answer(server)[0] == "one"
    assert server.workers() == workers
    # The next reload with fixed code goes through.
    _write_app(code_dir / "versioned.py", "three")
    server.signal(signal.SIGHUP)
    server.wait_log("Reload complete", timeout=60)
    # The line comes as the last old worker is told to stop; until it has, it may still
    # accept a connection and answer with the old code.
    wait_for(
        lambda: len(server.workers()) == 2 and server.workers().isdisjoint(workers),
        30,
        "the old workers to exit",
    )
    assert _answer(server)[0] == "three"


def test_killing_the_zygote_keeps_workers_and_respawns_from_a_new_one(
    start: Callable[..., Server], code_dir: Path
) -> None:
    server = _start(start, code_dir, "--workers", "2")
    (zygote,) = _importers(server)
    workers = server.workers()
    os.kill(zygote, signal.SIGKILL)
    server.wait_log(rf"Zygote {zygote} died \(killed by SIGKILL\)")
    assert server.workers() == workers
    assert _answer(server)[1] in workers
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    server.wait_log(r"Zygote \d+ loaded the app", count=2)
    wait_for(lambda: len(server.workers() - {victim}) == 2, 30, "a replacement")
    (new,) = server.workers() - workers
    assert psutil.Process(new).ppid() == server.pid
    assert len(_importers(server)) == 2
    wait_for(lambda: new in {_answer(server)[1] for _ in range(8)}, 30, "the new worker")


def test_reload_with_preload_picks_up_changes(start: Callable[..., Server], code_dir: Path) -> None:
    server = _start(start, code_dir, "--workers", "1", "--reload", "--reload-dir", str(code_dir))
    server.wait_watching()
    _write_app(code_dir / "versioned.py", "edited")
    wait_for(lambda: _answer(server)[0] == "edited", 60, "the edited code")
    server.wait_log("Reload complete", timeout=60)


def test_a_thread_started_at_import_is_reported(
    start: Callable[..., Server], code_dir: Path
) -> None:
    extra = (
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()"
    )
    _write_app(code_dir / "versioned.py", "threaded", extra=extra)
    server = _start(start, code_dir, "--workers", "1")
    server.wait_log(r"Importing the app started 1 thread \(Thread-1")
    assert server.count("Importing the app started") == 1
    assert _answer(server)[0] == "threaded"


def test_an_app_that_cannot_load_stops_the_server_with_one_line(
    start: Callable[..., Server],
) -> None:
    server = start("broken_import:app", "--preload", "--workers", "2")
    assert server.wait_exit(30) == 3
    log = server.log()
    assert log.count("Could not load the app: ") == 1
    assert "Listening on" not in log and "Started worker" not in log


def test_an_import_that_never_finishes_is_given_up(
    start: Callable[..., Server], code_dir: Path
) -> None:
    _write_app(code_dir / "versioned.py", "slow", extra="import time\ntime.sleep(60)")
    server = start(
        "versioned:app",
        "--preload",
        "--app-dir",
        str(code_dir),
        "--timeout-worker-ready",
        "1",
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert server.wait_exit(30) == 1
    assert server.count(r"Zygote \d+ not ready within --timeout-worker-ready 1 s") == 1
