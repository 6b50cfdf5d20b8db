"""Adversarial clients against flow control: a reader that takes a 64 MiB response a few KiB
at a time, and an uploader that sends far faster than the app reads.

Each attack must cost the worker a bounded amount of memory (peak RSS over a warm baseline,
well under the payload) while an ordinary keep-alive client is answered meanwhile, and the
attacker still gets every byte once it behaves. Kernel socket buffers on loopback may hold
several MiB, so byte-count bounds are generous; the payloads are far larger.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from adversary import MIB, OrdinaryClient, RssWatch, warm, worker
from rawhttp import request, wait_for
from realserver import ServerProcess

SLOW_PHASE = 6.0  # seconds the attacker misbehaves; nothing is asserted on time
#: Bytes the server side may hold for a misbehaving peer (socket buffers + transport).
IN_FLIGHT_BOUND = 48 * MIB


@pytest.fixture(scope="module")
def adv(module_server_factory, loop: str) -> ServerProcess:
    return module_server_factory("adversarial_app:app", "--no-access-log", loop=loop)


def test_slow_reader_of_a_64_mib_response(adv: ServerProcess, tmp_path: Path) -> None:
    """Reading 4 KiB, pausing, again: ``await send()`` must hold the app back, so the worker
    never buffers the response."""
    total = 64 * MIB
    progress = tmp_path / "progress"
    progress.write_text("0")
    proc = worker(adv)
    warm(adv)
    with RssWatch(proc) as rss, OrdinaryClient(adv) as ordinary, adv.client() as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(request("GET", f"/flood?total={total}&progress={progress}"))
        received = 0
        end = time.monotonic() + SLOW_PHASE
        while time.monotonic() < end:
            chunk = c.sock.recv(4096)
            assert chunk, "the server closed the connection of a slow reader"
            received += len(chunk)
            c.buf += chunk
            time.sleep(0.05)
        sent = int(progress.read_text() or 0)
        ordinary.wait_answers(3)
        assert sent < total, "the app sent the whole response to a client that barely read"
        assert sent - received < IN_FLIGHT_BOUND, (
            f"{(sent - received) // MIB} MiB sent but not read by the client"
        )
        rss.assert_bounded()
        resp = c.read_response()
    assert resp.status == 200
    assert len(resp.body) == total
    assert resp.body == b"f" * total
    ordinary.assert_fine()


def test_upload_faster_than_the_app_reads(adv: ServerProcess, tmp_path: Path) -> None:
    """The app reads a body message, sleeps, reads again: reading from the socket must pause,
    so the upload stalls instead of piling up in the worker."""
    total = 128 * MIB
    gate, progress = tmp_path / "gate", tmp_path / "progress"
    progress.write_text("0")
    proc = worker(adv)
    warm(adv)
    mark = adv.mark()
    piece = b"u" * (256 * 1024)
    with RssWatch(proc) as rss, OrdinaryClient(adv) as ordinary, adv.client() as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        target = f"/slow-read?gate={gate}&progress={progress}&delay=0.1"
        c.send(request("POST", target, [("Content-Length", str(total))]))
        wait_for(lambda: "/slow-read" in adv.paths_seen_since(mark))
        sent = 0
        c.sock.settimeout(0.5)
        end = time.monotonic() + SLOW_PHASE
        while time.monotonic() < end:
            try:
                sent += c.sock.send(piece[: total - sent])
            except TimeoutError:
                continue  # the server is not reading: flow control at work
        read = int(progress.read_text() or 0)
        ordinary.wait_answers(3)
        assert sent < total // 2, f"{sent // MIB} MiB uploaded to an app reading slowly"
        assert sent - read < IN_FLIGHT_BOUND, f"{(sent - read) // MIB} MiB sent but not read"
        rss.assert_bounded()
        gate.touch()
        c.sock.settimeout(30.0)
        while sent < total:
            sent += c.sock.send(piece[: total - sent])
        c.sock.settimeout(c.timeout)
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == str(total).encode()
    ordinary.assert_fine()
