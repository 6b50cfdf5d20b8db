//! The HTTP/2 mode: one connection, many streams, each stream one ASGI HTTP cycle run by
//! the same `RequestCycle` as an HTTP/1.1 exchange (its `seq` is the stream id). Frames,
//! HPACK and flow control live in `ruvicorn_core::http2`; this file turns its events into
//! app starts and wake-ups, and the cycles' calls into its send operations.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::body_clock::BodyClock;
use super::exchange::Answer;
use super::stream_engine::{H2Engine, StreamEngine};
use super::{disconnected, Access, Conn, Effects, Mode, NOT_COMPLETED, NOT_STARTED};
use crate::metrics;
use crate::server::ServerState;
use ruvicorn_core::http1::connection::ReceiveOutcome;
use ruvicorn_core::http2::{Bytes, Event, Http2, RequestHead, SendError, Settings};
use ruvicorn_core::ids::{id_map, IdMap};

/// RST_STREAM / GOAWAY codes (RFC 9113 §7).
const NO_ERROR: u32 = 0x0;
const INTERNAL_ERROR: u32 = 0x2;
const REFUSED_STREAM: u32 = 0x7;
pub(super) const CANCEL: u32 = 0x8;

/// A response head the app sent: status, fields, whether trailers follow the body.
type Start = (u16, Vec<(Vec<u8>, Vec<u8>)>, bool);

/// What the binding keeps per stream beside the engine's state.
#[derive(Default)]
struct Stream {
    /// Body bytes received and not yet given to `receive()`.
    body: VecDeque<Bytes>,
    /// The request body is complete.
    ended: bool,
    /// With `--timeout-request-body`, while the body is incomplete: its clock, restarted
    /// at the head and each DATA, started and read by the sweep (`Conn::h2_check_bodies`).
    body_clock: BodyClock,
    /// The request body timed out: `receive()` says the client is gone.
    timed_out: bool,
    /// The client asked for `100 Continue` and neither it was sent nor a DATA byte came:
    /// the client may rightly wait, so the body clock does not run. Sent at the app's first
    /// `receive()` that waits, never once the final head is on the wire (a head held for
    /// its first body part goes after it).
    continue_unsent: bool,
    /// `receive()` returned the last body message.
    delivered_end: bool,
    /// The client reset the stream or the connection went away.
    gone: bool,
    /// The stream was reset (by the client, or by the engine for its errors).
    reset: bool,
    /// The app's Task while it runs, to cancel when the stream is reset.
    task: Option<Py<PyAny>>,
    /// `http.response.start` as the app sent it, until the first body message.
    start: Option<Start>,
    /// The response head went to the engine.
    on_wire: bool,
    /// The app announced trailers: the body's end waits for them.
    trailers: bool,
    /// A HEAD request: its response ends with the head.
    head_request: bool,
    /// The response has no body (HEAD, 1xx, 204, 304): it ended with its head.
    bodyless: bool,
    complete: bool,
    /// `await send()` of this stream waits for its body to leave.
    sending: bool,
    send_waiter: Option<Py<PyAny>>,
    /// The status sent (0 until the head is on the wire).
    status: u16,
    /// The stream's record for the access log and metrics, when either is on.
    access: Option<Box<Access>>,
}

pub(super) struct H2Conn {
    engine: Box<dyn StreamEngine>,
    /// Streams whose app has not finished, reset ones included until their cancelled
    /// Tasks end.
    streams: IdMap<u32, Stream>,
    /// At most this many of them (`--h2-max-concurrent-streams`): a stream the client
    /// reset frees its slot in the engine at once but its app's slot only once its
    /// cancelled Task ends (an app may catch the cancellation), so a client resetting
    /// streams cannot pile up Tasks on one connection.
    max_apps: usize,
    /// Since when no stream is open (the idle deadline counts from there).
    idle_since: Option<Instant>,
    /// `--timeout-request-body` (None = off).
    body_timeout: Option<Duration>,
}

