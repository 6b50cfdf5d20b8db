//! `WebSocketCycle`: the `receive`/`send` pair handed to a websocket app (ASGI websocket
//! spec, with the `websocket.http.response` denial extension).

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

use crate::asgi::cycle::{drain_wait, RequestCycle};
use crate::awaitable::ready_with;
use crate::conn::{wake, HttpProtocol, WsData, WsReceived};
use crate::key;
use ruvicorn_core::ws::close_code;
use ruvicorn_core::ws::message::is_valid_close_code;
use ruvicorn_core::ws::session::Incoming;

#[pyclass(frozen, module = "ruvicorn._native")]
pub struct WebSocketCycle {
    protocol: Py<HttpProtocol>,
}

/// The ASGI message for what the app receives.
pub(crate) fn app_message(py: Python<'_>, message: WsReceived) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    match message {
        WsReceived::Connect => dict.set_item(key!(py, "type"), key!(py, "websocket.connect"))?,
        WsReceived::Message(Incoming::Text(text)) => {
            dict.set_item(key!(py, "type"), key!(py, "websocket.receive"))?;
            dict.set_item(key!(py, "text"), PyString::new(py, &text))?;
        }
        WsReceived::Message(Incoming::Bytes(data)) => {
            dict.set_item(key!(py, "type"), key!(py, "websocket.receive"))?;
            dict.set_item(key!(py, "bytes"), PyBytes::new(py, &data))?;
        }
        WsReceived::Message(Incoming::Disconnect { code, reason }) => {
            dict.set_item(key!(py, "type"), key!(py, "websocket.disconnect"))?;
            dict.set_item(key!(py, "code"), code)?;
            dict.set_item(key!(py, "reason"), PyString::new(py, &reason))?;
        }
    }
    Ok(dict)
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
            .state()
            .ready_none
            .clone_ref(py)
            .into_any()
    }

    fn accept(&self, py: Python<'_>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let protocol = self.protocol.bind(py);
        let state = protocol.get().state();
        let subprotocol = optional_str(message, key!(py, "subprotocol"))?;
        let headers = accept_headers(message)?;
        let waiter = HttpProtocol::decide(protocol, |conn, fx| {
            conn.ws_accept(subprotocol.as_deref(), headers, state, fx)
        })??;
        wake(protocol, waiter)?;
        Ok(self.ready(py))
    }

    fn send_message(&self, py: Python<'_>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let protocol = self.protocol.bind(py);
        let bytes = message
            .get_item(key!(py, "bytes"))?
            .filter(|value| !value.is_none());
        let text = message
            .get_item(key!(py, "text"))?
            .filter(|value| !value.is_none());
        let data = match (&bytes, &text) {
            (Some(data), None) => WsData::Bytes(
                data.cast::<PyBytes>()
                    .map_err(|_| PyTypeError::new_err("websocket.send 'bytes' must be bytes"))?
                    .as_bytes(),
            ),
            (None, Some(text)) => WsData::Text(
                text.cast::<PyString>()
                    .map_err(|_| PyTypeError::new_err("websocket.send 'text' must be a str"))?
                    .to_str()?,
            ),
            _ => {
                return Err(PyValueError::new_err(
                    "websocket.send needs exactly one of 'bytes' and 'text'",
                ))
            }
        };
        HttpProtocol::decide(protocol, |conn, fx| conn.ws_send(data, fx))??;
        drain_wait(protocol, 0)
    }

    fn close(&self, py: Python<'_>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let protocol = self.protocol.bind(py);
        let state = protocol.get().state();
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
        let waiter =
            HttpProtocol::decide(protocol, |conn, fx| conn.ws_close(code, &reason, state, fx))??;
        wake(protocol, waiter)?;
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
        let kind = if start {
            "websocket.http.response.start"
        } else {
            "websocket.http.response.body"
        };
        let seq = protocol.get().lock()?.ws_deny(kind, start)?;
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
        let message = HttpProtocol::decide(protocol, |conn, fx| conn.ws_receive(None, fx))??;
        if let Some(message) = message {
            let dict = app_message(py, message)?;
            return Ok(ready_with(dict.into_any())?.unbind());
        }
        // One receive() waits at a time; a cancelled one's slot is free again.
        let previous = this.lock()?.ws_take_waiter();
        if let Some(previous) = previous {
            if !previous
                .bind(py)
                .call_method0(key!(py, "done"))?
                .is_truthy()?
            {
                this.lock()?.ws_set_waiter(previous);
                return Err(PyRuntimeError::new_err(
                    "receive() called while another receive() is waiting",
                ));
            }
        }
        let waiter = this.state().create_future.bind(py).call0()?;
        this.lock()?.ws_set_waiter(waiter.clone().unbind());
        Ok(waiter.unbind())
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
