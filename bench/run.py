#!/usr/bin/env python3
"""Side-by-side HTTP and WebSocket benchmark of ruvicorn and its peers, in one command.

    python bench/run.py            # full run (~25-30 min), writes bench/results/
    python bench/run.py --quick    # smoke run (~4 min): 2 rounds x 3 s, fewer rows,
                                   # writes bench/results-partial/ (--out DIR to choose)

Why it is built this way (details in bench/README.md):
- every server is pinned to one core and the load generator (wrk, or bench/wsload for the
  WebSocket echo) to the other, so a row measures the server's
  own cost per request, not how it competes with the load generator for a core;
- servers are interleaved (A B C, A B C, ...) and restarted for every round, so a slow
  minute on this shared machine spreads over all rows instead of sinking one of them;
- the spread (min-max over rounds) is printed next to every median, so a reader can see
  when two rows are not really different;
- CPU per request is read from /proc for the whole process tree of the server, which
  counts work done off the event loop (threads, helper processes) that req/s alone hides.

Only loopback is used, every run is bounded in time, and every server is stopped by its pid.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
APPS = BENCH / "apps"
RESULTS = BENCH / "results"
#: Where a quick or partial run writes unless told otherwise: the committed full results
#: are only replaced by a full run.
PARTIAL_RESULTS = BENCH / "results-partial"
RAW = RESULTS / "raw"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
BASELINE = "uvicorn"
HELLO = b"Hello, world!"
ECHO_BODY = b"x" * 4096
STREAM_BYTES = 16 * 65536
WS_MESSAGE = HELLO  # what each WebSocket connection sends and expects back, 13 bytes
WSLOAD = VENV / "bin" / "wsload"  # built from bench/wsload by setup.sh


def venv_bin(name: str) -> str:
    return str(VENV / "bin" / name)


# --------------------------------------------------------------------------- workloads


@dataclasses.dataclass(frozen=True)
class Workload:
    """One request pattern: what the load generator sends and how a healthy answer looks."""

    name: str
    title: str
    path: str
    app: str  # module:attribute in bench/apps
    floor: str  # what the canned-bytes floor answers (see apps/floor.py)
    connections: int = 64
    script: str | None = None  # wrk lua script in bench/apps
    headers: tuple[str, ...] = ()
    method: str = "GET"
    throughput: bool = False  # report MB/s and rank by it
    client: str = "wrk"  # the load generator: wrk, or wsload (WebSocket echo)
    unit: str = "req"  # what one counted round trip is: a request, or a message


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "plaintext",
            "plaintext: GET, 13-byte body, keep-alive",
            "/",
            "benchapp:plaintext",
            "plaintext",
        ),
        Workload(
            "close",
            "close: a new connection per request (Connection: close)",
            "/",
            "benchapp:plaintext",
            "plaintext",
            headers=("Connection: close",),
        ),
        Workload(
            "echo",
            "echo: POST a 4 KiB body, echoed back",
            "/echo",
            "benchapp:echo",
            "echo",
            script="post_4k.lua",
            method="POST",
        ),
        Workload("json", "json: one FastAPI endpoint", "/json", "benchapi:app", "json"),
        Workload(
            "stream",
            "stream: 1 MiB as 16 chunks of 64 KiB (chunked)",
            "/stream",
            "benchapp:stream",
            "stream",
            connections=16,
            throughput=True,
        ),
        Workload(
            "pipeline",
            "pipeline: 16 GET requests per write",
            "/",
            "benchapp:plaintext",
            "plaintext",
            script="pipeline_16.lua",
        ),
        Workload(
            "websocket",
            f"websocket: a {len(WS_MESSAGE)}-byte text message echoed, closed loop",
            "/ws",
            "benchapp:websocket",
            "",
            client="wsload",
            unit="msg",
        ),
    )
}
MEMORY = "memory"  # the optional soak: plaintext for a minute, worker RSS sampled


# --------------------------------------------------------------------------- servers


@dataclasses.dataclass
class Launch:
    """How to start one server for one workload; ``cleanup`` runs after it stopped."""

    argv: list[str]
    cleanup: Callable[[], None] | None = None


@dataclasses.dataclass(frozen=True)
class Server:
    name: str
    label: str
    start: Callable[[Workload, int], Launch | None]  # None: not applicable to the workload
    workloads: tuple[str, ...] | None = None  # None: every workload
    need: str = ""  # executable that must exist
    na: tuple[tuple[str, str], ...] = ()  # (workload, why not): shown as "n/a" rows

    def na_reason(self, workload: Workload) -> str | None:
        return dict(self.na).get(workload.name)

    def applies(self, workload: Workload) -> bool:
        if self.na_reason(workload) is not None:
            return False
        return self.workloads is None or workload.name in self.workloads


def _ruvicorn(loop: str) -> Callable[[Workload, int], Launch]:
    def start(w: Workload, port: int) -> Launch:
        return Launch(
            [
                venv_bin("ruvicorn"),
                "--no-access-log",
                "--host",
                HOST,
                "--port",
                str(port),
                "--app-dir",
                str(APPS),
                "--workers",
                "1",
                "--loop",
                loop,
                "--log-level",
                "warning",
                w.app,
            ]
        )

    return start


def _uvicorn(loop: str, http: str) -> Callable[[Workload, int], Launch]:
    def start(w: Workload, port: int) -> Launch:
        # websockets-sansio is what its default (auto) picks when websockets is installed,
        # as in the gunicorn worker; named so the row cannot fall back to another one.
        ws = ["--ws", "websockets-sansio"] if w.client == "wsload" else []
        return Launch(
            [
                venv_bin("uvicorn"),
                "--no-access-log",
                "--host",
                HOST,
                "--port",
                str(port),
                "--app-dir",
                str(APPS),
                "--loop",
                loop,
                "--http",
                http,
                *ws,
                "--log-level",
                "warning",
                w.app,
            ]
        )

    return start


def _granian(w: Workload, port: int) -> Launch:
    return Launch(
        [
            venv_bin("granian"),
            "--interface",
            "asgi",
            "--loop",
            "uvloop",
            "--workers",
            "1",
            "--host",
            HOST,
            "--port",
            str(port),
            "--working-dir",
            str(APPS),
            "--no-access-log",
            "--log-level",
            "warning",
            w.app,
        ]
    )


def _gunicorn(w: Workload, port: int) -> Launch:
    # No --access-logfile: the access log is off by default.
    return Launch(
        [
            venv_bin("gunicorn"),
            "--worker-class",
            "uvicorn_worker.UvicornWorker",
            "--workers",
            "1",
            "--bind",
            f"{HOST}:{port}",
            "--chdir",
            str(APPS),
            "--log-level",
            "warning",
            w.app,
        ]
    )


def _floor(w: Workload, port: int) -> Launch:
    return Launch(
        [
            venv_bin("python"),
            str(APPS / "floor.py"),
            "--host",
            HOST,
            "--port",
            str(port),
            "--workload",
            w.floor,
            "--loop",
            "uvloop",
        ]
    )


def _nginx(w: Workload, port: int) -> Launch | None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    prefix.chmod(0o755)  # the worker runs unprivileged and reads stream.bin
    (prefix / "stream.bin").write_bytes(b"x" * STREAM_BYTES)
    (prefix / "stream.bin").chmod(0o644)
    conf = (APPS / "nginx.conf").read_text()
    conf = conf.replace("@PREFIX@", str(prefix)).replace("@PORT@", str(port))
    (prefix / "nginx.conf").write_text(conf)
    return Launch(
        [
            nginx,
            "-p",
            str(prefix),
            "-e",
            str(prefix / "error.log"),
            "-c",
            str(prefix / "nginx.conf"),
            "-g",
            "daemon off;",
        ],
        cleanup=lambda: shutil.rmtree(prefix, ignore_errors=True),
    )


SERVERS: dict[str, Server] = {
    s.name: s
    for s in (
        Server("ruvicorn", "ruvicorn (1 worker, uvloop)", _ruvicorn("uvloop"), need="ruvicorn"),
        Server(
            "uvicorn", "uvicorn httptools+uvloop", _uvicorn("uvloop", "httptools"), need="uvicorn"
        ),
        Server(
            "uvicorn-h11",
            "uvicorn h11+uvloop",
            _uvicorn("uvloop", "h11"),
            need="uvicorn",
            na=(("websocket", "h11 only parses the handshake; same WebSocket code as uvicorn"),),
        ),
        Server("granian", "granian asgi, uvloop (1 worker)", _granian, need="granian"),
        Server("gunicorn", "gunicorn + uvicorn worker (1 worker)", _gunicorn, need="gunicorn"),
        Server(
            "floor",
            "floor: bare uvloop Protocol",
            _floor,
            need="python",
            na=(("websocket", "no WebSocket floor"),),
        ),
        Server(
            "nginx",
            "floor: nginx (1 worker)",
            _nginx,
            workloads=("plaintext", "close", "json", "stream", "pipeline"),
            na=(("websocket", "no WebSocket floor"),),
        ),
        Server(
            "ruvicorn-asyncio",
            "ruvicorn (1 worker, asyncio loop)",
            _ruvicorn("asyncio"),
            workloads=("plaintext", MEMORY),
            need="ruvicorn",
        ),
        Server(
            "uvicorn-asyncio",
            "uvicorn httptools+asyncio",
            _uvicorn("asyncio", "httptools"),
            workloads=("plaintext", MEMORY),
            need="uvicorn",
        ),
    )
}
QUICK_SERVERS = ("ruvicorn", "uvicorn")  # on every workload but plaintext
MEMORY_SERVERS = ("ruvicorn", "uvicorn")


# --------------------------------------------------------------------------- /proc


@dataclasses.dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    ticks: int  # utime + stime, all threads
    user: int  # utime alone (to tell the server's user time from other processes')
    start: int  # start time in ticks since boot: tells a reused pid apart


def read_proc(pid: int) -> Proc | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()  # fields[0] is field 3 (state)
    user = int(fields[11])
    return Proc(pid, int(fields[1]), user + int(fields[12]), user, int(fields[19]))


def process_tree(root: int) -> dict[int, Proc]:
    """The root and all its descendants, found by walking parent links in /proc."""
    procs: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (p := read_proc(int(entry))) is not None:
            procs[p.pid] = p
    if root not in procs:
        return {}
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    tree: dict[int, Proc] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        tree[pid] = procs[pid]
        todo.extend(children.get(pid, ()))
    return tree


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(before: dict[int, Proc], after: dict[int, Proc]) -> float:
    """CPU the tree used between two snapshots (a process born in between counts whole)."""
    ticks = 0
    for pid, p in after.items():
        old = before.get(pid)
        ticks += p.ticks - (old.ticks if old is not None and old.start == p.start else 0)
    return ticks / CLK_TCK


def parse_cpus(spec: str) -> set[int]:
    """A taskset CPU list ("0", "0,2", "0-3") as a set."""
    cpus: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def core_ticks(cpus: set[int]) -> tuple[int, int, int]:
    """(user+nice, steal, all) ticks of these CPUs from /proc/stat."""
    usernice = steal = total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *vals = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            v = [int(x) for x in vals[:8]]
            usernice += v[0] + v[1]
            steal += v[7]
            total += sum(v)
    return usernice, steal, total


def other_load(core0: tuple[int, int, int], core1: tuple[int, int, int], server_user: int) -> float:
    """Share of the server's core that other processes (and the hypervisor) took meanwhile.

    User time on that core not spent by the server, plus steal. High values mean the row
    was measured while something else competed for the core: rerun it, or read it with care.
    """
    total = core1[2] - core0[2]
    if total <= 0:
        return 0.0
    other = (core1[0] - core0[0]) - server_user + (core1[1] - core0[1])
    return max(0.0, other / total)


def worker_pids(tree: dict[int, Proc], root: int) -> list[int]:
    """The processes that serve requests: the root's descendants if any, else the root."""
    others = [pid for pid in tree if pid != root]
    return others or [root]


