"""Instructions per request of one worker, counted by callgrind.

Wall-clock numbers on a shared 2-core machine move by several percent from run to run;
an instruction count does not, so a change to the hot path is judged by this:

    python bench/callgrind.py                # plaintext (examples/hello.py), uvloop
    python bench/callgrind.py --loop asyncio
    python bench/callgrind.py --metrics      # with the --metrics-bind counters on
    python bench/callgrind.py --tls          # the same over TLS (the benchmark's ECDSA P-256
                                             # certificate, bench/runner/tls.py)
    python bench/callgrind.py --access-log FILE  # with the access log on, written to FILE
    python bench/callgrind.py --close        # a new connection per request (with --tls: a
                                             # full handshake each, the client never resumes)
    python bench/callgrind.py --h2           # HTTP/2 (h2c prior knowledge; with --tls, ALPN
                                             # h2), --streams concurrent streams on each of
                                             # --connections connections (default one)
    python bench/callgrind.py --h3           # HTTP/3 (QUIC, always over TLS), likewise

One worker (no master) serves ``examples/hello.py`` under ``valgrind --tool=callgrind``
twice: once for ``--small`` keep-alive requests on one connection, once for ``--large``.
Start-up, warm-up and shutdown cost the same in both runs, so

    (instructions of the large run - instructions of the small run) / (large - small)

is what one request costs. The client is this script: sequential requests on one
connection, each bounded by ``--timeout``; with ``--h2``, h2load (nghttp2's client, a
separate process, so its work is not counted) on ``--connections`` connections with
``--streams`` requests in flight on each; with ``--h3``, likewise ``wsload --h3``
(bench/wsload, built by bench/setup.sh).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner.load import bench_json
from runner.paths import WSLOAD
from runner.tls import CertError, Certs

ROOT = Path(__file__).resolve().parent.parent
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: callgrind\r\nAccept: */*\r\n\r\n"
BODY = b"Hello, world!\n"
CLOSE_REQUEST = REQUEST.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")


class Streams(NamedTuple):
    """How an HTTP/2 or HTTP/3 client loads the worker: ``streams`` requests in flight on
    each of ``connections``."""

    connections: int
    streams: int


def serve(
    port: int,
    loop: str,
    metrics: bool,
    tls: tuple[str, str] | None,
    access_file: str | None,
    *,
    http3: bool,
) -> int:
    """The measured process: one worker on a loopback port, as a worker process runs it;
    with ``metrics``, counting into a shared page as a supervised worker does; with ``tls``
    (certificate and key files), over TLS; with ``access_file``, writing its access log
    there at log level info; with ``http3``, serving HTTP/3 on the same UDP port too."""
    from ruvicorn import logs
    from ruvicorn.config import Config
    from ruvicorn.listeners import bind_listeners
    from ruvicorn.supervisor.heartbeat import Heartbeat
    from ruvicorn.supervisor.metrics import SLOTS
    from ruvicorn.worker.hooks import WorkerHooks
    from ruvicorn.worker.run import run_worker

    config = Config(
        app="hello:app",
        app_dir=str(ROOT / "examples"),
        port=port,
        loop=loop,
        access_log=access_file is not None,
        access_logfile=access_file,
        log_level="warning" if access_file is None else "info",
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
        http3=http3,
    )
    logs.configure(config.log_level, access_file=access_file)
    hooks = WorkerHooks(metrics=Heartbeat().counters(SLOTS) if metrics else None)
    return run_worker(config, bind_listeners(config), hooks)


def connect(port: int, timeout: float, tls: bool) -> socket.socket:
    """A connection to the worker; over TLS (certificate not checked: it is ours) if asked."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if not tls:
        return sock
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(sock)


def wait_ready(port: int, deadline: float, tls: bool) -> None:
    """Connect once the port listens and wait for one answer. A single request, however
    long the worker under callgrind takes to answer it: retried requests would differ in
    number between runs and spoil the difference."""
    while time.monotonic() < deadline:
        try:
            sock = connect(port, max(deadline - time.monotonic(), 1.0), tls)
        except (OSError, ssl.SSLError):
            time.sleep(0.2)
            continue
        with sock:
            sock.settimeout(max(deadline - time.monotonic(), 1.0))
            sock.sendall(REQUEST)
            if sock.recv(4096):
                return
            raise SystemExit("the worker closed the first connection")
    raise SystemExit("the worker did not answer in time")


def send_requests(port: int, count: int, timeout: float, tls: bool, close: bool) -> None:
    """``count`` keep-alive requests, one after the other, on one connection; with
    ``close``, each on a new connection read to its end."""
    if close:
        for _ in range(count):
            with connect(port, timeout, tls) as sock:
                sock.sendall(CLOSE_REQUEST)
                while sock.recv(65536):
                    pass
        return
    with connect(port, timeout, tls) as sock:
        for _ in range(count):
            sock.sendall(REQUEST)
            received = b""
            while not received.endswith(BODY):
                chunk = sock.recv(65536)
                if not chunk:
                    raise SystemExit("the worker closed the connection")
                received += chunk


