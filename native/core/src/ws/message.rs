//! Messages: fragment assembly, decompression, UTF-8 and close validation
//! (RFC 6455 5.4, 5.5, 7.4, 8.1), and the server's message encoder.

use super::close_code;
use super::deflate::{DeflateParams, Deflater, Inflater};
use super::frame::{encode_frame, Frame, FrameDecoder, OpCode, MAX_CONTROL_PAYLOAD};
use super::WsError;

/// A scratch compression buffer bigger than this is not kept between messages.
const SCRATCH_KEEP: usize = 1 << 20;

/// A complete data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, already validated as UTF-8.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

/// What a close frame said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// The status code; 1005 ([`close_code::NO_STATUS_RCVD`]) when the frame
    /// had no payload.
    pub code: u16,
    /// The reason text (possibly empty).
    pub reason: String,
}

/// What the peer sent, once a message or control frame is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A data message.
    Message(Message),
    /// A ping: answer with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// A pong (an answer to our ping, or unsolicited).
    Pong(Vec<u8>),
    /// The peer started (or answered) the closing handshake.
    Close(CloseReason),
}

/// Whether a close frame may carry `code` (RFC 6455 7.4).
///
/// 1004, 1005, 1006 and 1015 are reserved or never sent; 1016-2999 are
/// reserved for future protocol versions; 3000-4999 belong to libraries and
/// applications.
pub const fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Reads a close frame's payload: empty, or a valid code and a UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<CloseReason, WsError> {
    match payload {
        [] => Ok(CloseReason {
            code: close_code::NO_STATUS_RCVD,
            reason: String::new(),
        }),
        [_] => Err(WsError::protocol("close frame with a 1-byte payload")),
        [hi, lo, rest @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(code) {
                return Err(WsError::protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(rest)
                .map_err(|_| WsError::invalid_payload("close reason is not UTF-8"))?;
            Ok(CloseReason {
                code,
                reason: reason.to_owned(),
            })
        }
    }
}

fn not_utf8() -> WsError {
    WsError::invalid_payload("text message is not UTF-8")
}

/// A message whose last fragment has not arrived yet.
#[derive(Debug)]
struct Partial {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
    /// `data[..checked]` is valid UTF-8 (text only).
    checked: usize,
}

impl Partial {
    /// Validates the bytes added since the last call, allowing a code point
    /// to be cut at the end: an invalid byte fails the message at once, not
    /// when its last fragment arrives.
    fn check_utf8_prefix(&mut self) -> Result<(), WsError> {
        match std::str::from_utf8(&self.data[self.checked..]) {
            Ok(_) => {
                self.checked = self.data.len();
                Ok(())
            }
            Err(e) if e.error_len().is_none() => {
                self.checked += e.valid_up_to();
                Ok(())
            }
            Err(_) => Err(not_utf8()),
        }
    }
}

fn finish(text: bool, data: Vec<u8>) -> Result<Message, WsError> {
    if text {
        String::from_utf8(data)
            .map(Message::Text)
            .map_err(|_| not_utf8())
    } else {
        Ok(Message::Binary(data))
    }
}

/// Joins frames into messages and checks what one frame alone cannot show.
///
/// The frame order rules are also checked here, so an assembler is safe to
/// use behind any decoder.
#[derive(Debug)]
pub struct MessageAssembler {
    max_size: usize,
    inflater: Option<Inflater>,
    partial: Option<Partial>,
}

impl MessageAssembler {
    /// `max_size` bounds a whole message after decompression (1009 beyond
    /// it); `deflate` is the agreed permessage-deflate, if any.
    pub fn new(max_size: usize, deflate: Option<&DeflateParams>) -> Self {
        Self {
            max_size,
            inflater: deflate.map(Inflater::new),
            partial: None,
        }
    }

    /// A decoder that reads what a server sends with `deflate`: the mirror
    /// of the client side, for tests.
    #[cfg(test)]
    pub fn for_server_messages(max_size: usize, deflate: Option<&DeflateParams>) -> Self {
        let mirrored = deflate.map(|p| DeflateParams {
            client_no_context_takeover: p.server_no_context_takeover,
            client_max_window_bits: p.server_max_window_bits,
            ..*p
        });
        Self::new(max_size, mirrored.as_ref())
    }

    /// Bytes held for the message being assembled.
    pub fn buffered(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.data.len())
    }

    /// Takes one frame; returns an event when it completes one.
    pub fn push(&mut self, frame: Frame) -> Result<Option<Event>, WsError> {
        let Frame {
            fin,
            rsv1,
            opcode,
            payload,
        } = frame;
        match opcode {
            OpCode::Close | OpCode::Ping | OpCode::Pong => {
                if !fin {
                    return Err(WsError::protocol("fragmented control frame"));
                }
                if payload.len() > MAX_CONTROL_PAYLOAD {
                    return Err(WsError::protocol("control frame too long"));
                }
                if rsv1 {
                    return Err(WsError::protocol("compressed control frame"));
                }
                return Ok(Some(match opcode {
                    OpCode::Ping => Event::Ping(payload),
                    OpCode::Pong => Event::Pong(payload),
                    _ => Event::Close(parse_close_payload(&payload)?),
                }));
            }
            OpCode::Text | OpCode::Binary => {
                if self.partial.is_some() {
                    return Err(WsError::protocol("new message inside a fragmented message"));
                }
                if rsv1 && self.inflater.is_none() {
                    return Err(WsError::protocol("reserved bit set without extension"));
                }
                let text = opcode == OpCode::Text;
                if fin && !rsv1 {
                    // The common case: one uncompressed frame, no copy.
                    if payload.len() > self.max_size {
                        return Err(WsError::too_big("message too big"));
                    }
                    return finish(text, payload).map(|m| Some(Event::Message(m)));
                }
                self.partial = Some(Partial {
                    text,
                    compressed: rsv1,
                    data: Vec::new(),
                    checked: 0,
                });
            }
            OpCode::Continuation => {
                if self.partial.is_none() {
                    return Err(WsError::protocol("continuation frame without a message"));
                }
                if rsv1 {
                    return Err(WsError::protocol("compressed bit on continuation frame"));
                }
            }
        }
        let Some(partial) = self.partial.as_mut() else {
            return Err(WsError::protocol("continuation frame without a message"));
        };
        if partial.compressed {
            let Some(inflater) = self.inflater.as_mut() else {
                return Err(WsError::protocol("reserved bit set without extension"));
            };
            inflater.decompress(&payload, &mut partial.data, self.max_size, fin)?;
        } else {
            if payload.len() > self.max_size.saturating_sub(partial.data.len()) {
                return Err(WsError::too_big("message too big"));
            }
            if partial.data.is_empty() {
                partial.data = payload;
            } else {
                partial.data.extend_from_slice(&payload);
            }
        }
        if !fin {
            if partial.text {
                partial.check_utf8_prefix()?;
            }
            return Ok(None);
        }
        let Some(Partial { text, data, .. }) = self.partial.take() else {
            return Ok(None);
        };
        finish(text, data).map(|m| Some(Event::Message(m)))
    }
}

