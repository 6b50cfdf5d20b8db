"""Every ruvicorn setting, declared once.

The CLI, the ``RUVICORN_*`` environment variables and the programmatic API all read the
field declarations below, so an option exists in exactly one place.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruvicorn import access, identity

KIB = 1024
MIB = 1024 * KIB

#: Ranges shared by many settings. Upper bounds keep a typo from reaching the kernel or the
#: native code (a size must fit 64 bits; a duration must be addable to a clock).
MAX_INT = 2**63 - 1
MAX_SECONDS = 10.0**9
COUNT = (0, MAX_INT)
SIZE = (1, MAX_INT)
SECONDS = (0.0, MAX_SECONDS)
#: --ws values other servers accept; ruvicorn serves all of them with its native WebSocket.
WS_IMPLEMENTATIONS = ("websockets", "wsproto", "websockets-sansio")
#: --http values other servers accept for their HTTP/1.1 parsers; ruvicorn reads them as 1.
HTTP1_IMPLEMENTATIONS = ("h11", "httptools")


#: TLS settings that mean nothing without --ssl-certfile.
TLS_DEPENDENT = (
    "ssl_keyfile",
    "ssl_keyfile_password",
    "ssl_ca_certs",
    "ssl_cert_reqs",
    "ssl_ciphers",
    "http3",
)


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
    bounds: tuple[float, float] | None = None,
    env: tuple[str, ...] = (),
    keys: tuple[str, ...] = (),
    secret: bool = False,
) -> Any:
    """Declare a setting: its default, its help text and how the CLI spells it.

    ``flags`` overrides the derived ``--field-name``; ``secondary`` names the negative form
    of a boolean switch (``--no-access-log``). ``bounds`` is the inclusive range of a number.
    ``env`` names variables other servers read for the same setting; they are consulted
    after ``RUVICORN_<NAME>``, so an operator's existing environment keeps working.
    ``keys`` are extra names a config file may use (the field name and every long flag
    are always accepted), so a Python config file written for another server loads as is.
    A ``secret`` value is left out of the repr and masked by ``--print-config``.
    """
    meta = {
        "help": help,
        "flags": flags,
        "choices": choices,
        "secondary": secondary,
        "metavar": metavar,
        "group": group,
        "bounds": bounds,
        "env": env,
        "keys": keys,
        "secret": secret,
    }
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta, repr=not secret)


def flag_of(name: str) -> str:
    """The long flag of setting ``name``: ``--timeout-keep-alive``."""
    return "--" + name.replace("_", "-")


def split_app(spec: str) -> tuple[str, str]:
    """``module:attribute`` as its two halves; ConfigError when it is not in that form."""
    module_name, sep, attr_path = spec.partition(":")
    if (
        not sep
        or not module_name
        or not all(p.isidentifier() for p in attr_path.split("."))
        or not all(p.isidentifier() for p in module_name.split("."))
    ):
        raise ConfigError(
            f"app {spec!r} is not in module:attribute form (e.g. 'main:app' or 'pkg.mod:obj.app')"
        )
    return module_name, attr_path


@dataclass(frozen=True)
class Config:
    """The resolved settings of one ruvicorn run (master and workers share it)."""

    app: str = opt("", "The ASGI application as module:attribute.", group="app", keys=("wsgi_app",))

    # -- listeners
    host: str = opt("127.0.0.1", "Bind a TCP socket to this host.", group="bind")
    port: int = opt(
        8000,
        "Bind a TCP socket to this port (0 picks a free one).",
        group="bind",
        bounds=(0, 65535),
    )
    bind: tuple[str, ...] = opt(
        (),
        "Bind address, repeatable: HOST:PORT, tcp:HOST:PORT, unix:PATH or fd://N. "
        "Replaces --host/--port.",
        flags=("-b", "--bind"),
        metavar="ADDRESS",
        group="bind",
    )
    uds: str | None = opt(None, "Bind a unix domain socket at this path.", group="bind")
    fd: int | None = opt(
        None,
        "Serve on an inherited listening file descriptor.",
        group="bind",
        bounds=(0, 2**31 - 1),
    )
    reuse_port: bool = opt(
        False,
        "Let other processes bind the same TCP port too (SO_REUSEPORT).",
        secondary="--no-reuse-port",
        group="bind",
    )
    socket_per_worker: str = opt(
        "auto",
        "Give each worker its own SO_REUSEPORT socket per TCP address, so the kernel spreads "
        "new connections evenly over them: on, off (one socket every worker accepts from), "
        "or auto (on with more workers than CPUs, where a shared socket splits unevenly).",
        choices=("auto", "on", "off"),
        group="bind",
    )
    backlog: int = opt(
        2048, "Maximum number of pending connections.", group="bind", bounds=(1, 2**31 - 1)
    )

    # -- application
    factory: bool = opt(
        False, "Treat the app as a factory: call it with no arguments.", group="app"
    )
    app_dir: str = opt(".", "Look for the app module in this directory.", group="app")
    root_path: str = opt("", "The ASGI root_path of a sub-mounted app.", group="app")
    lifespan: str = opt("auto", "Lifespan protocol.", choices=("auto", "on", "off"), group="app")
    preload: bool = opt(
        False,
        "Import the app once in a zygote process and fork every worker from it (shared "
        "memory); SIGHUP and --reload load new code in a new zygote.",
        group="app",
        keys=("preload_app",),
    )

    # -- TLS (terminated by the native protocol in each worker)
    ssl_certfile: str | None = opt(
        None,
        "Serve TLS with this PEM certificate chain (leaf first, then intermediates).",
        flags=("--ssl-certfile", "--certfile"),
        metavar="FILE",
        group="tls",
    )
    ssl_keyfile: str | None = opt(
        None,
        "The PEM private key of --ssl-certfile (default: read from --ssl-certfile).",
        flags=("--ssl-keyfile", "--keyfile"),
        metavar="FILE",
        group="tls",
    )
    ssl_keyfile_password: str | None = opt(
        None,
        "Password of an encrypted --ssl-keyfile (PKCS#8 'ENCRYPTED PRIVATE KEY').",
        metavar="PASSWORD",
        group="tls",
        secret=True,
    )
    ssl_ca_certs: str | None = opt(
        None,
        "PEM bundle of the CAs that sign client certificates (with --ssl-cert-reqs).",
        flags=("--ssl-ca-certs", "--ca-certs"),
        metavar="FILE",
        group="tls",
    )
    ssl_cert_reqs: int = opt(
        0,
        "Client certificates: 0 none, 1 optional, 2 required (needs --ssl-ca-certs).",
        flags=("--ssl-cert-reqs", "--cert-reqs"),
        metavar="0|1|2",
        group="tls",
        bounds=(0, 2),
    )
    ssl_ciphers: str | None = opt(
        None,
        "Cipher suites to offer, as IANA names separated by ':' or ',', most preferred "
        "first (e.g. TLS_AES_128_GCM_SHA256); default: AES-128-GCM, ChaCha20, AES-256-GCM.",
        flags=("--ssl-ciphers", "--ciphers"),
        metavar="SUITES",
        group="tls",
    )

    # -- protocol
    loop: str = opt("auto", "Event loop.", choices=("auto", "asyncio", "uvloop"))
    http: str = opt(
        "auto",
        "HTTP versions: auto serves HTTP/2 to clients that ask for it (ALPN h2 over TLS, the "
        "HTTP/2 preface on cleartext) and HTTP/1.1 to the others; 1 only HTTP/1.1; 2 only "
        "HTTP/2 (h11 and httptools are read as 1).",
        choices=("auto", "1", "2", *HTTP1_IMPLEMENTATIONS),
    )
    h2_max_concurrent_streams: int = opt(
        100, "HTTP/2 streams a client may have open at once.", bounds=(1, 2**31 - 1)
    )
    h2_initial_window_size: int = opt(
        65535, "HTTP/2 flow-control window of each stream, in bytes.", bounds=(1, 2**31 - 1)
    )
    h2_max_frame_size: int = opt(
        16384, "Largest HTTP/2 frame payload accepted, in bytes.", bounds=(16384, 2**24 - 1)
    )
    h2_max_requests: int = opt(
        10000,
        "HTTP/2 (and HTTP/3) requests served on one connection before it is asked to go "
        "(GOAWAY; the client reconnects, so no connection is held forever; 0 = no limit).",
        bounds=COUNT,
    )
    http3: bool = opt(
        False,
        "Also serve HTTP/3 (QUIC): a UDP socket on the host and port of each TCP listener, "
        "announced to TCP clients with alt-svc (needs --ssl-certfile; with several workers, "
        "one UDP socket per worker).",
    )
    ws: str = opt(
        "auto",
        "WebSocket support: auto serves it natively, none hands upgrades to the app as HTTP "
        "(the names of other implementations are accepted and served natively).",
        choices=("auto", "none", *WS_IMPLEMENTATIONS),
    )
    ws_max_size: int = opt(16 * MIB, "Largest WebSocket message in bytes.", bounds=SIZE)
    ws_max_queue: int = opt(
        32, "Unread WebSocket messages held before reading pauses.", bounds=(1, 2**31 - 1)
    )
    ws_ping_interval: float = opt(
        20.0, "Seconds between server WebSocket pings (0 = off).", bounds=SECONDS
    )
    ws_ping_timeout: float = opt(
        20.0, "Seconds to wait for a WebSocket pong (0 = forever).", bounds=SECONDS
    )
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
        env=("FORWARDED_ALLOW_IPS",),
    )
    proxy_protocol: bool = opt(
        False,
        "Read a PROXY protocol (v1 or v2) header first on each connection; only peers in "
        "--forwarded-allow-ips may send one, any other connection is closed.",
    )
    server_header: bool = opt(True, "Send a Server header.", secondary="--no-server-header")
    date_header: bool = opt(True, "Send a Date header.", secondary="--no-date-header")
    header: tuple[str, ...] = opt(
        (), "Extra default response header NAME:VALUE, repeatable.", metavar="NAME:VALUE"
    )

    # -- timeouts
    timeout_keep_alive: float = opt(
        5.0,
        "Close idle keep-alive connections after N seconds.",
        flags=("--timeout-keep-alive", "--keep-alive"),
        bounds=SECONDS,
        keys=("keepalive",),
    )
    timeout_request_header: float = opt(
        10.0, "Seconds a client has to send a complete request head.", bounds=SECONDS
    )
    timeout_request_body: float = opt(
        60.0,
        "Seconds a request body may go without receiving a byte before the request is "
        "ended: 408 if no response started, else the connection is closed (an HTTP/2 or "
        "HTTP/3 stream is reset instead; 0 = off).",
        bounds=SECONDS,
    )
    timeout_send: float = opt(
        60.0,
        "Seconds a response may wait on a client that reads nothing (the connection's "
        "write buffer stays full) before the connection is aborted; HTTP/1.1, WebSocket "
        "and HTTP/2, not HTTP/3 (0 = off).",
        bounds=SECONDS,
    )
    timeout_graceful_shutdown: float = opt(
        30.0,
        "Seconds in-flight requests get to finish on stop or reload.",
        flags=("--timeout-graceful-shutdown", "--graceful-timeout"),
        bounds=SECONDS,
    )
    timeout_shutdown_delay: float = opt(
        0.0,
        "On SIGTERM/SIGINT, keep serving N seconds (reported as not ready) before the "
        "graceful stop begins, while a load balancer stops sending traffic.",
        bounds=SECONDS,
    )
    timeout_worker: float = opt(
        30.0,
        "Kill a worker whose event loop is blocked this many seconds (0 = never).",
        flags=("-t", "--timeout-worker", "--timeout", "--timeout-notify"),
        group="process",
        bounds=SECONDS,
    )
    timeout_worker_ready: float = opt(
        60.0,
        "Seconds a new worker has to become ready.",
        group="process",
        bounds=(0.1, MAX_SECONDS),
    )

    # -- limits
    limit_request_line: int = opt(8190, "Longest request line in bytes (414 above).", bounds=SIZE)
    limit_request_fields: int = opt(
        100, "Most header fields in a request (431 above).", bounds=SIZE
    )
    limit_request_field_size: int = opt(
        8190,
        "Longest header field in bytes (431 above).",
        flags=("--limit-request-field-size", "--limit-request-field_size"),
        bounds=SIZE,
    )
    limit_request_body: int = opt(
        0, "Largest request body in bytes (413 above; 0 = off).", bounds=COUNT
    )
    limit_concurrency: int = opt(
        0,
        "Answer 503 to a request beyond N open connections or N running requests in a "
        "worker (0 = off).",
        bounds=COUNT,
    )
    limit_max_requests: int = opt(
        0,
        "Recycle a worker after this many requests (0 = never).",
        flags=("--limit-max-requests", "--max-requests"),
        group="process",
        bounds=COUNT,
    )
    limit_max_requests_jitter: int = opt(
        0,
        "Add up to this many requests at random to --limit-max-requests.",
        flags=("--limit-max-requests-jitter", "--max-requests-jitter"),
        group="process",
        bounds=COUNT,
    )
    max_worker_memory: int = opt(
        0, "Recycle a worker whose RSS stays above N MiB (0 = off).", group="process", bounds=COUNT
    )
    max_worker_lifetime: float = opt(
        0.0, "Recycle a worker after N seconds (0 = never).", group="process", bounds=SECONDS
    )

    # -- processes
    workers: int = opt(
        1,
        "Number of worker processes.",
        flags=("-w", "--workers"),
        group="process",
        bounds=(1, 1024),
        env=("WEB_CONCURRENCY",),
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
    reload_delay: float = opt(
        0.4,
        "Seconds without further changes before --reload restarts (editors save in steps).",
        group="process",
        bounds=(0.0, 60.0),
    )
    pid: str | None = opt(
        None,
        "Write the master's pid to this file.",
        flags=("-p", "--pid"),
        group="process",
        keys=("pidfile",),
    )
    control_socket: str | None = opt(
        None,
        "Answer 'ruvicorn ctl PATH status|reload|scale N|stop|reopen-logs' on this Unix "
        "socket (mode 0600, the master's user only).",
        metavar="PATH",
        group="process",
    )
    chdir: str | None = opt(
        None, "Change to this directory before loading the app or binding.", group="process"
    )
    user: str | None = opt(
        None,
        "Workers switch to this user (name or uid) after fork.",
        flags=("-u", "--user"),
        group="process",
    )
    group: str | None = opt(
        None,
        "Workers switch to this group (name or gid) after fork (default: the user's).",
        flags=("-g", "--group"),
        group="process",
    )
    umask: str | None = opt(
        None,
        "File mode creation mask of the master and workers, in octal (e.g. 027).",
        flags=("-m", "--umask"),
        group="process",
    )
    env_file: str | None = opt(
        None,
        "Load KEY=VALUE lines from this file into the environment before the app is "
        "imported (variables already set win).",
        group="app",
    )

    metrics_bind: str | None = opt(
        None,
        "Serve Prometheus metrics of all workers on GET /metrics at this HOST:PORT, from "
        "the master (off by default).",
        metavar="HOST:PORT",
        group="process",
    )

    # -- logging
    log_level: str = opt(
        "info",
        "Log level.",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
        group="logging",
        keys=("loglevel",),
    )
    log_file: str | None = opt(
        None,
        "Append logs to this file (reopened on SIGUSR1; '-' is stderr).",
        flags=("--log-file", "--error-logfile"),
        group="logging",
        keys=("errorlog",),
    )
    access_log: bool = opt(
        True, "Log one line per request.", secondary="--no-access-log", group="logging"
    )
    use_colors: bool = opt(
        False,
        "Color the level name of text log lines, for a terminal (JSON lines never are).",
        secondary="--no-use-colors",
        group="logging",
    )
    log_format: str = opt(
        "text",
        "Write log records as text lines or as one JSON object per line.",
        choices=("text", "json"),
        group="logging",
    )
    access_log_format: str | None = opt(
        None,
        "The access line as a %-format of atoms: %(h)s client, %(r)s request line, "
        "%(s)s status, %(b)s bytes, %(a)s user agent, %({name}i)s a request header ... "
        "(default: '%(client)s - \"%(r)s\" %(s)s').",
        flags=("--access-log-format", "--access-logformat"),
        metavar="FORMAT",
        group="logging",
    )
    access_logfile: str | None = opt(
        None,
        "Append access lines to this file ('-' is stdout; reopened on SIGUSR1) instead of "
        "where the other logs go.",
        metavar="FILE",
        group="logging",
        keys=("accesslog",),
    )
    log_config: str | None = opt(
        None,
        "Configure logging from this file after ruvicorn's own setup: JSON or YAML "
        "(logging.config.dictConfig) or INI (fileConfig).",
        metavar="FILE",
        group="logging",
        keys=("logconfig",),
    )

    def __post_init__(self) -> None:
        if self.log_file == "-":
            object.__setattr__(self, "log_file", None)
        self._check()

    def _check(self) -> None:
        for f in settings():
            if f.metadata["bounds"] is not None:
                _check_bounds(f.name, getattr(self, f.name), f.metadata["bounds"])
        if self.app:
            split_app(self.app)
        if self.access_log_format is not None:
            problem = access.format_problem(self.access_log_format)
            if problem is not None:
                raise ConfigError(f"--access-log-format: {problem}")
        if self.metrics_bind is not None:
            _check_metrics_bind(self.metrics_bind)
        if self.root_path and not self.root_path.startswith("/"):
            raise ConfigError("--root-path must start with '/'")
        for item in self.header:
            name, sep, _ = item.partition(":")
            if not sep or not name.strip():
                raise ConfigError(f"--header {item!r} is not NAME:VALUE")
        self._check_process_identity()
        self._check_tls()

    def _check_tls(self) -> None:
        """TLS options that only make sense together: caught here, before anything binds."""
        if self.ssl_certfile is None:
            given = [flag_of(n) for n in TLS_DEPENDENT if getattr(self, n) not in (None, 0, "")]
            if given:
                shown = ", ".join(given)
                raise ConfigError(f"{shown} needs --ssl-certfile (TLS is off without it)")
            return
        if self.ssl_cert_reqs and self.ssl_ca_certs is None:
            raise ConfigError(
                f"--ssl-cert-reqs {self.ssl_cert_reqs} needs --ssl-ca-certs: the CAs that sign "
                "the client certificates"
            )

    def _check_process_identity(self) -> None:
        """--umask, --user and --group: checked here so a typo stops the start, one line."""
        if self.umask is not None:
            parse_umask(self.umask)
        if self.user is not None and identity.user_id(self.user) is None:
            raise ConfigError(f"--user {self.user!r}: no such user")
        if self.group is not None and identity.group_id(self.group) is None:
            raise ConfigError(f"--group {self.group!r}: no such group")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Config:
        """Build a Config from CLI-shaped values, ignoring keys that are not settings."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names and v is not None}
        for key, value in list(kwargs.items()):
            if isinstance(value, list):
                kwargs[key] = tuple(value)
        return cls(**kwargs)

    @property
    def umask_bits(self) -> int | None:
        """--umask as a number, or None when not set."""
        return None if self.umask is None else parse_umask(self.umask)

    @property
    def tls(self) -> bool:
        """Whether the listeners serve TLS (https, wss)."""
        return self.ssl_certfile is not None

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """The --header values as raw pairs, in the order given."""
        pairs = []
        for item in self.header:
            name, _, value = item.partition(":")
            pairs.append((name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
        return pairs


def parse_umask(text: str) -> int:
    """``027``, ``0o027`` or ``0027`` as a mask; ConfigError for anything else."""
    digits = text.strip().lower().removeprefix("0o")
    if not digits or any(c not in "01234567" for c in digits) or int(digits, 8) > 0o777:
        raise ConfigError(f"--umask must be an octal mask from 0 to 777 (e.g. 027), not {text!r}")
    return int(digits, 8)


def _check_metrics_bind(spec: str) -> None:
    from ruvicorn.listeners import parse_address

    try:
        kind = parse_address(spec).kind
    except ConfigError:
        kind = ""
    if kind != "tcp":
        raise ConfigError(f"--metrics-bind {spec!r} is not HOST:PORT")


def _check_bounds(name: str, value: float | None, bounds: tuple[float, float]) -> None:
    if value is None:
        return
    flag = flag_of(name)
    low, high = bounds
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{flag} must be a finite number, not {value}")
    if value < low:
        raise ConfigError(f"{flag} must be at least {_show(low)}, not {_show(value)}")
    if value > high:
        raise ConfigError(f"{flag} must be at most {_show(high)}, not {_show(value)}")


def _show(number: float) -> str:
    return str(number) if isinstance(number, int) else f"{number:g}"


def settings() -> tuple[dataclasses.Field[Any], ...]:
    """The declared settings, in declaration order (the CLI's source)."""
    return dataclasses.fields(Config)
