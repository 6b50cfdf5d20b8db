//! The engine beneath the stream mode (`http2.rs`): HTTP/2 on one TCP connection
//! ([`H2Engine`]), or one QUIC connection of an endpoint (`http3.rs`'s `H3Link`). The mode
//! speaks to either through [`StreamEngine`], the same send operations on the same stream
//! ids.
//!
//! Stream ids are the engine's; HTTP/3's past `u32::MAX` would be dropped, but
//! `--h2-max-requests` (GOAWAY after that many requests) keeps a connection far below
//! (client request ids are 0, 4, 8, ...: 2^30 requests; with no cap, a billion requests on
//! one connection).

use std::time::Instant;

use ruvicorn_core::http2::{Bytes, Event, Http2, SendError};
use ruvicorn_core::tls::info::ConnectionInfo;

use crate::metrics;

/// What the stream mode asks of its engine. Send operations may leave their output due
/// rather than send it: [`StreamEngine::output_due`] says when a flush, run once the
/// connection's lock is released, has to send it.
pub(super) trait StreamEngine: Send {
    /// The metrics counter of the protocol it speaks.
    fn metrics_protocol(&self) -> usize;

    /// What the engine's own handshake negotiated (QUIC; HTTP/2's is its TLS layer's).
    fn tls_info(&self) -> Option<ConnectionInfo> {
        None
    }

    /// Bytes read from the connection's transport (HTTP/3's datagrams reach its endpoint).
    fn receive(&mut self, _data: &[u8]) {}

    /// Events since the last call, oldest first.
    fn take_events(&mut self) -> Vec<Event>;

    /// Run the send operations so far: their output, and the events they lead to.
    fn flush(&mut self) {}

    /// Bytes to write on the connection's transport, taken (HTTP/3's leave as datagrams).
    fn take_output(&mut self) -> Vec<u8> {
        Vec::new()
    }

    /// Output is due and no flush for it is asked for yet: the caller asks for one. An
    /// HTTP/2 flush runs on the loop's next turn (one engine pass and one write for every
    /// app's sends of a turn), at most one at a time until [`StreamEngine::flushing`]; an
    /// HTTP/3 endpoint sends its datagrams at once.
    fn output_due(&mut self) -> bool;

    /// The flush asked for runs now.
    fn flushing(&mut self) {}

    fn release(&mut self, stream: u32, len: usize);

    fn send_response(
        &mut self,
        stream: u32,
        status: u16,
        headers: &[(Vec<u8>, Vec<u8>)],
        end: bool,
    ) -> Result<(), SendError>;

    /// An interim `100 Continue` before the response head.
    fn send_continue(&mut self, stream: u32) -> Result<(), SendError>;

    fn send_data(&mut self, stream: u32, data: Bytes, end: bool) -> Result<(), SendError>;

    fn send_trailers(
        &mut self,
        stream: u32,
        trailers: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), SendError>;

    fn reset(&mut self, stream: u32, code: u32);

    fn forget(&mut self, stream: u32);

    /// GOAWAY: no new streams; the open ones finish, then the connection closes.
    fn graceful_shutdown(&mut self);

    /// Close at once with `code` (an HTTP/2 error code).
    fn abort(&mut self, code: u32);

    /// Streams reset for the client's errors since the last call, with their codes.
    fn take_stream_errors(&mut self) -> Vec<(u32, u32)> {
        Vec::new()
    }

    /// Act on the engine's own deadlines as of `now`; true if it has output to write.
    fn expire(&mut self, _now: Instant) -> bool {
        false
    }
}

/// HTTP/2 on one TCP connection: its send operations wait for a flush.
pub(super) struct H2Engine {
    http2: Http2,
    /// A flush is asked for and has not run yet.
    flush_asked: bool,
}

impl H2Engine {
    pub(super) fn new(http2: Http2) -> Self {
        Self {
            http2,
            flush_asked: false,
        }
    }
}

impl StreamEngine for H2Engine {
    fn metrics_protocol(&self) -> usize {
        metrics::H2
    }

    fn receive(&mut self, data: &[u8]) {
        self.http2.receive(data);
    }

    fn take_events(&mut self) -> Vec<Event> {
        self.http2.take_events()
    }

    fn flush(&mut self) {
        self.http2.flush();
    }

    fn take_output(&mut self) -> Vec<u8> {
        self.http2.take_output()
    }

    fn output_due(&mut self) -> bool {
        let ask = !self.flush_asked && self.http2.needs_flush();
        self.flush_asked |= ask;
        ask
    }

    fn flushing(&mut self) {
        self.flush_asked = false;
    }

    fn release(&mut self, stream: u32, len: usize) {
        self.http2.release(stream, len);
    }

    fn send_response(
        &mut self,
        stream: u32,
        status: u16,
        headers: &[(Vec<u8>, Vec<u8>)],
        end: bool,
    ) -> Result<(), SendError> {
        self.http2.send_response(stream, status, headers, end)
    }

    fn send_continue(&mut self, stream: u32) -> Result<(), SendError> {
        self.http2.send_continue(stream)
    }

    fn send_data(&mut self, stream: u32, data: Bytes, end: bool) -> Result<(), SendError> {
        self.http2.send_data(stream, data, end)
    }

    fn send_trailers(
        &mut self,
        stream: u32,
        trailers: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), SendError> {
        self.http2.send_trailers(stream, trailers)
    }

    fn reset(&mut self, stream: u32, code: u32) {
        self.http2.reset(stream, code);
    }

    fn forget(&mut self, stream: u32) {
        self.http2.forget(stream);
    }

    fn graceful_shutdown(&mut self) {
        self.http2.graceful_shutdown();
    }

    fn abort(&mut self, code: u32) {
        self.http2.abort(code);
    }

    fn expire(&mut self, now: Instant) -> bool {
        self.http2.expire(now)
    }

    fn take_stream_errors(&mut self) -> Vec<(u32, u32)> {
        self.http2.take_stream_errors()
    }
}
