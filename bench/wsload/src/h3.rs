//! `wsload --h3`: HTTP/3 load, `-c` QUIC connections with `-m` requests in flight on each.
//!
//! One thread and one mio poll, whose timeout is the next QUIC timer; each connection has a
//! UDP socket and a quinn-proto client endpoint of its own, so that one socket's receive
//! buffer (the system default, about 200 KiB) holds what one connection has in flight
//! rather than what all of them have: a shared one overflows on loopback and its losses
//! would be measured as the server's latency. Each connection opens its
//! control stream (an empty SETTINGS: no QPACK dynamic table) and keeps `-m` request
//! streams busy: a request is sent whole with FIN (a GET, or a POST of `--body` bytes),
//! and as soon as its response stream ends the next one starts, until the duration is
//! over or `-n` requests were sent. A response counts once its stream ended, with its
//! status and its DATA bytes; its latency runs from the stream's opening to its end.
//!
//! The client checks no certificate and offers ALPN h3 alone: it measures a server on
//! loopback, and the runner's readiness probe checks the served certificate.

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use quinn_proto::crypto::rustls::QuicClientConfig;
use quinn_proto::{
    ClientConfig, Connection, ConnectionHandle, DatagramEvent, Dir, EndpointConfig, Event,
    ReadError, StreamEvent, StreamId, VarInt,
};

use crate::client::{Config, Stats};
use crate::h3wire;

/// H3_NO_ERROR, to close a connection; H3_REQUEST_CANCELLED, to give up on a request.
const NO_ERROR: u32 = 0x100;
const REQUEST_CANCELLED: u32 = 0x10c;
/// A response stream longer than this is an error (the workloads' are a few KiB).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
const MAX_SAMPLES: usize = 64 * 1024 * 1024;

struct Request {
    started: Instant,
    out: Vec<u8>,
    sent: usize,
    inbuf: Vec<u8>,
}

struct Conn {
    handle: ConnectionHandle,
    conn: Connection,
    opened: Instant,
    connected: bool,
    /// Lost, given up on or closed: no new requests; the slot is freed once it drained.
    dead: bool,
    requests: HashMap<StreamId, Request>,
}

/// A connection slot's socket and endpoint, kept while its connections come and go.
struct Link {
    socket: UdpSocket,
    endpoint: quinn_proto::Endpoint,
}

struct Load<'a> {
    cfg: &'a Config,
    client: ClientConfig,
    server: SocketAddr,
    request: Vec<u8>,
    links: Vec<Link>,
    conns: Vec<Option<Conn>>,
    stats: Stats,
    sent: u64,
    deadline: Instant,
    last: Option<Instant>,
    buf: Vec<u8>,
}

/// The QUIC client configuration: TLS 1.3 with ALPN h3, no certificate check.
fn client_config() -> io::Result<ClientConfig> {
    let tls = crate::tlsclose::unverified_client(b"h3").map_err(io::Error::other)?;
    let quic = QuicClientConfig::try_from(tls).map_err(io::Error::other)?;
    Ok(ClientConfig::new(Arc::new(quic)))
}

