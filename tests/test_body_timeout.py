"""``--timeout-request-body`` against a real server (1 s; the sweep runs about once a
second, so an expiry is looked for within generous bounds, never timed tightly).

A body that stops arriving is answered 408 and closed, and the app's receive() gets
http.disconnect; a slow but steady body is not cut; a body the app does not read (the
server paused reading) is not cut; other connections carry on meanwhile.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from rawhttp import chunked, request, wait_for
from realserver import ServerProcess

BOUND = 20.0  # the most any read here waits; the configured timeout is 1 s
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def body_server(module_server_factory, loop: str) -> ServerProcess:
    return module_server_factory("testapp:app", "--timeout-request-body", "1", loop=loop)


def echo_disconnects(server: ServerProcess, mark: int) -> list[bool]:
    """For each body the echo app finished with since ``mark``: whether it saw
    http.disconnect."""
    return [r["disconnected"] for r in server.records_since(mark) if r.get("event") == "body"]


@pytest.mark.parametrize(
    "head_and_part",
    [
        request("POST", "/echo", [("Content-Length", "100000")]) + b"x" * 10,
        request("POST", "/echo", [("Transfer-Encoding", "chunked")])
        + b"a\r\n0123456789\r\n5\r\nab",
    ],
    ids=["content-length", "chunked"],
)
def test_a_stalled_body_gets_408_and_close(
    body_server: ServerProcess, head_and_part: bytes
) -> None:
    mark = body_server.mark()
    with body_server.client(timeout=BOUND) as c:
        c.send(head_and_part)
        resp = c.read_response()
        assert resp.status == 408
        assert resp.header("connection") == "close"
        c.expect_closed()
    assert wait_for(lambda: echo_disconnects(body_server, mark), BOUND) == [True]
    body_server.assert_serving()


def test_a_slow_but_steady_body_is_not_cut(body_server: ServerProcess) -> None:
    """A byte every 0.3 s for about 3 s, three times the timeout in all."""
    body = b"0123456789"
    with body_server.client(timeout=BOUND) as c:
        c.send(request("POST", "/echo", [("Content-Length", str(len(body)))]))
        for i in range(len(body)):
            assert c.nothing_received_for(0.3), "the server answered a body still arriving"
            c.send(body[i : i + 1])
        resp = c.read_response()
        assert (resp.status, resp.body) == (200, body)


def test_a_body_the_app_does_not_read_is_not_cut(
    body_server: ServerProcess, tmp_path: Path
) -> None:
    """The app waits for a gate before reading; the body fills the server's buffer, so it
    stops reading and the silence that follows is not the client's."""
    gate = tmp_path / "gate"
    body = b"b" * (2 * MIB)
    mark = body_server.mark()
    try:
        with body_server.client(timeout=BOUND) as c:
            c.send(request("POST", f"/gate?gate={gate}", [("Content-Length", str(len(body)))]))
            wait_for(lambda: gate_entered(body_server, mark), BOUND)
            sender = threading.Thread(target=c.send, args=(body,), daemon=True)
            sender.start()
            time.sleep(3.5)  # past the timeout and at least two sweeps
            gate.touch()
            sender.join(BOUND)
            assert not sender.is_alive(), "the body was never read to its end"
            resp = c.read_response()
            assert resp.status == 200
            assert resp.body == body
    finally:
        gate.touch()


def gate_entered(server: ServerProcess, mark: int) -> bool:
    return any(r.get("event") == "gate-entered" for r in server.records_since(mark))


def test_other_connections_carry_on(body_server: ServerProcess) -> None:
    """While one connection's body stalls until it is cut, another's steady body (a byte
    every 0.4 s for about 3 s) is read and answered, and its connection goes on."""
    body = b"steady"
    with body_server.client(timeout=BOUND) as stalled:
        stalled.send(request("POST", "/echo", [("Content-Length", "100")]) + b"x")
        with body_server.client(timeout=BOUND) as other:
            other.send(request("POST", "/echo", [("Content-Length", str(len(body) * 2))]))
            for byte in body * 2:
                assert other.nothing_received_for(0.25)
                other.send(bytes([byte]))
            resp = other.read_response()
            assert (resp.status, resp.body) == (200, body * 2)
            assert stalled.read_response().status == 408
            stalled.expect_closed()
            other.send(request("POST", "/echo", body=b"again"))
            assert other.read_response().body == b"again"


def test_a_complete_chunked_body_is_answered(body_server: ServerProcess) -> None:
    """The chunked case above is not cut for its framing: sent whole, it is answered."""
    with body_server.client(timeout=BOUND) as c:
        c.send(request("POST", "/echo", [("Transfer-Encoding", "chunked")]) + chunked(b"abc"))
        assert c.read_response().body == b"abc"
