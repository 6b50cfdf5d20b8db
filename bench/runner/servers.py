"""The servers compared, and how each is started for a workload."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from runner.paths import APPS, HOST, STREAM_BYTES, venv_bin
from runner.workloads import MEMORY, Workload


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


def _asgi_argv(exe: str, w: Workload, port: int, *options: str) -> list[str]:
    """The command line ruvicorn and uvicorn share; ``options`` are each one's own."""
    return [
        venv_bin(exe),
        "--no-access-log",
        "--host",
        HOST,
        "--port",
        str(port),
        "--app-dir",
        str(APPS),
        *options,
        "--log-level",
        "warning",
        w.app,
    ]


def _ruvicorn(loop: str) -> Callable[[Workload, int], Launch]:
    def start(w: Workload, port: int) -> Launch:
        return Launch(_asgi_argv("ruvicorn", w, port, "--workers", "1", "--loop", loop))

    return start


def _uvicorn(loop: str, http: str) -> Callable[[Workload, int], Launch]:
    def start(w: Workload, port: int) -> Launch:
        # websockets-sansio is what its default (auto) picks when websockets is installed,
        # as in the gunicorn worker; named so the row cannot fall back to another one.
        ws = ["--ws", "websockets-sansio"] if w.client == "wsload" else []
        return Launch(_asgi_argv("uvicorn", w, port, "--loop", loop, "--http", http, *ws))

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