impl H2Conn {
    /// What the engine's handshake negotiated, when the engine has its own (QUIC).
    pub(super) fn tls_info(&self) -> Option<ruvicorn_core::tls::info::ConnectionInfo> {
        self.engine.tls_info()
    }

    /// The metrics counter of the connection's protocol (h2 or h3).
    pub(super) fn metrics_protocol(&self) -> usize {
        self.engine.metrics_protocol()
    }
}

/// The default response lines (`server: ...\r\n`) as fields.
fn default_fields(defaults: &[&[u8]]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut fields = Vec::new();
    for block in defaults {
        for line in block.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                let name = line[..colon].to_ascii_lowercase();
                let value = line[colon + 1..].trim_ascii().to_vec();
                fields.push((name, value));
            }
        }
    }
    fields
}

fn stream_id(seq: u64) -> u32 {
    u32::try_from(seq).unwrap_or(0)
}

/// Answer stream `id` on the server's behalf: `status` with `fields` and no body. The
/// response ends the stream and the engine forgets it (the rest of the request is
/// refused); `entry` says the response is complete, and its record, if any, is logged
/// with `status` and no body bytes (the app sent none).
fn answer_by_server(
    engine: &mut dyn StreamEngine,
    id: u32,
    entry: &mut Stream,
    status: u16,
    fields: &[(Vec<u8>, Vec<u8>)],
    fx: &mut Effects,
) {
    let _ = engine.send_response(id, status, fields, true);
    engine.forget(id);
    entry.start = None;
    entry.on_wire = true;
    entry.complete = true;
    entry.status = status;
    if let Some(mut access) = entry.access.take() {
        access.bytes = None;
        fx.stream_access.push((access, status));
    }
}

impl Conn {
    /// Switch a fresh connection to HTTP/2 and hand it its first bytes.
    pub(super) fn start_http2(
        &mut self,
        settings: &Settings,
        data: &[u8],
        state: &ServerState,
        fx: &mut Effects,
    ) {
        self.start_streams(
            Box::new(H2Engine::new(Http2::new(settings))),
            settings.max_concurrent_streams,
            state,
        );
        self.h2_received(data, fx);
    }

    /// Switch a fresh connection to the stream mode over `engine` (HTTP/2, or one QUIC
    /// connection's HTTP/3) that runs at most `max_apps` apps at once.
    pub(super) fn start_streams(
        &mut self,
        engine: Box<dyn StreamEngine>,
        max_apps: u32,
        state: &ServerState,
    ) {
        self.deadline = None;
        if let Some(metrics) = &state.metrics {
            metrics.connection(metrics::HTTP1, false);
            metrics.connection(engine.metrics_protocol(), true);
        }
        self.mode = Mode::Http2(Box::new(H2Conn {
            engine,
            streams: id_map(),
            max_apps: usize::try_from(max_apps).unwrap_or(usize::MAX),
            idle_since: Some(Instant::now()),
            body_timeout: state.settings.body_timeout,
        }));
        if state.is_draining() {
            if let Mode::Http2(h2) = &mut self.mode {
                h2.engine.graceful_shutdown();
            }
        }
    }

    pub(super) fn h2_received(&mut self, data: &[u8], fx: &mut Effects) {
        if let Mode::Http2(h2) = &mut self.mode {
            h2.engine.receive(data);
        }
        self.h2_pump(fx);
    }

    /// Turn the engine's events into effects and write what it produced.
    fn h2_pump(&mut self, fx: &mut Effects) {
        if let Mode::Http2(h2) = &mut self.mode {
            h2.engine.flush();
        }
        self.h2_dispatch(true, fx);
    }

    /// After an app's send operation: its events now, its frames with those of the other
    /// streams' apps on the loop's next turn (one engine pass and one write for them all).
    pub(super) fn h2_after_send(&mut self, fx: &mut Effects) {
        self.h2_dispatch(false, fx);
    }

    /// The flush asked for after apps sent: write what they sent.
    pub(super) fn h2_flush(&mut self, fx: &mut Effects) {
        if let Mode::Http2(h2) = &mut self.mode {
            h2.engine.flushing();
        }
        self.h2_pump(fx);
    }

