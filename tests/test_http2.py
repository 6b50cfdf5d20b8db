"""HTTP/2 black-box: real server processes, real clients (httpx, curl, the python h2
library over a raw socket), cleartext (h2c with prior knowledge) and TLS (ALPN h2)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import pytest
from h2raw import h2_httpx, open_h2, read_until_goaway, request_headers
from realserver import ServerProcess
from tlscerts import over_tls

BOUND = 30.0
MIB = 1024 * 1024


@over_tls
def test_httpx_streams_share_one_connection(server: ServerProcess) -> None:
    with h2_httpx(server) as client:
        first = client.get("/scope?x=1", headers={"cookie": "a=1"})
        posted = client.post("/echo", content=b"posted body")
        second = client.get("/scope")
    assert first.http_version == "HTTP/2"
    assert posted.status_code == 200 and posted.content == b"posted body"
    scope = first.json()
    assert scope["http_version"] == "2"
    assert scope["query_string"] == "x=1"
    assert scope["headers"][0][0] == "host"
    assert not any(name.startswith(":") for name, _ in scope["headers"])
    assert "http.response.trailers" in scope["extensions"]
    assert scope["client"] == second.json()["client"], "one connection for every stream"


@over_tls
def test_16_mib_echo(server: ServerProcess) -> None:
    data = os.urandom(16 * MIB)
    with h2_httpx(server) as client:
        echoed = client.post("/echo", content=data)
    assert echoed.status_code == 200
    assert hashlib.sha256(echoed.content).digest() == hashlib.sha256(data).digest()


def test_a_hundred_concurrent_streams_on_one_connection(server: ServerProcess) -> None:
    if server.tls is not None:
        pytest.skip("cleartext only")
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    with socket.create_connection((server.host, server.port), timeout=BOUND) as sock:
        streams = []
        for i in range(100):
            stream = conn.get_next_available_stream_id()
            conn.send_headers(
                stream,
                [
                    (b":method", b"GET"),
                    (b":scheme", b"http"),
                    (b":authority", b"localhost"),
                    (b":path", f"/anything/{i}".encode()),
                ],
                end_stream=True,
            )
            streams.append(stream)
        sock.sendall(conn.data_to_send())
        bodies: dict[int, bytes] = {}
        ended: set[int] = set()
        for _ in range(10_000):  # bounded: every read makes progress or the socket times out
            if ended >= set(streams):
                break
            data = sock.recv(65536)
            assert data, "the server closed the connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    ended.add(event.stream_id)
            sock.sendall(conn.data_to_send())
    assert ended == set(streams)
    paths = [json.loads(bodies[stream])["path"] for stream in streams]
    assert paths == [f"/anything/{i}" for i in range(100)]


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "-v", *args],
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )


@over_tls
def test_curl_http2(server: ServerProcess) -> None:
    if server.tls is None:
        result = curl("--http2-prior-knowledge", f"{server.url}/ok")
    else:
        result = curl("--http2", "--cacert", str(server.tls.ca_file), f"{server.url}/ok")
        assert re.search(r"ALPN.*accepted.*h2", result.stderr), result.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok"
    assert "HTTP/2 200" in result.stderr


def test_http1_still_served_on_the_same_port(server: ServerProcess) -> None:
    response = server.get("/ok")
    assert response.status == 200 and response.body == b"ok"


@pytest.mark.parametrize("name", ["h11", "httptools"])
def test_http1_implementation_names_are_read_as_1(server_factory: Any, name: str) -> None:
    server = server_factory("testapp:app", "--http", name)
    assert server.get("/ok").body == b"ok"
    assert f"--http {name}: read as --http 1" in server.stderr()
    result = curl("--http2-prior-knowledge", f"{server.url}/ok")
    assert "HTTP/2 200" not in result.stderr


def raw_h2(server: ServerProcess) -> tuple[socket.socket, h2.connection.H2Connection]:
    """A cleartext HTTP/2 client over a raw socket, preface sent."""
    return open_h2(server.host, server.port)


def send_or_stop(sock: socket.socket, conn: h2.connection.H2Connection) -> bool:
    """Send what the client queued; False once the server hung up."""
    try:
        sock.sendall(conn.data_to_send())
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def assert_calmed(server: ServerProcess, events: list[Any]) -> None:
    """The attacker got GOAWAY ENHANCE_YOUR_CALM; an ordinary client is still served."""
    terminated = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert terminated, events[-3:]
    assert terminated[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert server.get("/ok").body == b"ok", "ordinary clients are still served"


def get_headers(path: str = "/ok") -> list[tuple[bytes, bytes]]:
    return request_headers("GET", path)


def test_rapid_reset_gets_enhance_your_calm(server: ServerProcess) -> None:
    if server.tls is not None:
        pytest.skip("cleartext only")
    sock, conn = raw_h2(server)
    with sock:
        for _ in range(1000):  # bounded: the server gives up long before
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, get_headers("/slow"), end_stream=True)
            conn.reset_stream(stream)
            if not send_or_stop(sock, conn):
                break
        assert_calmed(server, read_until_goaway(sock, conn))


def test_hpack_bomb_is_refused(server: ServerProcess) -> None:
    if server.tls is not None:
        pytest.skip("cleartext only")
    sock, conn = raw_h2(server)
    with sock:
        stream = conn.get_next_available_stream_id()
        # One 4 KiB field, then references to it from the dynamic table: a few hundred
        # bytes on the wire decode to far more than the header-list limit.
        bomb = [(b"x-bomb", b"a" * 4000)] * 400
        conn.send_headers(stream, [*get_headers(), *bomb], end_stream=True)
        wire = conn.data_to_send()
        assert len(wire) < 20_000
        sock.sendall(wire)
        events = read_until_goaway(sock, conn, stream)
    answered = [
        e for e in events if isinstance(e, h2.events.ResponseReceived) and e.stream_id == stream
    ]
    assert all(dict(e.headers)[b":status"] != b"200" for e in answered)
    assert any(
        isinstance(e, h2.events.StreamReset | h2.events.ConnectionTerminated)
        or (isinstance(e, h2.events.ResponseReceived) and e.stream_id == stream)
        for e in events
    ), events
    assert server.get("/ok").body == b"ok"


def status_of(server: ServerProcess, extra: list[tuple[bytes, bytes]]) -> bytes | None:
    """The `:status` of a GET with the `extra` fields, on a connection of its own."""
    sock, conn = raw_h2(server)
    with sock:
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, [*get_headers(), *extra], end_stream=True)
        sock.sendall(conn.data_to_send())
        events = read_until_goaway(sock, conn, stream)
    heads = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    return dict(heads[0].headers)[b":status"] if heads else None


def test_request_field_limits_apply_to_http2(server_factory: Any) -> None:
    server = server_factory(
        "testapp:app", "--limit-request-fields", "4", "--limit-request-field-size", "40"
    )
    within = [(b"x-%d" % i, b"v" * 35) for i in range(4)]  # `x-0: vvv...` is 40 bytes
    assert status_of(server, within) == b"200"
    assert status_of(server, [*within, (b"x-4", b"v")]) == b"431"
    assert status_of(server, [(b"x-0", b"v" * 36)]) == b"431"


def goaway_last_streams(wire: bytes) -> list[int]:
    """The last stream id of each whole GOAWAY frame in ``wire`` (the server's frames)."""
    found: list[int] = []
    at = 0
    while at + 9 <= len(wire):
        length = int.from_bytes(wire[at : at + 3], "big")
        if wire[at + 3] == 0x7 and at + 9 + length <= len(wire):
            found.append(int.from_bytes(wire[at + 9 : at + 13], "big") & 0x7FFF_FFFF)
        at += 9 + length
    return found


def test_max_requests_final_goaway_does_not_wait_for_the_ping_ack(server_factory: Any) -> None:
    """A client that never acknowledges the shutdown PING still gets the final GOAWAY."""
    server = server_factory("testapp:app", "--h2-max-requests", "1")
    sock, conn = raw_h2(server)
    with sock:
        conn.send_headers(conn.get_next_available_stream_id(), get_headers(), end_stream=True)
        sock.sendall(conn.data_to_send())
        wire = b""
        for _ in range(1000):  # bounded: reads until the final GOAWAY, the close or timeout
            data = sock.recv(65536)
            wire += data
            if not data or len(goaway_last_streams(wire)) == 2:
                break
    assert goaway_last_streams(wire) == [2**31 - 1, 1]


@pytest.mark.parametrize("kind", ["ping", "settings"])
def test_control_frame_flood_gets_enhance_your_calm(server: ServerProcess, kind: str) -> None:
    if server.tls is not None:
        pytest.skip("cleartext only")
    sock, conn = raw_h2(server)
    with sock:
        for _ in range(100):  # bounded: the server gives up after about 1000 frames
            for _ in range(50):
                if kind == "ping":
                    conn.ping(b"12345678")
                else:
                    conn.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
            if not send_or_stop(sock, conn):
                break
        assert_calmed(server, read_until_goaway(sock, conn))
