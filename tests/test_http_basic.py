"""Core HTTP/1.1 behaviour over real sockets, on asyncio and on uvloop.

Persistent connections, pipelining, HTTP/1.0, HEAD, Connection: close both ways, response
framing, default headers and the complete ASGI scope.
"""

from __future__ import annotations

import email.utils
import json
from pathlib import Path

import pytest
from rawhttp import chunked, request
from realserver import ServerProcess
from tlscerts import over_tls


def test_simple_get(server: ServerProcess) -> None:
    resp = server.get("/ok")
    assert resp.status == 200
    assert resp.version == "HTTP/1.1"
    assert resp.body == b"ok"
    assert resp.header("content-length") == "2"


@over_tls
def test_keep_alive_serves_many_requests_on_one_connection(server: ServerProcess) -> None:
    with server.client() as c:
        for i in range(5):
            c.send(request("GET", f"/anything/{i}"))
            resp = c.read_response()
            assert resp.status == 200
            assert resp.json()["path"] == f"/anything/{i}"
            assert resp.keeps_alive


@over_tls
def test_pipelined_requests_are_answered_in_order(server: ServerProcess) -> None:
    batch = (
        request("GET", "/slow?seconds=0.3")
        + request("GET", "/p/1")
        + request("POST", "/echo", body=b"second body")
        + request("GET", "/p/3")
        + request("POST", "/echo", [("Transfer-Encoding", "chunked")], chunked(b"ab", b"cd"))
        + request("GET", "/ok")
    )
    with server.client() as c:
        c.send(batch)  # one write: all six requests arrive together
        responses = c.read_responses(6)
    assert [r.status for r in responses] == [200] * 6
    assert responses[0].body == b"slow done"
    assert responses[1].json()["path"] == "/p/1"
    assert responses[2].body == b"second body"
    assert responses[3].json()["path"] == "/p/3"
    assert responses[4].body == b"abcd"
    assert responses[5].body == b"ok"


@over_tls
def test_pipelined_requests_split_across_writes(server: ServerProcess) -> None:
    data = request("GET", "/p/a") + request("POST", "/echo", body=b"xyz") + request("GET", "/p/b")
    with server.client() as c:
        for i in range(0, len(data), 7):
            c.send(data[i : i + 7])
        responses = c.read_responses(3)
    assert responses[0].json()["path"] == "/p/a"
    assert responses[1].body == b"xyz"
    assert responses[2].json()["path"] == "/p/b"


