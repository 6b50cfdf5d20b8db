//! `HttpProtocol`: the asyncio Protocol of every connection.
//!
//! All state sits behind one mutex that is never held while Python code runs: each method
//! decides under the lock, releases it, then performs the transport calls, future
//! completions and app start it decided on. Python callbacks that re-enter the protocol
//! (`pause_writing` from inside `transport.write`) therefore always find it unlocked.

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::asgi::cycle::RequestCycle;
use crate::asgi::runner::{spawn_app, AppRunner};
use crate::asgi::scope::{build_scope, Peer};
use crate::key;
use crate::server::ServerState;
use ruvicorn_core::http1::connection::{
    error_response, Connection, Feed, ReceiveOutcome, CONTINUE_100,
};
use ruvicorn_core::http1::request::RequestHead;
use ruvicorn_core::http1::response::DateCache;
use ruvicorn_core::http1::target::split_target;
use ruvicorn_core::http1::{RequestError, Version};

/// How long a half-closed connection keeps reading (and discarding) before it is closed.
const HALF_CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// Bytes discarded after a half-close before the connection is closed outright.
const HALF_CLOSE_MAX_BYTES: usize = 64 * 1024;

thread_local! {
    static DATE: std::cell::RefCell<DateCache> = std::cell::RefCell::new(DateCache::new());
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// The next request head must be complete by then.
    Head(Instant),
    /// An idle keep-alive connection closes then.
    Idle(Instant),
    /// The server half-closed: reads are discarded until the client's FIN or then.
    HalfClosed(Instant),
}

pub(crate) struct Inner {
    pub conn: Connection,
    transport: Option<Py<PyAny>>,
    id: u64,
    /// The transport is closed or closing: nothing more is written.
    pub(crate) closing: bool,
    /// connection_lost ran: `send()` raises, `receive()` says http.disconnect.
    pub lost: bool,
    read_paused: bool,
    pub write_paused: bool,
    /// Pending `receive()` futures of the current exchange, oldest first.
    receive_waiters: Vec<(u64, Py<PyAny>)>,
    drain_waiters: Vec<Py<PyAny>>,
    deadline: Option<Deadline>,
    /// Bytes read and thrown away since the half-close.
    discarded: usize,
    /// "METHOD target HTTP/x" of the current request, kept only when access logging is on.
    pub(crate) access_line: Option<String>,
    /// From a WebSocket upgrade request on, the connection belongs to its WebSocket.
    pub(crate) ws: Option<Box<crate::websocket::WsConn>>,
}

impl Inner {
    pub(crate) fn mark_closing(&mut self) {
        self.closing = true;
    }

    /// Pause reading while too much input waits for the app; resume once it catches up.
    pub(crate) fn refresh_read_pause(&mut self, fx: &mut Effects) {
        let want = match &self.ws {
            Some(ws) => ws.wants_read_pause(),
            None => self.conn.wants_read_pause(),
        } && !self.closing;
        if want != self.read_paused {
            self.read_paused = want;
            fx.pause_reading = Some(want);
        }
    }
}

#[pyclass(frozen, module = "ruvicorn._native")]
pub struct HttpProtocol {
    pub(crate) server: Py<ServerState>,
    /// Who is at each end; set once in connection_made, so it needs no lock.
    peer: OnceLock<Peer>,
    inner: Mutex<Inner>,
}

/// Python work decided under the lock, done after it is released.
#[derive(Default)]
pub(crate) struct Effects {
    /// Bytes to write; then `write_body` and `write_suffix` (a response body part, so the
    /// app's bytes are copied only into the final buffer); then `write_tail`.
    pub write: Vec<u8>,
    pub write_body: Option<Py<PyBytes>>,
    pub write_suffix: &'static [u8],
    pub write_tail: Vec<u8>,
    /// Half-close after the writes (`transport.write_eof()`); see `HttpProtocol::half_close`.
    pub write_eof: bool,
    pub close: bool,
    pub pause_reading: Option<bool>,
    pub start: Option<RequestHead>,
    /// `receive()` futures to complete: with the next body message (`Some(seq)`, taken only
    /// once the future is known not to be cancelled) or with http.disconnect (`None`).
    pub wake_receive: Vec<(Py<PyAny>, Option<u64>)>,
    pub wake_drain: Vec<Py<PyAny>>,
    pub refused: Option<RequestError>,
    pub access: Option<(String, u16)>,
}

