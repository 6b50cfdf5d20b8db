//! `RequestCycle`: the `receive`/`send` pair handed to the app for one request.
//!
//! A cycle only names its exchange (`seq`); the state lives in the protocol, so a cycle
//! whose response completed turns stale instead of touching the next request. A
//! connection may hand a cycle nothing refers to any more to its next exchange
//! (`SpareCycle`).

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::awaitable::ready_with;
use crate::conn::HttpProtocol;
use crate::key;
use ruvicorn_core::http1::connection::ReceiveOutcome;

create_exception!(
    _native,
    ClientDisconnected,
    PyOSError,
    "send() after the client closed the connection."
);

/// Log how an app ended: its exception with traceback, or a one-line complaint about a
/// response it left unfinished. A client that left is expected, so it is a debug line.
pub fn report_app_outcome(
    log: &Bound<'_, PyAny>,
    error: Option<Bound<'_, PyAny>>,
    complaint: Option<&str>,
) -> PyResult<()> {
    let py = log.py();
    match error {
        Some(error) if error.is_instance_of::<ClientDisconnected>() => {
            log.call_method1(
                key!(py, "debug"),
                ("Client disconnected before the app finished",),
            )?;
        }
        Some(error) => {
            let kwargs = PyDict::new(py);
            kwargs.set_item(key!(py, "exc_info"), error)?;
            log.call_method(
                key!(py, "error"),
                ("Exception in ASGI application",),
                Some(&kwargs),
            )?;
        }
        None => {
            if let Some(complaint) = complaint {
                log.call_method1(key!(py, "error"), (complaint,))?;
            }
        }
    }
    Ok(())
}

/// What `await send(...)` waits on: nothing, or the transport draining.
pub(crate) fn drain_wait(protocol: &Bound<'_, HttpProtocol>, seq: u64) -> PyResult<Py<PyAny>> {
    let py = protocol.py();
    let this = protocol.get();
    if this.lock()?.must_wait_for_drain(seq) {
        let waiter = this.state().create_future.bind(py).call0()?;
        this.lock()?.add_drain_waiter(seq, waiter.clone().unbind());
        return Ok(waiter.unbind());
    }
    Ok(this.state().ready_none.clone_ref(py).into_any())
}

/// The ASGI message for a receive outcome that does not wait.
pub(crate) fn receive_message(
    py: Python<'_>,
    outcome: ReceiveOutcome,
) -> PyResult<Bound<'_, PyDict>> {
    match outcome {
        ReceiveOutcome::Body { body, more_body } => {
            let message = body_message_template(py)?.copy()?;
            if !body.is_empty() {
                message.set_item(key!(py, "body"), PyBytes::new(py, &body))?;
            }
            if more_body {
                message.set_item(key!(py, "more_body"), true)?;
            }
            Ok(message)
        }
        ReceiveOutcome::Disconnect | ReceiveOutcome::Wait { .. } => {
            let message = PyDict::new(py);
            message.set_item(key!(py, "type"), key!(py, "http.disconnect"))?;
            Ok(message)
        }
    }
}

/// `{"type": "http.request", "body": b"", "more_body": False}`: each body message is a
/// copy of it, which costs less than building a dict key by key, with only the values
/// that differ set.
fn body_message_template(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    static TEMPLATE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    let template = TEMPLATE.get_or_try_init(py, || -> PyResult<Py<PyDict>> {
        let message = PyDict::new(py);
        message.set_item(key!(py, "type"), key!(py, "http.request"))?;
        message.set_item(key!(py, "body"), PyBytes::new(py, b""))?;
        message.set_item(key!(py, "more_body"), false)?;
        Ok(message.unbind())
    })?;
    Ok(template.bind(py))
}

/// A message's `headers` as (name, value) byte strings.
type Pairs<'py> = Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>;

