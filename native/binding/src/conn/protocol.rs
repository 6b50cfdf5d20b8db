//! `HttpProtocol`: the asyncio Protocol of every connection. It owns the connection's
//! [`Conn`] behind one mutex and turns asyncio's callbacks into events on it.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

use super::effects::resolve;
use super::{ws, Access, Conn, Swept, Tls};
use crate::asgi::cycle::{callables, RequestCycle, SpareCycle};
use crate::asgi::runner::{spawn_app, AppRunner, Serves};
use crate::asgi::scope::{build_scope, tls_extension, Http3Head, Peer};
use crate::key;
use crate::metrics::{method_index, HTTP1};
use crate::server::ServerState;
use ruvicorn_core::http1::connection::Feed;
use ruvicorn_core::http1::request::RequestHead;
use ruvicorn_core::http1::target::split_target;

#[pyclass(frozen, module = "ruvicorn._native")]
pub struct HttpProtocol {
    server: Py<ServerState>,
    /// The scope's `server` when the listener already knows it (see
    /// `ServerState::listener`); None asks the transport in connection_made.
    listening: Option<Py<PyTuple>>,
    /// Who is at each end; set once, so it needs no lock: in connection_made, or with
    /// `--proxy-protocol` once the PROXY header is read.
    pub(super) peer: OnceLock<Peer>,
    /// The `tls` extension, built once after the handshake and shared by every scope.
    tls_extension: OnceLock<Py<PyDict>>,
    conn: Mutex<Conn>,
    /// One QUIC connection of a `QuicEndpoint` (its streams are HTTP/3).
    pub(super) quic: bool,
    /// A QUIC client's address since it moved (migration, NAT rebinding): the `peer` of
    /// the requests it starts from then on.
    moved: Mutex<Option<Arc<Peer>>>,
    /// A step of the app of one of this connection's HTTP/1.1 exchanges is running
    /// (`cork.rs`).
    pub(super) app_stepping: AtomicBool,
    /// The connection holds output back (`cork.rs`): read without the lock.
    pub(super) corked: AtomicBool,
    /// The last HTTP/1.1 exchange's cycle, for the next one (`SpareCycle`); dropped when
    /// the connection is lost, as it refers back to this protocol.
    spare_cycle: Mutex<Option<SpareCycle>>,
}

/// `(host, port)` from a socket address: an IPv4 one as it is, an IPv6 one's first two.
fn to_addr(py: Python<'_>, info: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyTuple>>> {
    if let Ok(tuple) = info.cast_exact::<PyTuple>() {
        if tuple.len() == 2 {
            return Ok(Some(tuple.clone().unbind()));
        }
    }
    if let Ok(tuple) = info.cast::<PyTuple>() {
        if tuple.len() >= 2 {
            let pair = [tuple.get_item(0)?, tuple.get_item(1)?];
            return Ok(Some(PyTuple::new(py, pair)?.unbind()));
        }
    }
    Ok(None)
}

/// The scope's `server` from the transport: `(host, port)`, a unix socket's `(path, None)`.
fn server_addr(py: Python<'_>, transport: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyTuple>>> {
    let sockname = transport.call_method1(key!(py, "get_extra_info"), (key!(py, "sockname"),))?;
    Ok(match to_addr(py, &sockname)? {
        Some(tuple) => Some(tuple),
        None if sockname.is_instance_of::<PyString>() => {
            Some(PyTuple::new(py, [sockname, py.None().into_bound(py)])?.unbind())
        }
        None => None,
    })
}

impl HttpProtocol {
    pub fn new(server: Py<ServerState>, listening: Option<Py<PyTuple>>) -> PyResult<Self> {
        let settings = &server.get().settings;
        let limits = settings.limits.clone();
        let tls = match &settings.tls {
            Some(tls) => {
                Some(Box::new(Tls::new(tls.config.clone()).map_err(|err| {
                    PyRuntimeError::new_err(format!("TLS: {err}"))
                })?))
            }
            None => None,
        };
        Ok(Self {
            server,
            listening,
            peer: OnceLock::new(),
            tls_extension: OnceLock::new(),
            conn: Mutex::new(Conn::new(limits, tls)),
            quic: false,
            moved: Mutex::new(None),
            app_stepping: AtomicBool::new(false),
            corked: AtomicBool::new(false),
            spare_cycle: Mutex::new(None),
        })
    }

    /// The protocol of one QUIC connection: QUIC carries its own TLS.
    pub(crate) fn new_quic(server: Py<ServerState>) -> Self {
        let limits = server.get().settings.limits.clone();
        Self {
            server,
            listening: None,
            peer: OnceLock::new(),
            tls_extension: OnceLock::new(),
            conn: Mutex::new(Conn::new(limits, None)),
            quic: true,
            moved: Mutex::new(None),
            app_stepping: AtomicBool::new(false),
            corked: AtomicBool::new(false),
            spare_cycle: Mutex::new(None),
        }
    }

