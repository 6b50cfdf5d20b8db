//! `wsload --tls-close`: HTTPS with a full TLS handshake per request.
//!
//! N connections on one thread and one epoll; each connects, does a TLS handshake, sends
//! one `GET` with `Connection: close`, reads the whole response, sends `close_notify`,
//! closes, and at once opens the next connection, until the duration is over.
//!
//! Why not wrk or h2load: both keep the TLS session of a closed connection and resume it on
//! the next one, so a `Connection: close` run measures resumptions, not handshakes. Here
//! resumption is disabled (no session is stored, none offered), so every connection costs
//! the server a full handshake: key exchange and a signature. The client checks no
//! certificate (the runner's readiness probe does, with the bench's own CA), which keeps its
//! own cost per handshake low: an X25519 key exchange, no signature verification.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::ring::kx_group;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use crate::client::{Config, Stats};

/// Accepts any certificate: the load generator measures the server, not the client's checks.
#[derive(Debug)]
struct AnyCertificate(Vec<SignatureScheme>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_tls13_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

/// The client configuration: TLS 1.2 and 1.3, ALPN http/1.1, no session resumption.
///
/// The key share is X25519 alone (P-256 offered as a fallback), no post-quantum hybrid and
/// not P-384 (first in ring's list, and several times dearer), so every server does the
/// key exchange a browser's classic handshake asks of it, whatever its TLS library prefers.
pub fn tls_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut cfg = unverified_client(b"http/1.1")?;
    cfg.resumption = Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// A client offering `alpn` and the key shares above, checking no certificate (a load
/// generator on loopback; the runner's readiness probe checks the certificate).
pub fn unverified_client(alpn: &[u8]) -> Result<ClientConfig, rustls::Error> {
    #[allow(deprecated)] // deprecated for lacking post-quantum groups: the point here
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1];
    let provider = Arc::new(provider);
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(schemes)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Ok(cfg)
}

struct Conn {
    stream: TcpStream,
    tls: ClientConnection,
    started: Instant,
    /// Some bytes came back from the server: a failure after that is not a connect error.
    answered: bool,
    inbuf: Vec<u8>,
}

enum Outcome {
    Pending,
    /// A whole response: its status and its size (head and body).
    Response(u16, usize),
}

/// How long a response is, once its head is in: Some(total) or None (not yet known).
fn response_len(buf: &[u8]) -> Result<Option<(u16, usize)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > 16 * 1024 {
            Err("response head over 16 KiB".into())
        } else {
            Ok(None)
        };
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line in {:?}", &head[..head.len().min(60)]))?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>())
        .transpose()
        .map_err(|_| "bad content-length".to_string())?
        .ok_or("no content-length in the response")?;
    let total = end + 4 + length;
    Ok((buf.len() >= total).then_some((status, total)))
}