/// A message's header pairs, and its headers as a list (None without any).
fn header_pairs<'py>(
    message: &Bound<'py, PyDict>,
) -> PyResult<(Pairs<'py>, Option<Bound<'py, PyList>>)> {
    let py = message.py();
    let mut pairs = Vec::new();
    let mut listed = None;
    if let Some(headers) = message.get_item(key!(py, "headers"))? {
        let headers = match headers.cast::<PyList>() {
            Ok(list) => list.clone(),
            Err(_) => PyList::new(py, headers.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
        };
        listed = Some(headers.clone());
        pairs.reserve(headers.len());
        for item in headers.iter() {
            let (name, value) = match item.cast::<PyTuple>() {
                Ok(tuple) if tuple.len() == 2 => (tuple.get_item(0)?, tuple.get_item(1)?),
                _ => (item.get_item(0)?, item.get_item(1)?),
            };
            pairs.push((header_bytes(name)?, header_bytes(value)?));
        }
    }
    Ok((pairs, listed))
}

fn header_bytes(obj: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyBytes>> {
    obj.cast_into::<PyBytes>()
        .map_err(|_| PyTypeError::new_err("response header names and values must be bytes"))
}

#[pyclass(frozen, module = "ruvicorn._native")]
pub struct RequestCycle {
    protocol: Py<HttpProtocol>,
    /// The exchange served; renumbered only while nothing but a `SpareCycle` refers to
    /// the cycle.
    seq: AtomicU64,
}

/// `receive` and `send` of a cycle (`RequestCycle` or `WebSocketCycle`), as the app gets
/// them.
pub fn callables<'py>(
    cycle: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let py = cycle.py();
    Ok((
        cycle.getattr(key!(py, "receive"))?,
        cycle.getattr(key!(py, "send"))?,
    ))
}

/// A connection's last HTTP/1.1 cycle with its bound `receive` and `send`, handed to the
/// connection's next exchange when nothing else refers to any of the three: no app, Task
/// or stale reference can call them then, so renumbering the cycle cannot reach the
/// exchange it served. A keep-alive request then creates and frees three objects fewer.
pub struct SpareCycle {
    cycle: Py<RequestCycle>,
    receive: Py<PyAny>,
    send: Py<PyAny>,
}

impl SpareCycle {
    fn new(protocol: &Bound<'_, HttpProtocol>, seq: u64) -> PyResult<Self> {
        let py = protocol.py();
        let cycle = Bound::new(py, RequestCycle::new(protocol.clone().unbind(), seq))?;
        let (receive, send) = callables(cycle.as_any())?;
        Ok(Self {
            cycle: cycle.unbind(),
            receive: receive.unbind(),
            send: send.unbind(),
        })
    }

    /// Referred to by this spare alone: once by it and once by each bound method for the
    /// cycle, once by it for each method, and no weak reference to either method (the
    /// cycle's class takes none).
    fn unshared(&self, py: Python<'_>) -> bool {
        let only_ours = |method: &Py<PyAny>| {
            let method = method.bind(py);
            references(method) == 1 && !weakly_referred(method)
        };
        only_ours(&self.receive)
            && only_ours(&self.send)
            && references(self.cycle.bind(py).as_any()) == 3
    }

    /// `receive` and `send` for exchange `seq`, and the spare to keep: `spare` renumbered
    /// when it is unshared, else a new cycle. Called with no lock held, as the old spare
    /// may be freed here (running Python code).
    pub fn take_for<'py>(
        spare: Option<SpareCycle>,
        protocol: &Bound<'py, HttpProtocol>,
        seq: u64,
    ) -> PyResult<(CyclePair<'py>, SpareCycle)> {
        let py = protocol.py();
        let kept = match spare {
            Some(kept) if kept.unshared(py) => {
                kept.cycle.get().seq.store(seq, Ordering::Relaxed);
                kept
            }
            other => {
                drop(other);
                Self::new(protocol, seq)?
            }
        };
        let pair = (kept.receive.bind(py).clone(), kept.send.bind(py).clone());
        Ok((pair, kept))
    }
}

/// The `receive` and `send` an app is called with.
pub type CyclePair<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>);

/// How many references `object` has.
#[allow(unsafe_code)]
fn references(object: &Bound<'_, PyAny>) -> isize {
    // SAFETY: reads the count of a live object (kept alive by its `Bound`), GIL held.
    unsafe { pyo3::ffi::Py_REFCNT(object.as_ptr()) }
}

/// Whether a weak reference points to `method` (anything but a built-in bound method
/// counts as referred to).
#[allow(unsafe_code)]
fn weakly_referred(method: &Bound<'_, PyAny>) -> bool {
    // SAFETY: a type check of a valid object (kept alive by its `Bound`) with the GIL held.
    if unsafe { pyo3::ffi::PyCFunction_Check(method.as_ptr()) } == 0 {
        return true;
    }
    // SAFETY: the check above found a `PyCFunctionObject` (or a `PyCMethodObject`, which
    // begins with one), alive and, with the GIL held, not changing; its weak reference
    // list pointer is only read and compared to NULL.
    unsafe {
        !(*method.as_ptr().cast::<pyo3::ffi::PyCFunctionObject>())
            .m_weakreflist
            .is_null()
    }
}

impl RequestCycle {
    pub fn new(protocol: Py<HttpProtocol>, seq: u64) -> Self {
        Self {
            protocol,
            seq: AtomicU64::new(seq),
        }
    }

    fn seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// The app is done (`error` when it raised): its response is settled (see
    /// `Conn::app_finished`) and how it ended is logged.
    pub fn app_finished(
        protocol: &Bound<'_, HttpProtocol>,
        seq: u64,
        error: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let state = protocol.get().state();
        let error = error.map(Bound::unbind);
        HttpProtocol::decide(protocol, move |conn, fx| {
            let complaint = conn.app_finished(seq, state, fx);
            fx.report_app_outcome(error, complaint);
        })
    }

    fn send_start(&self, py: Python<'_>, message: &Bound<'_, PyDict>) -> PyResult<()> {
        let this = self.protocol.get();
        let status: u16 = match message.get_item(key!(py, "status"))? {
            Some(status) => status
                .extract()
                .map_err(|_| PyTypeError::new_err("http.response.start 'status' must be an int"))?,
            None => return Err(PyTypeError::new_err("http.response.start needs a 'status'")),
        };
        let (pairs, listed) = header_pairs(message)?;
        let trailers = match message.get_item(key!(py, "trailers"))? {
            Some(flag) => flag.is_truthy()?,
            None => false,
        };
        let mut conn = this.lock()?;
        this.state().with_default_lines(|defaults| {
            conn.start_response(
                self.seq(),
                status,
                pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                trailers,
                defaults,
            )
        })?;
        if this.state().access_response_headers {
            conn.keep_response_headers(self.seq(), listed.map(Bound::unbind));
        }
        Ok(())
    }

