//! The server endpoint: every datagram of one UDP socket goes in here, and every datagram
//! to send, and the one deadline to wake up at, come out.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use quinn_proto::{ConnectionHandle, ConnectionId, DatagramEvent, EndpointConfig, StreamId};

use super::conn::Conn;
use super::forward::{Ids, Owner};
use super::ids::{IdMap, IdSet};
use super::{config, session, Event, SendError, Settings};
use crate::tls::config::ring_provider;
use crate::tls::info::ConnectionInfo;

/// Responses the endpoint makes on its own (version negotiation, stateless reset, retry,
/// refusals) wait here; beyond this many, new ones are dropped, so junk costs a drop.
const MAX_QUEUED_RESPONSES: usize = 64;

/// One datagram to send: the last `size` bytes [`Endpoint::poll_transmit`] appended to its
/// caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    /// The connection it belongs to; None for the endpoint's own answers (version
    /// negotiation, stateless reset, Retry, refusals).
    pub conn: Option<u64>,
    pub size: usize,
}

/// A datagram the endpoint answered on its own, waiting to be sent.
struct Response {
    destination: SocketAddr,
    contents: Vec<u8>,
}

/// What becomes of a client's first packet (a new connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewConnections {
    Accept,
    /// Answered with CONNECTION_REFUSED (the service is stopping: the client learns it now).
    Refuse,
    /// Dropped unanswered (a replacement worker shares the socket: the client's
    /// retransmission of its first packet may reach that worker, which accepts it).
    Ignore,
    /// Handed to the other worker of the socket ([`Verdict::Forward`]), which accepts it;
    /// ignored when it came from there.
    Forward,
}

/// What became of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handled here (served, answered or dropped).
    Used,
    /// Not this endpoint's: hand it to the socket's other worker (only ever said of a
    /// datagram that came from the socket).
    Forward,
}

/// The QUIC + HTTP/3 server endpoint of one UDP socket.
pub struct Endpoint {
    quic: quinn_proto::Endpoint,
    /// Recognises this endpoint's connection ids.
    ids: Ids,
    /// The destination id of each accepted connection's first packet, and back: a
    /// client's retransmission of that packet is this endpoint's, not a new connection.
    first_ids: HashMap<ConnectionId, u64>,
    first_id_of: IdMap<ConnectionId>,
    settings: Settings,
    new_connections: NewConnections,
    conns: IdMap<Conn>,
    responses: VecDeque<Response>,
    events: Vec<Event>,
    buf: Vec<u8>,
    /// Connections that may have datagrams to send, in turn order (each once).
    ready: VecDeque<u64>,
    in_ready: IdSet,
    /// Every connection's next timer, earliest first (each connection's entry is its
    /// `Conn::deadline`), so the next deadline is found without asking every connection.
    deadlines: BTreeSet<(Instant, u64)>,
    /// Connections touched since the index last asked for their next timer (each once).
    timers_moved: Vec<u64>,
}

impl Endpoint {
    /// An endpoint serving `tls` (its ALPN list becomes `h3` alone; TLS 1.3 must be enabled).
    pub fn new(tls: rustls::ServerConfig, settings: &Settings) -> Result<Self, String> {
        let server_config = config::server_config(tls, settings)?;
        let mut endpoint_config = EndpointConfig::default();
        // Connection ids this endpoint recognises as its own (signed with a random key, as
        // the stateless reset key is random): a packet for another worker's connection on
        // a shared socket (a rolling restart) is never answered with a stateless reset
        // (which the client would ignore anyway: its token is made with this endpoint's
        // reset key, not the issuer's); it is handed to the other worker (`forward`).
        let mut key = [0; 8];
        ring_provider()
            .secure_random
            .fill(&mut key)
            .map_err(|_| "no random numbers for connection ids".to_owned())?;
        let key = u64::from_le_bytes(key);
        endpoint_config.cid_generator(move || Box::new(Ids::generator(key)));
        let quic = quinn_proto::Endpoint::new(
            Arc::new(endpoint_config),
            Some(server_config),
            // No path MTU probing: asyncio's UDP sockets do not forbid fragmentation.
            false,
            None,
        );
        Ok(Self {
            quic,
            ids: Ids::new(key),
            first_ids: HashMap::new(),
            first_id_of: IdMap::default(),
            settings: *settings,
            new_connections: NewConnections::Accept,
            conns: IdMap::default(),
            responses: VecDeque::new(),
            events: Vec::new(),
            buf: Vec::new(),
            ready: VecDeque::new(),
            in_ready: IdSet::default(),
            deadlines: BTreeSet::new(),
            timers_moved: Vec::new(),
        })
    }

