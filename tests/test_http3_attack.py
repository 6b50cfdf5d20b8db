"""HTTP/3 under pressure, black-box, with several workers: a client that reads slowly, and a
flood of junk datagrams while SIGHUP rolls the workers (whose replacements share each
UDP socket with them and hand each other what they cannot use)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import signal
import socket
import struct
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from apps.testapp import flood_chunk
from h3client import BOUND, H3Client, ResetByServer, h3_connect
from rawhttp import WaitTimeout, wait_for
from realserver import ServerProcess
from test_flow_control import settled
from test_http3 import junk_datagram, pids, run, served_by, until
from tlscerts import TLSCerts

MIB = 1024 * 1024


# -- a slow reader


class SlowReader(H3Client):
    """A client whose one download is checked as it arrives rather than kept whole, and
    that can stop reading its socket for a while (``pause``/``resume``): what it does not
    read, it does not acknowledge, so the server's flow and congestion control hold the
    rest back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.download: int | None = None
        self.status = 0
        self.body = bytearray()
        self.done: asyncio.Event = asyncio.Event()

    def get(self, path: str) -> None:
        """Start the download of ``path``."""
        self.start("GET", path)
        self.download = max(self.waiters)
        # Its whole response is taken here, never handed to a waiter.
        self.waiters.pop(self.download).cancel()

    def h3_event_received(self, event: H3Event) -> None:
        if getattr(event, "stream_id", None) != self.download:
            super().h3_event_received(event)
            return
        if isinstance(event, HeadersReceived):
            self.status = self.status or int(dict(event.headers)[b":status"])
        elif isinstance(event, DataReceived):
            self.body += event.data
        if getattr(event, "stream_ended", False):
            self.done.set()

    def pause(self) -> None:
        assert self._transport is not None
        self._transport.pause_reading()  # type: ignore[attr-defined]

    def resume(self) -> None:
        assert self._transport is not None
        self._transport.resume_reading()  # type: ignore[attr-defined]

    async def read_some(self, count: int) -> None:
        """Read again until ``count`` more bytes came (or the download ended), then pause."""
        goal = len(self.body) + count
        self.resume()
        await until(lambda: self.done.is_set() or len(self.body) >= goal, "more of the download")
        self.pause()


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


