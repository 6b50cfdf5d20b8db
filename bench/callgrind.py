"""Instructions per request of one worker, counted by callgrind.

Wall-clock numbers on a shared 2-core machine move by several percent from run to run;
an instruction count does not, so a change to the hot path is judged by this:

    python bench/callgrind.py                # plaintext (examples/hello.py), uvloop
    python bench/callgrind.py --loop asyncio
    python bench/callgrind.py --metrics      # with the --metrics-bind counters on
    python bench/callgrind.py --tls          # the same over TLS (an ECDSA P-256 certificate)

One worker (no master) serves ``examples/hello.py`` under ``valgrind --tool=callgrind``
twice: once for ``--small`` keep-alive requests on one connection, once for ``--large``.
Start-up, warm-up and shutdown cost the same in both runs, so

    (instructions of the large run - instructions of the small run) / (large - small)

is what one request costs. The client is this script: sequential requests on one
connection, each bounded by ``--timeout``.
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

ROOT = Path(__file__).resolve().parent.parent
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: callgrind\r\nAccept: */*\r\n\r\n"
BODY = b"Hello, world!\n"


def serve(port: int, loop: str, metrics: bool, certfile: str | None) -> int:
    """The measured process: one worker on a loopback port, as a worker process runs it;
    with ``metrics``, counting into a shared page as a supervised worker does."""
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
        access_log=False,
        log_level="warning",
        ssl_certfile=certfile,
    )
    logs.configure(config.log_level)
    hooks = WorkerHooks(metrics=Heartbeat().counters(SLOTS) if metrics else None)
    return run_worker(config, bind_listeners(config), hooks)


def mint_certificate(directory: Path) -> str:
    """A self-signed ECDSA P-256 certificate and its key in one PEM file."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    command += ["-nodes", "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
    subprocess.run(
        [*command, "-days", "1"],
        check=True,
        capture_output=True,
    )
    both = directory / "server.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    return str(both)


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


def send_requests(port: int, count: int, timeout: float, tls: bool) -> None:
    """``count`` keep-alive requests, one after the other, on one connection."""
    with connect(port, timeout, tls) as sock:
        for _ in range(count):
            sock.sendall(REQUEST)
            received = b""
            while not received.endswith(BODY):
                chunk = sock.recv(65536)
                if not chunk:
                    raise SystemExit("the worker closed the connection")
                received += chunk


def count_instructions(
    count: int, port: int, loop: str, timeout: float, *, metrics: bool, certfile: str | None
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
            *(["--tls-cert", certfile] if certfile else []),
        ]
        proc = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_ready(port, time.monotonic() + 120, certfile is not None)
            send_requests(port, count, timeout, certfile is not None)
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
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--tls-cert", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve, args.loop, args.metrics, args.tls_cert)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if not args.small < args.large:
        raise SystemExit("--small must be less than --large")
    with tempfile.TemporaryDirectory() as tmp:
        certfile = mint_certificate(Path(tmp)) if args.tls else None
        runs = [
            count_instructions(
                n, args.port, args.loop, args.timeout, metrics=args.metrics, certfile=certfile
            )
            for n in (args.small, args.large)
        ]
    small, large = runs
    per_request = (large - small) / (args.large - args.small)
    print(f"{args.small} requests: {small:,} instructions")
    print(f"{args.large} requests: {large:,} instructions")
    kind = "plaintext over TLS" if args.tls else "plaintext"
    what = f"{args.loop}, metrics {'on' if args.metrics else 'off'}"
    print(f"{kind} ({what}): {per_request:,.0f} instructions per request")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
