"""``--control-socket``: the master answers ``ruvicorn ctl`` on a Unix socket.

Only the master's user may connect: the socket is created mode 0600, and refused when its
directory lets other users swap it (writable by others without the sticky bit) or the path
is something else or someone else's. A command has exactly the effect of its signal (the
master loop receives the same event), so the logs are the same too.

The master never waits for a client: sockets are non-blocking, a request is one line of
at most ``MAX_REQUEST`` bytes, and a client that has not sent it, or not read the answer,
within ``CLIENT_SECONDS`` is dropped.

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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ruvicorn.config import ConfigError

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


@dataclass
class _Client:
    sock: socket.socket
    deadline: float
    inbox: bytes = b""
    outbox: bytes = b""
    answered: bool = False


class ControlServer:
    """The listening socket and the clients being served, driven by the master loop."""

    def __init__(self, path: str, handler: Handler) -> None:
        check_path(path)
        self.path = os.path.abspath(path)
        self.handler = handler
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.sock.bind(self.path)
        except OSError as exc:
            self.sock.close()
            raise ConfigError(f"--control-socket {path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self.sock.listen(MAX_CLIENTS)
        self.sock.setblocking(False)
        self.clients: dict[int, _Client] = {}

    def fds(self) -> list[int]:
        """Descriptors a forked child must close."""
        return [self.sock.fileno(), *self.clients]

    def wanted(self) -> dict[int, bool]:
        """fd -> whether the loop should wait for it to be writable (else readable)."""
        wanted = {self.sock.fileno(): False}
        for fd, client in self.clients.items():
            wanted[fd] = bool(client.outbox)
        return wanted

    def on_ready(self, fd: int) -> None:
        if fd == self.sock.fileno():
            self._accept()
        elif fd in self.clients:
            self._serve(self.clients[fd])

    def expire(self, now: float) -> None:
        for client in [c for c in self.clients.values() if now >= c.deadline]:
            self._drop(client)

    def close(self) -> None:
        for client in list(self.clients.values()):
            self._drop(client)
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(self.clients) >= MAX_CLIENTS:
                sock.close()
                continue
            sock.setblocking(False)
            self.clients[sock.fileno()] = _Client(sock, time.monotonic() + CLIENT_SECONDS)

    def _serve(self, client: _Client) -> None:
        try:
            if client.outbox:
                sent = client.sock.send(client.outbox)
                client.outbox = client.outbox[sent:]
            elif not client.answered:
                self._read(client)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        if client.answered and not client.outbox:
            self._drop(client)

    def _read(self, client: _Client) -> None:
        data = client.sock.recv(MAX_REQUEST + 1 - len(client.inbox))
        if not data:
            self._drop(client)
            return
        client.inbox += data
        line, newline, _ = client.inbox.partition(b"\n")
        if newline:
            self._answer(client, self._dispatch(line))
        elif len(client.inbox) > MAX_REQUEST:
            self._answer(client, {"ok": False, "message": "request too long"})

    def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            command = str(request["command"])
            args = list(request.get("args", []))
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "message": "not a request"}
        return self.handler(command, args)

    def _answer(self, client: _Client, answer: dict[str, Any]) -> None:
        client.answered = True
        client.outbox = json.dumps(answer).encode() + b"\n"
        try:
            sent = client.sock.send(client.outbox)
            client.outbox = client.outbox[sent:]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            client.outbox = b""

    def _drop(self, client: _Client) -> None:
        self.clients.pop(client.sock.fileno(), None)
        client.sock.close()
