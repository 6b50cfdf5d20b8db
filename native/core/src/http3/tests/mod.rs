//! The engine against a quinn-proto client, in memory: datagrams passed by hand between
//! the two endpoints, on a simulated clock that jumps to the next timer when nothing moves.

mod client;
mod exchange;
mod length;
mod lifecycle;
mod refusals;
mod roll;
mod timers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use quinn_proto::crypto::rustls::QuicClientConfig;
use quinn_proto::{ClientConfig, ConnectionHandle, DatagramEvent, EndpointConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{Endpoint, Event, Settings};
use crate::tls::config::ring_provider;
use client::Client;

const SERVER: &str = "127.0.0.1:4433";
const CLIENT: &str = "127.0.0.1:50000";

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("address")
}

struct Cert {
    der: CertificateDer<'static>,
    key: Vec<u8>,
}

fn cert() -> Cert {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    Cert {
        der: cert.der().clone(),
        key: key.serialize_der(),
    }
}

fn server_tls(cert: &Cert) -> rustls::ServerConfig {
    rustls::ServerConfig::builder_with_provider(Arc::new(ring_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der.clone()],
            PrivateKeyDer::Pkcs8(cert.key.clone().into()),
        )
        .expect("server config")
}

/// A client offering `alpn`, with a receive window of `window` bytes per stream and half
/// that for the connection (so a large response meets the connection's limit first).
fn client_config(cert: &Cert, alpn: &[u8], window: u32) -> ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("root");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(ring_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let mut config = ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(tls).expect("quic client"),
    ));
    let mut transport = quinn_proto::TransportConfig::default();
    transport.stream_receive_window(quinn_proto::VarInt::from_u32(window));
    transport.receive_window(quinn_proto::VarInt::from_u32(window / 2));
    config.transport_config(Arc::new(transport));
    config
}

/// A server endpoint and one client connection to it.
struct Pair {
    server: Endpoint,
    client_endpoint: quinn_proto::Endpoint,
    handle: ConnectionHandle,
    client: Client,
    now: Instant,
    /// Every server event so far, in order.
    seen: Vec<Event>,
    /// The first byte of the server's first datagram (its packet type).
    first_reply: Option<u8>,
    buf: Vec<u8>,
}

impl Pair {
    fn new(settings: &Settings) -> Self {
        Self::with_alpn(settings, super::ALPN)
    }

    fn with_alpn(settings: &Settings, alpn: &[u8]) -> Self {
        Self::with_client(settings, alpn, 1 << 20)
    }

    fn with_client(settings: &Settings, alpn: &[u8], window: u32) -> Self {
        let cert = cert();
        let server = Endpoint::new(server_tls(&cert), settings).expect("endpoint");
        let mut client_endpoint =
            quinn_proto::Endpoint::new(Arc::new(EndpointConfig::default()), None, true, None);
        let now = Instant::now();
        let (handle, conn) = client_endpoint
            .connect(
                now,
                client_config(&cert, alpn, window),
                addr(SERVER),
                "localhost",
            )
            .expect("connect");
        Self {
            server,
            client_endpoint,
            handle,
            client: Client::new(conn),
            now,
            seen: Vec::new(),
            first_reply: None,
            buf: Vec::new(),
        }
    }

    /// Move datagrams both ways, giving each server event to `app`, until `done` holds (or
    /// nothing is left to do at all). Bounded: a test that never converges fails.
    fn run(
        &mut self,
        app: &mut dyn FnMut(&mut Endpoint, Instant, &Event),
        done: &dyn Fn(&Pair) -> bool,
    ) {
        for _ in 0..200_000 {
            if done(self) {
                return;
            }
            if !self.step(app) {
                // The deadline index names what asking every connection would.
                let scanned = self.server.scan_timeouts();
                assert_eq!(self.server.poll_timeout(), scanned);
                let next = [self.client.conn.poll_timeout(), self.server.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                let Some(next) = next else { return };
                self.now = self.now.max(next);
                self.client.conn.handle_timeout(self.now);
                self.server.handle_timeout(self.now);
            }
        }
        panic!("the exchange did not converge");
    }

    /// One round of exchanges; whether anything moved.
    fn step(&mut self, app: &mut dyn FnMut(&mut Endpoint, Instant, &Event)) -> bool {
        let mut moved = false;
        let now = self.now;
        loop {
            self.buf.clear();
            let Some(t) = self.client.conn.poll_transmit(now, 1, &mut self.buf) else {
                break;
            };
            moved = true;
            self.server
                .datagram_received(now, addr(CLIENT), &self.buf[..t.size]);
        }
        for event in self.server.take_events() {
            moved = true;
            app(&mut self.server, now, &event);
            self.seen.push(event);
        }
        moved |= self.exchange_server_to_client();
        moved |= self.client.poll();
        moved
    }

    /// Hand the server's datagrams to the client; whether there were any.
    fn exchange_server_to_client(&mut self) -> bool {
        let mut moved = false;
        let now = self.now;
        loop {
            let mut contents = Vec::new();
            let Some(t) = self.server.poll_transmit(now, &mut contents) else {
                break;
            };
            moved = true;
            assert_eq!(t.destination, addr(CLIENT));
            assert_eq!(t.size, contents.len());
            self.first_reply = self.first_reply.or(contents.first().copied());
            self.buf.clear();
            let data = BytesMut::from(&contents[..]);
            if let Some(DatagramEvent::ConnectionEvent(_, event)) =
                self.client_endpoint
                    .handle(now, addr(SERVER), None, None, data, &mut self.buf)
            {
                self.client.conn.handle_event(event);
            }
        }
        while let Some(event) = self.client.conn.poll_endpoint_events() {
            if let Some(event) = self.client_endpoint.handle_event(self.handle, event) {
                self.client.conn.handle_event(event);
            }
        }
        moved
    }

    /// Exchange what is pending without letting the clock move (no timer fires).
    fn exchange(&mut self, app: &mut dyn FnMut(&mut Endpoint, Instant, &Event)) {
        for _ in 0..10_000 {
            if !self.step(app) {
                return;
            }
        }
        panic!("the exchange did not settle");
    }

    /// Run with no application: only the handshake and protocol traffic.
    fn settle(&mut self, done: &dyn Fn(&Pair) -> bool) {
        self.run(&mut |_, _, _| {}, done);
    }
}
