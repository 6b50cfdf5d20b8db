"""Every ruvicorn setting, declared once.

The CLI, the ``RUVICORN_*`` environment variables and the programmatic API all read the
field declarations below, so an option exists in exactly one place.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KIB = 1024
MIB = 1024 * KIB


class ConfigError(ValueError):
    """A setting a person must correct; its text is shown as one line."""


def opt(
    default: Any,
    help: str,
    *,
    flags: tuple[str, ...] = (),
    choices: tuple[str, ...] = (),
    secondary: str | None = None,
    metavar: str | None = None,
    group: str = "server",
) -> Any:
    """Declare a setting: its default, its help text and how the CLI spells it.

    ``flags`` overrides the derived ``--field-name``; ``secondary`` names the negative form
    of a boolean switch (``--no-access-log``).
    """
    meta = {
        "help": help,
        "flags": flags,
        "choices": choices,
        "secondary": secondary,
        "metavar": metavar,
        "group": group,
    }
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def _default_workers() -> int:
    raw = os.environ.get("WEB_CONCURRENCY", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


@dataclass(frozen=True)
class Config:
    """The resolved settings of one ruvicorn run (master and workers share it)."""

    app: str = opt("", "The ASGI application as module:attribute.", group="app")

    # -- listeners
    host: str = opt("127.0.0.1", "Bind a TCP socket to this host.", group="bind")
    port: int = opt(8000, "Bind a TCP socket to this port (0 picks a free one).", group="bind")
    bind: tuple[str, ...] = opt(
        (),
        "Bind address, repeatable: HOST:PORT, tcp:HOST:PORT, unix:PATH or fd://N. "
        "Replaces --host/--port.",
        flags=("-b", "--bind"),
        metavar="ADDRESS",
        group="bind",
    )
    uds: str | None = opt(None, "Bind a unix domain socket at this path.", group="bind")
    fd: int | None = opt(None, "Serve on an inherited listening file descriptor.", group="bind")
    reuse_port: bool = opt(
        False, "Bind with SO_REUSEPORT.", secondary="--no-reuse-port", group="bind"
    )
    backlog: int = opt(2048, "Maximum number of pending connections.", group="bind")

    # -- application
    factory: bool = opt(
        False, "Treat the app as a factory: call it with no arguments.", group="app"
    )
    app_dir: str = opt(".", "Look for the app module in this directory.", group="app")
    root_path: str = opt("", "The ASGI root_path of a sub-mounted app.", group="app")
    lifespan: str = opt("auto", "Lifespan protocol.", choices=("auto", "on", "off"), group="app")
    preload: bool = opt(False, "Import the app in the master before forking workers.", group="app")

    # -- protocol
    loop: str = opt("auto", "Event loop.", choices=("auto", "asyncio", "uvloop"))
    ws: str = opt("auto", "WebSocket support.", choices=("auto", "none"))
    ws_max_size: int = opt(16 * MIB, "Largest WebSocket message in bytes.")
    ws_max_queue: int = opt(32, "Unread WebSocket messages held before reading pauses.")
    ws_ping_interval: float = opt(20.0, "Seconds between server WebSocket pings (0 = off).")
    ws_ping_timeout: float = opt(20.0, "Seconds to wait for a WebSocket pong.")
    ws_per_message_deflate: bool = opt(
        True, "Negotiate permessage-deflate.", secondary="--no-ws-per-message-deflate"
    )
    proxy_headers: bool = opt(
        True,
        "Trust X-Forwarded-For/-Proto and Forwarded from --forwarded-allow-ips.",
        secondary="--no-proxy-headers",
    )
    forwarded_allow_ips: str = opt(
        "127.0.0.1",
        "Comma-separated IPs or networks whose proxy headers are trusted ('*' trusts all).",
    )
    server_header: bool = opt(True, "Send a Server header.", secondary="--no-server-header")
    date_header: bool = opt(True, "Send a Date header.", secondary="--no-date-header")
    header: tuple[str, ...] = opt(
        (), "Extra default response header NAME:VALUE, repeatable.", metavar="NAME:VALUE"
    )

    # -- timeouts
    timeout_keep_alive: float = opt(5.0, "Close idle keep-alive connections after N seconds.")
    timeout_request_header: float = opt(
        10.0, "Seconds a client has to send a complete request head."
    )
    timeout_graceful_shutdown: float = opt(
        30.0, "Seconds in-flight requests get to finish on stop or reload."
    )
    timeout_worker: float = opt(
        30.0, "Kill a worker whose event loop is blocked this many seconds.", group="process"
    )
    timeout_worker_ready: float = opt(
        60.0, "Seconds a new worker has to become ready.", group="process"
    )

    # -- limits
    limit_request_line: int = opt(8190, "Longest request line in bytes (414 above).")
    limit_request_fields: int = opt(100, "Most header fields in a request (431 above).")
    limit_request_field_size: int = opt(8190, "Longest header field in bytes (431 above).")
    limit_request_body: int = opt(0, "Largest request body in bytes (413 above; 0 = off).")
    limit_max_requests: int = opt(
        0, "Recycle a worker after this many requests (0 = never).", group="process"
    )
    limit_max_requests_jitter: int = opt(
        0, "Add up to this many requests at random to --limit-max-requests.", group="process"
    )
    max_worker_memory: int = opt(
        0, "Recycle a worker whose RSS stays above N MiB (0 = off).", group="process"
    )
    max_worker_lifetime: float = opt(
        0.0, "Recycle a worker after N seconds (0 = never).", group="process"
    )

    # -- processes
    workers: int = opt(
        1,
        "Number of worker processes (default $WEB_CONCURRENCY or 1).",
        flags=("-w", "--workers"),
        group="process",
    )
    reload: bool = opt(False, "Rolling restart when watched files change.", group="process")
    reload_dir: tuple[str, ...] = opt(
        (), "Directory to watch, repeatable (default: cwd).", group="process"
    )
    reload_include: tuple[str, ...] = opt(
        (), "Glob of files to watch, repeatable (default *.py).", group="process"
    )
    reload_exclude: tuple[str, ...] = opt(
        (), "Glob of files to ignore, repeatable.", group="process"
    )
    pid: str | None = opt(None, "Write the master's pid to this file.", group="process")

    # -- logging
    log_level: str = opt(
        "info",
        "Log level.",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
        group="logging",
    )
    log_file: str | None = opt(
        None, "Append logs to this file (reopened on SIGUSR1).", group="logging"
    )
    access_log: bool = opt(
        True, "Log one line per request.", secondary="--no-access-log", group="logging"
    )

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        for name in ("port", "backlog", "workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must not be negative")
        if self.workers < 1:
            raise ConfigError("--workers must be at least 1")
        for name in ("limit_request_line", "limit_request_fields", "limit_request_field_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.root_path and not self.root_path.startswith("/"):
            raise ConfigError("--root-path must start with '/'")
        for item in self.header:
            name, sep, _ = item.partition(":")
            if not sep or not name.strip():
                raise ConfigError(f"--header {item!r} is not NAME:VALUE")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Config:
        """Build a Config from CLI-shaped values, ignoring keys that are not settings."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names and v is not None}
        for key, value in list(kwargs.items()):
            if isinstance(value, list):
                kwargs[key] = tuple(value)
        if "workers" not in kwargs:
            kwargs["workers"] = _default_workers()
        return cls(**kwargs)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """The --header values as raw pairs, in the order given."""
        pairs = []
        for item in self.header:
            name, _, value = item.partition(":")
            pairs.append((name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
        return pairs


def settings() -> tuple[dataclasses.Field[Any], ...]:
    """The declared settings, in declaration order (the CLI's source)."""
    return dataclasses.fields(Config)
