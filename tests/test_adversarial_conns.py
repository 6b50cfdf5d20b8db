"""Connections that cost the server without asking for anything: thousands held idle, peers
that vanished (they hold the socket, never read, never send FIN) and peers that reset the
connection in the middle of a response.

The worker must stay up with bounded memory, an ordinary client must be answered meanwhile,
and every such connection must be reclaimed by the head or keep-alive timeout: the worker's
fd count returns to its baseline. Timeouts are short here so that is quick.
"""

from __future__ import annotations

import resource
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from adversary import (
    MIB,
    OrdinaryClient,
    RssWatch,
    open_fds,
    wait_fds_at_most,
    warm,
    worker,
)
from rawhttp import RawClient, request, wait_for
from realserver import ServerProcess

IDLE = 5000
BOUND = 60.0  # the longest any wait here may take


@pytest.fixture
def many_fds() -> Iterator[None]:
    """Room for 5,000 sockets in this process and (inherited) in the server it spawns."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * IDLE + 1024
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def connect(server: ServerProcess) -> RawClient:
    return RawClient(server.host, server.port, timeout=BOUND)


def reset(sock: socket.socket) -> None:
    """Close with RST, as a peer that crashed or a middlebox that gave up does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_5000_idle_connections(server_factory, loop: str, many_fds: None) -> None:
    server = server_factory(
        "testapp:app",
        "--timeout-keep-alive",
        "20",
        "--timeout-request-header",
        "20",
        "--no-access-log",
        loop=loop,
    )
    proc = worker(server)
    warm(server)
    base = open_fds(proc)
    with RssWatch(proc) as rss, OrdinaryClient(server, pause=0.2) as ordinary:
        # Half ask once and then idle on keep-alive, half never send a byte.
        kept = [connect(server) for _ in range(IDLE // 2)]
        for c in kept:
            c.send(request("GET", "/ok"))
        for c in kept:
            resp = c.read_response()
            assert resp.status == 200 and resp.keeps_alive
        silent = [connect(server) for _ in range(IDLE - len(kept))]
        wait_for(lambda: open_fds(proc) >= base + IDLE, BOUND, interval=0.2)
        ordinary.wait_answers(3)
        rss.assert_bounded()
        # Nobody closes: the server's timeouts must.
        wait_fds_at_most(proc, base + 1, BOUND)
        ordinary.wait_answers(3)
    for c in kept + silent:
        assert c.expect_closed() == b"", "an idle connection got bytes instead of a close"
        c.close()
    assert proc.is_running()
    ordinary.assert_fine()


@pytest.fixture
def quick(server_factory, loop: str) -> ServerProcess:
    return server_factory(
        "testapp:app",
        "--timeout-keep-alive",
        "2",
        "--timeout-request-header",
        "2",
        "--no-access-log",
        loop=loop,
    )


def test_vanished_peers_are_reclaimed_by_timeout(quick: ServerProcess) -> None:
    """Peers that stop mid-head, after a response, or before a byte, and never read nor FIN."""
    proc = worker(quick)
    warm(quick)
    base = open_fds(proc)
    held: dict[str, list[RawClient]] = {"silent": [], "partial-head": [], "after-response": []}
    with RssWatch(proc) as rss, OrdinaryClient(quick, pause=0.2) as ordinary:
        for _ in range(100):
            for kind, group in held.items():
                c = connect(quick)
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                if kind == "partial-head":
                    c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Half: ")
                elif kind == "after-response":
                    c.send(request("GET", "/ok"))
                    assert c.read_response().status == 200
                group.append(c)
        wait_fds_at_most(proc, base + 1, BOUND)
        ordinary.wait_answers(3)
        rss.assert_bounded()
    for kind, group in held.items():
        for c in group:
            if kind == "partial-head":
                resp = c.read_response()
                assert resp.status == 408, f"{kind}: answered {resp.status}"
            assert c.expect_closed() == b"", f"{kind}: bytes after the close"
            c.close()
    ordinary.assert_fine()


def test_resets_mid_response_do_not_disturb_others(quick: ServerProcess, tmp_path: Path) -> None:
    """Peers reset the connection mid-stream, mid-upload and mid-head while a well-behaved
    keep-alive client streams a response: it gets every byte, the worker survives and
    reclaims every reset connection."""
    proc = worker(quick)
    warm(quick)
    base = open_fds(proc)
    mark = quick.mark()
    victim_errors: list[str] = []

    def well_behaved() -> None:
        try:
            with connect(quick) as c:
                for _ in range(5):
                    c.send(request("GET", "/stream?chunks=2000&size=1024"))
                    resp = c.read_response()
                    if resp.status != 200 or len(resp.body) != 2000 * 1024 or resp.incomplete:
                        victim_errors.append(f"{resp.status} {len(resp.body)}")
        except (OSError, AssertionError) as exc:
            victim_errors.append(f"{type(exc).__name__}: {exc}")

    streamer = threading.Thread(target=well_behaved)
    resets = 30
    with RssWatch(proc) as rss, OrdinaryClient(quick) as ordinary:
        streamer.start()
        for i in range(resets):
            # Mid-response: a stream the app keeps writing while it watches receive().
            c = connect(quick)
            c.send(request("GET", "/stream-until-disconnect"))
            c.read_head()
            reset(c.sock)
            # Mid-response at full speed: the app is blocked in send() when the RST comes.
            progress = tmp_path / f"flood-{i}"
            progress.write_text("0")
            c = connect(quick)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.send(request("GET", f"/flood?total={64 * MIB}&progress={progress}"))
            wait_for(lambda p=progress: int(p.read_text() or 0) > 0, BOUND)
            reset(c.sock)
            # Mid-upload and mid-head.
            c = connect(quick)
            c.send(request("POST", "/echo", [("Content-Length", str(MIB))]) + b"x" * 1000)
            reset(c.sock)
            c = connect(quick)
            c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Cut: ")
            reset(c.sock)
        streamer.join(timeout=BOUND)
        ordinary.wait_answers(3)
        wait_fds_at_most(proc, base + 1, BOUND)
        rss.assert_bounded()
    assert not streamer.is_alive(), "the well-behaved streaming client never finished"
    assert not victim_errors, f"a reset disturbed another client: {victim_errors[:3]}"

    def ended() -> list[dict]:
        return [r for r in quick.records_since(mark) if r.get("event") == "stream-ended"]

    # Each app learnt the client left: from receive(), or from send() raising (ASGI 2.4).
    wait_for(lambda: len(ended()) >= resets, BOUND)
    told = [r["disconnected"] or r["error"] == "ClientDisconnected" for r in ended()]
    assert all(told), ended()[:3]
    assert worker(quick).pid == proc.pid, "the worker was replaced"
    ordinary.assert_fine()
