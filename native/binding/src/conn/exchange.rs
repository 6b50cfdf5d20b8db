//! The events an exchange's `RequestCycle` sends (`receive()`, `send()`, the app's end),
//! each handed to the mode that carries the exchange: HTTP/1.1 (`http1.rs`) or a stream
//! of HTTP/2 or HTTP/3 (`http2.rs`).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::{Conn, Effects, Mode};
use crate::server::ServerState;
use ruvicorn_core::http1::connection::ReceiveOutcome;
use ruvicorn_core::syntax::CONTINUE_100;

/// How a waiting `receive()` is answered (`Conn::answer_receivers`).
#[derive(Clone, Copy)]
pub(super) enum Answer {
    /// With http.disconnect.
    Disconnect,
    /// With its exchange's next message, taken once the future is known not to be
    /// cancelled (it may be to wait again): bytes that arrived, or what is left of a
    /// stream's body before its disconnect.
    Next,
}

impl Conn {
    /// `receive()` of exchange (or stream) `seq`: a body message, the disconnect, or wait
    /// (writing "100 Continue" first when the client waits for it).
    pub(crate) fn receive(&mut self, seq: u64, fx: &mut Effects) -> ReceiveOutcome {
        let outcome = self.next_message(seq, fx);
        if let ReceiveOutcome::Wait {
            send_continue: true,
        } = outcome
        {
            fx.write.extend_from_slice(CONTINUE_100);
        }
        outcome
    }

    /// A waiting `receive()` of exchange (or stream) `seq` was woken: take its message, or
    /// keep it waiting.
    pub(super) fn receive_or_wait(
        &mut self,
        seq: u64,
        waiter: Py<PyAny>,
        fx: &mut Effects,
    ) -> ReceiveOutcome {
        let outcome = self.next_message(seq, fx);
        if let ReceiveOutcome::Wait { .. } = outcome {
            self.receive_waiters.push((seq, waiter));
        }
        outcome
    }

    pub(crate) fn add_receive_waiter(&mut self, seq: u64, waiter: Py<PyAny>) {
        self.receive_waiters.push((seq, waiter));
    }

    /// Answer the `receive()` calls waiting on exchange (or stream) `of`, or on any
    /// (`None`): each is taken and put in `to` (an `Effects::wake_receive`, or what
    /// `connection_lost` completes), to be completed outside the lock as `answer` says.
    pub(super) fn answer_receivers(
        &mut self,
        of: Option<u64>,
        answer: Answer,
        to: &mut Vec<(Py<PyAny>, Option<u64>)>,
    ) {
        let wake = |(seq, waiter)| (waiter, matches!(answer, Answer::Next).then_some(seq));
        let Some(of) = of else {
            to.extend(self.receive_waiters.drain(..).map(wake));
            return;
        };
        if !self.receive_waiters.iter().any(|(s, _)| *s == of) {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.receive_waiters)
            .into_iter()
            .partition(|(s, _)| *s == of);
        self.receive_waiters = waiting;
        to.extend(ready.into_iter().map(wake));
    }

    fn next_message(&mut self, seq: u64, fx: &mut Effects) -> ReceiveOutcome {
        match self.mode {
            Mode::Http2(_) => self.h2_receive(seq, fx),
            _ => self.h1_receive(seq, fx),
        }
    }

    /// `http.response.start` of exchange `seq`.
    pub(crate) fn start_response<'h>(
        &mut self,
        seq: u64,
        status: u16,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
        trailers: bool,
        defaults: &[&[u8]],
    ) -> PyResult<()> {
        match self.mode {
            Mode::Http2(_) => self.h2_start_response(seq, status, headers, trailers, defaults),
            _ => self.h1_start_response(seq, status, headers, defaults),
        }
    }

    /// `http.response.body` of exchange `seq`; `body` is the app's bytes object holding
    /// `data`.
    pub(crate) fn send_body(
        &mut self,
        seq: u64,
        data: &[u8],
        body: Option<&Bound<'_, PyBytes>>,
        more_body: bool,
        state: &ServerState,
        fx: &mut Effects,
    ) -> PyResult<()> {
        let result = match self.mode {
            Mode::Http2(_) => self.h2_send_body(seq, data, more_body, fx),
            _ => self.h1_send_body(seq, data, body, more_body, state, fx),
        };
        self.after_send(seq, fx);
        result
    }

    /// `http.response.trailers` of stream `seq` (the extension is advertised on HTTP/2
    /// and HTTP/3 only).
    pub(crate) fn send_trailers<'h>(
        &mut self,
        seq: u64,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
        more_trailers: bool,
        fx: &mut Effects,
    ) -> PyResult<()> {
        let result = match self.mode {
            Mode::Http2(_) => self.h2_send_trailers(seq, headers, more_trailers, fx),
            _ => Err(PyRuntimeError::new_err(
                "http.response.trailers is only supported over HTTP/2",
            )),
        };
        self.after_send(seq, fx);
        result
    }

    /// Run after every send decision (a body or trailers message, sent or refused), on
    /// every mode: once the response of exchange `seq` is complete (or was cut), the
    /// `receive()` left waiting on it is answered. Over HTTP/1.1 with `http.disconnect`,
    /// all its `receive()` says once the response is complete; on an HTTP/2 or HTTP/3
    /// stream with what is left of the request body, then the disconnect. Then a stream's
    /// engine events of the send are dispatched: after, so a reset among them does not
    /// answer the waiter with the disconnect before the rest of the body.
    fn after_send(&mut self, seq: u64, fx: &mut Effects) {
        if !self.receive_waiters.is_empty() {
            self.answer_receive_if_complete(seq, fx);
        }
        if let Mode::Http2(_) = self.mode {
            self.h2_after_send(fx);
        }
    }

    #[cold]
    fn answer_receive_if_complete(&mut self, seq: u64, fx: &mut Effects) {
        let answer = match self.mode {
            Mode::Http2(_) if self.h2_response_complete(seq) => Answer::Next,
            Mode::Http2(_) => return,
            _ if self.http1.response_complete(seq) => Answer::Disconnect,
            _ => return,
        };
        self.answer_receivers(Some(seq), answer, &mut fx.wake_receive);
    }

    /// The app's response headers, for an access log format that reads them.
    pub(crate) fn keep_response_headers(&mut self, seq: u64, headers: Option<Py<PyList>>) {
        match self.mode {
            Mode::Http2(_) => self.h2_keep_response_headers(seq, headers),
            _ => self.h1_keep_response_headers(headers),
        }
    }

    /// `http.response.pathsend`: the file's length frames the response (its bytes are
    /// counted as the file goes through `send_body`).
    pub(crate) fn set_body_length(&mut self, seq: u64, length: u64) {
        match self.mode {
            Mode::Http2(_) => self.h2_set_body_length(seq, length),
            _ => self.h1_set_body_length(seq, length),
        }
    }

    /// The app of exchange `seq` is done. A response it did not complete is settled: 500
    /// if nothing was sent yet, else the connection is cut so the client sees a truncated
    /// response. Returns the complaint to log, if any.
    pub(crate) fn app_finished(
        &mut self,
        seq: u64,
        state: &ServerState,
        fx: &mut Effects,
    ) -> Option<&'static str> {
        match self.mode {
            Mode::Http2(_) => self.h2_app_finished(seq, fx),
            _ => self.h1_app_finished(seq, state, fx),
        }
    }
}
