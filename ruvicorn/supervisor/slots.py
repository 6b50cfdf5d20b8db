"""Which listening sockets each worker serves.

Unix sockets, inherited descriptors and socket activation are one socket every worker
accepts from. A TCP address instead gets one SO_REUSEPORT socket per worker slot (see
``socket_per_worker``): the kernel spreads new connections evenly over the sockets, where
on one shared socket whichever worker the scheduler runs first takes them.

The master binds them and closes none until the server stops, so connections queued on a
slot's socket wait for the worker that takes the slot over (the replacement after a crash,
a recycle or a reload). The sockets of slots at or past the worker count (after SIGTTOU)
are orphaned: every worker serves them too, so nothing queued there is left unanswered.

HTTP/3 (``Quic``) gets one SO_REUSEPORT UDP socket per slot, as many as workers at start,
whatever ``--socket-per-worker`` says: all of a QUIC connection's datagrams must reach the
worker holding it, and the kernel sends each client's to one socket only while the set of
sockets stays the same, so it never changes (SIGTTIN adds no UDP socket). Each socket has a
handover channel between the slot's successive workers (``ruvicorn.worker.quic``).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field

from ruvicorn import listeners
from ruvicorn.config import Config
from ruvicorn.listeners import Address


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as a container limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def socket_per_worker(config: Config) -> bool:
    """Whether each worker gets sockets of its own. One worker keeps the one plain socket
    (SIGTTIN workers then share it). ``auto`` gives them only to more workers than CPUs:
    there a shared socket splits new connections by the scheduler's whim (2-3x between
    workers), while with a CPU per worker it splits evenly and a socket per worker was
    measured slower for a new connection per request, since connections hashed to a
    worker that is not running wait for it (bench/README.md, "Several workers")."""
    if config.workers <= 1 or config.socket_per_worker == "off":
        return False
    return config.socket_per_worker == "on" or config.workers > usable_cpus()


#: Bytes a worker may have queued for the other worker of its HTTP/3 socket.
HANDOVER_BUFFER = 4 * 1024 * 1024


@dataclass
class Quic:
    """The HTTP/3 sockets of one address, one per slot, and each one's handover channel:
    a unix datagram socket pair, the slot's successive workers taking its ends in turn."""

    sockets: list[socket.socket]
    ends: list[tuple[socket.socket, socket.socket]]

    @classmethod
    def bind(cls, tcp: socket.socket, config: Config, count: int) -> Quic:
        quic = cls(listeners.http3_slot_sockets(tcp, config, count), [])
        try:
            for _ in quic.sockets:
                pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
                quic.ends.append(pair)
                for end in pair:
                    end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, HANDOVER_BUFFER)
        except BaseException:
            quic.close()
            raise
        return quic

    def all(self) -> list[socket.socket]:
        return [*self.sockets, *(end for pair in self.ends for end in pair)]

    def close(self) -> None:
        listeners.close_listeners(self.all())


@dataclass
class Group:
    """The sockets of one address: one shared socket, or one per slot (``address`` set)."""

    sockets: list[socket.socket] = field(default_factory=list)
    address: Address | None = None


class Slots:
    """The master's listeners, grouped by address."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.groups: list[Group] = []
        self.quic: list[Quic] = []

    def bind(self) -> None:
        """Bind every listener the config asks for (or adopt systemd's); all or nothing."""
        config = self.config
        activated = listeners.systemd_sockets(config.backlog)
        per_worker = socket_per_worker(config)
        try:
            if activated is not None:
                self.groups = [Group([sock]) for sock in activated]
            for address in listeners.addresses(config) if activated is None else []:
                if address.kind == "tcp" and per_worker:
                    socks = listeners.bind_slot_sockets(address, config, config.workers)
                    port = socks[0].getsockname()[1]
                    self.groups.append(Group(socks, dataclasses.replace(address, port=port)))
                else:
                    self.groups.append(Group([listeners.bind_address(address, config)]))
            if config.http3:  # UDP sockets on each TCP address, one per slot.
                for tcp in self.first():
                    if tcp.family != socket.AF_UNIX:
                        self.quic.append(Quic.bind(tcp, config, config.workers))
        except BaseException:
            self.close()
            raise

    def all(self) -> list[socket.socket]:
        quic = [sock for group in self.quic for sock in group.all()]
        return [sock for group in self.groups for sock in group.sockets] + quic

    def first(self) -> list[socket.socket]:
        """One socket per address: where the server listens, as people are told."""
        udp = [group.sockets[0] for group in self.quic]
        return [group.sockets[0] for group in self.groups if group.sockets] + udp

    def count(self) -> int:
        """How many slots have sockets of their own (0 when every socket is shared)."""
        return max((len(g.sockets) for g in self.groups if g.address is not None), default=0)

    def ensure(self, count: int) -> None:
        """Bind the sockets of new slots up to ``count`` (more workers than at start)."""
        for group in self.groups:
            if group.address is not None and len(group.sockets) < count:
                more = count - len(group.sockets)
                group.sockets += listeners.bind_slot_sockets(
                    group.address, self.config, more, probe=False
                )

    def serving(self, slot: int, target: int) -> set[int]:
        """The slots a worker in ``slot`` serves while ``target`` workers are wanted: its
        own and the orphaned ones."""
        return {slot, *range(target, self.count())}

    def sockets(self, slots: set[int]) -> list[socket.socket]:
        """The shared sockets and those of ``slots``."""
        return [
            sock
            for group in self.groups
            for i, sock in enumerate(group.sockets)
            if group.address is None or i in slots
        ]

    def of_slots(self, slots: set[int]) -> list[socket.socket]:
        """Only the per-slot sockets of ``slots`` (what a running worker is sent)."""
        return [
            sock
            for group in self.groups
            if group.address is not None
            for i, sock in enumerate(group.sockets)
            if i in slots
        ]

    def quic_count(self) -> int:
        """How many slots have HTTP/3 sockets (the first ones; 0 without --http3)."""
        return len(self.quic[0].sockets) if self.quic else 0

    def quic_serving(self, slot: int, target: int) -> set[int]:
        """The slots whose HTTP/3 sockets a worker in ``slot`` serves while ``target``
        workers are wanted: its own, and each orphaned one whose number is ``slot`` modulo
        ``target``. Unlike a TCP socket, a UDP one is read by one worker (and, while it is
        replaced, its successor): a QUIC connection's datagrams must all reach its worker."""
        count = self.quic_count()
        own = {slot} if slot < count else set()
        return own | {k for k in range(target, count) if k % target == slot}

    def quic_sockets(self, ends: dict[int, int]) -> list[socket.socket]:
        """The HTTP/3 sockets of the slots in ``ends``, each followed by the handover
        channel's end (0 or 1) the worker takes."""
        return [
            sock
            for group in self.quic
            for slot, end in sorted(ends.items())
            for sock in (group.sockets[slot], group.ends[slot][end])
        ]

    def close(self) -> None:
        listeners.close_listeners(self.all())
        self.groups = []
        self.quic = []
