"""The ``--pid`` file: written atomically at start, removed at exit if still ours."""

from __future__ import annotations

import contextlib
import os

from ruvicorn.config import ConfigError


def write(path: str) -> None:
    """Write this process's pid, replacing the file in one rename."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ConfigError(f"cannot write pid file {path}: {exc.strerror}") from None


def remove(path: str) -> None:
    """Remove the file unless another process has written its own pid there since."""
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="ascii") as handle:
            if int(handle.read().strip()) != os.getpid():
                return
        os.unlink(path)
