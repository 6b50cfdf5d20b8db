"""Listening sockets: bound once by the master, inherited by every worker it forks.

Binding in the master (never in a worker) is what lets a worker restart without the kernel
dropping connections queued on the listener: the socket outlives every worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import socket
import stat
from dataclasses import dataclass
from typing import Any

from ruvicorn.config import Config, ConfigError

#: The first file descriptor systemd passes (sd_listen_fds(3)).
SD_LISTEN_FDS_START = 3


@dataclass(frozen=True)
class Address:
    """One parsed listener address."""

    kind: str  # "tcp", "unix", "fd" (or "udp", the HTTP/3 socket beside a TCP listener)
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


# Unix socket files this process created: path -> (inode, creator pid). Only the creator
# removes them, and only while the file is still the one it made, so a forked worker
# closing its copies (or a newer server that replaced the file) is never harmed.
_created: dict[str, tuple[int, int]] = {}


def _parse_port(text: str, spec: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ConfigError(f"invalid port in bind address {spec!r}")
    return int(text)


def _strip_prefix(text: str, prefix: str) -> str:
    """``text`` after ``prefix`` and an optional ``//`` (``unix://PATH``, ``tcp://HOST``)."""
    rest = text[len(prefix) :]
    return rest[2:] if rest.startswith("//") else rest


def _parse_tcp(text: str, spec: str) -> Address:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(f"bind address {spec!r} is not [IPV6]:PORT")
        return Address("tcp", host=host, port=_parse_port(rest[1:], spec))
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ConfigError(
            f"bind address {spec!r} is not HOST:PORT, tcp:HOST:PORT, unix:PATH or fd://N"
        )
    if ":" in host:
        raise ConfigError(f"bind address {spec!r}: write IPv6 hosts as [HOST]:PORT")
    return Address("tcp", host=host or "0.0.0.0", port=_parse_port(port, spec))


def parse_address(spec: str) -> Address:
    """Parse one ``--bind`` value: HOST:PORT, tcp:HOST:PORT, [V6]:PORT, unix:PATH, fd://N."""
    text = spec.strip()
    if text.startswith("unix:"):
        path = _strip_prefix(text, "unix:")
        if not path:
            raise ConfigError(f"bind address {spec!r} has no path")
        return Address("unix", path=path)
    if text.startswith("fd://"):
        raw = text[len("fd://") :]
        if not raw.isdigit():
            raise ConfigError(f"bind address {spec!r}: fd:// needs a file descriptor number")
        return Address("fd", fd=int(raw))
    if text.startswith("tcp:"):
        text = _strip_prefix(text, "tcp:")
    return _parse_tcp(text, spec)


def addresses(config: Config) -> list[Address]:
    """The listeners a config asks for; --host/--port only when nothing else is given."""
    found = [parse_address(spec) for spec in config.bind]
    if config.uds:
        found.append(Address("unix", path=config.uds))
    if config.fd is not None:
        found.append(Address("fd", fd=config.fd))
    if not found:
        found.append(Address("tcp", host=config.host or "0.0.0.0", port=config.port))
    return found


def _bind_error(address: Address, exc: OSError) -> ConfigError:
    reasons = {
        errno.EADDRINUSE: "address already in use",
        errno.EACCES: "permission denied",
        errno.EADDRNOTAVAIL: "address not available on this machine",
    }
    reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    return ConfigError(f"cannot bind {address}: {reason}")


def _resolve(address: Address) -> tuple[int, int, int, tuple[Any, ...]]:
    """Family, type, protocol and socket address to bind ``address`` at."""
    # An ASCII name goes as bytes: a str is always encoded with the IDNA codec, whose import
    # (stringprep, unicodedata) the master would fork into every worker for nothing.
    host = address.host.encode("ascii") if address.host.isascii() else address.host
    try:
        infos = socket.getaddrinfo(
            host,
            address.port,
            socket.AF_UNSPEC,
            socket.SOCK_STREAM,
            0,
            socket.AI_PASSIVE,
        )
    except socket.gaierror as exc:
        raise ConfigError(f"cannot bind {address}: unknown host ({exc.strerror})") from None
    family, kind, proto, _, sockaddr = infos[0]
    return family, kind, proto, tuple(sockaddr)


