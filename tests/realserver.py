"""A real ``python -m ruvicorn`` process for black-box tests, and how to observe it: the
one process harness of the test suite (the supervisor tests' ``Server`` is a flavour of it).

Lives outside conftest.py so test modules can import it by a name no other conftest shares.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
from rawhttp import RawClient, Response, WaitTimeout, connect, exchange, request, wait_for
from tlscerts import TLSCerts

REPO = Path(__file__).resolve().parent.parent
APPS = REPO / "tests" / "apps"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 40.0
LOOPS = ["asyncio", "uvloop"]


#: Every port ``free_port`` handed out in this process.
_HANDED_OUT: set[int] = set()


def free_port(host: str = HOST) -> int:
    """A port nothing is bound to now, never handed out before in this process.

    The port is only reserved once the server binds it: two ports picked before either is
    bound (a server's and its metrics listener's, two --bind addresses) could otherwise
    be the same one, which the kernel may well pick again once the first probe closed.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise AssertionError("no port free_port had not handed out yet in 100 picks")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test environment without settings that would leak into the server."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RUVICORN_")
        and k not in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "TESTAPP_RECORD")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # A hung server's stack (see ServerProcess.hang_report).
    env.update(extra or {})
    return env


class ServerProcess:
    """One ``python -m ruvicorn`` process and the files it writes."""

    def __init__(
        self,
        app: str,
        args: list[str],
        workdir: Path,
        *,
        app_dir: Path = APPS,
        env: dict[str, str] | None = None,
        loop: str | None = None,
        port: int | None = None,
        use_port_flag: bool = True,
        argv_prefix: list[str] | None = None,
        pass_fds: tuple[int, ...] = (),
        argv: list[str] | None = None,
        cwd: Path = REPO,
        tls: TLSCerts | None = None,
    ) -> None:
        self.app = app
        self.args = list(args)
        self.workdir = workdir
        self.app_dir = app_dir
        self.loop = loop
        self.host = HOST
        self.port = port or free_port()
        self.use_port_flag = use_port_flag
        #: What runs ``-m ruvicorn`` (a shim may stand before the interpreter).
        self.argv_prefix = argv_prefix or [sys.executable]
        self.pass_fds = pass_fds
        #: The whole command instead, for a server started otherwise (``ruvicorn.run``).
        self.argv = argv
        self.cwd = cwd
        #: Serve TLS with these certificates (the server one unless ``args`` name another);
        #: ``client()`` and ``get()`` then speak TLS.
        self.tls = tls
        self.record_path = workdir / f"record-{self.port}.jsonl"
        self.stderr_path = workdir / f"stderr-{self.port}.log"
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.expect_exit: int | None = 0
        self.returncode: int | None = None
        #: Kill what is left of the process group once the master exited (see ``wait_exit``).
        self.reap_on_exit = True

    # -- lifecycle

    def command(self) -> list[str]:
        if self.argv is not None:
            return list(self.argv)
        cmd = [*self.argv_prefix, "-m", "ruvicorn"]
        if self.use_port_flag:
            cmd += ["--host", self.host, "--port", str(self.port)]
        cmd += ["--app-dir", str(self.app_dir)]
        if self.loop:
            cmd += ["--loop", self.loop]
        if self.tls is not None and "--ssl-certfile" not in self.args:
            cmd += self.tls.server.args()
        cmd += self.args
        if self.app:
            cmd.append(self.app)
        return cmd

    def start(self, wait: bool = True) -> ServerProcess:
        self.record_path.touch()
        env = clean_env({"TESTAPP_RECORD": str(self.record_path), **self.extra_env})
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
                pass_fds=self.pass_fds,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the port accepts connections; fail with the server's stderr if not."""
        proc = self.proc
        assert proc is not None

        def accepting() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {proc.returncode} before accepting:\n"
                    f"{self.stderr()[-4000:]}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    return True
            except OSError:
                return False

        try:
            wait_for(accepting, timeout, "the port to accept", interval=0.05)
        except WaitTimeout:
            raise AssertionError(
                f"server did not accept within {timeout}s:\n{self.stderr()[-4000:]}"
            ) from None

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait (bounded) for the process to exit; kill its process group after the bound."""
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            state = self.hang_report()
            self.kill()
            raise AssertionError(
                f"server did not exit within {timeout}s ({state}):\n{self.stderr()[-4000:]}"
            ) from None
        if self.reap_on_exit:
            self._reap_group()
        return self.returncode

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.send_signal(sig)
        return self.wait_exit(timeout)

    def hang_report(self) -> str:
        """What the kernel says of a master that does not exit, then its Python stack
        (SIGABRT: faulthandler, on in every server the tests start, writes it to stderr)."""
        assert self.proc is not None
        pid = self.proc.pid
        fields = []
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            wanted = ("State", "SigPnd", "ShdPnd", "SigBlk", "SigCgt", "Threads")
            fields = [
                ln.replace("\t", " ") for ln in status.splitlines() if ln.split(":")[0] in wanted
            ]
        for name in ("wchan", "syscall"):
            with contextlib.suppress(OSError):
                fields.append(f"{name}: {Path(f'/proc/{pid}/{name}').read_text().strip()}")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=3)
        return "; ".join(fields) or "no /proc entry"

    def kill(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def _reap_group(self) -> None:
        """Workers left behind by a master that exited are killed (they were ours)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        """Make sure nothing outlives the test: the master and every process it started,
        in its session or not."""
        assert self.proc is not None
        try:
            family = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        self.kill()
        for child in family:
            with contextlib.suppress(psutil.Error):
                child.kill()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # -- observation

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def count(self, pattern: str) -> int:
        """How many times ``pattern`` (a regular expression) occurs in the output."""
        return len(re.findall(pattern, self.stderr()))

    def wait_log(self, pattern: str, timeout: float = 30, count: int = 1) -> None:
        try:
            wait_for(lambda: self.count(pattern) >= count, timeout, f"{pattern!r} x{count}")
        except WaitTimeout:
            raise AssertionError(f"{pattern!r} x{count} not logged:\n{self.stderr()}") from None

    def zygotes(self) -> set[int]:
        """Pids of the zygotes (--preload) the log named so far."""
        return {int(pid) for pid in re.findall(r"[Zz]ygote (\d+)", self.stderr())}

    def workers(self) -> set[int]:
        """Pids of the live (not zombie) worker processes, the reload helper and the
        zygotes excluded."""
        pids = set()
        zygotes = self.zygotes()
        try:
            children = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return set()
        for child in children:
            with contextlib.suppress(psutil.Error):
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
                if "reload_helper" in " ".join(child.cmdline()) or child.pid in zygotes:
                    continue
                pids.add(child.pid)
        return pids

    def records(self) -> list[dict[str, Any]]:
        """What the test app recorded, one JSON object per line."""
        out = []
        for line in self.record_path.read_text("utf-8").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def mark(self) -> int:
        return len(self.records())

    def records_since(self, mark: int) -> list[dict[str, Any]]:
        return self.records()[mark:]

    def paths_seen_since(self, mark: int) -> list[str]:
        return [r["path"] for r in self.records_since(mark) if r.get("event") == "request"]

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def client_context(self, *, client_cert: bool = False) -> ssl.SSLContext | None:
        """What a client of this server connects with: None in cleartext."""
        if self.tls is None:
            return None
        return self.tls.client_context(client_cert=client_cert)

    def connect(self, timeout: float = 10.0) -> socket.socket:
        """A connected socket (TLS when the server serves TLS), for tests that drive
        ``send``/``recv`` themselves."""
        return connect(self.host, self.port, timeout, self.client_context())

    def client(self, timeout: float | None = None, preamble: bytes = b"") -> RawClient:
        """A connection; ``preamble`` (a PROXY protocol header) goes first, before TLS."""
        if timeout is None:
            return RawClient(self.host, self.port, tls=self.client_context(), preamble=preamble)
        return RawClient(
            self.host, self.port, timeout, tls=self.client_context(), preamble=preamble
        )

    def get(self, target: str = "/", **kw: Any) -> Response:
        return exchange(self.host, self.port, request("GET", target, **kw), self.client_context())

    def assert_serving(self) -> None:
        """A fresh connection still gets a normal answer."""
        resp = self.get("/ok")
        assert resp.status == 200, resp
        assert resp.body == b"ok"

    def rss(self) -> int:
        """Resident memory of the server's whole process tree, in bytes."""
        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        total = 0
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total
