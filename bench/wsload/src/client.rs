//! The load: N WebSocket connections on one thread and one epoll, each sending a text
//! message and waiting for its echo before sending the next (a closed loop), until the
//! duration is over; then each closes with a close handshake.
//!
//! One thread with edge-triggered readiness costs one read and one write system call per
//! message and no context switch, so the client stays far below the cost of any server
//! it measures (see bench/README.md for its measured ceiling).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use base64::Engine as _;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::frame::{self, Rng};

pub struct Config {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub connections: usize,
    pub duration: Duration,
    pub size: usize,
    pub timeout: Duration,
    /// `--h3`: requests in flight on each connection, the POST body size (0: a GET), and
    /// how many requests to send in all (0: as many as the duration allows).
    pub streams: usize,
    pub body: usize,
    pub requests: u64,
}

/// Totals of one run; the same names as the wrk report the runner already reads.
#[derive(Default)]
pub struct Stats {
    pub messages: u64,
    pub bytes: u64,
    /// `--h3`: the response body bytes (DATA payloads) among `bytes`.
    pub body_bytes: u64,
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub status: u64,
    pub timeout: u64,
    pub duration: Duration,
    pub latencies_us: Vec<u32>,
    pub first_error: Option<String>,
}

impl Stats {
    pub fn fail(&mut self, what: String) {
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }
}

/// Keeps the latency samples bounded whatever the duration (about 256 MiB at most).
const MAX_SAMPLES: usize = 64 * 1024 * 1024;
const CLOSE_GRACE: Duration = Duration::from_secs(1);

#[derive(PartialEq, Eq)]
enum State {
    /// A message is in flight; its echo is awaited.
    Waiting,
    /// Our close frame is sent; waiting for the server's close or EOF.
    Closing,
    Done,
}

struct Conn {
    stream: TcpStream,
    state: State,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    sent_at: Instant,
    /// Payload of a fragmented message received so far, and its opcode.
    partial: Vec<u8>,
    partial_op: u8,
}

/// The message every connection sends: "Hello, world!" repeated to `size` bytes.
pub fn message(size: usize) -> Vec<u8> {
    b"Hello, world!"
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect()
}

