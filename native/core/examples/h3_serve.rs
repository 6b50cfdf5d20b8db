//! The HTTP/3 engine on a real UDP socket, for checks against other implementations'
//! clients: `cargo run -p ruvicorn-core --example h3_serve -- 127.0.0.1:4433 30`
//! serves for 30 seconds with a fresh self-signed certificate for `localhost`. GET answers
//! `hello <path>`; any other method echoes the request body as it arrives. It also shows
//! the loop a binding runs: datagrams in, events to the application, datagrams out, and
//! one timer for the earliest deadline.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ruvicorn_core::http3::{Bytes, Endpoint, Event, Settings};
use ruvicorn_core::tls::config::ring_provider;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:4433".to_owned());
    let seconds: u64 = args.next().map_or(Ok(30), |s| s.parse())?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?.self_signed(&key)?;
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(ring_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )?;
    let mut endpoint = Endpoint::new(tls, &Settings::default())?;
    let socket = UdpSocket::bind(&bind)?;
    let stop = Instant::now() + Duration::from_secs(seconds);
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::new();
    let mut unreleased: HashMap<(u64, u64), u64> = HashMap::new();
    while Instant::now() < stop {
        let now = Instant::now();
        let wait = endpoint
            .poll_timeout()
            .map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        socket.set_read_timeout(Some(wait))?;
        if let Ok((len, peer)) = socket.recv_from(&mut buf) {
            endpoint.datagram_received(Instant::now(), peer, &buf[..len]);
        }
        let now = Instant::now();
        endpoint.handle_timeout(now);
        for event in endpoint.take_events() {
            serve(&mut endpoint, now, event, &mut unreleased);
        }
        loop {
            out.clear();
            let Some(transmit) = endpoint.poll_transmit(now, &mut out) else {
                break;
            };
            socket.send_to(&out, transmit.destination)?;
        }
    }
    Ok(())
}

fn serve(
    endpoint: &mut Endpoint,
    now: Instant,
    event: Event,
    unreleased: &mut HashMap<(u64, u64), u64>,
) {
    // A client may go away at any point: a failed send is simply dropped here.
    match event {
        Event::Request { conn, stream, head } if head.method == "GET" => {
            let body = Bytes::from(format!("hello {}", head.target));
            let _ = endpoint.send_response(now, conn, stream, 200, &[], false);
            let _ = endpoint.send_data(now, conn, stream, body, true);
        }
        Event::Request { conn, stream, .. } => {
            let _ = endpoint.send_response(now, conn, stream, 200, &[], false);
        }
        Event::Data { conn, stream, data } => {
            *unreleased.entry((conn, stream)).or_default() += data.len() as u64;
            let _ = endpoint.send_data(now, conn, stream, data, false);
        }
        Event::Sent { conn, stream } => {
            let len = unreleased.remove(&(conn, stream)).unwrap_or(0);
            endpoint.release(now, conn, stream, len);
        }
        Event::End { conn, stream } => {
            let _ = endpoint.send_data(now, conn, stream, Bytes::new(), true);
        }
        _ => {}
    }
}
