//! HTTP/2 server connections, sans-IO: bytes in -> [`Event`]s, send operations -> bytes out.
//!
//! The engine is the `h2` crate (frames, HPACK, stream states, flow control and its
//! rapid-reset limits), driven synchronously: it reads from and writes to an in-memory
//! [`Pipe`] and is polled with a no-op waker, so there is no runtime and no thread. Since
//! nothing ever wakes a task, [`Http2::drive`] re-polls everything after each input, and
//! after send operations when the output is taken (or [`Http2::flush`]), so that the send
//! operations of many streams (a response head and its body, the responses of one batch of
//! requests) cost one pass. The callers (the binding's HTTP/2 mode) only see this module's
//! types, so the engine can be swapped without touching them.
//!
//! Memory stays bounded both ways: received DATA is held by the engine only up to the
//! advertised window, which is released ([`Http2::release`]) as the application consumes
//! bytes; a response body waits in its stream's queue until flow control lets it out, and
//! [`Event::Sent`] tells the caller when the queue is empty so `send()` can return.

pub mod check;
mod flood;
mod head_checks;
mod hpack_check;
#[cfg(test)]
mod interim_tests;
mod outgoing;
mod pipe;
mod respond;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub use bytes::Bytes;
use h2::server::{Connection, Handshake, SendResponse};
use h2::{RecvStream, SendStream};
use http::HeaderMap;

use crate::ids::{id_map, IdMap};
use crate::rapid_reset::ResetGuard;
use check::{FrameCheck, Verdict};
use head_checks::{fields_too_large, is_malformed, too_large_response};
use outgoing::OutputScan;
use pipe::Pipe;

/// The answer to a well-formed CONNECT on HTTP/2 and HTTP/3 alike.
pub(crate) use head_checks::connect_response;

/// What every HTTP/2 connection starts with (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a connection's first bytes are HTTP/2: `Some(true)` once they hold the whole
/// preface, `Some(false)` as soon as they differ from it (any HTTP/1.1 request), `None`
/// while they are a strict prefix of it (`P` could still be `POST`).
pub fn sniff(bytes: &[u8]) -> Option<bool> {
    let len = bytes.len().min(PREFACE.len());
    if bytes[..len] != PREFACE[..len] {
        Some(false)
    } else if len == PREFACE.len() {
        Some(true)
    } else {
        None
    }
}

/// Response fields that are connection-specific in HTTP/1.1 and forbidden in HTTP/2
/// (RFC 9113 §8.2.2): an application's are dropped.
pub const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// How long a graceful shutdown waits for the client to acknowledge its PING before the
/// final GOAWAY goes out anyway (RFC 9113 §6.8 asks for at least one round trip): a client
/// that never acknowledges must not keep opening streams.
pub const SHUTDOWN_PING_WAIT: Duration = Duration::from_secs(2);

/// INTERNAL_ERROR (RFC 9113 §7).
const INTERNAL_ERROR: u32 = 0x2;

/// ENHANCE_YOUR_CALM (RFC 9113 §7).
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The local limits a connection announces and enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub max_concurrent_streams: u32,
    pub initial_window_size: u32,
    pub max_frame_size: u32,
    /// Decoded header-list bytes per request (guards against HPACK bombs).
    pub max_header_list_size: u32,
    /// Fields per request, pseudo-headers aside (`--limit-request-fields`): 431 above.
    pub max_fields: usize,
    /// Bytes per field, counted as its HTTP/1.1 line `name: value`
    /// (`--limit-request-field-size`): 431 above.
    pub max_field_size: usize,
    /// Streams the client may reset before the application saw them (rapid reset).
    pub max_pending_accept_reset_streams: usize,
    /// Streams this side may reset for the client's errors before GOAWAY.
    pub max_local_error_reset_streams: usize,
    /// Requests accepted on one connection before a graceful GOAWAY (0: no limit).
    pub max_requests: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 100,
            initial_window_size: 65_535,
            max_frame_size: 16_384,
            max_header_list_size: 64 * 1024,
            max_fields: 100,
            max_field_size: 8190,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            max_requests: 10_000,
        }
    }
}

