"""Helpers for black-box supervisor tests: a real ``python -m ruvicorn`` on loopback."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
from rawhttp import RawClient, request, wait_for
from realserver import REPO, ServerProcess
from tlscerts import TLSCerts

APPS = Path(__file__).parent / "apps"


class Server(ServerProcess):
    """A ruvicorn master for the supervisor tests: started at once with the apps of
    tests/supervisor/apps and no access log, its workers' lifecycle events recorded in a
    file, and ready when it logs so (not merely when its port accepts)."""

    def __init__(
        self,
        tmp_path: Path,
        app: str,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
        argv_prefix: list[str] | None = None,
        pass_fds: tuple[int, ...] = (),
        argv: list[str] | None = None,
        cwd: Path = REPO,
        tls: TLSCerts | None = None,
    ) -> None:
        self.events_path = tmp_path / "events.txt"
        super().__init__(
            app,
            ["--no-access-log", *args],
            tmp_path,
            app_dir=APPS,
            env={"RUVICORN_TEST_EVENTS": str(self.events_path), **(env or {})},
            port=port,
            argv_prefix=argv_prefix,
            pass_fds=pass_fds,
            argv=argv,
            cwd=cwd,
            tls=tls,
        )
        # Workers a master leaves behind are a finding of these tests, not debris.
        self.reap_on_exit = False
        self.start(wait=False)

    def log(self) -> str:
        return self.stderr()

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

    def get(self, path: str = "/", timeout: float = 10) -> tuple[int, str]:  # type: ignore[override]
        """One ``Connection: close`` GET: its status and body."""
        context = self.client_context()
        conn = (
            http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            if context is None
            else http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=timeout, context=context
            )
        )
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def wait_watching(self, timeout: float = 30) -> None:
        """Wait until the --reload watcher has its inotify watches in place: the master
        logs "Watching" once its watcher says so, and the watches are checked here too."""
        self.wait_log("Watching", timeout)
        assert self._watcher_armed(), "Watching was logged before the watches existed"

    def _watcher_armed(self) -> bool:
        for child in psutil.Process(self.pid).children():
            with contextlib.suppress(psutil.Error, OSError):
                if "reload_helper" in " ".join(child.cmdline()):
                    fdinfo = Path(f"/proc/{child.pid}/fdinfo")
                    return any("inotify wd:" in f.read_text() for f in fdinfo.iterdir())
        return False

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float = 30) -> int:
        return super().wait_exit(timeout)


class CloseClient:
    """A new connection per request, ``Connection: close``."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def get(self) -> tuple[int, str]:
        return self.server.get("/")

    def close(self) -> None:
        pass


class PoolClient:
    """httpx with a keep-alive pool of one connection, as an application would use it."""

    def __init__(self, server: Server) -> None:
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{server.port}",
            timeout=10,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    def get(self) -> tuple[int, str]:
        response = self.client.get("/")
        return response.status_code, response.text

    def close(self) -> None:
        self.client.close()


class EagerClient:
    """A raw keep-alive connection that sends its next request the instant the previous
    response ends (the worst moment for a server that closes idle connections), and
    reconnects only when told ``connection: close``."""

    #: Requests sent in one write, all of which must be answered.
    depth = 1

    def __init__(self, server: Server) -> None:
        self.port = server.port
        self.conn: RawClient | None = None

    def get(self) -> tuple[int, str]:
        """The first status other than 200 (else 200) and the last body."""
        if self.conn is None:
            self.conn = RawClient("127.0.0.1", self.port, timeout=10)
        try:
            self.conn.send(request("GET", "/") * self.depth)
            responses = self.conn.read_responses(self.depth)
        except BaseException:
            self.close()
            raise
        last = responses[-1]
        if not last.keeps_alive:
            self.close()
        status = next((r.status for r in responses if r.status != 200), 200)
        return status, last.body.decode()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class PipelineClient(EagerClient):
    """An eager client pipelining three requests per write: a worker that starts to drain
    must answer every request it received before it closes the connection."""

    depth = 3


