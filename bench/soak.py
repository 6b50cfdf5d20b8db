#!/usr/bin/env python3
"""A bounded soak (about 3 minutes, loopback only) of 2 ruvicorn workers under mixed load
while the master is made to restart, resize, lose and recycle its workers.

    python bench/soak.py                 # or: make soak
    python bench/soak.py --duration 60   # a shorter run (the same schedule, cut short)

Load (real clients, bounded loops): plaintext GETs and 4 KiB echo POSTs on httpx keep-alive
pools, plaintext with ``Connection: close``, 1 MiB streamed responses, and WebSocket echo
sessions (websockets, permessage-deflate). Meanwhile the master gets SIGHUP every 10 s,
SIGTTIN then SIGTTOU, one worker is SIGKILLed, and ``--limit-max-requests`` recycles workers.

Checks (exit 1 if one fails):
- no failed request, except those in flight on the SIGKILLed worker: every answer carries
  ``x-worker-pid``, so a failure on a connection that worker served (or, for a connection
  not yet answered, one within a few seconds after the kill) is attributed to it and counted
  apart;
- every WebSocket session either completes or gets a close frame 1012/1001 from the server;
- worker RSS flat after warm-up (each worker within 5 MiB of itself once warm, and the
  workers of the last 30 s within 5 MiB of those of the first 30 s after warm-up);
- no fd growth in the master (counted in /proc with the same number of workers);
- no zombie child of the master lasting more than a moment;
- the restarts, resizes and recycles really happened, and the master exits 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect as ws_connect

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HOST = "127.0.0.1"
MIB = 1024 * 1024
HELLO = b"Hello, world!"
ECHO_BODY = os.urandom(4096)
STREAM_SIZE = MIB

WORKERS = 2
HUP_EVERY = 10.0
TTIN_AT, TTOU_AT, KILL_AT = 33.0, 53.0, 75.0
WARMUP = 15.0  # RSS samples before this (and of a worker younger than WORKER_WARM) are ignored
WORKER_WARM = 3.0
RSS_BOUND = 5 * MIB
KILL_WINDOW = 3.0  # seconds after the kill in which an unattributed failure is the kill's
ZOMBIE_MOMENT = 2.0
WS_MESSAGES = 100
WS_PAUSE = 0.02
STOP_BOUND = 60.0
CAUSE_WINDOW = 5.0


@dataclass
class Failure:
    kind: str
    pid: int | None  # the worker that served this connection before, if known
    at: float
    what: str


@dataclass
class Ledger:
    """Every outcome of every client, shared by the load threads."""

    ok: Counter[str] = field(default_factory=Counter)
    ws_closed: Counter[int] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def success(self, kind: str, pid: int) -> None:
        with self.lock:
            self.ok[kind] += 1
            self.pids.add(pid)

    def restart_close(self, code: int, pid: int | None) -> None:
        with self.lock:
            self.ws_closed[code] += 1
            if pid is not None:
                self.pids.add(pid)

    def fail(self, kind: str, pid: int | None, what: str) -> None:
        with self.lock:
            if len(self.failures) < 10000:
                self.failures.append(Failure(kind, pid, time.monotonic(), what))


# -- load


def worker_pid(headers: httpx.Headers | dict[str, str]) -> int:
    return int(headers["x-worker-pid"])


HttpCall = Callable[[httpx.Client], httpx.Response]


def check_plain(r: httpx.Response) -> bool:
    return r.content == HELLO


def check_echo(r: httpx.Response) -> bool:
    return r.content == ECHO_BODY


def check_stream(r: httpx.Response) -> bool:
    return len(r.content) == STREAM_SIZE and r.content == b"x" * STREAM_SIZE


HTTP_KINDS: dict[str, tuple[HttpCall, Callable[[httpx.Response], bool]]] = {
    "plaintext": (lambda c: c.get("/plain"), check_plain),
    "close": (lambda c: c.get("/plain", headers={"connection": "close"}), check_plain),
    "echo 4 KiB": (lambda c: c.post("/echo", content=ECHO_BODY), check_echo),
    "stream 1 MiB": (lambda c: c.get("/stream"), check_stream),
}


def http_client(base: str, kind: str, ledger: Ledger, stop: threading.Event) -> None:
    """One keep-alive pool (one connection) issuing ``kind`` requests until told to stop."""
    call, valid = HTTP_KINDS[kind]
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=base, limits=limits, timeout=30.0, trust_env=False) as client:
        served_by: int | None = None  # the worker behind the pooled connection
        while not stop.is_set():
            try:
                r = call(client)
            except httpx.HTTPError as exc:
                ledger.fail(kind, served_by, f"{type(exc).__name__}: {exc}")
                served_by = None
                continue
            pid = worker_pid(r.headers) if "x-worker-pid" in r.headers else None
            if r.status_code != 200 or pid is None or not valid(r):
                ledger.fail(kind, pid, f"status {r.status_code}, {len(r.content)} bytes")
                served_by = None
                continue
            ledger.success(kind, pid)
            closing = r.headers.get("connection", "").lower() == "close"
            served_by = None if closing else pid


def ws_client(url: str, ident: int, ledger: Ledger, stop: threading.Event) -> None:
    """WebSocket echo sessions of ``WS_MESSAGES`` messages, one after another."""
    session = 0
    while not stop.is_set():
        session += 1
        pid: int | None = None
        try:
            with ws_connect(url, open_timeout=30, close_timeout=10) as ws:
                pid = worker_pid(dict(ws.response.headers))
                for i in range(WS_MESSAGES):
                    text = f"{ident}/{session}/{i} " + "payload " * 8
                    ws.send(text)
                    if ws.recv(timeout=30) != text:
                        raise ValueError(f"echo mismatch at message {i}")
                    if stop.wait(WS_PAUSE):
                        break
            ledger.success("websocket session", pid)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            if code in (1001, 1012):
                ledger.restart_close(code, pid)
            else:
                ledger.fail("websocket session", pid, f"closed without 1001/1012 ({code}): {exc}")
        except (OSError, InvalidHandshake, TimeoutError, ValueError) as exc:
            ledger.fail("websocket session", pid, f"{type(exc).__name__}: {exc}")


LOAD = [
    ("plaintext", 3),
    ("close", 1),
    ("echo 4 KiB", 2),
    ("stream 1 MiB", 1),
]
WS_CLIENTS = 2


# -- observation


@dataclass
class Observer:
    """Samples the master's children (RSS, zombies) and fds, four times a second."""

    master: psutil.Process
    t0: float
    rss: dict[int, list[tuple[float, float, int]]] = field(
        default_factory=dict
    )  # pid: (t, age, rss)
    first_seen: dict[int, float] = field(default_factory=dict)
    zombie_since: dict[int, float] = field(default_factory=dict)
    longest_zombie: float = 0.0
    fd_max: int = 0

    def children(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return list(self.master.children())
        return []

    def live_workers(self) -> list[int]:
        out = []
        for child in self.children():
            with contextlib.suppress(psutil.Error):
                if child.status() != psutil.STATUS_ZOMBIE:
                    out.append(child.pid)
        return out

    def master_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.master.pid}/fd"))

    def sample(self) -> None:
        now = time.monotonic()
        zombies = set()
        for child in self.children():
            try:
                status = child.status()
                if status == psutil.STATUS_ZOMBIE:
                    zombies.add(child.pid)
                    continue
                rss = child.memory_info().rss
            except psutil.Error:
                continue
            born = self.first_seen.setdefault(child.pid, now)
            self.rss.setdefault(child.pid, []).append((now - self.t0, now - born, rss))
        for pid in zombies:
            since = self.zombie_since.setdefault(pid, now)
            self.longest_zombie = max(self.longest_zombie, now - since)
        for pid in list(self.zombie_since):
            if pid not in zombies:
                del self.zombie_since[pid]
        with contextlib.suppress(OSError):
            self.fd_max = max(self.fd_max, self.master_fds())

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(0.25):
            self.sample()

    def settled(self, count: int, bound: float = 30.0, quiet: float = 3.0) -> bool:
        """Wait until exactly ``count`` workers have lived unchanged for ``quiet`` seconds."""
        deadline = time.monotonic() + bound
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            pids = sorted(self.live_workers())
            zombies = len(self.children()) - len(pids)
            if pids != last or zombies:
                last, since = pids, time.monotonic()
            elif len(pids) == count and time.monotonic() - since >= quiet:
                return True
            time.sleep(0.1)
        return False


