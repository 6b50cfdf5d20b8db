"""Rolling restarts (SIGHUP and --reload) under load: zero failed requests."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from rawhttp import request, wait_for
from sup_helpers import Load, Server
from tlscerts import TLSCerts, over_tls

pytestmark = pytest.mark.timeout(240)


#: Keep-alive clients of both kinds beside one-shot ones: a retiring worker must answer a
#: request that reaches an idle keep-alive connection (with ``connection: close``) rather
#: than close the connection under it.
MIXED = {"close": 8, "pool": 4, "eager": 4}
RELOADS = 10


def _reload_under(server: Server, load: Load, reloads: int, requests_between: int) -> None:
    """SIGHUP ``reloads`` times, each once the last reload completed and the load made
    progress; then stop the load and require that no request failed."""
    try:
        load.wait_count(requests_between)
        for reload_number in range(1, reloads + 1):
            before = load.ok + len(load.failures)
            server.signal(signal.SIGHUP)
            server.wait_log("Reload complete", count=reload_number, timeout=60)
            load.wait_count(before + requests_between)
    finally:
        load.stop()
    assert load.failures == []


@pytest.mark.parametrize(
    ("loop", "workers", "clients", "sockets"),
    [
        ("uvloop", 2, MIXED, "off"),
        ("asyncio", 2, MIXED, "on"),
        # Every worker's socket of its own: a keep-alive pool, and a new connection per
        # request (queued on a retiring worker's slot socket until its replacement serves it).
        ("uvloop", 4, {"pool": 8}, "on"),
        ("uvloop", 4, {"close": 8}, "on"),
    ],
)
def test_sighup_under_load_drops_nothing(
    start: Callable[..., Server],
    loop: str,
    workers: int,
    clients: dict[str, int],
    sockets: str,
) -> None:
    server = start(
        "basic:app", "--workers", str(workers), "--loop", loop, "--socket-per-worker", sockets
    )
    server.wait_ready()
    first = server.workers()
    load = Load(server, clients, max_requests=200000, max_seconds=150)
    _reload_under(server, load, RELOADS, requests_between=200)
    server.wait_log(r"Worker \d+ stopped \(exit code 0\)", count=workers * RELOADS, timeout=60)
    last = server.workers()
    assert len(last) == workers and last.isdisjoint(first)
    served_by = set(load.served_by())
    # Workers of the first and of later generations both served during the rolls.
    assert served_by & first and served_by - first
    server.signal(signal.SIGTERM)
    assert server.wait_exit(60) == 0
    events = server.events()
    started = [pid for event, pid in events if event == "startup"]
    stopped = [pid for event, pid in events if event == "shutdown"]
    assert len(started) == workers + workers * RELOADS and len(set(started)) == len(started)
    assert sorted(started) == sorted(stopped)


def test_sighup_answers_keep_alive_clients_idle_between_requests(
    start: Callable[..., Server],
) -> None:
    """Connections idle when the drain starts: the next request, 0.3 s later, arrives while
    the retiring worker lingers and is answered with connection: close."""
    server = start("basic:app", "--workers", "2")
    server.wait_ready()
    load = Load(server, {"pool": 4, "eager": 4}, max_requests=20000, max_seconds=90, interval=0.3)
    _reload_under(server, load, 3, requests_between=40)
    assert len(load.served_by()) >= 4


@over_tls
def test_sighup_answers_pipelined_requests_before_closing(
    start: Callable[..., Server], tls: TLSCerts | None
) -> None:
    server = start("basic:app", "--workers", "1", tls=tls)
    server.wait_ready()
    (old,) = server.workers()
    with server.client(30) as conn:
        conn.send(request("GET", "/sleep?s=3") + request("GET", "/") + request("GET", "/"))
        wait_for(lambda: ("request/sleep", old) in server.events(), 20, "the slow request")
        server.signal(signal.SIGHUP)
        server.wait_log(rf"Retiring worker {old}", timeout=30)
        first, second, third = conn.read_responses(3)
        # All three were received before the drain: each is answered, by the old worker,
        # and only the last says connection: close.
        assert [r.status for r in (first, second, third)] == [200, 200, 200]
        assert {first.body, second.body, third.body} == {str(old).encode()}
        assert first.keeps_alive and second.keeps_alive and not third.keeps_alive
        assert conn.expect_closed() == b""
    server.wait_log(rf"Worker {old} stopped \(exit code 0\)", timeout=30)


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
    server.wait_watching()
    load = Load(server, {"close": 2}, max_requests=20000, max_seconds=150)
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
