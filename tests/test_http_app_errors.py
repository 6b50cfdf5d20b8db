"""What the server does when the app misbehaves or the client leaves."""

from __future__ import annotations

import socket
import struct

import pytest
from rawhttp import RawClient, ResponseError, request, wait_for
from realserver import ServerProcess


def test_exception_before_response_is_500(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(request("GET", "/raise-before"))
        resp = c.read_response()
    assert resp.status == 500
    assert resp.framing in ("length", "chunked")
    server.assert_serving()


def test_exception_is_logged_with_the_error(server: ServerProcess) -> None:
    server.get("/raise-before")
    wait_for(lambda: "raised before the response started" in server.stderr())


def test_exception_after_response_started_closes_connection(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(request("GET", "/raise-after") + request("GET", "/ok"))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.incomplete, "a body cut short by an app error must not look complete"
        assert resp.body == b"partial"
        assert c.expect_closed() == b""
    server.assert_serving()


def test_app_returning_without_response_is_500(server: ServerProcess) -> None:
    resp = server.get("/no-response")
    assert resp.status == 500
    server.assert_serving()


def test_body_shorter_than_content_length_closes_connection(server: ServerProcess) -> None:
    mark = server.mark()
    with server.client() as c:
        c.send(request("GET", "/short-cl") + request("GET", "/after-short"))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.incomplete
        assert resp.body == b"12345"
        assert c.expect_closed() == b""
    assert "/after-short" not in server.paths_seen_since(mark)
    server.assert_serving()


def leave(c: RawClient, how: str) -> None:
    """The client goes away: an orderly close (FIN) or an abortive one (RST)."""
    if how == "rst":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


LEAVE = pytest.mark.parametrize("how", ["fin", "rst"])


@LEAVE
def test_disconnect_is_delivered_to_waiting_app(server: ServerProcess, how: str) -> None:
    mark = server.mark()
    c = server.client()
    c.send(request("GET", "/wait-disconnect"))
    wait_for(lambda: "/wait-disconnect" in server.paths_seen_since(mark))
    leave(c, how)
    wait_for(lambda: any(r.get("event") == "disconnect" for r in server.records_since(mark)))


def test_disconnect_is_delivered_while_streaming(server: ServerProcess) -> None:
    mark = server.mark()
    c = server.client()
    c.send(request("GET", "/stream-until-disconnect"))
    head = c.read_head()
    assert head.status == 200
    c.close()
    ended = wait_for(
        lambda: [r for r in server.records_since(mark) if r.get("event") == "stream-ended"],
        timeout=30,
    )
    assert any(r.get("event") == "disconnect" for r in server.records_since(mark)), ended
    assert ended[0]["disconnected"] or ended[0]["error"], ended


@LEAVE
def test_send_after_disconnect_raises_oserror(server: ServerProcess, how: str) -> None:
    mark = server.mark()
    c = server.client()
    c.send(request("GET", "/send-after-disconnect"))
    wait_for(lambda: "/send-after-disconnect" in server.paths_seen_since(mark))
    leave(c, how)
    [event] = wait_for(
        lambda: [r for r in server.records_since(mark) if r.get("event") == "send-after-disconnect"]
    )
    assert event["is_oserror"], f"send() after disconnect raised {event['raised']}"


def test_body_longer_than_content_length_is_not_sent(server: ServerProcess) -> None:
    """Extra bytes past Content-Length would be read as the next response: never send them."""
    with server.client() as c:
        c.send(request("GET", "/long-cl") + request("GET", "/ok"))
        first = c.read_response()
        assert first.status == 200
        assert b"abc".startswith(first.body)
        try:
            following = c.read_response()
        except ResponseError:
            following = None  # the server closed instead: fine
        if following is not None:
            assert not first.incomplete
            assert following.body == b"ok", "bytes past Content-Length reached the client"
    server.assert_serving()


@pytest.mark.parametrize("where", ["value", "name"])
def test_response_header_with_crlf_is_refused(server: ServerProcess, where: str) -> None:
    with server.client() as c:
        c.send(request("GET", f"/bad-response-header?where={where}"))
        try:
            resp = c.read_response()
        except ResponseError:
            resp = None
    if resp is not None:
        assert resp.status == 500
        assert resp.header("x-injected") is None
        assert resp.body != b"split"
    server.assert_serving()


def test_body_before_start_is_an_app_error(server: ServerProcess) -> None:
    mark = server.mark()
    resp = server.get("/body-before-start")
    assert resp.status == 500
    assert resp.body != b"no start"
    refused = [r for r in server.records_since(mark) if r.get("event") == "out-of-order-refused"]
    assert refused, "send() accepted a body before http.response.start"
