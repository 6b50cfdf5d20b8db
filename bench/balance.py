"""How evenly N workers on one shared listening socket split the load.

Each server runs a tiny app that counts the requests its process answered and writes
``PID COUNT`` to a file at lifespan shutdown. wrk loads it for ``--seconds`` with 64
keep-alive connections, then with a new connection per request (``Connection: close``);
the spread is the busiest worker's count over the idlest one's.

    .venv/bin/python bench/balance.py [--workers 2] [--seconds 10] [--peers bench/.venv/bin]

uvicorn and gunicorn (with ``uvicorn_worker``) run when found in ``--peers``. Bounded:
every server gets 60 s to start and is killed after its run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
START_SECONDS = 60.0

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


def commands(peers: Path, workers: int, port: int, app_dir: Path) -> dict[str, list[str]]:
    bind = f"127.0.0.1:{port}"
    found = {
        "ruvicorn": [
            *(sys.executable, "-m", "ruvicorn", "--bind", bind, "--no-access-log"),
            *("--workers", str(workers), "--app-dir", str(app_dir), "balanceapp:app"),
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


def run_one(argv: list[str], port: int, out: Path, wrk_args: list[str]) -> dict[int, int]:
    out.unlink(missing_ok=True)
    env = {**os.environ, "BALANCE_OUT": str(out)}
    with open(out.with_suffix(".log"), "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not accepting(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{argv[0]} did not start; see {out.with_suffix('.log')}")
            time.sleep(0.2)
        time.sleep(2.0)  # Every worker up, not only the first.
        subprocess.run(
            ["wrk", *wrk_args, f"http://127.0.0.1:{port}/"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    counts: dict[int, int] = {}
    for line in out.read_text().splitlines() if out.exists() else []:
        pid, count = line.split()
        counts[int(pid)] = int(count)
    return counts


def spread(counts: dict[int, int], workers: int) -> str:
    """max/min and every worker's count; ``?`` for a worker that never reported."""
    values = sorted(counts.values(), reverse=True)
    ratio = f"{values[0] / values[-1]:.2f}" if values and values[-1] else "inf"
    shown = [str(v) for v in values] + ["?"] * (workers - len(counts))
    return f"{ratio:>6}  {' '.join(shown)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--peers", type=Path, default=HERE / ".venv" / "bin")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (bench/setup.sh installs it)")
    loads = {
        "64 keep-alive connections": ["-t2", "-c64", f"-d{args.seconds}s"],
        "new connection per request": [
            "-t2",
            "-c16",
            f"-d{args.seconds}s",
            "-H",
            "Connection: close",
        ],
    }
    print(f"{args.workers} workers, {args.seconds} s per run; spread = max/min requests per worker")
    with tempfile.TemporaryDirectory(prefix="ruvicorn-balance-") as tmp:
        app_dir = Path(tmp)
        (app_dir / "balanceapp.py").write_text(APP)
        port = free_port()
        for name, argv in commands(args.peers, args.workers, port, app_dir).items():
            for load, wrk_args in loads.items():
                counts = run_one(argv, port, app_dir / f"{name}.out", wrk_args)
                total = sum(counts.values())
                shown = spread(counts, args.workers)
                print(f"{name:<10} {load:<28} {total:>8} requests  spread {shown}")


if __name__ == "__main__":
    main()
