//! One HTTP/3 connection over one quinn-proto QUIC connection: the events quinn-proto
//! reports become stream reads and writes here, and request streams become [`Event`]s.

mod request;
mod uni;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quinn_proto::{Dir, ReadError, StreamEvent, StreamId, VarInt};

use super::uni::{PeerStreams, Uni};
use super::{codes, frame, Event, Settings};
use crate::rapid_reset::ResetGuard;
use request::Request;

/// QUIC's maximum ACK delay (RFC 9000 §18.2, the default quinn-proto keeps).
const MAX_ACK_DELAY: Duration = Duration::from_millis(25);

pub(crate) struct Conn {
    pub(crate) quic: quinn_proto::Connection,
    /// The client's address as last reported ([`Event::Migrated`]).
    pub(crate) remote: std::net::SocketAddr,
    id: u64,
    now: Instant,
    settings: Settings,
    /// Our control stream, and what is waiting to be written to it.
    control: Option<StreamId>,
    control_out: Vec<u8>,
    uni: HashMap<StreamId, Uni>,
    /// Which critical streams the peer opened: control, QPACK encoder, QPACK decoder.
    peer_streams: PeerStreams,
    requests: HashMap<StreamId, Request>,
    /// Finished responses whose last bytes the peer has not acknowledged yet.
    unacked: HashSet<StreamId>,
    /// Responses cut for their `content-length`, handed to QUIC, to reset.
    cut: HashSet<StreamId>,
    /// After GOAWAY: the first request stream id that is refused.
    goaway: Option<u64>,
    /// The next request stream id a GOAWAY would name.
    next_request: u64,
    /// After GOAWAY, once nothing is left to answer: when the connection closes. Closing
    /// at once would discard the GOAWAY not yet sent, and a request the client sent
    /// meanwhile would end in a close it cannot tell from one after processing it
    /// (RFC 9114 §5.2); until then the GOAWAY goes out and such a request is refused.
    linger: Option<Instant>,
    closed: bool,
    /// Counts requests and the client's resets of unfinished ones (rapid reset).
    resets: ResetGuard,
    pub(crate) events: Vec<Event>,
    /// The next timer as the endpoint's deadline index holds it.
    pub(crate) deadline: Option<Instant>,
    /// The connection was touched since the index last asked for its next timer.
    pub(crate) timers_moved: bool,
}