# --------------------------------------------------------------------------- ports / probes


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
    if w.client == "wsload":
        return ws_probe(port, w.path)
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
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


# --------------------------------------------------------------------------- one server


class StartFailed(Exception):
    """The server did not come up (or answered wrongly); the message says how."""


LIVE: list[Running] = []  # started and not yet stopped: stopped on an interrupt, too


class Running:
    """A started server: its pid, its log, and a bounded, by-pid stop."""

    def __init__(self, server: Server, w: Workload, port: int, log: Path, cpu: str) -> None:
        self.server, self.workload, self.port, self.log = server, w, port, log
        launch = server.start(w, port)
        assert launch is not None
        self.cleanup = launch.cleanup
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RUVICORN_", "UVICORN_", "GRANIAN_", "GUNICORN_"))
            and k not in ("WEB_CONCURRENCY", "PYTHONPATH")
        }
        env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        self.logf = log.open("wb")
        try:
            self.proc = subprocess.Popen(
                ["taskset", "-c", cpu, *launch.argv],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self.logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self.logf.close()
            if self.cleanup:
                self.cleanup()
            raise StartFailed(f"could not run {launch.argv[0]}: {exc.strerror}") from None
        self.pid = self.proc.pid
        self.known: dict[int, Proc] = {}
        LIVE.append(self)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        broken = 0  # probes that connected but got no answer
        while True:
            if self.proc.poll() is not None:
                raise StartFailed(f"exited with code {self.proc.returncode} before serving")
            try:
                problem = probe(self.workload, self.port)
            except ConnectionRefusedError:
                problem = "not listening"
            except (OSError, http.client.HTTPException) as exc:
                problem = f"probe {self.workload.method} {self.workload.path}: {exc!r}"
                broken += 1
                if broken >= 5:
                    raise StartFailed(problem) from None
            else:
                if problem is not None:
                    raise StartFailed(problem)
                self.known.update(process_tree(self.pid))
                return
            if time.monotonic() > deadline:
                raise StartFailed(f"{problem} after {timeout:.0f} s")
            time.sleep(0.05)

    def tree(self) -> dict[int, Proc]:
        tree = process_tree(self.pid)
        self.known.update(tree)
        return tree

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the pid, then SIGKILL to whatever of its tree is left; wait for the port.

        Ctrl-C is held off meanwhile (the stop is bounded), so no server outlives the run.
        """
        if self not in LIVE:
            return
        held = [signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)]
        try:
            self._stop(timeout)
        finally:
            LIVE.remove(self)
            signal.signal(signal.SIGINT, held[0])
            signal.signal(signal.SIGTERM, held[1])

    def _stop(self, timeout: float) -> None:
        with contextlib.suppress(Exception):
            self.known.update(process_tree(self.pid))
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        for pid, p in self.known.items():  # children (gunicorn, granian, ruvicorn workers)
            now = read_proc(pid)
            if now is not None and now.start == p.start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # the session this runner created for it
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self.logf.close()
        if self.cleanup:
            self.cleanup()
        wait_port_free(self.port, timeout)


# --------------------------------------------------------------------------- wrk


def wrk_script(w: Workload) -> Path:
    """The workload's lua script with the JSON reporter appended, in the raw directory."""
    parts = []
    if w.script:
        parts.append((APPS / w.script).read_text())
    parts.append((APPS / "report.lua").read_text())
    path = RAW / f"wrk-{w.name}.lua"
    path.write_text("\n".join(parts))
    return path


def run_wrk(
    w: Workload, port: int, seconds: int, cpu: str, connections: int | None = None
) -> dict[str, Any]:
    conns = connections or w.connections
    argv = [
        "taskset",
        "-c",
        cpu,
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(wrk_script(w)),
    ]
    for h in w.headers:
        argv += ["-H", h]
    argv.append(f"http://{HOST}:{port}{w.path}")
    return run_client("wrk", argv, seconds)


def run_wsload(
    w: Workload, port: int, seconds: int, cpu: str, connections: int | None = None
) -> dict[str, Any]:
    """The WebSocket echo load: bench/wsload, pinned like wrk, reporting in wrk's format."""
    if not WSLOAD.exists():
        return {"error": "bench/.venv/bin/wsload is missing: run bash bench/setup.sh (needs cargo)"}
    argv = [
        "taskset",
        "-c",
        cpu,
        str(WSLOAD),
        "--host",
        HOST,
        "--port",
        str(port),
        "--path",
        w.path,
        "-c",
        str(connections or w.connections),
        "-d",
        str(seconds),
        "--size",
        str(len(WS_MESSAGE)),
        "--timeout",
        "5",
    ]
    return run_client("wsload", argv, seconds)


def run_load(
    w: Workload, port: int, seconds: int, cpu: str, connections: int | None = None
) -> dict[str, Any]:
    """The workload's load generator for ``seconds``: its totals, or {"error": why}."""
    run = run_wsload if w.client == "wsload" else run_wrk
    return run(w, port, seconds, cpu, connections)


def run_client(name: str, argv: list[str], seconds: int) -> dict[str, Any]:
    """Run one load generator and read its BENCH_JSON line, plus its own CPU share."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{name} did not finish within {seconds + 30} s"}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"^BENCH_JSON (\{.*\})$", out.stdout, re.M)
    if not m:
        last = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"{name} failed (code {out.returncode}): {last[0]}"}
    result: dict[str, Any] = json.loads(m.group(1))
    for key in ("p50_us", "p90_us", "p99_us"):
        if not result[key]:  # wrk's histogram gives 0 when it lost samples: unknown, not 0
            result[key] = None
    wall = result["duration_us"] / 1e6
    client_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    result["client_cpu_share"] = client_cpu / wall if wall else 0.0
    result["client_user_ticks"] = round((after.ru_utime - before.ru_utime) * CLK_TCK)
    result["rps"] = result["requests"] / wall if wall else 0.0
    result["mbps"] = result["bytes"] / wall / 1e6 if wall else 0.0
    result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return result


# --------------------------------------------------------------------------- measurement


@dataclasses.dataclass
class Options:
    duration: int
    warmup: int
    rounds: int
    port: int
    server_cpu: str
    client_cpu: str
    start_timeout: float
    memory_duration: int
    memory_interval: int
    retry_noisy: float = 20.0  # percent; 0 = never


def measure(server: Server, w: Workload, rnd: int, opt: Options) -> dict[str, Any]:
    """Start, warm up, measure once, stop. Never raises for a server's own failure."""
    log = RAW / f"{w.name}-{server.name}-r{rnd}.log"
    row: dict[str, Any] = {"server": server.name, "workload": w.name, "round": rnd, "log": str(log)}
    if w.client == "wsload" and not WSLOAD.exists():
        row["error"] = "bench/.venv/bin/wsload is missing: run bash bench/setup.sh (needs cargo)"
        return row
    if not wait_port_free(opt.port, 15):
        row["error"] = f"port {opt.port} still busy before start"
        return row
    try:
        running = Running(server, w, opt.port, log, opt.server_cpu)
    except StartFailed as exc:
        row["error"] = str(exc)
        return row
    try:
        running.wait_ready(opt.start_timeout)
        if opt.warmup > 0:
            warm = run_load(w, opt.port, opt.warmup, opt.client_cpu)
            if "error" in warm:
                raise StartFailed(f"warm-up: {warm['error']}")
        cpus = parse_cpus(opt.server_cpu)
        client_cpus = parse_cpus(opt.client_cpu)
        wrk0, core0, before = core_ticks(client_cpus), core_ticks(cpus), running.tree()
        result = run_load(w, opt.port, opt.duration, opt.client_cpu)
        after, core1, wrk1 = running.tree(), core_ticks(cpus), core_ticks(client_cpus)
        if "error" in result:
            raise StartFailed(result["error"])
        if not running.alive():
            raise StartFailed(f"died during the run (code {running.proc.returncode})")
        row.update(result)
        cpu = cpu_seconds(before, after)
        row["server_cpu_s"] = cpu
        row["server_busy"] = cpu / (result["duration_us"] / 1e6) if result["duration_us"] else 0
        server_user = sum(
            p.user - (before[pid].user if pid in before and before[pid].start == p.start else 0)
            for pid, p in after.items()
        )
        row["other_load"] = other_load(core0, core1, server_user)
        row["client_other_load"] = other_load(wrk0, wrk1, result.pop("client_user_ticks"))
        row["noise"] = max(row["other_load"], row["client_other_load"])
        row["cpu_us_per_req"] = cpu * 1e6 / result["requests"] if result["requests"] else None
        # The memory target is per worker: a master (ruvicorn's, gunicorn's) that
        # serves nothing is left out, as in the memory soak.
        row["rss_kib"] = sum(rss_kib(pid) for pid in worker_pids(after, running.pid))
        row["processes"] = len(after)
    except StartFailed as exc:
        row["error"] = str(exc)
    finally:
        running.stop()
    if "error" in row:
        row["log_tail"] = tail(log)
    return row


def memory_soak(server: Server, opt: Options) -> dict[str, Any]:
    """Plaintext load for a minute; the serving processes' RSS sampled every few seconds."""
    w = WORKLOADS["plaintext"]
    log = RAW / f"memory-{server.name}.log"
    row: dict[str, Any] = {"server": server.name, "workload": MEMORY, "log": str(log)}
    if not wait_port_free(opt.port, 15):
        row["error"] = f"port {opt.port} still busy before start"
        return row
    try:
        running = Running(server, w, opt.port, log, opt.server_cpu)
    except StartFailed as exc:
        row["error"] = str(exc)
        return row
    try:
        running.wait_ready(opt.start_timeout)
        tree = running.tree()
        row["rss_idle_kib"] = sum(rss_kib(p) for p in worker_pids(tree, running.pid))
        box: dict[str, Any] = {}
        load = threading.Thread(
            target=lambda: box.update(run_wrk(w, opt.port, opt.memory_duration, opt.client_cpu))
        )
        t0 = time.monotonic()
        load.start()
        samples: list[tuple[float, int]] = []
        while True:
            load.join(opt.memory_interval)
            tree = running.tree()  # one last sample right after the load ends
            rss = sum(rss_kib(p) for p in worker_pids(tree, running.pid))
            samples.append((round(time.monotonic() - t0, 1), rss))
            if not load.is_alive():
                break
        if "error" in box:
            raise StartFailed(box["error"])
        if not running.alive():
            raise StartFailed(f"died during the run (code {running.proc.returncode})")
        row.update(box)
        row["samples"] = samples
        values = [kib for _, kib in samples]
        row["rss_first_kib"], row["rss_last_kib"], row["rss_max_kib"] = (
            values[0],
            values[-1],
            max(values),
        )
        row["growth_kib"] = values[-1] - values[0]
    except StartFailed as exc:
        row["error"] = str(exc)
    finally:
        running.stop()
    if "error" in row:
        row["log_tail"] = tail(log)
    return row


# --------------------------------------------------------------------------- aggregation


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if "error" not in r]
    agg: dict[str, Any] = {"rounds": len(rows), "ok_rounds": len(ok)}
    if not ok:
        agg["error"] = rows[-1].get("error", "no run") if rows else "no run"
        return agg

    def med(key: str) -> float | None:
        vals = [r[key] for r in ok if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    rps = [r["rps"] for r in ok]
    mbps = [r["mbps"] for r in ok]
    agg.update(
        rps=statistics.median(rps),
        rps_min=min(rps),
        rps_max=max(rps),
        mbps=statistics.median(mbps),
        mbps_min=min(mbps),
        mbps_max=max(mbps),
        p50_us=med("p50_us"),
        p99_us=med("p99_us"),
        cpu_us_per_req=med("cpu_us_per_req"),
        rss_kib=med("rss_kib"),
        errors=sum(r["errors"] for r in ok),
        requests=sum(r["requests"] for r in ok),
        client_cpu_share=med("client_cpu_share"),
        other_load=max((r.get("other_load", 0.0) for r in ok), default=0.0),
        client_other_load=max((r.get("client_other_load", 0.0) for r in ok), default=0.0),
        server_busy=med("server_busy"),
    )
    if len(ok) < len(rows):
        agg["note"] = f"{len(rows) - len(ok)} round(s) failed: {rows[-1].get('error', '')}"
    return agg


def ratio(aggs: dict[str, dict[str, Any]], name: str, base: str, key: str) -> float | None:
    a, b = aggs.get(name, {}).get(key), aggs.get(base, {}).get(key)
    return a / b if a and b else None


def cpu_ratio(aggs: dict[str, dict[str, Any]], name: str, base: str) -> float | None:
    """How many times less CPU per request than ``base``: the ratio a quiet machine would
    show for two servers that both saturate their core, and one that noise hardly moves."""
    return ratio(aggs, base, name, "cpu_us_per_req")


# --------------------------------------------------------------------------- report


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in (
        "ruvicorn",
        "uvicorn",
        "uvicorn-worker",
        "httptools",
        "uvloop",
        "h11",
        "granian",
        "gunicorn",
        "fastapi",
        "starlette",
        "pydantic",
        "websockets",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    for tool, argv in (("nginx", ["nginx", "-v"]), ("wrk", ["wrk", "-v"])):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            text = (p.stdout + p.stderr).strip().splitlines()
            words = re.sub(r"^nginx version: ", "", text[0]).split() if text else ["?"]
            out[tool] = " ".join(words[:2])
        except (OSError, subprocess.TimeoutExpired):
            out[tool] = "not installed"
    return out


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
    }


def fmt_int(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def fmt(x: float | None, digits: int = 1, scale: float = 1.0) -> str:
    return "-" if x is None else f"{x / scale:.{digits}f}"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def workload_table(w: Workload, aggs: dict[str, dict[str, Any]], order: list[str]) -> list[str]:
    key = "mbps" if w.throughput else "rps"
    head = ["server", f"{w.unit}/s (median)", "min-max"]
    if w.throughput:
        head += ["MB/s (median)", "MB/s min-max"]
    head += [
        "vs uvicorn",
        "by CPU",
        "p50 ms",
        "p99 ms",
        f"CPU µs/{w.unit}",
        "core %",
        "RSS MiB",
        "errors",
    ]
    head += [f"noise % server / {w.client}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in order:
        if name not in aggs:
            continue
        a = aggs[name]
        label = SERVERS[name].label
        if "na" in a:
            lines.append(f"| {label} | n/a: {a['na']} |" + " |" * (len(head) - 2))
            continue
        if "error" in a:
            lines.append(
                f"| {label} | failed: {a['error'][:120].replace('|', '/')} |"
                + " |" * (len(head) - 2)
            )
            continue
        cells = [
            label + (" ¹" if (a.get("client_cpu_share") or 0) > 0.95 else ""),
            fmt_int(a["rps"]),
            f"{fmt_int(a['rps_min'])}-{fmt_int(a['rps_max'])}",
        ]
        if w.throughput:
            cells += [fmt(a["mbps"]), f"{fmt(a['mbps_min'])}-{fmt(a['mbps_max'])}"]
        cells += [
            fmt_ratio(ratio(aggs, name, BASELINE, key)),
            fmt_ratio(cpu_ratio(aggs, name, BASELINE)),
            fmt(a["p50_us"], 2, 1000),
            fmt(a["p99_us"], 2, 1000),
            fmt(a["cpu_us_per_req"]),
            fmt(a.get("server_busy"), 0, 0.01),
            fmt(a["rss_kib"], 1, 1024),
            f"{a['errors']:,}",
            f"{fmt(a.get('other_load'), 0, 0.01)} / {fmt(a.get('client_other_load'), 0, 0.01)}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


TARGETS: list[tuple[str, str, str, float]] = [
    # workload, server compared, reference server, minimum ratio (on req/s, MB/s for stream)
    ("plaintext", "ruvicorn", "uvicorn", 2.2),
    ("plaintext", "ruvicorn", "granian", 1.4),
    ("plaintext", "ruvicorn", "floor", 0.5),
    ("plaintext", "ruvicorn-asyncio", "uvicorn-asyncio", 2.0),
    ("echo", "ruvicorn", "uvicorn", 2.0),
    ("close", "ruvicorn", "uvicorn", 1.3),
    ("close", "ruvicorn", "granian", 1.0),
    ("json", "ruvicorn", "uvicorn", 1.15),
    ("stream", "ruvicorn", "uvicorn", 1.0),
    ("pipeline", "ruvicorn", "uvicorn", 2.5),
]


def targets_table(
    all_aggs: dict[str, dict[str, dict[str, Any]]], memory: dict[str, dict[str, Any]]
) -> list[str]:
    lines = [
        "| workload | ratio | target | measured | met | by CPU µs/req |",
        "|---|---|---|---|---|---|",
    ]
    for wname, a, b, need in TARGETS:
        aggs = all_aggs.get(wname)
        if aggs is None:
            continue
        key = "mbps" if WORKLOADS[wname].throughput else "rps"
        r = ratio(aggs, a, b, key)
        met = "-" if r is None else ("yes" if r >= need else "**no**")
        by_cpu = fmt_ratio(cpu_ratio(aggs, a, b)) if key == "rps" else "-"
        lines.append(f"| {wname} | {a} / {b} | ≥ {need:.2f}x | {fmt_ratio(r)} | {met} | {by_cpu} |")
    ru, uv = memory.get("ruvicorn", {}), memory.get("uvicorn", {})
    if "rss_last_kib" in ru and "rss_last_kib" in uv:
        diff = (ru["rss_last_kib"] - uv["rss_last_kib"]) / 1024
        lines.append(
            f"| memory | worker RSS - uvicorn's | ≤ +10 MiB | {diff:+.1f} MiB | "
            f"{'yes' if diff <= 10 else '**no**'} | - |"
        )
    if "growth_kib" in ru:
        growth = ru["growth_kib"] / 1024
        lines.append(
            f"| memory | worker RSS growth over the soak | flat (≤ 1 MiB) | "
            f"{growth:+.1f} MiB | {'yes' if growth <= 1 else '**no**'} | - |"
        )
    return lines


def write_markdown(
    meta: dict[str, Any],
    all_aggs: dict[str, dict[str, dict[str, Any]]],
    orders: dict[str, list[str]],
    memory: dict[str, dict[str, Any]],
) -> Path:
    o = meta["options"]
    out = [
        "# ruvicorn benchmark results",
        "",
        f"- date: {meta['date']}  ",
        f"- mode: {meta['mode']}: {o['rounds']} round(s) x {o['duration']} s per server and "
        f"workload, {o['warmup']} s warm-up, servers interleaved and restarted every round  ",
        f"- pinning: server on CPU {o['server_cpu']}, wrk (1 thread; wsload for websocket) on "
        f"CPU {o['client_cpu']}; "
        "loopback only  ",
        f"- machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, kernel "
        f"{meta['machine']['kernel']}, Python {meta['machine']['python']}  ",
        f"- command: `{meta['command']}`",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        "Columns (details in bench/README.md): req/s median and min-max over rounds; "
        "vs uvicorn = median / median of uvicorn httptools+uvloop (MB/s for stream); "
        "p50/p99 = median over rounds of wrk's latency percentiles; CPU µs/req = user+system "
        "CPU of the server's process tree during the measured window / requests; RSS = the "
        "serving worker's (a master that serves nothing is left out) after the run; "
        "core % = that CPU / the window (under 100: the "
        "server waited, for the client or on a stall); errors = wrk socket errors + "
        "responses ≥ 400, "
        "summed over rounds; noise = the most, over rounds, of the server's core / of wrk's "
        "core that other processes took during the window. ¹ = wrk's core was saturated "
        "(the server may be faster than shown).",
        "",
        "![ratio to uvicorn](ratios.png)",
        "",
    ]
    worst = max(
        (
            max(a.get("other_load", 0.0), a.get("client_other_load", 0.0))
            for aggs in all_aggs.values()
            for a in aggs.values()
        ),
        default=0.0,
    )
    if worst > 0.10:
        out += [
            f"**Noisy run**: other processes took up to {worst:.0%} of a benchmark core "
            "during a measured window (column noise). Ratios of req/s are unreliable here; "
            "the by CPU ratios much less so. Rerun on a quiet machine for numbers to keep.",
            "",
        ]
    targets = targets_table(all_aggs, memory)
    if len(targets) > 2:  # more than the header: some workload with a target was measured
        out += ["## Targets (from the benchmark issue)", "", *targets, ""]
    for wname, aggs in all_aggs.items():
        w = WORKLOADS[wname]
        out += [f"## {w.title}", "", f"{w.connections} connections.", ""]
        if w.client == "wsload":
            out[-2:] = [
                f"{w.connections} connections, each sending a {len(WS_MESSAGE)}-byte text "
                "message and waiting for its echo before the next (closed loop); load from "
                "bench/wsload, pinned like wrk. msg/s = echoes per second, p50/p99 = round "
                "trip, CPU µs/msg = server CPU per echoed message.",
                "",
            ]
        out += workload_table(w, aggs, orders[wname])
        if wname == "plaintext":
            r = ratio(aggs, "ruvicorn-asyncio", "uvicorn-asyncio", "rps")
            if r is not None:
                out += ["", f"On the stdlib asyncio loop: ruvicorn / uvicorn = {r:.2f}x."]
        out.append("")
    if memory:
        out += [
            "## memory: plaintext soak, serving processes' RSS",
            "",
            f"{o['memory_duration']} s of plaintext load, RSS sampled every "
            f"{o['memory_interval']} s (worker processes only where there is a master).",
            "",
            "| server | req/s | RSS idle MiB | RSS first sample | RSS last | max | growth |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, m in memory.items():
            label = SERVERS[name].label
            if "error" in m:
                out.append(f"| {label} | failed: {m['error'][:120]} | | | | | |")
                continue
            out.append(
                f"| {label} | {fmt_int(m['rps'])} | {fmt(m['rss_idle_kib'], 1, 1024)} | "
                f"{fmt(m['rss_first_kib'], 1, 1024)} | {fmt(m['rss_last_kib'], 1, 1024)} | "
                f"{fmt(m['rss_max_kib'], 1, 1024)} | {m['growth_kib'] / 1024:+.1f} MiB |"
            )
        out.append("")
    path = RESULTS / "RESULTS.md"
    path.write_text("\n".join(out))
    return path


def write_chart(
    all_aggs: dict[str, dict[str, dict[str, Any]]], orders: dict[str, list[str]], title: str
) -> Path | None:
    try:
        # Imported here: only the chart needs it, and only the bench venv has it.
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing: no chart (run bench/setup.sh)", file=sys.stderr)
        return None
    from matplotlib.patches import Patch

    workloads = [w for w in all_aggs if all_aggs[w]]
    servers: list[str] = []
    for w in workloads:
        servers += [s for s in orders[w] if s not in servers]
    colors = {
        "ruvicorn": "#d62728",
        "ruvicorn-asyncio": "#ff9896",
        "uvicorn": "#7f7f7f",
        "uvicorn-asyncio": "#c7c7c7",
        "uvicorn-h11": "#bcbd22",
        "granian": "#1f77b4",
        "gunicorn": "#2ca02c",
        "floor": "#9467bd",
        "nginx": "#8c564b",
    }
    groups = [
        [s for s in orders[w] if s in all_aggs[w] and "na" not in all_aggs[w][s]] for w in workloads
    ]
    servers = [s for s in servers if any(s in g for g in groups)]
    slots = sum(len(g) for g in groups) + 1.2 * len(groups)
    fig, ax = plt.subplots(figsize=(min(18, max(7, 0.3 * slots + 2)), 5.4), dpi=110)
    # The floors answer canned bytes, so on app-heavy workloads they tower over every ASGI
    # server: the axis stops just above the tallest ASGI server, and taller bars are cut
    # with their value printed.
    floors = {"floor", "nginx"}
    ratios = {
        (w, name): ratio(all_aggs[w], name, BASELINE, "mbps" if WORKLOADS[w].throughput else "rps")
        for w, present in zip(workloads, groups, strict=True)
        for name in present
    }
    asgi = [r for (_, name), r in ratios.items() if r is not None and name not in floors]
    cap = max([1.5, *asgi]) * 1.35
    x, ticks = 0.0, []
    for w, present in zip(workloads, groups, strict=True):
        ticks.append(x + (len(present) - 1) / 2)
        for name in present:
            r = ratios[(w, name)]
            color = colors.get(name, "#17becf")
            if r is None:
                ax.text(
                    x,
                    0.04,
                    "failed",
                    rotation=90,
                    fontsize=6,
                    ha="center",
                    va="bottom",
                    color=color,
                )
            else:
                shown = min(r, cap * 0.93)
                ax.bar(x, shown, 0.92, color=color, hatch="//" if shown < r else None)
                label = f"{r:.2f}" + ("↑" if shown < r else "")
                ax.text(x, shown, label, rotation=90, fontsize=6, ha="center", va="bottom")
            x += 1
        x += 1.2
    handles = [Patch(color=colors.get(n, "#17becf"), label=SERVERS[n].label) for n in servers]
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(ticks, workloads)
    ax.set_ylabel(
        "ratio to uvicorn httptools+uvloop\n(req/s; MB/s for stream; msg/s for websocket)"
    )
    ax.set_title(title, fontsize=9)
    ax.legend(handles=handles, fontsize=7, ncol=3, loc="upper left")
    ax.set_ylim(0, cap)
    fig.tight_layout()
    path = RESULTS / "ratios.png"
    fig.savefig(path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark ruvicorn against its peers; a full run writes bench/results/, "
        "a quick or partial one bench/results-partial/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 rounds x 3 s, 1 s warm-up; every server on plaintext, "
        f"{', '.join(QUICK_SERVERS)} on the other workloads",
    )
    p.add_argument("--duration", type=int, help="seconds measured per run (default 7, quick 3)")
    p.add_argument(
        "--warmup", type=int, help="seconds of discarded load first (default 2, quick 1)"
    )
    p.add_argument("--rounds", type=int, help="rounds per server (default 3, quick 2)")
    p.add_argument(
        "--workloads",
        default="default",
        help="comma list of "
        + ", ".join([*WORKLOADS, MEMORY])
        + "; 'default' = all but memory, 'all' = all",
    )
    p.add_argument(
        "--servers",
        default="default",
        help="comma list of " + ", ".join(SERVERS) + "; 'default' = all",
    )
    p.add_argument("--port", type=int, default=18080, help="loopback port the servers listen on")
    p.add_argument("--server-cpu", default="0", help="CPU list for the server (taskset -c)")
    p.add_argument("--client-cpu", default="1", help="CPU list for wrk (taskset -c)")
    p.add_argument(
        "--start-timeout",
        type=float,
        default=30.0,
        help="seconds a server has to answer its first request",
    )
    p.add_argument("--memory-duration", type=int, default=60, help="seconds of the memory soak")
    p.add_argument("--memory-interval", type=int, default=5, help="seconds between RSS samples")
    p.add_argument(
        "--no-setup",
        action="store_true",
        help="do not run bench/setup.sh first (the venv must exist)",
    )
    p.add_argument(
        "--out",
        "--output",
        dest="output",
        type=Path,
        default=None,
        help="results directory (default: bench/results for a full run or --report-only, "
        "bench/results-partial otherwise)",
    )
    p.add_argument(
        "--retry-noisy",
        type=float,
        default=20.0,
        metavar="PCT",
        help="measure a round again (once; at most 15%% more runs in all) when other processes "
        "took more than PCT%% of the server's or wrk's core; 0 = never",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: rewrite RESULTS.md and ratios.png from results.json",
    )
    return p.parse_args(argv)


def is_partial(args: argparse.Namespace) -> bool:
    """Whether the run measures less (or otherwise) than the full default run."""
    return bool(
        args.quick
        or args.workloads != "default"
        or args.servers != "default"
        or args.duration is not None
        or args.warmup is not None
        or args.rounds is not None
    )


def output_dir(args: argparse.Namespace) -> Path:
    """``--out``, else the committed results for a full run, else the partial directory."""
    if args.output is not None:
        return Path(args.output)
    return PARTIAL_RESULTS if is_partial(args) and not args.report_only else RESULTS


def bootstrap(args: argparse.Namespace) -> None:
    """Run setup.sh, then re-run this script with the bench venv's Python."""
    if os.environ.get("BENCH_IN_VENV") == "1":
        return
    if not args.no_setup:
        code = subprocess.call(["bash", str(BENCH / "setup.sh")])
        if code != 0:
            sys.exit(f"bench: bench/setup.sh failed (code {code})")
    python = VENV / "bin" / "python"
    if not python.exists():
        sys.exit("bench: bench/.venv is missing: run bash bench/setup.sh")
    os.environ["BENCH_IN_VENV"] = "1"
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def select(spec: str, known: list[str], default: list[str], kind: str) -> list[str]:
    if spec == "default":
        return default
    if spec == "all":
        return known
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in known]
    if bad:
        sys.exit(f"bench: unknown {kind} {', '.join(bad)} (known: {', '.join(known)})")
    return names


def plan(args: argparse.Namespace) -> list[tuple[Workload, list[Server], list[Server]]]:
    """Per workload: the servers to measure, and those selected that it does not apply to
    for a stated reason (reported as n/a rows)."""
    workloads = select(args.workloads, [*WORKLOADS, MEMORY], list(WORKLOADS), "workload")
    explicit = args.servers != "default"
    servers = select(args.servers, list(SERVERS), list(SERVERS), "server")
    out = []
    for wname in workloads:
        if wname == MEMORY:
            continue
        w = WORKLOADS[wname]
        chosen = [SERVERS[s] for s in servers if SERVERS[s].applies(w)]
        na = [SERVERS[s] for s in servers if SERVERS[s].na_reason(w) is not None]
        if args.quick and not explicit and wname != "plaintext":
            chosen = [s for s in chosen if s.name in QUICK_SERVERS]
            na = []
        if chosen:
            out.append((w, chosen, na))
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    bootstrap(args)
    # Ctrl-C, or a TERM from a timeout wrapper: stop the current server, write what we have.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    global RESULTS, RAW
    RESULTS = output_dir(args).resolve()
    RAW = RESULTS / "raw"
    RAW.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        return report_only()
    for old in RAW.glob("*.log"):  # logs of an earlier run would be mistaken for this one's
        old.unlink()
    opt = Options(
        duration=args.duration or (3 if args.quick else 7),
        warmup=args.warmup if args.warmup is not None else (1 if args.quick else 2),
        rounds=args.rounds or (2 if args.quick else 3),
        port=args.port,
        server_cpu=args.server_cpu,
        client_cpu=args.client_cpu,
        start_timeout=args.start_timeout,
        memory_duration=args.memory_duration,
        memory_interval=args.memory_interval,
        retry_noisy=args.retry_noisy,
    )
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed (apt-get install wrk, or run bench/setup.sh)")
    if shutil.which("taskset") is None:
        sys.exit("bench: taskset is not installed (apt-get install util-linux)")
    if not port_free(opt.port):
        sys.exit(f"bench: port {opt.port} on {HOST} is in use: pick another with --port")

    work = plan(args)
    mem_servers: list[Server] = []
    if MEMORY in select(args.workloads, [*WORKLOADS, MEMORY], list(WORKLOADS), "workload"):
        names = (
            select(args.servers, list(SERVERS), list(SERVERS), "server")
            if args.servers not in ("default", "all")
            else list(MEMORY_SERVERS)
        )
        mem_servers = [SERVERS[n] for n in names]
    runs = sum(len(servers) for _, servers, _ in work) * opt.rounds
    estimate = runs * (opt.duration + opt.warmup + 1.5) + len(mem_servers) * (
        opt.memory_duration + 3
    )
    print(
        f"bench: {runs} runs of {opt.duration} s (+{opt.warmup} s warm-up)"
        f"{f' and {len(mem_servers)} memory soaks' if mem_servers else ''}, "
        f"about {estimate / 60:.0f} min",
        flush=True,
    )

    # A server that is not installed, or failed to start in two workloads, is not retried.
    unusable: dict[str, str] = {}
    for s in [*{s.name: s for _, ss, _ in work for s in ss}.values(), *mem_servers]:
        if s.need and not (VENV / "bin" / s.need).exists():
            why = f"{s.need} is not installed in bench/.venv"
            if s.need == "ruvicorn":
                why += " (the build log is bench/.venv/ruvicorn-build.log)"
            unusable[s.name] = why
    start_failures: dict[str, int] = {}

    started = time.monotonic()
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if args.quick else "full",
        "command": "python bench/run.py " + " ".join(argv),
        "options": dataclasses.asdict(opt),
        "machine": machine(),
        "versions": versions(),
    }
    rows: list[dict[str, Any]] = []
    all_aggs: dict[str, dict[str, dict[str, Any]]] = {}
    orders: dict[str, list[str]] = {}
    memory: dict[str, dict[str, Any]] = {}
    done = 0
    retries, retry_budget = 0, -(-runs * 15 // 100)  # at most 15% more runs
    interrupted = False
    current = ""  # the workload being measured
    per: dict[str, list[dict[str, Any]]] = {}
    try:
        for w, servers, not_applicable in work:
            current = w.name
            orders[w.name] = [s.name for s in servers]
            per = {s.name: [] for s in servers}
            for rnd in range(1, opt.rounds + 1):
                for s in servers:
                    done += 1
                    if s.name in unusable:
                        if rnd == 1:
                            per[s.name].append(
                                {
                                    "server": s.name,
                                    "workload": w.name,
                                    "round": rnd,
                                    "error": unusable[s.name],
                                }
                            )
                            print(
                                f"[{done:3}/{runs}] {w.name:9} {s.name:16} skipped: "
                                f"{unusable[s.name]}",
                                flush=True,
                            )
                        continue
                    if per[s.name] and all("error" in r for r in per[s.name]):
                        continue  # failed to start in this workload already
                    row = measure(s, w, rnd, opt)
                    noise = row.get("noise", 0.0) * 100
                    if opt.retry_noisy and noise > opt.retry_noisy and retries < retry_budget:
                        # Another process took the server's core: measure that round again
                        # (once, within a budget) and keep the quieter of the two.
                        retries += 1
                        print(
                            f"[{done:3}/{runs}] {w.name:9} r{rnd} {s.name:16} noise {noise:.0f}%:"
                            f" measuring again ({retries}/{retry_budget} retries)",
                            flush=True,
                        )
                        again = measure(s, w, rnd, opt)
                        if "error" not in again and again["noise"] < row["noise"]:
                            again["noisy_first_try"] = row["noise"]
                            row = again
                    rows.append(row)
                    per[s.name].append(row)
                    print(
                        f"[{done:3}/{runs}] {w.name:9} r{rnd} {s.name:16} " + describe(row, w),
                        flush=True,
                    )
                    if "error" in row:
                        if row.get("log_tail"):
                            print(row["log_tail"], flush=True)
                        if rnd == 1:
                            start_failures[s.name] = start_failures.get(s.name, 0) + 1
                            if start_failures[s.name] >= 2:
                                unusable[s.name] = "failed to start twice; not retried"
            all_aggs[w.name] = {name: aggregate(rs) for name, rs in per.items()}
            for s in not_applicable:
                all_aggs[w.name][s.name] = {"na": s.na_reason(w)}
                orders[w.name].append(s.name)
            print_summary(w, all_aggs[w.name], orders[w.name])
        for s in mem_servers:
            if s.name in unusable:
                memory[s.name] = {"error": unusable[s.name]}
                print(f"bench: memory soak of {s.name} skipped: {unusable[s.name]}", flush=True)
                continue
            print(f"bench: memory soak of {s.name}, {opt.memory_duration} s", flush=True)
            m = memory_soak(s, opt)
            rows.append(m)
            memory[s.name] = m
            print(f"         {s.name:16} " + describe_memory(m), flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\nbench: interrupted; writing what was measured", flush=True)
        for running in list(LIVE):
            running.stop()
        if current and current not in all_aggs and any(per.values()):
            all_aggs[current] = {name: aggregate(rs) for name, rs in per.items() if rs}
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta["interrupted"] = interrupted
    print(f"bench: measured for {meta['elapsed_s'] / 60:.1f} min", flush=True)
    write_reports(meta, all_aggs, orders, memory, rows)
    return 130 if interrupted else 0


def write_reports(
    meta: dict[str, Any],
    all_aggs: dict[str, dict[str, dict[str, Any]]],
    orders: dict[str, list[str]],
    memory: dict[str, dict[str, Any]],
    rows: list[dict[str, Any]],
) -> None:
    opt = Options(**meta["options"])
    title = (
        f"ruvicorn bench, {meta['mode']} run, {meta['date']}: ratio of req/s to uvicorn "
        f"(1 worker, server on CPU {opt.server_cpu}, wrk on CPU {opt.client_cpu})"
    )
    md = write_markdown(meta, all_aggs, orders, memory)
    chart = write_chart(all_aggs, orders, title) if all_aggs else None
    (RESULTS / "results.json").write_text(
        json.dumps(
            {"meta": meta, "aggregates": all_aggs, "memory": memory, "runs": rows},
            indent=1,
            default=str,
        )
    )
    print(
        f"bench: wrote {md}" + (f", {chart}" if chart else "") + f", {RESULTS / 'results.json'}",
        flush=True,
    )


def report_only() -> int:
    """Rewrite RESULTS.md and ratios.png from results.json (after changing the report code)."""
    path = RESULTS / "results.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        sys.exit(f"bench: cannot read {path}: {exc}")
    aggs = data["aggregates"]
    orders = {w: list(a) for w, a in aggs.items()}
    write_reports(data["meta"], aggs, orders, data["memory"], data["runs"])
    return 0


def describe(row: dict[str, Any], w: Workload) -> str:
    if "error" in row:
        return f"FAILED: {row['error']}"
    extra = f" {row['mbps']:8.1f} MB/s" if w.throughput else ""
    cpu = row["cpu_us_per_req"]
    noise = (
        f"  noise {row['other_load'] * 100:.0f}%/{row['client_other_load'] * 100:.0f}%"
        if "client_other_load" in row
        else ""
    )
    return (
        f"{row['rps']:>10,.0f} {w.unit}/s{extra}  p50 {fmt(row['p50_us'], 2, 1000):>6} ms  "
        f"p99 {fmt(row['p99_us'], 2, 1000):>6} ms  {fmt(cpu):>6} µs/{w.unit}  "
        f"core {fmt(row.get('server_busy'), 0, 0.01):>3}%  "
        f"RSS {row['rss_kib'] / 1024:6.1f} MiB  errors {row['errors']}{noise}"
    )


def describe_memory(m: dict[str, Any]) -> str:
    if "error" in m:
        return f"FAILED: {m['error']}"
    samples = " ".join(f"{kib / 1024:.1f}" for _, kib in m["samples"])
    return (
        f"{m['rps']:,.0f} req/s; worker RSS MiB every {m['samples'][0][0]:.0f} s: {samples}; "
        f"growth {m['growth_kib'] / 1024:+.1f} MiB"
    )


def print_summary(w: Workload, aggs: dict[str, dict[str, Any]], order: list[str]) -> None:
    key = "mbps" if w.throughput else "rps"
    unit = "MB/s" if w.throughput else f"{w.unit}/s"
    print(f"--- {w.name}: median {unit} and ratio to uvicorn")
    for name in order:
        a = aggs[name]
        if "na" in a:
            print(f"    {name:16} n/a: {a['na']}")
        elif "error" in a:
            print(f"    {name:16} failed: {a['error']}")
        else:
            print(
                f"    {name:16} {a[key]:>10,.1f}  {fmt_ratio(ratio(aggs, name, BASELINE, key))}"
                f"  ({fmt_int(a['rps_min'])}-{fmt_int(a['rps_max'])} {w.unit}/s)"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
