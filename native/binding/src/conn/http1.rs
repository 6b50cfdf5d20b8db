//! The HTTP/1.1 mode: the events of a connection that serves HTTP/1.1 exchanges (bytes
//! read, deadlines, drain) and those its `RequestCycle`s send (`receive`, `send`, the
//! app's end). The framing rules themselves live in `ruvicorn_core::http1::connection`.

use std::time::Instant;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use std::borrow::Cow;

use super::exchange::Answer;
use super::{disconnected, ws, Access, Conn, Deadline, Effects, Mode, NOT_COMPLETED, NOT_STARTED};
use crate::metrics;
use crate::server::ServerState;
use ruvicorn_core::http1::connection::{Feed, ReceiveOutcome, SendError, SendOutcome};
use ruvicorn_core::http2::sniff;
use ruvicorn_core::syntax::error_response;

/// What `connection_lost` hands back to be completed once the lock is released.
pub(crate) struct Lost {
    pub id: u64,
    pub transport: Option<Py<PyAny>>,
    /// HTTP `receive()` futures, to complete with http.disconnect.
    pub receive_waiters: Vec<(Py<PyAny>, Option<u64>)>,
    pub drain_waiters: Vec<Py<PyAny>>,
    pub ws_waiter: Option<ws::Wake>,
    /// The protocol the connection spoke (`crate::metrics::PROTOCOLS`).
    pub protocol: usize,
}

impl Conn {
    /// The transport is up: the first request head is due within the header timeout.
    pub(super) fn made(&mut self, id: u64, transport: Py<PyAny>, state: &ServerState) {
        self.id = id;
        self.transport = Some(transport);
        self.deadline = Some(Deadline::Head(
            Instant::now() + state.settings.header_timeout,
        ));
        if state.is_draining() {
            self.http1.draining = true;
            self.set_idle_deadline(state);
        }
    }

    /// Bytes read from the transport: through the TLS layer when there is one, then to
    /// whichever mode the connection is in.
    pub(super) fn data_received(
        &mut self,
        data: &[u8],
        state: &ServerState,
        fx: &mut Effects,
    ) -> Option<ws::Wake> {
        if self.closing {
            self.discard(data.len(), fx);
            return None;
        }
        let Some(mut tls) = self.tls.take() else {
            return self.plain_received(data, state, fx);
        };
        let wake = self.tls_received(&mut tls, data, state, fx);
        self.tls = Some(tls);
        wake
    }

    /// Plaintext bytes, for whichever mode the connection is in (`data_received` discarded
    /// them, read or decrypted, while the connection closes).
    pub(super) fn plain_received(
        &mut self,
        data: &[u8],
        state: &ServerState,
        fx: &mut Effects,
    ) -> Option<ws::Wake> {
        match self.mode {
            Mode::WebSocket(_) => return self.ws_data_received(data, fx),
            Mode::Http2(_) => {
                self.h2_received(data, fx);
                return None;
            }
            Mode::Http1 => {}
        }
        if let (Some(mut held), Some(settings)) = (self.sniffed.take(), &state.settings.h2) {
            // The first bytes choose the protocol; a prefix of the preface waits for more.
            let bytes = if held.is_empty() {
                Cow::Borrowed(data)
            } else {
                held.extend_from_slice(data);
                Cow::Owned(held)
            };
            match (sniff(&bytes), state.settings.http1) {
                (None, true) => {
                    self.sniffed = Some(bytes.into_owned());
                    return None;
                }
                (Some(true), _) | (_, false) => {
                    self.start_http2(settings, &bytes, state, fx);
                    return None;
                }
                (Some(false), true) => {
                    self.feed_http1(&bytes, state, fx);
                    return None;
                }
            }
        }
        self.feed_http1(data, state, fx);
        None
    }

    fn feed_http1(&mut self, data: &[u8], state: &ServerState, fx: &mut Effects) {
        let was_idle = self.http1.exchange().is_none();
        if was_idle && self.write_paused() && !self.closing {
            self.park_pipeline(fx);
        }
        if self.pipeline_parked {
            self.http1.hold_input(data);
            return;
        }
        let feed = self.http1.feed(data);
        // Bytes of a body still incomplete: its clock restarts. A request without a body
        // pays for the test alone; a new exchange's clock otherwise starts at the sweep.
        if state.settings.body_timeout.is_some() && self.http1.awaiting_body() {
            if let Some(seq) = self.http1.current_seq() {
                self.body_clock.restart(seq, Instant::now());
            }
        }
        if was_idle && matches!(self.deadline, Some(Deadline::Idle(_))) {
            self.deadline = None;
        }
        self.after_feed(feed, state, fx);
    }

