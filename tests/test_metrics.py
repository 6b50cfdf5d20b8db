"""--metrics-bind: the master's Prometheus exposition, read with prometheus_client's parser.

Black-box against real servers; the counts are compared with the requests each test made.
Workers count into memory the master reads, but connections close and workers respawn on
their own time, so every check polls (bounded) until the exposition agrees.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from h2raw import h2_request, open_h2
from prometheus_client.parser import text_string_to_metric_families
from rawhttp import RawClient, exchange, request, wait_for
from realserver import REPO, ServerProcess, free_port
from websockets.sync.client import connect

from ruvicorn import _native
from ruvicorn.api import Server
from ruvicorn.config import Config, ConfigError
from ruvicorn.supervisor import metrics
from ruvicorn.supervisor.metrics import LAYOUT, SLOTS, Tally, render

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
SUPERVISOR_APPS = REPO / "tests" / "supervisor" / "apps"


def scrape(port: int, target: str = "/metrics", method: str = "GET") -> tuple[int, bytes]:
    resp = exchange("127.0.0.1", port, request(method, target))
    return resp.status, resp.body


def samples(port: int) -> Samples:
    """Every sample of the exposition, by name and labels (the parser must accept it)."""
    status, body = scrape(port)
    assert status == 200
    found: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_by_label(found: Samples) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["method"], dict(labels)["status"]): count
        for (name, labels), count in found.items()
        if name == "ruvicorn_requests_total"
    }


def settle(port: int, check: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until ``check`` holds (bounded); the samples that satisfied it."""
    last: list[Samples] = []

    def ok() -> bool:
        last[:] = [samples(port)]
        return check(last[0])

    try:
        wait_for(ok, 15.0, what, interval=0.2)
    except AssertionError:
        raise AssertionError(f"{what}; last exposition: {last}") from None
    return last[0]


def start(
    server_factory: Any, *args: str, app: str = "testapp:app", workers: int = 2, **kw: Any
) -> Any:
    port = free_port()
    srv: ServerProcess = server_factory(
        app, "-w", str(workers), "--metrics-bind", f"127.0.0.1:{port}", *args, **kw
    )
    srv.wait_log(rf"Ready: {workers} workers? serving")
    return srv, port


def crashes_replaced(port: int, crashes: int, workers: int) -> Samples:
    """Wait until ``crashes`` workers died and were replaced, ``workers`` alive again."""
    return settle(
        port,
        lambda f: (
            value(f, "ruvicorn_worker_restarts_total", reason="crash") == crashes
            and value(f, "ruvicorn_workers") == workers
        ),
        f"{crashes} crashed worker(s) replaced",
    )


def assert_histogram_consistent(found: Samples) -> None:
    name = "ruvicorn_request_duration_seconds"
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (sample, labels), count in found.items()
        if sample == f"{name}_bucket"
    )
    counts = [count for _, count in buckets]
    assert buckets[-1][0] == float("inf")
    assert counts == sorted(counts), f"buckets are not cumulative: {buckets}"
    assert counts[-1] == value(found, f"{name}_count")
    assert value(found, f"{name}_count") == sum(requests_by_label(found).values())
    assert value(found, f"{name}_sum") >= 0


def test_counts_match_the_requests_made(server_factory: Any) -> None:
    srv, port = start(server_factory)
    made = [("GET", "/ok", 200)] * 5 + [("POST", "/echo", 200)] * 3
    made += [("GET", "/status?code=404", 404)] * 2 + [("GET", "/raise-before", 500)]
    made += [("DELETE", "/ok", 200), ("PROPFIND", "/ok", 200), ("GET", "/status?code=302", 302)]
    for method, target, status in made:
        body = b"x" * 10 if method == "POST" else b""
        assert exchange(srv.host, srv.port, request(method, target, body=body)).status == status
    with RawClient(srv.host, srv.port) as client:  # a head ruvicorn refuses: 400, no method
        client.send(request("GET", "/ok") + b"NOT HTTP\r\n\r\n")
        assert [r.status for r in client.read_responses(2)] == [200, 400]
    expected = {
        ("GET", "2xx"): 6,
        ("POST", "2xx"): 3,
        ("GET", "4xx"): 2,
        ("GET", "5xx"): 1,
        ("DELETE", "2xx"): 1,
        ("other", "2xx"): 1,
        ("GET", "3xx"): 1,
        ("other", "4xx"): 1,
    }
    found = settle(port, lambda f: requests_by_label(f) == expected, "the request counts")
    assert_histogram_consistent(found)
    found = settle(
        port,
        lambda f: value(f, "ruvicorn_connections_open", protocol="http/1.1") == 0,
        "no open connection",
    )
    assert value(found, "ruvicorn_requests_in_flight") == 0
    assert value(found, "ruvicorn_received_bytes_total") > 30 * len(made)
    assert value(found, "ruvicorn_sent_bytes_total") > 30 * len(made)
    assert value(found, "ruvicorn_workers") == 2
    pids = {dict(labels)["pid"] for (name, labels) in found if name == "ruvicorn_worker_rss_bytes"}
    assert pids == {str(pid) for pid in srv.workers()}
    lags = [v for (name, _), v in found.items() if name == "ruvicorn_event_loop_lag_seconds"]
    assert len(lags) == 2 and all(lag >= 0 for lag in lags)


