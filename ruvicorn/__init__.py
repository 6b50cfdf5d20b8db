"""ruvicorn: an ASGI server and its own process supervisor, with a native HTTP/1.1 protocol."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ruvicorn")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["__version__"]
