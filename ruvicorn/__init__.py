"""ruvicorn: an ASGI server and its own process supervisor, with a native HTTP/1.1 protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ruvicorn.api import Server, run
from ruvicorn.config import Config, ConfigError
from ruvicorn.exitcodes import StartupError
from ruvicorn.hooks import ServerHooks, ServerInfo, WorkerInfo

__all__ = [
    "Config",
    "ConfigError",
    "Server",
    "ServerHooks",
    "ServerInfo",
    "StartupError",
    "WorkerInfo",
    "__version__",  # read on first use, by __getattr__
    "run",
]


if TYPE_CHECKING:
    # For type checkers only: a module __getattr__ they saw would type every unknown
    # name of the package as a str.
    __version__: str
else:

    def __getattr__(name: str) -> str:
        """``__version__``, read from the installed metadata when first asked for.

        Not at import: the metadata reader pulls in a dozen modules (email parsing, zip
        and compression among them) that the master would carry into every worker it
        forks.
        """
        if name != "__version__":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("ruvicorn")
        except PackageNotFoundError:  # running from a source tree without an install
            found = "0.0.0"
        globals()["__version__"] = found
        return found