CLIENTS = {
    "close": CloseClient,
    "pool": PoolClient,
    "eager": EagerClient,
    "pipeline": PipelineClient,
}


def _refused(kind: str, exc: Exception) -> bool:
    """Whether ``exc`` says no process took the connection (see ``Load``)."""
    if isinstance(exc, (ConnectionRefusedError, httpx.ConnectError)):
        return True
    return kind == "close" and isinstance(exc, ConnectionResetError)


class Load:
    """Bounded client loops: one thread per client issuing GETs until told to stop or a
    bound is hit. ``clients`` maps a kind of ``CLIENTS`` to how many of them run.

    ``refusal_ends``: a refused connection ends that client (counted in ``refused``), as
    expected once a stopping server's listener is gone; otherwise it is a failure. A new
    connection reset before any response counts as refused too: the kernel completes a
    handshake under way while the last listener closes, then resets it, and no process
    ever accepted it. (A connection the server accepted is never a refusal.)
    """

    def __init__(
        self,
        server: Server,
        clients: dict[str, int] | None = None,
        *,
        max_requests: int = 20000,
        max_seconds: float = 120.0,
        interval: float = 0.0,
        refusal_ends: bool = False,
    ) -> None:
        self.server = server
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.interval = interval
        self.refusal_ends = refusal_ends
        self.ok = 0
        self.refused = 0
        self.failures: list[str] = []
        self.bodies: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        kinds = [kind for kind, n in (clients or {"close": 4}).items() for _ in range(n)]
        self._threads = [
            threading.Thread(target=self._run, args=(kind,), daemon=True) for kind in kinds
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, kind: str) -> None:
        client = CLIENTS[kind](self.server)
        try:
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                with self._lock:
                    if self.ok + len(self.failures) >= self.max_requests:
                        return
                if not self._one(kind, client):
                    return
                if self.interval:
                    self._stop.wait(self.interval)
        finally:
            client.close()

    def _one(self, kind: str, client: CloseClient | PoolClient | EagerClient) -> bool:
        """One request; False when this client should stop (its connection was refused)."""
        try:
            status, body = client.get()
        except Exception as exc:
            with self._lock:
                if self.refusal_ends and _refused(kind, exc):
                    self.refused += 1
                    return False
                self.failures.append(f"{kind}: {type(exc).__name__}: {exc}")
            return True
        with self._lock:
            if status == 200:
                self.ok += 1
                self.bodies.append(body)
            else:
                self.failures.append(f"{kind}: status {status}")
        return True

    def wait_count(self, count: int, timeout: float = 60) -> None:
        """Wait until ``count`` requests were answered or failed. A load whose clients all
        ended (at its bounds, or refused) never gets there: that fails at once and says so,
        rather than as a timeout that looks like a server that stopped answering."""

        def reached() -> bool:
            # Liveness first: once every client ended, the counts no longer change.
            ended = not any(thread.is_alive() for thread in self._threads)
            if self.ok + len(self.failures) >= count:
                return True
            if ended:
                raise AssertionError(
                    f"the load ended after {self.ok + len(self.failures)} requests (bounds: "
                    f"{self.max_requests} requests, the deadline) short of {count}"
                )
            return False

        wait_for(reached, timeout, f"{count} requests")

    def served_by(self) -> dict[int, int]:
        """How many requests each worker pid answered."""
        with self._lock:
            return dict(Counter(int(body) for body in self.bodies))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[dict[str, str]] = []

    def wait_for(self, key: str, value: str | None = None, timeout: float = 30) -> dict[str, str]:
        """Read datagrams until one carries ``key`` (with ``value``); returns it."""
        self.sock.settimeout(timeout)
        while True:
            data = self.sock.recv(4096)
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            self.messages.append(fields)
            if key in fields and (value is None or fields[key] == value):
                return fields

    def close(self) -> None:
        self.sock.close()
