//! The client's frames checked before the engine reads them (RFC 9113 §3.4, §4-§6).
//!
//! The engine ends the connection with PROTOCOL_ERROR where the RFC assigns another code
//! (FRAME_SIZE_ERROR for a PING of 7 bytes, STREAM_CLOSED for DATA after END_STREAM, ...)
//! and answers a PING the client sends before its SETTINGS. So every frame header passes
//! through [`FrameCheck`] first: the frames before a violation go on to the engine, the
//! offending one is held, and the scan [`Stop`]s with the error the RFC calls for.
//!
//! The check reads frame headers only, plus SETTINGS payloads (a few bytes per setting) and
//! field block fragments (read by [`FieldCheck`], which the engine answers with the wrong
//! codes too), and copies no payload: what passes is handed on as slices of the input. A
//! header split across reads is held back (at most 8 bytes) until it is whole, so the engine
//! never sees part of a frame that is then refused; a payload byte found at fault is held
//! back likewise, so the engine never has its frame whole before the verdict.

use std::collections::VecDeque;

use super::flood::FloodGuard;
use super::hpack_check::{Fault, FieldCheck};

/// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;
/// Frame flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;
/// Error codes (RFC 9113 §7).
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
pub const STREAM_CLOSED: u32 = 0x5;
pub const REFUSED_STREAM: u32 = 0x7;
pub const FRAME_SIZE_ERROR: u32 = 0x6;

const PREFACE_LEN: usize = 24;
const HEADER_LEN: usize = 9;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
/// The payload of the PING the engine sends with its first GOAWAY of a graceful shutdown:
/// its acknowledgement makes the engine send the final GOAWAY, naming the highest stream
/// the client opened so far, and ignore every stream opened after it.
const SHUTDOWN_PING: [u8; 8] = [0x0b, 0x7b, 0xa2, 0xf0, 0x8b, 0x9b, 0xfe, 0x54];
const MAX_WINDOW: u32 = (1 << 31) - 1;
/// Streams whose state is remembered, the most recently opened ones. An older stream is
/// left to the engine's judgement: forgetting only ever means not intervening.
const TRACKED_STREAMS: usize = 128;

/// The error a frame calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A connection error (§5.4.1): GOAWAY with this code; nothing more may reach the engine.
    Connection(u32),
    /// A stream error (§5.4.2). `forward`: once the stream is reset, the frame still goes to
    /// the engine, which then ignores it but decodes its field block and counts its DATA
    /// against the connection window (both sides' state stays in step). Where the stream
    /// cannot be reset, the caller makes it a connection error with the same code.
    Stream {
        stream: u32,
        code: u32,
        forward: bool,
    },
}

/// Where the scan stopped: the offending frame's header (or, for a SETTINGS value or a field
/// block byte, the point in its payload) ends at `at` in the input given to
/// [`FrameCheck::scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    pub verdict: Verdict,
    pub at: usize,
}

/// See the module documentation.
pub struct FrameCheck {
    /// Preface bytes still to pass (the engine checks them).
    preface: usize,
    /// The header being read; the first `have` bytes are held from earlier input.
    header: [u8; HEADER_LEN],
    have: usize,
    /// Payload bytes of the current frame still to come, and whether they are dropped.
    payload: usize,
    dropping: bool,
    /// In a SETTINGS payload: the bytes of the current setting read so far.
    settings: Option<([u8; 6], usize)>,
    /// A graceful shutdown began: a PING acknowledgement's payload is read (the bytes
    /// so far, while in one), to know when the final GOAWAY goes out.
    going_away: bool,
    ping_ack: Option<([u8; 8], usize)>,
    /// The last stream id of the final GOAWAY, once it went out.
    goaway_last: Option<u32>,
    /// Streams the client opened after the final GOAWAY: the engine ignores them (it
    /// still decodes their field blocks); the caller refuses them (RST_STREAM
    /// REFUSED_STREAM, §6.8).
    refused: Vec<u32>,
    /// The next frame is the client's first (§3.4: it must be SETTINGS).
    first: bool,
    /// A field block is open on this stream: only its CONTINUATION frames may follow (§6.10).
    block: Option<u32>,
    /// Recently opened streams, ascending, with whether the client ended its side
    /// (END_STREAM or RST_STREAM).
    streams: VecDeque<(u32, bool)>,
    /// The field blocks' decoding state, and where the current frame's fragment is.
    fields: FieldCheck,
    fragment: Option<Fragment>,
    /// The engine refused a frame's padding: its decoder state is no longer followed.
    fields_lost: bool,
    /// Streams whose request has a `#` in its `:path` (malformed, RFC 9113 §8.3.1; the
    /// engine drops the fragment unseen), until [`Self::take_hash_in_path`].
    hash_in_path: Vec<u32>,
    /// A [`Stop`] was returned and not resumed: nothing more passes.
    stopped: bool,
    /// The stop was inside a payload, at this byte, held back until [`Self::resume`].
    held_byte: Option<u8>,
    pub(super) flood: FloodGuard,
}