impl Conn {
    pub(crate) fn new(
        quic: quinn_proto::Connection,
        id: u64,
        now: Instant,
        settings: Settings,
    ) -> Self {
        let remote = quic.remote_address();
        Self {
            quic,
            remote,
            id,
            now,
            settings,
            control: None,
            control_out: Vec::new(),
            uni: HashMap::new(),
            peer_streams: PeerStreams::default(),
            requests: HashMap::new(),
            unacked: HashSet::new(),
            cut: HashSet::new(),
            goaway: None,
            next_request: 0,
            linger: None,
            closed: false,
            resets: ResetGuard::default(),
            events: vec![Event::Connected { conn: id, remote }],
            deadline: None,
            timers_moved: false,
        }
    }

    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// The earliest moment [`Conn::handle_timeout`] must run, if any.
    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        let linger = self.linger.filter(|_| !self.closed);
        self.quic.poll_timeout().into_iter().chain(linger).min()
    }

    /// QUIC's timers due at `now`, and the close after GOAWAY.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.quic.handle_timeout(now);
        self.close_if_drained();
    }

    pub(crate) fn open_requests(&self) -> usize {
        self.requests.len()
    }

    /// React to one quinn-proto event.
    pub(crate) fn on_event(&mut self, event: quinn_proto::Event) {
        match event {
            quinn_proto::Event::Connected => self.open_control(),
            quinn_proto::Event::ConnectionLost { reason } => {
                let error = match reason {
                    // A code that names no error (NO_ERROR, or one unknown) is a clean
                    // close; so is the transport's NO_ERROR.
                    quinn_proto::ConnectionError::ApplicationClosed(close)
                        if !codes::signals_error(close.error_code.into_inner()) =>
                    {
                        None
                    }
                    quinn_proto::ConnectionError::ConnectionClosed(close)
                        if close.error_code == quinn_proto::TransportErrorCode::NO_ERROR =>
                    {
                        None
                    }
                    quinn_proto::ConnectionError::TimedOut => None,
                    other => Some(other.to_string()),
                };
                self.lost(error);
            }
            quinn_proto::Event::Stream(event) => self.on_stream(&event),
            _ => {}
        }
    }

    fn on_stream(&mut self, event: &StreamEvent) {
        match *event {
            StreamEvent::Opened { .. } => self.accept(),
            StreamEvent::Readable { id } => {
                if self.requests.contains_key(&id) {
                    self.read_request(id);
                } else if self.uni.contains_key(&id) {
                    self.read_uni(id);
                }
            }
            StreamEvent::Writable { id } => {
                if Some(id) == self.control {
                    self.flush_control();
                } else {
                    self.flush(id);
                }
            }
            StreamEvent::Stopped { id, error_code } => self.stopped(id, error_code.into_inner()),
            StreamEvent::Finished { id } => {
                self.unacked.remove(&id);
                self.close_if_drained();
            }
            StreamEvent::Available { .. } => {}
        }
    }

    /// Take every stream the peer opened.
    fn accept(&mut self) {
        while let Some(id) = self.quic.streams().accept(Dir::Uni) {
            self.uni.insert(id, Uni::default());
            self.read_uni(id);
        }
        while let Some(id) = self.quic.streams().accept(Dir::Bi) {
            let raw = u64::from(id);
            if self.goaway.is_some_and(|first| raw >= first) {
                // §5.2: requests past the GOAWAY id were not and will not be processed.
                self.reject(id, codes::REQUEST_REJECTED);
                continue;
            }
            self.next_request = self.next_request.max(raw + 4);
            self.requests
                .insert(id, Request::new(self.settings.max_header_list_size));
            self.read_request(id);
        }
    }

    /// Open our control stream and send SETTINGS (no dynamic table, no blocked streams).
    fn open_control(&mut self) {
        if self.control.is_some() {
            return;
        }
        let Some(id) = self.quic.streams().open(Dir::Uni) else {
            return self.fail(
                codes::STREAM_CREATION_ERROR,
                "no stream for the control stream",
            );
        };
        self.control = Some(id);
        // The stream type and SETTINGS go first: a GOAWAY queued while the handshake
        // was still under way (a drain that began then) follows them.
        let mut head = vec![0x00];
        head.extend(frame::settings(&[
            (frame::SETTINGS_QPACK_MAX_TABLE_CAPACITY, 0),
            (frame::SETTINGS_QPACK_BLOCKED_STREAMS, 0),
            (
                frame::SETTINGS_MAX_FIELD_SECTION_SIZE,
                self.settings.max_header_list_size,
            ),
        ]));
        self.control_out.splice(..0, head);
        self.flush_control();
    }

    fn flush_control(&mut self) {
        let Some(id) = self.control else { return };
        if self.control_out.is_empty() {
            return;
        }
        match self.quic.send_stream(id).write(&self.control_out) {
            Ok(written) => {
                self.control_out.drain(..written);
            }
            Err(quinn_proto::WriteError::Blocked) => {}
            Err(_) => self.fail(codes::CLOSED_CRITICAL_STREAM, "control stream stopped"),
        }
    }

    /// Graceful stop (RFC 9114 §5.2): GOAWAY naming the first request not accepted; the
    /// requests before it finish, then the connection closes with H3_NO_ERROR.
    pub(crate) fn goaway(&mut self) {
        if self.closed || self.goaway.is_some() {
            return;
        }
        self.goaway = Some(self.next_request);
        let mut payload = Vec::new();
        frame::put_varint(&mut payload, self.next_request);
        self.control_out
            .extend(frame::frame(frame::GOAWAY, &payload));
        self.flush_control();
        self.close_if_drained();
    }

    /// Close at once with `code` (CONNECTION_CLOSE carries it), failing open streams.
    pub(crate) fn close(&mut self, code: u64, reason: &str) {
        if self.closed {
            return;
        }
        let code = VarInt::from_u64(code).unwrap_or(VarInt::from_u32(codes::INTERNAL_ERROR as u32));
        self.quic
            .close(self.now, code, Bytes::copy_from_slice(reason.as_bytes()));
        self.lost(None);
    }

    /// A connection error of ours (RFC 9114 §8): close, and say why.
    fn fail(&mut self, code: u64, reason: &str) {
        if self.closed {
            return;
        }
        self.close(code, reason);
        if let Some(Event::Closed { error, .. }) = self.events.last_mut() {
            *error = Some(format!("HTTP/3 error {code:#x}: {reason}"));
        }
    }

    /// The connection is over: its open requests are reset, then `Closed`.
    fn lost(&mut self, error: Option<String>) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut open: Vec<StreamId> = self.requests.keys().copied().collect();
        open.sort_unstable();
        for id in open {
            if self.requests.remove(&id).is_some_and(|r| r.announced) {
                self.events.push(Event::Reset {
                    conn: self.id,
                    stream: u64::from(id),
                    code: 0,
                });
            }
        }
        self.events.push(Event::Closed {
            conn: self.id,
            error,
        });
    }

    /// After GOAWAY, close once every request is answered and acknowledged, and the
    /// linger that follows (about three probe timeouts, as long as QUIC drains) is over.
    fn close_if_drained(&mut self) {
        if self.goaway.is_none() || !self.requests.is_empty() || !self.unacked.is_empty() {
            return;
        }
        let rtt = self.quic.rtt() + MAX_ACK_DELAY;
        let until = *self.linger.get_or_insert(self.now + 3 * rtt);
        if self.now >= until {
            self.close(codes::NO_ERROR, "");
        }
    }
}

/// What a read of a stream found besides its bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadEnd {
    /// The stream ended (all its bytes were read).
    pub fin: bool,
    /// The peer reset it with this code.
    pub reset: Option<u64>,
}

/// Append what stream `id` has to `buf` while `buf` holds less than `limit` bytes.
pub(crate) fn read_into(
    quic: &mut quinn_proto::Connection,
    id: StreamId,
    buf: &mut BytesMut,
    limit: usize,
) -> ReadEnd {
    let mut end = ReadEnd::default();
    let mut stream = quic.recv_stream(id);
    let Ok(mut chunks) = stream.read(true) else {
        return end;
    };
    while buf.len() < limit {
        match chunks.next(limit - buf.len()) {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => {
                end.fin = true;
                break;
            }
            Err(ReadError::Blocked) => break,
            Err(ReadError::Reset(code)) => {
                end.reset = Some(code.into_inner());
                break;
            }
        }
    }
    // Whether a flow control update is due is quinn-proto's to act on at the next transmit.
    let _ = chunks.finalize();
    end
}