/// One request's head, already mapped the ASGI way: pseudo-headers gone, `:authority` as a
/// leading `host`, cookie crumbs joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The `:path` pseudo-header: path and query, still percent-encoded.
    pub target: String,
    pub scheme: Option<String>,
    /// Lower-case names, in the order they arrived (after the leading `host`).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The request has no body (HEADERS carried END_STREAM).
    pub end_stream: bool,
}

impl RequestHead {
    /// The client asked for `100 Continue` before its body (RFC 9110 10.1.1): an
    /// `expect: 100-continue` field, as HTTP/1.1 reads it, and a body to come.
    pub fn expects_continue(&self) -> bool {
        !self.end_stream
            && self.headers.iter().any(|(name, value)| {
                name == b"expect" && value.eq_ignore_ascii_case(b"100-continue")
            })
    }
}

/// What the client did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Request {
        stream: u32,
        head: RequestHead,
    },
    /// Body bytes; [`Http2::release`] them once the application has consumed them.
    Data {
        stream: u32,
        data: Bytes,
    },
    /// The request body is complete (request trailers, if any, are discarded).
    End {
        stream: u32,
    },
    /// The client reset the stream, or the stream failed; no more events for it.
    Reset {
        stream: u32,
        code: u32,
    },
    /// The stream's queued response body has all been handed to the engine.
    Sent {
        stream: u32,
    },
    /// The connection is over (GOAWAY exchanged, EOF, or a connection error).
    Closed {
        error: Option<String>,
    },
}

/// Why a send operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The stream is unknown, reset, or its response already ended.
    Gone,
    /// The response head could not be built (invalid status or field).
    Invalid(String),
}

struct Stream {
    recv: Option<RecvStream>,
    respond: Option<SendResponse<Bytes>>,
    send: Option<SendStream<Bytes>>,
    /// Body chunks not yet given to the engine, and their total length.
    queue: VecDeque<Bytes>,
    queued: usize,
    /// After the queue empties: end the stream, with these trailers if any.
    finish: Option<Option<HeaderMap>>,
    /// The response carries no body (HEAD, 1xx/204/304): body bytes are dropped.
    bodyless: bool,
    head_request: bool,
    /// `Sent` is owed once the queue empties.
    notify_sent: bool,
    /// The response's `content-length`, and the body bytes given so far: the body may
    /// neither exceed it nor end short of it (RFC 9113 §8.1.1).
    declared: Option<u64>,
    given: u64,
    /// The body does not match its `content-length`: once the bytes handed to the engine
    /// were written (a reset drops those still waiting), RST_STREAM INTERNAL_ERROR.
    cut: bool,
}

enum State {
    Handshaking(Handshake<Pipe, Bytes>),
    Ready(Connection<Pipe, Bytes>),
    Done,
}

/// One HTTP/2 server connection; see the module documentation.
pub struct Http2 {
    pipe: Pipe,
    state: State,
    streams: IdMap<u32, Stream>,
    events: Vec<Event>,
    /// The highest stream id handed out as a request.
    last_stream: u32,
    /// Counts requests and the client's resets of unfinished ones (rapid reset).
    resets: ResetGuard,
    /// Requests accepted before a graceful GOAWAY (0: no limit).
    max_requests: u64,
    /// The request head limits HTTP/1.1 answers 431 for, applied to each request's fields.
    max_fields: usize,
    max_field_size: usize,
    /// Every frame header passes this before the engine reads the frame.
    check: FrameCheck,
    /// When the graceful shutdown began (its first GOAWAY and PING went out).
    going_away_since: Option<Instant>,
    /// Streams whose `:path` has a `#`, as the frame check read them: refused when the
    /// engine hands them out (it drops the fragment).
    hash_in_path: Vec<u32>,
    /// Why this side ended the connection with an error, for [`Event::Closed`].
    failure: Option<String>,
    /// Streams this side reset for the client's errors, with the code, since the last
    /// [`Http2::take_stream_errors`]: read from the output, where every reset is.
    stream_errors: Vec<(u32, u32)>,
    output: OutputScan,
    /// A send operation happened since the last [`Http2::drive`]: taking the output (or
    /// [`Http2::flush`]) drives first.
    unsettled: bool,
}

