//! The endpoint's next deadline with several connections: after every exchange it is the
//! earliest timer of the connections there are, as they come, are served and go.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quinn_proto::{ConnectionHandle, DatagramEvent, EndpointConfig, VarInt};

use super::client::{request_fields, Client};
use super::exchange::hello;
use super::{addr, cert, client_config, server_tls, Cert, Settings, SERVER};
use crate::http3::{Endpoint, Event};

/// One client connection, from an address of its own.
struct Peer {
    endpoint: quinn_proto::Endpoint,
    handle: ConnectionHandle,
    client: Client,
    addr: SocketAddr,
}

/// A server endpoint and the clients that joined it.
struct Crowd {
    cert: Cert,
    server: Endpoint,
    peers: Vec<Peer>,
    now: Instant,
    /// The server's connection id of each client address.
    conn_of: HashMap<SocketAddr, u64>,
    /// Server connections in the order they closed.
    closed: Vec<u64>,
    buf: Vec<u8>,
}

impl Crowd {
    fn new(settings: &Settings) -> Self {
        let cert = cert();
        let server = Endpoint::new(server_tls(&cert), settings).expect("endpoint");
        Self {
            cert,
            server,
            peers: Vec::new(),
            now: Instant::now(),
            conn_of: HashMap::new(),
            closed: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// A new client connects; returns its index once the handshake is done.
    fn join(&mut self) -> usize {
        let mut endpoint =
            quinn_proto::Endpoint::new(Arc::new(EndpointConfig::default()), None, true, None);
        let config = client_config(&self.cert, crate::http3::ALPN, 1 << 20);
        let (handle, conn) = endpoint
            .connect(self.now, config, addr(SERVER), "localhost")
            .expect("connect");
        let port = 50_001 + u16::try_from(self.peers.len()).expect("few peers");
        self.peers.push(Peer {
            endpoint,
            handle,
            client: Client::new(conn),
            addr: addr(&format!("127.0.0.1:{port}")),
        });
        let i = self.peers.len() - 1;
        self.run(&|c| c.peers[i].client.connected, None);
        i
    }

    /// The server's connection id of client `i`.
    fn conn(&self, i: usize) -> u64 {
        self.conn_of[&self.peers[i].addr]
    }

    /// Let `by` pass, exchanging whatever comes due meanwhile.
    fn wait(&mut self, by: Duration) {
        let until = self.now + by;
        self.run(&|c| c.now >= until, Some(until));
    }

    /// Exchange datagrams and run timers until `done` holds; the clock jumps to the next
    /// timer when nothing moves, never past `until`. After every exchange the server's next
    /// deadline is what asking each of its connections says.
    fn run(&mut self, done: &dyn Fn(&Crowd) -> bool, until: Option<Instant>) {
        for _ in 0..100_000 {
            let moved = self.step();
            let scanned = self.server.scan_timeouts();
            assert_eq!(self.server.poll_timeout(), scanned);
            if done(self) {
                return;
            }
            if moved {
                continue;
            }
            let next = self
                .peers
                .iter_mut()
                .filter_map(|p| p.client.conn.poll_timeout())
                .chain(self.server.poll_timeout())
                .min();
            let Some(next) = next.into_iter().chain(until).min() else {
                return;
            };
            self.now = self.now.max(next);
            for peer in &mut self.peers {
                peer.client.conn.handle_timeout(self.now);
            }
            self.server.handle_timeout(self.now);
        }
        panic!("the exchange did not converge");
    }

    /// One round of exchanges; whether anything moved.
    fn step(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        for peer in &mut self.peers {
            loop {
                self.buf.clear();
                let Some(t) = peer.client.conn.poll_transmit(now, 1, &mut self.buf) else {
                    break;
                };
                moved = true;
                self.server
                    .datagram_received(now, peer.addr, &self.buf[..t.size]);
            }
        }
        for event in self.server.take_events() {
            moved = true;
            match &event {
                Event::Connected { conn, remote } => {
                    self.conn_of.insert(*remote, *conn);
                }
                Event::Closed { conn, .. } => self.closed.push(*conn),
                _ => {}
            }
            hello(&mut self.server, now, &event);
        }
        loop {
            let mut contents = Vec::new();
            let Some(t) = self.server.poll_transmit(now, &mut contents) else {
                break;
            };
            moved = true;
            let peer = self
                .peers
                .iter_mut()
                .find(|p| p.addr == t.destination)
                .expect("a datagram to a known client");
            assert_eq!(t.conn, Some(self.conn_of[&peer.addr]));
            self.buf.clear();
            let data = BytesMut::from(&contents[..]);
            if let Some(DatagramEvent::ConnectionEvent(_, event)) =
                peer.endpoint
                    .handle(now, addr(SERVER), None, None, data, &mut self.buf)
            {
                peer.client.conn.handle_event(event);
            }
        }
        for peer in &mut self.peers {
            while let Some(event) = peer.client.conn.poll_endpoint_events() {
                if let Some(event) = peer.endpoint.handle_event(peer.handle, event) {
                    peer.client.conn.handle_event(event);
                }
            }
            moved |= peer.client.poll();
        }
        moved
    }
}

#[test]
fn the_next_deadline_follows_connections_as_they_come_are_served_and_go() {
    let settings = Settings {
        idle_timeout: Duration::from_secs(5),
        ..Settings::default()
    };
    let mut crowd = Crowd::new(&settings);
    assert_eq!(crowd.server.poll_timeout(), None);
    // Added: three connections, a second apart.
    for _ in 0..3 {
        crowd.join();
        crowd.wait(Duration::from_secs(1));
    }
    assert_eq!(crowd.server.connections(), 3);
    // Updated: a request on the first moves its timers past the others'.
    let id = crowd.peers[0]
        .client
        .request(&request_fields("GET", "/"), b"", true);
    crowd.run(&|c| c.peers[0].client.responses[&id].done, None);
    assert_eq!(crowd.peers[0].client.responses[&id].body, b"hello /");
    // Removed: the second closes and leaves; then the others go quiet and time out, the
    // one served last going last.
    let now = crowd.now;
    crowd.peers[1]
        .client
        .conn
        .close(now, VarInt::from_u32(0x100), Bytes::new());
    crowd.run(&|c| c.server.connections() == 2, None);
    assert_eq!(crowd.closed, [crowd.conn(1)]);
    crowd.run(&|c| c.server.connections() == 0, None);
    assert_eq!(crowd.closed, [crowd.conn(1), crowd.conn(2), crowd.conn(0)]);
    assert_eq!(crowd.server.poll_timeout(), None);
}