impl Default for FrameCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameCheck {
    pub fn new() -> Self {
        Self {
            preface: PREFACE_LEN,
            header: [0; HEADER_LEN],
            have: 0,
            payload: 0,
            dropping: false,
            settings: None,
            going_away: false,
            ping_ack: None,
            goaway_last: None,
            refused: Vec::new(),
            first: true,
            block: None,
            streams: VecDeque::new(),
            fields: FieldCheck::new(),
            fragment: None,
            fields_lost: false,
            hash_in_path: Vec::new(),
            stopped: false,
            held_byte: None,
            flood: FloodGuard::new(),
        }
    }

    /// Read `data`, handing the bytes that may reach the engine to `forward` in order.
    /// Returns at the first violation; until [`Self::resume`], nothing more passes.
    pub fn scan(&mut self, data: &[u8], forward: &mut impl FnMut(&[u8])) -> Option<Stop> {
        if self.stopped {
            return None;
        }
        let mut i = 0;
        // The first byte of `data` not yet forwarded or dropped.
        let mut from = 0;
        while i < data.len() {
            if self.preface > 0 {
                let n = self.preface.min(data.len() - i);
                self.preface -= n;
                i += n;
                continue;
            }
            if self.payload > 0 {
                let n = self.payload.min(data.len() - i);
                self.ping_ack_bytes(&data[i..i + n]);
                let found = match self.settings_values(&data[i..i + n]) {
                    Some(last) => Some((last, Verdict::Connection(FLOW_CONTROL_ERROR))),
                    None => self.fragment_bytes(&data[i..i + n]),
                };
                if let Some((last, verdict)) = found {
                    // The frame never reaches the engine whole: its last byte read is held,
                    // and so the engine is given the same bytes however the input was split.
                    forward_range(forward, data, from, i + last);
                    self.stopped = true;
                    self.held_byte = Some(data[i + last]);
                    self.payload -= last + 1;
                    return Some(Stop {
                        verdict,
                        at: i + last + 1,
                    });
                }
                if self.dropping {
                    forward_range(forward, data, from, i);
                    from = i + n;
                }
                self.payload -= n;
                i += n;
                continue;
            }
            let start = i;
            let held = self.have;
            let header = if held == 0 && data.len() - i >= HEADER_LEN {
                i += HEADER_LEN;
                header_at(&data[start..i])
            } else {
                let n = (HEADER_LEN - held).min(data.len() - i);
                self.header[held..held + n].copy_from_slice(&data[i..i + n]);
                self.have += n;
                i += n;
                if self.have < HEADER_LEN {
                    // Held back until the rest arrives.
                    forward_range(forward, data, from, start);
                    return None;
                }
                self.have = 0;
                self.header
            };
            match self.frame(&header) {
                None => {
                    if held > 0 {
                        // Only the first header of `data` can have begun earlier: `from`
                        // is still 0, so the held bytes go first.
                        forward(&self.header[..held]);
                    }
                    self.start_payload(&header, false);
                }
                Some(verdict) => {
                    forward_range(forward, data, from, start);
                    self.header = header;
                    self.stopped = true;
                    return Some(Stop { verdict, at: i });
                }
            }
        }
        forward_range(forward, data, from, data.len());
        None
    }