def test_http10_closes_by_default(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(request("GET", "/ok", host=None, version="HTTP/1.0"))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == b"ok"
        assert resp.version in ("HTTP/1.1", "HTTP/1.0")
        assert c.expect_closed() == b""


def test_http10_keep_alive(server: ServerProcess) -> None:
    with server.client() as c:
        for _ in range(3):
            c.send(request("GET", "/ok", [("Connection", "keep-alive")], version="HTTP/1.0"))
            resp = c.read_response()
            assert resp.status == 200
            assert resp.body == b"ok"
            assert "keep-alive" in (resp.header("connection") or "").lower()


def test_http10_scope_version(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(request("GET", "/v", host=None, version="HTTP/1.0"))
        assert c.read_response().json()["http_version"] == "1.0"


def test_http10_response_without_length_is_close_delimited(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(request("GET", "/stream?chunks=4&size=3", version="HTTP/1.0"))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.header("transfer-encoding") is None
        assert resp.framing == "close"
        assert resp.body == b"000111222333"


def test_http10_keep_alive_response_without_length_still_closes(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(
            request(
                "GET", "/stream?chunks=2&size=2", [("Connection", "keep-alive")], version="HTTP/1.0"
            )
        )
        resp = c.read_response()
        assert resp.header("transfer-encoding") is None
        assert resp.body == b"0011"


@over_tls
def test_chunked_response_when_app_gives_no_length(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(request("GET", "/stream?chunks=3&size=4"))
        resp = c.read_response()
        assert resp.framing == "chunked"
        assert resp.header("content-length") is None
        assert resp.body == b"000011112222"
        assert not resp.incomplete
        # the connection is still usable after the terminating chunk
        c.send(request("GET", "/ok"))
        assert c.read_response().body == b"ok"


def test_streamed_response_with_content_length_is_not_chunked(server: ServerProcess) -> None:
    resp = server.get("/stream?chunks=3&size=4&cl=1")
    assert resp.framing == "length"
    assert resp.header("transfer-encoding") is None
    assert resp.body == b"000011112222"


@over_tls
def test_large_chunked_response(server: ServerProcess) -> None:
    resp = server.get("/stream?chunks=64&size=65536")
    assert resp.status == 200
    assert len(resp.body) == 64 * 65536


def test_head_has_headers_but_no_body(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(request("HEAD", "/ok") + request("GET", "/ok"))
        head = c.read_response(head_request=True)
        assert head.status == 200
        assert head.header("content-length") == "2"
        # if a body had been sent after the HEAD response, this would parse garbage
        get = c.read_response()
        assert get.status == 200
        assert get.body == b"ok"


def test_head_of_streamed_response_sends_no_chunks(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(request("HEAD", "/head-stream") + request("GET", "/ok"))
        head = c.read_response(head_request=True)
        assert head.status == 200
        get = c.read_response()
        assert get.body == b"ok"


@pytest.mark.parametrize("code", [204, 304])
def test_bodiless_statuses_keep_connection_usable(server: ServerProcess, code: int) -> None:
    with server.client() as c:
        c.send(request("GET", f"/status?code={code}") + request("GET", "/ok"))
        first = c.read_response()
        assert first.status == code
        assert first.header("transfer-encoding") is None
        assert c.read_response().body == b"ok"


@over_tls
def test_client_connection_close(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(request("GET", "/ok", [("Connection", "close")]) + request("GET", "/never"))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == b"ok"
        assert "close" in (resp.header("connection") or "").lower()
        # the pipelined request after `Connection: close` is not answered
        assert c.expect_closed() == b""


def test_app_connection_close(server: ServerProcess) -> None:
    mark = server.mark()
    with server.client() as c:
        c.send(request("GET", "/close") + request("GET", "/after-close"))
        resp = c.read_response()
        assert resp.body == b"closing"
        assert "close" in (resp.header("connection") or "").lower()
        assert c.expect_closed() == b""
    assert "/after-close" not in server.paths_seen_since(mark)


def test_date_and_server_headers(server: ServerProcess) -> None:
    resp = server.get("/ok")
    assert resp.header("server") == "ruvicorn"
    date = resp.header("date")
    assert date is not None
    assert email.utils.parsedate_to_datetime(date).tzname() == "UTC"
    assert date.endswith(" GMT")
    assert len(resp.header_list("date")) == 1
    assert len(resp.header_list("server")) == 1


def test_no_server_header_no_date_header_and_extra_headers(server_factory, loop: str) -> None:
    srv = server_factory(
        "testapp:app",
        "--no-server-header",
        "--no-date-header",
        "--header",
        "X-Deployment: blue",
        "--header",
        "X-Other:two words",
        loop=loop,
    )
    resp = srv.get("/ok")
    assert resp.status == 200
    assert resp.header("server") is None
    assert resp.header("date") is None
    assert resp.header("x-deployment") == "blue"
    assert resp.header("x-other") == "two words"


@over_tls
def test_scope_is_complete_and_typed(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(
            request(
                "GET",
                "/caf%C3%A9/a%20b?x=%20y&z=1",
                [
                    ("X-Repeat", "one"),
                    ("x-other", "two"),
                    ("X-REPEAT", "three"),
                    ("X-Pad", " \t padded value \t "),
                ],
            )
        )
        resp = c.read_response()
        client_port = c.sock.getsockname()[1]
    scope = resp.json()
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    spec = tuple(int(p) for p in scope["asgi"]["spec_version"].split("."))
    assert spec >= (2, 4), "send() after disconnect raising OSError is spec 2.4"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == server.scheme
    assert ("tls" in scope["extensions"]) == (server.tls is not None)
    assert scope["path"] == "/café/a b"
    assert scope["raw_path"] == "/caf%C3%A9/a%20b"
    assert scope["query_string"] == "x=%20y&z=1"
    assert scope["root_path"] == ""
    assert scope["headers"] == [
        ["host", "testserver"],
        ["x-repeat", "one"],
        ["x-other", "two"],
        ["x-repeat", "three"],
        ["x-pad", "padded value"],
    ]
    assert scope["client"] == ["127.0.0.1", client_port]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert "http.response.pathsend" in scope["extensions"]
    types = scope["types"]
    assert types["type"] == "str"
    assert types["asgi"] == "dict"
    assert types["http_version"] == "str"
    assert types["method"] == "str"
    assert types["scheme"] == "str"
    assert types["path"] == "str"
    assert types["raw_path"] == "bytes"
    assert types["query_string"] == "bytes"
    assert types["root_path"] == "str"
    assert types["headers"] in ("list", "tuple")
    assert types["client"] in ("list", "tuple")
    assert types["server"] in ("list", "tuple")
    assert types["state"] == "dict"
    assert types["extensions"] == "dict"
    assert "bytes/bytes" in scope["header_types"]
    assert all(t in ("bytes/bytes", "list", "tuple") for t in scope["header_types"])


def test_path_percent_decoding_keeps_encoded_slash_in_raw_path(server: ServerProcess) -> None:
    scope = server.get("/a%2Fb/%E2%9C%93").json()
    assert scope["path"] == "/a/b/\u2713"
    assert scope["raw_path"] == "/a%2Fb/%E2%9C%93"


def test_lifespan_state_copied_into_each_request(server: ServerProcess) -> None:
    first = server.get("/state").json()
    assert first["from_lifespan"] == "yes"
    second = server.get("/state").json()
    assert "mutated_by_request" not in second, "request scopes must get their own state copy"
    assert second["from_lifespan"] == "yes"


@pytest.mark.parametrize("method", ["PROPFIND", "PURGE", "X-CUSTOM-1", "M!#$%&'*+-.^_`|~"])
def test_any_token_method_reaches_the_app(server: ServerProcess, method: str) -> None:
    mark = server.mark()
    with server.client() as c:
        c.send(request(method, "/custom-method"))
        resp = c.read_response()
    assert resp.status == 200
    assert resp.json()["method"] == method
    seen = server.records_since(mark)
    assert any(r.get("method") == method for r in seen)


def test_absolute_form_target(server: ServerProcess) -> None:
    scope = server.get("http://example.com:8080/abs/path?q=1").json()
    assert scope["path"] == "/abs/path"
    assert scope["raw_path"] == "/abs/path"
    assert scope["query_string"] == "q=1"


def test_absolute_form_without_path(server: ServerProcess) -> None:
    scope = server.get("http://example.com").json()
    assert scope["path"] == "/"


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_absolute_form_target_names_the_host(server: ServerProcess, version: str) -> None:
    """RFC 9112 3.2.2: the Host header is ignored for the target's authority (HTTP/1.0
    may send none: the app is given one)."""
    host = "other.test" if version == "HTTP/1.1" else None
    with server.client() as c:
        c.send(request("GET", "http://example.com:8080/abs", host=host, version=version))
        scope = c.read_response().json()
    hosts = [value for name, value in scope["headers"] if name == "host"]
    assert hosts == ["example.com:8080"]


def test_root_path(server_factory, loop: str) -> None:
    srv = server_factory("testapp:app", "--root-path", "/api/v1", loop=loop)
    scope = srv.get("/items?id=3").json()
    assert scope["root_path"] == "/api/v1"
    assert scope["path"] == "/api/v1/items"
    assert scope["query_string"] == "id=3"


def test_extensions_an_app_adds_stay_with_its_request(server: ServerProcess) -> None:
    with server.client() as c:
        scopes = []
        for _ in range(3):
            c.send(request("GET", "/scope"))
            scopes.append(c.read_response().json())
    for scope in scopes:
        assert "testapp.seen" not in scope["extensions"]
        assert scope["extensions"]["http.response.pathsend"] == {}
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}


@over_tls
def test_pathsend_with_and_without_length(server: ServerProcess, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096 + b"tail"
    file = tmp_path / "payload.bin"
    file.write_bytes(data)
    for cl in ("1", "0"):
        with server.client() as c:
            c.send(request("GET", f"/pathsend?file={file}&cl={cl}") + request("GET", "/ok"))
            resp = c.read_response()
            assert resp.status == 200
            assert resp.body == data
            assert not resp.incomplete
            assert c.read_response().body == b"ok"


def test_scope_json_round_trip_of_body(server: ServerProcess) -> None:
    body = json.dumps({"k": "v" * 100}).encode()
    resp = server.get("/ok")
    assert resp.status == 200
    with server.client() as c:
        c.send(request("POST", "/scope-with-body", body=body))
        assert c.read_response().json()["body"] == body.decode()


def test_app_runs_in_a_task_with_its_own_context(server: ServerProcess) -> None:
    with server.client() as c:
        for token in ("first", "second"):
            c.send(request("GET", f"/task-context?token={token}"))
            data = c.read_response().json()
            assert data["has_task"]
            assert data["before"] == "unset", "a context variable leaked between requests"
            assert data["child_saw"] == [token]
            assert data["cancel_scope_worked"]


@over_tls
def test_hundred_pipelined_requests_in_one_write(server: ServerProcess) -> None:
    batch = b"".join(request("GET", f"/pipe/{i}") for i in range(100))
    with server.client() as c:
        c.send(batch)
        responses = c.read_responses(100)
    assert [r.json()["path"] for r in responses] == [f"/pipe/{i}" for i in range(100)]