async def served_by_worker(server: ServerProcess, ca_file: Path, pid: int) -> bool:
    """A new connection that lands on worker ``pid`` (the kernel spreads connections over
    the workers by the client's port: new ones are opened until one does, at most 24; all
    missing one of two workers: about one in 16 million) gets a whole 1 MiB response."""
    for _ in range(24):
        async with h3_connect(server.host, server.port, ca_file) as client:
            worker, _ = served_by(await client.request("GET", "/pid"))
            if worker != pid:
                continue
            body = (await client.request("GET", f"/stream?chunks=16&size={MIB // 16}")).body
            expected = b"".join((b"%d" % (i % 10)) * (MIB // 16) for i in range(16))
            assert body == expected, "a response cut or garbled beside the slow reader"
            again, _ = served_by(await client.request("GET", "/pid"))
            return again == pid
    return False


def test_a_slow_reader_gets_every_byte_while_send_waits_and_others_are_served(
    server_factory: Any, tls_certs: TLSCerts, tmp_path: Path, loop: str
) -> None:
    """A client stops reading a 32 MiB streamed response early on. The app's send() then
    waits (its progress stops far short of the body: it is not buffered whole, and the
    worker's memory does not grow by it); another client of the same worker is served
    meanwhile. The client then reads in fits and starts, and gets every byte, in order."""
    total, size = 32 * MIB, 64 * 1024
    server = server_factory("testapp:app", "--http3", "--workers", "2", loop=loop, tls=tls_certs)
    assert server.tls is not None
    ca_file = server.tls.ca_file
    wait_for(lambda: len(server.workers()) == 2, BOUND, "two workers")
    progress = tmp_path / "progress"
    progress.write_text("0")

    def sent() -> int:
        return int(progress.read_text() or 0)

    async def main() -> tuple[SlowReader, int, int, int, bool, int]:
        async with h3_connect(server.host, server.port, ca_file, protocol=SlowReader) as client:
            assert isinstance(client, SlowReader)
            holder, _ = served_by(await client.request("GET", "/pid"))
            before = rss(holder)
            client.get(f"/flood?total={total}&size={size}&numbered=1&progress={progress}")
            await until(lambda: len(client.body) >= 2 * MIB, "2 MiB of the download")
            client.pause()
            read = len(client.body)
            # What the app could send to a client that stopped reading, once it stopped.
            held = await asyncio.to_thread(settled, sent, quiet_for=1.5, bound=3 * BOUND)
            others = await served_by_worker(server, ca_file, holder)
            growth = rss(holder) - before
            # Then it reads in fits and starts: a few MiB, a pause, and again.
            for _ in range(8):
                await client.read_some(2 * MIB)
                await asyncio.sleep(0.1)
            client.resume()
            await asyncio.wait_for(client.done.wait(), 3 * BOUND)
            return client, read, held, growth, others, holder

    client, read, held, growth, others, holder = asyncio.run(main())
    # The app's count of what it sent went on, then stopped well short of the body: its
    # send() waits for the client to read (the count is written at each MiB).
    assert read - MIB <= held < total // 2, f"the app sent {held} bytes to a client not reading"
    assert growth < total // 2, f"worker {holder} grew by {growth // MIB} MiB"
    assert others, f"no other client of worker {holder} was served beside the slow reader"
    assert client.status == 200
    assert len(client.body) == total
    expected = b"".join(flood_chunk(offset, size) for offset in range(0, total, size))
    assert hashlib.sha256(client.body).digest() == hashlib.sha256(expected).digest()
    assert sent() == total
    assert "Traceback" not in server.stderr()


# -- junk datagrams during a roll

#: The flood's bounds: datagrams in all, per burst, and its sending sockets (the kernel
#: spreads them over every worker slot's socket by their ports).
FLOOD_DATAGRAMS = 30_000
FLOOD_BURST = 150
FLOOD_SOCKETS = 8


def long_header(kind: int, dcid: bytes, payload: bytes, version: bytes = b"\0\0\0\1") -> bytes:
    """A long-header packet of ``kind`` (0 Initial, 1 0-RTT, 2 Handshake) with ``dcid``
    and a random source id, then ``payload`` (no valid protection: garbage to any key)."""
    scid = os.urandom(8)
    head = bytes([0xC0 | kind << 4]) + version + bytes([len(dcid)]) + dcid
    head += bytes([len(scid)]) + scid
    if kind == 0:
        head += b"\0"  # no token
    return head + struct.pack("!H", 0x4000 | len(payload)) + payload


def junk(rng: random.Random, i: int) -> bytes:
    """One of the flood's datagrams: random bytes, a long header cut short, an Initial,
    0-RTT or Handshake packet naming a random id (8 bytes, as the workers issue, or other
    lengths), a short-header packet naming a random 8-byte id (another worker's
    connection, to either worker), a long header of an unknown version, or a datagram of
    the older junk test."""
    dcid = rng.randbytes(rng.choice([8, 8, 0, 4, 20]))
    payload = rng.randbytes(rng.randrange(20, 1200))
    kinds = (
        lambda: rng.randbytes(rng.randrange(1, 1500)),
        lambda: long_header(rng.randrange(3), dcid, payload)[: rng.randrange(1, 24)],
        lambda: long_header(0, dcid, payload.ljust(1200, b"\0")),
        lambda: long_header(1, dcid, payload),
        lambda: long_header(2, dcid, payload),
        lambda: bytes([0x40 | rng.randrange(64)]) + rng.randbytes(8) + payload,
        lambda: long_header(rng.randrange(3), dcid, payload, version=rng.randbytes(4)),
        lambda: junk_datagram(i // 8),
    )
    return kinds[i % len(kinds)]()


class Flood:
    """Junk sent to one address in bursts from several sockets, until stopped or bounded."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sent = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        rng = random.Random(0x5EED)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3 * BOUND
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(FLOOD_SOCKETS)]
        try:
            for sock in sockets:
                sock.setblocking(False)
            while self.sent < FLOOD_DATAGRAMS and not self.stop.is_set() and loop.time() < deadline:
                for _ in range(FLOOD_BURST):
                    with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                        sockets[self.sent % FLOOD_SOCKETS].sendto(
                            junk(rng, self.sent), self.address
                        )
                    self.sent += 1
                await asyncio.sleep(0.005)
        finally:
            for sock in sockets:
                sock.close()


#: A worker is quiet when, in QUIET_WINDOW seconds, it wakes up fewer than QUIET_SWITCHES
#: times and uses less than a fifth of it in CPU time. (Idle, a worker wakes up a handful
#: of times; under the flood, thousands.)
QUIET_SWITCHES = 1000
QUIET_WINDOW = 0.5


def go_quiet(pids: set[int]) -> None:
    """Wait (bounded) until none of ``pids`` is kept busy any more, by datagrams going
    round (wake-ups: voluntary context switches) or by work that never waits (CPU time)."""
    last: dict[int, tuple[int, float]] = {}

    def usage() -> dict[int, tuple[int, float]]:
        out = {}
        for pid in pids:
            process = psutil.Process(pid)
            cpu = process.cpu_times()
            out[pid] = (process.num_ctx_switches().voluntary, cpu.user + cpu.system)
        return out

    def quiet() -> bool:
        before = usage()
        time.sleep(QUIET_WINDOW)
        after = usage()
        for pid in pids:
            last[pid] = (after[pid][0] - before[pid][0], after[pid][1] - before[pid][1])
        return all(woke < QUIET_SWITCHES and cpu < QUIET_WINDOW / 5 for woke, cpu in last.values())

    try:
        wait_for(quiet, BOUND, "quiet workers")
    except WaitTimeout:
        raise AssertionError(
            f"workers kept busy after the flood (wake-ups, CPU seconds): {last}"
        ) from None


async def one_request(server: ServerProcess, ca_file: Path, i: int) -> int:
    """On a new connection, a GET (odd ``i``: a 64 KiB upload echoed back); the worker that
    served it (0 for an upload). A connection the old worker accepted just before its
    GOAWAY may have its request refused as unprocessed: the client makes it again (RFC
    9114 §5.2), on a new connection."""
    body = os.urandom(64 * 1024)
    for _ in range(3):
        async with h3_connect(server.host, server.port, ca_file) as client:
            try:
                if i % 2:
                    echoed = await client.request("POST", "/echo", body)
                    assert echoed.status == 200 and echoed.body == body, "an echo garbled"
                    return 0
                return served_by(await client.request("GET", "/pid"))[0]
            except ResetByServer as exc:
                # Refused as unprocessed (H3_REQUEST_REJECTED), or closed after GOAWAY.
                if "0x10b" not in str(exc) and not client.h3.goaway:
                    raise
    raise AssertionError("a request refused three times")


async def traffic(
    server: ServerProcess, ca_file: Path, stop: asyncio.Event, served: list[int]
) -> None:
    """Legitimate clients, one after another until ``stop`` (at most 300); the worker
    that served each GET goes to ``served``."""
    for i in range(300):
        if stop.is_set():
            break
        pid = await one_request(server, ca_file, i)
        if pid:
            served.append(pid)


async def upload_across_a_flooded_roll(
    server: ServerProcess, client: H3Client, body: bytes
) -> tuple[Any, int, Flood, list[int]]:
    """An upload to a worker that SIGHUP replaces, from before the roll to after it, while
    junk floods the port and new clients come and go: its response, the worker that took
    it, the flood, and the worker that served each GET of the other clients."""
    assert server.tls is not None
    holder, _ = served_by(await client.request("GET", "/pid"))
    first, second, third = body[:1000], body[1000 : len(body) // 2], body[len(body) // 2 :]
    waiter = client.start("POST", "/pid", first, end=False)
    stream_id = max(client.waiters)
    flood = Flood((server.host, server.port))
    flooding = asyncio.create_task(flood.run())
    served: list[int] = []
    clients = asyncio.create_task(traffic(server, server.tls.ca_file, flood.stop, served))
    try:
        await until(lambda: flood.sent >= 1000 and len(served) >= 1, "the flood under way")
        server.send_signal(signal.SIGHUP)
        await until(lambda: client.h3.goaway, "GOAWAY from the old worker")
        # More of the upload, while the old worker drains beside its replacement.
        client.h3.send_data(stream_id, second, end_stream=False)
        client.transmit()
        # Flood and clients go on until the replacements serve, and a little after.
        await asyncio.to_thread(server.wait_log, "Reload complete", BOUND)
        count = len(served)
        await until(
            lambda: clients.done() or len(served) >= count + 2, "two GETs served after the roll"
        )
        if clients.done():
            clients.result()  # it failed: say how
    finally:
        flood.stop.set()
    await flooding
    await asyncio.wait_for(clients, 3 * BOUND)
    # The old worker, its upload unfinished, still reads the socket its replacement reads:
    # junk handed over must not keep the two busy once the flood is over.
    assert holder in server.workers(), "the old worker left with an upload in flight"
    await asyncio.to_thread(go_quiet, server.workers())
    client.h3.send_data(stream_id, third, end_stream=True)
    client.transmit()
    return await asyncio.wait_for(waiter, BOUND), holder, flood, served


@pytest.mark.parametrize("preload", [False, True])
def test_junk_flood_during_a_roll_harms_no_one(
    server_factory: Any, tls_certs: TLSCerts, loop: str, preload: bool
) -> None:
    """Junk datagrams of every kind the workers sort by (random ids: the other worker's
    business, or nobody's) flood the port while SIGHUP rolls both workers; an upload
    goes on across the roll, and new clients are served throughout (a request refused
    as unprocessed by a worker that began to drain is made again). No worker dies, the
    workers go quiet once the flood is over (a datagram handed over is never handed back,
    so junk cannot circle between a worker and its replacement), the roll completes, and
    the new workers serve. With --preload the new workers come from a new zygote, which
    hands them the sockets."""
    # An idle connection of an old worker closes after 1 s (its drain ends soon).
    flags = ["--http3", "--workers", "2", "--timeout-keep-alive", "1"]
    flags += ["--preload"] if preload else []
    server = server_factory("testapp:app", *flags, loop=loop, tls=tls_certs)
    assert server.tls is not None
    ca_file = server.tls.ca_file
    wait_for(lambda: len(server.workers()) == 2, BOUND, "two workers")
    old = server.workers()
    body = os.urandom(MIB)

    upload, holder, flood, served = run(
        server, lambda client: upload_across_a_flooded_roll(server, client, body)
    )
    assert holder in old
    assert served_by(upload) == (holder, len(body))
    assert flood.sent >= 1000
    # Every request answered (one that failed fails the test there), by old and new workers.
    assert old & set(served) and set(served) - old, served
    wait_for(lambda: len(server.workers()) == 2 and not old & server.workers(), BOUND, "the roll")
    new = server.workers()
    stderr = server.stderr()
    assert "died unexpectedly" not in stderr
    assert "Traceback" not in stderr
    assert "datagram failed" not in stderr
    # Both new workers serve: new connections, spread over both sockets, until each did.
    after: set[int] = set()
    for _ in range(24):
        if after == new:
            break
        after.update(asyncio.run(pids(server.host, server.port, ca_file, 1)))
    assert after == new, (after, new)