    /// The QUIC client is at `client` now (the server's side stays as it was).
    pub(crate) fn moved_to(&self, py: Python<'_>, client: Py<PyTuple>) -> PyResult<()> {
        let server = self
            .peer
            .get()
            .and_then(|p| p.server.as_ref())
            .map(|s| s.clone_ref(py));
        let proxies = self.state().settings.proxies.as_ref();
        let peer = Peer::new(py, Some(client), server, proxies)?;
        *self
            .moved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(peer));
        Ok(())
    }

    /// The connection's `tls` extension (None on cleartext). Built on the first request,
    /// which comes after the handshake, then shared.
    fn tls_extension<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(tls) = &self.state().settings.tls else {
            return Ok(None);
        };
        if let Some(ext) = self.tls_extension.get() {
            return Ok(Some(ext.bind(py).clone()));
        }
        let Some(info) = self.lock()?.tls_info() else {
            return Ok(None);
        };
        let ext = tls_extension(py, &tls.server_cert, info)?;
        let _ = self.tls_extension.set(ext.clone().unbind());
        Ok(Some(ext))
    }

    /// The lock is only ever contended by a re-entrant call, which is a bug: report it
    /// rather than deadlock.
    pub(crate) fn lock(&self) -> PyResult<MutexGuard<'_, Conn>> {
        self.conn
            .try_lock()
            .map_err(|_| PyRuntimeError::new_err("ruvicorn protocol re-entered while busy"))
    }

    fn spare_cycle(&self) -> MutexGuard<'_, Option<SpareCycle>> {
        self.spare_cycle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn state(&self) -> &ServerState {
        self.server.get()
    }

    pub(crate) fn server(&self) -> &Py<ServerState> {
        &self.server
    }

    /// The client's host for log lines.
    pub(super) fn client_name(&self, py: Python<'_>) -> String {
        let peer = self.peer.get().and_then(|p| p.client_host(py));
        peer.unwrap_or_else(|| "unix socket".to_owned())
    }

    /// Build the scope and run the app for `head` (exchange `seq`) in its own asyncio Task.
    pub(super) fn start_app(slf: &Bound<'_, Self>, head: &RequestHead, seq: u64) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let state = this.state();
        state.count_request(py);
        let target = match split_target(head.method(), head.target()) {
            Ok(target) => target,
            Err(err) => {
                return Self::decide(slf, |conn, fx| {
                    conn.after_feed(Feed::Refused(err), state, fx);
                })
            }
        };
        let websocket = ws::is_upgrade(state, head);
        let peer = this
            .peer
            .get()
            .ok_or_else(|| PyRuntimeError::new_err("no peer"))?;
        let tls = this.tls_extension(py)?;
        let scope = build_scope(
            py,
            state,
            peer,
            head,
            &target,
            websocket.is_some(),
            tls.as_ref(),
        )?;
        if let Some(access) = Self::access_record(state, &scope, head.method())? {
            this.lock()?.access = Some(access);
        }
        if state.over_capacity() {
            Self::decide(slf, |conn, fx| conn.refuse(503, state, fx))?;
            return warn_overload(py, state);
        }
        if let Some(settings) = websocket {
            return ws::start(slf, head, &scope, seq, settings);
        }
        Self::run_cycle(slf, scope, seq, false)
    }

    /// The request's record, when access logging or metrics are on. The scope holds what
    /// the app sees (the forwarded client behind a trusted proxy); the copy keeps it as it
    /// arrived.
    fn access_record(
        state: &ServerState,
        scope: &Bound<'_, PyDict>,
        method: &[u8],
    ) -> PyResult<Option<Box<Access>>> {
        if state.access_log.is_none() && state.metrics.is_none() {
            return Ok(None);
        }
        let logged = match state.access_log {
            Some(_) => Some(scope.copy()?.unbind()),
            None => None,
        };
        Ok(Some(Box::new(Access::new(logged, method_index(method)))))
    }

    /// Run the app of HTTP exchange (or HTTP/2 stream) `seq` in its own asyncio Task; a
    /// stream (`stream`) keeps its Task, to cancel when the client resets it.
    fn run_cycle(
        slf: &Bound<'_, Self>,
        scope: Bound<'_, PyDict>,
        seq: u64,
        stream: bool,
    ) -> PyResult<()> {
        let py = slf.py();
        let state = slf.get().state();
        let (callables, serves) = if stream {
            let cycle = Bound::new(py, RequestCycle::new(slf.clone().unbind(), seq))?;
            (callables(cycle.as_any())?, Serves::Stream)
        } else {
            // The lock is not held while the spare is judged, made or freed.
            let spare = slf.get().spare_cycle().take();
            let (callables, spare) = SpareCycle::take_for(spare, slf, seq)?;
            let displaced = slf.get().spare_cycle().replace(spare);
            drop(displaced);
            (callables, Serves::Http1Exchange)
        };
        let spawned = spawn_app(state, scope, callables, |awaitable| {
            AppRunner::new(awaitable, slf.clone().unbind(), seq, serves)
        });
        match spawned {
            Ok(Some(task)) if stream => Self::keep_stream_task(slf, seq, &task),
            Ok(_) => Ok(()),
            Err(error) => RequestCycle::app_finished(slf, seq, Some(error)),
        }
    }

    /// Stream `seq` keeps its app's Task while the app runs; a stream the client reset
    /// meanwhile has it cancelled now.
    pub(crate) fn keep_stream_task(
        slf: &Bound<'_, Self>,
        seq: u64,
        task: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        if task.call_method0(key!(py, "done"))?.is_truthy()? {
            return Ok(());
        }
        let task = task.clone().unbind();
        Self::decide(slf, |conn, fx| conn.h2_keep_task(seq, task, fx))
    }

    /// Build the scope of HTTP/2 stream `seq` and run its app in its own asyncio Task.
    pub(super) fn start_stream_app(
        slf: &Bound<'_, Self>,
        head: &ruvicorn_core::http2::RequestHead,
        seq: u64,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let state = this.state();
        state.count_request(py);
        let Ok(target) = split_target(head.method.as_bytes(), head.target.as_bytes()) else {
            return Self::decide(slf, |conn, fx| conn.h2_refuse(seq, 400, fx));
        };
        let moved = if this.quic {
            this.moved
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        } else {
            None
        };
        let peer = match &moved {
            Some(peer) => peer,
            None => this
                .peer
                .get()
                .ok_or_else(|| PyRuntimeError::new_err("no peer"))?,
        };
        let tls = this.tls_extension(py)?;
        let scope = if this.quic {
            build_scope(
                py,
                state,
                peer,
                &Http3Head(head),
                &target,
                false,
                tls.as_ref(),
            )?
        } else {
            build_scope(py, state, peer, head, &target, false, tls.as_ref())?
        };
        if let Some(extensions) = scope.get_item(key!(py, "extensions"))? {
            extensions.set_item(key!(py, "http.response.trailers"), PyDict::new(py))?;
        }
        if let Some(access) = Self::access_record(state, &scope, head.method.as_bytes())? {
            this.lock()?.h2_keep_access(seq, access);
        }
        if state.over_capacity() {
            Self::decide(slf, |conn, fx| conn.h2_refuse(seq, 503, fx))?;
            return warn_overload(py, state);
        }
        Self::run_cycle(slf, scope, seq, true)
    }

    /// Called by the worker's sweeper: enforce the head and idle deadlines, the request
    /// body and send timeouts, and the WebSocket pings.
    pub fn check_deadline(slf: &Bound<'_, Self>, now: Instant) -> PyResult<()> {
        let this = slf.get();
        // A busy connection is checked on the next sweep.
        if this.conn.try_lock().is_err() {
            return Ok(());
        }
        let state = this.state();
        // QUIC has its own flow control: its transport never pauses writing.
        let send_timeout = state.settings.send_timeout.filter(|_| !this.quic);
        let at = match Self::decide(slf, |conn, fx| conn.sweep(now, send_timeout, state, fx))? {
            Swept::Wake(waiter) => return ws::wake(slf, waiter),
            Swept::IdlePast(at) => at,
        };
        let transport = this.lock()?.transport(slf.py());
        // A request already in the socket buffer is read (and answered) on the loop's next
        // turn: closing now would lose it.
        if transport.is_some_and(|t| input_pending(t.bind(slf.py()))) {
            return Ok(());
        }
        Self::decide(slf, |conn, fx| conn.close_idle(at, fx))
    }

    /// Graceful stop of this connection: its next response says `connection: close`
    /// (requests already received are answered first), and an idle one lingers briefly so
    /// a request already on the way is answered rather than lost, then half-closes. A
    /// WebSocket is closed with the shutdown close code.
    pub fn drain(slf: &Bound<'_, Self>) -> PyResult<()> {
        let state = slf.get().state();
        let wake = Self::decide(slf, |conn, fx| conn.drain(state, fx))?;
        ws::wake(slf, wake)
    }

    /// The worker gives up on the connection (the graceful timeout ran out): abort, as
    /// close() would wait for a client that stopped reading.
    pub fn force_close(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::decide(slf, Conn::cut)
    }
}

