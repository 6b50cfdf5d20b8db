"""Process titles (``ruvicorn: master [app]``) when setproctitle is installed."""

from __future__ import annotations

import importlib


def set_title(role: str, app: str) -> None:
    """Name this process in ps/top; silently skipped without setproctitle."""
    try:
        module = importlib.import_module("setproctitle")
    except ImportError:
        return
    module.setproctitle(f"ruvicorn: {role} [{app}]")
