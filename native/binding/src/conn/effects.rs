//! What a decision taken under the connection's lock leaves to do once it is released.

use std::fmt::Display;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use super::cork::{Cork, LARGE_BODY};
use super::{Access, Conn, HttpProtocol};
use crate::asgi::cycle::{receive_message, report_app_outcome};
use crate::key;
use ruvicorn_core::http1::connection::ReceiveOutcome;
use ruvicorn_core::http1::request::RequestHead;
use ruvicorn_core::http1::RequestError;

/// Python work decided under the lock, done after it is released.
#[derive(Default)]
pub(crate) struct Effects {
    /// Bytes to write; then `write_body` and `write_suffix` (a response body part, so the
    /// app's bytes are copied only into the final buffer); then `write_tail`.
    pub(super) write: Vec<u8>,
    pub(super) write_body: Option<Py<PyBytes>>,
    pub(super) write_suffix: &'static [u8],
    pub(super) write_tail: Vec<u8>,
    /// Output held back (`cork.rs`), written before all of the above.
    pub(super) corked: Option<Box<Cork>>,
    /// Write the output held back now, even with nothing else to write.
    pub(super) release_held: bool,
    /// On a TLS connection, all of the above (and the TLS layer's own records) encrypted.
    pub(super) sealed: Option<Py<PyBytes>>,
    /// A TLS failure or a plain HTTP client on the TLS port, for one debug line:
    /// what happened (it precedes the client's name) and the detail.
    pub(super) tls_note: Option<(&'static str, String)>,
    /// Half-close after the writes (`transport.write_eof()`); see `Conn::half_close`.
    pub(super) write_eof: bool,
    pub(super) close: bool,
    /// Close without waiting for the output to reach the client (`transport.abort()`):
    /// for a response cut short, which a client that reads nothing would otherwise hold
    /// open for as long as the kernel keeps trying to deliver it.
    pub(super) abort: bool,
    pub(super) pause_reading: Option<bool>,
    /// A request head whose app is to start, with its exchange.
    pub(super) start: Option<(RequestHead, u64)>,
    /// HTTP/2 streams whose apps are to start.
    pub(super) start_h2: Vec<super::http2::StreamStart>,
    /// The stream engine's output is due (`StreamEngine::output_due`): HTTP/2's is written
    /// on the loop's next turn (`Conn::h2_flush`), HTTP/3's datagrams are sent at once
    /// (`QuicTransport.flush`).
    pub(super) flush_streams: bool,
    /// `receive()` futures to complete: with the next body message (`Some(seq)`, taken only
    /// once the future is known not to be cancelled) or with http.disconnect (`None`).
    pub(super) wake_receive: Vec<(Py<PyAny>, Option<u64>)>,
    pub(super) wake_drain: Vec<Py<PyAny>>,
    /// The app Tasks of streams the client reset, to cancel (`task.cancel()`).
    pub(super) cancel: Vec<Py<PyAny>>,
    pub(super) refused: Option<RequestError>,
    /// Request bodies that went this long without a byte (`--timeout-request-body`): one
    /// line each (an HTTP/1.1 exchange, or streams of an HTTP/2 or HTTP/3 connection).
    pub(super) body_timeouts: Vec<std::time::Duration>,
    /// The client read nothing for this long while the transport was full
    /// (`--timeout-send`): one line, as the connection is aborted.
    pub(super) send_timeout: Option<std::time::Duration>,
    /// Why the stream engine ended the connection with an error, for one warning line
    /// (as a refused HTTP/1.1 request gets).
    pub(super) protocol_error: Option<String>,
    /// HTTP/2 streams reset for the client's errors, with the code: a debug line each
    /// (a client can cause many on one connection).
    pub(super) stream_errors: Vec<(u32, u32)>,
    pub(super) access: Option<(Box<Access>, u16)>,
    /// A refused request's record: the response before it may complete in the same turn.
    pub(super) refused_access: Option<(Box<Access>, u16)>,
    /// The records of HTTP/2 streams that ended.
    pub(super) stream_access: Vec<(Box<Access>, u16)>,
    /// How an app ended, to log before anything else is done: its exception, or a
    /// complaint about the response it left unfinished.
    app_outcome: Option<(Option<Py<PyAny>>, Option<&'static str>)>,
}

impl Effects {
    /// Log how an app ended (nothing when it raised nothing and left nothing to complain
    /// about).
    pub(crate) fn report_app_outcome(
        &mut self,
        error: Option<Py<PyAny>>,
        complaint: Option<&'static str>,
    ) {
        if error.is_some() || complaint.is_some() {
            self.app_outcome = Some((error, complaint));
        }
    }

    /// Everything to write: output held back first (`corked`), then one `bytes` built
    /// with a single copy of each part or, for a body part of at least `LARGE_BODY`
    /// bytes when the transport's `writelines` applies flow control (`vectored`), the
    /// app's own `bytes` between the framing around it (so the body is never copied in
    /// user space).
    fn wire<'py>(&mut self, py: Python<'py>, vectored: bool) -> PyResult<Option<Wire<'py>>> {
        if let Some(sealed) = &self.sealed {
            return Ok(Some(Wire::One(sealed.bind(py).clone())));
        }
        let large_body = vectored
            && self
                .write_body
                .as_ref()
                .is_some_and(|b| b.bind(py).as_bytes().len() >= LARGE_BODY);
        if self.corked.is_some() || large_body {
            let mut cork = self.corked.take().unwrap_or_default();
            cork.absorb(py, self, vectored);
            return cork.into_wire(py);
        }
        let body = self.write_body.as_ref().map(|b| b.bind(py));
        if body.is_none() && self.write_suffix.is_empty() && self.write_tail.is_empty() {
            return Ok((!self.write.is_empty()).then(|| Wire::One(PyBytes::new(py, &self.write))));
        }
        let body = body.map_or(&b""[..], |b| b.as_bytes());
        let parts = [
            &self.write[..],
            body,
            self.write_suffix,
            &self.write_tail[..],
        ];
        joined(py, &parts).map(|bytes| Some(Wire::One(bytes)))
    }