impl Effects {
    /// Everything to write, as one `bytes` built with a single copy of each part.
    fn wire_bytes<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let body = self.write_body.as_ref().map(|b| b.bind(py));
        if body.is_none() && self.write_suffix.is_empty() && self.write_tail.is_empty() {
            return Ok((!self.write.is_empty()).then(|| PyBytes::new(py, &self.write)));
        }
        let body = body.map_or(&b""[..], |b| b.as_bytes());
        let parts = [
            &self.write[..],
            body,
            self.write_suffix,
            &self.write_tail[..],
        ];
        let total = parts.iter().map(|part| part.len()).sum();
        PyBytes::new_with(py, total, |buf| {
            let mut at = 0;
            for part in parts {
                buf[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            Ok(())
        })
        .map(Some)
    }

    fn is_empty(&self) -> bool {
        self.write.is_empty()
            && self.write_body.is_none()
            && self.write_suffix.is_empty()
            && self.write_tail.is_empty()
            && !self.close
            && !self.write_eof
            && self.pause_reading.is_none()
            && self.start.is_none()
            && self.wake_receive.is_empty()
            && self.wake_drain.is_empty()
            && self.refused.is_none()
            && self.access.is_none()
    }
}

/// `client - "METHOD target HTTP/x"`, completed with the status once the response is sent.
fn access_line(head: &RequestHead, client: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    let version = if head.version == Version::Http10 {
        "1.0"
    } else {
        "1.1"
    };
    let client = match client.filter(|c| !c.is_none()) {
        Some(client) => format!("{}:{}", client.get_item(0)?, client.get_item(1)?),
        None => "-".to_owned(),
    };
    Ok(format!(
        "{client} - \"{} {} HTTP/{version}\"",
        String::from_utf8_lossy(head.method()),
        String::from_utf8_lossy(head.target())
    ))
}

fn to_addr(py: Python<'_>, info: &Bound<'_, PyAny>) -> PyResult<Option<(Py<PyTuple>, String)>> {
    if let Ok(tuple) = info.cast::<PyTuple>() {
        if tuple.len() >= 2 {
            let host = tuple.get_item(0)?;
            let port = tuple.get_item(1)?;
            let text = host.str()?.to_string();
            return Ok(Some((PyTuple::new(py, [host, port])?.unbind(), text)));
        }
    }
    Ok(None)
}

impl HttpProtocol {
    pub fn new(server: Py<ServerState>) -> Self {
        let limits = server.get().limits.clone();
        Self {
            server,
            peer: OnceLock::new(),
            inner: Mutex::new(Inner {
                conn: Connection::new(limits),
                transport: None,
                id: 0,
                closing: false,
                lost: false,
                read_paused: false,
                write_paused: false,
                receive_waiters: Vec::new(),
                drain_waiters: Vec::new(),
                deadline: None,
                discarded: 0,
                access_line: None,
                ws: None,
            }),
        }
    }

    /// The lock is only ever contended by a re-entrant call, which is a bug: report it
    /// rather than deadlock.
    pub(crate) fn lock(&self) -> PyResult<MutexGuard<'_, Inner>> {
        self.inner
            .try_lock()
            .map_err(|_| PyRuntimeError::new_err("ruvicorn protocol re-entered while busy"))
    }

    fn state(&self) -> &ServerState {
        self.server.get()
    }

    /// The default response header lines: date, server, then --header values.
    pub(crate) fn default_lines(&self) -> Vec<u8> {
        let state = self.state();
        let mut lines = Vec::with_capacity(96);
        if state.date_header {
            DATE.with(|date| lines.extend_from_slice(date.borrow_mut().header_line()));
        }
        lines.extend_from_slice(&state.server_line);
        lines.extend_from_slice(&state.extra_lines);
        lines
    }