    /// The engine's events as effects; its output written (`write`), and a flush asked for
    /// when output is still due.
    fn h2_dispatch(&mut self, write: bool, fx: &mut Effects) {
        let Mode::Http2(h2) = &mut self.mode else {
            return;
        };
        let mut wake = Vec::new();
        let mut cancel = Vec::new();
        let mut closed = false;
        // One clock read for all the request heads and DATA of this pass that start or
        // restart a body clock; none at all without a body timeout or a body.
        let timing = h2.body_timeout.is_some();
        let mut clock = None;
        let mut events = VecDeque::from(h2.engine.take_events());
        while let Some(event) = events.pop_front() {
            match event {
                Event::Request { stream, head } => {
                    if h2.streams.len() >= h2.max_apps {
                        // RFC 9113 §8.7: REFUSED_STREAM, nothing was processed; retry later.
                        h2.engine.reset(stream, REFUSED_STREAM);
                        events.extend(h2.engine.take_events());
                        continue;
                    }
                    let mut entry = Stream {
                        ended: head.end_stream,
                        continue_unsent: head.expects_continue(),
                        head_request: head.method == "HEAD",
                        ..Stream::default()
                    };
                    if timing && !head.end_stream {
                        let now = *clock.get_or_insert_with(Instant::now);
                        entry.body_clock.restart((), now);
                    }
                    h2.streams.insert(stream, entry);
                    fx.start_h2.push((stream, head));
                }
                Event::Data { stream, data } => {
                    if let Some(entry) = h2.streams.get_mut(&stream) {
                        if entry.timed_out {
                            continue;
                        }
                        // The client sent its body without the 100: none is owed now.
                        entry.continue_unsent = false;
                        if timing {
                            let now = *clock.get_or_insert_with(Instant::now);
                            entry.body_clock.restart((), now);
                        }
                        entry.body.push_back(data);
                        wake.push((stream, Answer::Next));
                    }
                }
                Event::End { stream } => {
                    if let Some(entry) = h2.streams.get_mut(&stream) {
                        entry.ended = true;
                        wake.push((stream, Answer::Next));
                    }
                }
                Event::Reset { stream, .. } => {
                    // Reset before its app started (in the same read): it never starts.
                    if let Some(at) = fx.start_h2.iter().position(|(s, _)| *s == stream) {
                        fx.start_h2.remove(at);
                        h2.streams.remove(&stream);
                        continue;
                    }
                    if let Some(entry) = h2.streams.get_mut(&stream) {
                        entry.gone = true;
                        entry.reset = true;
                        fx.wake_drain.extend(entry.send_waiter.take());
                        cancel.extend(entry.task.take());
                        wake.push((stream, Answer::Disconnect));
                    }
                }
                Event::Sent { stream } => {
                    if let Some(entry) = h2.streams.get_mut(&stream) {
                        entry.sending = false;
                        fx.wake_drain.extend(entry.send_waiter.take());
                    }
                }
                Event::Closed { error } => {
                    closed = true;
                    fx.protocol_error = error;
                }
            }
        }
        h2.idle_since = match (h2.streams.is_empty(), h2.idle_since) {
            (true, None) => Some(Instant::now()),
            (true, since) => since,
            (false, _) => None,
        };
        if write {
            let out = h2.engine.take_output();
            fx.write.extend_from_slice(&out);
        }
        // Read from the output: taken after it.
        fx.stream_errors.extend(h2.engine.take_stream_errors());
        fx.flush_streams |= h2.engine.output_due();
        for (stream, answer) in wake {
            self.answer_receivers(Some(u64::from(stream)), answer, &mut fx.wake_receive);
        }
        // A stream reset cancels its app; the end of the whole connection (whose streams
        // the engine reports reset too) does not, as on HTTP/1.1: its apps see the
        // disconnect and end on their own.
        if closed {
            self.close(fx);
        } else {
            fx.cancel.extend(cancel);
        }
    }