    /// Feed-side bookkeeping shared by data_received and the restart after a response.
    pub(super) fn after_feed(&mut self, feed: Feed, state: &ServerState, fx: &mut Effects) {
        match feed {
            Feed::Pending => {}
            Feed::Request(head) => {
                self.deadline = None;
                fx.start = self.http1.current_seq().map(|seq| (head, seq));
            }
            Feed::Refused(err) => {
                let seq = self.http1.current_seq();
                let started = seq.is_some_and(|seq| self.http1.response_on_wire(seq));
                if !started && !self.closing {
                    fx.write_tail
                        .extend(error_response(err.status(), &state.default_lines()));
                    if self.access.is_none() && state.metrics.is_some() {
                        // A refused head still counts as a request (its method unknown).
                        self.access = Some(Box::new(Access::new(None, metrics::OTHER_METHOD)));
                    }
                    fx.refused_access = self.answered_by_server(err.status());
                }
                fx.refused = Some(err);
                self.close(fx);
            }
        }
        if self.http1.exchange().is_none()
            && self.http1.head_started
            && !matches!(self.deadline, Some(Deadline::Head(_)))
        {
            self.deadline = Some(Deadline::Head(
                Instant::now() + state.settings.header_timeout,
            ));
        }
        if let Some((seq, _)) = self.receive_waiters.first() {
            if self.http1.receive_ready(*seq) {
                self.answer_receivers(None, Answer::Next, &mut fx.wake_receive);
            }
        }
        self.refresh_read_pause(fx);
    }

    /// The server answers the current request itself (the app did not, or no app ran):
    /// `status` with no body, logged as answered by the server.
    fn answer_itself(&mut self, status: u16, state: &ServerState, fx: &mut Effects) {
        fx.write = error_response(status, &state.default_lines());
        self.log_access(status, fx);
    }

    /// Answer the current request with `status` without running the app, then close.
    pub(super) fn refuse(&mut self, status: u16, state: &ServerState, fx: &mut Effects) {
        if !self.closing {
            fx.write_tail = error_response(status, &state.default_lines());
        }
        self.log_access(status, fx);
        self.close(fx);
    }

    /// The response of the current exchange is complete: log it and move to the next
    /// request or close. (A `receive()` waiting on it is answered after every send,
    /// whatever the mode: `Conn::after_send`.)
    fn finish(&mut self, close: bool, state: &ServerState, fx: &mut Effects) {
        self.log_response(fx);
        if close || !self.http1.finish_exchange() {
            if self.http1.draining {
                self.half_close(fx);
            } else {
                self.close(fx);
            }
            return;
        }
        if self.http1.is_idle() {
            self.set_idle_deadline(state);
        }
        if self.write_paused() {
            self.park_pipeline(fx);
            return;
        }
        let feed = self.http1.advance();
        self.after_feed(feed, state, fx);
    }

    /// The client does not read its responses (the transport paused writing): start no
    /// further request, and stop reading, until it catches up (`resume_pipeline`).
    /// Otherwise a client pipelining requests it never reads the answers to would have
    /// the worker buffer every answer.
    fn park_pipeline(&mut self, fx: &mut Effects) {
        self.pipeline_parked = true;
        // A head begun before the pause may be completed by input held meanwhile: its
        // deadline starts again when the pipeline resumes (`after_feed`).
        if matches!(self.deadline, Some(Deadline::Head(_))) {
            self.deadline = None;
        }
        self.refresh_read_pause(fx);
    }

    /// The transport drained: requests held while it was full start again.
    pub(super) fn resume_pipeline(&mut self, state: &ServerState, fx: &mut Effects) {
        if !std::mem::take(&mut self.pipeline_parked) {
            return;
        }
        if self.closing {
            self.refresh_read_pause(fx);
            return;
        }
        let feed = self.http1.advance();
        if !self.http1.is_idle() && matches!(self.deadline, Some(Deadline::Idle(_))) {
            self.deadline = None;
        }
        self.after_feed(feed, state, fx);
    }