def send_h2_requests(port: int, count: int, timeout: float, tls: bool, load: Streams) -> None:
    """``count`` HTTP/2 requests, as ``load`` says."""
    if shutil.which("h2load") is None:
        raise SystemExit("h2load is not installed (apt-get install nghttp2-client)")
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/"
    command = ["h2load", "-n", str(count), "-c", str(load.connections), "-m", str(load.streams)]
    command += ["-N", f"{max(int(timeout), 1)}s", url]
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=timeout * 10, check=False, text=True
        )
    except subprocess.TimeoutExpired:
        raise SystemExit("h2load did not finish in time") from None
    match = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", done.stdout)
    if match is None or int(match.group(1)) != count:
        raise SystemExit(f"h2load did not get {count} answers: {done.stdout[-500:]}")


def send_h3_requests(port: int, count: int, timeout: float, load: Streams) -> None:
    """``count`` HTTP/3 requests, as ``load`` says."""
    if not WSLOAD.exists():
        raise SystemExit(f"{WSLOAD} is missing: run bash bench/setup.sh (needs cargo)")
    command = [str(WSLOAD), "--h3", "--port", str(port), "-c", str(load.connections)]
    command += ["-m", str(load.streams)]
    command += ["-n", str(count), "-d", str(timeout * 10), "--timeout", str(timeout)]
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=timeout * 12, check=False, text=True
        )
    except subprocess.TimeoutExpired:
        raise SystemExit("wsload did not finish in time") from None
    result = bench_json(done.stdout)
    if result is None or result["requests"] != count or result["status"] or result["timeout"]:
        raise SystemExit(f"wsload did not get {count} answers: {done.stdout[-500:]}")


def count_instructions(
    count: int,
    port: int,
    loop: str,
    timeout: float,
    *,
    metrics: bool,
    certs: Certs | None,
    access_file: str | None,
    close: bool,
    h2: Streams | None,
    h3: Streams | None,
) -> int:
    """Total instructions of a worker that served ``count`` requests (plus one to see it up)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--serve",
            str(port),
            "--loop",
            loop,
            *(["--metrics"] if metrics else []),
            *(["--tls-cert", str(certs.cert), "--tls-key", str(certs.key)] if certs else []),
            *(["--access-log", access_file] if access_file else []),
            *(["--h3"] if h3 is not None else []),
        ]
        proc = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            tls = certs is not None
            wait_ready(port, time.monotonic() + 120, tls)
            if h2 is not None:
                send_h2_requests(port, count, timeout, tls, h2)
            elif h3 is not None:
                send_h3_requests(port, count, timeout, h3)
            else:
                send_requests(port, count, timeout, tls, close)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        match = re.search(rb"Collected : (\d+)", err)
        if match is None:
            raise SystemExit(f"no callgrind total in: {err[-500:].decode(errors='replace')}")
        return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"))
    parser.add_argument("--small", type=int, default=2000, help="requests of the first run")
    parser.add_argument("--large", type=int, default=4000, help="requests of the second run")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per response")
    parser.add_argument(
        "--metrics", action="store_true", help="count requests as --metrics-bind makes workers do"
    )
    parser.add_argument("--tls", action="store_true", help="serve and request over TLS")
    parser.add_argument(
        "--access-log", metavar="FILE", help="log each request to FILE, as --access-logfile does"
    )
    parser.add_argument(
        "--close", action="store_true", help="a new connection per request (Connection: close)"
    )
    parser.add_argument(
        "--h2", action="store_true", help="HTTP/2 requests on one connection (h2load)"
    )
    parser.add_argument(
        "--h3", action="store_true", help="HTTP/3 requests on one connection (wsload --h3)"
    )
    parser.add_argument(
        "--streams", type=int, default=4, help="with --h2 or --h3: requests in flight at once"
    )
    parser.add_argument(
        "--connections", type=int, default=1, help="with --h2 or --h3: connections at once"
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--tls-cert", help=argparse.SUPPRESS)
    parser.add_argument("--tls-key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
        return serve(args.serve, args.loop, args.metrics, tls, args.access_log, http3=args.h3)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if sum((args.h2, args.h3, args.close)) > 1:
        raise SystemExit("--h2, --h3 and --close do not combine")
    if not args.small < args.large:
        raise SystemExit("--small must be less than --large")
    certs = Certs() if args.tls or args.h3 else None
    load = Streams(args.connections, args.streams)
    try:
        if certs is not None:
            certs.mint()
        runs = [
            count_instructions(
                n,
                args.port,
                args.loop,
                args.timeout,
                metrics=args.metrics,
                certs=certs,
                access_file=args.access_log,
                close=args.close,
                h2=load if args.h2 else None,
                h3=load if args.h3 else None,
            )
            for n in (args.small, args.large)
        ]
    except CertError as err:
        raise SystemExit(f"callgrind: {err}") from None
    finally:
        if certs is not None:
            certs.remove()
    small, large = runs
    per_request = (large - small) / (args.large - args.small)
    print(f"{args.small} requests: {small:,} instructions")
    print(f"{args.large} requests: {large:,} instructions")
    print(f"{describe(args)}: {per_request:,.0f} instructions per request")
    return 0


def describe(args: argparse.Namespace) -> str:
    """What was measured, as the result line names it."""
    kind = "plaintext over TLS" if args.tls else "plaintext"
    if args.close:
        kind += ", a new connection per request"
    if args.h2:
        kind = f"HTTP/2 {kind}"
    if args.h3:
        kind = "HTTP/3 plaintext"
    if args.h2 or args.h3:
        kind += f", {args.connections} connection(s) x {args.streams} streams in flight"
    what = f"{args.loop}, metrics {'on' if args.metrics else 'off'}"
    what += f", access log {'on' if args.access_log else 'off'}"
    return f"{kind} ({what})"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
