"""HTTP/3 black-box: real server processes with --http3, aioquic's HTTP/3 client (h3client.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aioquic.tls import CipherSuite
from h3client import BOUND, H3Client, Options, ResetByServer, h3_connect
from rawhttp import wait_for
from realserver import REPO, ServerProcess, free_port
from test_metrics import Samples, requests_by_label, settle, value
from test_tls import (
    assert_no_client_certificate,
    assert_the_client_certificate,
    mtls_args,
    pem_body,
)
from tlscerts import TLSCerts

from ruvicorn import listeners
from ruvicorn.config import Config, ConfigError
from ruvicorn.worker import quic

EXAMPLES = REPO / "examples"
MIB = 1024 * 1024


def run(
    server: ServerProcess,
    scenario: Callable[[H3Client], Awaitable[Any]],
    options: Options | None = None,
) -> Any:
    """Run ``scenario`` on one fresh HTTP/3 connection to ``server``, bounded."""
    assert server.tls is not None
    ca_file = server.tls.ca_file

    async def main() -> Any:
        async with h3_connect(server.host, server.port, ca_file, options) as client:
            return await asyncio.wait_for(scenario(client), 3 * BOUND)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def h3_server(module_server_factory: Any, loop: str, tls_certs: TLSCerts) -> ServerProcess:
    server: ServerProcess = module_server_factory(
        "testapp:app", "--http3", loop=loop, tls=tls_certs
    )
    return server


def test_get_scope_says_http_3(h3_server: ServerProcess) -> None:
    response = run(h3_server, lambda c: c.request("GET", "/scope?x=1"))
    assert response.status == 200
    scope = json.loads(response.body)
    assert scope["http_version"] == "3"
    assert scope["scheme"] == "https"
    assert scope["type"] == "http"
    assert scope["query_string"] == "x=1"
    assert scope["server"] == [h3_server.host, h3_server.port]
    assert scope["client"][0] == h3_server.host
    assert ["host", "localhost"] in scope["headers"]


def scopes(client: H3Client, count: int) -> Awaitable[list[Any]]:
    """``count`` scopes, one request after another on ``client``'s connection."""

    async def scenario() -> list[Any]:
        return [json.loads((await client.request("GET", "/scope")).body) for _ in range(count)]

    return scenario()


@pytest.mark.parametrize(
    "suite",
    [
        CipherSuite.AES_128_GCM_SHA256,
        CipherSuite.AES_256_GCM_SHA384,
        CipherSuite.CHACHA20_POLY1305_SHA256,
    ],
)
def test_tls_extension_fields(
    h3_server: ServerProcess, tls_certs: TLSCerts, suite: CipherSuite
) -> None:
    first, second = run(h3_server, lambda c: scopes(c, 2), Options(cipher_suites=[suite]))
    (third,) = run(h3_server, lambda c: scopes(c, 1))
    ext = first["extensions"]["tls"]
    assert pem_body(ext["server_cert"]) == pem_body(tls_certs.server.leaf_pem())
    assert ext["tls_version"] == 0x0304
    assert ext["cipher_suite"] == int(suite)
    assert_no_client_certificate(ext)
    # Built once per QUIC connection: its second request sees the very same dict.
    assert first["tls_dict"] == second["tls_dict"] != third["tls_dict"]


@pytest.fixture(scope="module")
def mtls_servers(module_server_factory: Any, tls_certs: TLSCerts) -> dict[int, ServerProcess]:
    """HTTP/3 servers that require (2) and ask for (1) a client certificate."""
    return {
        reqs: module_server_factory(
            "testapp:app", "--http3", *mtls_args(tls_certs, reqs), tls=tls_certs
        )
        for reqs in (1, 2)
    }


@pytest.mark.parametrize("reqs", [1, 2])
def test_client_certificate_signed_by_the_ca(
    mtls_servers: dict[int, ServerProcess], tls_certs: TLSCerts, reqs: int
) -> None:
    options = Options(client_file=tls_certs.client_file)
    (scope,) = run(mtls_servers[reqs], lambda c: scopes(c, 1), options)
    ext = scope["extensions"]["tls"]
    assert_the_client_certificate(ext, tls_certs)