    /// Go on after a [`Verdict::Stream`] the caller turned into a stream reset: the frame
    /// is forwarded (`pass`) or dropped, and scanning continues after [`Stop::at`]. A stop
    /// inside a payload (a pseudo-header in trailers) always passes the frame on: its
    /// beginning has reached the engine already.
    pub fn resume(&mut self, pass: bool, forward: &mut impl FnMut(&[u8])) {
        if !self.stopped {
            return;
        }
        self.stopped = false;
        if let Some(byte) = self.held_byte.take() {
            forward(&[byte]);
            return;
        }
        let header = self.header;
        if pass {
            forward(&header);
        }
        self.start_payload(&header, !pass);
    }

    /// The bytes of a partial frame header held back, at most 8.
    pub fn held(&self) -> usize {
        self.have
    }

    /// The engine began a graceful shutdown (its first GOAWAY and a PING).
    pub fn going_away(&mut self) {
        self.going_away = true;
    }

    /// The acknowledgement of the shutdown PING, as the client would send it, when it is
    /// still awaited and may be read next: between whole frames, outside a field block.
    pub fn shutdown_ping_ack(&self) -> Option<Vec<u8>> {
        let between_frames = self.preface == 0
            && self.have == 0
            && self.payload == 0
            && self.block.is_none()
            && !self.stopped;
        if !(self.going_away && self.goaway_last.is_none() && between_frames) {
            return None;
        }
        let mut frame = vec![0, 0, 8, PING, ACK, 0, 0, 0, 0];
        frame.extend_from_slice(&SHUTDOWN_PING);
        Some(frame)
    }

