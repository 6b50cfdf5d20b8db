//! `WebSocketCycle`: the `receive`/`send` pair handed to a websocket app (ASGI websocket
//! spec, with the `websocket.http.response` denial extension).

use std::time::Instant;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

use super::{close_if, finish, header_pairs, Phase, Wake};
use crate::asgi::cycle::{ClientDisconnected, RequestCycle};
use crate::awaitable::ready_with;
use crate::key;
use crate::protocol::{Effects, HttpProtocol};
use ruvicorn_core::http1::connection::error_response;
use ruvicorn_core::ws::close_code;
use ruvicorn_core::ws::deflate::negotiate_deflate;
use ruvicorn_core::ws::handshake::write_accept_response;
use ruvicorn_core::ws::message::is_valid_close_code;
use ruvicorn_core::ws::session::{SendError, Session, Step};

#[pyclass(frozen, module = "ruvicorn._native")]
pub struct WebSocketCycle {
    protocol: Py<HttpProtocol>,
}

fn unexpected(kind: &str, when: &str) -> PyErr {
    PyRuntimeError::new_err(format!("Unexpected ASGI message '{kind}' {when}"))
}

fn disconnected() -> PyErr {
    ClientDisconnected::new_err("client disconnected")
}

/// `message[name]` as a str, or None when absent or None.
fn optional_str(
    message: &Bound<'_, PyDict>,
    name: &Bound<'_, PyString>,
) -> PyResult<Option<String>> {
    match message.get_item(name)? {
        Some(value) if !value.is_none() => Ok(Some(value.extract().map_err(|_| {
            PyTypeError::new_err(format!("websocket message '{name}' must be a str"))
        })?)),
        _ => Ok(None),
    }
}

/// The app's extra `websocket.accept` headers.
fn accept_headers(message: &Bound<'_, PyDict>) -> PyResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let py = message.py();
    let mut pairs = Vec::new();
    if let Some(headers) = message.get_item(key!(py, "headers"))? {
        if headers.is_none() {
            return Ok(pairs);
        }
        for item in headers.try_iter()? {
            let item = item?;
            let (name, value) = match item.cast::<PyTuple>() {
                Ok(tuple) if tuple.len() == 2 => (tuple.get_item(0)?, tuple.get_item(1)?),
                _ => (item.get_item(0)?, item.get_item(1)?),
            };
            let as_bytes = |obj: Bound<'_, PyAny>| -> PyResult<Vec<u8>> {
                obj.cast_into::<PyBytes>()
                    .map(|b| b.as_bytes().to_vec())
                    .map_err(|_| {
                        PyTypeError::new_err(
                            "websocket.accept header names and values must be bytes",
                        )
                    })
            };
            pairs.push((as_bytes(name)?.to_ascii_lowercase(), as_bytes(value)?));
        }
    }
    Ok(pairs)
}

impl WebSocketCycle {
    pub fn new(protocol: Py<HttpProtocol>) -> Self {
        Self { protocol }
    }

    fn ready(&self, py: Python<'_>) -> Py<PyAny> {
        self.protocol
            .get()
            .server
            .get()
            .ready_none
            .clone_ref(py)
            .into_any()
    }

    /// What `await send(...)` waits on: nothing, or the transport draining.
    fn after_write(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let this = self.protocol.get();
        let paused = {
            let inner = this.lock()?;
            inner.write_paused && !inner.lost
        };
        if paused {
            let waiter = this.server.get().create_future.bind(py).call0()?;
            this.add_drain_waiter(waiter.clone().unbind())?;
            return Ok(waiter.unbind());
        }
        Ok(self.ready(py))
    }

