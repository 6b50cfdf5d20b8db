"""Strict parsing: every request-smuggling and malformed-request vector, byte for byte.

Each vector is followed on the same connection by a smuggled ``GET /smuggled``. For each one
the test asserts the status code, that the connection is closed, that the app never saw the
bad request nor the smuggled one (the test app records every request it is called with), and
that the server keeps serving new connections.
"""

from __future__ import annotations

import pytest
from rawhttp import ResponseError, request
from realserver import ServerProcess

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def req(head: bytes, body: bytes = b"") -> bytes:
    return head + b"\r\n\r\n" + body


# Requests whose head is invalid: the app must not be called at all.
HEAD_VECTORS: dict[str, tuple[bytes, set[int]]] = {
    # Content-Length / Transfer-Encoding conflicts
    "cl-and-te": (
        req(
            b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
            b"0\r\n\r\n",
        ),
        {400},
    ),
    "te-and-cl": (
        req(
            b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 30",
            b"0\r\n\r\n",
        ),
        {400},
    ),
    "cl-duplicate-same": (
        req(b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5", b"hello"),
        {400},
    ),
    "cl-duplicate-differing": (
        req(b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6", b"hello!"),
        {400},
    ),
    "cl-list": (req(b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5", b"hello"), {400}),
    "cl-plus": (req(b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: +5", b"hello"), {400}),
    "cl-negative": (req(b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: -1"), {400}),
    "cl-hex": (req(b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5", b"hello"), {400}),
    "cl-inner-space": (req(b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1 5"), {400}),
    "cl-empty": (req(b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: "), {400}),
    "cl-overflow": (
        req(b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999999"),
        {400, 413},
    ),
    "te-gzip": (
        req(b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip", b"abc"),
        {400, 501},
    ),
    "te-chunked-not-last": (
        req(b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip", b"0\r\n\r\n"),
        {400},
    ),
    "te-chunked-twice": (
        req(b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked", b"0\r\n\r\n"),
        {400},
    ),
    "te-two-fields": (
        req(
            b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Transfer-Encoding: identity",
            b"0\r\n\r\n",
        ),
        {400, 501},
    ),
    "te-identity": (
        req(b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity"),
        {400, 501},
    ),
    "te-xchunked": (
        req(b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked", b"0\r\n\r\n"),
        {400, 501},
    ),
    "te-vertical-tab": (
        req(b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \x0bchunked", b"0\r\n\r\n"),
        {400},
    ),
    "te-space-before-colon": (
        req(b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked", b"0\r\n\r\n"),
        {400},
    ),
    "te-in-http10": (
        req(b"POST /bad HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked", b"0\r\n\r\n"),
        {400},
    ),
    # line endings
    "bare-lf-request-line": (req(b"GET /bad HTTP/1.1\nHost: x"), {400}),
    "bare-lf-header": (req(b"GET /bad HTTP/1.1\r\nHost: x\nX-A: b"), {400}),
    "bare-lf-everywhere": (b"GET /bad HTTP/1.1\nHost: x\n\n", {400}),
    "bare-lf-end-of-head": (b"GET /bad HTTP/1.1\r\nHost: x\r\n\n", {400}),
    "bare-cr-request-line": (req(b"GET /bad HTTP/1.1\rHost: x"), {400}),
    "bare-cr-in-value": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-A: a\rb"), {400}),
    # header syntax
    "obs-fold-space": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b"), {400}),
    "obs-fold-tab": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n\tb"), {400}),
    "fold-before-first-header": (req(b"GET /bad HTTP/1.1\r\n Host: x"), {400}),
    "space-before-colon": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-A : b"), {400}),
    "space-before-colon-host": (req(b"GET /bad HTTP/1.1\r\nHost : x"), {400}),
    "tab-before-colon": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-A\t: b"), {400}),
    "ctl-nul-in-value": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-A: a\x00b"), {400}),
    "ctl-soh-in-value": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-A: a\x01b"), {400}),
    "ctl-esc-in-value": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-A: a\x1bb"), {400}),
    "ctl-del-in-value": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb"), {400}),
    "empty-header-name": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\n: b"), {400}),
    "bad-header-name": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX(A): b"), {400}),
    "header-name-with-space": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX A: b"), {400}),
    "header-without-colon": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-No-Colon"), {400}),
    # Host
    "http11-missing-host": (req(b"GET /bad HTTP/1.1\r\nX-A: b"), {400}),
    "http11-duplicate-host": (req(b"GET /bad HTTP/1.1\r\nHost: a\r\nHost: a"), {400}),
    "http11-differing-hosts": (req(b"GET /bad HTTP/1.1\r\nHost: a\r\nHost: b"), {400}),
    "host-port-not-digits": (req(b"GET /bad HTTP/1.1\r\nHost: x:8a"), {400}),
    "host-port-signed": (req(b"GET /bad HTTP/1.1\r\nHost: x:+80"), {400}),
    "host-two-ports": (req(b"GET /bad HTTP/1.1\r\nHost: x:80:80"), {400}),
    "host-empty-with-port": (req(b"GET /bad HTTP/1.1\r\nHost: :80"), {400}),
    "host-userinfo": (req(b"GET /bad HTTP/1.1\r\nHost: u@x"), {400}),
    "host-space-inside": (req(b"GET /bad HTTP/1.1\r\nHost: x y"), {400}),
    "host-bad-pct-encoding": (req(b"GET /bad HTTP/1.1\r\nHost: x%zz"), {400}),
    "host-ipv6-unclosed": (req(b"GET /bad HTTP/1.1\r\nHost: [::1"), {400}),
    "host-ipv6-bad-chars": (req(b"GET /bad HTTP/1.1\r\nHost: [::g]"), {400}),
    "host-ipv6-too-many-groups": (req(b"GET /bad HTTP/1.1\r\nHost: [1:2:3:4:5:6:7:8:9]"), {400}),
    "host-ipv6-junk-after": (req(b"GET /bad HTTP/1.1\r\nHost: [::1]x"), {400}),
    "host-ipvfuture-empty": (req(b"GET /bad HTTP/1.1\r\nHost: [v1.]"), {400}),
    "host-comma-list": (req(b"GET /bad HTTP/1.1\r\nHost: a, b"), {400}),
    # request line: method
    "method-bad-char": (req(b"G@T /bad HTTP/1.1\r\nHost: x"), {400}),
    "method-nul": (req(b"GE\x00T /bad HTTP/1.1\r\nHost: x"), {400}),
    "method-empty": (req(b" /bad HTTP/1.1\r\nHost: x"), {400}),
    "method-with-colon": (req(b"GE:T /bad HTTP/1.1\r\nHost: x"), {400}),
    # request line: version
    "version-lowercase": (req(b"GET /bad http/1.1\r\nHost: x"), {400}),
    "version-garbage": (req(b"GET /bad HTTP/1.x\r\nHost: x"), {400}),
    "version-no-dot": (req(b"GET /bad HTTP/11\r\nHost: x"), {400}),
    "version-wrong-name": (req(b"GET /bad HTTX/1.1\r\nHost: x"), {400}),
    "version-missing": (req(b"GET /bad \r\nHost: x"), {400}),
    "version-minor-two-digits": (req(b"GET /bad HTTP/1.10\r\nHost: x"), {400}),
    "version-major-only": (req(b"GET /bad HTTP/1\r\nHost: x"), {400}),
    "version-2-malformed": (req(b"GET /bad HTTP/2\r\nHost: x"), {400}),
    "version-2-lowercase": (req(b"GET /bad http/2.0\r\nHost: x"), {400}),
    "version-2-double-space": (req(b"GET  /bad HTTP/2.0\r\nHost: x"), {400}),
    # another major version (RFC 9110 6.2)
    "version-2": (req(b"GET /bad HTTP/2.0\r\nHost: x"), {505}),
    "version-3": (req(b"GET /bad HTTP/3.0\r\nHost: x"), {505}),
    "version-0-9": (req(b"GET /bad HTTP/0.9\r\nHost: x"), {505}),
    "version-2-bad-fields-after": (req(b"GET /bad HTTP/2.0\r\nX A: b"), {505}),
    "version-trailing-space": (req(b"GET /bad HTTP/1.1 \r\nHost: x"), {400}),
    # request line: target
    "target-ctl": (req(b"GET /bad\x01x HTTP/1.1\r\nHost: x"), {400}),
    "target-del": (req(b"GET /bad\x7f HTTP/1.1\r\nHost: x"), {400}),
    "target-space": (req(b"GET /bad x HTTP/1.1\r\nHost: x"), {400}),
    "target-double-space": (req(b"GET  /bad HTTP/1.1\r\nHost: x"), {400}),
    "target-not-origin-form": (req(b"GET bad/path HTTP/1.1\r\nHost: x"), {400}),
    "target-fragment-only": (req(b"GET # HTTP/1.1\r\nHost: x"), {400}),
    "target-empty": (req(b"GET  HTTP/1.1\r\nHost: x"), {400}),
    "target-non-ascii": (req(b"GET /bad\xc3\xa9 HTTP/1.1\r\nHost: x"), {400}),
    "target-fragment": (req(b"GET /bad#frag HTTP/1.1\r\nHost: x"), {400}),
    "target-authority-form": (req(b"GET x:80 HTTP/1.1\r\nHost: x"), {400}),
    "target-connect-authority-form": (req(b"CONNECT x:443 HTTP/1.1\r\nHost: x:443"), {400}),
    # CONNECT takes the authority-form only (RFC 9112 3.2.3), which is refused above
    "target-connect-origin-form": (req(b"CONNECT /bad HTTP/1.1\r\nHost: x"), {400}),
    "target-connect-origin-form-http10": (req(b"CONNECT /bad HTTP/1.0"), {400}),
    "target-connect-absolute-form": (req(b"CONNECT http://x/bad HTTP/1.1\r\nHost: x"), {400}),
    "target-connect-asterisk": (req(b"CONNECT * HTTP/1.1\r\nHost: x"), {400}),
    "target-authority-form-options": (req(b"OPTIONS x:443 HTTP/1.1\r\nHost: x:443"), {400}),
    "target-authority-form-post": (req(b"POST x:443 HTTP/1.1\r\nHost: x:443"), {400}),
    "target-asterisk-not-options": (req(b"GET * HTTP/1.1\r\nHost: x"), {400}),
    "target-absolute-bad-port": (req(b"GET http://x:8a/bad HTTP/1.1\r\nHost: x"), {400}),
    "target-absolute-userinfo": (req(b"GET http://u@x/bad HTTP/1.1\r\nHost: x"), {400}),
    "target-absolute-empty-host": (req(b"GET http://:80/bad HTTP/1.1\r\nHost: x"), {400}),
    "target-absolute-ipv6-unclosed": (req(b"GET http://[::1/bad HTTP/1.1\r\nHost: x"), {400}),
    "target-absolute-bad-host-char": (req(b"GET http://x|y/bad HTTP/1.1\r\nHost: x"), {400}),
    "target-other-scheme": (req(b"GET ftp://x/bad HTTP/1.1\r\nHost: x"), {400}),
    # more header syntax
    "ctl-vt-in-value": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-A: a\x0bb"), {400}),
    "ctl-nul-in-name": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX\x00A: b"), {400}),
    "cr-before-crlf-in-value": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX-A: a\r"), {400}),
    "obs-fold-of-content-length": (
        req(b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 5", b"hello"),
        {400},
    ),
    "non-token-header-name": (req(b"GET /bad HTTP/1.1\r\nHost: x\r\nX\xc3\xa9: b"), {400}),
}

# Requests whose head is valid but whose chunked body is not.
BODY_VECTORS: dict[str, bytes] = {
    "chunk-size-not-hex": b"zz\r\nhello\r\n0\r\n\r\n",
    "chunk-size-negative": b"-1\r\nhello\r\n0\r\n\r\n",
    "chunk-size-0x-prefix": b"0x5\r\nhello\r\n0\r\n\r\n",
    "chunk-size-overflow": b"ffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "chunk-size-empty": b"\r\nhello\r\n0\r\n\r\n",
    "chunk-size-inner-space": b"5 5\r\nhello\r\n0\r\n\r\n",
    "chunk-data-too-long": b"5\r\nhelloEXTRA\r\n0\r\n\r\n",
    "chunk-data-no-crlf": b"5\r\nhello0\r\n\r\n",
    "chunk-size-bare-lf": b"5\nhello\r\n0\r\n\r\n",
    "chunk-data-bare-lf": b"5\r\nhello\n0\r\n\r\n",
    "chunk-data-bare-cr": b"5\r\nhello\r0\r\n\r\n",
    "last-chunk-bare-lf": b"5\r\nhello\r\n0\n\n",
    "trailer-bare-lf": b"5\r\nhello\r\n0\r\nX-T: a\n\r\n",
    "trailer-obs-fold": b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n",
    "trailer-without-colon": b"5\r\nhello\r\n0\r\nnocolon\r\n\r\n",
    "trailer-space-before-colon": b"5\r\nhello\r\n0\r\nX-T : a\r\n\r\n",
    "trailer-empty-name": b"5\r\nhello\r\n0\r\n: a\r\n\r\n",
    "trailer-nul-in-value": b"5\r\nhello\r\n0\r\nX-T: a\x00b\r\n\r\n",
    "trailer-ctl-in-value": b"5\r\nhello\r\n0\r\nX-T: a\x01b\r\n\r\n",
    "trailer-bare-cr": b"5\r\nhello\r\n0\r\nX-T: a\rb\r\n\r\n",
    # chunk extensions (RFC 9112 7.1.1), each byte to the grammar
    "chunk-ext-unterminated-quote": b'5;a="x\r\nhello\r\n0\r\n\r\n',
    "chunk-ext-quote-spanning-lines": b'5;a="\r\nhello\r\n0\r\n\r\n"\r\nhello\r\n0\r\n\r\n',
    "chunk-ext-escaped-closing-quote": b'5;a="x\\"\r\nhello\r\n0\r\n\r\n',
    "chunk-ext-nul-in-quote": b'5;a="x\x00"\r\nhello\r\n0\r\n\r\n',
    "chunk-ext-ctl-in-quote": b'5;a="x\x01"\r\nhello\r\n0\r\n\r\n',
    "chunk-ext-del-in-quote": b'5;a="x\x7f"\r\nhello\r\n0\r\n\r\n',
    "chunk-ext-quoted-pair-ctl": b'5;a="\\\x00"\r\nhello\r\n0\r\n\r\n',
    "chunk-ext-junk-after-quote": b'5;a="x"y\r\nhello\r\n0\r\n\r\n',
    "chunk-ext-quote-inside-token": b'5;a=b"c"\r\nhello\r\n0\r\n\r\n',
    "chunk-ext-quoted-name": b'5;"a"=b\r\nhello\r\n0\r\n\r\n',
    "chunk-ext-empty": b"5;\r\nhello\r\n0\r\n\r\n",
    "chunk-ext-no-name": b"5;=b\r\nhello\r\n0\r\n\r\n",
    "chunk-ext-empty-value": b"5;a=\r\nhello\r\n0\r\n\r\n",
    "chunk-ext-non-token-name": b"5;a/b\r\nhello\r\n0\r\n\r\n",
    "chunk-ext-non-token-value": b"5;a=b,c\r\nhello\r\n0\r\n\r\n",
    "chunk-ext-space-in-name": b"5;a b\r\nhello\r\n0\r\n\r\n",
    "chunk-ext-trailing-space": b"5;a=b \r\nhello\r\n0\r\n\r\n",
    "chunk-ext-trailing-tab": b"5;a\t\r\nhello\r\n0\r\n\r\n",
    "chunk-ext-nul": b"5;a\x00\r\nhello\r\n0\r\n\r\n",
    "chunk-ext-obs-text-name": b"5;\xff\r\nhello\r\n0\r\n\r\n",
    "chunk-ext-bare-cr": b"5;a\rb\r\nhello\r\n0\r\n\r\n",
    "chunk-ext-bare-lf": b"5;a\nhello\r\n0\r\n\r\n",
    "last-chunk-ext-unterminated-quote": b'5\r\nhello\r\n0;a="x\r\n\r\n',
    # chunk-size lines
    "chunk-size-trailing-space": b"5 \r\nhello\r\n0\r\n\r\n",
    "chunk-size-bare-cr": b"5\rhello\r\n0\r\n\r\n",
    "chunk-size-17-digits-overflow": b"10000000000000000\r\nhello\r\n0\r\n\r\n",
    "chunk-data-cr-without-lf": b"5\r\nhello\rX0\r\n\r\n",
}


def assert_refused(
    server: ServerProcess, data: bytes, statuses: set[int], *, app_may_see: str | None = None
) -> None:
    mark = server.mark()
    with server.client() as c:
        c.send(data + SMUGGLED)
        resp = c.read_response()
        assert resp.status in statuses, (resp.status, resp.reason)
        leftover = c.expect_closed()
        assert b"HTTP/1." not in leftover, f"a second response followed: {leftover[:200]!r}"
    seen = server.records_since(mark)
    paths = [r["path"] for r in seen if r.get("event") == "request"]
    assert "/smuggled" not in paths
    if app_may_see is None:
        assert paths == [], f"the app saw {paths}"
    else:
        assert set(paths) <= {app_may_see}
        complete = [r for r in seen if r.get("event") == "body" and not r["disconnected"]]
        assert complete == [], f"the app got a body from a malformed request: {complete}"
    server.assert_serving()


@pytest.mark.parametrize("name", list(HEAD_VECTORS))
def test_malformed_head_is_refused(server: ServerProcess, name: str) -> None:
    data, statuses = HEAD_VECTORS[name]
    assert_refused(server, data, statuses)


@pytest.mark.parametrize("name", list(BODY_VECTORS))
def test_malformed_chunked_body_is_refused(server: ServerProcess, name: str) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert_refused(server, head + BODY_VECTORS[name], {400}, app_may_see="/echo")


def test_overlong_chunk_size_line_is_431(server: ServerProcess) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"0" * 9000 + b"5\r\nhello\r\n0\r\n\r\n"
    assert_refused(server, head + body, {431}, app_may_see="/echo")


def chunked_post(body: bytes, target: bytes = b"/echo") -> bytes:
    return b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body


# Chunked bodies the grammar admits: served, and the next request on the connection too.
VALID_CHUNKED: dict[str, bytes] = {
    "ext-token": b"5;a=b\r\nhello\r\n0\r\n\r\n",
    "ext-name-only": b"5;a;b\r\nhello\r\n0;c\r\n\r\n",
    "ext-quoted": b'5;a="x y;z=\\"q\\" \\\\"\r\nhello\r\n0\r\n\r\n',
    "ext-quoted-obs-text": b'5;a="caf\xc3\xa9"\r\nhello\r\n0\r\n\r\n',
    "ext-bws": b'5 \t; a = "x" ;b\t=\tc\r\nhello\r\n0\r\n\r\n',
    "leading-zeros": b"000000000000000000005\r\nhello\r\n000000000000000000000\r\n\r\n",
    "leading-zeros-with-ext": b"00000000000000000000000000005;a=1\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(VALID_CHUNKED))
def test_chunk_extensions_and_sizes_to_the_grammar_are_served(
    server: ServerProcess, name: str
) -> None:
    with server.client() as c:
        c.send(chunked_post(VALID_CHUNKED[name]) + b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        first, second = c.read_responses(2)
    assert (first.status, first.body) == (200, b"hello")
    assert (second.status, second.body) == (200, b"ok")


def test_trailers_never_change_framing_nor_reach_the_scope(server: ServerProcess) -> None:
    trailers = (
        b"X-Trailer: t\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\nHost: evil\r\n"
    )
    body = b"5\r\nhello\r\n0\r\n" + trailers + b"\r\n"
    with server.client() as c:
        c.send(chunked_post(body, b"/scope") + b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        first, second = c.read_responses(2)
    assert first.status == 200
    scope = first.json()
    assert scope["body"] == "hello"
    assert scope["headers"] == [["host", "x"], ["transfer-encoding", "chunked"]]
    assert (second.status, second.body) == (200, b"ok")


@pytest.mark.parametrize(
    "host",
    [
        "",
        "x:",
        "x:08080",
        "10.0.0.1:80",
        "[::1]",
        "[2001:db8::1]:443",
        "[::ffff:192.0.2.1]:80",
        "[v1.fe:x]",
        "xn--caf-dma.fr",
        "a%20b",
        "a!$&'()*+,;=b",
    ],
)
def test_hosts_to_the_grammar_are_served(server: ServerProcess, host: str) -> None:
    with server.client() as c:
        c.send(f"GET /scope HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        resp = c.read_response()
    assert resp.status == 200
    assert resp.json()["headers"] == [["host", host]]


def test_absolute_form_with_ip_literal_is_served(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(b"GET http://[::1]:8080/scope?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        scope = c.read_response().json()
    assert (scope["raw_path"], scope["query_string"]) == ("/scope", "q=1")


def test_vchars_outside_pchar_reach_the_app_unaltered(server: ServerProcess) -> None:
    # Kept on purpose (docs/security.md): real clients send these unencoded, and they
    # change neither the form of the target nor the framing.
    with server.client() as c:
        c.send(b'GET /a|b{c}"d^`<>\\[]%zz?x=|{} HTTP/1.1\r\nHost: x\r\n\r\n')
        scope = c.read_response().json()
    assert scope["raw_path"] == '/a|b{c}"d^`<>\\[]%zz'
    assert scope["query_string"] == "x=|{}"


def test_http09_request_is_refused(server: ServerProcess) -> None:
    mark = server.mark()
    # Read for less than the server's 10 s head timeout: a server that just waits for the
    # rest of a head that will never come (and closes at the timeout) must fail here.
    with server.client(timeout=5) as c:
        c.send(b"GET /bad\r\n")
        try:
            resp = c.read_response()
        except ResponseError:
            resp = None  # closed without an answer: refused too
        if resp is not None:
            assert resp.status == 400
        c.expect_closed()
    assert server.paths_seen_since(mark) == []
    server.assert_serving()


@pytest.mark.parametrize("minor", [2, 9])
def test_a_higher_minor_version_is_served_as_http11(server: ServerProcess, minor: int) -> None:
    """RFC 9110 6.2: processed as the highest minor version implemented, 1.1: a Host is
    required, the connection persists, the response says HTTP/1.1."""
    with server.client() as c:
        c.send(b"GET /scope HTTP/1.%d\r\nHost: x\r\n\r\n" % minor)
        resp = c.read_response()
        assert (resp.status, resp.version) == (200, "HTTP/1.1")
        assert resp.json()["http_version"] == "1.1"
        c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().body == b"ok"
    assert_refused(server, req(b"GET /bad HTTP/1.%d" % minor), {400})


def test_http10_without_host_is_fine(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(b"GET /ok HTTP/1.0\r\n\r\n")
        assert c.read_response().body == b"ok"


def test_optional_whitespace_around_values_is_trimmed(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(b"GET /ows HTTP/1.1\r\nHost:x\r\nX-A:\t value with  inner  space \t\r\n\r\n")
        headers = c.read_response().json()["headers"]
    assert ["host", "x"] in headers
    assert ["x-a", "value with  inner  space"] in headers


def test_obs_text_in_value_reaches_app(server: ServerProcess) -> None:
    with server.client() as c:
        c.send(b"GET /obs HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9\r\n\r\n")
        headers = c.read_response().json()["headers"]
    assert ["x-latin", "caf\xe9"] in headers


# -- limits


def test_default_request_line_limit_is_414(server: ServerProcess) -> None:
    target = "/" + "a" * 9000
    assert_refused(server, request("GET", target), {414})


def test_request_line_just_under_default_limit(server: ServerProcess) -> None:
    target = "/" + "a" * 8000
    assert server.get(target).status == 200


def test_default_field_count_limit_is_431(server: ServerProcess) -> None:
    headers = [(f"X-H{i}", "v") for i in range(101)]
    assert_refused(server, request("GET", "/bad", headers), {431})


def test_default_field_size_limit_is_431(server: ServerProcess) -> None:
    assert_refused(server, request("GET", "/bad", [("X-Big", "v" * 9000)]), {431})


def test_huge_header_name_is_431(server: ServerProcess) -> None:
    assert_refused(server, request("GET", "/bad", [("X" * 9000, "v")]), {431})


@pytest.fixture(scope="module")
def tight(module_server_factory, loop: str) -> ServerProcess:
    return module_server_factory(
        "testapp:app",
        "--limit-request-line",
        "100",
        "--limit-request-fields",
        "5",
        "--limit-request-field-size",
        "100",
        loop=loop,
    )


def test_limit_request_line_flag(tight: ServerProcess) -> None:
    assert tight.get("/" + "a" * 60).status == 200
    assert_refused(tight, request("GET", "/" + "a" * 200), {414})


def test_limit_request_fields_flag(tight: ServerProcess) -> None:
    four = [(f"X-H{i}", "v") for i in range(4)]  # plus Host: five fields
    assert tight.get("/ok", headers=four).status == 200
    five = [(f"X-H{i}", "v") for i in range(5)]
    assert_refused(tight, request("GET", "/bad", five), {431})


def test_limit_request_field_size_flag(tight: ServerProcess) -> None:
    assert tight.get("/ok", headers=[("X-A", "v" * 50)]).status == 200
    assert_refused(tight, request("GET", "/bad", [("X-A", "v" * 150)]), {431})


def test_head_dribbled_byte_by_byte_is_still_checked(server: ServerProcess) -> None:
    data = (
        req(
            b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
            b"0\r\n\r\n",
        )
        + SMUGGLED
    )
    mark = server.mark()
    with server.client() as c:
        for i in range(len(data)):
            try:
                c.send(data[i : i + 1])
            except OSError:
                break  # the server may close once it has seen enough
        assert c.read_response().status == 400
        c.expect_closed()
    assert server.paths_seen_since(mark) == []