    /// Streams read since the last call whose `:path` has a `#`.
    pub fn take_hash_in_path(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.hash_in_path)
    }

    /// Streams the client opened after the final GOAWAY since the last call, to refuse.
    pub fn take_refused(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.refused)
    }

    /// Whether the client floods with frames that cost work and carry none.
    pub(super) fn flooding(&mut self) -> bool {
        self.flood.flooding()
    }

    fn start_payload(&mut self, header: &[u8; HEADER_LEN], drop: bool) {
        self.payload = frame_len(header);
        self.dropping = drop;
        let (kind, flags) = (header[3], header[4]);
        self.settings = (!drop && kind == SETTINGS && flags & ACK == 0).then_some(([0; 6], 0));
        self.ping_ack = (!drop && self.going_away && self.goaway_last.is_none())
            .then_some(kind == PING && flags & ACK != 0)
            .filter(|&ack| ack)
            .map(|_| ([0; 8], 0));
        self.fragment = (!drop && !self.fields_lost && (kind == HEADERS || kind == CONTINUATION))
            .then(|| Fragment::new(header));
    }

    /// What `header` calls for, if anything; keeps the stream and field-block state.
    fn frame(&mut self, header: &[u8; HEADER_LEN]) -> Option<Verdict> {
        let len = frame_len(header);
        let (kind, flags) = (header[3], header[4]);
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & MAX_WINDOW;
        self.flood.frame(kind, flags, len);
        let connection = |code| Some(Verdict::Connection(code));
        if std::mem::replace(&mut self.first, false) && (kind != SETTINGS || flags & ACK != 0) {
            return connection(PROTOCOL_ERROR);
        }
        match self.block {
            Some(open) if kind != CONTINUATION || stream != open => {
                return connection(PROTOCOL_ERROR)
            }
            None if kind == CONTINUATION => return connection(PROTOCOL_ERROR),
            _ => {}
        }
        let size_ok = match kind {
            DATA => flags & PADDED == 0 || len >= 1,
            HEADERS => {
                len >= usize::from(flags & PADDED != 0)
                    + if flags & PRIORITY_FLAG != 0 { 5 } else { 0 }
            }
            PRIORITY => len == 5 || stream == 0,
            RST_STREAM | WINDOW_UPDATE => len == 4,
            SETTINGS if flags & ACK != 0 => len == 0,
            SETTINGS => len % 6 == 0,
            PING => len == 8,
            GOAWAY => len >= 8,
            _ => true,
        };
        if !size_ok {
            if kind == PRIORITY {
                // §6.3: the one size error confined to its stream.
                let code = FRAME_SIZE_ERROR;
                return Some(Verdict::Stream {
                    stream,
                    code,
                    forward: false,
                });
            }
            return connection(FRAME_SIZE_ERROR);
        }
        if kind == HEADERS || kind == CONTINUATION {
            self.block = (flags & END_HEADERS == 0).then_some(stream);
            if kind == HEADERS {
                self.fields.start_block(self.is_trailers(stream));
            }
            let empty = Fragment::new(header);
            if empty.rest == 0 && empty.end && !self.fields_lost && !self.fields.may_end() {
                return connection(COMPRESSION_ERROR);
            }
        }
        match kind {
            HEADERS if stream != 0 => match self.streams.back() {
                Some(&(last, _)) if stream <= last => self.sent_on(stream, flags & END_STREAM != 0),
                _ => {
                    if self.goaway_last.is_some_and(|last| stream > last) && stream % 2 == 1 {
                        self.refused.push(stream);
                    }
                    if self.streams.len() == TRACKED_STREAMS {
                        self.streams.pop_front();
                    }
                    self.streams.push_back((stream, flags & END_STREAM != 0));
                    None
                }
            },
            DATA if stream != 0 => self.sent_on(stream, flags & END_STREAM != 0),
            RST_STREAM => {
                // Allowed on a stream the client ended; it ends one still open.
                let _ = self.sent_on(stream, true);
                None
            }
            _ => None,
        }
    }

    /// A HEADERS frame on `stream` would be its trailers: the client opened it and has not
    /// ended its side.
    fn is_trailers(&self, stream: u32) -> bool {
        let at = self.streams.binary_search_by_key(&stream, |s| s.0);
        at.is_ok_and(|at| !self.streams[at].1)
    }

    /// Read field block bytes of the current HEADERS or CONTINUATION payload; at one that
    /// calls for an error, its index in `bytes` and the verdict.
    fn fragment_bytes(&mut self, bytes: &[u8]) -> Option<(usize, Verdict)> {
        let fragment = self.fragment.as_mut()?;
        for (at, &byte) in bytes.iter().enumerate() {
            fragment.rest -= 1;
            if fragment.padded {
                fragment.padded = false;
                let pad = usize::from(byte);
                match (fragment.rest - fragment.skip).checked_sub(pad) {
                    Some(left) => fragment.left = left,
                    None => {
                        // The engine ends the connection over the padding.
                        self.fields_lost = true;
                        self.fragment = None;
                        return None;
                    }
                }
            } else if fragment.skip > 0 {
                fragment.skip -= 1;
                if fragment.skip > 0 {
                    fragment.dependency = fragment.dependency << 8 | u32::from(byte);
                } else if fragment.dependency & MAX_WINDOW == fragment.stream {
                    // The engine resets a stream depending on itself without decoding its
                    // field block.
                    self.fragment = None;
                    return None;
                }
            } else if fragment.left > 0 {
                fragment.left -= 1;
                let read = self.fields.byte(byte);
                if self.fields.take_hash_in_path() {
                    self.hash_in_path.push(fragment.stream);
                }
                let fault = match read {
                    Err(fault) => Some(fault),
                    Ok(()) if fragment.left == 0 && fragment.end && !self.fields.may_end() => {
                        Some(Fault::Compression)
                    }
                    Ok(()) => None,
                };
                let verdict = match fault {
                    None => continue,
                    Some(Fault::Compression) => Verdict::Connection(COMPRESSION_ERROR),
                    Some(Fault::PseudoInTrailers) => Verdict::Stream {
                        stream: fragment.stream,
                        code: PROTOCOL_ERROR,
                        forward: true,
                    },
                };
                return Some((at, verdict));
            } else {
                // Padding.
                self.fragment = None;
                return None;
            }
            // The fragment is empty, or ends before padding, with the block.
            let ended = !fragment.padded && fragment.skip == 0 && fragment.left == 0;
            if ended && fragment.end && !self.fields.may_end() {
                return Some((at, Verdict::Connection(COMPRESSION_ERROR)));
            }
        }
        None
    }

    /// The client sent a frame on a stream it opened before, ending its side with it if
    /// `end`. A DATA or HEADERS frame on a stream the client already ended is STREAM_CLOSED
    /// (§5.1: half-closed (remote), or closed by its END_STREAM or RST_STREAM).
    fn sent_on(&mut self, stream: u32, end: bool) -> Option<Verdict> {
        let at = self.streams.binary_search_by_key(&stream, |s| s.0).ok()?;
        let ended = &mut self.streams[at].1;
        if *ended {
            let code = STREAM_CLOSED;
            return Some(Verdict::Stream {
                stream,
                code,
                forward: true,
            });
        }
        *ended = end;
        None
    }

    /// Read a PING acknowledgement's payload during a graceful shutdown: the engine's own
    /// PING acknowledged means its final GOAWAY names the highest stream opened so far.
    fn ping_ack_bytes(&mut self, bytes: &[u8]) {
        let Some((payload, have)) = self.ping_ack.as_mut() else {
            return;
        };
        let n = bytes.len().min(payload.len() - *have);
        payload[*have..*have + n].copy_from_slice(&bytes[..n]);
        *have += n;
        if *have == payload.len() {
            if *payload == SHUTDOWN_PING {
                self.goaway_last = Some(self.streams.back().map_or(0, |&(last, _)| last));
            }
            self.ping_ack = None;
        }
    }

    /// Read SETTINGS values; at one out of range with a code the engine gets wrong (§6.5.2:
    /// SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 is FLOW_CONTROL_ERROR), the index in
    /// `bytes` of its last byte.
    fn settings_values(&mut self, bytes: &[u8]) -> Option<usize> {
        let (entry, have) = self.settings.as_mut()?;
        for (at, &b) in bytes.iter().enumerate() {
            entry[*have] = b;
            *have += 1;
            if *have == entry.len() {
                *have = 0;
                let id = u16::from_be_bytes([entry[0], entry[1]]);
                let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
                if id == SETTINGS_INITIAL_WINDOW_SIZE && value > MAX_WINDOW {
                    return Some(at);
                }
            }
        }
        None
    }
}