impl Load<'_> {
    /// Whether new requests may still start.
    fn sending(&self, now: Instant) -> bool {
        now < self.deadline && (self.cfg.requests == 0 || self.sent < self.cfg.requests)
    }

    fn open(&mut self, i: usize, now: Instant) {
        match self.links[i]
            .endpoint
            .connect(now, self.client.clone(), self.server, &self.cfg.host)
        {
            Ok((handle, conn)) => {
                self.conns[i] = Some(Conn {
                    handle,
                    conn,
                    opened: now,
                    connected: false,
                    dead: false,
                    requests: HashMap::new(),
                });
            }
            Err(e) => {
                self.stats.connect += 1;
                self.stats.fail(format!("connect: {e}"));
            }
        }
    }

    /// A datagram that came in on slot `i`'s socket.
    fn datagram(&mut self, i: usize, now: Instant, from: SocketAddr, data: &[u8]) {
        let mut reply = std::mem::take(&mut self.buf);
        reply.clear();
        let link = &mut self.links[i];
        match link
            .endpoint
            .handle(now, from, None, None, BytesMut::from(data), &mut reply)
        {
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some(c) = self.conns[i].as_mut().filter(|c| c.handle == handle) {
                    c.conn.handle_event(event);
                }
            }
            Some(DatagramEvent::Response(t)) => {
                let _ = link.socket.send_to(&reply[..t.size], t.destination);
            }
            Some(DatagramEvent::NewConnection(incoming)) => link.endpoint.ignore(incoming),
            None => {}
        }
        self.buf = reply;
    }

    /// Everything connection `i` has to do now: timers, events, requests, datagrams out.
    fn drive(&mut self, i: usize, now: Instant) {
        let sending = self.sending(now);
        let Some(mut c) = self.conns[i].take() else {
            return;
        };
        if c.conn.poll_timeout().is_some_and(|t| t <= now) {
            c.conn.handle_timeout(now);
        }
        while let Some(event) = c.conn.poll() {
            match event {
                Event::Connected => {
                    c.connected = true;
                    if let Some(id) = c.conn.streams().open(Dir::Uni) {
                        // three bytes: always fit the initial stream window
                        let _ = c.conn.send_stream(id).write(&h3wire::control_stream());
                    }
                }
                Event::ConnectionLost { reason } => self.lost(&mut c, &reason.to_string()),
                Event::Stream(StreamEvent::Opened { dir }) => {
                    while let Some(id) = c.conn.streams().accept(dir) {
                        discard(&mut c.conn, id); // the server's control and QPACK streams
                    }
                }
                Event::Stream(StreamEvent::Readable { id }) => self.read(&mut c, id, now),
                Event::Stream(StreamEvent::Writable { id }) => {
                    if let Some(r) = c.requests.get_mut(&id) {
                        write(&mut c.conn, id, r);
                    }
                }
                _ => {}
            }
        }
        while c.connected && !c.dead && sending && c.requests.len() < self.cfg.streams {
            if self.cfg.requests != 0 && self.sent >= self.cfg.requests {
                break;
            }
            let Some(id) = c.conn.streams().open(Dir::Bi) else {
                break; // the server's stream limit: again when a response ends
            };
            self.sent += 1;
            let mut r = Request {
                started: now,
                out: self.request.clone(),
                sent: 0,
                inbuf: Vec::new(),
            };
            write(&mut c.conn, id, &mut r);
            c.requests.insert(id, r);
        }
        while let Some(event) = c.conn.poll_endpoint_events() {
            if let Some(event) = self.links[i].endpoint.handle_event(c.handle, event) {
                c.conn.handle_event(event);
            }
        }
        loop {
            self.buf.clear();
            let Some(t) = c.conn.poll_transmit(now, 1, &mut self.buf) else {
                break;
            };
            // A datagram the socket buffer cannot take is lost, as on a network: QUIC resends.
            let _ = self.links[i]
                .socket
                .send_to(&self.buf[..t.size], t.destination);
        }
        if !c.conn.is_drained() {
            self.conns[i] = Some(c);
        }
    }

    fn read(&mut self, c: &mut Conn, id: StreamId, now: Instant) {
        let Some(r) = c.requests.get_mut(&id) else {
            discard(&mut c.conn, id);
            return;
        };
        let mut recv = c.conn.recv_stream(id);
        let Ok(mut chunks) = recv.read(true) else {
            return;
        };
        let outcome = loop {
            match chunks.next(usize::MAX) {
                Ok(Some(chunk)) if r.inbuf.len() + chunk.bytes.len() > MAX_RESPONSE => {
                    break Some(Err("a response stream over 16 MiB".to_string()));
                }
                Ok(Some(chunk)) => r.inbuf.extend_from_slice(&chunk.bytes),
                Ok(None) => break Some(h3wire::response(&r.inbuf)),
                Err(ReadError::Blocked) => break None,
                Err(ReadError::Reset(code)) => {
                    break Some(Err(format!("the server reset a request stream: {code}")));
                }
            }
        };
        let _ = chunks.finalize();
        let Some(outcome) = outcome else {
            return;
        };
        let Some(r) = c.requests.remove(&id) else {
            return;
        };
        match outcome {
            Ok(response) => {
                self.stats.messages += 1;
                self.stats.bytes += r.inbuf.len() as u64;
                self.stats.body_bytes += response.body;
                if !(200..400).contains(&response.status) {
                    self.stats.status += 1;
                }
                if self.stats.latencies_us.len() < MAX_SAMPLES {
                    let us = now.saturating_duration_since(r.started).as_micros();
                    self.stats
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                }
                self.last = Some(now);
            }
            Err(why) => {
                self.stats.read += 1;
                self.stats.fail(why);
                let _ = c
                    .conn
                    .recv_stream(id)
                    .stop(VarInt::from_u32(REQUEST_CANCELLED));
            }
        }
    }

    /// The connection ended without our asking: its requests in flight failed.
    fn lost(&mut self, c: &mut Conn, why: &str) {
        if c.dead {
            return;
        }
        c.dead = true;
        if !c.connected {
            self.stats.connect += 1;
        } else {
            self.stats.read += (c.requests.len() as u64).max(1);
        }
        c.requests.clear();
        self.stats.fail(format!("connection lost: {why}"));
    }

    /// Every 100 ms: requests and handshakes that took too long, and freed slots refilled.
    fn check(&mut self, now: Instant) {
        let sending = self.sending(now);
        let timeout = self.cfg.timeout;
        for i in 0..self.conns.len() {
            let Some(mut c) = self.conns[i].take() else {
                if sending {
                    self.open(i, now);
                }
                continue;
            };
            if !c.connected && !c.dead && now.saturating_duration_since(c.opened) > timeout {
                self.stats.connect += 1;
                self.stats.fail("connect: no handshake in time".into());
                c.dead = true;
                c.conn.close(now, VarInt::from_u32(NO_ERROR), Bytes::new());
            }
            let late: Vec<StreamId> = c
                .requests
                .iter()
                .filter(|(_, r)| now.saturating_duration_since(r.started) > timeout)
                .map(|(id, _)| *id)
                .collect();
            for id in late {
                c.requests.remove(&id);
                self.stats.timeout += 1;
                self.stats.fail("no response in time".into());
                let code = VarInt::from_u32(REQUEST_CANCELLED);
                let _ = c.conn.send_stream(id).reset(code);
                let _ = c.conn.recv_stream(id).stop(code);
            }
            self.conns[i] = Some(c);
        }
    }

    /// The next moment a connection's timer fires.
    fn next_timer(&mut self) -> Option<Instant> {
        self.conns
            .iter_mut()
            .flatten()
            .filter_map(|c| c.conn.poll_timeout())
            .min()
    }

    fn in_flight(&self) -> bool {
        self.conns.iter().flatten().any(|c| !c.requests.is_empty())
    }
}

