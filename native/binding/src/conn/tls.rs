//! The TLS layer between the transport and the connection's bytes: what `data_received`
//! gets is decrypted here before any mode sees it, and every write a decision makes is
//! encrypted here (under the connection's lock, so records keep their order) before it
//! reaches `transport.write`. The transport stays a plain TCP transport.

use std::io::{IoSlice, Read, Write};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::{ws, Conn, Effects};
use crate::server::ServerState;
use ruvicorn_core::syntax::error_response;
use ruvicorn_core::tls::info::ConnectionInfo;
use ruvicorn_core::tls::rustls::{self, ServerConnection};

/// Plaintext or ciphertext scratch kept between turns up to this capacity (an idle
/// connection holds at most twice this); a larger one (an 8 MiB body written at once) is
/// given back.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Parts handed to rustls in one vectored write.
const SLICES: usize = 8;

/// One connection's TLS state.
pub(crate) struct Tls {
    conn: ServerConnection,
    /// Decrypted bytes of this turn, and encrypted ones to write: scratch kept for reuse.
    plain: Vec<u8>,
    out: Vec<u8>,
    /// Nothing arrived yet: the first byte tells a TLS client from a plain HTTP one.
    fresh: bool,
    /// The client spoke plain HTTP: the 400 goes out in cleartext.
    cleartext: bool,
    /// TLS failed (a bad handshake, an alert): only the alert rustls queued goes out.
    failed: bool,
    close_sent: bool,
}

/// How reading a turn's bytes ended.
enum Turn {
    Open,
    /// The client sent close_notify: as a FIN on a cleartext connection.
    PeerClosed,
}

fn keep(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > KEEP_CAPACITY {
        buf.shrink_to(KEEP_CAPACITY);
    }
}

impl Tls {
    pub(crate) fn new(config: std::sync::Arc<rustls::ServerConfig>) -> Result<Self, rustls::Error> {
        Ok(Self {
            conn: ServerConnection::new(config)?,
            plain: Vec::new(),
            out: Vec::new(),
            fresh: true,
            cleartext: false,
            failed: false,
            close_sent: false,
        })
    }

    /// The handshake is done: the `tls` extension can be read.
    pub(crate) fn info(&self) -> Option<ConnectionInfo> {
        (!self.conn.is_handshaking()).then(|| ConnectionInfo::of(&self.conn))
    }

    /// Decrypt all of `data` into `plain`. rustls holds at most one partial record
    /// between turns: every complete record is decrypted and handed on at once, and the
    /// modes' own read pause bounds what waits for the app, as on cleartext.
    fn decrypt(&mut self, mut data: &[u8], plain: &mut Vec<u8>) -> Result<Turn, String> {
        while !data.is_empty() {
            self.conn
                .read_tls(&mut data)
                .map_err(|err| err.to_string())?;
            let state = self
                .conn
                .process_new_packets()
                .map_err(|err| err.to_string())?;
            let ready = state.plaintext_bytes_to_read();
            if ready > 0 {
                let start = plain.len();
                plain.resize(start + ready, 0);
                self.conn
                    .reader()
                    .read_exact(&mut plain[start..])
                    .map_err(|err| err.to_string())?;
            }
            if state.peer_has_closed() {
                return Ok(Turn::PeerClosed);
            }
        }
        Ok(Turn::Open)
    }

    /// Encrypt what `fx` writes (output held back first) into one `bytes` (with
    /// close_notify before a close or a half-close, not an abort), plus whatever rustls
    /// has to send of its own (handshake, alerts).
    pub(super) fn seal(&mut self, py: Python<'_>, fx: &mut Effects) {
        if self.cleartext {
            return;
        }
        let held = fx.corked.take();
        let body = fx.write_body.take();
        let body = body.as_ref().map_or(&b""[..], |b| b.bind(py).as_bytes());
        if !self.failed {
            let parts = [&fx.write[..], body, fx.write_suffix, &fx.write_tail[..]];
            match &held {
                Some(cork) => {
                    let mut all = cork.slices(py);
                    all.extend(parts);
                    self.push(&all);
                }
                None => self.push(&parts),
            }
        }
        fx.write.clear();
        fx.write_suffix = b"";
        fx.write_tail.clear();
        // Not before an abort: close_notify would tell the client the data ended cleanly
        // (a response delimited by the close would read as complete).
        let closing = (fx.close || fx.write_eof) && !fx.abort;
        if closing && !self.close_sent && !self.failed && !self.conn.is_handshaking() {
            self.close_sent = true;
            self.conn.send_close_notify();
        }
        self.drain();
        if !self.out.is_empty() {
            fx.sealed = Some(PyBytes::new(py, &self.out).unbind());
            keep(&mut self.out);
        }
    }

    /// Hand `parts` to rustls as one stream (records span up to [`SLICES`] parts), taking
    /// what its buffer limit lets in and draining between rounds.
    fn push(&mut self, parts: &[&[u8]]) {
        let mut parts = parts.iter().filter(|part| !part.is_empty()).peekable();
        while parts.peek().is_some() {
            let mut slices = [IoSlice::new(&[]); SLICES];
            let mut used = 0;
            for (slice, part) in slices.iter_mut().zip(parts.by_ref()) {
                *slice = IoSlice::new(part);
                used += 1;
            }
            if !self.push_slices(&mut slices[..used]) {
                return;
            }
        }
    }

    /// Whether rustls took all of `bufs`.
    fn push_slices(&mut self, mut bufs: &mut [IoSlice<'_>]) -> bool {
        while !bufs.is_empty() {
            let taken = self.conn.writer().write_vectored(bufs).unwrap_or(0);
            self.drain();
            if taken == 0 {
                // Only before the handshake, which no response can precede.
                return false;
            }
            IoSlice::advance_slices(&mut bufs, taken);
        }
        true
    }

    fn drain(&mut self) {
        while self.conn.wants_write() {
            // Writing into a Vec does not fail.
            if self.conn.write_tls(&mut self.out).is_err() {
                break;
            }
        }
    }
}

impl Conn {
    /// Bytes read on a TLS connection: decrypted, then given to the current mode.
    pub(super) fn tls_received(
        &mut self,
        tls: &mut Tls,
        data: &[u8],
        state: &ServerState,
        fx: &mut Effects,
    ) -> Option<ws::Wake> {
        if std::mem::take(&mut tls.fresh) && data.first().is_some_and(u8::is_ascii_uppercase) {
            tls.cleartext = true;
            fx.write_tail = error_response(400, &state.default_lines());
            fx.tls_note = Some(("Plain HTTP on the TLS port from", "answered 400".to_owned()));
            self.close(fx);
            return None;
        }
        let handshaking = tls.conn.is_handshaking();
        let mut plain = std::mem::take(&mut tls.plain);
        let read = tls.decrypt(data, &mut plain);
        let wake = if plain.is_empty() {
            None
        } else {
            self.plain_received(&plain, state, fx)
        };
        keep(&mut plain);
        tls.plain = plain;
        match read {
            Ok(Turn::Open) => {}
            Ok(Turn::PeerClosed) => {
                if !self.closing {
                    self.close(fx);
                }
            }
            Err(err) => {
                tls.failed = true;
                let what = if handshaking {
                    "TLS handshake failed with"
                } else {
                    "TLS error from"
                };
                fx.tls_note = Some((what, err));
                self.close(fx);
            }
        }
        wake
    }
}
