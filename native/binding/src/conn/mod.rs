//! One owner per connection.
//!
//! [`Conn`] is the whole state of one connection: a single state machine whose [`Mode`]
//! says which protocol speaks on it. Its fields are private to this module; the ASGI
//! cycles (`crate::asgi`) and the worker (`crate::server`) reach it only through the
//! typed events below (`receive`, `send_body`, `ws_accept`, ...), each of which decides
//! what to do and writes that down in an [`Effects`].
//!
//! [`HttpProtocol::decide`] is the one place that locks the state, runs such a decision,
//! releases the lock and then applies the effects (writes, closes, future completions,
//! starting the app). No Python code runs under the lock, so a Python callback that
//! re-enters the protocol (`pause_writing` from inside `transport.write`) finds it free.
//!
//! With `--proxy-protocol` the PROXY header is read beneath everything else (`proxied.rs`),
//! before any byte reaches TLS or a mode.
//!
//! TLS is a layer beneath whatever mode runs (`tls.rs`): bytes read are decrypted before a
//! mode sees them, and [`HttpProtocol::decide`] encrypts what a decision writes before the
//! lock is released. HTTP/2 is one more [`Mode`] with its own file next to `http1.rs` and
//! `ws.rs`; `exchange.rs` hands an exchange's events to the mode that carries it.

mod body_clock;
mod cork;
mod effects;
mod exchange;
mod http1;
mod http2;
mod http3;
mod protocol;
mod proxied;
mod stream_engine;
mod tls;
mod ws;

use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::asgi::cycle::ClientDisconnected;
use crate::server::ServerState;
use body_clock::BodyClock;
use ruvicorn_core::http1::connection::Connection;
use ruvicorn_core::http1::Limits;

pub(crate) use effects::Effects;
pub(crate) use http3::{QuicEndpoint, QuicTransport};
pub(crate) use protocol::HttpProtocol;
pub(crate) use tls::Tls;
pub(crate) use ws::{app_finished as websocket_app_finished, wake, WsData, WsReceived};

/// What an app that returned early left unanswered (logged as its complaint), in every mode.
const NOT_STARTED: &str = "ASGI callable returned without starting a response";
const NOT_COMPLETED: &str = "ASGI callable returned without completing the response";

/// The error `send()` raises once the client is gone.
fn disconnected() -> PyErr {
    ClientDisconnected::new_err("client disconnected")
}

/// How long a half-closed connection keeps reading (and discarding) before it is closed.
const HALF_CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// Bytes discarded after a half-close before the connection is closed outright.
const HALF_CLOSE_MAX_BYTES: usize = 64 * 1024;

/// Which protocol the connection speaks now.
enum Mode {
    /// HTTP/1.1 exchanges, one after another.
    Http1,
    /// From a WebSocket upgrade request on, the connection belongs to its WebSocket.
    WebSocket(Box<ws::WsConn>),
    /// From its first bytes on, HTTP/2 streams (ALPN `h2`, or the preface on cleartext).
    Http2(Box<http2::H2Conn>),
}

