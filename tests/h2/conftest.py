"""The server under test for the HTTP/2 conformance suite.

By default ruvicorn serving tests/apps/testapp.py, reached with h2c prior knowledge; the suite
skips when that ruvicorn does not speak HTTP/2. ``RUVICORN_H2_REFERENCE=hypercorn`` runs the
same cases against hypercorn serving the same app, to check the suite itself (hypercorn is then
needed in the virtualenv; it is no dependency of ruvicorn). ``RUVICORN_H2_ARGS`` adds flags to
the ruvicorn command line (for instance a per-connection request cap for the defence tests);
``RUVICORN_H2_PYTHON`` names the interpreter whose ruvicorn is under test (another worktree's
virtualenv), so a branch's server can be checked against this suite without merging it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from h2client import PREFACE, REFERENCE, H2Conn, T, Target
from hyperframe.frame import SettingsFrame
from realserver import APPS, HOST, ServerProcess, free_port


def speaks_h2(host: str, port: int) -> bool:
    """Whether the server answers the preface and SETTINGS with a SETTINGS frame."""
    try:
        with socket.create_connection((host, port), timeout=3.0) as sock:
            sock.sendall(PREFACE + SettingsFrame(0).serialize())
            head = b""
            while len(head) < 9:
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    return head[3] == T.SETTINGS and head[5:9] == b"\0\0\0\0"


def _reference(factory: Callable[..., ServerProcess]) -> ServerProcess:
    if REFERENCE != "hypercorn":
        pytest.fail(f"RUVICORN_H2_REFERENCE={REFERENCE!r}: the only reference is 'hypercorn'")
    exe = Path(sys.executable).parent / "hypercorn"
    if not exe.exists() and shutil.which("hypercorn") is None:
        pytest.skip("RUVICORN_H2_REFERENCE=hypercorn but hypercorn is not installed")
    port = free_port()
    argv = [str(exe), "--bind", f"{HOST}:{port}", "testapp:app"]
    server = factory("", argv=argv, cwd=APPS, port=port, env={"PYTHONPATH": str(APPS)})
    server.expect_exit = None
    return server


@pytest.fixture(scope="module")
def h2server(module_server_factory: Callable[..., ServerProcess]) -> Iterator[Target]:
    if REFERENCE:
        server = _reference(module_server_factory)
        name = REFERENCE
    else:
        args = shlex.split(os.environ.get("RUVICORN_H2_ARGS", ""))
        python = os.environ.get("RUVICORN_H2_PYTHON")
        # Started outside this checkout so the other interpreter imports its own ruvicorn.
        other = {"argv_prefix": [python], "cwd": APPS} if python else {}
        server = module_server_factory("testapp:app", *args, **other)
        name = "ruvicorn"
    if not speaks_h2(server.host, server.port):
        pytest.skip(f"{name} does not speak HTTP/2: no SETTINGS after the h2c preface")
    yield Target(name, server.host, server.port)


@pytest.fixture
def conn(h2server: Target) -> Iterator[H2Conn]:
    """A connection past the preface and SETTINGS exchange."""
    with h2server.connect() as c:
        yield c
