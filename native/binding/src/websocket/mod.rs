//! WebSocket connections in the HTTP/1.1 protocol: the upgrade, the app's
//! `receive`/`send` ([`cycle::WebSocketCycle`]) and the per-connection state
//! (`ruvicorn_core::ws::session::Session`) once the app accepted.
//!
//! The protocol keeps one [`WsConn`] in its state from the upgrade request on and hands
//! every event of the connection (bytes read, connection lost, timeout sweep, graceful
//! drain) to the functions here. They follow the protocol's discipline: decide under its
//! lock, fill an [`Effects`], release the lock, then write, close and wake the app.

pub mod cycle;

use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::asgi::cycle::{report_app_outcome, RequestCycle};
use crate::asgi::runner::{spawn_app, AppRunner};
use crate::key;
use crate::protocol::{Effects, HttpProtocol, Inner};
use crate::server::ServerState;
use ruvicorn_core::http1::connection::error_response;
use ruvicorn_core::http1::request::{Framing, RequestHead};
use ruvicorn_core::http1::Version;
use ruvicorn_core::ws::close_code;
use ruvicorn_core::ws::handshake::{
    is_websocket_upgrade, validate_handshake, Handshake, HandshakeError,
};

use cycle::WebSocketCycle;
use ruvicorn_core::ws::session::{Incoming, Session, Step, WsSettings};

/// Bytes a client may send before the handshake is answered (it should send none) before
/// reading pauses.
const EARLY_DATA_LIMIT: usize = 64 * 1024;

/// What the app's `receive()` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToApp {
    Connect,
    Message(Incoming),
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
pub(crate) struct WsConn {
    /// The HTTP exchange of the upgrade request.
    seq: u64,
    phase: Phase,
    settings: WsSettings,
    /// The app's pending `receive()`.
    waiter: Option<Py<PyAny>>,
    /// A graceful stop began before the app accepted: close as soon as it does.
    draining: bool,
}

impl WsConn {
    /// Reading pauses while the app has `--ws-max-queue` messages it has not read.
    pub(crate) fn wants_read_pause(&self) -> bool {
        match &self.phase {
            Phase::Handshake { early, .. } => early.len() > EARLY_DATA_LIMIT,
            Phase::Open(session) => session.wants_read_pause(),
            Phase::Denial | Phase::Refused => false,
        }
    }

    /// The next message for the app, if one is ready; taking one may let more input be
    /// read (what that writes goes to `out`).
    fn next_for_app(&mut self, lost: bool, out: &mut Vec<u8>) -> (Option<ToApp>, Step) {
        let gone = || {
            Some(ToApp::Message(Incoming::Disconnect {
                code: close_code::ABNORMAL_CLOSURE,
                reason: String::new(),
            }))
        };
        match &mut self.phase {
            Phase::Handshake { connect_sent, .. } => {
                if !*connect_sent {
                    *connect_sent = true;
                    (Some(ToApp::Connect), Step::default())
                } else if lost {
                    (gone(), Step::default())
                } else {
                    (None, Step::default())
                }
            }
            Phase::Open(session) => match session.pop() {
                Some(message) => (Some(ToApp::Message(message)), session.process(out)),
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

/// A `receive()` future to complete.
pub(crate) type Wake = Py<PyAny>;

/// Whether this request head asks for a WebSocket that this worker serves: an HTTP/1.1
/// upgrade (`Connection: upgrade`, which the head parser already noted) to `websocket`.
/// Other requests pay one flag test.
pub(crate) fn is_upgrade(state: &ServerState, head: &RequestHead) -> bool {
    head.upgrade
        && state.ws.is_some()
        && is_websocket_upgrade(&head.iter_headers().collect::<Vec<_>>())
}

/// The server's default header lines (`date`, `server`, `--header`) as pairs.
fn header_pairs(lines: &[u8]) -> Vec<(&[u8], &[u8])> {
    lines
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], line[colon + 1..].trim_ascii()))
        })
        .collect()
}

