"""One started server: its pid, its log, a bounded readiness wait and a by-pid stop."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import time
from pathlib import Path

from runner.paths import REPO, VENV
from runner.probes import probe, wait_port_free
from runner.procfs import Proc, process_tree, read_proc
from runner.servers import Server
from runner.workloads import Workload


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
        self.access_log = launch.access_log
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
