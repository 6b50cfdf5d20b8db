"""The ``--reload`` watcher process (see ``reload``): reports changed files to the master.

It prints an empty JSON list once its watches are in place (the master says it is
watching only then: an edit made earlier would go unseen), then one JSON list of changed
paths per batch on stdout, and exits when its stdin reaches EOF, which happens when the
master stops it or dies.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import watchfiles

from ruvicorn import logs

DEFAULT_INCLUDE = ("*.py",)
#: How long one wait for changes lasts; the first one ending says the watches are in place.
READY_TIMEOUT_MS = 200


def _matches(path: str, globs: tuple[str, ...]) -> bool:
    name = os.path.basename(path)
    return any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(path, g) for g in globs)


def make_filter(include: tuple[str, ...], exclude: tuple[str, ...]) -> Callable[[Any, str], bool]:
    """Accept paths matching an include glob and no exclude glob (plus the watcher's
    defaults, which skip VCS folders, caches and editor swap files)."""
    default = watchfiles.DefaultFilter()
    include = include or DEFAULT_INCLUDE

    def accept(change: Any, path: str) -> bool:
        if not default(change, path):
            return False
        return _matches(path, include) and not _matches(path, exclude)

    return accept


def helper_main(argv: list[str]) -> int:
    """The watcher process: report changed files until stdin closes."""
    spec = json.loads(argv[1])
    logs.configure(
        spec["log_level"],
        spec["log_file"],
        log_format=spec["log_format"],
        colors=spec["use_colors"],
    )
    # Terminal Ctrl+C and hangups are the master's business; it stops us itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    stop = threading.Event()

    def wait_for_master() -> None:
        with contextlib.suppress(OSError):
            sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=wait_for_master, daemon=True).start()
    accept = make_filter(tuple(spec["include"]), tuple(spec["exclude"]))
    announced = False
    for changes in watchfiles.watch(
        *spec["dirs"],
        # Filtered here, not by the watcher: changes it filters out all would not end its
        # wait, and steady noise (a log file written in a watched folder) would then hold
        # back the first batch that says the watches are in place.
        watch_filter=None,
        stop_event=stop,
        # Quiet time after a change before it is reported (--reload-delay).
        debounce=spec["debounce_ms"],
        raise_interrupt=False,
        # The watches exist once the generator first yields; a timeout makes it yield soon.
        rust_timeout=READY_TIMEOUT_MS,
        yield_on_timeout=True,
    ):
        paths = sorted({path for change, path in changes if accept(change, path)})
        try:
            if not announced:
                _report([])  # the first batch, empty: the watches are in place
                announced = True
            if paths:
                _report(paths)
        except OSError:
            break
    return 0


def _report(paths: list[str]) -> None:
    os.write(sys.stdout.fileno(), (json.dumps(paths) + "\n").encode())


if __name__ == "__main__":
    raise SystemExit(helper_main(sys.argv))
