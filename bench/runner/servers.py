"""The servers compared, and how each is started for a workload."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from runner.paths import APPS, HOST, STREAM_BYTES, venv_bin
from runner.tls import serves_tls, tls_options
from runner.workloads import MEMORY, Workload


@dataclasses.dataclass
class Launch:
    """How to start one server for one workload; ``cleanup`` runs after it stopped."""

    argv: list[str]
    cleanup: Callable[[], None] | None = None
    access_log: Path | None = None  # the file its access log goes to, when it is on


@dataclasses.dataclass(frozen=True)
class Server:
    name: str
    label: str
    start: Callable[[Workload, int], Launch | None]  # None: not applicable to the workload
    workloads: tuple[str, ...] | None = None  # None: every workload
    need: str = ""  # executable that must exist
    na: tuple[tuple[str, str], ...] = ()  # (workload, why not): shown as "n/a" rows
    tls_flag: str = ""  # the option naming its certificate, which --help must list

    def chosen(self, workload: Workload) -> bool:
        """Whether the workload compares this server at all (see Workload.servers)."""
        return workload.servers is None or self.name in workload.servers

    def na_reason(self, workload: Workload) -> str | None:
        if not self.chosen(workload):
            return None
        static = dict(self.na).get(workload.name)
        if static is None and workload.tls and not serves_tls(self.need, self.tls_flag):
            return f"the {self.need} in the bench venv serves no TLS: no {self.tls_flag} option"
        return static

    def applies(self, workload: Workload) -> bool:
        if not self.chosen(workload) or self.na_reason(workload) is not None:
            return False
        return self.workloads is None or workload.name in self.workloads


def _uvicorn_log_config(log: Path) -> list[str]:
    """A logging config that sends uvicorn's access lines, in its own default format, to
    ``log`` (a FileHandler: one write per line, as a StreamHandler on a redirected stdout)."""
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                "use_colors": False,
            }
        },
        "handlers": {
            "access": {"class": "logging.FileHandler", "formatter": "access", "filename": str(log)}
        },
        "loggers": {
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False}
        },
    }
    path = log.with_name("log-config.json")
    path.write_text(json.dumps(config))
    return ["--log-config", str(path)]


def _asgi(
    exe: str, access_options: Callable[[Path], list[str]], options: Callable[[Workload], list[str]]
) -> Callable[[Workload, int], Launch]:
    """ruvicorn's and uvicorn's shared command line; ``access_options`` turn the access log on
    into a file, ``options`` are each one's own."""

    def start(w: Workload, port: int) -> Launch:
        launch = Launch([])
        logging = ["--no-access-log", "--log-level", "warning"]
        if w.access_log:
            scratch = Path(tempfile.mkdtemp(prefix="bench-accesslog-"))
            launch.access_log = scratch / "access.log"
            launch.cleanup = lambda: shutil.rmtree(scratch, ignore_errors=True)
            logging = [*access_options(launch.access_log), "--log-level", "info"]
        launch.argv = [
            venv_bin(exe),
            *logging,
            "--host",
            HOST,
            "--port",
            str(port),
            "--app-dir",
            str(APPS),
            *options(w),
            *tls_options(w, "--ssl-certfile"),
            w.app,
        ]
        return launch

    return start


def _ruvicorn(loop: str) -> Callable[[Workload, int], Launch]:
    # --http3 adds a UDP socket on the same port as the TCP listener
    return _asgi(
        "ruvicorn",
        lambda log: ["--access-logfile", str(log)],
        lambda w: ["--workers", "1", "--loop", loop, *(["--http3"] if w.http3 else [])],
    )


def _uvicorn(loop: str, http: str) -> Callable[[Workload, int], Launch]:
    # websockets-sansio is what its default (auto) picks when websockets is installed,
    # as in the gunicorn worker; named so the row cannot fall back to another one.
    return _asgi(
        "uvicorn",
        _uvicorn_log_config,
        lambda w: (
            ["--loop", loop, "--http", http]
            + (["--ws", "websockets-sansio"] if w.websocket else [])
        ),
    )


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
            # HTTP/2 only: its h2c answers the prior-knowledge preface, and over TLS it
            # offers h2 alone
            *(["--http", "2"] if w.http2 else []),
            *tls_options(w, "--ssl-certificate"),
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


def _hypercorn(w: Workload, port: int) -> Launch:
    # HTTP/2 on its TCP listener (h2c with prior knowledge, or ALPN over TLS); for HTTP/3,
    # QUIC through aioquic on the UDP port of the same number. The access log is off
    # unless asked for. The app is named by its file's path: hypercorn puts that directory
    # on sys.path.
    address = f"{HOST}:{port}"
    return Launch(
        [
            venv_bin("hypercorn"),
            "--bind",
            address,
            *(["--quic-bind", address] if w.http3 else []),
            "--worker-class",
            "uvloop",
            "--workers",
            "1",
            "--log-level",
            "warning",
            *tls_options(w, "--certfile", "--keyfile"),
            str(APPS / w.app),
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
        Server(
            "ruvicorn",
            "ruvicorn (1 worker, uvloop)",
            _ruvicorn("uvloop"),
            need="ruvicorn",
            tls_flag="--ssl-certfile",
        ),
        Server(
            "uvicorn",
            "uvicorn httptools+uvloop",
            _uvicorn("uvloop", "httptools"),
            need="uvicorn",
            tls_flag="--ssl-certfile",
        ),
        Server(
            "uvicorn-h11",
            "uvicorn h11+uvloop",
            _uvicorn("uvloop", "h11"),
            need="uvicorn",
            na=(("websocket", "h11 only parses the handshake; same WebSocket code as uvicorn"),),
        ),
        Server(
            "granian",
            "granian asgi, uvloop (1 worker)",
            _granian,
            need="granian",
            tls_flag="--ssl-certificate",
        ),
        Server("gunicorn", "gunicorn + uvicorn worker (1 worker)", _gunicorn, need="gunicorn"),
        Server(
            "hypercorn",
            "hypercorn + aioquic, uvloop (1 worker)",
            _hypercorn,
            workloads=("h2-plaintext", "h2-echo", "h2-tls-plaintext", "h3-plaintext", "h3-echo"),
            need="hypercorn",
            tls_flag="--certfile",
        ),
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
            workloads=("plaintext", "tls-plaintext", MEMORY),
            need="ruvicorn",
            tls_flag="--ssl-certfile",
        ),
        Server(
            "uvicorn-asyncio",
            "uvicorn httptools+asyncio",
            _uvicorn("asyncio", "httptools"),
            workloads=("plaintext", "tls-plaintext", MEMORY),
            need="uvicorn",
            tls_flag="--ssl-certfile",
        ),
    )
}
QUICK_SERVERS = ("ruvicorn", "uvicorn")  # on every workload but plaintext
MEMORY_SERVERS = ("ruvicorn", "uvicorn")