/// What the sweep left to do outside the lock.
enum Swept {
    /// A WebSocket `receive()` to complete, if any.
    Wake(Option<ws::Wake>),
    /// An idle HTTP/1.1 connection passed its deadline `at`: it half-closes unless a
    /// request already waits in its socket.
    IdlePast(Instant),
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

/// Everything one connection is; see the module documentation.
pub(crate) struct Conn {
    /// The HTTP/1.1 reader and writer. Every connection starts with it; in WebSocket mode
    /// it still holds the upgrade request's exchange, which carries a denial response.
    http1: Connection,
    mode: Mode,
    transport: Option<Py<PyAny>>,
    id: u64,
    /// The transport is closed or closing: nothing more is written.
    closing: bool,
    /// connection_lost ran: `send()` raises, `receive()` says the client is gone.
    lost: bool,
    read_paused: bool,
    /// Since when the transport has paused writing (its client read nothing that drained
    /// the buffer); None while writing flows. With `--timeout-send` the sweep aborts the
    /// connection once this has lasted the timeout (`Conn::check_send`).
    write_paused_since: Option<Instant>,
    /// HTTP/1.1: the client is not reading its responses (the transport paused writing),
    /// so no further request starts and reading pauses until the transport drains.
    pipeline_parked: bool,
    /// Pending HTTP `receive()` futures of the current exchange, oldest first.
    receive_waiters: Vec<(u64, Py<PyAny>)>,
    drain_waiters: Vec<Py<PyAny>>,
    deadline: Option<Deadline>,
    /// With `--timeout-request-body`, the clock of the body the current exchange awaits
    /// (`Connection::awaiting_body`), by its `seq`: restarted when bytes arrive, started
    /// and read by the sweep (`Conn::check_body`).
    body_clock: BodyClock<u64>,
    /// The request body timed out: `receive()` says the client is gone.
    body_timed_out: bool,
    /// Bytes read and thrown away since the half-close.
    discarded: usize,
    /// The current request's record, kept only when access logging or metrics are on
    /// (boxed: a connection without one carries a single word for it).
    access: Option<Box<Access>>,
    /// The TLS layer, on a TLS listener.
    tls: Option<Box<Tls>>,
    /// Until the first plaintext bytes chose between HTTP/1.1 and HTTP/2: those held so
    /// far (a prefix of the HTTP/2 preface).
    sniffed: Option<Vec<u8>>,
    /// With `--proxy-protocol`, until the PROXY header is read (`proxied.rs`).
    awaiting_header: Option<Box<proxied::AwaitingHeader>>,
    /// Body parts held back while the app's step runs (`cork.rs`).
    hold: cork::HoldBack,
}

/// The record of the current request, kept when access logging or metrics are on: what
/// the access log is told (its scope as it arrived, a copy so the app's changes do not
/// show; the app's response headers when the format reads them) and what the metrics count
/// (its method), when it started, and the response body bytes sent (`None` for a response
/// ruvicorn wrote itself).
pub(super) struct Access {
    /// None when only the metrics keep the record.
    scope: Option<Py<PyDict>>,
    /// The method's metrics counter (`crate::metrics::method_index`).
    method: u8,
    started: Instant,
    bytes: Option<u64>,
    response_headers: Option<Py<PyAny>>,
}

impl Access {
    pub(super) fn new(scope: Option<Py<PyDict>>, method: u8) -> Self {
        Self {
            scope,
            method,
            started: Instant::now(),
            bytes: Some(0),
            response_headers: None,
        }
    }

    fn count(&mut self, bytes: u64) {
        self.bytes = self.bytes.map(|sent| sent.saturating_add(bytes));
    }
}

impl Conn {
    fn new(limits: Limits, tls: Option<Box<Tls>>) -> Self {
        Self {
            http1: Connection::new(limits),
            mode: Mode::Http1,
            transport: None,
            id: 0,
            closing: false,
            lost: false,
            read_paused: false,
            write_paused_since: None,
            pipeline_parked: false,
            receive_waiters: Vec::new(),
            drain_waiters: Vec::new(),
            deadline: None,
            body_clock: BodyClock::default(),
            body_timed_out: false,
            discarded: 0,
            access: None,
            tls,
            sniffed: Some(Vec::new()),
            awaiting_header: None,
            hold: cork::HoldBack::default(),
        }
    }

    /// The `tls` extension's values once the handshake is done (None on cleartext): from
    /// the TLS layer on TCP, from the QUIC engine on HTTP/3.
    pub(crate) fn tls_info(&self) -> Option<ruvicorn_core::tls::info::ConnectionInfo> {
        match (&self.tls, &self.mode) {
            (Some(tls), _) => tls.info(),
            (None, Mode::Http2(h2)) => h2.tls_info(),
            (None, _) => None,
        }
    }

    /// Close the transport once this turn's bytes are written; nothing more is written.
    fn close(&mut self, fx: &mut Effects) {
        self.closing = true;
        fx.close = true;
    }

    /// Give up on the connection: abort the transport (`transport.abort()`), dropping
    /// what it buffered. Output held back is dropped too, and no deadline is kept: the
    /// transport reports the loss on the loop's next turn (`lost`).
    fn cut(&mut self, fx: &mut Effects) {
        self.deadline = None;
        self.hold.cork = None;
        self.close(fx);
        fx.abort = true;
    }

    /// The transport has paused writing.
    fn write_paused(&self) -> bool {
        self.write_paused_since.is_some()
    }

    /// Log the current request with `status`, answered by ruvicorn rather than the app.
    fn log_access(&mut self, status: u16, fx: &mut Effects) {
        fx.access = self.answered_by_server(status);
    }

    /// The current request's record, answered by ruvicorn with `status`.
    fn answered_by_server(&mut self, status: u16) -> Option<(Box<Access>, u16)> {
        self.access.take().map(|mut access| {
            access.bytes = None;
            (access, status)
        })
    }