    /// The sweep of an HTTP/1.1 connection. An idle connection past its deadline is not
    /// closed here: its deadline comes back, for `close_idle` once no input is pending.
    /// During an exchange (no deadline is set then) the request body timeout is checked.
    pub(super) fn check_deadline(
        &mut self,
        now: Instant,
        state: &ServerState,
        fx: &mut Effects,
    ) -> Option<Instant> {
        if self.deadline.is_none() {
            self.check_body(now, state, fx);
            return None;
        }
        match self.deadline {
            Some(Deadline::Idle(at)) if now >= at && self.http1.is_idle() => return Some(at),
            Some(Deadline::HalfClosed(at)) if now >= at => fx.close = true,
            Some(Deadline::Head(at)) if now >= at && self.http1.exchange().is_none() => {
                if self.http1.head_started {
                    self.answer_itself(408, state, fx);
                }
                fx.close = true;
            }
            _ => return None,
        }
        self.closing = true;
        self.deadline = None;
        None
    }

    /// `--timeout-request-body`: end the exchange whose body has gone the timeout without
    /// a byte while the server was reading (`BodyClock`). The clock is held while reading
    /// is paused by the server (the app has not taken what is buffered, or the client
    /// reads no responses) and while "100 Continue" is owed: the client is then waiting
    /// for us. Unanswered, the request gets 408 and the connection closes after it; a
    /// response under way is cut (the transport aborted, what it buffered dropped). Either
    /// way a waiting `receive()` gets http.disconnect.
    fn check_body(&mut self, now: Instant, state: &ServerState, fx: &mut Effects) {
        let Some(timeout) = state.settings.body_timeout else {
            return;
        };
        // No byte awaited (the body is complete, or "100 Continue" is owed), or the
        // connection closes: the clock stops.
        let seq = match self.http1.current_seq() {
            Some(seq) if !self.closing && self.http1.awaiting_body() => seq,
            _ => {
                self.body_clock.stop();
                return;
            }
        };
        if !self.body_clock.expired(seq, now, self.read_paused, timeout) {
            return;
        }
        self.body_timed_out = true;
        fx.body_timeouts.push(timeout);
        let on_wire = self.http1.response_on_wire(seq);
        if !on_wire {
            self.answer_itself(408, state, fx);
        }
        self.http1.close_after_response();
        self.answer_receivers(None, Answer::Disconnect, &mut fx.wake_receive);
        // A send() waiting for the transport to drain is answered too: its next send is
        // refused (the connection is closing), as after a disconnect.
        fx.wake_drain.append(&mut self.drain_waiters);
        // A response cut short is broken anyway: nothing is gained by waiting for a client
        // that may read nothing to take what is buffered of it. One whose framing is met
        // (every byte of its content-length sent, say) is delivered.
        if self.http1.response_cut_short(seq) {
            self.cut(fx);
        } else {
            self.close(fx);
        }
    }

    /// The transport, for a look at its socket outside the lock.
    pub(super) fn transport(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.transport.as_ref().map(|t| t.clone_ref(py))
    }

    /// Half-close an idle connection whose deadline `at` passed, unless it woke up since.
    pub(super) fn close_idle(&mut self, at: Instant, fx: &mut Effects) {
        if !self.closing && self.http1.is_idle() && self.deadline == Some(Deadline::Idle(at)) {
            self.half_close(fx);
        }
    }

    /// The worker drains.
    pub(super) fn drain(&mut self, state: &ServerState, fx: &mut Effects) -> Option<ws::Wake> {
        match self.mode {
            Mode::WebSocket(_) => return self.ws_drain(state, fx),
            Mode::Http2(_) => {
                self.h2_drain(fx);
                return None;
            }
            Mode::Http1 => {}
        }
        self.http1.draining = true;
        if self.http1.is_idle() && !self.closing {
            self.set_idle_deadline(state);
        }
        None
    }

    /// The transport is gone: everything still waiting is handed back to be completed.
    pub(super) fn lost(&mut self) -> Lost {
        self.lost = true;
        self.closing = true;
        self.deadline = None;
        self.hold.cork = None;
        let stream_waiters = self.h2_lost();
        self.drain_waiters.extend(stream_waiters);
        let mut receive_waiters = Vec::new();
        self.answer_receivers(None, Answer::Disconnect, &mut receive_waiters);
        Lost {
            id: self.id,
            transport: self.transport.take(),
            receive_waiters,
            drain_waiters: std::mem::take(&mut self.drain_waiters),
            ws_waiter: self.ws_connection_lost(),
            protocol: match self.mode {
                Mode::Http1 => metrics::HTTP1,
                Mode::WebSocket(_) => metrics::WEBSOCKET,
                Mode::Http2(ref h2) => h2.metrics_protocol(),
            },
        }
    }