/// Everything needed to read a WebSocket connection: bytes in, events out.
///
/// Feed what the socket delivered, then call [`next_event`](Self::next_event)
/// until `Ok(None)`. An `Err` is final: send [`super::frame::encode_close`]
/// with its code and reason, and read no further.
#[derive(Debug)]
pub struct WsReader {
    decoder: FrameDecoder,
    assembler: MessageAssembler,
    error: Option<WsError>,
}

impl WsReader {
    /// Reads client frames; `max_size` bounds frames and whole messages,
    /// `deflate` is the agreed permessage-deflate, if any.
    pub fn new(max_size: usize, deflate: Option<&DeflateParams>) -> Self {
        Self {
            decoder: FrameDecoder::new(max_size, deflate.is_some()),
            assembler: MessageAssembler::new(max_size, deflate),
            error: None,
        }
    }

    /// Appends bytes read from the socket.
    pub fn feed(&mut self, data: &[u8]) {
        self.decoder.feed(data);
    }

    /// Bytes received and held (undecoded frames plus a partial message).
    pub fn buffered(&self) -> usize {
        self.decoder.buffered() + self.assembler.buffered()
    }

    /// The next complete event, or `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, WsError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        loop {
            let step = match self.decoder.next_frame() {
                Ok(Some(frame)) => self.assembler.push(frame),
                Ok(None) => return Ok(None),
                Err(error) => Err(error),
            };
            match step {
                Ok(Some(event)) => return Ok(Some(event)),
                Ok(None) => {}
                Err(error) => {
                    self.error = Some(error);
                    return Err(error);
                }
            }
        }
    }
}