/// A request was answered 503 for `--limit-concurrency`: the warning, at most once a second.
fn warn_overload(py: Python<'_>, state: &ServerState) -> PyResult<()> {
    if let Some(line) = state.overload_warning(Instant::now()) {
        let log = state.error_log.bind(py);
        log.call_method1(key!(py, "warning"), (line,))?;
    }
    Ok(())
}

/// Whether bytes wait unread in the connection's socket (peeked, never consumed). Any
/// failure (no socket, a transport without one) reads as no.
fn input_pending(transport: &Bound<'_, PyAny>) -> bool {
    let py = transport.py();
    let peek = || -> PyResult<bool> {
        let info = transport.call_method1(key!(py, "get_extra_info"), ("socket",))?;
        if info.is_none() {
            return Ok(false);
        }
        let fd: i32 = info.call_method0("fileno")?.extract()?;
        let socket = py.import("socket")?;
        let flags: i32 = socket.getattr("MSG_PEEK")?.extract::<i32>()?
            | socket.getattr("MSG_DONTWAIT")?.extract::<i32>()?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("fileno", fd)?;
        // A second socket object on the same descriptor, detached again so it never
        // closes it.
        let sock = socket.getattr("socket")?.call((), Some(&kwargs))?;
        let peeked = sock.call_method1("recv", (1, flags));
        sock.call_method0("detach")?;
        match peeked {
            Ok(data) => Ok(data.len()? > 0),
            Err(_) => Ok(false),
        }
    };
    peek().unwrap_or(false)
}