pub fn run(cfg: &Config) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let addr = (cfg.host.as_str(), cfg.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(ErrorKind::NotFound, "host has no address"))?;
    let msg = message(cfg.size);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut rng = Rng::new(std::process::id() ^ nanos);

    let mut poll = Poll::new()?;
    let mut conns: Vec<Conn> = Vec::with_capacity(cfg.connections);
    for _ in 0..cfg.connections {
        match open(cfg, addr, &mut rng) {
            Ok((std, leftover)) => {
                std.set_nonblocking(true)?;
                let mut stream = TcpStream::from_std(std);
                let token = Token(conns.len());
                poll.registry().register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                conns.push(Conn {
                    stream,
                    state: State::Waiting,
                    inbuf: leftover,
                    out: Vec::with_capacity(64),
                    out_pos: 0,
                    sent_at: Instant::now(),
                    partial: Vec::new(),
                    partial_op: 0,
                });
            }
            Err(Failure::Connect(e)) => {
                stats.connect += 1;
                stats.fail(format!("connect to {addr}: {e}"));
            }
            Err(Failure::Handshake(e)) => {
                stats.status += 1;
                stats.fail(format!("handshake with {addr}{}: {e}", cfg.path));
            }
        }
    }
    if conns.is_empty() {
        let why = stats.first_error.take().unwrap_or_default();
        return Err(io::Error::other(format!(
            "no connection could be opened: {why}"
        )));
    }

    stats.latencies_us.reserve(1 << 20);
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let mut last = start;
    let mut live = conns.len();
    for c in &mut conns {
        c.sent_at = start;
        send_message(c, &msg, &mut rng);
        if let Err(e) = flush(c) {
            kill(c, &poll, &mut stats, Kind::Write, &e.to_string());
            live -= 1;
        }
    }

    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut next_check = start + Duration::from_millis(100);
    while live > 0 {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(50))) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let now = Instant::now();
        for ev in &events {
            let c = &mut conns[ev.token().0];
            if c.state == State::Done {
                continue;
            }
            if ev.is_writable() {
                if let Err(e) = flush(c) {
                    kill(c, &poll, &mut stats, Kind::Write, &e.to_string());
                    live -= 1;
                    continue;
                }
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                let echoes_before = stats.messages;
                if let Err((kind, why)) = receive(c, &mut buf, &msg, now, &mut stats, &mut rng) {
                    if c.state == State::Closing && kind == Kind::Read {
                        finish(c, &poll); // the server closed after our close: the normal end
                    } else {
                        kill(c, &poll, &mut stats, kind, &why);
                    }
                    live -= 1;
                    continue;
                }
                if stats.messages == echoes_before {
                    if let Err(e) = flush(c) {
                        // a pong queued by receive()
                        kill(c, &poll, &mut stats, Kind::Write, &e.to_string());
                        live -= 1;
                    }
                } else if c.state == State::Waiting {
                    last = now;
                    if now < deadline {
                        c.sent_at = now;
                        send_message(c, &msg, &mut rng);
                    } else {
                        c.state = State::Closing;
                        c.sent_at = now;
                        let mask = rng.next().to_ne_bytes();
                        frame::encode(
                            &mut c.out,
                            true,
                            frame::OP_CLOSE,
                            &1000u16.to_be_bytes(),
                            Some(mask),
                        );
                    }
                    if let Err(e) = flush(c) {
                        kill(c, &poll, &mut stats, Kind::Write, &e.to_string());
                        live -= 1;
                    }
                }
            }
        }
        if now >= next_check {
            next_check = now + Duration::from_millis(100);
            for c in &mut conns {
                let waited = now.saturating_duration_since(c.sent_at);
                match c.state {
                    State::Waiting if waited > cfg.timeout => {
                        kill(c, &poll, &mut stats, Kind::Timeout, "no echo in time");
                        live -= 1;
                    }
                    State::Closing if waited > CLOSE_GRACE => {
                        finish(c, &poll);
                        live -= 1;
                    }
                    _ => {}
                }
            }
        }
    }
    stats.duration = if stats.messages > 0 {
        last - start
    } else {
        cfg.duration
    };
    Ok(stats)
}

enum Failure {
    Connect(io::Error),
    Handshake(String),
}

/// Connects and upgrades one connection with blocking I/O (before the clock starts).
/// Returns the stream and any bytes that followed the 101 response.
fn open(cfg: &Config, addr: SocketAddr, rng: &mut Rng) -> Result<(StdStream, Vec<u8>), Failure> {
    let mut s = StdStream::connect_timeout(&addr, cfg.timeout).map_err(Failure::Connect)?;
    let hs = |e: io::Error| Failure::Handshake(e.to_string());
    s.set_nodelay(true).map_err(hs)?;
    s.set_read_timeout(Some(cfg.timeout)).map_err(hs)?;
    let mut raw = [0u8; 16];
    for chunk in raw.chunks_mut(4) {
        chunk.copy_from_slice(&rng.next().to_ne_bytes());
    }
    let key = base64::engine::general_purpose::STANDARD.encode(raw);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        cfg.path, cfg.host, cfg.port
    );
    s.write_all(request.as_bytes()).map_err(hs)?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > 16 * 1024 {
            return Err(Failure::Handshake("response head over 16 KiB".into()));
        }
        let n = s.read(&mut chunk).map_err(hs)?;
        if n == 0 {
            return Err(Failure::Handshake("closed before answering".into()));
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&head[..end]);
    let status = text.lines().next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(Failure::Handshake(format!("answered {status:?}")));
    }
    if frame::header(&text, "sec-websocket-accept") != Some(frame::accept_key(&key).as_str()) {
        return Err(Failure::Handshake("wrong Sec-WebSocket-Accept".into()));
    }
    s.set_read_timeout(None).map_err(hs)?;
    Ok((s, head[end..].to_vec()))
}

fn send_message(c: &mut Conn, msg: &[u8], rng: &mut Rng) {
    let mask = rng.next().to_ne_bytes();
    frame::encode(&mut c.out, true, frame::OP_TEXT, msg, Some(mask));
}

