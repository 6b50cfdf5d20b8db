"""Ports, and the one real request that tells a started server is serving correctly."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

from runner.load import bench_json, h2load_argv, wsload_argv
from runner.paths import ECHO_BODY, HELLO, HOST, STREAM_BYTES, WS_MESSAGE, WSLOAD
from runner.tls import CERTS
from runner.workloads import Workload


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def wait_port_free(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_free(port):
            return True
        time.sleep(0.1)
    return port_free(port)


def probe(w: Workload, port: int) -> str | None:
    """One real request: None when the answer is right, else why not. Raises if refused."""
    if w.websocket:
        return ws_probe(port, w.path)
    if w.http2:
        return h2_probe(w, port)
    if w.http3:
        return h3_probe(w, port)
    conn = (
        http.client.HTTPSConnection(HOST, port, timeout=5, context=tls_client())
        if w.tls
        else http.client.HTTPConnection(HOST, port, timeout=5)
    )
    try:
        body = ECHO_BODY if w.method == "POST" else None
        headers = {"Content-Type": "application/octet-stream"} if body else {}
        conn.request(w.method, w.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        return f"probe {w.method} {w.path}: status {resp.status}"
    if w.name == "echo":
        ok = data == ECHO_BODY
    elif w.name == "json":
        try:
            ok = json.loads(data) == {"message": "Hello, world!"}
        except ValueError:
            ok = False
    elif w.name == "stream":
        ok = len(data) == STREAM_BYTES
    else:
        ok = data == HELLO
    return None if ok else f"probe {w.method} {w.path}: unexpected body {data[:60]!r}"


def h2_probe(w: Workload, port: int) -> str | None:
    """One HTTP/2 request by h2load: answered 2xx with a body of the expected length."""
    socket.create_connection((HOST, port), timeout=5).close()  # refused: not listening yet
    argv = h2load_argv(w, port, ["-n", "1", "-c", "1"])
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout
    except subprocess.TimeoutExpired:
        return "h2 probe: h2load did not finish in 10 s"
    expected = len(ECHO_BODY if w.method == "POST" else HELLO)
    if not re.search(r"^status codes: 1 2xx", out, re.M):
        return f"h2 probe {w.method} {w.path}: no 2xx answer"
    data = re.search(r"^traffic: .*\((\d+)\) data$", out, re.M)
    if data is None or int(data.group(1)) != expected:
        return f"h2 probe {w.method} {w.path}: expected a {expected}-byte body"
    return None


def h3_probe(w: Workload, port: int) -> str | None:
    """One HTTP/3 request by wsload: answered 2xx with a body of the expected length.

    Raises ConnectionRefusedError while nothing listens on TCP, or no QUIC handshake is
    answered yet (the UDP socket may come up a moment later), so the start is waited for.
    The served certificate is checked over TCP: the same files back both listeners.
    """
    with (
        socket.create_connection((HOST, port), timeout=5) as sock,
        tls_client().wrap_socket(sock, server_hostname=HOST),
    ):
        pass  # refused: not listening yet; a wrong certificate raises SSLError
    if not WSLOAD.exists():
        return "h3 probe: bench/.venv/bin/wsload is missing: run bash bench/setup.sh"
    argv = wsload_argv(w, port, ["-c", "1", "-n", "1", "-d", "3", "--timeout", "2"])
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
    except subprocess.TimeoutExpired:
        return "h3 probe: wsload did not finish in 15 s"
    return read_h3_probe(w, bench_json(out.stdout), out.stderr)


def read_h3_probe(w: Workload, result: dict[str, Any] | None, stderr: str) -> str | None:
    """What the probe's wsload report says: None when the one request was answered right."""
    what = f"h3 probe {w.method} {w.path}"
    if result is None:
        last = stderr.strip().splitlines()[-1:] or ["no output"]
        return f"{what}: wsload failed: {last[0]}"
    if result["requests"] == 0 and result["connect"]:
        raise ConnectionRefusedError("no QUIC handshake answered")
    if result["requests"] != 1 or result["status"]:
        why = stderr.strip().splitlines()[-1:] or ["no answer"]
        return f"{what}: no 2xx answer ({why[0]})"
    expected = len(ECHO_BODY if w.method == "POST" else HELLO)
    if result.get("body_bytes") != expected:
        return f"{what}: expected a {expected}-byte body, got {result.get('body_bytes')}"
    return None


def tls_client() -> ssl.SSLContext:
    """The probe checks the served certificate against the run's own CA, as a browser would."""
    return ssl.create_default_context(cafile=str(CERTS.ca))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("closed mid-frame")
        data += chunk
    return data


def ws_probe(port: int, path: str) -> str | None:
    """A WebSocket handshake and one echoed message, with the stdlib: None when all is right.

    Raises OSError (ConnectionRefusedError while nothing listens) like the HTTP probe.
    """
    key = base64.b64encode(os.urandom(16)).decode()
    accept = base64.b64encode(
        hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    ).decode()
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk or len(head) > 16384:
                return f"probe GET {path}: no complete upgrade response ({head[:60]!r})"
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            return f"probe GET {path}: {lines[0]!r} instead of 101"
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
        if fields.get("sec-websocket-accept") != accept:
            return f"probe GET {path}: wrong Sec-WebSocket-Accept"
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(WS_MESSAGE))
        sock.sendall(bytes([0x81, 0x80 | len(WS_MESSAGE)]) + mask + masked)
        need = 2 + len(WS_MESSAGE)
        frame = rest + (_recv_exact(sock, need - len(rest)) if len(rest) < need else b"")
        if frame[:need] != bytes([0x81, len(WS_MESSAGE)]) + WS_MESSAGE:
            return f"probe GET {path}: echo was {frame[:40]!r}"
        close = bytes(b ^ mask[i % 4] for i, b in enumerate(b"\x03\xe8"))
        sock.sendall(b"\x88\x82" + mask + close)
        with contextlib.suppress(OSError):
            sock.recv(64)  # the server's close frame; a bounded courtesy wait
    return None


def tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text[-lines:])