/// Writes the server's data messages, compressed when deflate was agreed.
#[derive(Debug)]
pub struct MessageEncoder {
    deflater: Option<Deflater>,
    scratch: Vec<u8>,
}

impl MessageEncoder {
    /// `deflate` is the agreed permessage-deflate, if any.
    pub fn new(deflate: Option<&DeflateParams>) -> Self {
        Self {
            deflater: deflate.map(Deflater::new),
            scratch: Vec::new(),
        }
    }

    /// Whether data messages are compressed.
    pub fn compresses(&self) -> bool {
        self.deflater.is_some()
    }

    /// Appends a text message as one frame.
    pub fn text(&mut self, out: &mut Vec<u8>, text: &str) -> Result<(), WsError> {
        self.encode(out, OpCode::Text, text.as_bytes())
    }

    /// Appends a binary message as one frame.
    pub fn binary(&mut self, out: &mut Vec<u8>, data: &[u8]) -> Result<(), WsError> {
        self.encode(out, OpCode::Binary, data)
    }

    /// Appends a message as one frame; control frames are never compressed.
    pub fn encode(
        &mut self,
        out: &mut Vec<u8>,
        opcode: OpCode,
        payload: &[u8],
    ) -> Result<(), WsError> {
        let deflater = match &mut self.deflater {
            Some(deflater) if !opcode.is_control() => deflater,
            _ => {
                encode_frame(out, opcode, payload, true, false);
                return Ok(());
            }
        };
        self.scratch.clear();
        let result = deflater.compress(payload, &mut self.scratch);
        if result.is_ok() {
            encode_frame(out, opcode, &self.scratch, true, true);
        }
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::new();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::deflate::negotiate_deflate;
    use crate::ws::deflate::parse_deflate_offers;
    use crate::ws::frame::{encode_client_frame, encode_close};

    const KEY: [u8; 4] = [1, 2, 3, 4];
    const MAX: usize = 1 << 20;

    fn frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], fin: bool) {
        encode_client_frame(out, opcode, payload, fin, false, KEY);
    }

    fn events(reader: &mut WsReader) -> Result<Vec<Event>, WsError> {
        let mut all = Vec::new();
        while let Some(event) = reader.next_event()? {
            all.push(event);
        }
        Ok(all)
    }

    fn read(bytes: &[u8], deflate: Option<&DeflateParams>) -> Result<Vec<Event>, WsError> {
        let mut reader = WsReader::new(MAX, deflate);
        reader.feed(bytes);
        events(&mut reader)
    }

    fn close_result(payload: &[u8]) -> Result<CloseReason, u16> {
        let mut bytes = Vec::new();
        frame(&mut bytes, OpCode::Close, payload, true);
        match read(&bytes, None) {
            Ok(mut e) => match e.pop() {
                Some(Event::Close(reason)) => Ok(reason),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(e.code),
        }
    }

    fn text(s: &str) -> Event {
        Event::Message(Message::Text(s.to_owned()))
    }

    fn deflate() -> DeflateParams {
        DeflateParams::default()
    }

    #[test]
    fn close_codes() {
        assert_eq!(
            close_result(&[]),
            Ok(CloseReason {
                code: 1005,
                reason: String::new()
            })
        );
        assert_eq!(close_result(&[0x03]), Err(1002));
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000,
            4999,
        ] {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice("bye ✓".as_bytes());
            assert_eq!(
                close_result(&payload),
                Ok(CloseReason {
                    code,
                    reason: "bye ✓".to_owned()
                }),
                "{code}"
            );
        }
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert_eq!(close_result(&code.to_be_bytes()), Err(1002), "{code}");
        }
        assert_eq!(close_result(&[0x03, 0xe8, 0xff, b'a']), Err(1007));
        // Cut inside a code point is invalid too.
        assert_eq!(close_result(&[0x03, 0xe8, 0xe2, 0x82]), Err(1007));
    }

    #[test]
    fn close_frame_round_trip_through_encoder() {
        let mut out = Vec::new();
        encode_close(&mut out, 4001, "done");
        let mut decoder = FrameDecoder::for_server_frames(MAX, false);
        decoder.feed(&out);
        let f = decoder.next_frame().expect("valid").expect("complete");
        assert_eq!(
            parse_close_payload(&f.payload),
            Ok(CloseReason {
                code: 4001,
                reason: "done".to_owned()
            })
        );
    }

    #[test]
    fn control_frames_become_events() {
        let mut bytes = Vec::new();
        frame(&mut bytes, OpCode::Text, b"Hel", false);
        frame(&mut bytes, OpCode::Ping, b"ping", true);
        frame(&mut bytes, OpCode::Pong, b"", true);
        frame(&mut bytes, OpCode::Continuation, b"lo", true);
        frame(&mut bytes, OpCode::Binary, &[0xff, 0xfe], true);
        assert_eq!(
            read(&bytes, None),
            Ok(vec![
                Event::Ping(b"ping".to_vec()),
                Event::Pong(Vec::new()),
                text("Hello"),
                Event::Message(Message::Binary(vec![0xff, 0xfe])),
            ])
        );
    }

    #[test]
    fn code_point_split_across_fragments_is_valid() {
        // "€" is e2 82 ac; "😀" is f0 9f 98 80: cut them at every byte.
        let message = "a€b😀c";
        let bytes = message.as_bytes();
        for cut1 in 0..=bytes.len() {
            for cut2 in cut1..=bytes.len() {
                let mut s = Vec::new();
                frame(&mut s, OpCode::Text, &bytes[..cut1], false);
                frame(&mut s, OpCode::Continuation, &bytes[cut1..cut2], false);
                frame(&mut s, OpCode::Continuation, &bytes[cut2..], true);
                assert_eq!(read(&s, None), Ok(vec![text(message)]), "{cut1} {cut2}");
            }
        }
    }

    #[test]
    fn invalid_utf8_fails_fast_across_fragments() {
        // A surrogate (ed a0 80) split across fragments: the error comes at
        // the fragment that makes it certain, before the message ends.
        let mut reader = WsReader::new(MAX, None);
        let mut s = Vec::new();
        frame(&mut s, OpCode::Text, "κόσμε".as_bytes(), false);
        frame(&mut s, OpCode::Continuation, &[0xed], false);
        reader.feed(&s);
        assert_eq!(reader.next_event(), Ok(None));
        let mut s = Vec::new();
        frame(&mut s, OpCode::Continuation, &[0xa0, 0x80], false);
        reader.feed(&s);
        assert_eq!(reader.next_event().map_err(|e| e.code), Err(1007));
        // Sticky.
        assert_eq!(reader.next_event().map_err(|e| e.code), Err(1007));
    }

    #[test]
    fn invalid_utf8_cases_are_1007() {
        let cases: [&[&[u8]]; 5] = [
            &[b"ok", &[0xff]],
            &[&[0xf4, 0x90], &[0x80, 0x80]], // beyond U+10FFFF
            &[b"abc", &[0xe2, 0x82]],        // cut off at the end
            &[&[0xc0, 0xaf]],                // overlong
            &[&[0xe2], &[0x28], &[0xa1]],
        ];
        for parts in cases {
            let mut s = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                let op = if i == 0 {
                    OpCode::Text
                } else {
                    OpCode::Continuation
                };
                frame(&mut s, op, part, i + 1 == parts.len());
            }
            assert_eq!(read(&s, None).map_err(|e| e.code), Err(1007), "{parts:?}");
        }
        // Binary messages are not checked.
        let mut s = Vec::new();
        frame(&mut s, OpCode::Binary, &[0xff], false);
        frame(&mut s, OpCode::Continuation, &[0xc0], true);
        assert!(read(&s, None).is_ok());
    }

    #[test]
    fn fragment_order_is_checked_by_the_assembler_too() {
        let f = |opcode, fin| Frame {
            fin,
            rsv1: false,
            opcode,
            payload: b"x".to_vec(),
        };
        let mut a = MessageAssembler::new(MAX, None);
        assert_eq!(
            a.push(f(OpCode::Continuation, true)).map_err(|e| e.code),
            Err(1002)
        );
        let mut a = MessageAssembler::new(MAX, None);
        assert_eq!(a.push(f(OpCode::Text, false)), Ok(None));
        assert_eq!(
            a.push(f(OpCode::Binary, true)).map_err(|e| e.code),
            Err(1002)
        );
        let mut a = MessageAssembler::new(MAX, None);
        assert_eq!(
            a.push(f(OpCode::Ping, false)).map_err(|e| e.code),
            Err(1002)
        );
        let mut a = MessageAssembler::new(MAX, None);
        let mut compressed = f(OpCode::Text, true);
        compressed.rsv1 = true;
        assert_eq!(a.push(compressed).map_err(|e| e.code), Err(1002));
    }

    #[test]
    fn message_size_limit_counts_all_fragments() {
        let mut reader = WsReader::new(10, None);
        let mut s = Vec::new();
        frame(&mut s, OpCode::Binary, &[0; 6], false);
        frame(&mut s, OpCode::Continuation, &[0; 4], true);
        frame(&mut s, OpCode::Binary, &[0; 6], false);
        frame(&mut s, OpCode::Continuation, &[0; 5], true);
        reader.feed(&s);
        assert!(matches!(reader.next_event(), Ok(Some(Event::Message(_)))));
        assert_eq!(reader.next_event().map_err(|e| e.code), Err(1009));
    }

    #[test]
    fn rfc_7692_frames_decode() {
        // RFC 7692 7.2.3.1: "Hello" in one frame, then in two fragments
        // (server frames, so unmasked).
        let p = deflate();
        let mut bytes = vec![0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        bytes.extend_from_slice(&[0x41, 0x03, 0xf2, 0x48, 0xcd]);
        bytes.extend_from_slice(&[0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]);
        let mut decoder = FrameDecoder::for_server_frames(MAX, true);
        let mut assembler = MessageAssembler::for_server_messages(MAX, Some(&p));
        decoder.feed(&bytes);
        let mut got = Vec::new();
        while let Some(f) = decoder.next_frame().expect("valid") {
            got.extend(assembler.push(f).expect("valid"));
        }
        assert_eq!(got, vec![text("Hello"), text("Hello")]);
        // And our encoder writes exactly that first frame.
        let mut out = Vec::new();
        MessageEncoder::new(Some(&p))
            .text(&mut out, "Hello")
            .expect("compress");
        assert_eq!(out, bytes[..9]);
    }

    #[test]
    fn compressed_text_split_across_fragments_and_code_points() {
        let (params, _) = negotiate_deflate(&parse_deflate_offers(&["permessage-deflate"]), true)
            .expect("agreed");
        // The client's compressor follows the client side of the params.
        let mut client = Deflater::new(&DeflateParams {
            server_no_context_takeover: params.client_no_context_takeover,
            server_max_window_bits: params.client_max_window_bits,
            ..params
        });
        let message = "ünïcödé ✓ 😀 ".repeat(500);
        let mut reader = WsReader::new(MAX, Some(&params));
        for round in 0..3 {
            let mut compressed = Vec::new();
            client
                .compress(message.as_bytes(), &mut compressed)
                .expect("compress");
            let mut s = Vec::new();
            let parts: Vec<&[u8]> = compressed.chunks(7 + round * 50).collect();
            for (i, part) in parts.iter().enumerate() {
                let op = if i == 0 {
                    OpCode::Text
                } else {
                    OpCode::Continuation
                };
                encode_client_frame(&mut s, op, part, i + 1 == parts.len(), i == 0, KEY);
            }
            frame(&mut s, OpCode::Text, b"plain", true);
            reader.feed(&s);
            assert_eq!(events(&mut reader), Ok(vec![text(&message), text("plain")]));
        }
    }

    #[test]
    fn compressed_invalid_utf8_is_1007() {
        let p = deflate();
        let mut client = Deflater::new(&p);
        let mut c = Vec::new();
        client
            .compress(&[b'a', 0xff, b'b'], &mut c)
            .expect("compress");
        let mut s = Vec::new();
        encode_client_frame(&mut s, OpCode::Text, &c, true, true, KEY);
        assert_eq!(read(&s, Some(&p)).map_err(|e| e.code), Err(1007));
    }

    #[test]
    fn compressed_message_over_max_size_is_1009() {
        let p = deflate();
        let mut client = Deflater::new(&p);
        let mut bomb = Vec::new();
        client
            .compress(&vec![b'a'; 4 * MAX], &mut bomb)
            .expect("compress");
        assert!(bomb.len() < MAX / 100);
        let mut s = Vec::new();
        encode_client_frame(&mut s, OpCode::Binary, &bomb, true, true, KEY);
        assert_eq!(read(&s, Some(&p)).map_err(|e| e.code), Err(1009));
    }

    #[test]
    fn rsv1_without_negotiation_is_1002() {
        let mut s = Vec::new();
        encode_client_frame(&mut s, OpCode::Text, &[0xf2, 0x48], true, true, KEY);
        assert_eq!(read(&s, None).map_err(|e| e.code), Err(1002));
    }

    #[test]
    fn encoder_round_trips_with_every_parameter_set() {
        let messages = ["Hello", "", "ruvicorn ruvicorn ruvicorn", "Hello"];
        for offer in [
            "permessage-deflate",
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
        ] {
            let (p, _) = negotiate_deflate(&parse_deflate_offers(&[offer]), true).expect("agreed");
            let mut encoder = MessageEncoder::new(Some(&p));
            assert!(encoder.compresses());
            let mut out = Vec::new();
            for m in messages {
                encoder.text(&mut out, m).expect("compress");
            }
            encoder.binary(&mut out, &[0, 1, 2]).expect("compress");
            encoder.encode(&mut out, OpCode::Ping, b"p").expect("ping");
            let mut decoder = FrameDecoder::for_server_frames(MAX, true);
            let mut assembler = MessageAssembler::for_server_messages(MAX, Some(&p));
            decoder.feed(&out);
            let mut got = Vec::new();
            while let Some(f) = decoder.next_frame().expect("valid") {
                assert_eq!(f.rsv1, !f.opcode.is_control());
                got.extend(assembler.push(f).expect("valid"));
            }
            let mut want: Vec<Event> = messages.iter().map(|m| text(m)).collect();
            want.push(Event::Message(Message::Binary(vec![0, 1, 2])));
            want.push(Event::Ping(b"p".to_vec()));
            assert_eq!(got, want, "{offer}");
        }
        // Without deflate nothing is compressed.
        let mut out = Vec::new();
        let mut encoder = MessageEncoder::new(None);
        encoder.text(&mut out, "Hello").expect("plain");
        assert_eq!(out, [0x81, 5, b'H', b'e', b'l', b'l', b'o']);
    }

    #[test]
    fn reader_events_identical_at_every_split_point_with_deflate() {
        let p = deflate();
        let mut client = Deflater::new(&p);
        let mut s = Vec::new();
        for m in ["Hello", "Hello", "wörld wörld wörld"] {
            let mut c = Vec::new();
            client.compress(m.as_bytes(), &mut c).expect("compress");
            let (a, b) = c.split_at(c.len() / 2);
            encode_client_frame(&mut s, OpCode::Text, a, false, true, KEY);
            frame(&mut s, OpCode::Ping, b"x", true);
            encode_client_frame(&mut s, OpCode::Continuation, b, true, false, KEY);
        }
        frame(&mut s, OpCode::Close, &[0x03, 0xe8], true);
        let whole = read(&s, Some(&p)).expect("valid");
        assert_eq!(whole.len(), 7);
        for cut in 0..=s.len() {
            let mut reader = WsReader::new(MAX, Some(&p));
            reader.feed(&s[..cut]);
            let mut got = events(&mut reader).expect("valid");
            reader.feed(&s[cut..]);
            got.extend(events(&mut reader).expect("valid"));
            assert_eq!(got, whole, "cut at {cut}");
            assert_eq!(reader.buffered(), 0);
        }
    }
}
