"""Type stub of the native protocol module (checked by mypy.stubtest)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, final

__version__: str

class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has closed the connection."""

@final
class ServerState:
    """What every connection of one worker shares; also the protocol factory."""

    def __new__(
        cls,
        *,
        app: Callable[..., Awaitable[None]],
        event_loop: Any,
        error_log: Any,
        access_log: Callable[[str], object] | None = None,
        lifespan_state: dict[str, Any] | None = None,
        limit_request_line: int = 8190,
        limit_request_fields: int = 100,
        limit_request_field_size: int = 8190,
        limit_request_body: int = 0,
        root_path: str | None = None,
        server_header: bool = True,
        date_header: bool = True,
        default_headers: list[tuple[bytes, bytes]] | None = None,
        forwarded_allow_ips: str | None = None,
        timeout_keep_alive: float = 5.0,
        timeout_request_header: float = 10.0,
        drain_linger: float = 1.0,
        limit_max_requests: int = 0,
        on_limit: Callable[[], object] | None = None,
        pathsend: Callable[..., Awaitable[None]] | None = None,
        ws: str = "auto",
        ws_max_size: int = 16777216,
        ws_max_queue: int = 32,
        ws_ping_interval: float = 20.0,
        ws_ping_timeout: float = 20.0,
        ws_per_message_deflate: bool = True,
        limit_concurrency: int = 0,
    ) -> ServerState: ...
    def __call__(self) -> HttpProtocol: ...
    @property
    def connections(self) -> int: ...
    @property
    def running(self) -> int: ...
    def sweep(self) -> None: ...
    def drain(self, restart: bool = False) -> None: ...
    def close_all(self) -> None: ...

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
