//! A trivial WebSocket echo server on one thread (`wsload --serve`), only there to measure
//! the client's own ceiling: it does so little per message that, pinned to its own core,
//! it outruns the client, so the rate the client reaches against it is the client's limit.

use std::io::{self, ErrorKind, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::frame;

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    stream: TcpStream,
    open: bool,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    closing: bool,
}

pub fn serve(addr: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let slot =
                                conns.iter().position(Option::is_none).unwrap_or_else(|| {
                                    conns.push(None);
                                    conns.len() - 1
                                });
                            poll.registry().register(
                                &mut stream,
                                Token(slot),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns[slot] = Some(Conn {
                                stream,
                                open: false,
                                inbuf: Vec::new(),
                                out: Vec::new(),
                                out_pos: 0,
                                closing: false,
                            });
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => break, // out of descriptors and the like: try again later
                    }
                }
                continue;
            }
            let slot = ev.token().0;
            let Some(c) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let keep = handle(c, &mut buf).unwrap_or(false);
            if !keep {
                let _ = poll.registry().deregister(&mut c.stream);
                conns[slot] = None;
            }
        }
    }
}

/// Reads, answers and writes what it can; false when the connection is over.
fn handle(c: &mut Conn, buf: &mut [u8]) -> io::Result<bool> {
    let eof = frame::drain_into(&mut c.stream, buf, &mut c.inbuf)?;
    if !c.open {
        let Some(end) = c.inbuf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Ok(!eof && c.inbuf.len() < 16 * 1024);
        };
        let head = String::from_utf8_lossy(&c.inbuf[..end + 4]).into_owned();
        c.inbuf.drain(..end + 4);
        let Some(key) = frame::header(&head, "sec-websocket-key") else {
            c.out
                .extend_from_slice(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            c.closing = true;
            return flush(c);
        };
        c.out.extend_from_slice(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                frame::accept_key(key)
            )
            .as_bytes(),
        );
        c.open = true;
    }
    let mut pos = 0;
    while !c.closing {
        let Some(f) = frame::parse(&mut c.inbuf[pos..]).map_err(io::Error::other)? else {
            break;
        };
        let payload = pos + f.start..pos + f.end;
        match f.opcode {
            frame::OP_PING => {
                frame::encode(&mut c.out, true, frame::OP_PONG, &c.inbuf[payload], None);
            }
            frame::OP_PONG => {}
            frame::OP_CLOSE => {
                frame::encode(&mut c.out, true, frame::OP_CLOSE, &c.inbuf[payload], None);
                c.closing = true;
            }
            op => frame::encode(&mut c.out, f.fin, op, &c.inbuf[payload], None),
        }
        pos += f.len;
    }
    c.inbuf.drain(..pos);
    if eof {
        return Ok(false);
    }
    flush(c)
}

fn flush(c: &mut Conn) -> io::Result<bool> {
    while c.out_pos < c.out.len() {
        match c.stream.write(&c.out[c.out_pos..]) {
            Ok(0) => return Ok(false),
            Ok(n) => c.out_pos += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    c.out.clear();
    c.out_pos = 0;
    Ok(!c.closing) // once the close (or the 400) is written, the connection is over
}
