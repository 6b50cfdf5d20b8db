"""``--reload``: a helper process watches files; the master does a rolling restart.

The file watcher runs threads, and a process that forks while it has threads can leave a
child holding a lock nobody will release. So the watcher lives in its own process and
tells the single-threaded master about changes with one JSON line per batch on a pipe.
The helper exits when the master goes away (its stdin reaches EOF) or stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

from ruvicorn.config import Config
from ruvicorn.logs import error_log


class ReloadWatcher:
    """The master's handle on the watcher process."""

    def __init__(self, config: Config) -> None:
        self.dirs = [os.path.abspath(d) for d in (config.reload_dir or (os.getcwd(),))]
        spec = {
            "dirs": self.dirs,
            "include": list(config.reload_include),
            "exclude": list(config.reload_exclude),
            "debounce_ms": round(config.reload_delay * 1000),
            "log_level": config.log_level,
            "log_file": config.log_file,
            "log_format": config.log_format,
            "use_colors": config.use_colors,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ruvicorn.supervisor.reload_helper", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self._buffer = b""
        #: The helper's watches are in place (it said so with an empty batch).
        self.watching = False

    def master_fds(self) -> list[int]:
        """Descriptors a forked worker must close."""
        fds = [self.fd]
        if self.proc.stdin is not None:
            fds.append(self.proc.stdin.fileno())
        return fds

    def read_changes(self) -> list[list[str]] | None:
        """The change batches reported so far; None once the helper has gone away. The
        helper's first, empty batch sets ``watching`` and says so in the log."""
        batches: list[list[str]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                return None
            self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError):
                paths = [str(p) for p in json.loads(line)]
                if paths:
                    batches.append(paths)
                elif not self.watching:
                    self.watching = True
                    error_log.info("Watching %s for changes", ", ".join(self.dirs))
        return batches

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
            self.proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            self.proc.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