    /// Feed-side bookkeeping shared by data_received and the restart after a response.
    fn after_feed(&self, inner: &mut Inner, feed: Feed, fx: &mut Effects) {
        match feed {
            Feed::Pending => {}
            Feed::Request(head) => {
                inner.deadline = None;
                fx.start = Some(head);
            }
            Feed::Refused(err) => {
                let seq = inner.conn.current_seq();
                let started = seq.is_some_and(|seq| inner.conn.response_on_wire(seq));
                if !started && !inner.closing {
                    fx.write_tail
                        .extend(error_response(err.status(), &self.default_lines()));
                }
                fx.refused = Some(err);
                fx.close = true;
                inner.closing = true;
            }
        }
        if inner.conn.exchange().is_none()
            && inner.conn.head_started
            && !matches!(inner.deadline, Some(Deadline::Head(_)))
        {
            inner.deadline = Some(Deadline::Head(Instant::now() + self.state().header_timeout));
        }
        if let Some((seq, _)) = inner.receive_waiters.first() {
            if inner.conn.receive_ready(*seq) {
                let waiters = std::mem::take(&mut inner.receive_waiters);
                fx.wake_receive
                    .extend(waiters.into_iter().map(|(seq, w)| (w, Some(seq))));
            }
        }
        inner.refresh_read_pause(fx);
    }