    fn accept(&self, py: Python<'_>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let protocol = self.protocol.bind(py);
        let this = protocol.get();
        let subprotocol = optional_str(message, key!(py, "subprotocol"))?;
        let mut headers = accept_headers(message)?;
        let defaults = this.default_lines();
        headers.extend(
            header_pairs(&defaults)
                .into_iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec())),
        );
        let mut fx = Effects::default();
        let wake_app: Option<Wake> = {
            let mut inner = this.lock()?;
            if inner.lost {
                return Err(disconnected());
            }
            let lost = inner.lost;
            let Some(ws) = inner.ws.as_mut() else {
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
            let deflate =
                negotiate_deflate(&handshake.deflate_offers, ws.settings.per_message_deflate);
            write_accept_response(
                &mut fx.write,
                &handshake.accept_key,
                subprotocol.as_deref(),
                deflate.as_ref().map(|(_, value)| value.as_str()),
                &headers,
            )
            .map_err(|err| PyValueError::new_err(format!("websocket.accept: {err}")))?;
            let now = Instant::now();
            let mut session = Session::new(ws.settings, deflate.as_ref().map(|(p, _)| p), now);
            let early = std::mem::take(early);
            let step = session.feed(&early, &mut fx.write);
            if ws.draining {
                let (code, reason) = this.server.get().shutdown_close();
                session.close_by_server(code, reason, now, &mut fx.write);
            }
            ws.phase = Phase::Open(Box::new(session));
            let wake_app = ws.wake(lost);
            close_if(&mut inner, step, &mut fx);
            inner.refresh_read_pause(&mut fx);
            fx.access = inner.access_line.take().map(|line| (line, 101));
            wake_app
        };
        finish(protocol, fx, wake_app)?;
        Ok(self.ready(py))
    }

    fn send_message(&self, py: Python<'_>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let protocol = self.protocol.bind(py);
        let this = protocol.get();
        let bytes = message
            .get_item(key!(py, "bytes"))?
            .filter(|value| !value.is_none());
        let text = message
            .get_item(key!(py, "text"))?
            .filter(|value| !value.is_none());
        let mut fx = Effects::default();
        {
            let mut inner = this.lock()?;
            if inner.lost {
                return Err(disconnected());
            }
            let Some(ws) = inner.ws.as_mut() else {
                return Err(unexpected("websocket.send", "outside a websocket"));
            };
            let Phase::Open(session) = &mut ws.phase else {
                return Err(unexpected("websocket.send", "before websocket.accept"));
            };
            let sent = match (&bytes, &text) {
                (Some(data), None) => {
                    let data = data.cast::<PyBytes>().map_err(|_| {
                        PyTypeError::new_err("websocket.send 'bytes' must be bytes")
                    })?;
                    session.send_bytes(data.as_bytes(), &mut fx.write)
                }
                (None, Some(text)) => {
                    let text = text
                        .cast::<PyString>()
                        .map_err(|_| PyTypeError::new_err("websocket.send 'text' must be a str"))?;
                    session.send_text(text.to_str()?, &mut fx.write)
                }
                _ => {
                    return Err(PyValueError::new_err(
                        "websocket.send needs exactly one of 'bytes' and 'text'",
                    ))
                }
            };
            match sent {
                Ok(()) => {}
                Err(SendError::Disconnected) => return Err(disconnected()),
                Err(SendError::ClosedByApp) => {
                    return Err(unexpected("websocket.send", "after websocket.close"))
                }
                Err(SendError::Failed(err)) => {
                    return Err(PyRuntimeError::new_err(format!("websocket.send: {err}")))
                }
            }
        }
        HttpProtocol::apply(protocol, fx)?;
        self.after_write(py)
    }

    fn close(&self, py: Python<'_>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let protocol = self.protocol.bind(py);
        let this = protocol.get();
        let code: u16 = match message.get_item(key!(py, "code"))? {
            Some(code) if !code.is_none() => code
                .extract()
                .map_err(|_| PyTypeError::new_err("websocket.close 'code' must be an int"))?,
            _ => close_code::NORMAL,
        };
        if !is_valid_close_code(code) {
            return Err(PyValueError::new_err(format!(
                "websocket.close: {code} is not a close code an endpoint may send"
            )));
        }
        let reason = optional_str(message, key!(py, "reason"))?.unwrap_or_default();
        let mut fx = Effects::default();
        let wake_app = {
            let mut inner = this.lock()?;
            let lost = inner.lost;
            let Some(ws) = inner.ws.as_mut() else {
                return Err(unexpected("websocket.close", "outside a websocket"));
            };
            let mut refused = false;
            let mut step = Step::default();
            match &mut ws.phase {
                Phase::Handshake { .. } => {
                    // Closing before accepting refuses the handshake with 403.
                    ws.phase = Phase::Refused;
                    refused = true;
                }
                Phase::Open(session) => {
                    if !lost {
                        session
                            .close_by_app(code, &reason, Instant::now(), &mut fx.write)
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
            let wake_app = ws.wake(lost);
            close_if(&mut inner, step, &mut fx);
            inner.refresh_read_pause(&mut fx);
            if refused {
                if !lost {
                    fx.write = error_response(403, &this.default_lines());
                }
                fx.close = true;
                inner.mark_closing();
                fx.access = inner.access_line.take().map(|line| (line, 403));
            }
            wake_app
        };
        finish(protocol, fx, wake_app)?;
        Ok(self.ready(py))
    }

    /// `websocket.http.response.start` / `.body`: the denial response goes through the
    /// upgrade request's HTTP exchange, as any response would.
    fn deny(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyDict>,
        start: bool,
    ) -> PyResult<Py<PyAny>> {
        let protocol = self.protocol.bind(py);
        let this = protocol.get();
        let seq = {
            let mut inner = this.lock()?;
            if inner.lost {
                return Err(disconnected());
            }
            let kind = if start {
                "websocket.http.response.start"
            } else {
                "websocket.http.response.body"
            };
            let Some(ws) = inner.ws.as_mut() else {
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
            inner.conn.close_after_response();
            seq
        };
        let http = message.copy()?;
        let kind = if start {
            key!(py, "http.response.start")
        } else {
            key!(py, "http.response.body")
        };
        http.set_item(key!(py, "type"), kind)?;
        let cycle = Bound::new(py, RequestCycle::new(protocol.clone().unbind(), seq))?;
        Ok(cycle.call_method1(key!(py, "send"), (http,))?.unbind())
    }
}

#[pymethods]
impl WebSocketCycle {
    /// ASGI `receive()`: `websocket.connect` first, then messages, then
    /// `websocket.disconnect`.
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let protocol = self.protocol.bind(py);
        let this = protocol.get();
        let mut fx = Effects::default();
        let message = {
            let mut inner = this.lock()?;
            let lost = inner.lost;
            let Some(ws) = inner.ws.as_mut() else {
                return Err(PyRuntimeError::new_err("receive() outside a websocket"));
            };
            let (message, step) = ws.next_for_app(lost, &mut fx.write);
            close_if(&mut inner, step, &mut fx);
            inner.refresh_read_pause(&mut fx);
            message
        };
        HttpProtocol::apply(protocol, fx)?;
        match message {
            Some(message) => {
                let dict = super::app_message(py, message)?;
                Ok(ready_with(dict.into_any())?.unbind())
            }
            None => {
                // One receive() waits at a time; a cancelled one's slot is free again.
                let previous = this.lock()?.ws.as_mut().and_then(|ws| ws.waiter.take());
                if let Some(previous) = previous {
                    if !previous
                        .bind(py)
                        .call_method0(key!(py, "done"))?
                        .is_truthy()?
                    {
                        if let Some(ws) = this.lock()?.ws.as_mut() {
                            ws.waiter = Some(previous);
                        }
                        return Err(PyRuntimeError::new_err(
                            "receive() called while another receive() is waiting",
                        ));
                    }
                }
                let waiter = this.server.get().create_future.bind(py).call0()?;
                let mut inner = this.lock()?;
                if let Some(ws) = inner.ws.as_mut() {
                    ws.waiter = Some(waiter.clone().unbind());
                }
                Ok(waiter.unbind())
            }
        }
    }

    /// ASGI `send(message)`.
    fn send(&self, py: Python<'_>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let kind = message
            .get_item(key!(py, "type"))?
            .ok_or_else(|| PyTypeError::new_err("ASGI message without a 'type'"))?;
        let kind = kind.cast::<PyString>()?.to_str()?;
        match kind {
            "websocket.send" => self.send_message(py, message),
            "websocket.accept" => self.accept(py, message),
            "websocket.close" => self.close(py, message),
            "websocket.http.response.start" | "http.response.start" => self.deny(py, message, true),
            "websocket.http.response.body" | "http.response.body" => self.deny(py, message, false),
            other => Err(PyRuntimeError::new_err(format!(
                "Unexpected ASGI message '{other}' sent for a websocket"
            ))),
        }
    }
}