# -- the run


@dataclass
class Check:
    name: str
    ok: bool | None  # None: informational
    detail: str


def kill_attributed(f: Failure, killed: int | None, kill_at: float | None) -> bool:
    """A failure of a request in flight on (or bound for) the SIGKILLed worker."""
    if killed is None or kill_at is None or f.at < kill_at:
        return False
    if f.pid == killed:
        return True
    return f.pid is None and f.at <= kill_at + KILL_WINDOW


def rss_checks(obs: Observer, duration: float) -> list[Check]:
    growths = []
    for samples in obs.rss.values():
        warm = [rss for t, age, rss in samples if t >= WARMUP and age >= WORKER_WARM]
        if len(warm) >= 4:
            growths.append(max(warm) - warm[0])
    worst = max(growths, default=0)

    def fleet(lo: float, hi: float) -> list[int]:
        return [
            rss
            for samples in obs.rss.values()
            for t, age, rss in samples
            if lo <= t < hi and age >= WORKER_WARM
        ]

    early, late = fleet(WARMUP, WARMUP + 30), fleet(duration - 30, duration)
    checks = [
        Check(
            "worker RSS, each once warm",
            bool(growths) and worst <= RSS_BOUND,
            f"max growth {worst / MIB:.1f} MiB over {len(growths)} workers (bound 5 MiB)",
        )
    ]
    if early and late:
        drift = statistics.median(late) - statistics.median(early)
        checks.append(
            Check(
                "worker RSS, last 30 s vs first",
                drift <= RSS_BOUND,
                f"median {statistics.median(early) / MIB:.1f} -> "
                f"{statistics.median(late) / MIB:.1f} MiB ({drift / MIB:+.1f})",
            )
        )
    else:
        checks.append(Check("worker RSS, last 30 s vs first", False, "not enough samples"))
    return checks