    /// Perform what was decided under the lock.
    pub(crate) fn apply(slf: &Bound<'_, Self>, fx: Effects) -> PyResult<()> {
        if fx.is_empty() {
            return Ok(());
        }
        let py = slf.py();
        let this = slf.get();
        let transport = this.lock()?.transport.as_ref().map(|t| t.clone_ref(py));
        // Every effect is attempted even when one fails (a logging handler raising, say):
        // a skipped wake-up would leave the app waiting forever. The first error is raised.
        let mut first_error: Option<PyErr> = None;
        let mut keep = |result: PyResult<()>| {
            if let Err(err) = result {
                first_error.get_or_insert(err);
            }
        };
        if let Some(err) = &fx.refused {
            let peer = this.peer.get().and_then(|p| p.client_host.clone());
            let line = format!(
                "Invalid HTTP request from {}: {}",
                peer.as_deref().unwrap_or("unix socket"),
                err
            );
            let log = this.state().error_log.bind(py);
            keep(log.call_method1(key!(py, "warning"), (line,)).map(drop));
        }
        if let Some(transport) = &transport {
            let transport = transport.bind(py);
            keep(fx.wire_bytes(py).and_then(|bytes| {
                match bytes {
                    Some(bytes) => transport
                        .call_method1(key!(py, "write"), (bytes,))
                        .map(drop),
                    None => Ok(()),
                }
            }));
            if let Some(pause) = fx.pause_reading.filter(|_| !fx.close) {
                let name = if pause {
                    key!(py, "pause_reading")
                } else {
                    key!(py, "resume_reading")
                };
                keep(transport.call_method0(name).map(drop));
            }
            let half_closed =
                fx.write_eof && !fx.close && transport.call_method0(key!(py, "write_eof")).is_ok();
            if fx.close || (fx.write_eof && !half_closed) {
                keep(transport.call_method0(key!(py, "close")).map(drop));
            }
        }
        if let Some((line, status)) = fx.access {
            if let Some(log) = &this.state().access_log {
                keep(log.bind(py).call1((format!("{line} {status}"),)).map(drop));
            }
        }
        keep(Self::wake_receivers(slf, fx.wake_receive));
        for waiter in fx.wake_drain {
            keep(resolve(py, waiter.bind(py), py.None().into_bound(py)));
        }
        if let Some(head) = fx.start {
            keep(Self::start_app(slf, &head));
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Build the scope and run the app for `head` in its own asyncio Task.
    fn start_app(slf: &Bound<'_, Self>, head: &RequestHead) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let state = this.state();
        state.count_request(py);
        let target = match split_target(head.method(), head.target()) {
            Ok(target) => target,
            Err(err) => {
                let mut fx = Effects::default();
                {
                    let mut inner = this.lock()?;
                    this.after_feed(&mut inner, Feed::Refused(err), &mut fx);
                }
                return Self::apply(slf, fx);
            }
        };
        let websocket = crate::websocket::is_upgrade(state, head);
        let Some(seq) = this.lock()?.conn.current_seq() else {
            return Ok(());
        };
        let peer = this
            .peer
            .get()
            .ok_or_else(|| PyRuntimeError::new_err("no peer"))?;
        let scope = build_scope(py, state, peer, head, &target, websocket)?;
        if state.access_log.is_some() {
            // The client the app sees: the forwarded one behind a trusted proxy.
            let client = scope.get_item(key!(py, "client"))?;
            this.lock()?.access_line = Some(access_line(head, client.as_ref())?);
        }
        if state.over_capacity() {
            return Self::refuse_overloaded(slf);
        }
        if websocket {
            return crate::websocket::start(slf, head, &scope, seq);
        }
        let cycle = Bound::new(py, RequestCycle::new(slf.clone().unbind(), seq))?;
        let failed = spawn_app(state, scope, cycle.as_any(), |awaitable| {
            AppRunner::new(awaitable, slf.clone().unbind(), seq)
        });
        if let Some(error) = failed {
            RequestCycle::app_finished(slf, seq, Some(error))?;
        }
        Ok(())
    }

    /// `--limit-concurrency` is exceeded: 503, then close (the app is not called).
    fn refuse_overloaded(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let mut fx = Effects::default();
        {
            let mut inner = this.lock()?;
            if !inner.closing {
                fx.write_tail = error_response(503, &this.default_lines());
            }
            fx.access = inner.access_line.take().map(|line| (line, 503));
            fx.close = true;
            inner.closing = true;
        }
        let applied = Self::apply(slf, fx);
        if let Some(line) = this.state().overload_warning(Instant::now()) {
            let log = this.state().error_log.bind(py);
            log.call_method1(key!(py, "warning"), (line,))?;
        }
        applied
    }

    /// The response of exchange `seq` is complete: log it and move to the next request or
    /// close.
    pub(crate) fn finish(&self, inner: &mut Inner, close: bool, fx: &mut Effects) {
        if let Some(line) = inner.access_line.take() {
            let status = inner.conn.exchange().map_or(0, |ex| ex.status);
            fx.access = Some((line, status));
        }
        let waiters = std::mem::take(&mut inner.receive_waiters);
        fx.wake_receive
            .extend(waiters.into_iter().map(|(_, w)| (w, None)));
        if close || !inner.conn.finish_exchange() {
            if inner.conn.draining {
                self.half_close(inner, fx);
            } else {
                fx.close = true;
                inner.closing = true;
            }
            return;
        }
        let feed = inner.conn.advance();
        if inner.conn.is_idle() {
            self.set_idle_deadline(inner);
        }
        self.after_feed(inner, feed, fx);
    }

    /// An idle connection waits the keep-alive timeout for its next request; while the
    /// worker drains, only the short linger (the deadline never moves later).
    fn set_idle_deadline(&self, inner: &mut Inner) {
        let state = self.state();
        let wait = if inner.conn.draining {
            state.keep_alive_timeout.min(state.drain_linger)
        } else {
            state.keep_alive_timeout
        };
        let at = Instant::now() + wait;
        inner.deadline = Some(Deadline::Idle(match inner.deadline {
            Some(Deadline::Idle(earlier)) if inner.conn.draining => earlier.min(at),
            _ => at,
        }));
    }

    /// Close without a reset: send FIN now and keep reading, discarding, until the client's
    /// own FIN, a short deadline or a byte bound. A request that crossed the close is then
    /// simply never answered (the client sees EOF, never a reset that could also destroy a
    /// response it has not read yet).
    fn half_close(&self, inner: &mut Inner, fx: &mut Effects) {
        inner.closing = true;
        inner.discarded = 0;
        inner.deadline = Some(Deadline::HalfClosed(Instant::now() + HALF_CLOSE_DRAIN));
        fx.write_eof = true;
        inner.refresh_read_pause(fx);
    }

    pub(crate) fn add_drain_waiter(&self, waiter: Py<PyAny>) -> PyResult<()> {
        self.lock()?.drain_waiters.push(waiter);
        Ok(())
    }

    pub(crate) fn add_receive_waiter(&self, seq: u64, waiter: Py<PyAny>) -> PyResult<()> {
        self.lock()?.receive_waiters.push((seq, waiter));
        Ok(())
    }

    /// Complete `receive()` futures. A future the app cancelled is dropped without taking
    /// anything, so its body bytes stay queued for the next `receive()`.
    fn wake_receivers(
        slf: &Bound<'_, Self>,
        waiters: Vec<(Py<PyAny>, Option<u64>)>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        for (waiter, wake) in waiters {
            let waiter = waiter.bind(py);
            if waiter.call_method0(key!(py, "done"))?.is_truthy()? {
                continue;
            }
            let outcome = match wake {
                None => ReceiveOutcome::Disconnect,
                Some(seq) => {
                    let mut fx = Effects::default();
                    let outcome = {
                        let mut inner = this.lock()?;
                        let outcome = match inner.conn.receive(seq) {
                            _ if inner.lost => ReceiveOutcome::Disconnect,
                            outcome => outcome,
                        };
                        if let ReceiveOutcome::Wait { .. } = outcome {
                            inner.receive_waiters.push((seq, waiter.clone().unbind()));
                        }
                        inner.refresh_read_pause(&mut fx);
                        outcome
                    };
                    Self::apply(slf, fx)?;
                    outcome
                }
            };
            if !matches!(outcome, ReceiveOutcome::Wait { .. }) {
                waiter.call_method1(key!(py, "set_result"), (receive_message(py, outcome)?,))?;
            }
        }
        Ok(())
    }

    pub(crate) fn continue_bytes() -> &'static [u8] {
        CONTINUE_100
    }

    /// Called by the worker's sweeper: enforce the head and idle deadlines.
    pub fn check_deadline(slf: &Bound<'_, Self>, now: Instant) -> PyResult<()> {
        let this = slf.get();
        let mut fx = Effects::default();
        {
            let Ok(mut inner) = this.inner.try_lock() else {
                return Ok(());
            };
            if inner.ws.is_some() {
                drop(inner);
                return crate::websocket::check_deadline(slf, now);
            }
            match inner.deadline {
                Some(Deadline::Idle(at)) if now >= at && inner.conn.is_idle() => {
                    let transport = inner.transport.as_ref().map(|t| t.clone_ref(slf.py()));
                    drop(inner);
                    // A request already in the socket buffer is read (and answered) on the
                    // loop's next turn: closing now would lose it.
                    if transport.is_some_and(|t| input_pending(t.bind(slf.py()))) {
                        return Ok(());
                    }
                    let mut inner = this.lock()?;
                    if inner.closing
                        || !inner.conn.is_idle()
                        || inner.deadline != Some(Deadline::Idle(at))
                    {
                        return Ok(());
                    }
                    this.half_close(&mut inner, &mut fx);
                    drop(inner);
                    return Self::apply(slf, fx);
                }
                Some(Deadline::HalfClosed(at)) if now >= at => fx.close = true,
                Some(Deadline::Head(at)) if now >= at && inner.conn.exchange().is_none() => {
                    if inner.conn.head_started {
                        fx.write = error_response(408, &this.default_lines());
                    }
                    fx.close = true;
                }
                _ => return Ok(()),
            }
            inner.closing = true;
            inner.deadline = None;
        }
        Self::apply(slf, fx)
    }

    /// Graceful stop of this connection: its next response says `connection: close`
    /// (requests already received are answered first), and an idle one lingers briefly so
    /// a request already on the way is answered rather than lost, then half-closes.
    pub fn drain(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        let mut inner = this.lock()?;
        if inner.ws.is_some() {
            drop(inner);
            return crate::websocket::drain(slf);
        }
        inner.conn.draining = true;
        if inner.conn.is_idle() && !inner.closing {
            this.set_idle_deadline(&mut inner);
        }
        Ok(())
    }

    pub fn force_close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let transport = {
            let mut inner = slf.get().lock()?;
            inner.closing = true;
            inner.transport.as_ref().map(|t| t.clone_ref(py))
        };
        if let Some(transport) = transport {
            // close() would wait for a client that stopped reading; abort() does not.
            transport.bind(py).call_method0(key!(py, "abort"))?;
        }
        Ok(())
    }
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

/// Complete an asyncio future unless the app already cancelled it.
pub(crate) fn resolve(
    py: Python<'_>,
    future: &Bound<'_, PyAny>,
    value: Bound<'_, PyAny>,
) -> PyResult<()> {
    if !future.call_method0(key!(py, "done"))?.is_truthy()? {
        future.call_method1(key!(py, "set_result"), (value,))?;
    }
    Ok(())
}

/// The ASGI message for a receive outcome that does not wait.
pub(crate) fn receive_message(
    py: Python<'_>,
    outcome: ReceiveOutcome,
) -> PyResult<Bound<'_, PyDict>> {
    let message = PyDict::new(py);
    match outcome {
        ReceiveOutcome::Body { body, more_body } => {
            message.set_item(key!(py, "type"), key!(py, "http.request"))?;
            message.set_item(key!(py, "body"), PyBytes::new(py, &body))?;
            message.set_item(key!(py, "more_body"), more_body)?;
        }
        ReceiveOutcome::Disconnect | ReceiveOutcome::Wait { .. } => {
            message.set_item(key!(py, "type"), key!(py, "http.disconnect"))?;
        }
    }
    Ok(message)
}