/// Writes what is queued; what the socket does not take now waits for a writable event.
fn flush(c: &mut Conn) -> io::Result<()> {
    while c.out_pos < c.out.len() {
        match c.stream.write(&c.out[c.out_pos..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => c.out_pos += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    c.out.clear();
    c.out_pos = 0;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Status,
    Timeout,
}

/// Reads everything available and handles every whole frame in it. An echo adds one to
/// `stats.messages`; a protocol or socket problem is returned.
fn receive(
    c: &mut Conn,
    buf: &mut [u8],
    msg: &[u8],
    now: Instant,
    stats: &mut Stats,
    rng: &mut Rng,
) -> Result<(), (Kind, String)> {
    let eof = frame::drain_into(&mut c.stream, buf, &mut c.inbuf)
        .map_err(|e| (Kind::Read, e.to_string()))?;
    let mut pos = 0;
    let mut result = Ok(());
    while pos < c.inbuf.len() {
        let f = match frame::parse(&mut c.inbuf[pos..]) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(why) => {
                result = Err((Kind::Read, why.to_string()));
                break;
            }
        };
        let base = pos;
        pos += f.len;
        let payload = base + f.start..base + f.end;
        match f.opcode {
            frame::OP_TEXT | frame::OP_BINARY | frame::OP_CONT => {
                if c.state != State::Waiting {
                    continue; // late data while closing: ignored
                }
                let (op, whole) = if f.opcode == frame::OP_CONT {
                    c.partial.extend_from_slice(&c.inbuf[payload.clone()]);
                    (c.partial_op, f.fin)
                } else if f.fin {
                    (f.opcode, true)
                } else {
                    c.partial.clear();
                    c.partial.extend_from_slice(&c.inbuf[payload.clone()]);
                    c.partial_op = f.opcode;
                    (f.opcode, false)
                };
                if !whole {
                    continue;
                }
                let got: &[u8] = if f.opcode == frame::OP_CONT {
                    &c.partial
                } else {
                    &c.inbuf[payload]
                };
                if op != frame::OP_TEXT || got != msg {
                    stats.status += 1;
                    stats.fail(format!("echo differs: opcode {op}, {} bytes", got.len()));
                }
                stats.messages += 1;
                stats.bytes += f.len as u64;
                if stats.latencies_us.len() < MAX_SAMPLES {
                    let us = now.saturating_duration_since(c.sent_at).as_micros();
                    stats
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                }
                // The next message goes out only after this one's echo: one at a time.
                if pos < c.inbuf.len() {
                    result = Err((Kind::Status, "data beyond the echo".into()));
                    break;
                }
            }
            frame::OP_PING => {
                let mask = rng.next().to_ne_bytes();
                let data = c.inbuf[payload].to_vec();
                frame::encode(&mut c.out, true, frame::OP_PONG, &data, Some(mask));
            }
            frame::OP_PONG => {}
            frame::OP_CLOSE => {
                result = Err((
                    Kind::Read,
                    if c.state == State::Closing {
                        "closed".into()
                    } else {
                        "server sent a close frame".into()
                    },
                ));
                break;
            }
            op => {
                result = Err((Kind::Read, format!("unknown opcode {op}")));
                break;
            }
        }
    }
    c.inbuf.drain(..pos.min(c.inbuf.len()));
    if result.is_ok() && eof {
        result = Err((Kind::Read, "connection closed by the server".into()));
    }
    result
}

fn finish(c: &mut Conn, poll: &Poll) {
    c.state = State::Done;
    let _ = poll.registry().deregister(&mut c.stream);
    let _ = c.stream.shutdown(std::net::Shutdown::Both);
}

fn kill(c: &mut Conn, poll: &Poll, stats: &mut Stats, kind: Kind, why: &str) {
    match kind {
        Kind::Read => stats.read += 1,
        Kind::Write => stats.write += 1,
        Kind::Status => stats.status += 1,
        Kind::Timeout => stats.timeout += 1,
    }
    stats.fail(why.to_string());
    finish(c, poll);
}
