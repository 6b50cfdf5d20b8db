"""Flow control both ways: a client that never reads, or an app that never reads, cannot make
the worker buffer without bound.

The bounds are generous (tens of MiB against hundreds sent) so kernel socket buffers and the
transport's high-water marks fit comfortably; without flow control the numbers would be the
whole payload.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from apps.testapp import flood_chunk
from rawhttp import request, wait_for
from realserver import ServerProcess
from tlscerts import over_tls

MIB = 1024 * 1024
PAYLOAD = 512 * MIB
PROGRESS_BOUND = 64 * MIB
RSS_BOUND = 256 * MIB


def settled(read, *, quiet_for: float = 1.5, bound: float = 30.0) -> int:
    """Poll ``read()`` until its value stops changing for ``quiet_for`` seconds."""
    deadline = time.monotonic() + bound
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        value = read()
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            break
    return int(last)


@over_tls
def test_client_that_never_reads_does_not_grow_memory(
    server: ServerProcess, tmp_path: Path
) -> None:
    progress = tmp_path / "progress"
    progress.write_text("0")
    baseline = server.rss()
    client = server.connect()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    try:
        client.sendall(request("GET", f"/flood?total={PAYLOAD}&progress={progress}"))
        wait_for(lambda: int(progress.read_text() or 0) > 0)
        sent = settled(lambda: int(progress.read_text() or 0))
        growth = server.rss() - baseline
        assert sent < PROGRESS_BOUND, f"the app could send {sent} bytes to a client not reading"
        assert growth < RSS_BOUND, f"server RSS grew by {growth // MIB} MiB"
    finally:
        client.close()
    server.assert_serving()


@over_tls
def test_app_that_never_reads_body_stops_the_upload(server: ServerProcess, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    baseline = server.rss()
    mark = server.mark()
    client = server.connect()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    sent = 0
    try:
        client.sendall(
            request("POST", f"/hold-body?gate={gate}", [("Content-Length", str(PAYLOAD))])
        )
        wait_for(lambda: any(r.get("event") == "hold-entered" for r in server.records_since(mark)))
        chunk = b"u" * (256 * 1024)
        client.settimeout(2.0)
        deadline = time.monotonic() + 60
        while sent < PAYLOAD and time.monotonic() < deadline:
            try:
                sent += client.send(chunk)
            except TimeoutError:
                break  # the server stopped reading: what flow control should do
        growth = server.rss() - baseline
        assert sent < PROGRESS_BOUND, f"the server accepted {sent // MIB} MiB nobody reads"
        assert growth < RSS_BOUND, f"server RSS grew by {growth // MIB} MiB"
    finally:
        gate.touch()
        client.close()
    server.assert_serving()


def flood_until_refused(client: socket.socket, data: bytes, limit: int) -> int:
    """Send ``data`` over and over, as one unbroken stream (a partial send goes on where
    it stopped), until the server stops reading (no progress for 2 s), ``limit`` bytes
    went out, or a minute passed; the bytes sent."""
    client.settimeout(2.0)
    view = memoryview(data)
    sent = at = 0
    deadline = time.monotonic() + 60
    while sent < limit and time.monotonic() < deadline:
        try:
            n = client.send(view[at:])
        except TimeoutError:
            break
        sent += n
        at = (at + n) % len(data)
    return sent


@over_tls
def test_pipelining_client_that_never_reads_is_no_longer_read(server: ServerProcess) -> None:
    """Requests pipelined by a client that reads none of the answers: the worker stops
    reading once the answers back up, instead of answering (and holding) every one."""
    baseline = server.rss()
    client = server.connect()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    try:
        sent = flood_until_refused(client, request("GET", "/ok") * 2000, 24 * MIB)
        growth = server.rss() - baseline
        assert sent < 16 * MIB, f"the server read {sent // MIB} MiB of requests nobody reads"
        assert growth < RSS_BOUND, f"server RSS grew by {growth // MIB} MiB"
    finally:
        client.close()
    server.assert_serving()


@over_tls
def test_slow_reader_gets_every_byte(server: ServerProcess, tmp_path: Path) -> None:
    """Paused writing must resume: a client that reads late still gets the whole body, every
    part once and in order (parts sent in one step of the app go out held together until
    the reader falls behind, then one by one)."""
    total, size = 8 * MIB, 8 * 1024
    progress = tmp_path / "progress"
    progress.write_text("0")
    with server.client() as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(request("GET", f"/flood?total={total}&size={size}&numbered=1&progress={progress}"))
        settled(lambda: int(progress.read_text() or 0), quiet_for=0.5)
        resp = c.read_response()
    assert resp.status == 200
    assert len(resp.body) == total
    assert resp.body == b"".join(flood_chunk(at, size) for at in range(0, total, size))