#[pymethods]
impl HttpProtocol {
    fn connection_made(slf: &Bound<'_, Self>, transport: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let state = this.state();
        let peername =
            transport.call_method1(key!(py, "get_extra_info"), (key!(py, "peername"),))?;
        let sockname =
            transport.call_method1(key!(py, "get_extra_info"), (key!(py, "sockname"),))?;
        let client = to_addr(py, &peername)?;
        let server = match to_addr(py, &sockname)? {
            Some((tuple, _)) => Some(tuple),
            None if sockname.is_instance_of::<pyo3::types::PyString>() => {
                Some(PyTuple::new(py, [sockname.clone(), py.None().into_bound(py)])?.unbind())
            }
            None => None,
        };
        let trusted = match (&state.proxies, &client) {
            (Some(proxies), Some((_, host))) => proxies.trusts(host),
            (Some(proxies), None) => proxies.trusts("unix") || proxies.trusts("*"),
            (None, _) => false,
        };
        let peer = Peer {
            client_host: client.as_ref().map(|(_, host)| host.clone()),
            client: client.map(|(tuple, _)| tuple),
            server,
            trusted,
        };
        if this.peer.set(peer).is_err() {
            return Err(PyRuntimeError::new_err("connection_made called twice"));
        }
        let id = state.register(slf.clone().unbind());
        let mut inner = this.lock()?;
        inner.id = id;
        inner.transport = Some(transport.unbind());
        inner.deadline = Some(Deadline::Head(Instant::now() + state.header_timeout));
        if state.is_draining() {
            inner.conn.draining = true;
            this.set_idle_deadline(&mut inner);
        }
        Ok(())
    }

