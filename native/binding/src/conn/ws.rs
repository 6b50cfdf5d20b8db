//! The WebSocket mode: from an upgrade request on, the connection belongs to its
//! WebSocket. Here are the upgrade, the events of the connection in this mode (bytes read,
//! connection lost, the sweep, the drain, the app's end) and those the app's
//! `WebSocketCycle` sends. The frames themselves are `ruvicorn_core::ws::session::Session`'s.

use std::time::Instant;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::{disconnected, Conn, Effects, HttpProtocol, Mode};
use crate::asgi::cycle::callables;
use crate::asgi::cycle::RequestCycle;
use crate::asgi::runner::{spawn_app, AppRunner, Serves};
use crate::asgi::websocket::{app_message, WebSocketCycle};
use crate::key;
use crate::server::ServerState;
use ruvicorn_core::http1::request::{Framing, RequestHead};
use ruvicorn_core::http1::Version;
use ruvicorn_core::syntax::error_response;
use ruvicorn_core::ws::close_code;
use ruvicorn_core::ws::deflate::negotiate_deflate;
use ruvicorn_core::ws::handshake::{
    is_websocket_upgrade, validate_handshake, write_accept_response, Handshake, HandshakeError,
};
use ruvicorn_core::ws::session::{Incoming, SendError, Session, Step, WsSettings};

/// Bytes a client may send before the handshake is answered (it should send none) before
/// reading pauses.
const EARLY_DATA_LIMIT: usize = 64 * 1024;

/// A `receive()` future to complete.
pub(crate) type Wake = Py<PyAny>;

/// What the app's `receive()` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WsReceived {
    Connect,
    Message(Incoming),
}

/// The payload of `websocket.send`.
#[derive(Clone, Copy)]
pub(crate) enum WsData<'a> {
    Bytes(&'a [u8]),
    Text(&'a str),
}

/// Where a WebSocket connection stands.
enum Phase {
    /// The app has the scope and has not answered yet; bytes that arrive early wait.
    Handshake {
        handshake: Handshake,
        connect_sent: bool,
        early: Vec<u8>,
    },
    /// Accepted: frames flow.
    Open(Box<Session>),
    /// The app denied with its own HTTP response, written through the request's exchange.
    Denial,
    /// The handshake was answered with 403 or 500; the connection is closing.
    Refused,
}

/// The WebSocket side of one upgraded (or upgrading) connection.
pub(super) struct WsConn {
    /// The HTTP exchange of the upgrade request.
    seq: u64,
    phase: Phase,
    settings: WsSettings,
    /// The app's pending `receive()`.
    waiter: Option<Wake>,
    /// A graceful stop began before the app accepted: close as soon as it does.
    draining: bool,
}

impl WsConn {
    /// Reading pauses while the app has `--ws-max-queue` messages it has not read.
    pub(super) fn wants_read_pause(&self) -> bool {
        match &self.phase {
            Phase::Handshake { early, .. } => early.len() > EARLY_DATA_LIMIT,
            Phase::Open(session) => session.wants_read_pause(),
            Phase::Denial | Phase::Refused => false,
        }
    }

    /// The next message for the app, if one is ready; taking one may let more input be
    /// read (what that writes goes to `out`).
    fn next_for_app(&mut self, lost: bool, out: &mut Vec<u8>) -> (Option<WsReceived>, Step) {
        let gone = || {
            Some(WsReceived::Message(Incoming::Disconnect {
                code: close_code::ABNORMAL_CLOSURE,
                reason: String::new(),
            }))
        };
        match &mut self.phase {
            Phase::Handshake { connect_sent, .. } => {
                if !*connect_sent {
                    *connect_sent = true;
                    (Some(WsReceived::Connect), Step::default())
                } else if lost {
                    (gone(), Step::default())
                } else {
                    (None, Step::default())
                }
            }
            Phase::Open(session) => match session.pop() {
                Some(message) => (Some(WsReceived::Message(message)), session.process(out)),
                None => (None, Step::default()),
            },
            Phase::Denial | Phase::Refused => (gone(), Step::default()),
        }
    }

    /// Whether `next_for_app` would hand the app something now (it takes nothing).
    fn has_for_app(&self, lost: bool) -> bool {
        match &self.phase {
            Phase::Handshake { connect_sent, .. } => !*connect_sent || lost,
            Phase::Open(session) => session.queued() > 0,
            Phase::Denial | Phase::Refused => true,
        }
    }

    /// The waiting `receive()` to complete, when something is ready for it. The message is
    /// taken later, once the future is known not to be cancelled.
    fn wake(&mut self, lost: bool) -> Option<Wake> {
        if !self.has_for_app(lost) {
            return None;
        }
        self.waiter.take()
    }
}

fn unexpected(kind: &str, when: &str) -> PyErr {
    PyRuntimeError::new_err(format!("Unexpected ASGI message '{kind}' {when}"))
}

/// The WebSocket settings when this request head asks for a WebSocket that this worker
/// serves: an HTTP/1.1 upgrade (`Connection: upgrade`, which the head parser already
/// noted) to `websocket`. Other requests pay one flag test.
pub(super) fn is_upgrade(state: &ServerState, head: &RequestHead) -> Option<WsSettings> {
    if !head.upgrade {
        return None;
    }
    let settings = state.settings.ws?;
    is_websocket_upgrade(&head.iter_headers().collect::<Vec<_>>()).then_some(settings)
}

/// The server's default header lines (`date`, `server`, `--header`) as pairs.
pub(crate) fn header_pairs(lines: &[u8]) -> Vec<(&[u8], &[u8])> {
    lines
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], line[colon + 1..].trim_ascii()))
        })
        .collect()
}

