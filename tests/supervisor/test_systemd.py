"""systemd integration: sd_notify datagrams, watchdog pings and socket activation."""

from __future__ import annotations

import http.client
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sup_helpers import APPS, NotifySocket, Server

pytestmark = pytest.mark.timeout(90)


def test_sd_notify_ready_reloading_stopping_watchdog(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        server = start(
            "basic:app",
            "--workers",
            "2",
            env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"},
        )
        ready = notify.wait_for("READY", "1")
        assert ready["STATUS"] == "2 of 2 workers ready"
        notify.wait_for("WATCHDOG", "1")
        server.signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING", "1")
        assert int(reloading["MONOTONIC_USEC"]) > 0
        notify.wait_for("READY", "1")
        server.wait_log("Reload complete")
        # Workers must not inherit the variables and speak to systemd for the master.
        assert server.get("/env?name=NOTIFY_SOCKET") == (200, "")
        assert server.get("/env?name=WATCHDOG_USEC") == (200, "")
        server.signal(signal.SIGTERM)
        notify.wait_for("STOPPING", "1")
        assert server.wait_exit(30) == 0
    finally:
        notify.close()


def test_preload_reload_that_cannot_import_is_reported_done(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    """systemctl reload must not hang when the new code cannot be imported."""
    module = tmp_path / "reloaded.py"
    module.write_text("from basic import app\n")
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        server = start(
            "reloaded:app",
            "--preload",
            "--app-dir",
            str(tmp_path),
            env={
                "NOTIFY_SOCKET": notify.path,
                "PYTHONPATH": str(APPS),
                "PYTHONDONTWRITEBYTECODE": "1",
            },
        )
        notify.wait_for("READY", "1")
        module.write_text("raise RuntimeError('broken deploy')\n")
        server.signal(signal.SIGHUP)
        notify.wait_for("RELOADING", "1")
        ready = notify.wait_for("READY", "1")
        assert ready["STATUS"] == "1 of 1 workers ready; the last reload failed"
        server.wait_log("broken deploy")
        assert server.get("/")[0] == 200
    finally:
        notify.close()


def test_listen_fds_socket_activation(start: Callable[..., Server]) -> None:
    activated = socket.socket()
    activated.bind(("127.0.0.1", 0))
    activated.listen(64)
    port = activated.getsockname()[1]
    # Like systemd: the socket at fd 3, LISTEN_PID naming the process that execs ruvicorn.
    shim = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); "
        "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES='web'); "
        "os.execv(sys.executable, [sys.executable] + sys.argv[2:])"
    )
    server = start(
        "basic:app",
        "--workers",
        "2",
        argv_prefix=[
            sys.executable,
            "-c",
            shim,
            str(activated.fileno()),
        ],
        pass_fds=(activated.fileno(),),
    )
    activated.close()  # Only the server holds it now.
    server.wait_ready()
    assert f"Listening on http://127.0.0.1:{port}" in server.log()
    assert f":{server.port}" not in server.log()  # --port was not bound.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/", headers={"Connection": "close"})
    response = conn.getresponse()
    assert response.status == 200 and int(response.read()) in server.workers()
    conn.close()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