    /// One datagram from `remote`, read from the socket.
    pub fn datagram_received(&mut self, now: Instant, remote: SocketAddr, data: &[u8]) -> Verdict {
        self.receive(now, remote, data, false)
    }

    /// One datagram from `remote` that the socket's other worker handed over: used here
    /// or dropped, never handed back.
    pub fn forwarded_received(&mut self, now: Instant, remote: SocketAddr, data: &[u8]) {
        self.receive(now, remote, data, true);
    }

    fn receive(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        data: &[u8],
        forwarded: bool,
    ) -> Verdict {
        let first_ids = &self.first_ids;
        let pass = if forwarded {
            Verdict::Used
        } else {
            Verdict::Forward
        };
        match self.ids.owner(data, |cid| first_ids.contains_key(cid)) {
            Owner::Mine => {
                self.handle(now, remote, data, forwarded);
                Verdict::Used
            }
            Owner::Theirs => pass,
            Owner::Unknown if !forwarded && self.new_connections == NewConnections::Forward => {
                Verdict::Forward
            }
            // A new connection, or (when nothing comes of it here: its keys come from
            // another endpoint's id) a packet of the other worker's handshake.
            Owner::Unknown if self.handle(now, remote, data, forwarded) => Verdict::Used,
            Owner::Unknown => pass,
        }
    }

    /// Hand `data` to quinn-proto; whether anything came of it.
    fn handle(&mut self, now: Instant, remote: SocketAddr, data: &[u8], forwarded: bool) -> bool {
        self.buf.clear();
        let event = self
            .quic
            .handle(now, remote, None, None, BytesMut::from(data), &mut self.buf);
        match event {
            None => return false,
            Some(DatagramEvent::Response(transmit)) => self.respond(&transmit),
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some(conn) = self.conns.get_mut(&(handle.0 as u64)) {
                    conn.quic.handle_event(event);
                    self.process(handle, now);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                let ignore = match self.new_connections {
                    NewConnections::Ignore => true,
                    NewConnections::Forward => forwarded,
                    _ => false,
                };
                if ignore {
                    self.quic.ignore(incoming);
                    return true;
                }
                if self.new_connections == NewConnections::Refuse
                    || self.conns.len() >= self.settings.max_connections
                {
                    let transmit = self.quic.refuse(incoming, &mut self.buf);
                    self.respond(&transmit);
                    return true;
                }
                if self.settings.retry
                    && !incoming.remote_address_validated()
                    && incoming.may_retry()
                {
                    match self.quic.retry(incoming, &mut self.buf) {
                        Ok(transmit) => self.respond(&transmit),
                        Err(error) => self.quic.ignore(error.into_incoming()),
                    }
                    return true;
                }
                let first_id = *incoming.orig_dst_cid();
                match self.quic.accept(incoming, now, &mut self.buf, None) {
                    Ok((handle, quic)) => {
                        let id = handle.0 as u64;
                        self.first_ids.insert(first_id, id);
                        self.first_id_of.insert(id, first_id);
                        self.conns
                            .insert(id, Conn::new(quic, id, now, self.settings));
                        self.process(handle, now);
                    }
                    // The packet did not decrypt (its keys come from an id another
                    // endpoint issued, or it is junk): nothing came of it.
                    Err(error) => match error.response {
                        Some(transmit) => self.respond(&transmit),
                        None => return false,
                    },
                }
            }
        }
        true
    }

    /// What becomes of new connections from now on (existing ones are served on).
    pub fn set_new_connections(&mut self, policy: NewConnections) {
        self.new_connections = policy;
    }