def test_in_flight_requests_and_open_connections(server_factory: Any) -> None:
    srv, port = start(server_factory)
    done: list[int] = []
    slow = threading.Thread(
        target=lambda: done.append(srv.get("/slow?seconds=3").status), daemon=True
    )
    slow.start()
    found = settle(port, lambda f: value(f, "ruvicorn_requests_in_flight") == 1, "one in flight")
    assert value(found, "ruvicorn_connections_open", protocol="http/1.1") >= 1
    slow.join(timeout=20)
    assert done == [200]
    settle(
        port,
        lambda f: (
            value(f, "ruvicorn_requests_in_flight") == 0
            and value(f, "ruvicorn_connections_open", protocol="http/1.1") == 0
        ),
        "nothing in flight and no connection open",
    )


def test_http2_streams_and_connections(server_factory: Any) -> None:
    srv, port = start(server_factory)
    sock, conn = open_h2(srv.host, srv.port)
    with sock:
        for method, target, status in [("GET", "/ok", 200)] * 3 + [("POST", "/echo", 200)]:
            assert (
                h2_request(sock, conn, method, target, b"x" * 10 if method == "POST" else b"")[0]
                == status
            )
        assert h2_request(sock, conn, "GET", "/status?code=404")[0] == 404
        expected = {("GET", "2xx"): 3, ("POST", "2xx"): 1, ("GET", "4xx"): 1}
        found = settle(
            port,
            lambda f: (
                requests_by_label(f) == expected
                and value(f, "ruvicorn_connections_open", protocol="h2") == 1
            ),
            "the HTTP/2 request counts and one h2 connection",
        )
        assert value(found, "ruvicorn_connections_open", protocol="http/1.1") == 0
        assert_histogram_consistent(found)
        assert value(found, "ruvicorn_received_bytes_total") > 100
        assert value(found, "ruvicorn_sent_bytes_total") > 100
    settle(
        port,
        lambda f: value(f, "ruvicorn_connections_open", protocol="h2") == 0,
        "the h2 connection closed",
    )


def test_websocket_sessions_and_connections(server_factory: Any) -> None:
    srv, port = start(server_factory, app="ws_apps:app")
    with connect(f"ws://{srv.host}:{srv.port}/echo", open_timeout=10, close_timeout=10) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
        found = settle(
            port,
            lambda f: value(f, "ruvicorn_connections_open", protocol="websocket") == 1,
            "one WebSocket open",
        )
        assert value(found, "ruvicorn_connections_open", protocol="http/1.1") == 0
    found = settle(
        port,
        lambda f: value(f, "ruvicorn_connections_open", protocol="websocket") == 0,
        "the WebSocket closed",
    )
    assert value(found, "ruvicorn_websocket_sessions_total") == 1
    assert requests_by_label(found) == {("GET", "1xx"): 1}


def test_counts_survive_killed_workers_and_restarts_are_counted(server_factory: Any) -> None:
    srv, port = start(server_factory)
    for _ in range(6):
        assert srv.get("/ok").status == 200
    settle(port, lambda f: requests_by_label(f) == {("GET", "2xx"): 6}, "six requests")
    old = srv.workers()
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    found = crashes_replaced(port, 2, workers=2)
    assert requests_by_label(found) == {("GET", "2xx"): 6}
    assert value(found, "ruvicorn_request_duration_seconds_count") == 6
    srv.wait_log(r"Worker \d+ ready", count=4)
    for _ in range(2):
        assert srv.get("/ok").status == 200
    srv.send_signal(signal.SIGHUP)
    found = settle(
        port,
        lambda f: (
            value(f, "ruvicorn_worker_restarts_total", reason="reload") == 2
            and requests_by_label(f) == {("GET", "2xx"): 8}
        ),
        "a reload of both workers, no count lost",
    )
    assert value(found, "ruvicorn_reloads_total") == 1
    assert value(found, "ruvicorn_worker_restarts_total", reason="crash") == 2
    assert_histogram_consistent(found)


@pytest.mark.parametrize("fork", [[], ["--preload"]], ids=["master", "zygote"])
def test_a_worker_killed_right_after_answering_loses_no_count(
    server_factory: Any, fork: list[str]
) -> None:
    srv, port = start(server_factory, *fork, workers=1)
    (pid,) = srv.workers()
    made = 200
    with RawClient(srv.host, srv.port, timeout=30) as client:
        client.send(request("GET", "/ok") * made)  # pipelined: answered well within a second
        assert [r.status for r in client.read_responses(made)] == [200] * made
        os.kill(pid, signal.SIGKILL)  # at once: no heartbeat tick in between
        found = crashes_replaced(port, 1, workers=1)
    assert srv.workers() and pid not in srv.workers()
    assert requests_by_label(found) == {("GET", "2xx"): made}
    assert value(found, "ruvicorn_request_duration_seconds_count") == made
    assert_histogram_consistent(found)
    # Its gauges died with it, though its connection was open and counted when it died.
    assert value(found, "ruvicorn_connections_open", protocol="http/1.1") == 0
    assert value(found, "ruvicorn_requests_in_flight") == 0