impl Http2 {
    pub fn new(settings: &Settings) -> Self {
        let pipe = Pipe::default();
        let mut builder = h2::server::Builder::new();
        builder
            .max_concurrent_streams(settings.max_concurrent_streams)
            .initial_window_size(settings.initial_window_size)
            .initial_connection_window_size(
                settings
                    .initial_window_size
                    .saturating_mul(settings.max_concurrent_streams.clamp(1, 16)),
            )
            .max_frame_size(settings.max_frame_size)
            .max_header_list_size(settings.max_header_list_size)
            .max_pending_accept_reset_streams(settings.max_pending_accept_reset_streams)
            .max_local_error_reset_streams(Some(settings.max_local_error_reset_streams))
            .max_send_buffer_size(settings.max_frame_size as usize * 4);
        let state = State::Handshaking(builder.handshake(pipe.clone()));
        let mut conn = Self {
            pipe,
            state,
            streams: id_map(),
            events: Vec::new(),
            last_stream: 0,
            resets: ResetGuard::default(),
            max_requests: settings.max_requests,
            max_fields: settings.max_fields,
            max_field_size: settings.max_field_size,
            check: FrameCheck::new(),
            going_away_since: None,
            hash_in_path: Vec::new(),
            failure: None,
            stream_errors: Vec::new(),
            output: OutputScan::default(),
            unsettled: false,
        };
        conn.drive();
        conn
    }