/// Complete a waiting `receive()` with the next message. A future the app cancelled is
/// dropped without taking one, so the message stays queued for the next `receive()`.
pub(crate) fn wake(slf: &Bound<'_, HttpProtocol>, waiter: Option<Wake>) -> PyResult<()> {
    let Some(waiter) = waiter else {
        return Ok(());
    };
    let py = slf.py();
    let waiter = waiter.bind(py);
    if waiter.call_method0(key!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    let waiting = waiter.clone().unbind();
    // Outside the WebSocket mode there is nothing to hand over.
    let message = HttpProtocol::decide(slf, |conn, fx| conn.ws_receive(Some(waiting), fx))?
        .ok()
        .flatten();
    if let Some(message) = message {
        waiter.call_method1(key!(py, "set_result"), (app_message(py, message)?,))?;
    }
    Ok(())
}

/// An upgrade request's head arrived: validate it, then run the app with a websocket
/// scope (or answer 400/426 and close).
pub(super) fn start(
    slf: &Bound<'_, HttpProtocol>,
    head: &RequestHead,
    scope: &Bound<'_, PyDict>,
    seq: u64,
    settings: WsSettings,
) -> PyResult<()> {
    let py = slf.py();
    let state = slf.get().state();
    let pairs: Vec<(&[u8], &[u8])> = head.iter_headers().collect();
    let minor = match head.version {
        Version::Http10 => 0,
        Version::Http11 => 1,
    };
    let validated = validate_handshake(head.method(), minor, &pairs).and_then(|handshake| {
        // A client must wait for the 101 before it sends anything (RFC 6455 4.1): bytes
        // already read past the head, or a body, cannot be frames of this connection.
        let early = slf
            .get()
            .lock()
            .map_or(true, |conn| conn.http1.buffered() > 0);
        if head.framing != Framing::None || early {
            return Err(HandshakeError {
                status: 400,
                reason: "data sent before the handshake response",
            });
        }
        Ok(handshake)
    });
    let handshake = match validated {
        Ok(handshake) => handshake,
        Err(err) => {
            return HttpProtocol::decide(slf, |conn, fx| {
                // The server's own header lines are always valid.
                let _ = err.write_response(&mut fx.write, &header_pairs(&state.default_lines()));
                conn.log_access(err.status, fx);
                conn.close(fx);
            });
        }
    };
    let subprotocols = PyList::new(py, handshake.subprotocols.iter())?;
    scope.set_item(key!(py, "subprotocols"), subprotocols)?;
    // build_scope made the extensions dict (with `tls` on a TLS connection).
    let extensions = scope
        .get_item(key!(py, "extensions"))?
        .ok_or_else(|| PyRuntimeError::new_err("scope without extensions"))?;
    extensions.set_item(key!(py, "websocket.http.response"), PyDict::new(py))?;
    slf.get().lock()?.mode = Mode::WebSocket(Box::new(WsConn {
        seq,
        phase: Phase::Handshake {
            handshake,
            connect_sent: false,
            early: Vec::new(),
        },
        settings,
        waiter: None,
        draining: state.is_draining(),
    }));
    if let Some(metrics) = &state.metrics {
        metrics.connection(crate::metrics::HTTP1, false);
        metrics.connection(crate::metrics::WEBSOCKET, true);
    }
    let cycle = Bound::new(py, WebSocketCycle::new(slf.clone().unbind()))?;
    let spawned = spawn_app(
        state,
        scope.clone(),
        callables(cycle.as_any())?,
        |awaitable| AppRunner::new(awaitable, slf.clone().unbind(), seq, Serves::WebSocket),
    );
    if let Err(error) = spawned {
        app_finished(slf, seq, Some(error))?;
    }
    Ok(())
}

/// The app is done (`error` when it raised): a handshake it never answered gets 500, an
/// open connection is closed (1000, or 1011 after an error), a denial response it did not
/// complete is settled like any HTTP response.
pub(crate) fn app_finished(
    slf: &Bound<'_, HttpProtocol>,
    seq: u64,
    error: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let state = slf.get().state();
    let failed = error.is_some();
    let error = error.map(Bound::unbind);
    // The error goes into the effects (logged first when they are applied) or back out:
    // never dropped under the lock.
    let (ended, error) = HttpProtocol::decide(slf, move |conn, fx| {
        let ended = conn.ws_app_finished(seq, failed, state, fx);
        if let AppEnd::Settled { complaint, .. } = &ended {
            fx.report_app_outcome(error, *complaint);
            return (ended, None);
        }
        (ended, error)
    })?;
    match ended {
        AppEnd::Settled { wake: waiter, .. } => wake(slf, waiter),
        AppEnd::Denial => {
            RequestCycle::app_finished(slf, seq, error.map(|e| e.into_bound(slf.py())))
        }
        AppEnd::NotMine => Ok(()),
    }
}

/// How the end of a WebSocket app was settled.
enum AppEnd {
    Settled {
        wake: Option<Wake>,
        complaint: Option<&'static str>,
    },
    /// The app denied with an HTTP response: settled as any HTTP response.
    Denial,
    /// Not this connection's WebSocket (anymore).
    NotMine,
}

impl Conn {
    /// The WebSocket state, or `None` outside the WebSocket mode.
    fn ws(&mut self) -> Option<&mut WsConn> {
        match &mut self.mode {
            Mode::WebSocket(ws) => Some(ws),
            Mode::Http1 | Mode::Http2(_) => None,
        }
    }

    /// Close the transport when a session step says so.
    fn apply_step(&mut self, step: Step, fx: &mut Effects) {
        if step.close_transport {
            self.close(fx);
        }
    }

    /// Answer the handshake with `status` (an error response), then close.
    fn refuse_handshake(&mut self, status: u16, state: &ServerState, fx: &mut Effects) {
        if !self.lost {
            fx.write = error_response(status, &state.default_lines());
        }
        self.close(fx);
        self.log_access(status, fx);
    }

    pub(super) fn ws_data_received(&mut self, data: &[u8], fx: &mut Effects) -> Option<Wake> {
        let lost = self.lost;
        let ws = self.ws()?;
        let mut step = Step::default();
        match &mut ws.phase {
            Phase::Handshake { early, .. } => early.extend_from_slice(data),
            Phase::Open(session) => step = session.feed(data, &mut fx.write),
            Phase::Denial | Phase::Refused => {}
        }
        let wake = ws.wake(lost);
        self.apply_step(step, fx);
        self.refresh_read_pause(fx);
        wake
    }

    /// The socket is gone: a waiting `receive()` gets `websocket.disconnect`.
    pub(super) fn ws_connection_lost(&mut self) -> Option<Wake> {
        let ws = self.ws()?;
        if let Phase::Open(session) = &mut ws.phase {
            session.connection_lost();
        }
        ws.wake(true)
    }

    /// The transport's buffer passed its high-water mark (`held`) or drained: pongs wait
    /// meanwhile (`Session::hold_replies`); one owed goes to `out` once it drained.
    pub(super) fn ws_hold_replies(&mut self, held: bool, out: &mut Vec<u8>) {
        if let Some(ws) = self.ws() {
            if let Phase::Open(session) = &mut ws.phase {
                session.hold_replies(held, out);
            }
        }
    }

    /// The sweep: server pings, the pong deadline and the closing-handshake deadline.
    pub(super) fn ws_tick(&mut self, now: Instant, fx: &mut Effects) -> Option<Wake> {
        if self.lost {
            return None;
        }
        let ws = self.ws()?;
        let Phase::Open(session) = &mut ws.phase else {
            return None;
        };
        let step = session.tick(now, &mut fx.write);
        let wake = ws.wake(false);
        self.apply_step(step, fx);
        wake
    }

    /// Graceful stop: the app is told (`websocket.disconnect`), then the client gets a close
    /// frame: 1012 (service restart) when the worker is being replaced, 1001 (going away)
    /// when the server stops. A handshake still waiting for the app is closed the same way
    /// as soon as it is accepted.
    pub(super) fn ws_drain(&mut self, state: &ServerState, fx: &mut Effects) -> Option<Wake> {
        let lost = self.lost;
        let ws = self.ws()?;
        ws.draining = true;
        let mut step = Step::default();
        if let Phase::Open(session) = &mut ws.phase {
            let (code, reason) = state.shutdown_close();
            session.close_by_server(code, reason, Instant::now(), &mut fx.write);
            step = session.process(&mut fx.write);
        }
        let wake = ws.wake(lost);
        self.apply_step(step, fx);
        self.refresh_read_pause(fx);
        wake
    }

    fn ws_app_finished(
        &mut self,
        seq: u64,
        failed: bool,
        state: &ServerState,
        fx: &mut Effects,
    ) -> AppEnd {
        let lost = self.lost;
        let Some(ws) = self.ws().filter(|ws| ws.seq == seq) else {
            return AppEnd::NotMine;
        };
        let mut complaint = None;
        let mut refused = None;
        let mut step = Step::default();
        match &mut ws.phase {
            Phase::Handshake { .. } => {
                if !failed {
                    complaint = Some("ASGI callable returned without sending handshake");
                }
                ws.phase = Phase::Refused;
                refused = Some(500);
            }
            Phase::Denial => return AppEnd::Denial,
            Phase::Open(session) => {
                let code = if failed {
                    close_code::INTERNAL_ERROR
                } else {
                    close_code::NORMAL
                };
                // Already closing or closed: nothing to add.
                let _ = session.close_by_app(code, "", Instant::now(), &mut fx.write);
                step = session.process(&mut fx.write);
            }
            Phase::Refused => {}
        }
        let wake = ws.wake(lost);
        self.apply_step(step, fx);
        self.refresh_read_pause(fx);
        if let Some(status) = refused {
            self.refuse_handshake(status, state, fx);
        }
        AppEnd::Settled { wake, complaint }
    }

    /// `receive()`: the next message if one is ready. Otherwise `waiter` (when given)
    /// waits for it.
    pub(crate) fn ws_receive(
        &mut self,
        waiter: Option<Wake>,
        fx: &mut Effects,
    ) -> PyResult<Option<WsReceived>> {
        let lost = self.lost;
        let Some(ws) = self.ws() else {
            return Err(PyRuntimeError::new_err("receive() outside a websocket"));
        };
        let (message, step) = ws.next_for_app(lost, &mut fx.write);
        if message.is_none() && waiter.is_some() {
            ws.waiter = waiter;
        }
        self.apply_step(step, fx);
        self.refresh_read_pause(fx);
        Ok(message)
    }

    /// The `receive()` waiting now, taken out (one waits at a time).
    pub(crate) fn ws_take_waiter(&mut self) -> Option<Wake> {
        self.ws().and_then(|ws| ws.waiter.take())
    }

    /// `waiter` is the `receive()` that waits now.
    pub(crate) fn ws_set_waiter(&mut self, waiter: Wake) {
        if let Some(ws) = self.ws() {
            ws.waiter = Some(waiter);
        }
    }

    /// `websocket.accept` with the app's `subprotocol` and extra `headers` (the server's
    /// own lines are added here).
    pub(crate) fn ws_accept(
        &mut self,
        subprotocol: Option<&str>,
        mut headers: Vec<(Vec<u8>, Vec<u8>)>,
        state: &ServerState,
        fx: &mut Effects,
    ) -> PyResult<Option<Wake>> {
        if self.lost {
            return Err(disconnected());
        }
        let write_paused = self.write_paused();
        let Some(ws) = self.ws() else {
            return Err(unexpected("websocket.accept", "outside a websocket"));
        };
        let Phase::Handshake {
            handshake, early, ..
        } = &mut ws.phase
        else {
            return Err(unexpected(
                "websocket.accept",
                "after the handshake was answered",
            ));
        };
        let defaults = state.default_lines();
        headers.extend(
            header_pairs(&defaults)
                .into_iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec())),
        );
        let deflate = negotiate_deflate(&handshake.deflate_offers, ws.settings.per_message_deflate);
        write_accept_response(
            &mut fx.write,
            &handshake.accept_key,
            subprotocol,
            deflate.as_ref().map(|(_, value)| value.as_str()),
            &headers,
        )
        .map_err(|err| PyValueError::new_err(format!("websocket.accept: {err}")))?;
        let now = Instant::now();
        let mut session = Session::new(ws.settings, deflate.as_ref().map(|(p, _)| p), now);
        session.hold_replies(write_paused, &mut fx.write);
        let early = std::mem::take(early);
        let step = session.feed(&early, &mut fx.write);
        if ws.draining {
            let (code, reason) = state.shutdown_close();
            session.close_by_server(code, reason, now, &mut fx.write);
        }
        ws.phase = Phase::Open(Box::new(session));
        let wake = ws.wake(false);
        self.apply_step(step, fx);
        self.refresh_read_pause(fx);
        self.log_access(101, fx);
        if let Some(metrics) = &state.metrics {
            metrics.websocket_session();
        }
        Ok(wake)
    }

    /// `websocket.send`.
    pub(crate) fn ws_send(&mut self, data: WsData<'_>, fx: &mut Effects) -> PyResult<()> {
        if self.lost {
            return Err(disconnected());
        }
        let Some(ws) = self.ws() else {
            return Err(unexpected("websocket.send", "outside a websocket"));
        };
        let Phase::Open(session) = &mut ws.phase else {
            return Err(unexpected("websocket.send", "before websocket.accept"));
        };
        let sent = match data {
            WsData::Bytes(data) => session.send_bytes(data, &mut fx.write),
            WsData::Text(text) => session.send_text(text, &mut fx.write),
        };
        match sent {
            Ok(()) => Ok(()),
            Err(SendError::Disconnected) => Err(disconnected()),
            Err(SendError::ClosedByApp) => {
                Err(unexpected("websocket.send", "after websocket.close"))
            }
            Err(SendError::Failed(err)) => {
                Err(PyRuntimeError::new_err(format!("websocket.send: {err}")))
            }
        }
    }

    /// `websocket.close`; before `websocket.accept` it refuses the handshake with 403.
    pub(crate) fn ws_close(
        &mut self,
        code: u16,
        reason: &str,
        state: &ServerState,
        fx: &mut Effects,
    ) -> PyResult<Option<Wake>> {
        let lost = self.lost;
        let Some(ws) = self.ws() else {
            return Err(unexpected("websocket.close", "outside a websocket"));
        };
        let mut refused = false;
        let mut step = Step::default();
        match &mut ws.phase {
            Phase::Handshake { .. } => {
                ws.phase = Phase::Refused;
                refused = true;
            }
            Phase::Open(session) => {
                if !lost {
                    session
                        .close_by_app(code, reason, Instant::now(), &mut fx.write)
                        .map_err(|_| unexpected("websocket.close", "after websocket.close"))?;
                    // Input held back by a full queue may hold the peer's close reply.
                    step = session.process(&mut fx.write);
                }
            }
            Phase::Denial | Phase::Refused => {
                return Err(unexpected(
                    "websocket.close",
                    "after the handshake was answered",
                ))
            }
        }
        let wake = ws.wake(lost);
        self.apply_step(step, fx);
        self.refresh_read_pause(fx);
        if refused {
            self.refuse_handshake(403, state, fx);
        }
        Ok(wake)
    }

    /// `websocket.http.response.start` (`start`) or `.body`: the exchange of the upgrade
    /// request that carries the denial response.
    pub(crate) fn ws_deny(&mut self, kind: &str, start: bool) -> PyResult<u64> {
        if self.lost {
            return Err(disconnected());
        }
        let Some(ws) = self.ws() else {
            return Err(unexpected(kind, "outside a websocket"));
        };
        match (&ws.phase, start) {
            (Phase::Handshake { .. }, true) => ws.phase = Phase::Denial,
            (Phase::Denial, false) => {}
            (Phase::Denial, true) => return Err(unexpected(kind, "sent twice")),
            (Phase::Handshake { .. }, false) => {
                return Err(unexpected(kind, "before websocket.http.response.start"))
            }
            (Phase::Open(_), _) => return Err(unexpected(kind, "after websocket.accept")),
            (Phase::Refused, _) => {
                return Err(unexpected(kind, "after the handshake was answered"))
            }
        }
        let seq = ws.seq;
        // The connection cannot be reused after an upgrade request.
        self.http1.close_after_response();
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_lines_become_pairs() {
        let lines = b"date: Sun, 06 Nov 1994 08:49:37 GMT\r\nserver: ruvicorn\r\nx-a: b:c\r\n";
        assert_eq!(
            header_pairs(lines),
            vec![
                (&b"date"[..], &b"Sun, 06 Nov 1994 08:49:37 GMT"[..]),
                (&b"server"[..], &b"ruvicorn"[..]),
                (&b"x-a"[..], &b"b:c"[..]),
            ]
        );
        assert!(header_pairs(b"").is_empty());
    }
}
