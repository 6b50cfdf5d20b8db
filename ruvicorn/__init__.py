"""ruvicorn: an ASGI server and its own process supervisor, with a native HTTP/1.1 protocol."""

from importlib.metadata import PackageNotFoundError, version

from ruvicorn.api import Server, run
from ruvicorn.config import Config, ConfigError
from ruvicorn.exitcodes import StartupError
from ruvicorn.hooks import ServerHooks, ServerInfo, WorkerInfo

try:
    __version__ = version("ruvicorn")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = [
    "Config",
    "ConfigError",
    "Server",
    "ServerHooks",
    "ServerInfo",
    "StartupError",
    "WorkerInfo",
    "__version__",
    "run",
]
