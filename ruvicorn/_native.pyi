"""Type stub of the native protocol module (checked by mypy.stubtest)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, final

from ruvicorn.config import Config

__version__: str
#: The slots of the metrics page (mirrored by ``ruvicorn.supervisor.metrics.LAYOUT``).
METRICS_LAYOUT: dict[str, Any]

class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has closed the connection."""

def check_tls(
    certfile: str,
    keyfile: str | None,
    password: str | None,
    ca_certs: str | None,
    cert_reqs: int,
    ciphers: str | None,
) -> None:
    """Build the TLS configuration a worker would; ``ValueError`` with one line if not."""

@final
class ServerState:
    """What every connection of one worker shares; also the protocol factory."""

    def __new__(
        cls,
        config: Config,
        *,
        app: Callable[..., Awaitable[None]],
        event_loop: Any,
        error_log: Any,
        access_log: Callable[[dict[str, Any], int, int | None, float, Any], object] | None,
        lifespan_state: dict[str, Any] | None,
        request_budget: int,
        on_limit: Callable[[], object] | None,
        pathsend: Callable[..., Awaitable[None]] | None,
        metrics: Any = None,
    ) -> ServerState: ...
    def __call__(self) -> HttpProtocol: ...
    def listener(self, address: tuple[str, int | None] | None) -> Listener: ...
    @property
    def connections(self) -> int: ...
    @property
    def running(self) -> int: ...
    def sweep(self) -> None: ...
    def drain(self, restart: bool = False) -> None: ...
    def close_all(self) -> None: ...

@final
class Listener:
    """The protocol factory of one listening socket."""

    def __call__(self) -> HttpProtocol: ...

@final
class HttpProtocol(asyncio.Protocol):
    """The asyncio Protocol of one connection."""

    def connection_made(self, transport: Any) -> None: ...
    def data_received(self, data: bytes) -> None: ...
    def eof_received(self) -> bool: ...
    def connection_lost(self, exc: BaseException | None) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...

@final
class RequestCycle:
    """The ``receive``/``send`` pair of one request."""

    def receive(self) -> Awaitable[dict[str, Any]]: ...
    def send(self, message: dict[str, Any]) -> Awaitable[None]: ...

@final
class AppRunner:
    """The coroutine an app's Task runs: steps the app and settles its response."""

    def __await__(self) -> AppRunner: ...
    def __next__(self) -> Any: ...
    def send(self, value: Any) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any: ...
    def close(self) -> None: ...
    def __getattr__(self, name: str) -> Any: ...

@final
class WebSocketCycle:
    """The ``receive``/``send`` pair of one WebSocket connection."""

    def receive(self) -> Awaitable[dict[str, Any]]: ...
    def send(self, message: dict[str, Any]) -> Awaitable[None]: ...

@final
class Ready:
    """An awaitable that completes at once with None."""

    def __await__(self) -> Ready: ...
    def __iter__(self) -> Ready: ...
    def __next__(self) -> None: ...
    def send(self, value: Any) -> None: ...