    fn h2_stream(&mut self, seq: u64) -> Option<(&mut dyn StreamEngine, &mut Stream)> {
        let Mode::Http2(h2) = &mut self.mode else {
            return None;
        };
        let entry = h2.streams.get_mut(&stream_id(seq))?;
        Some((h2.engine.as_mut(), entry))
    }

    /// `receive()` of stream `seq`: the body received so far (its window released as it
    /// goes), its end, or the disconnect.
    pub(super) fn h2_receive(&mut self, seq: u64, fx: &mut Effects) -> ReceiveOutcome {
        let lost = self.lost;
        let outcome = match self.h2_stream(seq) {
            None => ReceiveOutcome::Disconnect,
            Some(_) if lost => ReceiveOutcome::Disconnect,
            Some((engine, entry)) => {
                if !entry.body.is_empty() {
                    let mut body = Vec::new();
                    for chunk in entry.body.drain(..) {
                        body.extend_from_slice(&chunk);
                    }
                    engine.release(stream_id(seq), body.len());
                    entry.delivered_end = entry.ended;
                    ReceiveOutcome::Body {
                        body,
                        more_body: !entry.ended,
                    }
                } else if entry.ended && !entry.delivered_end {
                    entry.delivered_end = true;
                    ReceiveOutcome::Body {
                        body: Vec::new(),
                        more_body: false,
                    }
                } else if entry.gone || entry.complete {
                    ReceiveOutcome::Disconnect
                } else {
                    if entry.continue_unsent && !entry.on_wire {
                        // Once, the body not yet begun, no final head on the wire (one
                        // held for its first body part goes after the 100, as on
                        // HTTP/1.1). The body clock starts afresh at the next sweep.
                        entry.continue_unsent = false;
                        entry.body_clock.stop();
                        let _ = engine.send_continue(stream_id(seq));
                    }
                    ReceiveOutcome::Wait {
                        send_continue: false,
                    }
                }
            }
        };
        self.h2_after_send(fx);
        outcome
    }