/// Where the payload of a HEADERS or CONTINUATION frame being read is (RFC 9113 §6.2, §6.10).
#[derive(Debug, Clone, Copy)]
struct Fragment {
    stream: u32,
    /// END_HEADERS: the field block ends with this fragment.
    end: bool,
    /// The pad length byte is still to come.
    padded: bool,
    /// Bytes of the priority fields still to come, and the stream dependency read so far.
    skip: usize,
    dependency: u32,
    /// Bytes of the fragment still to come (once the pad length is known).
    left: usize,
    /// Bytes of the payload still to come.
    rest: usize,
}

impl Fragment {
    fn new(header: &[u8; HEADER_LEN]) -> Self {
        let (kind, flags) = (header[3], header[4]);
        let padded = kind == HEADERS && flags & PADDED != 0;
        let skip = if kind == HEADERS && flags & PRIORITY_FLAG != 0 {
            5
        } else {
            0
        };
        let rest = frame_len(header);
        Self {
            stream: u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & MAX_WINDOW,
            end: flags & END_HEADERS != 0,
            padded,
            skip,
            dependency: 0,
            left: rest.saturating_sub(skip + usize::from(padded)),
            rest,
        }
    }
}

fn forward_range(forward: &mut impl FnMut(&[u8]), data: &[u8], from: usize, to: usize) {
    if from < to {
        forward(&data[from..to]);
    }
}

fn header_at(bytes: &[u8]) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header.copy_from_slice(&bytes[..HEADER_LEN]);
    header
}

fn frame_len(header: &[u8; HEADER_LEN]) -> usize {
    usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2])
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
