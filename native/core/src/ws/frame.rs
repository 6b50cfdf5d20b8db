//! The WebSocket frame codec (RFC 6455 section 5).
//!
//! [`FrameDecoder`] turns the bytes a client sends into [`Frame`]s and checks
//! every rule that can be checked on one frame header, failing as early as the
//! first two bytes allow, so a misbehaving peer is closed before its payload is
//! buffered. [`encode_frame`] writes server frames, which are never masked.

use super::close_code;
use super::WsError;

/// Control frames carry at most this many payload bytes (RFC 6455 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A close frame's reason fits in what is left after the 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// First allocation for a payload whose bytes have not arrived yet: a header
/// that announces a large frame must not make us reserve it all up front.
const INITIAL_PAYLOAD_CAPACITY: usize = 64 * 1024;

/// Once this much of the read buffer is consumed, it is compacted.
const COMPACT_THRESHOLD: usize = 4096;

/// A frame's opcode; the reserved values are rejected when decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// The next fragment of the current message.
    Continuation,
    /// The first frame of a UTF-8 text message.
    Text,
    /// The first frame of a binary message.
    Binary,
    /// Starts or answers the closing handshake.
    Close,
    /// Asks the peer for a pong.
    Ping,
    /// Answers a ping (or is a one-way heartbeat).
    Pong,
}

impl OpCode {
    /// The opcode for the low 4 bits of a frame's first byte, if defined.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0x0 => Some(Self::Continuation),
            0x1 => Some(Self::Text),
            0x2 => Some(Self::Binary),
            0x8 => Some(Self::Close),
            0x9 => Some(Self::Ping),
            0xA => Some(Self::Pong),
            _ => None,
        }
    }

    /// The 4-bit wire value.
    pub const fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes.
    pub const fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// One decoded frame, payload already unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Last fragment of its message (always true for control frames).
    pub fin: bool,
    /// permessage-deflate's "compressed" bit (only ever on a message's first frame).
    pub rsv1: bool,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The application data.
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
}

#[derive(Debug)]
enum State {
    /// Waiting for (the rest of) a frame header.
    Header,
    /// Header accepted; collecting `header.len` payload bytes.
    Payload { header: Header, payload: Vec<u8> },
}

