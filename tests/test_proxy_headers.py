"""Proxy headers (X-Forwarded-For/-Proto and RFC 7239 Forwarded): honoured only from trusted
peers. The test client connects from 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
from rawhttp import wait_for
from realserver import ServerProcess


def scope_via(
    server: ServerProcess, headers: list[tuple[str, str]], path: str = "/proxy"
) -> dict[str, Any]:
    resp = server.get(path, headers=headers)
    assert resp.status == 200, resp
    return dict(resp.json())


@pytest.fixture(scope="module")
def trusted(module_server_factory) -> ServerProcess:
    return module_server_factory("testapp:app")  # default: --forwarded-allow-ips 127.0.0.1


@pytest.fixture(scope="module")
def untrusted(module_server_factory) -> ServerProcess:
    return module_server_factory("testapp:app", "--forwarded-allow-ips", "10.1.2.3")


def test_x_forwarded_from_trusted_peer(trusted: ServerProcess) -> None:
    scope = scope_via(trusted, [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")])
    assert scope["client"][0] == "203.0.113.7"
    assert scope["scheme"] == "https"


def test_x_forwarded_chain_takes_the_closest_untrusted_hop(trusted: ServerProcess) -> None:
    scope = scope_via(trusted, [("X-Forwarded-For", "198.51.100.1, 203.0.113.7")])
    assert scope["client"][0] == "203.0.113.7"


def test_x_forwarded_chain_skips_trusted_hops(module_server_factory) -> None:
    srv = module_server_factory("testapp:app", "--forwarded-allow-ips", "127.0.0.1,203.0.113.7")
    scope = scope_via(srv, [("X-Forwarded-For", "198.51.100.1, 203.0.113.7")])
    assert scope["client"][0] == "198.51.100.1"


def test_trusted_network_notation(module_server_factory) -> None:
    srv = module_server_factory("testapp:app", "--forwarded-allow-ips", "127.0.0.0/8")
    scope = scope_via(srv, [("X-Forwarded-For", "203.0.113.9")])
    assert scope["client"][0] == "203.0.113.9"


def test_trust_all(module_server_factory) -> None:
    srv = module_server_factory("testapp:app", "--forwarded-allow-ips", "*")
    scope = scope_via(srv, [("X-Forwarded-For", "203.0.113.10"), ("X-Forwarded-Proto", "https")])
    assert scope["client"][0] == "203.0.113.10"
    assert scope["scheme"] == "https"


def test_forwarded_header_from_trusted_peer(trusted: ServerProcess) -> None:
    scope = scope_via(trusted, [("Forwarded", "for=203.0.113.43;proto=https;by=10.0.0.1")])
    assert scope["client"][0] == "203.0.113.43"
    assert scope["scheme"] == "https"


def test_forwarded_header_quoted_ipv6_with_port(trusted: ServerProcess) -> None:
    scope = scope_via(trusted, [("Forwarded", 'for="[2001:db8:cafe::17]:4711"')])
    assert scope["client"][0] == "2001:db8:cafe::17"


def test_forwarded_header_list_takes_closest_untrusted(trusted: ServerProcess) -> None:
    scope = scope_via(trusted, [("Forwarded", "for=198.51.100.1, for=203.0.113.43")])
    assert scope["client"][0] == "203.0.113.43"


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")],
        [("Forwarded", "for=203.0.113.43;proto=https")],
    ],
    ids=["x-forwarded", "forwarded"],
)
def test_untrusted_peer_is_ignored(untrusted: ServerProcess, headers) -> None:
    scope = scope_via(untrusted, headers)
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"


def test_no_proxy_headers_flag(module_server_factory) -> None:
    srv = module_server_factory("testapp:app", "--no-proxy-headers", "--forwarded-allow-ips", "*")
    scope = scope_via(srv, [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")])
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"


def test_garbage_forwarded_values_do_not_break_requests(trusted: ServerProcess) -> None:
    scope = scope_via(
        trusted, [("X-Forwarded-For", "not an ip,,"), ("X-Forwarded-Proto", "gopher")]
    )
    assert scope["scheme"] in ("http", "https")
    scope = scope_via(trusted, [("Forwarded", 'for=";;;;;')])
    assert scope["type"] == "http"


def access_line(server: ServerProcess, path: str) -> str:
    found = wait_for(
        lambda: [x for x in server.stderr().splitlines() if f'"GET {path} HTTP/1.1" 200' in x]
    )
    assert len(found) == 1, found
    return str(found[0])


@pytest.mark.parametrize(
    ("headers", "client"),
    [
        ([("X-Forwarded-For", "203.0.113.7")], "203.0.113.7:0"),
        ([("Forwarded", 'for="[2001:db8::17]:4711"')], "2001:db8::17:0"),
    ],
    ids=["x-forwarded", "forwarded"],
)
def test_access_log_names_the_forwarded_client(
    trusted: ServerProcess, headers: list[tuple[str, str]], client: str
) -> None:
    """The access log shows the client the app sees, not the proxy's address."""
    path = f"/proxy?log={client}"
    scope = scope_via(trusted, headers, path)
    assert f"{scope['client'][0]}:{scope['client'][1]}" == client
    line = access_line(trusted, path)
    assert f"] {client} - " in line, line
    assert "127.0.0.1" not in line


def test_access_log_keeps_the_peer_when_untrusted(untrusted: ServerProcess) -> None:
    path = "/proxy?log=untrusted"
    scope_via(untrusted, [("X-Forwarded-For", "203.0.113.7")], path)
    line = access_line(untrusted, path)
    assert "] 127.0.0.1:" in line and "203.0.113.7" not in line, line


@pytest.mark.parametrize(
    ("env", "client"),
    [
        ({"FORWARDED_ALLOW_IPS": "127.0.0.1"}, "203.0.113.7"),
        ({"FORWARDED_ALLOW_IPS": "10.1.2.3"}, "127.0.0.1"),
        ({"FORWARDED_ALLOW_IPS": "10.1.2.3", "RUVICORN_FORWARDED_ALLOW_IPS": "*"}, "203.0.113.7"),
        ({"FORWARDED_ALLOW_IPS": "*", "RUVICORN_FORWARDED_ALLOW_IPS": "10.1.2.3"}, "127.0.0.1"),
    ],
    ids=["shared-trusts", "shared-distrusts", "ours-wins-trust", "ours-wins-distrust"],
)
def test_forwarded_allow_ips_from_the_shared_env_name(
    server_factory, env: dict[str, str], client: str
) -> None:
    """Operators who set FORWARDED_ALLOW_IPS keep their trusted proxies; RUVICORN_ wins."""
    srv: ServerProcess = server_factory("testapp:app", env=env)
    scope = scope_via(srv, [("X-Forwarded-For", "203.0.113.7")])
    assert scope["client"][0] == client
