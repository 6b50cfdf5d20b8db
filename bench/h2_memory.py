"""Worker memory under an HTTP/2 resource attack: how much a worker's RSS grows.

Opens CONNECTIONS cleartext HTTP/2 connections to one ruvicorn worker serving
``benchapp:echo`` (it reads the whole request body, then sends it back). Each connection
announces a stream window of 0 (the server may send no response DATA), then opens as many
streams as the server allows at once, each a HEADERS frame and as much body DATA as the
server's windows take: half of them never end their body (the app waits for the rest),
the other half end it (the app's response then waits for a window that never opens). The
client never reads. Reported: the worker's RSS before, once it stopped growing, and after
the connections are gone, per connection and per stream; and whether an ordinary client
is still answered meanwhile.

What bounds it: the engine admits at most --h2-max-concurrent-streams streams per
connection; it takes at most the windows it advertised of request body (one stream
window each, a connection window of min(streams, 16) stream windows in all) and holds a
response body no larger than the app's one pending ``send()`` per stream; header lists
are capped by the --limit-request-* options. The number of connections is bounded by
--limit-concurrency (off here) and the file descriptor limit.

    .venv/bin/python bench/h2_memory.py [--connections 200] [--max-growth-mib N]

Bounded: 60 s for the server to boot, 60 s for the attack to settle; the server is stopped
at the end. ``--max-growth-mib`` makes the exit status 1 when the growth exceeds it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import psutil

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
BOOT_SECONDS = 60.0
SETTLE_SECONDS = 60.0
TIMEOUT = 10.0


def open_attacker(host: str, port: int) -> tuple[socket.socket, h2.connection.H2Connection]:
    """A connection whose client announced a zero stream window, with the server's
    SETTINGS and connection window read (so the client knows what it may send)."""
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    conn = h2.connection.H2Connection(config=config)
    conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}
    )
    conn.initiate_connection()
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    sock.sendall(conn.data_to_send())
    window_seen = settings_seen = False
    for _ in range(100):  # bounded: each read makes progress or times out
        for event in conn.receive_data(sock.recv(65536)):
            settings_seen |= isinstance(event, h2.events.RemoteSettingsChanged)
            window_seen |= isinstance(event, h2.events.WindowUpdated) and event.stream_id == 0
        if settings_seen and window_seen:
            break
    return sock, conn


def attack_one(
    sock: socket.socket, conn: h2.connection.H2Connection, streams: int, body: bool
) -> int:
    """Open ``streams`` streams, with as much body as the windows take when ``body``; the
    body bytes sent."""
    limit = conn.remote_settings.max_concurrent_streams
    sent = 0
    for n in range(min(streams, limit)):
        stream = conn.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":authority", b"localhost"),
            (b":path", b"/"),
        ]
        conn.send_headers(stream, headers)
        window = conn.local_flow_control_window(stream) if body else 0
        frame = conn.max_outbound_frame_size
        while window > 0:
            size = min(window, frame)
            conn.send_data(stream, b"a" * size)
            window -= size
            sent += size
        if n % 2:
            conn.end_stream(stream)
        sock.sendall(conn.data_to_send())
    return sent


@contextlib.contextmanager
def attack(host: str, port: int, connections: int, streams: int, body: bool) -> Iterator[int]:
    """Hold the attack's connections open for the block; yields the body bytes sent."""
    socks: list[socket.socket] = []
    try:
        sent = 0
        for _ in range(connections):
            sock, conn = open_attacker(host, port)
            socks.append(sock)
            sent += attack_one(sock, conn, streams, body)
        yield sent
    finally:
        for sock in socks:
            sock.close()


def settled(read: Callable[[], int], timeout: float = SETTLE_SECONDS) -> int:
    """``read()`` once it stopped growing for 2 s (or at the bound)."""
    deadline = time.monotonic() + timeout
    last, stable_since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = read()
        if now > last + MIB // 4:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 2.0:
            break
    return max(last, read())


def worker_rss(master: int) -> int:
    """The RSS of the master's one worker process, in bytes."""
    children = psutil.Process(master).children()
    if len(children) != 1:
        raise RuntimeError(f"expected one worker, found {len(children)}")
    return int(children[0].memory_info().rss)


def served(host: str, port: int) -> bool:
    """Whether an ordinary HTTP/1.1 client gets its answer."""
    client = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        client.request("POST", "/", body=b"ping")
        response = client.getresponse()
        return response.status == 200 and response.read() == b"ping"
    except OSError:
        return False
    finally:
        client.close()


def measure(
    host: str, port: int, master: int, connections: int, streams: int, *, body: bool = True
) -> dict[str, object]:
    """Run the attack twice against a server already listening; the figures, in MiB. The
    second round shows whether the first left anything behind (a leak grows it again)."""
    rss = functools.partial(worker_rss, master)
    for _ in range(20):
        served(host, port)
    before = settled(rss, timeout=10.0)
    peaks, after, still_served, sent = [], 0, True, 0
    for _ in range(2):
        with attack(host, port, connections, streams, body) as sent_now:
            sent = sent_now
            peaks.append(settled(rss))
            still_served = still_served and served(host, port)
        after = settled(rss, timeout=10.0)
    growth = (peaks[0] - before) / MIB
    return {
        "connections": connections,
        "streams_per_connection": streams,
        "body_sent_mib": round(sent / MIB, 1),
        "rss_before_mib": round(before / MIB, 1),
        "rss_peak_mib": round(peaks[0] / MIB, 1),
        "rss_second_peak_mib": round(peaks[1] / MIB, 1),
        "rss_after_mib": round(after / MIB, 1),
        "growth_mib": round(growth, 1),
        "kib_per_connection": round(growth * 1024 / connections, 1),
        "kib_per_stream": round(growth * 1024 / (connections * streams), 2),
        "ordinary_client_served": still_served,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(python: str, port: int, streams: int) -> Iterator[int]:
    """One ruvicorn worker serving ``benchapp:echo``; yields the master's pid."""
    cmd = [
        python, "-m", "ruvicorn", "--host", "127.0.0.1", "--port", str(port),
        "--app-dir", str(HERE / "apps"), "--no-access-log", "--log-level", "warning",
        "--h2-max-concurrent-streams", str(streams), "--timeout-keep-alive", "120",
        "benchapp:echo",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + BOOT_SECONDS
        while not served("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--streams", type=int, default=100, help="per connection")
    parser.add_argument("--no-body", action="store_true", help="HEADERS only, no request DATA")
    parser.add_argument("--python", default=sys.executable, help="the ruvicorn to measure")
    parser.add_argument("--max-growth-mib", type=float, default=0.0, help="0 = report only")
    args = parser.parse_args()
    port = free_port()
    with server(args.python, port, args.streams) as master:
        result = measure(
            "127.0.0.1", port, master, args.connections, args.streams, body=not args.no_body
        )
    print(json.dumps(result))
    if not result["ordinary_client_served"]:
        print("an ordinary client was not served during the attack", file=sys.stderr)
        return 1
    if args.max_growth_mib and float(str(result["growth_mib"])) > args.max_growth_mib:
        print(f"RSS grew by more than {args.max_growth_mib} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
