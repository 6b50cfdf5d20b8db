"""receive() under the app's concurrency: cancelled, concurrent, and after the response
started."""

from __future__ import annotations

import time

from rawhttp import request, wait_for
from realserver import ServerProcess


def test_cancelled_receive_does_not_lose_the_body(server: ServerProcess) -> None:
    """A receive() the app gave up on must not swallow the bytes that arrive later."""
    mark = server.mark()
    with server.client() as c:
        c.send(request("POST", "/cancelled-receive", headers=[("Content-Length", "4")]))
        wait_for(
            lambda: any(r.get("event") == "receive-timed-out" for r in server.records_since(mark))
        )
        time.sleep(0.1)  # lands while the timed-out future is still the registered waiter
        c.send(b"BODY")
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == b"got:BODY"
    server.assert_serving()


def test_continue_is_not_sent_once_the_response_streams(server: ServerProcess) -> None:
    headers = [("Content-Length", "3"), ("Expect", "100-continue")]
    with server.client() as c:
        c.send(request("POST", "/stream-then-receive", headers=headers))
        resp = c.read_response(skip_interim=False)
        assert resp.status == 200, "an interim 100 came after the response had started"
        c.send(b"abc")
    server.assert_serving()


def test_exception_after_start_before_any_body_is_500(server: ServerProcess) -> None:
    """The head was only pending, not sent: the client can still get a proper 500."""
    with server.client() as c:
        c.send(request("GET", "/start-then-raise"))
        resp = c.read_response()
    assert resp.status == 500
    server.assert_serving()


def test_two_pending_receives_are_both_answered(server: ServerProcess) -> None:
    mark = server.mark()
    with server.client() as c:
        c.send(request("POST", "/two-receivers", body=b"hello"))
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == b"hello"
    rec = wait_for(
        lambda: [r for r in server.records_since(mark) if r.get("event") == "second-receive"]
    )
    assert rec[0]["type"] == "http.disconnect"
