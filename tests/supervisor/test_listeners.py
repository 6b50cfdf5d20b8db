"""Unit tests for listener parsing, binding, describing and socket activation."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ruvicorn import listeners
from ruvicorn.config import Config, ConfigError
from ruvicorn.supervisor import slots as slots_module
from ruvicorn.supervisor.slots import Slots


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1:8000", listeners.Address("tcp", host="127.0.0.1", port=8000)),
        ("tcp:127.0.0.1:9", listeners.Address("tcp", host="127.0.0.1", port=9)),
        ("tcp://localhost:80", listeners.Address("tcp", host="localhost", port=80)),
        ("[::1]:8001", listeners.Address("tcp", host="::1", port=8001)),
        ("tcp:[::]:0", listeners.Address("tcp", host="::", port=0)),
        (":8000", listeners.Address("tcp", host="0.0.0.0", port=8000)),
        ("unix:/tmp/a.sock", listeners.Address("unix", path="/tmp/a.sock")),
        ("unix:///tmp/a.sock", listeners.Address("unix", path="/tmp/a.sock")),
        ("fd://3", listeners.Address("fd", fd=3)),
    ],
)
def test_parse_address(spec: str, expected: listeners.Address) -> None:
    assert listeners.parse_address(spec) == expected


@pytest.mark.parametrize(
    "spec", ["localhost", "host:port", "1.2.3.4:70000", "::1:80", "[::1]80", "unix:", "fd://x"]
)
def test_parse_address_rejects(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        listeners.parse_address(spec)
    assert "\n" not in str(info.value)


def test_host_port_only_without_other_binds(tmp_path: Path) -> None:
    assert listeners.addresses(Config(host="::1", port=5)) == [
        listeners.Address("tcp", host="::1", port=5)
    ]
    uds = str(tmp_path / "s")
    assert listeners.addresses(Config(uds=uds)) == [listeners.Address("unix", path=uds)]
    got = listeners.addresses(Config(bind=("127.0.0.1:1",), uds=uds))
    assert [a.kind for a in got] == ["tcp", "unix"]


def test_bind_tcp_port_zero_and_describe() -> None:
    socks = listeners.bind_listeners(Config(host="127.0.0.1", port=0))
    try:
        assert len(socks) == 1
        port = socks[0].getsockname()[1]
        assert port > 0
        assert listeners.describe(socks[0]) == f"http://127.0.0.1:{port}"
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.close()
    finally:
        listeners.close_listeners(socks)


def _sysctl(name: str) -> int:
    return int(Path(f"/proc/sys/net/core/{name}").read_text())


def test_http3_socket_has_the_tcp_port_and_large_buffers() -> None:
    """Every QUIC connection of a worker shares one UDP socket: its buffers are raised up
    to what the kernel allows (it reports twice the size granted)."""
    tcp = listeners.bind_listeners(Config(host="127.0.0.1", port=0))
    udp = listeners.http3_sockets(tcp)
    try:
        assert [s.getsockname() for s in udp] == [s.getsockname() for s in tcp]
        assert listeners.is_quic(udp[0]) and not listeners.is_quic(tcp[0])
        for option, cap in ((socket.SO_RCVBUF, "rmem_max"), (socket.SO_SNDBUF, "wmem_max")):
            granted = min(listeners.UDP_BUFFER, _sysctl(cap)) * 2
            assert udp[0].getsockopt(socket.SOL_SOCKET, option) == granted
    finally:
        listeners.close_listeners(tcp + udp)


def test_bind_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socks = listeners.bind_listeners(Config(bind=("[::1]:0",)))
    except ConfigError as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    try:
        assert listeners.describe(socks[0]).startswith("http://[::1]:")
    finally:
        listeners.close_listeners(socks)


def test_fixed_server_is_a_specific_address_or_a_unix_path(tmp_path: Path) -> None:
    specs = ["127.0.0.1:0", "0.0.0.0:0", f"unix:{tmp_path / 'app.sock'}"]
    socks = listeners.bind_listeners(Config(bind=tuple(specs)))
    try:
        specific, wildcard, unix = socks
        assert listeners.fixed_server(specific) == ("127.0.0.1", specific.getsockname()[1])
        # Each connection to a wildcard listener has its own local address.
        assert listeners.fixed_server(wildcard) is None
        assert listeners.fixed_server(unix) == (str(tmp_path / "app.sock"), None)
    finally:
        listeners.close_listeners(socks)


def test_fixed_server_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socks = listeners.bind_listeners(Config(bind=("[::1]:0", "[::]:0")))
    except ConfigError as exc:
        pytest.skip(f"IPv6 unavailable: {exc}")
    try:
        assert listeners.fixed_server(socks[0]) == ("::1", socks[0].getsockname()[1])
        assert listeners.fixed_server(socks[1]) is None
    finally:
        listeners.close_listeners(socks)


def test_address_in_use_is_one_line() -> None:
    first = listeners.bind_listeners(Config(host="127.0.0.1", port=0))
    port = first[0].getsockname()[1]
    try:
        with pytest.raises(ConfigError) as info:
            listeners.bind_listeners(Config(host="127.0.0.1", port=port))
        assert str(info.value) == f"cannot bind 127.0.0.1:{port}: address already in use"
    finally:
        listeners.close_listeners(first)


def test_partial_failure_closes_what_was_bound(tmp_path: Path) -> None:
    blocker = listeners.bind_listeners(Config(host="127.0.0.1", port=0))
    port = blocker[0].getsockname()[1]
    uds = tmp_path / "s.sock"
    try:
        with pytest.raises(ConfigError):
            listeners.bind_listeners(Config(bind=(f"unix:{uds}", f"127.0.0.1:{port}")))
        assert not uds.exists()
    finally:
        listeners.close_listeners(blocker)


def test_unix_socket_created_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    socks = listeners.bind_listeners(Config(uds=str(path)))
    assert path.exists()
    assert listeners.describe(socks[0]) == f"unix:{path}"
    listeners.close_listeners(socks)
    assert not path.exists()


def test_stale_unix_socket_replaced(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # The file stays behind, nothing listens: as after a crash.
    assert path.exists()
    socks = listeners.bind_listeners(Config(uds=str(path)))
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))
        client.close()
    finally:
        listeners.close_listeners(socks)


def test_live_unix_socket_not_stolen(tmp_path: Path) -> None:
    path = tmp_path / "live.sock"
    live = listeners.bind_listeners(Config(uds=str(path)))
    try:
        with pytest.raises(ConfigError, match="another server is listening"):
            listeners.bind_listeners(Config(uds=str(path)))
        assert path.exists()
    finally:
        listeners.close_listeners(live)


def test_unix_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("keep me")
    with pytest.raises(ConfigError, match="not a socket"):
        listeners.bind_listeners(Config(uds=str(path)))
    assert path.read_text() == "keep me"


def test_forked_child_does_not_remove_socket_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sock"
    socks = listeners.bind_listeners(Config(uds=str(path)))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        listeners.close_listeners(socks)
        os._exit(0)
    os.waitpid(pid, 0)
    assert path.exists()
    listeners.close_listeners(socks)
    assert not path.exists()


def test_fd_listener_adopted() -> None:
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.bind(("127.0.0.1", 0))  # Not listening yet: adopting makes it listen.
    port = raw.getsockname()[1]
    socks = listeners.bind_listeners(Config(fd=raw.fileno()))
    try:
        assert socks[0].fileno() == raw.fileno()
        assert listeners.describe(socks[0]) == f"http://127.0.0.1:{port}"
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        raw.detach()
        listeners.close_listeners(socks)


def test_fd_that_is_not_a_socket(tmp_path: Path) -> None:
    with open(tmp_path / "f", "w") as handle, pytest.raises(ConfigError, match="not"):
        listeners.bind_listeners(Config(fd=handle.fileno()))


def test_systemd_activation_in_subprocess() -> None:
    """LISTEN_FDS/LISTEN_PID sockets replace --host/--port and the variables are unset."""
    parent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    parent.bind(("127.0.0.1", 0))
    parent.listen(8)
    port = parent.getsockname()[1]
    script = textwrap.dedent(
        """
        import os, socket, sys
        os.dup2(int(sys.argv[1]), 3)  # Where systemd puts the first socket.
        from ruvicorn import listeners
        from ruvicorn.config import Config
        os.environ["LISTEN_PID"] = str(os.getpid())
        socks = listeners.bind_listeners(Config(host="127.0.0.1", port=1))
        print(len(socks), listeners.describe(socks[0]), "LISTEN_FDS" in os.environ,
              "LISTEN_FDNAMES" in os.environ)
        conn, _ = socks[0].accept()
        conn.sendall(b"hi")
        conn.close()
        """
    )
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_FDNAMES="web")

    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(parent.fileno())],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        pass_fds=(parent.fileno(),),
    )
    try:
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.settimeout(10)
        assert client.recv(2) == b"hi"
        client.close()
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
        parent.close()
    assert out.split() == ["1", f"http://127.0.0.1:{port}", "False", "False"]


def test_systemd_variables_for_another_pid_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 100000))
    assert listeners.systemd_sockets() is None
    assert os.environ["LISTEN_FDS"] == "1"


def _ports(socks: list[socket.socket]) -> set[int]:
    return {sock.getsockname()[1] for sock in socks}


def test_slot_sockets_share_one_port_and_grow() -> None:
    slots = Slots(Config(host="127.0.0.1", port=0, workers=3, socket_per_worker="on"))
    slots.bind()
    try:
        assert slots.count() == 3 and len(_ports(slots.all())) == 1
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in slots.all())
        slots.ensure(5)
        assert slots.count() == 5 and len(_ports(slots.all())) == 1
        assert slots.first() == slots.all()[:1]
        # A worker serves its own slot's socket and the orphaned ones (past the target).
        assert slots.serving(1, target=3) == {1, 3, 4}
        assert slots.sockets({1, 3}) == [slots.all()[1], slots.all()[3]]
    finally:
        slots.close()
    assert slots.all() == []


def test_http3_gets_a_udp_socket_per_slot_and_a_handover_channel_each(tmp_path: Path) -> None:
    config = Config(
        host="127.0.0.1", port=0, workers=3, http3=True, ssl_certfile=str(tmp_path / "c.pem")
    )
    slots = Slots(config)
    slots.bind()
    try:
        (quic,) = slots.quic
        udp = quic.sockets
        assert slots.quic_count() == 3 and _ports(udp) == _ports(slots.first()[:1])
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in udp)
        assert slots.first()[-1] is udp[0]
        # More workers (SIGTTIN) bind more TCP slots, never another UDP socket: the kernel
        # would send clients' datagrams to other sockets than before.
        slots.ensure(5)
        assert slots.quic_count() == 3
        assert slots.quic_serving(4, target=5) == set()
        # Fewer workers (SIGTTOU): each orphaned UDP socket goes to one worker.
        assert slots.quic_serving(0, target=3) == {0}
        assert [slots.quic_serving(n, target=2) for n in (0, 1)] == [{0, 2}, {1}]
        assert slots.quic_serving(0, target=1) == {0, 1, 2}
        # A worker gets each socket followed by its end of the slot's channel.
        end = quic.ends[1][1]
        assert slots.quic_sockets({1: 1}) == [udp[1], end]
        quic.ends[1][0].send(b"handed over")
        assert end.recv(64) == b"handed over"
        assert all(s in slots.all() for s in [*udp, *quic.ends[2]])
    finally:
        slots.close()
    assert slots.all() == [] and slots.quic_count() == 0


def test_slot_sockets_refuse_a_port_another_server_holds() -> None:
    first = Slots(Config(host="127.0.0.1", port=0, workers=2, socket_per_worker="on"))
    first.bind()
    port = first.all()[0].getsockname()[1]
    try:
        with pytest.raises(ConfigError) as info:
            Slots(Config(host="127.0.0.1", port=port, workers=2, socket_per_worker="on")).bind()
        assert str(info.value) == f"cannot bind 127.0.0.1:{port}: address already in use"
        # --reuse-port: sharing the port with another process is what is asked for.
        shared = Slots(Config(host="127.0.0.1", port=port, workers=2, reuse_port=True))
        shared.bind()
        assert _ports(shared.all()) == {port}
        shared.close()
    finally:
        first.close()


@pytest.mark.parametrize(
    ("workers", "choice", "cpus", "expected"),
    [
        (1, "on", 1, False),
        (2, "off", 1, False),
        (2, "on", 8, True),
        (2, "auto", 2, False),
        (3, "auto", 2, True),
    ],
)
def test_socket_per_worker_auto_gives_sockets_to_more_workers_than_cpus(
    monkeypatch: pytest.MonkeyPatch, workers: int, choice: str, cpus: int, expected: bool
) -> None:
    monkeypatch.setattr(slots_module, "usable_cpus", lambda: cpus)
    config = Config(workers=workers, socket_per_worker=choice)
    assert slots_module.socket_per_worker(config) is expected


def test_unix_sockets_one_worker_and_no_socket_per_worker_stay_shared(tmp_path: Path) -> None:
    config = Config(
        bind=(f"unix:{tmp_path / 's.sock'}", "127.0.0.1:0"), workers=2, socket_per_worker="on"
    )
    slots = Slots(config)
    slots.bind()
    try:
        assert slots.count() == 2 and len(slots.all()) == 3
        unix, tcp = slots.sockets({0}), slots.sockets({1})
        assert unix[0] is tcp[0] and unix[0].family == socket.AF_UNIX and unix[1] is not tcp[1]
    finally:
        slots.close()
    for config in (
        Config(host="127.0.0.1", port=0, workers=4, socket_per_worker="off"),
        Config(host="127.0.0.1", port=0, workers=1),
    ):
        one = Slots(config)
        one.bind()
        try:
            assert one.count() == 0 and len(one.all()) == 1
            assert not one.all()[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
            assert one.sockets(one.serving(2, target=4)) == one.all()
        finally:
            one.close()