/// Writes what the socket's flow control takes of a request; FIN after its last byte.
fn write(conn: &mut Connection, id: StreamId, r: &mut Request) {
    let mut send = conn.send_stream(id);
    while r.sent < r.out.len() {
        match send.write(&r.out[r.sent..]) {
            Ok(n) => r.sent += n,
            Err(_) => return, // blocked: again on Writable (or the stream is gone)
        }
    }
    let _ = send.finish();
}

/// Reads and drops what a stream holds (the server's unidirectional streams).
fn discard(conn: &mut Connection, id: StreamId) {
    let mut recv = conn.recv_stream(id);
    let Ok(mut chunks) = recv.read(true) else {
        return;
    };
    while let Ok(Some(_)) = chunks.next(usize::MAX) {}
    let _ = chunks.finalize();
}

pub fn run(cfg: &Config) -> io::Result<Stats> {
    let server = (cfg.host.as_str(), cfg.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(ErrorKind::NotFound, "host has no address"))?;
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let mut poll = Poll::new()?;
    let mut links = Vec::with_capacity(cfg.connections);
    for i in 0..cfg.connections {
        let mut socket = UdpSocket::bind(local)?;
        poll.registry()
            .register(&mut socket, Token(i), Interest::READABLE)?;
        let config = Arc::new(EndpointConfig::default());
        let endpoint = quinn_proto::Endpoint::new(config, None, true, None);
        links.push(Link { socket, endpoint });
    }
    let start = Instant::now();
    let body = vec![b'x'; cfg.body];
    let authority = format!("{}:{}", cfg.host, cfg.port);
    let mut load = Load {
        cfg,
        client: client_config()?,
        server,
        request: h3wire::request(&authority, &cfg.path, &body),
        links,
        conns: (0..cfg.connections).map(|_| None).collect(),
        stats: Stats::default(),
        sent: 0,
        deadline: start + cfg.duration,
        last: None,
        buf: Vec::with_capacity(1500),
    };
    load.stats.latencies_us.reserve(1 << 16);
    for i in 0..cfg.connections {
        load.open(i, start);
        load.drive(i, start);
    }
    // After the load: the requests in flight get at most --timeout to finish.
    let hard_stop = load.deadline + cfg.timeout + Duration::from_millis(200);
    let mut events = Events::with_capacity(cfg.connections.min(1024));
    let mut datagram = vec![0u8; 65536];
    let mut next_check = start + Duration::from_millis(100);
    loop {
        let now = Instant::now();
        if (!load.sending(now) && !load.in_flight()) || now >= hard_stop {
            break;
        }
        let wait = load
            .next_timer()
            .map_or(Duration::from_millis(50), |t| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(50));
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            if e.kind() != ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let now = Instant::now();
        for event in &events {
            let i = event.token().0;
            loop {
                match load.links[i].socket.recv_from(&mut datagram) {
                    Ok((n, from)) => load.datagram(i, now, from, &datagram[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // an ICMP error for an earlier datagram: the handshake timeout counts it
                    Err(_) => break,
                }
            }
        }
        for i in 0..load.conns.len() {
            load.drive(i, now);
        }
        if now >= next_check {
            next_check = now + Duration::from_millis(100);
            load.check(now);
        }
    }
    let now = Instant::now();
    for i in 0..load.conns.len() {
        if let Some(c) = load.conns[i].as_mut() {
            c.dead = true;
            c.conn.close(now, VarInt::from_u32(NO_ERROR), Bytes::new());
        }
        load.drive(i, now);
    }
    load.stats.timeout += load
        .conns
        .iter()
        .flatten()
        .map(|c| c.requests.len() as u64)
        .sum::<u64>();
    let mut stats = load.stats;
    stats.duration = match load.last {
        Some(last) if stats.messages > 0 => last - start,
        _ => cfg.duration,
    };
    Ok(stats)
}
