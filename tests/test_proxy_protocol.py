"""``--proxy-protocol`` against a real server: the test client connects from 127.0.0.1
(the default ``--forwarded-allow-ips``) and speaks for the address its header states."""

from __future__ import annotations

import json
from typing import Any

import pytest
from h2raw import h2_request, open_h2
from proxyheader import v1, v2
from rawhttp import RawClient, request
from realserver import ServerProcess
from tlscerts import TLSCerts


def scope_over(client: RawClient) -> dict[str, Any]:
    client.send(request("GET", "/scope"))
    resp = client.read_response()
    assert resp.status == 200, resp
    data: dict[str, Any] = resp.json()
    return data


@pytest.fixture(scope="module")
def proxied(module_server_factory: Any) -> ServerProcess:
    return module_server_factory("testapp:app", "--proxy-protocol")


@pytest.mark.parametrize(
    ("header", "client", "server"),
    [
        (v1("203.0.113.7", "192.0.2.1", 4711, 443), ["203.0.113.7", 4711], ["192.0.2.1", 443]),
        (v1("2001:db8::7", "2001:db8::8", 1, 80), ["2001:db8::7", 1], ["2001:db8::8", 80]),
        (
            v2("198.51.100.2", "192.0.2.9", 65535, 8443, tlvs=b"\x04\x00\x03pad"),
            ["198.51.100.2", 65535],
            ["192.0.2.9", 8443],
        ),
        (v2("2001:db8::1", "::1", 0, 443), ["2001:db8::1", 0], ["::1", 443]),
    ],
    ids=["v1-ipv4", "v1-ipv6", "v2-ipv4-tlv", "v2-ipv6"],
)
def test_client_sees_its_stated_address(
    proxied: ServerProcess, header: bytes, client: list[Any], server: list[Any]
) -> None:
    with proxied.client(preamble=header) as c:
        # Keep-alive: every request on the connection has the header's client.
        for _ in range(3):
            scope = scope_over(c)
            assert scope["client"] == client
            assert scope["server"] == server


def test_local_command_keeps_the_socket_address(proxied: ServerProcess) -> None:
    with proxied.client(preamble=v2("10.0.0.1", "10.0.0.2", 1, 2, command=0)) as c:
        assert scope_over(c)["client"][0] == "127.0.0.1"


def test_garbage_is_closed_while_other_connections_carry_on(proxied: ServerProcess) -> None:
    mark = proxied.count("PROXY protocol")
    with proxied.client(preamble=v1("203.0.113.1", "192.0.2.1", 1, 2)) as good:
        assert scope_over(good)["client"][0] == "203.0.113.1"
        with proxied.client() as bad:
            bad.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert bad.expect_closed() == b""
        with proxied.client(preamble=b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n") as bad:
            assert bad.expect_closed() == b""
        assert scope_over(good)["client"][0] == "203.0.113.1"
    proxied.wait_log("PROXY protocol: closing the connection from 127.0.0.1", count=mark + 2)
    assert "Traceback" not in proxied.stderr()


def test_untrusted_peer_is_closed(server_factory: Any) -> None:
    srv: ServerProcess = server_factory(
        "testapp:app", "--proxy-protocol", "--forwarded-allow-ips", "10.9.9.9"
    )
    # One write: the server may close after the header alone, and a second send would race it.
    with srv.client() as c:
        c.send(v1("203.0.113.1", "192.0.2.1", 1, 2) + request("GET", "/scope"))
        assert c.expect_closed() == b""
    srv.wait_log("not in --forwarded-allow-ips")


def test_proxy_header_then_tls(server_factory: Any, tls_certs: TLSCerts) -> None:
    srv: ServerProcess = server_factory("testapp:app", "--proxy-protocol", tls=tls_certs)
    with srv.client(preamble=v2("203.0.113.5", "192.0.2.1", 5555, 443)) as c:
        for _ in range(2):
            scope = scope_over(c)
            assert scope["client"] == ["203.0.113.5", 5555]
            assert scope["scheme"] == "https"


def test_access_log_shows_the_stated_client(proxied: ServerProcess) -> None:
    with proxied.client(preamble=v1("203.0.113.99", "192.0.2.1", 1, 2)) as c:
        c.send(request("GET", "/ok"))
        assert c.read_response().status == 200
    proxied.wait_log(r'203\.0\.113\.99.*"GET /ok HTTP/1\.1" 200')


def test_http2_streams_see_the_stated_client(proxied: ServerProcess) -> None:
    # The PROXY header comes before the HTTP/2 preface; every stream has its client.
    header = v2("203.0.113.42", "192.0.2.1", 4242, 80)
    sock, conn = open_h2(proxied.host, proxied.port, preamble=header)
    with sock:
        for _ in range(2):
            status, body = h2_request(sock, conn, "GET", "/scope")
            assert status == 200
            scope = json.loads(body)
            assert scope["http_version"] == "2"
            assert scope["client"] == ["203.0.113.42", 4242]