def _bind_tcp(
    address: Address, config: Config, reuse_port: bool, listen: bool = True
) -> socket.socket:
    family, kind, proto, sockaddr = _resolve(address)
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # One address family per socket: [::] and 0.0.0.0 can then both be bound.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        if listen:
            sock.listen(config.backlog)
    except OSError as exc:
        sock.close()
        raise _bind_error(address, exc) from None
    return sock


def bind_slot_sockets(
    address: Address, config: Config, count: int, probe: bool = True
) -> list[socket.socket]:
    """``count`` SO_REUSEPORT listeners on one TCP address, one per worker slot.

    Unless ``--reuse-port`` lets other processes share the port, the address is first bound
    once without SO_REUSEPORT and released: a port another server holds then fails here
    with "address already in use" instead of being silently shared with it. ``probe``
    is False when the port is already ours (more slots for more workers).
    """
    if probe and address.port and not config.reuse_port:
        _bind_tcp(address, config, reuse_port=False, listen=False).close()
    bound: list[socket.socket] = []
    try:
        for _ in range(count):
            bound.append(_bind_tcp(address, config, reuse_port=True))
            # Port 0: every further slot binds the port the first one was given.
            address = dataclasses.replace(address, port=bound[0].getsockname()[1])
    except BaseException:
        close_listeners(bound)
        raise
    return bound


def _remove_stale_unix(address: Address) -> None:
    """Remove a socket file left by a crash; refuse if a server still listens on it."""
    try:
        mode = os.lstat(address.path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _bind_error(address, exc) from None
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"cannot bind {address}: the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(address.path)
    except OSError:
        pass  # Nothing listens: the file is stale.
    else:
        raise ConfigError(f"cannot bind {address}: another server is listening on it")
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address.path)


def _bind_unix(address: Address, config: Config) -> socket.socket:
    _remove_stale_unix(address)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(address.path)
        sock.listen(config.backlog)
        _created[address.path] = (os.stat(address.path).st_ino, os.getpid())
    except OSError as exc:
        sock.close()
        raise _bind_error(address, exc) from None
    return sock