/// The ASGI message for what the app receives.
pub(crate) fn app_message(py: Python<'_>, message: ToApp) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    match message {
        ToApp::Connect => dict.set_item(key!(py, "type"), key!(py, "websocket.connect"))?,
        ToApp::Message(Incoming::Text(text)) => {
            dict.set_item(key!(py, "type"), key!(py, "websocket.receive"))?;
            dict.set_item(key!(py, "text"), PyString::new(py, &text))?;
        }
        ToApp::Message(Incoming::Bytes(data)) => {
            dict.set_item(key!(py, "type"), key!(py, "websocket.receive"))?;
            dict.set_item(key!(py, "bytes"), PyBytes::new(py, &data))?;
        }
        ToApp::Message(Incoming::Disconnect { code, reason }) => {
            dict.set_item(key!(py, "type"), key!(py, "websocket.disconnect"))?;
            dict.set_item(key!(py, "code"), code)?;
            dict.set_item(key!(py, "reason"), PyString::new(py, &reason))?;
        }
    }
    Ok(dict)
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
    let mut fx = Effects::default();
    let message = {
        let mut inner = slf.get().lock()?;
        let lost = inner.lost;
        let Some(ws) = inner.ws.as_mut() else {
            return Ok(());
        };
        let (message, step) = ws.next_for_app(lost, &mut fx.write);
        if message.is_none() {
            ws.waiter = Some(waiter.clone().unbind());
        }
        close_if(&mut inner, step, &mut fx);
        inner.refresh_read_pause(&mut fx);
        message
    };
    HttpProtocol::apply(slf, fx)?;
    if let Some(message) = message {
        waiter.call_method1(key!(py, "set_result"), (app_message(py, message)?,))?;
    }
    Ok(())
}

/// Close the transport when a session step says so.
fn close_if(inner: &mut Inner, step: Step, fx: &mut Effects) {
    if step.close_transport {
        fx.close = true;
        inner.mark_closing();
    }
}

/// Perform the effects, then wake the app.
fn finish(slf: &Bound<'_, HttpProtocol>, fx: Effects, wake_app: Option<Wake>) -> PyResult<()> {
    HttpProtocol::apply(slf, fx)?;
    wake(slf, wake_app)
}