/// Decodes a stream of frames, enforcing RFC 6455's per-frame rules.
///
/// Feed it whatever arrived with [`feed`](Self::feed), then call
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`. After an
/// error it keeps returning that error: the connection is to be closed with
/// its code.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    pos: usize,
    state: State,
    max_size: usize,
    allow_rsv1: bool,
    expect_masked: bool,
    /// A text/binary frame without FIN was accepted and its last fragment
    /// has not been seen yet.
    fragmented: bool,
    error: Option<WsError>,
}

impl FrameDecoder {
    /// A decoder for frames sent by a client (which must be masked).
    ///
    /// `max_size` bounds one frame's payload (1009 beyond it); `allow_rsv1`
    /// is true when permessage-deflate was negotiated.
    pub fn new(max_size: usize, allow_rsv1: bool) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            state: State::Header,
            max_size,
            allow_rsv1,
            expect_masked: true,
            fragmented: false,
            error: None,
        }
    }

    /// A decoder for frames sent by a server (which must not be masked):
    /// lets tests read back what the encoders wrote.
    #[cfg(test)]
    pub fn for_server_frames(max_size: usize, allow_rsv1: bool) -> Self {
        Self {
            expect_masked: false,
            ..Self::new(max_size, allow_rsv1)
        }
    }

    /// Appends bytes read from the connection.
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.error.is_some() {
            return;
        }
        // A large payload arriving in pieces goes straight to its frame,
        // without passing through the read buffer.
        if let State::Payload { header, payload } = &mut self.state {
            if self.pos == self.buf.len() {
                let take = (header.len - payload.len()).min(data.len());
                let (now, rest) = data.split_at(take);
                payload.extend_from_slice(now);
                data = rest;
            }
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as frames (for read backpressure).
    pub fn buffered(&self) -> usize {
        let partial = match &self.state {
            State::Header => 0,
            State::Payload { payload, .. } => payload.len(),
        };
        self.buf.len() - self.pos + partial
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WsError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let result = self.step();
        if let Err(error) = result {
            self.error = Some(error);
            self.buf = Vec::new();
            self.pos = 0;
            self.state = State::Header;
        }
        result
    }

    fn step(&mut self) -> Result<Option<Frame>, WsError> {
        let (header, mut payload) = match std::mem::replace(&mut self.state, State::Header) {
            State::Payload { header, payload } => (header, payload),
            State::Header => {
                let Some((header, header_len)) = self.parse_header(&self.buf[self.pos..])? else {
                    self.compact();
                    return Ok(None);
                };
                self.pos += header_len;
                if !header.opcode.is_control() {
                    self.fragmented = !header.fin;
                }
                let available = self.buf.len() - self.pos;
                let capacity = if available >= header.len {
                    header.len
                } else {
                    header.len.min(available.max(INITIAL_PAYLOAD_CAPACITY))
                };
                (header, Vec::with_capacity(capacity))
            }
        };
        let take = (header.len - payload.len()).min(self.buf.len() - self.pos);
        payload.extend_from_slice(&self.buf[self.pos..self.pos + take]);
        self.pos += take;
        self.compact();
        if payload.len() < header.len {
            self.state = State::Payload { header, payload };
            return Ok(None);
        }
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        Ok(Some(Frame {
            fin: header.fin,
            rsv1: header.rsv1,
            opcode: header.opcode,
            payload,
        }))
    }

    fn compact(&mut self) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos >= COMPACT_THRESHOLD && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Validates a header as soon as the bytes that decide each rule are in;
    /// `Ok(None)` means the header is not complete yet.
    fn parse_header(&self, bytes: &[u8]) -> Result<Option<(Header, usize)>, WsError> {
        let [b0, b1, ..] = *bytes else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv1 = b0 & 0x40 != 0;
        if b0 & 0x30 != 0 {
            return Err(WsError::protocol("reserved bits set"));
        }
        let Some(opcode) = OpCode::from_bits(b0 & 0x0F) else {
            return Err(WsError::protocol("unknown opcode"));
        };
        if rsv1 {
            if !self.allow_rsv1 {
                return Err(WsError::protocol("reserved bit set without extension"));
            }
            if opcode.is_control() {
                return Err(WsError::protocol("compressed control frame"));
            }
            if opcode == OpCode::Continuation {
                return Err(WsError::protocol("compressed bit on continuation frame"));
            }
        }
        let masked = b1 & 0x80 != 0;
        if masked != self.expect_masked {
            return Err(WsError::protocol(if self.expect_masked {
                "client frame not masked"
            } else {
                "server frame masked"
            }));
        }
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            if !fin {
                return Err(WsError::protocol("fragmented control frame"));
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(WsError::protocol("control frame too long"));
            }
        } else if opcode == OpCode::Continuation {
            if !self.fragmented {
                return Err(WsError::protocol("continuation frame without a message"));
            }
        } else if self.fragmented {
            return Err(WsError::protocol("new message inside a fragmented message"));
        }
        let (len, mut at): (u64, usize) = match len7 {
            126 => match bytes.get(2..4) {
                Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
                _ => return Ok(None),
            },
            127 => match bytes.get(2..10) {
                Some(raw) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(raw);
                    let len = u64::from_be_bytes(be);
                    if len >> 63 != 0 {
                        return Err(WsError::protocol("frame length has its top bit set"));
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        let len = match usize::try_from(len) {
            Ok(len) if len <= self.max_size => len,
            _ => return Err(WsError::too_big("frame too big")),
        };
        let mask = if masked {
            match bytes.get(at..at + 4) {
                Some(&[a, b, c, d]) => {
                    at += 4;
                    Some([a, b, c, d])
                }
                _ => return Ok(None),
            }
        } else {
            None
        };
        Ok(Some((
            Header {
                fin,
                rsv1,
                opcode,
                mask,
                len,
            },
            at,
        )))
    }
}

/// XORs `data` with the masking key (RFC 6455 5.3), 8 bytes at a time.
///
/// `offset` is the position of `data[0]` within the frame payload, so a
/// payload can be unmasked piecewise.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let k = [
        key[offset & 3],
        key[(offset + 1) & 3],
        key[(offset + 2) & 3],
        key[(offset + 3) & 3],
    ];
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(w) ^ word).to_ne_bytes());
    }
    // Chunks of 8 keep the key's phase, so the tail starts at k[0].
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i & 3];
    }
}

fn push_header(out: &mut Vec<u8>, opcode: OpCode, len: usize, fin: bool, rsv1: bool, mask_bit: u8) {
    out.push(u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode.bits());
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends one server frame (never masked) to `out`.
///
/// Control frames must have at most 125 bytes of payload and `fin` set; the
/// helpers below take care of that.
pub fn encode_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], fin: bool, rsv1: bool) {
    out.reserve(10 + payload.len());
    push_header(out, opcode, payload.len(), fin, rsv1, 0);
    out.extend_from_slice(payload);
}

/// Appends one masked frame, as a client sends it (for tests).
#[cfg(test)]
pub fn encode_client_frame(
    out: &mut Vec<u8>,
    opcode: OpCode,
    payload: &[u8],
    fin: bool,
    rsv1: bool,
    key: [u8; 4],
) {
    out.reserve(14 + payload.len());
    push_header(out, opcode, payload.len(), fin, rsv1, 0x80);
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Appends a close frame.
///
/// `code` 1005 (no status) writes an empty close frame, as that code may
/// never go on the wire; otherwise the code is written followed by `reason`
/// cut to 123 bytes at a character boundary.
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    if code == close_code::NO_STATUS_RCVD {
        encode_frame(out, OpCode::Close, &[], true, false);
        return;
    }
    let reason = truncate_utf8(reason, MAX_CLOSE_REASON);
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    encode_frame(
        out,
        OpCode::Close,
        &payload[..2 + reason.len()],
        true,
        false,
    );
}

/// Appends a ping; the payload is cut to 125 bytes.
pub fn encode_ping(out: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len().min(MAX_CONTROL_PAYLOAD);
    encode_frame(out, OpCode::Ping, &payload[..len], true, false);
}

/// Appends a pong; the payload is cut to 125 bytes.
pub fn encode_pong(out: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len().min(MAX_CONTROL_PAYLOAD);
    encode_frame(out, OpCode::Pong, &payload[..len], true, false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    const MAX: usize = 1 << 20;

    fn client(opcode: OpCode, payload: &[u8], fin: bool) -> Vec<u8> {
        let mut out = Vec::new();
        encode_client_frame(&mut out, opcode, payload, fin, false, KEY);
        out
    }

    fn decode_all(decoder: &mut FrameDecoder) -> Result<Vec<Frame>, WsError> {
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame()? {
            frames.push(frame);
        }
        Ok(frames)
    }

    /// Decodes `bytes` in one piece; the first error ends decoding.
    fn decode(bytes: &[u8], allow_rsv1: bool) -> Result<Vec<Frame>, WsError> {
        let mut decoder = FrameDecoder::new(MAX, allow_rsv1);
        decoder.feed(bytes);
        decode_all(&mut decoder)
    }

    fn error_code(bytes: &[u8]) -> u16 {
        match decode(bytes, false) {
            Err(e) => e.code,
            Ok(frames) => panic!("expected an error, got {frames:?}"),
        }
    }

    /// Decodes `bytes` fed in the given pieces, collecting frames and the
    /// first error.
    fn decode_chunked(
        bytes: &[u8],
        cuts: &[usize],
        allow_rsv1: bool,
    ) -> (Vec<Frame>, Option<WsError>) {
        let mut decoder = FrameDecoder::new(MAX, allow_rsv1);
        let mut frames = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
            decoder.feed(&bytes[start..end]);
            start = end;
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(e) => return (frames, Some(e)),
                }
            }
        }
        assert_eq!(decoder.buffered(), 0);
        (frames, None)
    }

    /// A stream with every length encoding, control frames inside a
    /// fragmented message, and a compressed first fragment; also the range
    /// of the 70,000-byte payload in it.
    fn sample_stream() -> (Vec<u8>, std::ops::Range<usize>) {
        let mut s = Vec::new();
        encode_client_frame(&mut s, OpCode::Text, b"Hello", true, false, KEY);
        s.extend(client(OpCode::Binary, &[], true));
        s.extend(client(OpCode::Binary, &[7u8; 125], true));
        s.extend(client(OpCode::Binary, &[8u8; 126], true));
        encode_client_frame(&mut s, OpCode::Text, "héllo ".as_bytes(), false, true, KEY);
        s.extend(client(OpCode::Ping, b"are you there", true));
        s.extend(client(OpCode::Continuation, &[9u8; 300], false));
        s.extend(client(OpCode::Pong, &[], true));
        s.extend(client(OpCode::Continuation, b"end", true));
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let big_start = s.len() + 14;
        s.extend(client(OpCode::Binary, &big, true));
        let big_range = big_start..s.len();
        s.extend(client(OpCode::Close, &[0x03, 0xe8, b'o', b'k'], true));
        (s, big_range)
    }

    #[test]
    fn opcode_bits_round_trip() {
        for bits in 0..16u8 {
            if let Some(op) = OpCode::from_bits(bits) {
                assert_eq!(op.bits(), bits);
            }
        }
        assert_eq!(OpCode::from_bits(0x3), None);
        assert_eq!(OpCode::from_bits(0xB), None);
        assert!(OpCode::Ping.is_control() && !OpCode::Text.is_control());
    }

    #[test]
    fn masking_matches_bytewise_xor_at_any_offset() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for len in [0, 1, 3, 7, 8, 9, 15, 16, 17, 100, 1000] {
            for offset in 0..4 {
                let mut masked = data[..len].to_vec();
                apply_mask(&mut masked, KEY, offset);
                let expected: Vec<u8> = data[..len]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ KEY[(i + offset) % 4])
                    .collect();
                assert_eq!(masked, expected, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn masking_piecewise_equals_whole() {
        let data: Vec<u8> = (0..77u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, KEY, 0);
        let mut pieces = data;
        let (a, b) = pieces.split_at_mut(13);
        apply_mask(a, KEY, 0);
        apply_mask(b, KEY, 13);
        assert_eq!(pieces, whole);
    }

    #[test]
    fn rfc_6455_masked_hello_example() {
        // RFC 6455 5.7: a single-frame masked text message "Hello".
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let frames = decode(&bytes, false).expect("valid frame");
        assert_eq!(
            frames,
            vec![Frame {
                fin: true,
                rsv1: false,
                opcode: OpCode::Text,
                payload: b"Hello".to_vec()
            }]
        );
        assert_eq!(client(OpCode::Text, b"Hello", true), bytes);
    }

    #[test]
    fn server_frame_length_encodings() {
        let cases: [(usize, &[u8]); 5] = [
            (0, &[0x82, 0x00]),
            (125, &[0x82, 125]),
            (126, &[0x82, 126, 0x00, 126]),
            (65535, &[0x82, 126, 0xff, 0xff]),
            (65536, &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for (len, head) in cases {
            let payload = vec![0xabu8; len];
            let mut out = Vec::new();
            encode_frame(&mut out, OpCode::Binary, &payload, true, false);
            assert_eq!(&out[..head.len()], head, "header for {len}");
            assert_eq!(out.len(), head.len() + len);
            // ...and a client frame of that length decodes back.
            let frames = decode(&client(OpCode::Binary, &payload, true), false).expect("valid");
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].payload, payload);
        }
    }

    #[test]
    fn server_frames_are_readable_by_a_server_frame_decoder() {
        let mut out = Vec::new();
        encode_frame(&mut out, OpCode::Text, b"abc", false, true);
        encode_frame(&mut out, OpCode::Continuation, b"def", true, false);
        encode_ping(&mut out, &[1u8; 200]);
        let mut decoder = FrameDecoder::for_server_frames(MAX, true);
        decoder.feed(&out);
        let frames = decode_all(&mut decoder).expect("valid");
        assert_eq!(frames.len(), 3);
        assert!(frames[0].rsv1 && !frames[0].fin);
        assert_eq!(frames[1].payload, b"def");
        assert_eq!(frames[2].payload.len(), MAX_CONTROL_PAYLOAD);
        // A masked frame is not what a server sends.
        let mut decoder = FrameDecoder::for_server_frames(MAX, false);
        decoder.feed(&client(OpCode::Text, b"x", true));
        assert_eq!(decoder.next_frame().map_err(|e| e.code), Err(1002));
    }

    #[test]
    fn close_encoding() {
        let mut out = Vec::new();
        encode_close(&mut out, 1000, "bye");
        assert_eq!(out, [0x88, 5, 0x03, 0xe8, b'b', b'y', b'e']);
        out.clear();
        encode_close(&mut out, close_code::NO_STATUS_RCVD, "ignored");
        assert_eq!(out, [0x88, 0]);
        out.clear();
        // 62 two-byte chars = 124 bytes: cut to 61 chars (122 bytes), not mid-char.
        let long = "é".repeat(62);
        encode_close(&mut out, 4000, &long);
        assert_eq!(out[1] as usize, 2 + 122);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }

    #[test]
    fn unmasked_client_frame_is_1002() {
        assert_eq!(error_code(&[0x81, 0x01, b'a']), 1002);
    }

    #[test]
    fn reserved_bits_are_1002() {
        for b0 in [0xC1u8, 0xA1, 0x91] {
            assert_eq!(error_code(&[b0, 0x80]), 1002, "{b0:#x}");
        }
        // With deflate negotiated, RSV1 is allowed on a first data frame only.
        assert!(decode(&[0xC1, 0x80, 0, 0, 0, 0], true).is_ok());
        assert_eq!(
            decode(&[0xA1, 0x80, 0, 0, 0, 0], true).map_err(|e| e.code),
            Err(1002)
        );
        assert_eq!(
            decode(&[0xC9, 0x80, 0, 0, 0, 0], true).map_err(|e| e.code),
            Err(1002),
            "compressed ping"
        );
        let mut s = Vec::new();
        encode_client_frame(&mut s, OpCode::Text, b"a", false, true, KEY);
        encode_client_frame(&mut s, OpCode::Continuation, b"b", true, true, KEY);
        assert_eq!(decode(&s, true).map_err(|e| e.code), Err(1002));
    }

    #[test]
    fn unknown_opcodes_are_1002() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(error_code(&[0x80 | op, 0x80]), 1002, "opcode {op}");
        }
    }

    #[test]
    fn oversized_or_fragmented_control_frames_are_1002() {
        assert_eq!(error_code(&client(OpCode::Ping, &[0u8; 126], true)), 1002);
        assert_eq!(error_code(&client(OpCode::Close, &[0u8; 126], true)), 1002);
        assert_eq!(error_code(&client(OpCode::Pong, b"x", false)), 1002);
        // 125 is fine; the error comes from the header alone.
        assert!(decode(&client(OpCode::Ping, &[0u8; 125], true), false).is_ok());
        assert_eq!(error_code(&[0x89, 0xFE]), 1002);
    }

    #[test]
    fn continuation_order_errors_are_1002() {
        assert_eq!(error_code(&client(OpCode::Continuation, b"x", true)), 1002);
        let mut s = client(OpCode::Text, b"a", false);
        s.extend(client(OpCode::Text, b"b", true));
        assert_eq!(error_code(&s), 1002);
        let mut s = client(OpCode::Binary, b"a", false);
        s.extend(client(OpCode::Continuation, b"b", true));
        s.extend(client(OpCode::Continuation, b"c", true));
        assert_eq!(error_code(&s), 1002);
        // Control frames between fragments are fine.
        let mut s = client(OpCode::Binary, b"a", false);
        s.extend(client(OpCode::Ping, b"p", true));
        s.extend(client(OpCode::Continuation, b"b", true));
        assert_eq!(decode(&s, false).expect("valid").len(), 3);
    }

    #[test]
    fn payload_over_max_size_is_1009() {
        let mut decoder = FrameDecoder::new(10, false);
        decoder.feed(&client(OpCode::Binary, &[0u8; 10], true));
        assert!(decoder.next_frame().expect("fits").is_some());
        decoder.feed(&client(OpCode::Binary, &[0u8; 11], true));
        assert_eq!(decoder.next_frame().map_err(|e| e.code), Err(1009));
        // Known from the length field, before any payload arrives.
        let mut decoder = FrameDecoder::new(MAX, false);
        decoder.feed(&[0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(decoder.next_frame().map_err(|e| e.code), Err(1009));
    }

    #[test]
    fn length_with_top_bit_set_is_1002() {
        assert_eq!(
            error_code(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
            1002
        );
    }

    #[test]
    fn errors_are_sticky() {
        let mut decoder = FrameDecoder::new(MAX, false);
        decoder.feed(&[0x81, 0x01, b'a']);
        let first = decoder.next_frame();
        decoder.feed(&client(OpCode::Text, b"ok", true));
        assert_eq!(decoder.next_frame(), first);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn errors_are_raised_from_the_header_before_the_payload_arrives() {
        let mut decoder = FrameDecoder::new(MAX, false);
        decoder.feed(&[0x81]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.feed(&[0x7E]); // unmasked, 16-bit length not yet here
        assert_eq!(decoder.next_frame().map_err(|e| e.code), Err(1002));
    }

    #[test]
    fn every_single_split_point_gives_identical_frames() {
        let (stream, big) = sample_stream();
        let (whole, err) = decode_chunked(&stream, &[], true);
        assert_eq!(err, None);
        assert_eq!(whole.len(), 11);
        // Every boundary, except that inside the big payload only its
        // first and last 64 bytes and every 997th are cut (debug builds).
        let interior = big.start + 64..big.end - 64;
        for cut in (0..=stream.len()).filter(|c| !interior.contains(c) || c % 997 == 0) {
            let (frames, err) = decode_chunked(&stream, &[cut], true);
            assert_eq!(err, None, "cut at {cut}");
            assert_eq!(frames, whole, "cut at {cut}");
        }
    }

    #[test]
    fn byte_at_a_time_and_every_pair_of_splits_in_small_frames() {
        let mut stream = client(OpCode::Text, b"Hi", false);
        stream.extend(client(OpCode::Ping, b"p", true));
        stream.extend(client(OpCode::Continuation, &[1u8; 130], true));
        stream.extend(client(OpCode::Close, &[0x03, 0xe8], true));
        let (whole, err) = decode_chunked(&stream, &[], false);
        assert_eq!(err, None);
        assert_eq!(whole.len(), 4);
        let every: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(
            decode_chunked(&stream, &every, false),
            (whole.clone(), None)
        );
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                assert_eq!(
                    decode_chunked(&stream, &[a, b], false),
                    (whole.clone(), None),
                    "cuts {a} {b}"
                );
            }
        }
    }

    #[test]
    fn invalid_stream_fails_identically_at_every_split_point() {
        let mut stream = client(OpCode::Text, b"a", false);
        stream.extend(client(OpCode::Ping, b"p", true));
        stream.extend(client(OpCode::Binary, b"b", true)); // not a continuation
        let whole = decode_chunked(&stream, &[], false);
        assert_eq!(whole.1.map(|e| e.code), Some(1002));
        for cut in 0..=stream.len() {
            let (frames, err) = decode_chunked(&stream, &[cut], false);
            assert_eq!((frames, err), (whole.0.clone(), whole.1), "cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn random_chunking_gives_identical_frames(
            cuts in proptest::collection::btree_set(0usize..71_000, 0..40)
        ) {
            let (stream, _) = sample_stream();
            let cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= stream.len()).collect();
            let whole = decode_chunked(&stream, &[], true);
            prop_assert_eq!(decode_chunked(&stream, &cuts, true), whole);
        }

        #[test]
        fn any_payload_round_trips(
            payload in proptest::collection::vec(any::<u8>(), 0..70_000),
            key in any::<[u8; 4]>(),
            binary in any::<bool>(),
        ) {
            let op = if binary { OpCode::Binary } else { OpCode::Text };
            let mut bytes = Vec::new();
            encode_client_frame(&mut bytes, op, &payload, true, false, key);
            let frames = decode(&bytes, false).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(frames.len(), 1);
            prop_assert_eq!(&frames[0].payload, &payload);
        }
    }
}
