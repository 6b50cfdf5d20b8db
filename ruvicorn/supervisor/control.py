"""``--control-socket``: the master answers ``ruvicorn ctl`` on a Unix socket.

Only the master's user may connect: the socket is created mode 0600, and refused when its
directory lets other users swap it (writable by others without the sticky bit) or the path
is something else or someone else's. A command has exactly the effect of its signal (the
master loop receives the same event), so the logs are the same too.

The master never waits for a client (see ``responder``): a request is one line of at most
``MAX_REQUEST`` bytes, and a client that has not sent it, or not read the answer, within
``CLIENT_SECONDS`` is dropped.

Protocol: one JSON object per line each way. Request ``{"command": "scale", "args": [4]}``;
answer ``{"ok": true, "message": "...", ...}``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
from collections.abc import Callable
from typing import Any

from ruvicorn.config import ConfigError
from ruvicorn.supervisor.responder import Responder

MAX_REQUEST = 4096
CLIENT_SECONDS = 2.0
MAX_CLIENTS = 16
#: Seconds a starting master waits for an answer on an existing socket.
PROBE_SECONDS = 1.0

#: What the master does with a command: its answer (a JSON object).
Handler = Callable[[str, list[Any]], dict[str, Any]]


def check_path(path: str) -> None:
    """Refuse an unsafe or taken socket path (ConfigError, one line); remove a stale one."""
    flag = f"--control-socket {path}"
    directory = os.path.dirname(os.path.abspath(path))
    try:
        dir_stat = os.stat(directory)
    except OSError as exc:
        raise ConfigError(f"{flag}: {directory}: {exc.strerror}") from None
    if dir_stat.st_mode & stat.S_IWOTH and not dir_stat.st_mode & stat.S_ISVTX:
        raise ConfigError(
            f"{flag}: {directory} is writable by every user (and not sticky); "
            "choose a directory only you can write to"
        )
    try:
        path_stat = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"{flag}: {exc.strerror}") from None
    if not stat.S_ISSOCK(path_stat.st_mode):
        raise ConfigError(f"{flag}: the path exists and is not a socket")
    if path_stat.st_uid != os.geteuid():
        raise ConfigError(f"{flag}: the socket belongs to another user")
    if _answers(path):
        raise ConfigError(f"{flag}: another ruvicorn master is running on this control socket")
    os.unlink(path)  # Stale: left by a master that did not exit cleanly.


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_SECONDS)
        try:
            probe.connect(path)
        except OSError as exc:
            return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT)
    return True


class ControlServer(Responder):
    """The control socket, driven by the master's poll (see ``responder``)."""

    def __init__(self, path: str, handler: Handler) -> None:
        check_path(path)
        self.path = os.path.abspath(path)
        self.handler = handler
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(self.path)
        except OSError as exc:
            listener.close()
            raise ConfigError(f"--control-socket {path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        listener.listen(MAX_CLIENTS)
        super().__init__(
            listener,
            self._answer,
            max_clients=MAX_CLIENTS,
            max_request=MAX_REQUEST,
            timeout=CLIENT_SECONDS,
            too_long=_encode({"ok": False, "message": "request too long"}),
        )

    def close(self) -> None:
        super().close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def _answer(self, data: bytes) -> bytes | None:
        line, newline, _ = data.partition(b"\n")
        if not newline:
            return None
        try:
            request = json.loads(line)
            command = str(request["command"])
            args = list(request.get("args", []))
        except (ValueError, KeyError, TypeError):
            return _encode({"ok": False, "message": "not a request"})
        return _encode(self.handler(command, args))


def _encode(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer).encode() + b"\n"
