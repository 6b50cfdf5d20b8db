"""Where the bench lives and writes, and the constants every part of the runner agrees on."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
#: BENCH_VENV puts the peers and ruvicorn in another virtualenv, e.g. one per interpreter.
VENV = Path(os.environ.get("BENCH_VENV") or BENCH / ".venv").resolve()
APPS = BENCH / "apps"
RESULTS = BENCH / "results"
#: Where a quick or partial run writes unless told otherwise: the committed full results
#: are only replaced by a full run.
PARTIAL_RESULTS = BENCH / "results-partial"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
BASELINE = "uvicorn"
HELLO = b"Hello, world!"
ECHO_BODY = b"x" * 4096
STREAM_BYTES = 16 * 65536
WS_MESSAGE = HELLO  # what each WebSocket connection sends and expects back, 13 bytes
WSLOAD = VENV / "bin" / "wsload"  # built from bench/wsload by setup.sh


def venv_bin(name: str) -> str:
    return str(VENV / "bin" / name)


@dataclasses.dataclass
class OutDir:
    """Where this run writes: chosen once by the command line, before anything runs, and
    read by every writer (so they need not pass it along)."""

    results: Path = RESULTS

    @property
    def raw(self) -> Path:
        return self.results / "raw"


OUT = OutDir()