def test_recycled_and_timed_out_workers_are_counted(server_factory: Any) -> None:
    srv, port = start(
        server_factory, "--limit-max-requests", "2", "--timeout-worker", "3", app="basic:app",
        app_dir=SUPERVISOR_APPS,
    )  # fmt: skip
    for _ in range(5):
        assert srv.get("/").status == 200
    found = settle(
        port,
        lambda f: (
            value(f, "ruvicorn_worker_restarts_total", reason="recycle") >= 1
            and requests_by_label(f) == {("GET", "2xx"): 5}
        ),
        "a recycled worker whose requests are all counted",
    )
    with RawClient(srv.host, srv.port, timeout=30) as client:
        client.send(request("GET", "/block?s=30"))
        found = settle(
            port,
            lambda f: value(f, "ruvicorn_worker_restarts_total", reason="timeout") == 1,
            "a worker stopped for its blocked loop",
        )
    assert value(found, "ruvicorn_worker_restarts_total", reason="crash") == 0


def test_only_get_metrics_is_answered(server_factory: Any) -> None:
    _, port = start(server_factory)
    assert scrape(port, "/metrics?name=x")[0] == 200
    for method, target in (
        ("POST", "/metrics"),
        ("HEAD", "/metrics"),
        ("GET", "/"),
        ("GET", "/metricsx"),
    ):
        status, _ = scrape(port, target, method)
        assert status == 404, (method, target)
    for junk in (b"hello\r\n\r\n", b"GET /metrics SPDY/3\r\n\r\n", b"GET /" + b"a" * 9000):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(junk)
            received = b""
            try:
                while chunk := sock.recv(4096):
                    received += chunk
            except ConnectionResetError:
                pass  # closed with the rest of the request unread
            assert received == b"", junk[:20]
    assert scrape(port)[0] == 200  # still serving


def test_bad_metrics_bind_is_one_line(server_factory: Any) -> None:
    for spec in ("unix:/x", "nonsense", "host:port"):
        with pytest.raises(ConfigError) as caught:
            Config(metrics_bind=spec)
        assert str(caught.value) == f"--metrics-bind {spec!r} is not HOST:PORT"
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        srv: ServerProcess = server_factory(
            "testapp:app", "--metrics-bind", f"127.0.0.1:{port}", start=False
        )
        srv.expect_exit = 2
        srv.start(wait=False)
        assert srv.wait_exit() == 2
        lines = [x for x in srv.stderr().splitlines() if "--metrics-bind" in x]
        assert len(lines) == 1 and "address already in use" in lines[0].lower(), srv.stderr()
    finally:
        taken.close()


# -- in-process units


def test_an_embedded_server_refuses_metrics() -> None:
    with pytest.raises(ConfigError) as caught:
        Server(Config(app="m:a", metrics_bind="127.0.0.1:9100"))
    assert (
        str(caught.value) == "--metrics-bind needs ruvicorn.run() or the command line, not Server"
    )


def test_the_layout_matches_the_native_one() -> None:
    assert LAYOUT == _native.METRICS_LAYOUT


class FakeWorker:
    def __init__(self, pid: int, counts: list[int]) -> None:
        self.pid = pid
        self._counts = tuple(counts)

    def counters(self) -> tuple[int, ...]:
        return self._counts

    def lag(self) -> float:
        return 0.25


def test_a_dead_workers_counters_are_folded_but_not_its_gauges() -> None:
    counts = [0] * SLOTS
    counts[metrics.REQUESTS] = 3  # GET 1xx
    counts[metrics.BUCKETS] = 3
    counts[metrics.IN_FLIGHT] = 1
    counts[metrics.OPEN] = 2
    tally = Tally()
    tally.fold(counts)
    tally.restarted("crash")
    live = [0] * SLOTS
    live[metrics.OPEN] = 2**64 - 1  # a gauge a worker saw go below zero reads as -1
    text = render(tally, [FakeWorker(7, live)]).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = families["ruvicorn_requests"].samples
    assert [(s.labels, s.value) for s in requests] == [({"method": "GET", "status": "1xx"}, 3)]
    assert families["ruvicorn_requests_in_flight"].samples[0].value == 0
    assert families["ruvicorn_connections_open"].samples[0].value == 0
    restarts = {s.labels["reason"]: s.value for s in families["ruvicorn_worker_restarts"].samples}
    assert restarts == {"crash": 1, "recycle": 0, "reload": 0, "timeout": 0}
    assert families["ruvicorn_event_loop_lag_seconds"].samples[0].value == 0.25