    fn data_received(slf: &Bound<'_, Self>, data: &Bound<'_, PyBytes>) -> PyResult<()> {
        let this = slf.get();
        let mut fx = Effects::default();
        {
            let mut inner = this.lock()?;
            if inner.closing {
                if let Some(Deadline::HalfClosed(_)) = inner.deadline {
                    inner.discarded += data.as_bytes().len();
                    if inner.discarded > HALF_CLOSE_MAX_BYTES {
                        inner.deadline = None;
                        fx.close = true;
                    }
                }
                drop(inner);
                return Self::apply(slf, fx);
            }
            if inner.ws.is_some() {
                drop(inner);
                return crate::websocket::data_received(slf, data.as_bytes());
            }
            let was_idle = inner.conn.exchange().is_none();
            let feed = inner.conn.feed(data.as_bytes());
            if was_idle && matches!(inner.deadline, Some(Deadline::Idle(_))) {
                inner.deadline = None;
            }
            this.after_feed(&mut inner, feed, &mut fx);
        }
        Self::apply(slf, fx)
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
        let (transport, waiters, drains, id, ws_wake) = {
            let mut inner = this.lock()?;
            inner.lost = true;
            inner.closing = true;
            inner.deadline = None;
            let ws_wake = crate::websocket::connection_lost(&mut inner);
            (
                inner.transport.take(),
                std::mem::take(&mut inner.receive_waiters),
                std::mem::take(&mut inner.drain_waiters),
                inner.id,
                ws_wake,
            )
        };
        let registered = this.state().unregister(id);
        Self::wake_receivers(slf, waiters.into_iter().map(|(_, w)| (w, None)).collect())?;
        crate::websocket::wake(slf, ws_wake)?;
        for waiter in drains {
            resolve(py, waiter.bind(py), py.None().into_bound(py))?;
        }
        drop((transport, registered));
        Ok(())
    }

    fn pause_writing(&self) -> PyResult<()> {
        self.lock()?.write_paused = true;
        Ok(())
    }

    fn resume_writing(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let waiters = {
            let mut inner = slf.get().lock()?;
            inner.write_paused = false;
            std::mem::take(&mut inner.drain_waiters)
        };
        for waiter in waiters {
            resolve(py, waiter.bind(py), py.None().into_bound(py))?;
        }
        Ok(())
    }
}