def test_required_client_certificate(
    mtls_servers: dict[int, ServerProcess], tls_certs: TLSCerts
) -> None:
    server = mtls_servers[2]
    for options in (Options(), Options(client_file=tls_certs.rogue_client_file)):
        # The client's side of a TLS 1.3 handshake ends before the server has read its
        # certificate: it learns of the refusal (a CRYPTO_ERROR close) on its first request.
        with pytest.raises((ConnectionError, ResetByServer)):
            run(server, lambda c: c.request("GET", "/ok"), options)
    assert "Traceback" not in server.stderr()
    run(server, lambda c: c.request("GET", "/ok"), Options(client_file=tls_certs.client_file))


def test_optional_client_certificate_may_be_omitted(
    mtls_servers: dict[int, ServerProcess],
) -> None:
    (scope,) = run(mtls_servers[1], lambda c: scopes(c, 1))
    ext = scope["extensions"]["tls"]
    assert_no_client_certificate(ext)


def test_post_echo_one_mib(h3_server: ServerProcess) -> None:
    body = os.urandom(MIB)
    response = run(h3_server, lambda c: c.request("POST", "/echo", body))
    assert response.status == 200
    assert hashlib.sha256(response.body).digest() == hashlib.sha256(body).digest()


def test_get_one_mib_streamed(h3_server: ServerProcess) -> None:
    path = f"/stream?chunks=16&size={MIB // 16}"
    response = run(h3_server, lambda c: c.request("GET", path))
    assert response.status == 200
    expected = b"".join((b"%d" % (i % 10)) * (MIB // 16) for i in range(16))
    assert hashlib.sha256(response.body).digest() == hashlib.sha256(expected).digest()


def test_fifty_concurrent_streams_on_one_connection(h3_server: ServerProcess) -> None:
    bodies = [os.urandom(1000 + i) for i in range(50)]

    async def scenario(client: H3Client) -> list[Any]:
        waiters = [client.start("POST", "/echo", body) for body in bodies]
        return list(await asyncio.wait_for(asyncio.gather(*waiters), BOUND))

    responses = run(h3_server, scenario)
    assert [r.status for r in responses] == [200] * 50
    assert [r.body for r in responses] == bodies


def test_a_client_moving_to_another_port_keeps_its_connection(h3_server: ServerProcess) -> None:
    """NAT rebinding or migration: the client's datagrams come from a new port (its old
    socket closed, so every answer must go to the new one). QUIC validates the new path
    and the connection goes on."""
    assert h3_server.tls is not None
    ca_file = h3_server.tls.ca_file

    async def main() -> tuple[Any, Any, Any, int, int]:
        loop = asyncio.get_running_loop()
        async with h3_connect(h3_server.host, h3_server.port, ca_file) as client:
            before = json.loads((await client.request("GET", "/scope")).body)
            old = client._transport
            assert old is not None
            # A socket like the one aioquic's client opens (dual-stack: it addresses the
            # server as an IPv4-mapped IPv6 address).
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::", 0))
            moved, _ = await loop.create_datagram_endpoint(lambda: client, sock=sock)
            try:
                old.close()
                client.change_connection_id()
                after = await client.request("POST", "/echo", b"x" * 100_000)
                scope = json.loads((await client.request("GET", "/scope")).body)
            finally:
                ports = (old.get_extra_info("sockname")[1], moved.get_extra_info("sockname")[1])
        moved.close()
        return before, after, scope, *ports

    before, after, scope, old_port, new_port = asyncio.run(main())
    assert before["client"][1] == old_port != new_port
    assert after.status == 200 and after.body == b"x" * 100_000
    # A request started after the move says where the client is now.
    assert scope["client"] == [h3_server.host, new_port]


def test_tcp_responses_announce_http3(h3_server: ServerProcess) -> None:
    verify = h3_server.client_context()
    assert verify is not None
    with httpx.Client(verify=verify, timeout=BOUND) as client:
        response = client.get(f"{h3_server.url}/ok")
    assert response.status_code == 200
    assert response.headers["alt-svc"] == f'h3=":{h3_server.port}"; ma=86400'


def test_wrong_alpn_is_refused_and_the_server_serves_on(h3_server: ServerProcess) -> None:
    assert h3_server.tls is not None
    ca_file = h3_server.tls.ca_file

    async def wrong() -> None:
        async with h3_connect(h3_server.host, h3_server.port, ca_file, Options(alpn=["h2"])):
            pass

    with pytest.raises(ConnectionError):
        asyncio.run(wrong())
    assert run(h3_server, lambda c: c.request("GET", "/ok")).body == b"ok"


def junk_datagram(i: int) -> bytes:
    """Random bytes, or (every other one) a long-header packet claiming to be a QUIC v1
    Initial of the minimum size, then garbage."""
    if i % 2:
        return b"\xc0\x00\x00\x00\x01" + os.urandom(1200)
    return os.urandom(1 + i % 1400)


def test_junk_datagrams_cost_nothing(h3_server: ServerProcess) -> None:
    address = (h3_server.host, h3_server.port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(1000):
            sock.sendto(junk_datagram(i), address)
    assert h3_server.proc is not None and h3_server.proc.poll() is None
    assert run(h3_server, lambda c: c.request("GET", "/ok")).body == b"ok"


def test_client_reset_cancels_the_app(h3_server: ServerProcess) -> None:
    """STOP_SENDING while the app awaits a long sleep: its Task is cancelled (as on an
    HTTP/2 stream), and a send() it makes then raises ClientDisconnected."""
    mark = len(h3_server.records())

    def events(name: str) -> list[dict[str, Any]]:
        return [r for r in h3_server.records_since(mark) if r.get("event") == name]

    def cancelled() -> list[dict[str, Any]]:
        return events("cancelled")

    async def scenario(client: H3Client) -> list[dict[str, Any]]:
        waiter = client.start("GET", "/cancel-me")
        # STOP_SENDING must find the app awaiting its sleep: sent before the app started
        # (a fixed pause could be too short on a busy machine), it would cancel nothing.
        await until(lambda: bool(events("cancel-me-start")), "the app to start")
        stream_id = next(iter(client.waiters))
        # A request whose side ended already is abandoned with STOP_SENDING.
        client._quic.stop_stream(stream_id, 0x10C)  # H3_REQUEST_CANCELLED
        client.transmit()
        waiter.cancel()
        # The connection stays open meanwhile: its end alone would cancel nothing.
        for _ in range(int(BOUND / 0.05)):
            if outcome := cancelled():
                return outcome
            await asyncio.sleep(0.05)
        return []

    outcome = run(h3_server, scenario)
    assert outcome == [{"event": "cancelled", "send_raised": "ClientDisconnected"}]
    assert "Traceback" not in h3_server.stderr()


def test_starlette_app(server_factory: Any, tls_certs: TLSCerts) -> None:
    server = server_factory("starlette_app:app", "--http3", app_dir=EXAMPLES, tls=tls_certs)

    async def scenario(client: H3Client) -> list[Any]:
        hello = await client.request("GET", "/")
        posted = await client.request(
            "POST", "/json", b'{"k": [1, 2]}', ((b"content-type", b"application/json"),)
        )
        return [hello, posted]

    hello, posted = run(server, scenario)
    assert hello.status == 200 and json.loads(hello.body)["hello"] == "world"
    assert posted.status == 200 and json.loads(posted.body) == {"received": {"k": [1, 2]}}


async def start_slow(client: H3Client, server: Any, seconds: float) -> Any:
    """A /slow request in flight: its response to await, once the app has started it."""
    mark = server.mark()
    waiter = client.start("GET", f"/slow?seconds={seconds}")
    await asyncio.to_thread(
        wait_for,
        lambda: any(r.get("event") == "slow-start" for r in server.records_since(mark)),
        BOUND,
        "the slow request to start",
    )
    return waiter


def test_graceful_stop_completes_an_in_flight_request(
    server_factory: Any, tls_certs: TLSCerts
) -> None:
    server = server_factory("testapp:app", "--http3", tls=tls_certs)

    async def scenario(client: H3Client) -> Any:
        waiter = await start_slow(client, server, 1.5)
        server.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(waiter, BOUND)

    response = run(server, scenario)
    assert response.status == 200
    assert response.body == b"slow done"
    assert server.wait_exit() == 0


def test_http3_needs_tls() -> None:
    with pytest.raises(ConfigError, match="--http3 needs --ssl-certfile"):
        Config(app="m:app", http3=True)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait, bounded, for ``condition`` to hold on the test's loop."""
    for _ in range(int(BOUND / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_sighup_roll(server_factory: Any, tls_certs: TLSCerts) -> None:
    """What a client sees during a roll: GOAWAY on its connection to the old worker, whose
    request in flight completes; a new connection is served (by the replacement). Each
    step waits for the server's word, which always reaches the client: only datagrams
    from the client to the shared socket may reach the other worker."""
    # After its last response, the old worker's connection is closed once an
    # acknowledgement of it, or the client's close, reaches that worker, or after 1 s idle.
    server = server_factory("testapp:app", "--http3", "--timeout-keep-alive", "1", tls=tls_certs)
    # The port accepts as soon as the master binds it, before the worker is forked.
    server.wait_log("Ready: 1 worker serving")
    (old,) = server.workers()
    assert server.tls is not None
    ca_file = server.tls.ca_file

    async def scenario(client: H3Client) -> Any:
        waiter = await start_slow(client, server, 1)
        server.send_signal(signal.SIGHUP)
        await until(lambda: client.h3.goaway, "GOAWAY from the old worker")
        async with h3_connect(server.host, server.port, ca_file) as fresh:
            served = await fresh.request("GET", "/ok")
        return client.h3.goaway, served, await asyncio.wait_for(waiter, BOUND)

    goaway, served, in_flight = run(server, scenario)
    assert goaway
    assert served.status == 200 and served.body == b"ok"
    assert in_flight.status == 200 and in_flight.body == b"slow done"
    wait_for(lambda: server.workers() and old not in server.workers(), BOUND, "the roll")
    assert run(server, lambda c: c.request("GET", "/ok")).body == b"ok"


def test_each_tcp_listener_gets_a_udp_socket_on_its_port(tmp_path: Path) -> None:
    config = Config(
        app="m:app",
        bind=("127.0.0.1:0", f"unix:{tmp_path / 's.sock'}"),
        http3=True,
        ssl_certfile=str(tmp_path / "c.pem"),
    )
    sockets = listeners.bind_listeners(config)
    try:
        tcp, unix, udp = sockets
        assert unix.family == socket.AF_UNIX
        assert udp.type == socket.SOCK_DGRAM and listeners.is_quic(udp)
        assert udp.getsockname() == tcp.getsockname()
        assert listeners.describe(udp, tls=True).endswith(" (HTTP/3, UDP)")
        served = quic.advertised(config, sockets)
        port = tcp.getsockname()[1]
        assert served.default_headers[-1] == (b"alt-svc", f'h3=":{port}"; ma=86400'.encode())
    finally:
        listeners.close_listeners(sockets)


def test_metrics_count_http3_connections_and_requests(
    server_factory: Any, tls_certs: TLSCerts
) -> None:
    port = free_port()
    server = server_factory(
        "testapp:app", "--http3", "--metrics-bind", f"127.0.0.1:{port}", tls=tls_certs
    )

    async def scenario(client: H3Client) -> Samples:
        for _ in range(3):
            assert (await client.request("GET", "/ok")).status == 200
        return await asyncio.to_thread(
            settle,
            port,
            lambda f: (
                requests_by_label(f) == {("GET", "2xx"): 3}
                and value(f, "ruvicorn_connections_open", protocol="h3") == 1
            ),
            "three HTTP/3 requests and one h3 connection",
        )

    found = run(server, scenario)
    assert value(found, "ruvicorn_connections_open", protocol="h2") == 0
    assert value(found, "ruvicorn_connections_open", protocol="http/1.1") == 0
    settle(
        port,
        lambda f: value(f, "ruvicorn_connections_open", protocol="h3") == 0,
        "the h3 connection closed",
    )


def test_an_idle_connection_is_closed_with_no_error(
    server_factory: Any, tls_certs: TLSCerts
) -> None:
    server = server_factory("testapp:app", "--http3", "--timeout-keep-alive", "1", tls=tls_certs)

    async def scenario(client: H3Client) -> Any:
        assert (await client.request("GET", "/ok")).status == 200
        for _ in range(int(BOUND / 0.1)):
            if client.terminated is not None:
                break
            await asyncio.sleep(0.1)
        return client.terminated

    terminated = run(server, scenario)
    assert terminated is not None, "the idle connection was never closed"
    assert terminated.error_code == 0x100  # H3_NO_ERROR


@pytest.mark.parametrize("http", ["auto", "1"])
def test_h2_max_requests_applies_to_http3(
    server_factory: Any, tls_certs: TLSCerts, http: str
) -> None:
    """Whatever --http says of TCP (--http 1: no HTTP/2 there)."""
    # An idle close (after a minute) cannot be what ends the connection within BOUND.
    server = server_factory(
        "testapp:app",
        "--http3",
        "--http",
        http,
        "--h2-max-requests",
        "2",
        "--timeout-keep-alive",
        "60",
        tls=tls_certs,
    )

    async def scenario(client: H3Client) -> Any:
        bodies = [(await client.request("GET", "/ok")).body for _ in range(2)]
        for _ in range(int(BOUND / 0.05)):
            if client.terminated is not None:
                break
            await asyncio.sleep(0.05)
        return bodies, client.terminated

    bodies, terminated = run(server, scenario)
    assert bodies == [b"ok", b"ok"]
    assert terminated is not None, "the connection was not closed after its last request"
    assert terminated.error_code == 0x100  # H3_NO_ERROR, after GOAWAY


def test_request_field_limits_apply_to_http3(server_factory: Any, tls_certs: TLSCerts) -> None:
    """As on HTTP/2: 431 on the stream, the connection serves on."""
    server = server_factory(
        "testapp:app",
        "--http3",
        "--limit-request-fields",
        "4",
        "--limit-request-field-size",
        "40",
        tls=tls_certs,
    )
    within = tuple((b"x-%d" % i, b"v" * 35) for i in range(4))  # `x-0: vvv...` is 40 bytes

    async def scenario(client: H3Client) -> list[int]:
        cases = [within, (*within, (b"x-4", b"v")), ((b"x-0", b"v" * 36),), ()]
        return [(await client.request("GET", "/ok", headers=case)).status for case in cases]

    assert run(server, scenario) == [200, 431, 431, 200]


def served_by(response: Any) -> tuple[int, int]:
    """The worker pid and the body size of a /pid response."""
    assert response.status == 200, response.status
    pid, size = response.body.split()
    return int(pid), int(size)


async def pids(host: str, port: int, ca_file: Path, requests: int) -> list[int]:
    """The worker that served each of ``requests`` requests on one new connection."""
    async with h3_connect(host, port, ca_file) as client:
        return [served_by(await client.request("GET", "/pid"))[0] for _ in range(requests)]


@pytest.mark.parametrize("preload", [False, True])
def test_several_workers_serve_http3(
    server_factory: Any, tls_certs: TLSCerts, preload: bool
) -> None:
    """Each worker reads a UDP socket of its own (SO_REUSEPORT): clients from different
    ports are spread over the workers, and each connection stays with one. With
    --preload the zygote hands each worker its sockets."""
    extra = ["--preload"] if preload else []
    server = server_factory("testapp:app", "--http3", "--workers", "2", *extra, tls=tls_certs)
    assert server.tls is not None
    ca_file = server.tls.ca_file
    wait_for(lambda: len(server.workers()) == 2, BOUND, "two workers")
    workers = server.workers()

    async def main() -> tuple[list[list[int]], set[int]]:
        clients = [pids(server.host, server.port, ca_file, 20) for _ in range(4)]
        served = list(await asyncio.gather(*clients))
        seen = {pid for connection in served for pid in connection}
        # Four connections may all hash to one socket (1 in 8): more, one request each,
        # until both workers served (all 20 on one: about one in a million).
        for _ in range(16):
            if len(seen) == 2:
                break
            seen.update(await pids(server.host, server.port, ca_file, 1))
        return served, seen

    served, seen = asyncio.run(main())
    assert [len(connection) for connection in served] == [20] * 4
    for connection in served:
        assert len(set(connection)) == 1, "a connection moved between workers"
    assert seen == workers
    assert "Traceback" not in server.stderr()


@pytest.mark.parametrize("preload", [False, True])
def test_sighup_roll_with_two_workers_keeps_uploads_and_serves_new_connections(
    server_factory: Any, tls_certs: TLSCerts, preload: bool
) -> None:
    """An upload to a worker being replaced goes on through the roll: the old worker and
    its replacement read the same UDP socket, and what the client sends that reaches the
    replacement is handed to the old worker. New connections are served meanwhile (with
    --preload, the workers of a new zygote)."""
    extra = ["--preload"] if preload else []
    server = server_factory(
        "testapp:app",
        "--http3",
        "--workers",
        "2",
        "--timeout-keep-alive",
        "1",
        *extra,
        tls=tls_certs,
    )
    assert server.tls is not None
    ca_file = server.tls.ca_file
    wait_for(lambda: len(server.workers()) == 2, BOUND, "two workers")
    old = server.workers()
    first, rest = b"a" * 1000, os.urandom(MIB)

    async def scenario(client: H3Client) -> tuple[Any, list[Any], int]:
        holder, _ = served_by(await client.request("GET", "/pid"))
        # The upload starts: its first bytes, no end.
        waiter = client.start("POST", "/pid", first, end=False)
        stream_id = max(client.waiters)
        server.send_signal(signal.SIGHUP)
        fresh = []
        for _ in range(int(BOUND / 0.2)):
            if client.h3.goaway:
                break
            async with h3_connect(server.host, server.port, ca_file) as other:
                fresh.append(await other.request("GET", "/pid"))
            await asyncio.sleep(0.2)
        await until(lambda: client.h3.goaway, "GOAWAY from the old worker")
        # The rest of the upload, sent while the old worker drains beside its replacement.
        client.h3.send_data(stream_id, rest, end_stream=True)
        client.transmit()
        async with h3_connect(server.host, server.port, ca_file) as other:
            fresh.append(await other.request("GET", "/pid"))
        return await asyncio.wait_for(waiter, BOUND), fresh, holder

    upload, fresh, holder = run(server, scenario)
    assert holder in old
    assert served_by(upload) == (holder, len(first) + len(rest))
    assert fresh and all(served_by(r)[1] == 0 for r in fresh)
    wait_for(lambda: len(server.workers()) == 2 and not old & server.workers(), BOUND, "the roll")
    assert run(server, lambda c: c.request("GET", "/pid")).status == 200
    assert "Traceback" not in server.stderr()


def test_sigttou_and_sigttin_keep_every_udp_socket_served(
    server_factory: Any, tls_certs: TLSCerts
) -> None:
    """SIGTTOU: the remaining worker adopts the UDP socket of the slot it empties (the set
    of sockets never changes), so connections from any port are served; SIGTTIN brings a
    worker back to it."""
    server = server_factory("testapp:app", "--http3", "--workers", "2", tls=tls_certs)
    assert server.tls is not None
    ca_file = server.tls.ca_file
    wait_for(lambda: len(server.workers()) == 2, BOUND, "two workers")

    def served(connections: int) -> set[int]:
        async def main() -> list[list[int]]:
            clients = [pids(server.host, server.port, ca_file, 2) for _ in range(connections)]
            return list(await asyncio.gather(*clients))

        return {pid for connection in asyncio.run(main()) for pid in connection}

    server.send_signal(signal.SIGTTOU)
    wait_for(lambda: len(server.workers()) == 1, BOUND, "one worker")
    (left,) = server.workers()
    # Twelve connections: each of the two sockets gets some (all on one: 1 in 2048).
    assert served(12) == {left}
    ready = server.count(r"Worker \d+ ready")
    server.send_signal(signal.SIGTTIN)
    server.wait_log(r"Worker \d+ ready", count=ready + 1)
    assert served(12) <= server.workers()
    assert "Traceback" not in server.stderr()
