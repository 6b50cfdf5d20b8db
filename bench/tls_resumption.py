#!/usr/bin/env python3
"""Which load generators really do a full TLS handshake per request.

    python3 bench/tls_resumption.py          # about 5 s, loopback only

A `Connection: close` run over https is meant to cost the server a handshake per request,
but a client that keeps the session of its last connection resumes it on the next, and
the server then does a cheap resumption instead. This starts a small TLS server (the
stdlib ssl module, the bench's own certificates) that answers each request on a new
connection and counts, from the server's side (``SSLSocket.session_reused``), full and
resumed handshakes; then runs each load generator at hand against it, one connection at a
time, for about a second. bench/wsload --tls-close must show no resumed handshake.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner.paths import HOST, WSLOAD
from runner.tls import CERTS

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!"


class CountingServer(threading.Thread):
    """Accepts one connection at a time; counts full and resumed handshakes."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(CERTS.cert, CERTS.key)
        self.sock = socket.create_server((HOST, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.full = self.resumed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    if tls.session_reused:
                        self.resumed += 1
                    else:
                        self.full += 1
                    head = b""
                    while b"\r\n\r\n" not in head and len(head) < 16384:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    tls.sendall(RESPONSE)
            except OSError:
                conn.close()  # a client that closed first: nothing to count beyond that

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)
        self.sock.close()


def clients(port: int) -> dict[str, list[str]]:
    url = f"https://{HOST}:{port}/"
    one = ["-c", "1", "-d", "1", "--port", str(port)]  # one connection at a time, 1 s
    found = {
        "wrk": ["wrk", "-t1", "-c1", "-d1s", "-H", "Connection: close", url],
        "h2load --h1": ["h2load", "--h1", "-c1", "-n300", "-H", "Connection: close", url],
        "wsload --tls-close": [str(WSLOAD), "--tls-close", *one],
    }
    return {name: argv for name, argv in found.items() if shutil.which(argv[0])}


def main() -> int:
    CERTS.mint()
    failed = False
    try:
        print(f"{'client':20} {'full':>6} {'resumed':>8}")
        for name in clients(0):
            server = CountingServer()
            server.start()
            argv = clients(server.port)[name]
            subprocess.run(argv, capture_output=True, timeout=30, check=False)
            server.stop()
            print(f"{name:20} {server.full:6} {server.resumed:8}")
            failed |= name.startswith("wsload") and (server.resumed > 0 or server.full == 0)
    finally:
        CERTS.remove()
    if failed:
        print("wsload --tls-close resumed sessions (or did not connect): tls-close is wrong")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