    /// Bytes read from the client (empty at EOF).
    pub fn receive(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            self.pipe.close_input();
            self.drive();
            return;
        }
        let mut rest = bytes;
        loop {
            let pipe = &self.pipe;
            let Some(stop) = self.check.scan(rest, &mut |b| pipe.push_input(b)) else {
                break;
            };
            // The engine takes in the frames before the offending one first.
            self.drive();
            rest = &rest[stop.at..];
            let code = match stop.verdict {
                Verdict::Stream {
                    stream,
                    code,
                    forward,
                } if self.reset_for_client(stream, code) => {
                    let pipe = &self.pipe;
                    self.check.resume(forward, &mut |b| pipe.push_input(b));
                    continue;
                }
                Verdict::Stream { code, .. } | Verdict::Connection(code) => code,
            };
            self.fail(code, "a frame broke RFC 9113");
            return;
        }
        self.drive();
        self.refuse_late_streams();
        if self.check.flooding() {
            self.fail(ENHANCE_YOUR_CALM, "a flood of frames that carry no work");
        }
    }

    /// RST_STREAM REFUSED_STREAM for each stream the client opened after the final GOAWAY
    /// (RFC 9113 §8.7: not processed, safe to retry elsewhere). The engine ignores such a
    /// stream but decodes its field block, so the HPACK state stays in step; the frame is
    /// written here, after the engine's output of the same input.
    fn refuse_late_streams(&mut self) {
        for stream in self.check.take_refused() {
            if matches!(self.state, State::Done) {
                return;
            }
            let mut frame = [0u8; 13];
            frame[2] = 4;
            frame[3] = check::RST_STREAM;
            frame[5..9].copy_from_slice(&stream.to_be_bytes());
            frame[9..].copy_from_slice(&check::REFUSED_STREAM.to_be_bytes());
            self.pipe.push_output(&frame);
        }
    }

    /// Bytes to write to the client, taken.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.settle();
        let out = self.pipe.take_output();
        self.output.scan(out, &mut self.stream_errors)
    }

    /// Events since the last call, oldest first: the client's as of the last input or
    /// [`Http2::flush`]; a send operation's own ([`Event::Sent`] when its bytes fit the
    /// flow-control window) at once.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Let the engine act on the send operations so far: frames to the output, and the
    /// events they lead to.
    pub fn flush(&mut self) {
        self.settle();
    }

    /// Whether send operations wait for [`Http2::flush`] or [`Http2::take_output`].
    pub fn needs_flush(&self) -> bool {
        self.unsettled
    }

    /// The highest stream id accepted so far (for logs and GOAWAY accounting).
    pub fn last_stream(&self) -> u32 {
        self.last_stream
    }

    pub fn is_closed(&mut self) -> bool {
        self.settle();
        matches!(self.state, State::Done)
    }

    /// Streams whose request was accepted and that are not finished yet.
    pub fn open_streams(&mut self) -> usize {
        self.settle();
        self.streams.len()
    }

    /// Give `len` consumed body bytes of `stream` back to the client's send window.
    pub fn release(&mut self, stream: u32, len: usize) {
        if let Some(recv) = self.streams.get_mut(&stream).and_then(|s| s.recv.as_mut()) {
            // An error means the stream is already gone: nothing left to release.
            let _ = recv.flow_control().release_capacity(len);
        }
        self.unsettled = true;
    }

    /// Abandon a stream (RST_STREAM with `code`, e.g. INTERNAL_ERROR = 2 when the app
    /// failed mid-response).
    pub fn reset(&mut self, stream: u32, code: u32) {
        if let Some(mut entry) = self.streams.remove(&stream) {
            let reason = h2::Reason::from(code);
            if let Some(send) = entry.send.as_mut() {
                send.send_reset(reason);
            } else if let Some(respond) = entry.respond.as_mut() {
                respond.send_reset(reason);
            }
        }
        self.unsettled = true;
    }

    /// The application is done with `stream`: whatever of it the engine still holds (a
    /// request body nobody read) is dropped. A response not ended by then is the caller's
    /// to reset first; one cut for its `content-length` is reset here once its bytes left.
    pub fn forget(&mut self, stream: u32) {
        if self.streams.get(&stream).is_some_and(|entry| entry.cut) {
            return;
        }
        if self.streams.remove(&stream).is_some() {
            self.unsettled = true;
        }
    }

    /// A stream error the client caused on `stream`: reset it with `code` while its response
    /// is still to be sent; false when it is not (the caller ends the connection instead, as
    /// RFC 9113 §5.4.1 allows: an idle or closed stream cannot be reset).
    fn reset_for_client(&mut self, stream: u32, code: u32) -> bool {
        match self.streams.get(&stream) {
            Some(entry) if entry.send.is_some() || entry.respond.is_some() => {
                self.reset(stream, code);
                self.events.push(Event::Reset { stream, code });
                true
            }
            _ => false,
        }
    }

    /// GOAWAY: no new streams; the open ones finish, then the connection closes.
    pub fn graceful_shutdown(&mut self) {
        if let State::Ready(conn) = &mut self.state {
            conn.graceful_shutdown();
            self.check.going_away();
            self.going_away_since.get_or_insert_with(Instant::now);
        }
        self.drive();
    }

    /// Once a graceful shutdown waited [`SHUTDOWN_PING_WAIT`] for the acknowledgement of
    /// its PING, act as if it came: the engine sends the final GOAWAY, naming the last
    /// stream it saw, and ignores later ones (refused here). True if it did; the caller
    /// then takes the output. The acknowledgement is read by the frame check too, so both
    /// stay in step; one the client sends later is an unknown one, ignored.
    pub fn expire(&mut self, now: Instant) -> bool {
        let waited = self
            .going_away_since
            .is_some_and(|since| now.duration_since(since) >= SHUTDOWN_PING_WAIT);
        let Some(ack) = self.check.shutdown_ping_ack().filter(|_| waited) else {
            return false;
        };
        let pipe = &self.pipe;
        if self.check.scan(&ack, &mut |b| pipe.push_input(b)).is_some() {
            return false;
        }
        self.drive();
        true
    }

    /// Streams reset for the client's errors since the last call, with their codes (for a
    /// log line each: the connection goes on).
    pub fn take_stream_errors(&mut self) -> Vec<(u32, u32)> {
        std::mem::take(&mut self.stream_errors)
    }

    /// A connection error of the client's: GOAWAY with `code`, and `why` kept for
    /// [`Event::Closed`].
    fn fail(&mut self, code: u32, why: &str) {
        if self.failure.is_none() && !matches!(self.state, State::Done) {
            self.failure = Some(format!("HTTP/2 {}: {why}", error_name(code)));
        }
        self.abort(code);
    }

    /// GOAWAY with `code` (e.g. ENHANCE_YOUR_CALM = 11) and close at once.
    pub fn abort(&mut self, code: u32) {
        if let State::Ready(conn) = &mut self.state {
            conn.abrupt_shutdown(h2::Reason::from(code));
        }
        self.drive();
    }

    /// Drive if a send operation left work for the engine.
    fn settle(&mut self) {
        if self.unsettled {
            self.drive();
        }
    }

    /// Poll the engine until nothing moves: accept streams, pull body bytes, notice
    /// resets, push queued body bytes as capacity allows. Nothing wakes a task, so this
    /// runs after every input and before events or output are taken after send operations.
    fn drive(&mut self) {
        self.unsettled = false;
        // Kept until the engine accepts the stream: its header block may end in a later
        // read than the `:path` the check flagged.
        let flagged = self.check.take_hash_in_path();
        self.hash_in_path.extend(flagged);
        let mut cx = Context::from_waker(Waker::noop());
        if let State::Handshaking(handshake) = &mut self.state {
            match std::pin::Pin::new(handshake).poll(&mut cx) {
                Poll::Ready(Ok(conn)) => self.state = State::Ready(conn),
                Poll::Ready(Err(error)) => self.close(Some(error)),
                Poll::Pending => return,
            }
        }
        // Polling the connection reads all input and writes every frame handed to the
        // engine so far; it is polled again only when the streams handed it more.
        loop {
            self.accept(&mut cx);
            let mut handed = false;
            let ids: Vec<u32> = self.streams.keys().copied().collect();
            for id in ids {
                handed |= self.poll_stream(id, &mut cx);
            }
            if !handed {
                break;
            }
        }
    }

    /// Accept new streams, until the connection has no more input or ended.
    fn accept(&mut self, cx: &mut Context<'_>) {
        while let State::Ready(conn) = &mut self.state {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, mut respond)))) => {
                    let id = respond.stream_id().as_u32();
                    self.last_stream = self.last_stream.max(id);
                    let accepted = self.resets.accepted();
                    self.check.flood.request();
                    if accepted == self.max_requests {
                        // Streams already on their way are still served, then it closes.
                        conn.graceful_shutdown();
                        self.check.going_away();
                        self.going_away_since.get_or_insert_with(Instant::now);
                    }
                    let (parts, recv) = request.into_parts();
                    if fields_too_large(&parts.headers, self.max_fields, self.max_field_size) {
                        // Answered here, before any copy of its fields is made; the engine
                        // drops the stream (and any body the client still sends) once the
                        // handles go.
                        let _ = respond.send_response(too_large_response(), true);
                        continue;
                    }
                    let hash_in_path = self.hash_in_path.contains(&id);
                    // Streams open in order: a lower one flagged and never accepted was
                    // reset or refused before it was whole.
                    self.hash_in_path.retain(|&flagged| flagged > id);
                    if is_malformed(&parts) || hash_in_path {
                        // RFC 9113 §8.1.1: a stream error PROTOCOL_ERROR; the app never sees it.
                        respond.send_reset(h2::Reason::PROTOCOL_ERROR);
                        continue;
                    }
                    if parts.method == http::Method::CONNECT {
                        // Answered here too: an app answering 200 would tell the client a
                        // tunnel opened. Any tunnel bytes are dropped with the stream.
                        let _ = respond.send_response(connect_response(), true);
                        continue;
                    }
                    let head = request_head(&parts, recv.is_end_stream());
                    let head_request = parts.method == http::Method::HEAD;
                    self.streams.insert(
                        id,
                        Stream {
                            recv: (!head.end_stream).then_some(recv),
                            respond: Some(respond),
                            send: None,
                            queue: VecDeque::new(),
                            queued: 0,
                            finish: None,
                            bodyless: false,
                            head_request,
                            notify_sent: false,
                            declared: None,
                            given: 0,
                            cut: false,
                        },
                    );
                    self.events.push(Event::Request { stream: id, head });
                }
                Poll::Ready(Some(Err(error))) => {
                    // A stream-level error surfaces on the stream; a connection error here.
                    if error.is_io() || error.is_go_away() || error.reason().is_some() {
                        self.close(Some(error));
                        return;
                    }
                }
                Poll::Ready(None) => {
                    self.close(None);
                    return;
                }
                Poll::Pending => break,
            }
        }
    }

    /// One stream's receive side, reset and send side; true if it handed the engine
    /// something to write (body bytes, its end, or its handles dropped).
    fn poll_stream(&mut self, id: u32, cx: &mut Context<'_>) -> bool {
        let Some(entry) = self.streams.get_mut(&id) else {
            return false;
        };
        if let Some(recv) = entry.recv.as_mut() {
            loop {
                match recv.poll_data(cx) {
                    Poll::Ready(Some(Ok(data))) => {
                        if data.is_empty() {
                            continue;
                        }
                        self.events.push(Event::Data { stream: id, data });
                    }
                    Poll::Ready(Some(Err(_))) => {
                        entry.recv = None;
                        break;
                    }
                    Poll::Ready(None) => {
                        entry.recv = None;
                        self.events.push(Event::End { stream: id });
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        let reset = match (entry.send.as_mut(), entry.respond.as_mut()) {
            (Some(send), _) => send.poll_reset(cx),
            (None, Some(respond)) => respond.poll_reset(cx),
            (None, None) => Poll::Pending,
        };
        if let Poll::Ready(outcome) = reset {
            let code = outcome.map_or(2, u32::from);
            let mid_flight = entry.finish.is_none();
            self.streams.remove(&id);
            self.events.push(Event::Reset { stream: id, code });
            if mid_flight && self.resets.reset() {
                if let State::Ready(conn) = &mut self.state {
                    conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                    self.failure.get_or_insert_with(|| {
                        "HTTP/2 ENHANCE_YOUR_CALM: too many streams reset by the client".to_owned()
                    });
                }
            }
            return true;
        }
        if entry.cut && entry.queued == 0 {
            // The engine wrote what it was handed before this pass (its connection is
            // polled first), so the reset comes after the response's bytes.
            self.reset(id, INTERNAL_ERROR);
            return true;
        }
        let handed = self.push_body(id, cx);
        self.finish_if_done(id) || handed
    }

    fn close(&mut self, error: Option<h2::Error>) {
        if matches!(self.state, State::Done) {
            return;
        }
        self.state = State::Done;
        for id in self.streams.keys() {
            self.events.push(Event::Reset {
                stream: *id,
                code: 0,
            });
        }
        self.streams.clear();
        let engine_error = error
            .filter(|e| !e.is_io() && e.reason() != Some(h2::Reason::NO_ERROR))
            .map(|e| match e.reason() {
                Some(reason) => format!("HTTP/2 {reason:?}: {e}"),
                None => format!("HTTP/2 {e}"),
            });
        self.events.push(Event::Closed {
            error: self.failure.take().or(engine_error),
        });
    }
}

fn request_head(parts: &http::request::Parts, end_stream: bool) -> RequestHead {
    let mut headers = Vec::with_capacity(parts.headers.len() + 1);
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().as_bytes().to_vec());
    let has_authority = authority.is_some();
    if let Some(authority) = authority {
        headers.push((b"host".to_vec(), authority));
    }
    let mut cookie: Option<Vec<u8>> = None;
    for (name, value) in &parts.headers {
        if name == http::header::COOKIE {
            let joined = cookie.get_or_insert_with(Vec::new);
            if !joined.is_empty() {
                joined.extend_from_slice(b"; ");
            }
            joined.extend_from_slice(value.as_bytes());
        } else if !(has_authority && name == http::header::HOST) {
            headers.push((name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec()));
        }
    }
    if let Some(cookie) = cookie {
        headers.push((b"cookie".to_vec(), cookie));
    }
    RequestHead {
        method: parts.method.as_str().to_owned(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        scheme: parts.uri.scheme_str().map(str::to_owned),
        headers,
        end_stream,
    }
}

/// An error code's name (RFC 9113 §7), or its number.
fn error_name(code: u32) -> String {
    format!("{:?}", h2::Reason::from(code))
}
