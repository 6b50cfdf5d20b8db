"""Helpers for black-box supervisor tests: a real ``python -m ruvicorn`` on loopback."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

APPS = Path(__file__).parent / "apps"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Server:
    """One ruvicorn master started as a subprocess, its log captured in a file."""

    def __init__(
        self,
        tmp_path: Path,
        app: str,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
        argv_prefix: list[str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.log_path = tmp_path / "server.log"
        self.events_path = tmp_path / "events.txt"
        full_env = dict(os.environ)
        full_env["RUVICORN_TEST_EVENTS"] = str(self.events_path)
        full_env.update(env or {})
        cmd = [
            *(argv_prefix or [sys.executable]),
            "-m",
            "ruvicorn",
            "--app-dir",
            str(APPS),
            "--port",
            str(self.port),
            "--no-access-log",
            *args,
            app,
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, pass_fds=pass_fds
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))

    def wait_log(self, pattern: str, timeout: float = 30, count: int = 1) -> None:
        try:
            wait_for(lambda: self.count(pattern) >= count, timeout, f"{pattern!r} x{count}")
        except AssertionError:
            raise AssertionError(f"{pattern!r} x{count} not logged:\n{self.log()}") from None

    def wait_ready(self, timeout: float = 30) -> None:
        self.wait_log(r"Ready: \d+ workers? serving", timeout)

    def events(self) -> list[tuple[str, int]]:
        if not self.events_path.exists():
            return []
        pairs = []
        for line in self.events_path.read_text().splitlines():
            event, _, pid = line.partition(" ")
            pairs.append((event, int(pid)))
        return pairs

    def workers(self) -> set[int]:
        """Pids of the live (not zombie) worker processes, the reload helper excluded."""
        pids = set()
        try:
            children = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return set()
        for child in children:
            with contextlib.suppress(psutil.Error):
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
                if "reload_helper" in " ".join(child.cmdline()):
                    continue
                pids.add(child.pid)
        return pids

    def get(self, path: str = "/", timeout: float = 10) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server still running after {timeout} s:\n{self.log()}") from None

    def close(self) -> None:
        """Make sure nothing outlives the test: the master and every child it started."""
        try:
            family = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        for child in family:
            with contextlib.suppress(psutil.Error):
                child.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._log.close()


class Load:
    """A bounded client loop: threads issuing GETs until told to stop or a bound is hit."""

    def __init__(
        self,
        server: Server,
        threads: int = 4,
        max_requests: int = 20000,
        max_seconds: float = 120.0,
    ) -> None:
        self.server = server
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            with self._lock:
                if self.ok + len(self.failures) >= self.max_requests:
                    return
            try:
                status, body = self.server.get("/")
            except Exception as exc:
                with self._lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            with self._lock:
                if status == 200:
                    self.ok += 1
                    self.bodies.append(body)
                else:
                    self.failures.append(f"status {status}")

    def wait_count(self, count: int, timeout: float = 60) -> None:
        wait_for(lambda: self.ok + len(self.failures) >= count, timeout, f"{count} requests")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