    /// Whether applying these effects writes to the transport or ends it: output held
    /// back must go first.
    pub(super) fn touches_wire(&self) -> bool {
        !self.write.is_empty()
            || self.write_body.is_some()
            || !self.write_suffix.is_empty()
            || !self.write_tail.is_empty()
            || self.sealed.is_some()
            || self.close
            || self.write_eof
            || self.flush_streams
            || self.release_held
    }

    pub(super) fn is_empty(&self) -> bool {
        self.write.is_empty()
            && self.write_body.is_none()
            && self.write_suffix.is_empty()
            && self.write_tail.is_empty()
            && self.sealed.is_none()
            && self.corked.is_none()
            && self.tls_note.is_none()
            && !self.close
            && !self.write_eof
            && self.pause_reading.is_none()
            && self.start.is_none()
            && self.start_h2.is_empty()
            && !self.flush_streams
            && self.wake_receive.is_empty()
            && self.wake_drain.is_empty()
            && self.cancel.is_empty()
            && self.refused.is_none()
            && self.body_timeouts.is_empty()
            && self.send_timeout.is_none()
            && self.protocol_error.is_none()
            && self.stream_errors.is_empty()
            && self.access.is_none()
            && self.refused_access.is_none()
            && self.stream_access.is_empty()
            && self.app_outcome.is_none()
    }
}

/// What one `apply` writes.
pub(super) enum Wire<'py> {
    One(Bound<'py, PyBytes>),
    /// `bytes` written together with `transport.writelines`, and their total length.
    Parts(Bound<'py, PyTuple>, usize),
}

impl<'py> Wire<'py> {
    fn len(&self) -> usize {
        match self {
            Wire::One(bytes) => bytes.as_bytes().len(),
            Wire::Parts(_, len) => *len,
        }
    }

    fn write_to(self, transport: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = transport.py();
        match self {
            Wire::One(bytes) => transport.call_method1(key!(py, "write"), (bytes,)),
            Wire::Parts(parts, _) => transport.call_method1(key!(py, "writelines"), (parts,)),
        }
        .map(drop)
    }
}

/// `parts` copied one after another into one `bytes`, whose buffer is not zeroed first
/// (for a 4 KiB body that zeroing costs as much as the copy).
#[allow(unsafe_code)]
fn joined<'py>(py: Python<'py>, parts: &[&[u8]]) -> PyResult<Bound<'py, PyBytes>> {
    let total: usize = parts.iter().map(|part| part.len()).sum();
    let size = isize::try_from(total)
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("response too large"))?;
    // SAFETY: the GIL is held (`py`). With a NULL source, `PyBytes_FromStringAndSize`
    // returns a new bytes object of `size` bytes left unwritten, or NULL with an exception
    // set, which `from_owned_ptr_or_err` turns into the error; the object is a bytes
    // object, so the unchecked cast holds.
    let bytes = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size),
        )?
        .cast_into_unchecked::<PyBytes>()
    };
    // SAFETY: nothing but this function has seen the new object, so its buffer of exactly
    // `total` bytes is ours to write (for `total == 0` nothing is written). The parts are
    // copied one after another: their ranges tile `[0, total)` with no write past its end,
    // and a part (a borrowed slice of other memory) cannot overlap a buffer created here.
    unsafe {
        let mut at = pyo3::ffi::PyBytes_AsString(bytes.as_ptr()).cast::<u8>();
        for part in parts {
            std::ptr::copy_nonoverlapping(part.as_ptr(), at, part.len());
            at = at.add(part.len());
        }
    }
    Ok(bytes)
}

