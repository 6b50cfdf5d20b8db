"""--limit-concurrency: a request beyond N open connections or N running requests in a worker
gets 503 with ``Connection: close`` (the app never sees it), the warning is logged at most once
a second, and service resumes as soon as the load falls. Also: 5,000 idle connections cost a
bounded amount of memory and do not stop the worker."""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rawhttp import RawClient, Response, request, wait_for
from realserver import ServerProcess

WARNING = "Exceeded --limit-concurrency"


def warnings(server: ServerProcess) -> list[str]:
    return [line for line in server.stderr().splitlines() if WARNING in line]


def refused(resp: Response) -> bool:
    return resp.status == 503 and resp.header("connection") == "close"


def get_on_new_connection(server: ServerProcess, target: str) -> tuple[Response, RawClient]:
    client = server.client()
    client.send(request("GET", target))
    return client.read_response(), client


def assert_refused(server: ServerProcess, target: str) -> None:
    resp, client = get_on_new_connection(server, target)
    with client:
        assert refused(resp), resp
        assert resp.body == b"Service Unavailable"
        client.expect_closed()


def wait_serving(server: ServerProcess, timeout: float = 30.0) -> None:
    """Poll (bounded) until a fresh connection gets a normal answer again."""

    def answered() -> bool:
        resp, client = get_on_new_connection(server, "/ok")
        client.close()
        return resp.status == 200

    wait_for(answered, timeout=timeout, interval=0.1)


@contextlib.contextmanager
def held_requests(server: ServerProcess, tmp_path: Path, n: int) -> Iterator[list[RawClient]]:
    """``n`` requests the app is busy with until the block ends (a gate file opens them)."""
    gate = tmp_path / f"gate-{n}-{time.monotonic_ns()}"
    mark = server.mark()
    clients = [server.client() for _ in range(n)]
    try:
        for client in clients:
            client.send(request("GET", f"/gate?gate={gate}"))
        wait_for(
            lambda: sum(r.get("event") == "gate-entered" for r in server.records_since(mark)) >= n
        )
        yield clients
        gate.touch()
        for client in clients:
            assert client.read_response().status == 200
    finally:
        gate.touch()
        for client in clients:
            client.close()


def test_busy_worker_refuses_then_resumes(server_factory, tmp_path: Path, loop: str) -> None:
    server: ServerProcess = server_factory("testapp:app", "--limit-concurrency", "2", loop=loop)
    # The readiness probes (connections opened while the worker booted) must be gone first.
    wait_serving(server)
    with held_requests(server, tmp_path, 2):
        mark = server.mark()
        started = time.monotonic()
        rejections = 30
        for _ in range(rejections):
            assert_refused(server, "/ok")
        elapsed = time.monotonic() - started
        assert server.paths_seen_since(mark) == [], "the app saw a refused request"
        lines = wait_for(lambda: warnings(server))
        # At most one warning per second of rejections, however many were refused.
        assert 1 <= len(lines) <= 1 + int(elapsed), lines
        assert len(lines) < rejections
        # Access lines are written once a response is out: wait for it, do not assume it.
        server.wait_log(r'"GET /ok HTTP/1\.1" 503')
    wait_serving(server)
    assert server.get("/ok").status == 200


def test_open_connections_count_too(server_factory) -> None:
    """Idle connections beyond the limit are load: the next request is refused."""
    server: ServerProcess = server_factory(
        "testapp:app", "--limit-concurrency", "3", "--timeout-request-header", "60"
    )
    wait_serving(server)
    idle = [socket.create_connection((server.host, server.port)) for _ in range(3)]
    try:
        # Three idle ones plus this one make four: refused once the worker has them all.
        wait_for(lambda: refused(probe(server)), timeout=30.0, interval=0.1)
    finally:
        for sock in idle:
            sock.close()
    wait_serving(server)


def probe(server: ServerProcess) -> Response:
    resp, client = get_on_new_connection(server, "/ok")
    client.close()
    return resp


def test_keep_alive_connection_is_refused_when_load_rises(server_factory, tmp_path: Path) -> None:
    server: ServerProcess = server_factory(
        "testapp:app", "--limit-concurrency", "2", "--timeout-request-header", "60"
    )
    wait_serving(server)
    with server.client() as client, held_requests(server, tmp_path, 1):
        # Two connections, one running request: within the limit.
        client.send(request("GET", "/ok"))
        assert client.read_response().status == 200
        with socket.create_connection((server.host, server.port)):
            # A third connection: the next request on the kept-alive one is beyond it.
            def refused_on_keep_alive() -> bool:
                time.sleep(0.2)  # let the worker accept the extra connection
                client.send(request("GET", "/ok"))
                resp = client.read_response()
                assert resp.status == 200 or refused(resp), resp
                return refused(resp)

            wait_for(refused_on_keep_alive, timeout=30.0, interval=0.0)
            client.expect_closed()
    wait_serving(server)


def test_limit_off_by_default(server_factory, tmp_path: Path) -> None:
    server: ServerProcess = server_factory("testapp:app")
    with held_requests(server, tmp_path, 20):
        assert server.get("/ok").status == 200
    assert warnings(server) == []


IDLE = 5000


@pytest.fixture
def many_fds() -> Iterator[None]:
    """Room for the idle sockets here and in the server (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE * 2 + 1000
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("limit", [None, 100], ids=["no-limit", "limit-100"])
def test_five_thousand_idle_connections(many_fds: None, server_factory, limit: int | None) -> None:
    args = ["--timeout-request-header", "120", "--timeout-keep-alive", "120"]
    if limit is not None:
        args += ["--limit-concurrency", str(limit)]
    server: ServerProcess = server_factory("testapp:app", *args)
    server.assert_serving()
    worker_pids = {p.pid for p in _workers(server)}
    baseline = server.rss()
    idle: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60.0
        for _ in range(IDLE):
            assert time.monotonic() < deadline, f"only {len(idle)} connections opened in 60 s"
            idle.append(socket.create_connection((server.host, server.port), timeout=10.0))
        # An ordinary client meanwhile: its answer, or a 503 with the connection closed
        # when the idle ones count against the limit.
        statuses = set()
        for _ in range(20):
            resp = probe(server)
            assert resp.status == 200 or (limit is not None and refused(resp)), resp
            statuses.add(resp.status)
        if limit is None:
            assert statuses == {200}
        else:
            # Once the worker has accepted them all, every new request is over the limit.
            wait_for(lambda: refused(probe(server)), timeout=60.0, interval=0.2)
        assert {p.pid for p in _workers(server)} == worker_pids, "the worker was replaced"
        grown = server.rss() - baseline
        assert grown < 96 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
    finally:
        for sock in idle:
            sock.close()
    wait_serving(server, timeout=60.0)
    assert server.running
    assert {p.pid for p in _workers(server)} == worker_pids


def _workers(server: ServerProcess) -> list[object]:
    import psutil

    assert server.proc is not None
    return list(psutil.Process(server.proc.pid).children())