    /// The next datagram to send, if any: its bytes are appended to `out` (so a caller
    /// sending several at once needs no buffer of its own for each).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<Transmit> {
        if let Some(response) = self.responses.pop_front() {
            out.extend_from_slice(&response.contents);
            return Some(Transmit {
                destination: response.destination,
                conn: None,
                size: response.contents.len(),
            });
        }
        // Only connections touched since they last had nothing to send are asked, each in
        // turn: one datagram, then the next connection's.
        while let Some(id) = self.ready.pop_front() {
            let Some(conn) = self.conns.get_mut(&id) else {
                self.in_ready.remove(&id);
                continue;
            };
            self.buf.clear();
            let Some(transmit) = conn.quic.poll_transmit(now, 1, &mut self.buf) else {
                if conn.reset_cut() {
                    // Its RESET_STREAM frames go next.
                    self.ready.push_back(id);
                    self.process(ConnectionHandle(id as usize), now);
                    continue;
                }
                // Nothing to send may still have set a timer (pacing).
                timers_moved(conn, id, &mut self.timers_moved);
                self.in_ready.remove(&id);
                continue;
            };
            self.ready.push_back(id);
            out.extend_from_slice(&self.buf[..transmit.size]);
            // Sending may change timers and produce endpoint events.
            self.process(ConnectionHandle(id as usize), now);
            return Some(Transmit {
                destination: transmit.destination,
                conn: Some(id),
                size: transmit.size,
            });
        }
        None
    }

    /// The earliest moment [`Endpoint::handle_timeout`] must run, if any. Only the
    /// connections touched since the last call are asked for their next timer.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.index_deadlines();
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// The earliest timer of every connection, each asked: what [`Endpoint::poll_timeout`]
    /// must agree with.
    #[cfg(test)]
    pub(crate) fn scan_timeouts(&mut self) -> Option<Instant> {
        self.conns.values_mut().filter_map(Conn::poll_timeout).min()
    }

    /// Bring the deadline index up to date with the connections touched since last time.
    fn index_deadlines(&mut self) {
        for id in self.timers_moved.drain(..) {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            conn.timers_moved = false;
            let at = conn.poll_timeout();
            if at == conn.deadline {
                continue;
            }
            if let Some(old) = conn.deadline {
                self.deadlines.remove(&(old, id));
            }
            if let Some(at) = at {
                self.deadlines.insert((at, id));
            }
            conn.deadline = at;
        }
    }

    /// Run every connection timer due at `now` (loss detection, idle timeout, draining).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.index_deadlines();
        let due: Vec<u64> = self
            .deadlines
            .range(..=(now, u64::MAX))
            .map(|&(_, id)| id)
            .collect();
        for id in due {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.handle_timeout(now);
                self.process(ConnectionHandle(id as usize), now);
            }
        }
    }

    /// Events since the last call, oldest first (per connection).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Connections not yet drained.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// What `conn`'s TLS handshake negotiated (None until it got that far).
    pub fn tls_info(&self, conn: u64) -> Option<ConnectionInfo> {
        session::info(&self.conns.get(&conn)?.quic)
    }

    /// Request streams of `conn` that are not finished yet.
    pub fn open_streams(&self, conn: u64) -> usize {
        self.conns.get(&conn).map_or(0, Conn::open_requests)
    }

    pub fn release(&mut self, now: Instant, conn: u64, stream: u64, len: u64) {
        self.with(now, conn, |c| {
            c.release(StreamId::from(varint(stream)), len);
        });
    }

    pub fn send_response(
        &mut self,
        now: Instant,
        conn: u64,
        stream: u64,
        status: u16,
        headers: &[(Vec<u8>, Vec<u8>)],
        end: bool,
    ) -> Result<(), SendError> {
        let id = StreamId::from(varint(stream));
        self.with(now, conn, |c| c.send_response(id, status, headers, end))
            .unwrap_or(Err(SendError::Gone))
    }

    /// An interim `100 Continue` on a request stream, before its response head.
    pub fn send_continue(&mut self, now: Instant, conn: u64, stream: u64) -> Result<(), SendError> {
        let id = StreamId::from(varint(stream));
        self.with(now, conn, |c| c.send_continue(id))
            .unwrap_or(Err(SendError::Gone))
    }

    pub fn send_data(
        &mut self,
        now: Instant,
        conn: u64,
        stream: u64,
        data: Bytes,
        end: bool,
    ) -> Result<(), SendError> {
        let id = StreamId::from(varint(stream));
        self.with(now, conn, |c| c.send_data(id, data, end))
            .unwrap_or(Err(SendError::Gone))
    }

    pub fn send_trailers(
        &mut self,
        now: Instant,
        conn: u64,
        stream: u64,
        trailers: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), SendError> {
        let id = StreamId::from(varint(stream));
        self.with(now, conn, |c| c.send_trailers(id, trailers))
            .unwrap_or(Err(SendError::Gone))
    }

    /// Reset a request stream with an HTTP/3 error `code`.
    pub fn reset(&mut self, now: Instant, conn: u64, stream: u64, code: u64) {
        self.with(now, conn, |c| c.reset(StreamId::from(varint(stream)), code));
    }

    /// The application is done with a stream (an unread request body is refused).
    pub fn forget(&mut self, now: Instant, conn: u64, stream: u64) {
        self.with(now, conn, |c| c.forget(StreamId::from(varint(stream))));
    }

    /// GOAWAY on every connection: in-flight requests finish, then each connection closes.
    pub fn goaway(&mut self, now: Instant) {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.goaway_one(now, id);
        }
    }

    /// GOAWAY on one connection (a worker draining it as it drains its TCP connections).
    pub fn goaway_one(&mut self, now: Instant, conn: u64) {
        self.with(now, conn, Conn::goaway);
    }

    /// Close one connection at once with `code` (H3_NO_ERROR = 0x100 for an orderly one).
    pub fn close(&mut self, now: Instant, conn: u64, code: u64) {
        self.with(now, conn, |c| c.close(code, ""));
    }

    /// Close every connection at once with `code` (when a graceful stop runs out of time).
    pub fn close_all(&mut self, now: Instant, code: u64) {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(now, id, code);
        }
    }

    /// Run `f` on one connection, then let its effects out.
    fn with<T>(&mut self, now: Instant, conn: u64, f: impl FnOnce(&mut Conn) -> T) -> Option<T> {
        let c = self.conns.get_mut(&conn)?;
        c.set_now(now);
        let out = f(c);
        self.process(ConnectionHandle(conn as usize), now);
        Some(out)
    }

    /// Exchange events between the connection and the endpoint until both are quiet.
    fn process(&mut self, handle: ConnectionHandle, now: Instant) {
        let id = handle.0 as u64;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.set_now(now);
        loop {
            let mut moved = false;
            while let Some(event) = conn.quic.poll_endpoint_events() {
                moved = true;
                if let Some(event) = self.quic.handle_event(handle, event) {
                    conn.quic.handle_event(event);
                }
            }
            while let Some(event) = conn.quic.poll() {
                moved = true;
                conn.on_event(event);
            }
            if !moved {
                break;
            }
        }
        let remote = conn.quic.remote_address();
        if remote != conn.remote {
            // The client moved (migration, NAT rebinding): requests from now on say so.
            conn.remote = remote;
            self.events.push(Event::Migrated { conn: id, remote });
        }
        self.events.append(&mut conn.events);
        if conn.quic.is_drained() {
            if let Some(at) = conn.deadline {
                self.deadlines.remove(&(at, id));
            }
            self.conns.remove(&id);
            if let Some(first_id) = self.first_id_of.remove(&id) {
                self.first_ids.remove(&first_id);
            }
            return;
        }
        timers_moved(conn, id, &mut self.timers_moved);
        if self.in_ready.insert(id) {
            self.ready.push_back(id);
        }
    }

    fn respond(&mut self, transmit: &quinn_proto::Transmit) {
        if self.responses.len() < MAX_QUEUED_RESPONSES {
            self.responses.push_back(Response {
                destination: transmit.destination,
                contents: self.buf[..transmit.size].to_vec(),
            });
        }
    }
}

/// `conn` (whose id is `id`) was touched: its timers may have moved, so the deadline
/// index asks it again (once, however often it was touched).
fn timers_moved(conn: &mut Conn, id: u64, moved: &mut Vec<u64>) {
    if !conn.timers_moved {
        conn.timers_moved = true;
        moved.push(id);
    }
}

fn varint(value: u64) -> quinn_proto::VarInt {
    quinn_proto::VarInt::from_u64(value).unwrap_or(quinn_proto::VarInt::MAX)
}