/// Moves TLS records both ways until nothing more can be done now, reading the plaintext
/// into `c.inbuf`; a whole response ends it.
fn pump(c: &mut Conn, buf: &mut [u8]) -> Result<Outcome, String> {
    loop {
        while c.tls.wants_write() {
            match c.tls.write_tls(&mut c.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        let eof = match c.tls.read_tls(&mut c.stream) {
            Ok(0) => true,
            Ok(_) => {
                c.answered = true;
                c.tls
                    .process_new_packets()
                    .map_err(|e| format!("TLS: {e}"))?;
                false
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Outcome::Pending),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read: {e}")),
        };
        loop {
            match c.tls.reader().read(buf) {
                Ok(0) => break,
                Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        if let Some((status, len)) = response_len(&c.inbuf)? {
            return Ok(Outcome::Response(status, len));
        }
        if eof {
            return Err("closed before a whole response".into());
        }
    }
}

struct Load {
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    name: ServerName<'static>,
    request: Vec<u8>,
    poll: Poll,
    conns: Vec<Option<Conn>>,
    stats: Stats,
}

impl Load {
    /// Opens the connection of slot `i`; a failure is counted and the slot stays empty.
    fn open(&mut self, i: usize, now: Instant) {
        let opened = TcpStream::connect(self.addr).and_then(|mut stream| {
            stream.set_nodelay(true)?;
            self.poll.registry().register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        });
        let tls = ClientConnection::new(Arc::clone(&self.tls), self.name.clone());
        match (opened, tls) {
            (Ok(stream), Ok(mut tls)) => {
                // Buffered by rustls until the handshake is done, then sent with its end.
                let _ = tls.writer().write_all(&self.request);
                self.conns[i] = Some(Conn {
                    stream,
                    tls,
                    started: now,
                    answered: false,
                    inbuf: Vec::with_capacity(256),
                });
            }
            (Err(e), _) => self.fail_connect(&e.to_string()),
            (_, Err(e)) => self.fail_connect(&e.to_string()),
        }
    }

    fn fail_connect(&mut self, why: &str) {
        self.stats.connect += 1;
        self.stats
            .first_error
            .get_or_insert_with(|| format!("connect: {why}"));
    }

    /// Ends slot `i`'s connection: a whole response counted, or a failure of `kind`.
    fn close(&mut self, i: usize, result: Result<(u16, usize), (&str, String)>, now: Instant) {
        let Some(mut c) = self.conns[i].take() else {
            return;
        };
        match result {
            Ok((status, len)) => {
                self.stats.messages += 1;
                self.stats.bytes += len as u64;
                if !(200..400).contains(&status) {
                    self.stats.status += 1;
                }
                let us = now.saturating_duration_since(c.started).as_micros();
                self.stats
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
                c.tls.send_close_notify();
                let _ = c.tls.write_tls(&mut c.stream);
            }
            Err((kind, why)) => {
                match kind {
                    "timeout" => self.stats.timeout += 1,
                    _ if !c.answered => self.stats.connect += 1,
                    _ => self.stats.read += 1,
                }
                self.stats.first_error.get_or_insert(why);
            }
        }
        let _ = self.poll.registry().deregister(&mut c.stream);
    }
}

pub fn run(cfg: &Config) -> io::Result<Stats> {
    let addr = (cfg.host.as_str(), cfg.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(ErrorKind::NotFound, "host has no address"))?;
    let name = ServerName::try_from(cfg.host.clone()).map_err(io::Error::other)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
        cfg.path, cfg.host, cfg.port
    );
    let mut load = Load {
        addr,
        tls: tls_config().map_err(io::Error::other)?,
        name,
        request: request.into_bytes(),
        poll: Poll::new()?,
        conns: (0..cfg.connections).map(|_| None).collect(),
        stats: Stats::default(),
    };
    load.stats.latencies_us.reserve(1 << 16);
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let mut last = start;
    for i in 0..cfg.connections {
        load.open(i, start);
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut next_check = start + Duration::from_millis(100);
    loop {
        let now = Instant::now();
        if now >= deadline && load.conns.iter().all(Option::is_none) {
            break;
        }
        if let Err(e) = load.poll.poll(&mut events, Some(Duration::from_millis(50))) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let now = Instant::now();
        for ev in &events {
            let i = ev.token().0;
            let Some(c) = load.conns[i].as_mut() else {
                continue;
            };
            let result = match pump(c, &mut buf) {
                Ok(Outcome::Pending) => continue,
                Ok(Outcome::Response(status, len)) => Ok((status, len)),
                Err(why) => Err(("read", why)),
            };
            if result.is_ok() {
                last = now;
            }
            load.close(i, result, now);
            if now < deadline {
                load.open(i, now);
            }
        }
        if now >= next_check {
            next_check = now + Duration::from_millis(100);
            for i in 0..load.conns.len() {
                let late = load.conns[i]
                    .as_ref()
                    .is_some_and(|c| now.saturating_duration_since(c.started) > cfg.timeout);
                if late {
                    load.close(i, Err(("timeout", "no response in time".into())), now);
                    if now < deadline {
                        load.open(i, now);
                    }
                }
            }
            // A slot whose connect failed is retried here, not in a tight loop.
            for i in 0..load.conns.len() {
                if load.conns[i].is_none() && now < deadline {
                    load.open(i, now);
                }
            }
        }
    }
    let mut stats = load.stats;
    stats.duration = if stats.messages > 0 {
        last - start
    } else {
        cfg.duration
    };
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_length_from_the_head() {
        let full = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nHello, world!";
        assert_eq!(response_len(full), Ok(Some((200, full.len()))));
        assert_eq!(response_len(&full[..full.len() - 1]), Ok(None));
        assert_eq!(response_len(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        let missing = b"HTTP/1.1 404 Not Found\r\nserver: x\r\n\r\n";
        assert_eq!(
            response_len(missing),
            Err("no content-length in the response".into())
        );
        assert!(response_len(b"nonsense\r\n\r\n").is_err());
    }
}
