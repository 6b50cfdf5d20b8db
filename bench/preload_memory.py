"""What --preload saves: total PSS of the whole process tree, with and without it.

Generates an app whose import holds about 100 MiB (data tables across several modules)
in a temporary directory, serves it with 4 workers each way, sends some requests, and sums
the proportional set size of every process of the tree (master, zygote, workers). With
--preload it also times SIGHUP -> "Reload complete" (every worker replaced from a new
zygote). gunicorn --preload with the uvicorn worker is measured beside it when a gunicorn
with ``uvicorn_worker`` is found (``--gunicorn PATH``, default: bench/.venv/bin/gunicorn).

    .venv/bin/python bench/preload_memory.py [--workers 4] [--mib 100]

Bounded: each server gets 120 s to boot and reload, and is killed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
MODULES = 10
BOOT_SECONDS = 120.0
REQUESTS = 400


def write_app(directory: Path, mib: int) -> None:
    """``bigapp:app``: MODULES modules, each half bytes tables and half small objects."""
    per_module = mib // MODULES
    for n in range(MODULES):
        (directory / f"table{n}.py").write_text(
            f"BLOB = bytes(range(256)) * ({per_module // 2} * 4096)\n"
            f"ROWS = [('row', i, str(i) * 4) for i in range({per_module // 2} * 4500)]\n"
        )
    names = [f"table{n}" for n in range(MODULES)]
    imports = "".join(f"import {name}\n" for name in names)
    (directory / "bigapp.py").write_text(
        f"{imports}"
        "import os\n"
        f"SIZE = sum(len(m.BLOB) + len(m.ROWS) for m in ({', '.join(names)},))\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    body = f'{os.getpid()} {SIZE}'.encode()\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': body})\n"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def wait(condition: Callable[[], bool], what: str, timeout: float = BOOT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if condition():
                return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def tree_pss(pid: int) -> tuple[float, int]:
    """Total PSS in MiB of ``pid`` and its descendants, and how many processes."""
    root = psutil.Process(pid)
    total, count = 0, 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_full_info().pss
            count += 1
    return total / MIB, count


class Served:
    """One server process serving the generated app; its log in a file."""

    def __init__(self, argv: list[str], cwd: Path, port: int, log: Path) -> None:
        self.port = port
        self.log_path = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, stdout=out, stderr=out, start_new_session=True
            )

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def warm(self) -> None:
        wait(lambda: get(self.port) == 200, "the first answer")
        for _ in range(REQUESTS):
            get(self.port)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for proc in psutil.process_iter(["cmdline"]):
            if f"127.0.0.1:{self.port}" in " ".join(proc.info["cmdline"] or []):
                with contextlib.suppress(psutil.Error):
                    proc.kill()


def ruvicorn(app_dir: Path, workers: int, preload: bool, out: Path) -> dict[str, float]:
    port = free_port()
    argv = [sys.executable, "-m", "ruvicorn", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", str(workers), "--no-access-log", "--app-dir", str(app_dir)]
    argv += ["--preload"] if preload else []
    server = Served([*argv, "bigapp:app"], app_dir, port, out / f"ruvicorn-{port}.log")
    try:
        wait(lambda: "Ready:" in server.log(), "ruvicorn to be ready")
        server.warm()
        pss, count = tree_pss(server.proc.pid)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGHUP)
        wait(lambda: "Reload complete" in server.log(), "the reload")
        reload_seconds = time.monotonic() - started
        wait(lambda: tree_pss(server.proc.pid)[1] == count, "the retired workers to exit")
        server.warm()
        after, _ = tree_pss(server.proc.pid)
        return {"pss": pss, "processes": count, "reload": reload_seconds, "after": after}
    finally:
        server.stop()


def gunicorn(exe: Path, app_dir: Path, workers: int, out: Path) -> dict[str, float]:
    port = free_port()
    argv = [str(exe), "--preload", "-k", "uvicorn_worker.UvicornWorker"]
    argv += ["-w", str(workers), "-b", f"127.0.0.1:{port}", "--chdir", str(app_dir)]
    server = Served([*argv, "bigapp:app"], app_dir, port, out / f"gunicorn-{port}.log")
    try:
        wait(
            lambda: len(re.findall(r"Application startup complete", server.log())) >= workers,
            "gunicorn's workers",
        )
        server.warm()
        pss, count = tree_pss(server.proc.pid)
        return {"pss": pss, "processes": count, "reload": float("nan"), "after": float("nan")}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--mib", type=int, default=100, help="memory the app's import holds")
    parser.add_argument("--gunicorn", type=Path, default=HERE / ".venv" / "bin" / "gunicorn")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ruvicorn-preload-") as tmp:
        app_dir = Path(tmp)
        write_app(app_dir, args.mib)
        rows = {
            "ruvicorn": ruvicorn(app_dir, args.workers, False, app_dir),
            "ruvicorn --preload (zygote)": ruvicorn(app_dir, args.workers, True, app_dir),
        }
        if args.gunicorn.exists():
            rows["gunicorn --preload -k uvicorn_worker"] = gunicorn(
                args.gunicorn, app_dir, args.workers, app_dir
            )
        else:
            print(f"(no gunicorn at {args.gunicorn}: its row is skipped)")
    base = rows["ruvicorn"]["pss"]
    print(f"{args.workers} workers, an app whose import holds about {args.mib} MiB")
    print(
        f"{'server':<38} {'processes':>9} {'total PSS':>10} {'ratio':>6} "
        f"{'SIGHUP->replaced':>17} {'PSS after':>10}"
    )
    for name, row in rows.items():
        reloaded = row["reload"] == row["reload"]  # NaN: not measured.
        reload = f"{row['reload']:.1f} s" if reloaded else "-"
        after = f"{row['after']:.0f} MiB" if reloaded else "-"
        print(
            f"{name:<38} {row['processes']:>9.0f} {row['pss']:>6.0f} MiB "
            f"{row['pss'] / base:>5.2f}x {reload:>17} {after:>10}"
        )


if __name__ == "__main__":
    main()