impl HttpProtocol {
    /// Lock, decide, release, apply: `decide` runs on the connection's state under its
    /// lock and records in an [`Effects`] what to do; once the lock is released the effects
    /// are applied. Every change of a connection's state goes through here.
    pub(crate) fn decide<R>(
        slf: &Bound<'_, Self>,
        decide: impl FnOnce(&mut Conn, &mut Effects) -> R,
    ) -> PyResult<R> {
        let mut fx = Effects::default();
        let (out, transport) = {
            let mut conn = slf.get().lock()?;
            let out = decide(&mut conn, &mut fx);
            if conn.hold.cork.is_some() && fx.touches_wire() {
                fx.corked = conn.hold.cork.take();
            }
            slf.get().set_corked(conn.hold.cork.is_some());
            if let Some(tls) = conn.tls.as_deref_mut() {
                tls.seal(slf.py(), &mut fx);
            }
            if fx.is_empty() {
                return Ok(out);
            }
            (out, conn.transport.as_ref().map(|t| t.clone_ref(slf.py())))
        };
        Self::apply(slf, fx, transport.as_ref().map(|t| t.bind(slf.py())))?;
        Ok(out)
    }

    /// Perform what was decided under the lock.
    fn apply(
        slf: &Bound<'_, Self>,
        mut fx: Effects,
        transport: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let state = slf.get().state();
        // Output due goes out at once on HTTP/3, on the loop's next turn on HTTP/2.
        let (flush_now, flush_soon) = if slf.get().quic {
            (fx.flush_streams, false)
        } else {
            (false, fx.flush_streams)
        };
        // Every effect is attempted even when one fails (a logging handler raising, say):
        // a skipped wake-up would leave the app waiting forever. The first error is raised.
        let mut first_error: Option<PyErr> = None;
        let mut keep = |result: PyResult<()>| {
            if let Err(err) = result {
                first_error.get_or_insert(err);
            }
        };
        if let Some((error, complaint)) = fx.app_outcome.take() {
            let log = state.error_log.bind(py);
            let error = error.map(|e| e.into_bound(py));
            keep(report_app_outcome(log, error, complaint));
        }
        if let Some((what, detail)) = &fx.tls_note {
            keep(Self::log_client_line(slf, key!(py, "debug"), what, detail));
        }
        if let Some(err) = &fx.refused {
            let what = "Invalid HTTP request from";
            keep(Self::log_client_line(slf, key!(py, "warning"), what, err));
        }
        for timeout in &fx.body_timeouts {
            // Info, not a warning: a client whose network dropped mid-upload is routine.
            let what = "Request body timed out from";
            let detail = format_args!(
                "no byte for {} s (--timeout-request-body)",
                timeout.as_secs_f64()
            );
            keep(Self::log_client_line(slf, key!(py, "info"), what, &detail));
        }
        if let Some(timeout) = fx.send_timeout {
            // Info, not a warning: a client that went away without a word is routine.
            let what = "Send timed out to";
            let detail = format_args!(
                "the client read nothing for {} s (--timeout-send)",
                timeout.as_secs_f64()
            );
            keep(Self::log_client_line(slf, key!(py, "info"), what, &detail));
        }
        if let Some(error) = &fx.protocol_error {
            let what = "Protocol error from";
            keep(Self::log_client_line(slf, key!(py, "warning"), what, error));
        }
        for (stream, code) in &fx.stream_errors {
            keep(Self::log_client_line(
                slf,
                key!(py, "debug"),
                "Protocol error from",
                &format_args!("HTTP/2 stream {stream} reset with error code {code:#x}"),
            ));
        }
        if let Some(metrics) = &state.metrics {
            // Counted before the response is written: once a client has it, it is counted,
            // even if the worker is killed right then.
            let count = |(access, status): &(Box<Access>, u16)| {
                metrics.request(access.method, *status, access.started.elapsed());
            };
            fx.access.iter().for_each(count);
            fx.refused_access.iter().for_each(count);
            fx.stream_access.iter().for_each(count);
        }
        if let Some(transport) = transport {
            keep(
                fx.wire(py, state.vectored_writes)
                    .and_then(|wire| match wire {
                        Some(wire) => {
                            if let Some(metrics) = &state.metrics {
                                metrics.bytes_out(wire.len());
                            }
                            wire.write_to(transport)
                        }
                        None => Ok(()),
                    }),
            );
            if flush_now {
                keep(transport.call_method0(key!(py, "flush")).map(drop));
            }
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
            if fx.abort {
                keep(transport.call_method0(key!(py, "abort")).map(drop));
            } else if fx.close || (fx.write_eof && !half_closed) {
                keep(transport.call_method0(key!(py, "close")).map(drop));
            }
        }
        let records = [fx.access, fx.refused_access].into_iter().flatten();
        for (access, status) in records.chain(fx.stream_access) {
            if let (Some(log), Some(scope)) = (&state.access_log, access.scope) {
                let seconds = access.started.elapsed().as_secs_f64();
                let args = (
                    scope,
                    status,
                    access.bytes,
                    seconds,
                    access.response_headers,
                );
                keep(log.bind(py).call1(args).map(drop));
            }
        }
        if !fx.wake_receive.is_empty() {
            keep(Self::wake_receivers(slf, fx.wake_receive));
        }
        if !fx.wake_drain.is_empty() {
            for waiter in fx.wake_drain {
                keep(resolve(py, waiter.bind(py), py.None().into_bound(py)));
            }
        }
        for task in fx.cancel {
            keep(task.bind(py).call_method0(key!(py, "cancel")).map(drop));
        }
        if let Some((head, seq)) = fx.start {
            keep(Self::start_app(slf, &head, seq));
        }
        for (stream, head) in fx.start_h2 {
            keep(Self::start_stream_app(slf, &head, u64::from(stream)));
        }
        if flush_soon {
            let flush = H2Flush {
                protocol: slf.clone().unbind(),
            };
            keep(Bound::new(py, flush).and_then(|f| state.spawner.call_soon(f.into_any())));
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One error-log line about the client at `level`: `{what} {client}: {detail}`.
    fn log_client_line(
        slf: &Bound<'_, Self>,
        level: &Bound<'_, PyString>,
        what: &str,
        detail: &dyn Display,
    ) -> PyResult<()> {
        let py = slf.py();
        let line = format!("{what} {}: {detail}", slf.get().client_name(py));
        let log = slf.get().state().error_log.bind(py);
        log.call_method1(level, (line,)).map(drop)
    }

    /// Complete HTTP `receive()` futures. A future the app cancelled is dropped without
    /// taking anything, so its body bytes stay queued for the next `receive()`.
    pub(super) fn wake_receivers(
        slf: &Bound<'_, Self>,
        waiters: Vec<(Py<PyAny>, Option<u64>)>,
    ) -> PyResult<()> {
        let py = slf.py();
        for (waiter, wake) in waiters {
            let waiter = waiter.bind(py);
            if waiter.call_method0(key!(py, "done"))?.is_truthy()? {
                continue;
            }
            let outcome = match wake {
                None => ReceiveOutcome::Disconnect,
                Some(seq) => {
                    let waiting = waiter.clone().unbind();
                    Self::decide(slf, |conn, fx| conn.receive_or_wait(seq, waiting, fx))?
                }
            };
            if !matches!(outcome, ReceiveOutcome::Wait { .. }) {
                waiter.call_method1(key!(py, "set_result"), (receive_message(py, outcome)?,))?;
            }
        }
        Ok(())
    }
}

/// The HTTP/2 flush of one connection on the loop's next turn: the frames of every send
/// operation its apps made in this turn, in one engine pass and one write.
#[pyclass(frozen, module = "ruvicorn._native")]
pub struct H2Flush {
    protocol: Py<HttpProtocol>,
}

#[pymethods]
impl H2Flush {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        HttpProtocol::decide(self.protocol.bind(py), Conn::h2_flush)
    }
}

/// Complete an asyncio future unless the app already cancelled it.
pub(super) fn resolve(
    py: Python<'_>,
    future: &Bound<'_, PyAny>,
    value: Bound<'_, PyAny>,
) -> PyResult<()> {
    if !future.call_method0(key!(py, "done"))?.is_truthy()? {
        future.call_method1(key!(py, "set_result"), (value,))?;
    }
    Ok(())
}