    /// Pause reading while too much input waits for the app; resume once it catches up.
    fn refresh_read_pause(&mut self, fx: &mut Effects) {
        let want = match &self.mode {
            Mode::WebSocket(ws) => ws.wants_read_pause(),
            Mode::Http1 => self.http1.wants_read_pause() || self.pipeline_parked,
            // Flow control bounds what a client may send ahead of the app.
            Mode::Http2(_) => false,
        } && !self.closing;
        if want != self.read_paused {
            self.read_paused = want;
            // The body clock stops while the server holds the client back, and starts
            // afresh (on the next byte or sweep) once it reads again.
            self.body_clock.stop();
            fx.pause_reading = Some(want);
        }
    }

    /// Close without a reset: send FIN now and keep reading, discarding, until the client's
    /// own FIN, a short deadline or a byte bound. A request that crossed the close is then
    /// simply never answered (the client sees EOF, never a reset that could also destroy a
    /// response it has not read yet).
    fn half_close(&mut self, fx: &mut Effects) {
        self.closing = true;
        self.discarded = 0;
        self.deadline = Some(Deadline::HalfClosed(Instant::now() + HALF_CLOSE_DRAIN));
        fx.write_eof = true;
        self.refresh_read_pause(fx);
    }

    /// An idle connection waits the keep-alive timeout for its next request; while the
    /// worker drains, only the short linger (the deadline never moves later).
    fn set_idle_deadline(&mut self, state: &ServerState) {
        let settings = &state.settings;
        let wait = if self.http1.draining {
            settings.keep_alive_timeout.min(settings.drain_linger)
        } else {
            settings.keep_alive_timeout
        };
        let at = Instant::now() + wait;
        self.deadline = Some(Deadline::Idle(match self.deadline {
            Some(Deadline::Idle(earlier)) if self.http1.draining => earlier.min(at),
            _ => at,
        }));
    }

    /// Bytes read while the connection is closing: discarded, up to a bound.
    fn discard(&mut self, len: usize, fx: &mut Effects) {
        if let Some(Deadline::HalfClosed(_)) = self.deadline {
            self.discarded += len;
            if self.discarded > HALF_CLOSE_MAX_BYTES {
                self.deadline = None;
                fx.close = true;
            }
        }
    }

    /// The sweep, about once a second: the send timeout, deadlines and WebSocket pings.
    /// `send_timeout` is `--timeout-send` where it applies (not on QUIC).
    fn sweep(
        &mut self,
        now: Instant,
        send_timeout: Option<Duration>,
        state: &ServerState,
        fx: &mut Effects,
    ) -> Swept {
        if self.check_send(now, send_timeout, fx) {
            return Swept::Wake(None);
        }
        match self.mode {
            Mode::WebSocket(_) => Swept::Wake(self.ws_tick(now, fx)),
            Mode::Http2(_) => {
                self.h2_sweep(now, state, fx);
                Swept::Wake(None)
            }
            Mode::Http1 => match self.check_deadline(now, state, fx) {
                Some(at) => Swept::IdlePast(at),
                None => Swept::Wake(None),
            },
        }
    }

    /// `--timeout-send`: abort a connection whose transport has paused writing for the
    /// timeout (its client read nothing that drained the buffer), in every mode on TCP.
    /// `transport.abort()`, not `close()`: close would wait for that client to read. The
    /// transport reports the loss on the loop's next turn, and `connection_lost` answers
    /// everything still waiting as after a disconnect: a `send()` waiting for the drain is
    /// released and the next raises, `receive()` gets http.disconnect. True when it fired.
    fn check_send(&mut self, now: Instant, timeout: Option<Duration>, fx: &mut Effects) -> bool {
        let (Some(timeout), Some(since)) = (timeout, self.write_paused_since) else {
            return false;
        };
        if self.lost || now.saturating_duration_since(since) < timeout {
            return false;
        }
        // The transport is still paused: the clock restarts so the timeout fires once
        // (the loss arrives long before it could pass again).
        self.write_paused_since = Some(now);
        fx.send_timeout = Some(timeout);
        self.cut(fx);
        true
    }

    /// Whether `await send()` of exchange (or stream) `seq` has to wait: for the
    /// transport to drain, or for HTTP/2 flow control to let its body out.
    pub(crate) fn must_wait_for_drain(&self, seq: u64) -> bool {
        (self.write_paused() || self.h2_must_wait(seq)) && !self.lost
    }

    pub(crate) fn add_drain_waiter(&mut self, seq: u64, waiter: Py<PyAny>) {
        if self.h2_must_wait(seq) {
            self.h2_add_send_waiter(seq, waiter);
        } else {
            self.drain_waiters.push(waiter);
        }
    }
}