    /// `http.response.trailers` (advertised on HTTP/2 only).
    fn send_trailers(slf: &Bound<'_, Self>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let cycle = slf.get();
        let seq = cycle.seq();
        let protocol = cycle.protocol.bind(py);
        let (pairs, _) = header_pairs(message)?;
        let more = match message.get_item(key!(py, "more_trailers"))? {
            Some(flag) => flag.is_truthy()?,
            None => false,
        };
        HttpProtocol::decide(protocol, |conn, fx| {
            conn.send_trailers(
                seq,
                pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                more,
                fx,
            )
        })??;
        drain_wait(protocol, seq)
    }

    fn send_body(slf: &Bound<'_, Self>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let cycle = slf.get();
        let seq = cycle.seq();
        let protocol = cycle.protocol.bind(py);
        let this = protocol.get();
        let body = message.get_item(key!(py, "body"))?;
        let body_bytes: Option<Bound<'_, PyBytes>> = match &body {
            None => None,
            Some(obj) => Some(match obj.cast::<PyBytes>() {
                Ok(bytes) => bytes.clone(),
                Err(_) => PyBytes::new(
                    py,
                    &obj.extract::<Vec<u8>>().map_err(|_| {
                        PyTypeError::new_err("http.response.body 'body' must be bytes")
                    })?,
                ),
            }),
        };
        let more_body = match message.get_item(key!(py, "more_body"))? {
            Some(flag) => flag.is_truthy()?,
            None => false,
        };
        let data = body_bytes.as_ref().map_or(&b""[..], |b| b.as_bytes());
        let state = this.state();
        let hold = more_body && this.app_stepping();
        HttpProtocol::decide(protocol, |conn, fx| {
            conn.send_body(seq, data, body_bytes.as_ref(), more_body, state, fx)?;
            if hold {
                conn.hold_output(py, fx, state.vectored_writes);
            }
            PyResult::Ok(())
        })??;
        drain_wait(protocol, seq)
    }

    fn send_path(slf: &Bound<'_, Self>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let cycle = slf.get();
        let this = cycle.protocol.get();
        let Some(helper) = &this.state().pathsend else {
            return Err(PyRuntimeError::new_err(
                "http.response.pathsend is not enabled",
            ));
        };
        let path = message
            .get_item(key!(py, "path"))?
            .ok_or_else(|| PyTypeError::new_err("http.response.pathsend needs a 'path'"))?;
        let file: std::path::PathBuf = path.extract()?;
        let length = std::fs::metadata(&file)?.len();
        this.lock()?.set_body_length(cycle.seq(), length);
        let send = slf.getattr(key!(py, "send"))?;
        Ok(helper.bind(py).call1((send, path))?.unbind())
    }
}

#[pymethods]
impl RequestCycle {
    /// ASGI `receive()`: ready at once when body bytes (or the end) are queued.
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        // Read once: the cycle is renumbered only when nothing refers to it, but one
        // number per call is the rule that needs no such argument.
        let seq = self.seq();
        let protocol = self.protocol.bind(py);
        let this = protocol.get();
        // Called from any Task of the app's: what it starts is inside app code.
        let _app_code = this.state().app_call();
        let outcome = HttpProtocol::decide(protocol, |conn, fx| conn.receive(seq, fx))?;
        if let ReceiveOutcome::Wait { .. } = outcome {
            let waiter = this.state().create_future.bind(py).call0()?;
            this.lock()?
                .add_receive_waiter(seq, waiter.clone().unbind());
            return Ok(waiter.unbind());
        }
        let message = receive_message(py, outcome)?;
        Ok(ready_with(message.into_any())?.unbind())
    }

    /// ASGI `send(message)`.
    fn send(slf: &Bound<'_, Self>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        // Called from any Task of the app's: what it starts is inside app code.
        let _app_code = slf.get().protocol.get().state().app_call();
        let kind = message
            .get_item(key!(py, "type"))?
            .ok_or_else(|| PyTypeError::new_err("ASGI message without a 'type'"))?;
        let kind = kind.cast::<PyString>()?.to_str()?;
        match kind {
            "http.response.body" => Self::send_body(slf, message),
            "http.response.start" => {
                slf.get().send_start(py, message)?;
                Ok(slf
                    .get()
                    .protocol
                    .get()
                    .state()
                    .ready_none
                    .clone_ref(py)
                    .into_any())
            }
            "http.response.pathsend" => Self::send_path(slf, message),
            "http.response.trailers" => Self::send_trailers(slf, message),
            other => Err(PyRuntimeError::new_err(format!(
                "Unexpected ASGI message '{other}' sent for an HTTP request"
            ))),
        }
    }
}