/// An upgrade request's head arrived: validate it, then run the app with a websocket
/// scope (or answer 400/426 and close).
pub(crate) fn start(
    slf: &Bound<'_, HttpProtocol>,
    head: &RequestHead,
    scope: &Bound<'_, PyDict>,
    seq: u64,
) -> PyResult<()> {
    let py = slf.py();
    let this = slf.get();
    let state = this.server.get();
    let settings = state.ws.unwrap_or_default();
    let pairs: Vec<(&[u8], &[u8])> = head.iter_headers().collect();
    let minor = match head.version {
        Version::Http10 => 0,
        Version::Http11 => 1,
    };
    let validated = validate_handshake(head.method(), minor, &pairs).and_then(|handshake| {
        // A client must wait for the 101 before it sends anything (RFC 6455 4.1): bytes
        // already read past the head, or a body, cannot be frames of this connection.
        let early = this.lock().map_or(true, |inner| inner.conn.buffered() > 0);
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
            let mut fx = Effects::default();
            let defaults = this.default_lines();
            // The server's own header lines are always valid.
            let _ = err.write_response(&mut fx.write, &header_pairs(&defaults));
            fx.close = true;
            {
                let mut inner = this.lock()?;
                inner.mark_closing();
                fx.access = inner.access_line.take().map(|line| (line, err.status));
            }
            return HttpProtocol::apply(slf, fx);
        }
    };
    let subprotocols = PyList::new(py, handshake.subprotocols.iter())?;
    scope.set_item(key!(py, "subprotocols"), subprotocols)?;
    let extensions = PyDict::new(py);
    extensions.set_item(key!(py, "websocket.http.response"), PyDict::new(py))?;
    scope.set_item(key!(py, "extensions"), extensions)?;
    this.lock()?.ws = Some(Box::new(WsConn {
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
    let cycle = Bound::new(py, WebSocketCycle::new(slf.clone().unbind()))?;
    let failed = spawn_app(state, scope.clone(), cycle.as_any(), |awaitable| {
        AppRunner::for_websocket(awaitable, slf.clone().unbind(), seq)
    });
    if let Some(error) = failed {
        app_finished(slf, seq, Some(error))?;
    }
    Ok(())
}

/// Bytes read from an upgraded connection.
pub(crate) fn data_received(slf: &Bound<'_, HttpProtocol>, data: &[u8]) -> PyResult<()> {
    let mut fx = Effects::default();
    let wake_app = {
        let mut inner = slf.get().lock()?;
        let lost = inner.lost;
        let Some(ws) = inner.ws.as_mut() else {
            return Ok(());
        };
        let mut step = Step::default();
        match &mut ws.phase {
            Phase::Handshake { early, .. } => early.extend_from_slice(data),
            Phase::Open(session) => step = session.feed(data, &mut fx.write),
            Phase::Denial | Phase::Refused => {}
        }
        let wake_app = ws.wake(lost);
        close_if(&mut inner, step, &mut fx);
        inner.refresh_read_pause(&mut fx);
        wake_app
    };
    finish(slf, fx, wake_app)
}

/// The socket is gone: a waiting `receive()` gets `websocket.disconnect`.
pub(crate) fn connection_lost(inner: &mut Inner) -> Option<Wake> {
    let ws = inner.ws.as_mut()?;
    if let Phase::Open(session) = &mut ws.phase {
        session.connection_lost();
    }
    ws.wake(true)
}

/// The sweep: server pings, the pong deadline and the closing-handshake deadline.
pub(crate) fn check_deadline(slf: &Bound<'_, HttpProtocol>, now: Instant) -> PyResult<()> {
    let mut fx = Effects::default();
    let wake_app = {
        let Ok(mut inner) = slf.get().lock() else {
            return Ok(());
        };
        if inner.lost {
            return Ok(());
        }
        let lost = inner.lost;
        let Some(ws) = inner.ws.as_mut() else {
            return Ok(());
        };
        let Phase::Open(session) = &mut ws.phase else {
            return Ok(());
        };
        let step = session.tick(now, &mut fx.write);
        let wake_app = ws.wake(lost);
        close_if(&mut inner, step, &mut fx);
        wake_app
    };
    finish(slf, fx, wake_app)
}

/// Graceful stop: the app is told (`websocket.disconnect`), then the client gets a close
/// frame: 1012 (service restart) when the worker is being replaced, 1001 (going away) when
/// the server stops. A handshake still waiting for the app is closed the same way as soon
/// as it is accepted.
pub(crate) fn drain(slf: &Bound<'_, HttpProtocol>) -> PyResult<()> {
    let mut fx = Effects::default();
    let wake_app = {
        let mut inner = slf.get().lock()?;
        let lost = inner.lost;
        let Some(ws) = inner.ws.as_mut() else {
            return Ok(());
        };
        ws.draining = true;
        let mut step = Step::default();
        if let Phase::Open(session) = &mut ws.phase {
            let (code, reason) = slf.get().server.get().shutdown_close();
            session.close_by_server(code, reason, Instant::now(), &mut fx.write);
            step = session.process(&mut fx.write);
        }
        let wake_app = ws.wake(lost);
        close_if(&mut inner, step, &mut fx);
        inner.refresh_read_pause(&mut fx);
        wake_app
    };
    finish(slf, fx, wake_app)
}

/// The app is done (`error` when it raised): a handshake it never answered gets 500, an
/// open connection is closed (1000, or 1011 after an error), a denial response it did not
/// complete is settled like any HTTP response.
pub(crate) fn app_finished(
    slf: &Bound<'_, HttpProtocol>,
    seq: u64,
    error: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let py = slf.py();
    let this = slf.get();
    let mut fx = Effects::default();
    let mut complaint = None;
    let wake_app = {
        let mut inner = this.lock()?;
        let lost = inner.lost;
        let Some(ws) = inner.ws.as_mut().filter(|ws| ws.seq == seq) else {
            return Ok(());
        };
        let mut status = None;
        let mut step = Step::default();
        match &mut ws.phase {
            Phase::Handshake { .. } => {
                if error.is_none() {
                    complaint = Some("ASGI callable returned without sending handshake");
                }
                ws.phase = Phase::Refused;
                status = Some(500);
            }
            Phase::Denial => {
                drop(inner);
                return RequestCycle::app_finished(slf, seq, error);
            }
            Phase::Open(session) => {
                let code = if error.is_some() {
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
        let wake_app = ws.wake(lost);
        close_if(&mut inner, step, &mut fx);
        inner.refresh_read_pause(&mut fx);
        if let Some(status) = status {
            if !lost {
                fx.write = error_response(status, &this.default_lines());
            }
            fx.close = true;
            inner.mark_closing();
            fx.access = inner.access_line.take().map(|line| (line, status));
        }
        wake_app
    };
    let log = this.server.get().error_log.bind(py);
    report_app_outcome(log, error, complaint)?;
    finish(slf, fx, wake_app)
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