    /// `http.response.start`: kept until the first body message says whether a body follows.
    pub(super) fn h2_start_response<'h>(
        &mut self,
        seq: u64,
        status: u16,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
        trailers: bool,
        defaults: &[&[u8]],
    ) -> PyResult<()> {
        let lost = self.lost;
        let Some((_, entry)) = self.h2_stream(seq) else {
            return Err(disconnected());
        };
        if lost || entry.gone {
            return Err(disconnected());
        }
        if entry.start.is_some() || entry.on_wire {
            return Err(PyRuntimeError::new_err(
                "Unexpected ASGI message 'http.response.start' sent, after response already started",
            ));
        }
        let mut fields = default_fields(defaults);
        fields.extend(
            headers
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_vec())),
        );
        entry.start = Some((status, fields, trailers));
        Ok(())
    }

    /// `http.response.pathsend`: the file's length becomes the response's
    /// `content-length` unless the app sent one.
    pub(super) fn h2_set_body_length(&mut self, seq: u64, length: u64) {
        let Some((_, entry)) = self.h2_stream(seq) else {
            return;
        };
        if let Some((_, fields, _)) = &mut entry.start {
            if !fields.iter().any(|(name, _)| name == b"content-length") {
                fields.push((b"content-length".to_vec(), length.to_string().into_bytes()));
            }
        }
    }

    /// `http.response.body` of stream `seq`.
    pub(super) fn h2_send_body(
        &mut self,
        seq: u64,
        data: &[u8],
        more_body: bool,
        fx: &mut Effects,
    ) -> PyResult<()> {
        let result = self.h2_send(seq, data, more_body);
        self.h2_log_if_complete(seq, fx);
        result
    }

    /// A stream whose response is complete: its access record is written (as for an
    /// HTTP/1.1 exchange, not when its app returns: work the app does afterwards neither
    /// delays the line nor counts in its duration). A `receive()` waiting on it is
    /// answered after every send, whatever the mode (`Conn::after_send`).
    fn h2_log_if_complete(&mut self, seq: u64, fx: &mut Effects) {
        let Some((_, entry)) = self.h2_stream(seq) else {
            return;
        };
        if !entry.complete {
            return;
        }
        if let Some(access) = entry.access.take() {
            fx.stream_access.push((access, entry.status));
        }
    }

    /// Whether stream `seq`'s response is complete (or was cut).
    pub(super) fn h2_response_complete(&self, seq: u64) -> bool {
        match &self.mode {
            Mode::Http2(h2) => h2
                .streams
                .get(&stream_id(seq))
                .is_some_and(|entry| entry.complete),
            _ => false,
        }
    }

    fn h2_send(&mut self, seq: u64, data: &[u8], more_body: bool) -> PyResult<()> {
        let lost = self.lost;
        let id = stream_id(seq);
        let Some((engine, entry)) = self.h2_stream(seq) else {
            return Err(disconnected());
        };
        if lost || entry.gone {
            return Err(disconnected());
        }
        if entry.complete {
            return Err(PyRuntimeError::new_err(
                "Unexpected ASGI message 'http.response.body' sent, after response already completed",
            ));
        }
        if let Some((status, fields, trailers)) = entry.start.take() {
            entry.bodyless = entry.head_request || matches!(status, 100..=199 | 204 | 304);
            entry.trailers = trailers && !entry.bodyless;
            let end = entry.bodyless || (!more_body && data.is_empty() && !trailers);
            engine
                .send_response(id, status, &fields, end)
                .map_err(send_error)?;
            entry.on_wire = true;
            entry.status = status;
            if end && !entry.bodyless {
                entry.complete = true;
                return Ok(());
            }
        } else if !entry.on_wire {
            return Err(PyRuntimeError::new_err(
                "Unexpected ASGI message 'http.response.body' sent, before 'http.response.start'",
            ));
        }
        if entry.bodyless {
            // The head ended the stream; the app's body messages are dropped.
            entry.complete = !more_body;
            return Ok(());
        }
        let end = !more_body && !entry.trailers;
        entry.complete = end;
        entry.sending = true;
        if let Some(access) = &mut entry.access {
            access.count(data.len() as u64);
        }
        let sent = engine.send_data(id, Bytes::copy_from_slice(data), end);
        if sent.is_err() {
            // Refused (a body past its content-length: the engine reset the stream), so
            // nothing is left to wait for or to complete.
            entry.sending = false;
            entry.complete = true;
        }
        sent.map_err(send_error)
    }

    /// `http.response.trailers` of stream `seq`.
    pub(super) fn h2_send_trailers<'h>(
        &mut self,
        seq: u64,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
        more_trailers: bool,
        fx: &mut Effects,
    ) -> PyResult<()> {
        let id = stream_id(seq);
        let fields: Vec<(Vec<u8>, Vec<u8>)> = headers
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_vec()))
            .collect();
        let lost = self.lost;
        let result = match self.h2_stream(seq) {
            None => Err(disconnected()),
            Some(_) if lost => Err(disconnected()),
            Some((_, entry)) if !entry.trailers || entry.complete || !entry.on_wire => Err(
                PyRuntimeError::new_err("Unexpected ASGI message 'http.response.trailers' sent"),
            ),
            Some((engine, entry)) => {
                if more_trailers {
                    Err(PyRuntimeError::new_err(
                        "http.response.trailers with more_trailers is not supported",
                    ))
                } else {
                    entry.complete = true;
                    entry.sending = true;
                    engine.send_trailers(id, &fields).map_err(send_error)
                }
            }
        };
        self.h2_log_if_complete(seq, fx);
        result
    }

    /// Whether `await send()` of stream `seq` waits for its body to leave.
    pub(super) fn h2_must_wait(&self, seq: u64) -> bool {
        match &self.mode {
            Mode::Http2(h2) => h2
                .streams
                .get(&stream_id(seq))
                .is_some_and(|s| s.sending && !s.gone),
            _ => false,
        }
    }

    /// Keep the Task of stream `seq`'s app (or cancel it: the stream was reset already).
    pub(super) fn h2_keep_task(&mut self, seq: u64, task: Py<PyAny>, fx: &mut Effects) {
        if let Some((_, entry)) = self.h2_stream(seq) {
            if entry.reset {
                fx.cancel.push(task);
            } else {
                entry.task = Some(task);
            }
        }
    }

    pub(super) fn h2_add_send_waiter(&mut self, seq: u64, waiter: Py<PyAny>) {
        if let Some((_, entry)) = self.h2_stream(seq) {
            entry.send_waiter = Some(waiter);
        }
    }

    /// The app of stream `seq` ended: an unanswered stream gets a 500, a half-sent
    /// response is reset. Returns the complaint to log.
    pub(super) fn h2_app_finished(&mut self, seq: u64, fx: &mut Effects) -> Option<&'static str> {
        let id = stream_id(seq);
        let lost = self.lost;
        let Mode::Http2(h2) = &mut self.mode else {
            return None;
        };
        let mut entry = h2.streams.remove(&id)?;
        let mut complaint = None;
        if !entry.complete && !entry.bodyless && !entry.gone && !lost {
            if entry.on_wire {
                complaint = Some(NOT_COMPLETED);
                h2.engine.reset(id, INTERNAL_ERROR);
            } else {
                complaint = Some(NOT_STARTED);
                answer_by_server(h2.engine.as_mut(), id, &mut entry, 500, &[], fx);
                self.h2_after_send(fx);
                return complaint;
            }
        }
        // A stream reset before its response was complete counts as no request answered.
        let answered = entry.status != 0 && (entry.complete || !entry.reset);
        if let Some(access) = entry.access.take().filter(|_| answered) {
            fx.stream_access.push((access, entry.status));
        }
        h2.engine.forget(id);
        self.h2_after_send(fx);
        complaint
    }

    /// The transport is gone: every stream's `send()` waiter, to complete (the next
    /// `send()` then raises).
    pub(super) fn h2_lost(&mut self) -> Vec<Py<PyAny>> {
        let Mode::Http2(h2) = &mut self.mode else {
            return Vec::new();
        };
        h2.streams
            .values_mut()
            .filter_map(|entry| {
                entry.gone = true;
                entry.send_waiter.take()
            })
            .collect()
    }

    /// The sweep: a connection without open streams for the keep-alive timeout gets
    /// GOAWAY (NO_ERROR, naming the last stream served) and is closed; the engine's own
    /// deadlines (the final GOAWAY of a graceful shutdown) are acted on.
    pub(super) fn h2_sweep(&mut self, now: Instant, state: &ServerState, fx: &mut Effects) {
        let Mode::Http2(h2) = &mut self.mode else {
            return;
        };
        if h2.engine.expire(now) {
            self.h2_pump(fx);
        }
        // Matched again: the pump updates `idle_since`, so it is read after the pump.
        let Mode::Http2(h2) = &mut self.mode else {
            return;
        };
        let idle = h2
            .idle_since
            .is_some_and(|since| now.duration_since(since) >= state.settings.keep_alive_timeout);
        if idle && !self.closing {
            h2.engine.abort(NO_ERROR);
            self.h2_pump(fx);
            self.close(fx);
            return;
        }
        self.h2_check_bodies(now, state, fx);
    }

    /// `--timeout-request-body` on streams: a stream whose request body has gone the
    /// timeout without DATA while its client could send is ended (`BodyClock`). Only while
    /// its response is incomplete: once it is, the app's `receive()` no longer waits on
    /// the client, and the rest of the body is refused when the app returns.
    ///
    /// A stream's clock runs while its body is incomplete, and is held while any stream
    /// of the connection holds body bytes its app has not taken. Bytes are released to
    /// flow control only as `receive()` takes them, so while any are held the stream's
    /// window or the connection's may be exhausted by the server's doing, not the
    /// client's: every clock of the connection stops then, and starts afresh once nothing
    /// is held (why per connection: `BodyClock`).
    ///
    /// An unanswered stream gets 408 and the rest of its request is refused (HTTP/2
    /// RST_STREAM NO_ERROR after the response, RFC 9113 §8.1; HTTP/3 STOP_SENDING
    /// H3_NO_ERROR, RFC 9114 §4.1); a started response is reset (CANCEL,
    /// H3_REQUEST_CANCELLED). Its waiting `receive()` gets http.disconnect; the app's Task
    /// is not cancelled and the other streams carry on.
    fn h2_check_bodies(&mut self, now: Instant, state: &ServerState, fx: &mut Effects) {
        let Mode::Http2(h2) = &mut self.mode else {
            return;
        };
        let Some(timeout) = h2.body_timeout else {
            return;
        };
        if self.closing || self.lost {
            return;
        }
        let held = h2.streams.values().any(|entry| !entry.body.is_empty());
        let mut expired = Vec::new();
        for (&id, entry) in h2.streams.iter_mut() {
            // A complete response leaves nothing waiting on the rest of the body: its
            // `receive()` gives what arrived, then http.disconnect. Its clock does not run,
            // nor while a "100 Continue" is owed (the client may rightly wait for it).
            if entry.ended
                || entry.complete
                || entry.gone
                || entry.timed_out
                || entry.continue_unsent
            {
                continue;
            }
            if entry.body_clock.expired((), now, held, timeout) {
                expired.push(id);
            }
        }
        if expired.is_empty() {
            return;
        }
        let fields = default_fields(&[&state.default_lines()]);
        let mut ended = Vec::with_capacity(expired.len());
        for id in expired {
            let Some(entry) = h2.streams.get_mut(&id) else {
                continue;
            };
            entry.timed_out = true;
            entry.gone = true;
            fx.wake_drain.extend(entry.send_waiter.take());
            if !entry.on_wire {
                // Answered and ended; dropping the rest of the request refuses it.
                answer_by_server(h2.engine.as_mut(), id, entry, 408, &fields, fx);
            } else {
                // Cut: as a stream reset before its response completed, no request answered.
                h2.engine.reset(id, CANCEL);
                entry.reset = true;
            }
            fx.body_timeouts.push(timeout);
            ended.push(id);
        }
        for id in ended {
            self.answer_receivers(
                Some(u64::from(id)),
                Answer::Disconnect,
                &mut fx.wake_receive,
            );
        }
        self.h2_pump(fx);
    }

    /// Graceful stop: GOAWAY, open streams finish.
    pub(super) fn h2_drain(&mut self, fx: &mut Effects) {
        if let Mode::Http2(h2) = &mut self.mode {
            h2.engine.graceful_shutdown();
        }
        self.h2_pump(fx);
    }

    /// A stream that cannot be served (a bad `:path`, the server over capacity) is answered
    /// here with `status` and no body.
    pub(super) fn h2_refuse(&mut self, seq: u64, status: u16, fx: &mut Effects) {
        if let Mode::Http2(h2) = &mut self.mode {
            let id = stream_id(seq);
            let mut entry = h2.streams.remove(&id).unwrap_or_default();
            answer_by_server(h2.engine.as_mut(), id, &mut entry, status, &[], fx);
        }
        self.h2_pump(fx);
    }

    /// Keep stream `seq`'s record for the access log and metrics.
    pub(super) fn h2_keep_access(&mut self, seq: u64, access: Box<Access>) {
        if let Some((_, entry)) = self.h2_stream(seq) {
            entry.access = Some(access);
        }
    }

    /// The app's response headers of stream `seq`, for an access log format that reads them.
    pub(super) fn h2_keep_response_headers(&mut self, seq: u64, headers: Option<Py<PyList>>) {
        if let Some(access) = self
            .h2_stream(seq)
            .and_then(|(_, entry)| entry.access.as_mut())
        {
            access.response_headers = headers.map(Py::into_any);
        }
    }
}

fn send_error(err: SendError) -> PyErr {
    match err {
        SendError::Gone => disconnected(),
        SendError::Invalid(message) => PyRuntimeError::new_err(message),
    }
}

/// A stream's request head, kept for starting its app outside the lock.
pub(crate) type StreamStart = (u32, RequestHead);
