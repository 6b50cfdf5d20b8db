//! HTTP/3 server connections, sans-IO: datagrams in -> [`Event`]s, send operations ->
//! datagrams out, plus the one deadline to wake up at.
//!
//! QUIC is quinn-proto's state machine (TLS 1.3 through rustls with the *ring* provider,
//! as on TCP); stateless reset, retry and anti-amplification are its. HTTP/3 itself (RFC
//! 9114 frames, control and QPACK streams) and QPACK (RFC 9204, static table and literals
//! only: ruvicorn announces a dynamic table of capacity 0) are this module's own, small
//! and synchronous, so nothing needs a runtime or a waker.
//!
//! The shape follows [`crate::http2`]: a request is a [`RequestHead`] mapped the same way,
//! body bytes are [`Endpoint::release`]d as the application consumes them (reading stops
//! after a stream's receive window of unreleased bytes), and a response body waits in its
//! stream's queue until flow control takes it, [`Event::Sent`] saying when it did.

pub mod codes;
mod config;
mod conn;
mod endpoint;
pub mod forward;
pub mod frame;
pub mod head;
pub mod ids;
pub mod qpack;
mod session;
#[cfg(test)]
mod tests;
pub mod uni;

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::http2::RequestHead;
pub use bytes::Bytes;
pub use endpoint::{Endpoint, NewConnections, Transmit, Verdict};

/// The ALPN protocol id of HTTP/3.
pub const ALPN: &[u8] = b"h3";

/// The limits an endpoint announces and enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Request streams a client may have open at once.
    pub max_concurrent_streams: u32,
    /// Decoded field section bytes per request (names, values and 32 bytes per field).
    pub max_header_list_size: u64,
    /// Fields per request (pseudo-headers aside, each field line counted) and the longest
    /// one as its line `name: value`: a request over either is answered 431.
    pub max_fields: usize,
    pub max_field_size: usize,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Request body bytes a client may send ahead on one stream, and in all.
    pub stream_receive_window: u32,
    pub connection_receive_window: u32,
    /// Connections at once; new ones beyond are refused.
    pub max_connections: usize,
    /// Validate each client's address with a Retry before any handshake work.
    pub retry: bool,
    /// Requests served on one connection before it is asked to go (GOAWAY); 0 = no limit.
    pub max_requests: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 100,
            max_header_list_size: 64 * 1024,
            max_fields: 100,
            max_field_size: 8190,
            idle_timeout: Duration::from_secs(30),
            stream_receive_window: 256 * 1024,
            connection_receive_window: 4 * 1024 * 1024,
            max_connections: 10_000,
            retry: false,
            max_requests: 10_000,
        }
    }
}

/// What clients did, in order per connection. `conn` names a connection, `stream` a request
/// stream within it (its QUIC stream id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A QUIC connection is being set up.
    Connected { conn: u64, remote: SocketAddr },
    /// The client's address changed (it migrated, or a NAT rebound it); requests that
    /// follow come from `remote`.
    Migrated { conn: u64, remote: SocketAddr },
    Request {
        conn: u64,
        stream: u64,
        head: RequestHead,
    },
    /// Body bytes; [`Endpoint::release`] them once the application has consumed them.
    Data { conn: u64, stream: u64, data: Bytes },
    /// The request body is complete (request trailers, if any, are discarded).
    End { conn: u64, stream: u64 },
    /// The client reset the stream, or the stream failed; no more events for it.
    Reset { conn: u64, stream: u64, code: u64 },
    /// The stream's queued response body has all been handed to QUIC.
    Sent { conn: u64, stream: u64 },
    /// The connection is over (closed by either side, timed out, or failed).
    Closed { conn: u64, error: Option<String> },
}

/// Why a send operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The stream is unknown, reset, or its response already ended.
    Gone,
    /// The response head could not be built (invalid status or field).
    Invalid(String),
}
