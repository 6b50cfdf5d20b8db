"""Request bodies: Content-Length and chunked de-framing, 100-continue, body limits."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from rawhttp import ResponseError, chunked, request, wait_for
from realserver import ServerProcess
from tlscerts import over_tls

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def post_echo(server: ServerProcess, body: bytes, headers=None) -> bytes:
    with server.client() as c:
        c.send(request("POST", "/echo", headers or [], body))
        resp = c.read_response()
    assert resp.status == 200, resp
    return resp.body


@over_tls
@pytest.mark.parametrize("size", [0, 1, 1000, 1024 * 1024 + 7])
def test_content_length_body(server: ServerProcess, size: int) -> None:
    body = random.Random(size).randbytes(size)
    headers = [("Content-Length", str(size))]
    assert post_echo(server, body, headers) == body


def test_post_without_body_or_length(server: ServerProcess) -> None:
    assert post_echo(server, b"") == b""


def test_body_split_into_many_writes(server: ServerProcess) -> None:
    body = b"0123456789" * 50
    data = request("POST", "/echo", body=body)
    with server.client() as c:
        for i in range(0, len(data), 13):
            c.send(data[i : i + 13])
        assert c.read_response().body == body


def te(value: str = "chunked") -> list[tuple[str, str]]:
    return [("Transfer-Encoding", value)]


def test_chunked_one_byte_chunks(server: ServerProcess) -> None:
    body = b"one byte at a time, " * 20
    assert post_echo(server, chunked(*[bytes([b]) for b in body]), te()) == body


@over_tls
def test_chunked_huge_chunk(server: ServerProcess) -> None:
    body = random.Random(1).randbytes(4 * 1024 * 1024)
    assert post_echo(server, chunked(body), te()) == body


@over_tls
def test_chunked_mixed_sizes_sent_byte_by_byte(server: ServerProcess) -> None:
    body_chunks = [b"a", b"bc" * 100, b"d" * 4097, b"e"]
    data = request("POST", "/echo", te(), chunked(*body_chunks)) + request("GET", "/ok")
    with server.client() as c:
        for i in range(len(data)):
            c.send(data[i : i + 1])
        assert c.read_response().body == b"".join(body_chunks)
        assert c.read_response().body == b"ok"


def test_empty_chunked_body(server: ServerProcess) -> None:
    assert post_echo(server, b"0\r\n\r\n", te()) == b""


def test_chunk_extensions_are_ignored(server: ServerProcess) -> None:
    body = b'5;name=value\r\nhello\r\n3;a;b="q s"\r\nabc\r\n2;c = d\r\nde\r\n0;last=1\r\n\r\n'
    assert post_echo(server, body, te()) == b"helloabcde"


def test_chunk_extension_bad_whitespace_before_semicolon(server: ServerProcess) -> None:
    """RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS ext-name ...): recipients accept BWS."""
    assert post_echo(server, b"5 ;a\r\nhello\r\n0\r\n\r\n", te()) == b"hello"


def test_chunk_size_hex_forms(server: ServerProcess) -> None:
    body = b"A\r\n0123456789\r\na\r\nabcdefghij\r\n000f\r\n" + b"f" * 15 + b"\r\n0\r\n\r\n"
    assert post_echo(server, body, te()) == b"0123456789abcdefghij" + b"f" * 15


def test_trailers_are_consumed(server: ServerProcess) -> None:
    body = chunked(b"hello", trailers=b"X-Trailer: one\r\nX-Other: two\r\n")
    with server.client() as c:
        c.send(request("POST", "/echo", te(), body) + request("GET", "/ok"))
        assert c.read_response().body == b"hello"
        assert c.read_response().body == b"ok"


def test_transfer_coding_name_is_case_insensitive(server: ServerProcess) -> None:
    assert post_echo(server, chunked(b"abc"), te("Chunked")) == b"abc"


def test_chunked_echo_streams_back_chunked(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(request("POST", "/echo-stream", te(), chunked(b"ab", b"cd", b"ef")))
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == b"abcdef"  # one message or several: framing is the server's choice


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_unread_body_is_never_parsed_as_a_request(server: ServerProcess, framing: str) -> None:
    """An app that answers without reading the body: its bytes must not become a request."""
    mark = server.mark()
    if framing == "length":
        first = request("POST", "/no-read", body=SMUGGLED)
    else:
        first = request("POST", "/no-read", te(), chunked(SMUGGLED))
    with server.client() as c:
        c.send(first + request("GET", "/ok"))
        assert c.read_response().body == b"did not read"
        try:
            following = c.read_response()
        except ResponseError:
            following = None  # closing the connection instead is fine too
        if following is not None:
            # kept alive: the next answer must be /ok's, not the smuggled request's
            assert following.body == b"ok"
    assert "/smuggled" not in server.paths_seen_since(mark)
    server.assert_serving()


# -- Expect: 100-continue


@over_tls
def test_100_continue_sent_only_when_app_receives(server: ServerProcess, tmp_path: Path) -> None:
    gate = tmp_path / "gate-open"
    mark = server.mark()
    body = b"continued body"
    with server.client() as c:
        c.send(
            request(
                "POST",
                f"/gate?gate={gate}",
                [("Expect", "100-continue"), ("Content-Length", str(len(body)))],
            )
        )
        wait_for(lambda: any(r["event"] == "gate-entered" for r in server.records_since(mark)))
        # The app runs but has not called receive(): no 100 Continue yet.
        assert c.nothing_received_for(0.5), f"server sent early: {c.buf!r}"
        gate.touch()
        interim = c.read_head()
        assert interim.status == 100
        c.send(body)
        final = c.read_response(skip_interim=False)
        assert final.status == 200
        assert final.body == body


@over_tls
def test_100_continue_not_sent_when_app_does_not_read(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(request("POST", "/no-read", [("Expect", "100-continue"), ("Content-Length", "5")]))
        resp = c.read_response(skip_interim=False)
        assert resp.status == 200
        assert resp.body == b"did not read"
        # The body never came: the connection closes after this, and the response says
        # so (RFC 9110 10.1.1).
        assert resp.header("connection") == "close"
        assert not resp.keeps_alive


@over_tls
def test_100_continue_only_once(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(request("POST", "/echo", [("Expect", "100-continue"), *te()]))
        assert c.read_head().status == 100
        c.send(b"3\r\nabc\r\n")
        c.send(b"3\r\ndef\r\n0\r\n\r\n")
        final = c.read_response(skip_interim=False)
        assert final.status == 200, "a second interim response was sent"
        assert final.body == b"abcdef"
        c.send(request("GET", "/ok"))
        assert c.read_response(skip_interim=False).body == b"ok"


# -- limits on bodies and chunk metadata


@pytest.fixture(scope="module")
def limited(module_server_factory, loop: str) -> ServerProcess:
    return module_server_factory("testapp:app", "--limit-request-body", "100", loop=loop)


def test_body_at_limit_is_accepted(limited: ServerProcess) -> None:
    assert post_echo(limited, b"x" * 100) == b"x" * 100
    assert post_echo(limited, chunked(b"x" * 60, b"y" * 40), te()) == b"x" * 60 + b"y" * 40


def test_content_length_over_limit_is_413(limited: ServerProcess) -> None:
    mark = limited.mark()
    with limited.client() as c:
        c.send(request("POST", "/echo", body=b"x" * 101) + SMUGGLED)
        resp = c.read_response()
        assert resp.status == 413
        c.expect_closed()
    seen = limited.records_since(mark)
    assert not [r for r in seen if r.get("event") == "body"], "app got an over-limit body"
    assert "/smuggled" not in limited.paths_seen_since(mark)
    limited.assert_serving()


def test_chunked_body_over_limit_is_413(limited: ServerProcess) -> None:
    mark = limited.mark()
    with limited.client() as c:
        c.send(request("POST", "/echo", te(), chunked(b"x" * 60, b"y" * 60)) + SMUGGLED)
        resp = c.read_response()
        assert resp.status == 413
        c.expect_closed()
    seen = limited.records_since(mark)
    assert not [r for r in seen if r.get("event") == "body" and not r["disconnected"]]
    assert "/smuggled" not in limited.paths_seen_since(mark)
    limited.assert_serving()


def test_huge_chunk_extension_is_refused(server: ServerProcess) -> None:
    mark = server.mark()
    body = b"5;ext=" + b"e" * 20000 + b"\r\nhello\r\n0\r\n\r\n"
    with server.client() as c:
        c.send(request("POST", "/echo", te(), body) + SMUGGLED)
        resp = c.read_response()
        assert resp.status in (400, 413, 431)
        c.expect_closed()
    assert not [
        r for r in server.records_since(mark) if r.get("event") == "body" and not r["disconnected"]
    ]
    assert "/smuggled" not in server.paths_seen_since(mark)
    server.assert_serving()


@pytest.mark.parametrize(
    "trailers",
    [
        b"".join(b"X-T%d: v\r\n" % i for i in range(200)),
        b"X-Big: " + b"t" * 20000 + b"\r\n",
    ],
    ids=["too-many-trailers", "huge-trailer"],
)
def test_trailers_count_against_header_limits(server: ServerProcess, trailers: bytes) -> None:
    mark = server.mark()
    with server.client() as c:
        c.send(request("POST", "/echo", te(), chunked(b"hello", trailers=trailers)) + SMUGGLED)
        resp = c.read_response()
        assert resp.status in (400, 413, 431)
        c.expect_closed()
    assert not [
        r for r in server.records_since(mark) if r.get("event") == "body" and not r["disconnected"]
    ]
    assert "/smuggled" not in server.paths_seen_since(mark)
    server.assert_serving()
