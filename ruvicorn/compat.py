"""Flags and config-file names other servers have that mean nothing in ruvicorn.

Each one fails with a single line saying what to use instead, rather than click's generic
"no such option" (or, worse, its value being taken for the app). Flags that do mean
something here are plain aliases on the setting's declaration in ``config``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unsupported:
    flags: tuple[str, ...]
    #: Names a config file may use for it (gunicorn's Python config files).
    keys: tuple[str, ...]
    takes_value: bool
    advice: str


UNSUPPORTED = (
    Unsupported(
        ("-k", "--worker-class"),
        ("worker_class",),
        True,
        "ruvicorn's workers are built in (an asyncio loop with the native protocol): "
        "drop --worker-class",
    ),
    Unsupported(
        ("--threads",),
        ("threads",),
        True,
        "ruvicorn workers are single-threaded event loops: use --workers",
    ),
    Unsupported(
        ("--worker-connections",),
        ("worker_connections",),
        True,
        "use --limit-concurrency to cap the load on each worker",
    ),
    Unsupported(
        ("-D", "--daemon"),
        ("daemon",),
        False,
        "ruvicorn stays in the foreground: run it under systemd or a container runtime",
    ),
    Unsupported(
        ("--interface",),
        ("interface",),
        True,
        "ASGI 3 and ASGI 2 applications are detected and WSGI is not served: drop --interface",
    ),
    Unsupported(
        ("--h11-max-incomplete-event-size",),
        ("h11_max_incomplete_event_size",),
        True,
        "the request head is limited by --limit-request-line, --limit-request-fields and "
        "--limit-request-field-size",
    ),
    Unsupported(
        ("--worker-tmp-dir",),
        ("worker_tmp_dir",),
        True,
        "the worker heartbeat lives in shared memory, not a file: drop --worker-tmp-dir",
    ),
    Unsupported(
        ("--pythonpath",),
        ("pythonpath",),
        True,
        "use --app-dir for the directory the app is imported from",
    ),
    Unsupported(
        ("--ssl-version",),
        ("ssl_version",),
        True,
        "ruvicorn offers TLS 1.2 and 1.3, never older versions: drop --ssl-version",
    ),
    Unsupported(
        ("--do-handshake-on-connect",),
        ("do_handshake_on_connect",),
        False,
        "the TLS handshake always starts on connect, bounded by --timeout-request-header: "
        "drop --do-handshake-on-connect",
    ),
    Unsupported(
        ("--suppress-ragged-eofs",),
        ("suppress_ragged_eofs",),
        False,
        "a TLS stream cut without close_notify is always a plain disconnect: "
        "drop --suppress-ragged-eofs",
    ),
)


def advice_for_key(key: str) -> str | None:
    """What to do instead of config-file name ``key`` (normalised), if it is a known one."""
    for item in UNSUPPORTED:
        flag_keys = {f.lstrip("-").replace("-", "_") for f in item.flags if f.startswith("--")}
        if key in item.keys or key in flag_keys:
            return item.advice
    return None
