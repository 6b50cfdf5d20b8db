"""How evenly N workers on one listening address split the load, and how req/s scales
with the worker count.

Each server runs a tiny app that counts the requests its process answered and writes
``PID COUNT`` to a file at lifespan shutdown. wrk loads it for ``--seconds`` with 64
keep-alive connections, then with a new connection per request (``Connection: close``);
the spread is the busiest worker's count over the idlest one's, and the counts are shown in
the order the workers started. Every run is repeated
``--repeat`` times (servers interleaved); the table shows the minimum and the median.

    .venv/bin/python bench/balance.py [--workers 1 2 4] [--seconds 10] [--repeat 3]
        [--servers ruvicorn,uvicorn,gunicorn] [--peers bench/.venv/bin]
        [--server-cpu 0-13 --client-cpu 14,15]

uvicorn and gunicorn (with ``uvicorn_worker``) run when found in ``--peers``. Unpinned by
default (servers and wrk share every core); ``--server-cpu``/``--client-cpu`` are
``taskset -c`` lists that give the load generator cores of its own. Bounded: every server
gets 60 s to start, wrk 120 s, and the server is killed after its run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
START_SECONDS = 60.0
SERVERS = ("ruvicorn", "uvicorn", "gunicorn")
LOADS = {
    "64 keep-alive connections": ["-c64"],
    "new connection per request": ["-c16", "-H", "Connection: close"],
}

APP = """\
import os

COUNT = 0


async def app(scope, receive, send):
    global COUNT
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                with open(os.environ["BALANCE_OUT"], "a") as out:
                    out.write(f"{os.getpid()} {COUNT}\\n")
                await send({"type": "lifespan.shutdown.complete"})
                return
    COUNT += 1
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def commands(
    peers: Path, workers: int, port: int, app_dir: Path, extra: list[str]
) -> dict[str, list[str]]:
    bind = f"127.0.0.1:{port}"
    found = {
        "ruvicorn": [
            *(sys.executable, "-m", "ruvicorn", "--bind", bind, "--no-access-log"),
            *("--workers", str(workers), "--app-dir", str(app_dir), *extra, "balanceapp:app"),
        ],
    }
    if (peers / "uvicorn").exists():
        found["uvicorn"] = [str(peers / "uvicorn"), "--port", str(port), "--no-access-log"]
        found["uvicorn"] += ["--workers", str(workers), "--app-dir", str(app_dir)]
        found["uvicorn"] += ["--lifespan", "on", "balanceapp:app"]
    if (peers / "gunicorn").exists():
        found["gunicorn"] = [str(peers / "gunicorn"), "-k", "uvicorn_worker.UvicornWorker"]
        found["gunicorn"] += ["-w", str(workers), "-b", bind, "--chdir", str(app_dir)]
        found["gunicorn"] += ["balanceapp:app"]
    return found


def pinned(argv: list[str], cpus: str) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus else argv


@dataclass
class Run:
    """One server under one load: wrk's req/s and each worker's request count."""

    rps: float
    counts: dict[int, int]

    def spread(self, workers: int) -> float:
        """max/min requests per worker; inf when a worker answered none or never reported."""
        values = list(self.counts.values())
        if len(values) < workers or not values or min(values) == 0:
            return float("inf")
        return max(values) / min(values)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (a graceful stop runs lifespan shutdown, which
    writes the counts); SIGKILL after 40 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def run_one(argv: list[str], port: int, out: Path, wrk_argv: list[str]) -> Run:
    out.unlink(missing_ok=True)
    env = {**os.environ, "BALANCE_OUT": str(out)}
    log_path = out.with_suffix(".log")
    with open(log_path, "wb") as log:
        # cwd: the app's directory, so ``-m ruvicorn`` never imports a source checkout.
        proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=log, cwd=out.parent, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while not accepting(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{argv[0]} did not start; see {log_path}")
            time.sleep(0.2)
        time.sleep(2.0)  # Every worker up, not only the first.
        wrk = subprocess.run(
            [*wrk_argv, f"http://127.0.0.1:{port}/"],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop(proc)
    found = re.search(r"Requests/sec:\s*([0-9.]+)", wrk.stdout)
    counts: dict[int, int] = {}
    for line in out.read_text().splitlines() if out.exists() else []:
        pid, count = line.split()
        counts[int(pid)] = int(count)
    return Run(float(found.group(1)) if found else 0.0, counts)


def summary(runs: list[Run], workers: int) -> str:
    """req/s and spread as min/median over the repeats, and the median run's counts in
    the workers' start order (by pid), which shows whether the oldest ones are favoured."""
    rps = [r.rps for r in runs]
    spreads = sorted(r.spread(workers) for r in runs)
    median_run = sorted(runs, key=lambda r: r.spread(workers))[len(runs) // 2]
    counts = [count for _, count in sorted(median_run.counts.items())]
    shown = " ".join(str(c) for c in counts) + " ?" * (workers - len(counts))
    return (
        f"{min(rps):>8,.0f} {statistics.median(rps):>8,.0f}  "
        f"{spreads[0]:>5.2f} {statistics.median(spreads):>5.2f}  {shown}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--servers", default=",".join(SERVERS), help="a subset of the default")
    parser.add_argument("--peers", type=Path, default=HERE / ".venv" / "bin")
    parser.add_argument("--server-cpu", default="", help="taskset -c list for the servers")
    parser.add_argument("--client-cpu", default="", help="taskset -c list for wrk")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--ruvicorn-args", default="", help="extra ruvicorn flags, e.g. '--loop asyncio'"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (bench/setup.sh installs it)")
    wanted = args.servers.split(",")
    pinning = f"servers on CPUs {args.server_cpu or 'all'}, wrk on {args.client_cpu or 'all'}"
    print(
        f"{args.seconds} s per run, {args.repeat} runs each, {pinning}, {os.cpu_count()} CPUs;"
        " req/s and spread (max/min requests per worker) as min and median"
    )
    print(f"{'server':<10} {'workers':>7} {'load':<28} {'req/s min':>9} {'median':>8}  spread")
    with tempfile.TemporaryDirectory(prefix="ruvicorn-balance-") as tmp:
        app_dir = Path(tmp)
        (app_dir / "balanceapp.py").write_text(APP)
        port = free_port()
        for workers in args.workers:
            found = commands(args.peers, workers, port, app_dir, args.ruvicorn_args.split())
            servers = {name: argv for name, argv in found.items() if name in wanted}
            for load, load_args in LOADS.items():
                wrk = ["wrk", f"-t{args.threads}", f"-d{args.seconds}s", *load_args]
                runs: dict[str, list[Run]] = {name: [] for name in servers}
                for _ in range(args.repeat):  # interleaved: a noisy minute hits every server
                    for name, argv in servers.items():
                        runs[name].append(
                            run_one(
                                pinned(argv, args.server_cpu),
                                port,
                                app_dir / f"{name}.out",
                                pinned(wrk, args.client_cpu),
                            )
                        )
                for name, done in runs.items():
                    print(f"{name:<10} {workers:>7} {load:<28} {summary(done, workers)}")


if __name__ == "__main__":
    main()