class Soak:
    def __init__(self, duration: float, max_requests: int, workdir: Path) -> None:
        self.duration = duration
        self.max_requests = max_requests
        self.port = free_port()
        self.log_path = workdir / "server.log"
        self.ledger = Ledger()
        self.stop_load = threading.Event()
        self.events: Counter[str] = Counter()
        self.sent: list[tuple[float, str]] = []  # (monotonic time, signal) sent to the master
        self.killed: int | None = None
        self.kill_at: float | None = None
        self.fd_baseline: int | None = None
        self.fd_end: int | None = None
        self.exit_code: int | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "ruvicorn",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--app-dir",
            str(BENCH / "apps"),
            "--workers",
            str(WORKERS),
            "--limit-max-requests",
            str(self.max_requests),
            "--limit-max-requests-jitter",
            str(self.max_requests // 4),
            "--timeout-graceful-shutdown",
            "20",
            "--no-access-log",
            "soakapp:app",
        ]

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def run(self) -> list[Check]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUVICORN_")}
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "wb") as out:
            proc = subprocess.Popen(
                self.command(),
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            return self._drive(proc)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def _drive(self, proc: subprocess.Popen[bytes]) -> list[Check]:
        wait_port(self.port, proc)
        obs = Observer(psutil.Process(proc.pid), time.monotonic())
        if not obs.settled(WORKERS):
            raise SystemExit(f"soak: the workers never settled:\n{self.log()[-3000:]}")
        self.fd_baseline = obs.master_fds()  # settled, before any load or signal
        stop_obs = threading.Event()
        threads = [threading.Thread(target=obs.run, args=(stop_obs,), daemon=True)]
        base = f"http://{HOST}:{self.port}"
        for kind, count in LOAD:
            for _ in range(count):
                args = (base, kind, self.ledger, self.stop_load)
                threads.append(threading.Thread(target=http_client, args=args, daemon=True))
        for i in range(WS_CLIENTS):
            args = (f"ws://{HOST}:{self.port}/ws", i, self.ledger, self.stop_load)
            threads.append(threading.Thread(target=ws_client, args=args, daemon=True))
        t0 = obs.t0 = time.monotonic()
        for t in threads:
            t.start()
        self._schedule(proc, obs, t0)
        self.stop_load.set()
        for t in threads[1:]:
            t.join(timeout=STOP_BOUND)
        settled = obs.settled(WORKERS, bound=STOP_BOUND)
        obs.sample()
        self.fd_end = obs.master_fds()
        stop_obs.set()
        threads[0].join(timeout=5)
        proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = proc.wait(timeout=STOP_BOUND)
        except subprocess.TimeoutExpired:
            self.exit_code = None
        return self._checks(obs, settled)

    def _schedule(self, proc: subprocess.Popen[bytes], obs: Observer, t0: float) -> None:
        """Signals at fixed times from the start of the load, until ``duration``."""
        plan = [(HUP_EVERY * k, "SIGHUP") for k in range(1, int(self.duration // HUP_EVERY))]
        plan += [(TTIN_AT, "SIGTTIN"), (TTOU_AT, "SIGTTOU"), (KILL_AT, "SIGKILL")]
        plan = sorted(p for p in plan if p[0] < self.duration - 5)
        for at, what in plan:
            delay = t0 + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if proc.poll() is not None:
                return
            if what == "SIGKILL":
                self._kill_one(obs)
            else:
                proc.send_signal(getattr(signal, what))
                self.events[what] += 1
                self.sent.append((time.monotonic(), what))
        time.sleep(max(0.0, t0 + self.duration - time.monotonic()))

    def _kill_one(self, obs: Observer) -> None:
        """SIGKILL a worker that is serving (not one being retired by a restart)."""
        obs.settled(WORKERS, bound=4.0, quiet=1.0)
        with self.ledger.lock:
            serving = self.ledger.pids.copy()
        candidates = [pid for pid in obs.live_workers() if pid in serving]
        if not candidates:
            return
        self.killed = candidates[0]
        self.kill_at = time.monotonic()
        os.kill(self.killed, signal.SIGKILL)
        self.events["SIGKILL"] += 1

    def _checks(self, obs: Observer, settled: bool) -> list[Check]:
        log = self.log()
        led = self.ledger
        on_killed = [f for f in led.failures if kill_attributed(f, self.killed, self.kill_at)]
        lost = [f for f in led.failures if not kill_attributed(f, self.killed, self.kill_at)]
        http_ok = sum(n for kind, n in led.ok.items() if kind != "websocket session")
        lost_ws = [f for f in lost if f.kind == "websocket session"]
        by_kind = ", ".join(f"{k} {n}" for k, n in sorted(led.ok.items()))
        recycled = log.count("reached --limit-max-requests")
        reloads = log.count("Reload complete")
        return [
            Check("requests answered", None, f"{http_ok} HTTP ({by_kind})"),
            Check(
                "failed requests (not the killed worker)",
                not lost,
                f"{len(lost)}" + (f" ({self.causes(lost)}): {describe(lost)}" if lost else ""),
            ),
            Check(
                "failed on the SIGKILLed worker",
                None,
                f"{len(on_killed)} (pid {self.killed})"
                + (f": {describe(on_killed)}" if on_killed else ""),
            ),
            Check(
                "WebSocket sessions",
                not lost_ws and led.ok["websocket session"] > 0,
                f"completed {led.ok['websocket session']}, closed 1012: {led.ws_closed[1012]}, "
                f"1001: {led.ws_closed[1001]}, other: {len(lost_ws)}",
            ),
            *rss_checks(obs, self.duration),
            Check(
                "master fds (2 workers, settled)",
                settled
                and self.fd_baseline is not None
                and self.fd_end is not None
                and self.fd_end <= self.fd_baseline,
                f"{self.fd_baseline} -> {self.fd_end} (max {obs.fd_max} while resizing)",
            ),
            Check(
                "zombie children",
                obs.longest_zombie <= ZOMBIE_MOMENT,
                f"longest seen {obs.longest_zombie:.2f} s (bound {ZOMBIE_MOMENT:.0f} s)",
            ),
            Check(
                "faults injected",
                self.events["SIGHUP"] > 0
                and self.killed is not None
                and recycled > 0
                and self.events["SIGTTIN"] == 1
                and self.events["SIGTTOU"] == 1,
                f"SIGHUP x{self.events['SIGHUP']} ({reloads} reloads complete), "
                f"SIGTTIN/SIGTTOU x{self.events['SIGTTIN']}/{self.events['SIGTTOU']}, "
                f"SIGKILL x{self.events['SIGKILL']}, recycled by max-requests x{recycled}, "
                f"{len(obs.rss)} worker pids",
            ),
            Check("master exit on SIGTERM", self.exit_code == 0, f"exit code {self.exit_code}"),
        ]

    def causes(self, failures: list[Failure]) -> str:
        """Which fault each failure followed (within CAUSE_WINDOW s), to point at the cause."""
        counts: Counter[str] = Counter()
        for f in failures:
            before = [what for at, what in self.sent if at <= f.at <= at + CAUSE_WINDOW]
            counts[f"after {before[-1]}" if before else "no signal near: recycling"] += 1
        return ", ".join(f"{n} {cause}" for cause, n in counts.most_common())


def describe(failures: list[Failure]) -> str:
    kinds = Counter(f"{f.kind}: {f.what[:70]}" for f in failures)
    return "; ".join(f"{n}x {what}" for what, n in kinds.most_common(4))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], bound: float = 60.0) -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"soak: the server exited with {proc.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.1)
    raise SystemExit(f"soak: the server did not accept within {bound:.0f} s")


def table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  result  detail", f"{'-' * width}  ------  ------"]
    for c in checks:
        verdict = "" if c.ok is None else ("PASS" if c.ok else "FAIL")
        lines.append(f"{c.name:<{width}}  {verdict:<6}  {c.detail}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=150.0, help="seconds of load")
    parser.add_argument("--max-requests", type=int, default=5000, help="--limit-max-requests")
    args = parser.parse_args()
    if args.duration < KILL_AT + 10:
        parser.error(f"--duration must be at least {KILL_AT + 10:.0f} s to include every fault")
    with tempfile.TemporaryDirectory(prefix="ruvicorn-soak-") as tmp:
        soak = Soak(args.duration, args.max_requests, Path(tmp))
        print(
            f"soak: {args.duration:.0f} s of load on {WORKERS} workers, SIGHUP every "
            f"{HUP_EVERY:.0f} s, SIGTTIN at {TTIN_AT:.0f} s, SIGTTOU at {TTOU_AT:.0f} s, "
            f"SIGKILL at {KILL_AT:.0f} s, --limit-max-requests {args.max_requests}",
            flush=True,
        )
        checks = soak.run()
        print(table(checks))
        failed = [c for c in checks if c.ok is False]
        if failed:
            print(f"soak: FAILED ({', '.join(c.name for c in failed)}); server log tail:")
            print("\n".join(soak.log().splitlines()[-30:]))
            return 1
        print("soak: all checks passed")
        return 0


if __name__ == "__main__":
    sys.exit(main())