    /// The next message for `receive()` of exchange `seq`.
    pub(super) fn h1_receive(&mut self, seq: u64, fx: &mut Effects) -> ReceiveOutcome {
        let outcome = match self.http1.receive(seq) {
            _ if self.lost || self.body_timed_out => ReceiveOutcome::Disconnect,
            outcome => outcome,
        };
        self.refresh_read_pause(fx);
        outcome
    }

    /// `send()` may not go on: the client left, or the connection closes before the
    /// response of `seq` was complete.
    fn send_refused(&self, seq: u64) -> bool {
        self.lost || (self.closing && !self.http1.response_complete(seq))
    }

    /// `http.response.start`, framed once the first body part says how.
    pub(super) fn h1_start_response<'h>(
        &mut self,
        seq: u64,
        status: u16,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
        defaults: &[&[u8]],
    ) -> PyResult<()> {
        if self.send_refused(seq) {
            return Err(disconnected());
        }
        self.http1
            .start_response(seq, status, headers, defaults)
            .map_err(|err| PyRuntimeError::new_err(err.message()))
    }

    /// `http.response.body` of exchange `seq`; `body` is the app's bytes object holding
    /// `data`, written without another copy.
    pub(super) fn h1_send_body(
        &mut self,
        seq: u64,
        data: &[u8],
        body: Option<&Bound<'_, PyBytes>>,
        more_body: bool,
        state: &ServerState,
        fx: &mut Effects,
    ) -> PyResult<()> {
        if self.send_refused(seq) {
            return Err(disconnected());
        }
        let mut head = Vec::with_capacity(256);
        match self.http1.send_body(seq, &mut head, data, more_body) {
            Ok((outcome, part)) => {
                fx.write = head;
                if part.with_body {
                    fx.write_body = body.map(|b| b.clone().unbind());
                    if let Some(access) = &mut self.access {
                        access.count(data.len() as u64);
                    }
                }
                fx.write_suffix = part.suffix;
                match outcome {
                    SendOutcome::Open => {}
                    SendOutcome::Complete => self.finish(false, state, fx),
                    SendOutcome::Close => self.finish(true, state, fx),
                }
                Ok(())
            }
            Err(err) => {
                if let SendError::Broken(_) = err {
                    // The head may already be framed: send it, then cut the connection.
                    fx.write = head;
                    self.finish(true, state, fx);
                }
                Err(PyRuntimeError::new_err(err.message()))
            }
        }
    }

    /// Log the current request with the status the app sent.
    fn log_response(&mut self, fx: &mut Effects) {
        if let Some(access) = self.access.take() {
            let status = self.http1.exchange().map_or(0, |ex| ex.status);
            fx.access = Some((access, status));
        }
    }

    /// Kept on the exchange's access record.
    pub(super) fn h1_keep_response_headers(&mut self, headers: Option<Py<PyList>>) {
        if let Some(access) = &mut self.access {
            access.response_headers = headers.map(Py::into_any);
        }
    }

    pub(super) fn h1_set_body_length(&mut self, seq: u64, length: u64) {
        self.http1.set_body_length(seq, length);
    }

    /// A response the app left incomplete: 500 if nothing is on the wire, else the
    /// connection is cut; either way the connection closes after it.
    pub(super) fn h1_app_finished(
        &mut self,
        seq: u64,
        state: &ServerState,
        fx: &mut Effects,
    ) -> Option<&'static str> {
        if !self.http1.is_current(seq) || self.http1.response_complete(seq) {
            return None;
        }
        let mut complaint = None;
        // An app that stops because its client left has nothing to answer for.
        if !self.http1.response_on_wire(seq) {
            if !self.lost && !self.closing {
                complaint = Some(NOT_STARTED);
                self.answer_itself(500, state, fx);
            }
        } else {
            // Cut by the body timeout, the app had nothing more to answer for.
            if !self.lost && !self.body_timed_out {
                complaint = Some(NOT_COMPLETED);
            }
            self.log_response(fx);
        }
        self.http1.close_after_response();
        self.close(fx);
        complaint
    }
}