def _adopt_fd(fd: int, backlog: int, what: str) -> socket.socket:
    """Wrap an inherited descriptor; it must be a stream socket (listening, or made so)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        raise ConfigError(f"{what}: file descriptor {fd} is not an open socket") from None
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise ConfigError(f"{what}: file descriptor {fd} is not a stream socket")
    try:
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            sock.listen(backlog)
    except OSError as exc:
        sock.detach()
        raise ConfigError(f"{what}: cannot listen on fd {fd}: {exc.strerror}") from None
    return sock


def systemd_sockets(backlog: int = 2048) -> list[socket.socket] | None:
    """Sockets passed by systemd socket activation, or None when there are none for us.

    The variables are removed once read so that nothing started later mistakes them
    for its own.
    """
    raw_fds = os.environ.get("LISTEN_FDS", "")
    raw_pid = os.environ.get("LISTEN_PID", "")
    if not raw_fds or not raw_pid.isdigit() or int(raw_pid) != os.getpid():
        return None
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not raw_fds.isdigit() or int(raw_fds) < 1:
        return None
    return [
        _adopt_fd(fd, backlog, "socket activation")
        for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(raw_fds))
    ]


def bind_listeners(config: Config) -> list[socket.socket]:
    """Bind every listener ``config`` asks for (or adopt systemd's); all or nothing. With
    --http3, each TCP listener is followed by a UDP socket on its host and port."""
    activated = systemd_sockets(config.backlog)
    bound: list[socket.socket] = [] if activated is None else activated
    try:
        for address in addresses(config) if activated is None else []:
            bound.append(bind_address(address, config))
        if config.http3:
            bound += http3_sockets(bound)
    except BaseException:
        close_listeners(bound)
        raise
    return bound


def bind_address(address: Address, config: Config) -> socket.socket:
    """One listener every worker shares."""
    if address.kind == "tcp":
        return _bind_tcp(address, config, config.reuse_port)
    if address.kind == "unix":
        return _bind_unix(address, config)
    return _adopt_fd(address.fd, config.backlog, f"--fd {address.fd}")


#: Kernel buffer asked for each HTTP/3 socket, both ways: every QUIC connection of a
#: worker shares the one socket, and at the default (about 208 KiB) a burst of datagrams
#: from many connections overflows it (a drop costs a QUIC retransmission, a stall).
#: The kernel caps it at net.core.rmem_max / wmem_max.
UDP_BUFFER = 4 * 1024 * 1024


def http3_sockets(listening: list[socket.socket]) -> list[socket.socket]:
    """The HTTP/3 (UDP) sockets of the TCP listeners among ``listening`` (--http3)."""
    return [_bind_udp(sock) for sock in listening if sock.family != socket.AF_UNIX]


def http3_slot_sockets(tcp: socket.socket, config: Config, count: int) -> list[socket.socket]:
    """``count`` SO_REUSEPORT HTTP/3 sockets on TCP listener ``tcp``'s address, one per
    worker slot; probed first as :func:`bind_slot_sockets` does."""
    if count == 1:
        return [_bind_udp(tcp)]
    if not config.reuse_port:
        _bind_udp(tcp).close()
    bound: list[socket.socket] = []
    try:
        for _ in range(count):
            bound.append(_bind_udp(tcp, reuse_port=True))
    except BaseException:
        close_listeners(bound)
        raise
    return bound


def _bind_udp(tcp: socket.socket, reuse_port: bool = False) -> socket.socket:
    """The HTTP/3 socket of TCP listener ``tcp``: UDP, the same address (its port resolved)."""
    name = tcp.getsockname()
    address = Address("udp", host=name[0], port=name[1])
    sock = socket.socket(tcp.family, socket.SOCK_DGRAM)
    try:
        if tcp.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UDP_BUFFER)
        sock.bind(name)
    except OSError as exc:
        sock.close()
        raise _bind_error(address, exc) from None
    return sock


def is_quic(sock: socket.socket) -> bool:
    """Whether ``sock`` is an HTTP/3 (UDP) listener."""
    return sock.type == socket.SOCK_DGRAM and sock.family != socket.AF_UNIX


def is_handover(sock: socket.socket) -> bool:
    """Whether ``sock`` is the channel between two workers of an HTTP/3 socket (a unix
    datagram socket; it follows that socket wherever sockets are listed)."""
    return sock.type == socket.SOCK_DGRAM and sock.family == socket.AF_UNIX


def describe(sock: socket.socket, tls: bool = False) -> str:
    """Where a listener serves, as a person would type it: http://127.0.0.1:8000 (https://
    when it serves TLS; an HTTP/3 socket says so after it)."""
    try:
        name = sock.getsockname()
    except OSError:
        return f"fd://{sock.fileno()}"
    if sock.family == socket.AF_UNIX:
        path = name if isinstance(name, str) else name.decode("utf-8", "replace")
        return f"unix:{path}" if path else f"unix:fd://{sock.fileno()}"
    host, port = name[0], name[1]
    scheme = "https" if tls else "http"
    suffix = " (HTTP/3, UDP)" if is_quic(sock) else ""
    if sock.family == socket.AF_INET6:
        return f"{scheme}://[{host}]:{port}{suffix}"
    return f"{scheme}://{host}:{port}{suffix}"


def fixed_server(sock: socket.socket) -> tuple[str, int | None] | None:
    """The ASGI ``server`` of every connection this listener accepts, when the listener
    alone decides it: its address when bound to one (not a wildcard), or its unix socket
    path. None when each connection has its own local address, or it cannot be told: then
    each connection asks its transport, as it must anyway for the client's address."""
    try:
        name = sock.getsockname()
    except OSError:
        return None
    if sock.family == socket.AF_UNIX:
        return (name, None) if isinstance(name, str) and name else None
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    # A scoped (link-local) IPv6 address may be spelled with its zone: asked per connection.
    if sock.family == socket.AF_INET6 and name[3]:
        return None
    host, port = name[0], name[1]
    # All zero bytes: the unspecified address (0.0.0.0 or ::), read without ipaddress.
    unspecified = not any(socket.inet_pton(sock.family, host))
    return None if unspecified else (host, port)


def unix_path(sock: socket.socket) -> str | None:
    """The filesystem path of a unix listener, if it has one."""
    if sock.family != socket.AF_UNIX:
        return None
    try:
        name = sock.getsockname()
    except OSError:
        return None
    path = name if isinstance(name, str) else name.decode("utf-8", "replace")
    return path if path and not path.startswith("\0") else None


def close_listeners(sockets: list[socket.socket]) -> None:
    """Close listeners; remove the unix socket files this process created for them."""
    for sock in sockets:
        path = unix_path(sock)
        with contextlib.suppress(OSError):
            sock.close()
        if path is None or path not in _created:
            continue
        inode, creator = _created[path]
        if creator != os.getpid():
            continue
        del _created[path]
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == inode:
                os.unlink(path)
