"""The serving half of a worker: the native protocol on already-bound sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from ruvicorn import _native
from ruvicorn.access import AccessLogger
from ruvicorn.config import Config
from ruvicorn.listeners import fixed_server, is_handover, is_quic
from ruvicorn.logs import access_log, error_log
from ruvicorn.supervisor.heartbeat import INTERVAL
from ruvicorn.worker import quic
from ruvicorn.worker.hooks import WorkerHooks
from ruvicorn.worker.pathsend import send_file

#: Most listening sockets one message from the supervisor carries (SCM_MAX_FD).
MAX_RECEIVED = 253
#: How often timeouts are enforced and the heartbeat runs; no connection has its own timer.
TICK_SECONDS = INTERVAL
#: Loop turns from accepting a connection to its protocol's ``connection_made``: one on
#: uvloop, two on the selector loop (its accept task, then the transport's callback),
#: and one to spare.
ATTACH_TURNS = 3


class WorkerServer:
    """Accepts connections for one worker and drains them on the way out."""

    def __init__(
        self,
        config: Config,
        app: Any,
        loop: asyncio.AbstractEventLoop,
        lifespan_state: dict[str, Any] | None,
        hooks: WorkerHooks,
    ) -> None:
        self.config = config
        self.loop = loop
        self.hooks = hooks
        log_access = config.access_log and access_log.isEnabledFor(logging.INFO)
        # The native side reads every setting from ``config``; only live objects go here.
        self.state = _native.ServerState(
            config,
            app=app,
            event_loop=loop,
            error_log=error_log,
            access_log=AccessLogger(config.access_log_format) if log_access else None,
            lifespan_state=lifespan_state,
            request_budget=hooks.request_limit,
            on_limit=self._budget_spent,
            pathsend=send_file,
            metrics=hooks.metrics,
        )
        self.servers: list[asyncio.Server] = []
        #: The HTTP/3 sockets' transports: they serve until the drain ends.
        self.quic: list[asyncio.DatagramTransport] = []
        self.sockets: list[socket.socket] = []
        self.retire = asyncio.Event()
        self._ticker: asyncio.TimerHandle | None = None
        #: Where the supervisor sends more listeners (``hooks.listener_channel``), or None.
        self._channel: socket.socket | None = None
        self.accepting = False

    async def start(self, sockets: list[socket.socket]) -> None:
        self.accepting = True
        await self._serve(sockets)
        if self.hooks.listener_channel >= 0:
            self._channel = socket.fromfd(
                self.hooks.listener_channel, socket.AF_UNIX, socket.SOCK_STREAM
            )
            self._channel.setblocking(False)
            self.loop.add_reader(self._channel.fileno(), self._receive_listeners)
        self._ticker = self.loop.call_later(TICK_SECONDS, self._tick)

    async def _serve(self, sockets: list[socket.socket]) -> None:
        self.sockets += sockets
        for i, sock in enumerate(sockets):
            if is_handover(sock):
                continue
            if is_quic(sock):
                # Its handover channel, when it has one, comes right after it.
                after = sockets[i + 1] if i + 1 < len(sockets) else None
                channel = after if after is not None and is_handover(after) else None
                self.quic.append(await quic.serve(self.state, self.loop, sock, channel))
                continue
            factory = self.state.listener(fixed_server(sock))
            if sock.family == socket.AF_UNIX:
                server = await self.loop.create_unix_server(
                    factory, sock=sock, backlog=self.config.backlog
                )
            else:
                server = await self.loop.create_server(
                    factory, sock=sock, backlog=self.config.backlog
                )
            self.servers.append(server)
            if not self.accepting:  # stopped while this one was being set up
                server.close()

    def _receive_listeners(self) -> None:
        """The supervisor sent sockets to serve as well (orphaned worker slots)."""
        assert self._channel is not None
        try:
            data, fds, _, _ = socket.recv_fds(self._channel, 1, MAX_RECEIVED)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        sockets = [socket.socket(fileno=fd) for fd in fds]
        if not data:
            self._close_channel()
        if not self.accepting:
            for sock in sockets:
                sock.close()
        elif sockets:
            task = self.loop.create_task(self._serve(sockets))
            task.add_done_callback(_log_failure)

    def _close_channel(self) -> None:
        if self._channel is not None:
            self.loop.remove_reader(self._channel.fileno())
            self._channel.close()
            self._channel = None

    def _tick(self) -> None:
        late = self.loop.time() - self._ticker.when() if self._ticker is not None else 0.0
        self._ticker = self.loop.call_later(TICK_SECONDS, self._tick)
        try:
            self.state.sweep()
        except Exception:  # a sweep failure must not stop the heartbeat
            error_log.exception("Timeout sweep failed")
        if self.hooks.on_tick is not None and self.hooks.on_tick(max(0.0, late)):
            self.retire.set()

    def _budget_spent(self) -> None:
        """Run by the native protocol when the request that spends the budget arrives (its
        connections already drain): stop accepting now, so the kernel queues new
        connections for the other workers and the replacement, then retire."""
        self._stop_accepting_now()
        if self.hooks.on_recycle is not None:
            self.hooks.on_recycle()
        self.retire.set()

    def _selector_loop(self) -> bool:
        return isinstance(self.loop, asyncio.selector_events.BaseSelectorEventLoop)

    def _stop_accepting_now(self) -> None:
        self.accepting = False
        self._close_channel()
        if self._selector_loop():
            for server in self.servers:
                for sock in server.sockets:
                    self.loop.remove_reader(sock.fileno())
        else:
            for server in self.servers:
                server.close()

    async def stop_accepting(self, last: bool = False) -> None:
        """Close this worker's copy of every listener: the kernel keeps queued connections
        for the processes that still hold the socket.

        A loop attaches an accepted connection in a callback (uvloop) or task (the stdlib
        selector loop) of its own, so a connection accepted in this loop turn is not yet
        counted; those get to run before the drain counts what it must wait for. The
        selector loop would also orphan and reset one accepted just before ``close()``, so
        there accepting stops first and the server is closed only after them.

        ``last``: the service is stopping, so this may be the listener's last holder, whose
        close resets every connection still queued. Those are accepted first (and answered
        with ``connection: close``); from the close on, clients are refused.
        """
        selector = self._selector_loop()
        # Other loops detach the sockets on close(), so what is queued is taken first.
        queued = self._take_queued() if last and not selector else []
        self._stop_accepting_now()
        for _ in range(ATTACH_TURNS):
            await asyncio.sleep(0)
        if selector and last:
            queued = self._take_queued()
        for server in self.servers:
            server.close()
        if queued:
            attach = [self.loop.connect_accepted_socket(self.state, sock) for sock in queued]
            for failed in await asyncio.gather(*attach, return_exceptions=True):
                if isinstance(failed, Exception):
                    error_log.debug("A queued connection could not be attached: %s", failed)

    def _take_queued(self) -> list[socket.socket]:
        """Accept, without waiting, every connection the kernel has queued (bounded)."""
        taken: list[socket.socket] = []
        for sock in self.sockets:
            if sock.type != socket.SOCK_STREAM:
                continue
            try:
                sock.setblocking(False)
                while len(taken) < self.config.backlog:
                    conn, _ = sock.accept()
                    conn.setblocking(False)
                    taken.append(conn)
            except OSError:  # nothing queued (EAGAIN), the listener is gone, no descriptors
                continue
        return taken

    async def shutdown(
        self,
        timeout: float,
        spare: asyncio.Task[Any] | None = None,
        restart: bool = False,
        finish_tasks: bool = True,
    ) -> bool:
        """Let accepted connections finish within ``timeout``; True when none was cut.

        With ``finish_tasks``, every other task of the loop still running afterwards is
        cancelled, except ``spare`` (the lifespan task, which must live until lifespan
        shutdown): right for a worker, whose loop runs nothing else; a server embedded in
        someone's loop passes False. ``restart`` tells clients this worker is being
        replaced rather than the service going away.
        """
        await self.stop_accepting(last=not restart)
        self.state.drain(restart)
        deadline = self.loop.time() + timeout
        while self.state.connections and self.loop.time() < deadline:
            self.state.sweep()
            await asyncio.sleep(0.05)
        clean = self.state.connections == 0
        if not clean:
            error_log.warning(
                "Graceful shutdown timed out: closing %d connection(s)", self.state.connections
            )
            self.state.close_all()
        for transport in self.quic:
            transport.close()
        if finish_tasks:
            await self._finish_tasks(spare)
        return clean

    def stop_ticking(self) -> None:
        """The last step of a stop: until here the heartbeat goes on, so the master can
        tell a worker still stopping from one whose loop hung."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    async def _finish_tasks(self, spare: asyncio.Task[Any] | None) -> None:
        """Give app tasks a moment to see the disconnect, then cancel what is left."""
        keep = {asyncio.current_task(), spare}
        pending = [t for t in asyncio.all_tasks(self.loop) if t not in keep]
        if not pending:
            return
        _, still_running = await asyncio.wait(pending, timeout=0.5)
        for task in still_running:
            task.cancel()
        if still_running:
            await asyncio.wait(still_running, timeout=1.0)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        error_log.error("Could not serve a listener the master sent: %s", task.exception())
