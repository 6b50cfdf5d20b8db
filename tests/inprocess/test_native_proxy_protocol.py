"""``--proxy-protocol`` in-process: the PROXY header read beneath HTTP, through the mock
transport (its peer is 127.0.0.1, the default ``--forwarded-allow-ips``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from mockconn import LOCAL, PEER, MockConnection, Runner
from proxyheader import V2_SIGNATURE, v1, v2

GET = b"GET /scope HTTP/1.1\r\nhost: x\r\n\r\n"
V1 = v1("203.0.113.7", "192.0.2.1", 4711, 443)


class App:
    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def serve(run: Runner, chunks: list[bytes], n: int, **settings: Any) -> App:
    """Feed ``chunks`` one read each to a connection with ``--proxy-protocol``; wait for
    ``n`` responses."""
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app, proxy_protocol=True, **settings)
        for chunk in chunks:
            conn.send(chunk)
        await conn.responses(n)

    run(scenario)
    return app


def test_v1_client_and_server_in_the_scope(run: Runner) -> None:
    app = serve(run, [V1 + GET], 1)
    assert app.scopes[0]["client"] == ("203.0.113.7", 4711)
    assert app.scopes[0]["server"] == ("192.0.2.1", 443)


def test_v2_ipv6_with_tlvs_split_byte_by_byte(run: Runner) -> None:
    header = v2("2001:db8::7", "2001:db8::8", 8080, 443, tlvs=b"\x01\x00\x02h2")
    data = header + GET + GET
    app = serve(run, [data[i : i + 1] for i in range(len(data))], 2)
    # Keep-alive: the second request on the connection has the same client.
    assert [s["client"] for s in app.scopes] == [("2001:db8::7", 8080)] * 2


def test_local_command_keeps_the_socket_addresses(run: Runner) -> None:
    app = serve(run, [v2("10.0.0.1", "10.0.0.2", 1, 2, command=0) + GET], 1)
    assert app.scopes[0]["client"] == PEER
    assert app.scopes[0]["server"] == LOCAL


def test_unknown_keeps_the_socket_addresses(run: Runner) -> None:
    app = serve(run, [b"PROXY UNKNOWN\r\n", GET], 1)
    assert app.scopes[0]["client"] == PEER


def test_forwarded_headers_are_judged_on_the_proxied_client(run: Runner) -> None:
    # The PROXY client is not a trusted proxy: its X-Forwarded-For is ignored...
    fwd = b"GET / HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 198.51.100.9\r\n\r\n"
    app = serve(run, [V1 + fwd], 1)
    assert app.scopes[0]["client"] == ("203.0.113.7", 4711)
    # ...and honoured when it is.
    app = serve(run, [V1 + fwd], 1, forwarded_allow_ips="127.0.0.1,203.0.113.7")
    assert app.scopes[0]["client"] == ("198.51.100.9", 0)


def refused(
    run: Runner, chunks: list[bytes], caplog: pytest.LogCaptureFixture, **settings: Any
) -> None:
    """The connection is closed without a byte written and one warning line."""
    app = App()

    async def scenario() -> None:
        conn = MockConnection(app, proxy_protocol=True, **settings)
        for chunk in chunks:
            conn.send(chunk)
        await conn.until(lambda: conn.transport.closed, "the close")
        await conn.idle()
        assert conn.transport.written == b""

    with caplog.at_level(logging.WARNING):
        run(scenario)
    assert app.scopes == []
    lines = [r for r in caplog.records if "PROXY protocol" in r.getMessage()]
    assert len(lines) == 1, caplog.text
    assert lines[0].exc_info is None


@pytest.mark.parametrize(
    "chunks",
    [
        [GET],
        [b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 99999\r\n" + GET],
        [b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 443\n" + GET],
        [b"PROXY UNKNOWN " + b"x" * 100, b"\r\n" + GET, GET],
        [V2_SIGNATURE + b"\x31\x11\x00\x00" + GET],
        [b"\x16\x03\x01\x02\x00"],
    ],
    ids=["no-header", "bad-port", "bare-lf", "too-long", "v2-version", "tls-first"],
)
def test_invalid_header_closes(
    run: Runner, caplog: pytest.LogCaptureFixture, chunks: list[bytes]
) -> None:
    refused(run, chunks, caplog)


def test_untrusted_peer_is_closed_at_once(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    refused(run, [V1 + GET], caplog, forwarded_allow_ips="10.9.9.9")


def test_header_must_arrive_within_the_head_timeout(run: Runner) -> None:
    async def scenario() -> None:
        conn = MockConnection(App(), proxy_protocol=True, timeout_request_header=0.01)
        conn.send(V1[:10])
        await asyncio.sleep(0.02)
        conn.state.sweep()
        await conn.until(lambda: conn.transport.closed, "the close")
        assert conn.transport.written == b""

    run(scenario)