#[pymethods]
impl HttpProtocol {
    fn connection_made(slf: &Bound<'_, Self>, transport: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let state = this.state();
        let peername =
            transport.call_method1(key!(py, "get_extra_info"), (key!(py, "peername"),))?;
        let client = to_addr(py, &peername)?;
        let server = match &this.listening {
            Some(address) => Some(address.clone_ref(py)),
            None => server_addr(py, &transport)?,
        };
        let peer = Peer::new(py, client, server, state.settings.proxies.as_ref())?;
        let id = state.register(slf.clone().unbind());
        this.lock()?.made(id, transport.unbind(), state);
        if let Some(allowed) = &state.settings.proxy_protocol {
            Self::expect_proxy_header(slf, allowed, peer)?;
        } else if this.peer.set(peer).is_err() {
            return Err(PyRuntimeError::new_err("connection_made called twice"));
        }
        if let Some(metrics) = &state.metrics {
            metrics.connection(HTTP1, true);
        }
        Ok(())
    }

    fn data_received(slf: &Bound<'_, Self>, data: &Bound<'_, PyBytes>) -> PyResult<()> {
        let state = slf.get().state();
        if let Some(metrics) = &state.metrics {
            metrics.bytes_in(data.as_bytes().len());
        }
        let mut data = data.as_bytes();
        let after_header;
        if slf.get().peer.get().is_none() {
            // Waiting for the PROXY header: only what follows it goes on.
            match Self::proxy_header_received(slf, data)? {
                Some(rest) if !rest.is_empty() => after_header = rest,
                _ => return Ok(()),
            }
            data = &after_header;
        }
        let wake = Self::decide(slf, |conn, fx| conn.data_received(data, state, fx))?;
        ws::wake(slf, wake)
    }

    /// A half-close ends the connection: the app sees http.disconnect and later sends
    /// raise, as an ASGI app expects when its client goes away.
    fn eof_received(&self) -> bool {
        false
    }

    fn connection_lost(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        drop(exc);
        let py = slf.py();
        let this = slf.get();
        // First: the spare refers back to this protocol, so an early return below must not
        // keep it (and the protocol) alive. Freed with the lock released.
        let spare = this.spare_cycle().take();
        drop(spare);
        let lost = this.lock()?.lost();
        let registered = this.state().unregister(lost.id);
        if let (Some(metrics), Some(_)) = (&this.state().metrics, &registered) {
            metrics.connection(lost.protocol, false);
        }
        Self::wake_receivers(slf, lost.receive_waiters)?;
        ws::wake(slf, lost.ws_waiter)?;
        for waiter in lost.drain_waiters {
            resolve(py, waiter.bind(py), py.None().into_bound(py))?;
        }
        drop((lost.transport, registered));
        Ok(())
    }

    fn pause_writing(&self) -> PyResult<()> {
        let mut conn = self.lock()?;
        // A pause is rare: one clock read each, for the send timeout's clock.
        if !conn.write_paused() {
            conn.write_paused_since = Some(Instant::now());
        }
        conn.hold.reader_fell_behind();
        conn.ws_hold_replies(true, &mut Vec::new());
        Ok(())
    }

    fn resume_writing(slf: &Bound<'_, Self>) -> PyResult<()> {
        let state = slf.get().state();
        Self::decide(slf, |conn, fx| {
            conn.write_paused_since = None;
            fx.wake_drain = std::mem::take(&mut conn.drain_waiters);
            conn.ws_hold_replies(false, &mut fx.write);
            conn.resume_pipeline(state, fx);
        })
    }
}
