"""Keep-alive idle timeout and request-head timeout (short values, generous read bounds)."""

from __future__ import annotations

import time

import pytest
from rawhttp import ResponseError, request
from realserver import ServerProcess

BOUND = 20.0  # the most any check here waits; the configured timeouts are 1 s


@pytest.fixture(scope="module")
def quick(module_server_factory, loop: str) -> ServerProcess:
    return module_server_factory(
        "testapp:app",
        "--timeout-keep-alive",
        "1",
        "--timeout-request-header",
        "1",
        loop=loop,
    )


def test_idle_keep_alive_connection_is_closed(quick: ServerProcess) -> None:
    with quick.client(timeout=BOUND) as c:
        c.send(request("GET", "/ok"))
        assert c.read_response().body == b"ok"
        assert c.expect_closed() == b""


def test_keep_alive_timeout_does_not_cut_a_running_request(quick: ServerProcess) -> None:
    with quick.client(timeout=BOUND) as c:
        c.send(request("GET", "/slow?seconds=2.5"))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == b"slow done"


def refused_or_408(c) -> None:
    try:
        resp = c.read_response()
    except ResponseError:
        return  # closed without an answer
    assert resp.status == 408
    c.expect_closed()


def test_silent_connection_is_closed(quick: ServerProcess) -> None:
    mark = quick.mark()
    with quick.client(timeout=BOUND) as c:
        refused_or_408(c)
    assert quick.paths_seen_since(mark) == []


def test_incomplete_head_gets_408_or_close(quick: ServerProcess) -> None:
    mark = quick.mark()
    with quick.client(timeout=BOUND) as c:
        c.send(b"GET /never HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        refused_or_408(c)
    assert quick.paths_seen_since(mark) == []


def test_dribbled_head_is_cut_off(quick: ServerProcess) -> None:
    """A client sending a byte now and then must not keep the head open for ever."""
    mark = quick.mark()
    data = b"GET /dribble HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200
    cut_off = False
    with quick.client(timeout=BOUND) as c:
        deadline = time.monotonic() + BOUND
        for i in range(len(data)):
            if time.monotonic() > deadline:
                break
            try:
                c.send(data[i : i + 1])
            except OSError:
                cut_off = True
                break
            if not c.nothing_received_for(0.1):
                cut_off = True
                break
        assert cut_off, "the server waited for a dribbled head past its header timeout"
    assert quick.paths_seen_since(mark) == []


def test_second_request_head_timeout_on_keep_alive(quick: ServerProcess) -> None:
    with quick.client(timeout=BOUND) as c:
        c.send(request("GET", "/ok"))
        assert c.read_response().body == b"ok"
        c.send(b"GET /second HTTP/1.1\r\nHo")
        refused_or_408(c)
