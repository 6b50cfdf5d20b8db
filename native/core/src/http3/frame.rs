//! HTTP/3 frames (RFC 9114 §7): variable-length integers, the incremental reader of one
//! stream's frames, and the writers of the frames ruvicorn sends (public: bench/wsload's
//! HTTP/3 client writes its frames with them too).
//!
//! DATA payloads are passed on as they arrive, never buffered whole; unknown frame types
//! are skipped without being buffered either (§9: they MUST be ignored). Every other frame
//! is buffered up to a limit before it is parsed.

use bytes::{Buf, Bytes, BytesMut};

use super::codes;

pub const DATA: u64 = 0x0;
pub const HEADERS: u64 = 0x1;
pub(crate) const CANCEL_PUSH: u64 = 0x3;
pub const SETTINGS: u64 = 0x4;
pub(crate) const PUSH_PROMISE: u64 = 0x5;
pub(crate) const GOAWAY: u64 = 0x7;
pub(crate) const MAX_PUSH_ID: u64 = 0xd;

/// Frame types of HTTP/2 that HTTP/3 reserves: receiving one is H3_FRAME_UNEXPECTED.
const HTTP2_ONLY: [u64; 4] = [0x2, 0x6, 0x8, 0x9];

/// Settings identifiers (RFC 9114 §7.2.4.1, RFC 9204 §5).
pub(crate) const SETTINGS_QPACK_MAX_TABLE_CAPACITY: u64 = 0x1;
pub(crate) const SETTINGS_MAX_FIELD_SECTION_SIZE: u64 = 0x6;
pub(crate) const SETTINGS_QPACK_BLOCKED_STREAMS: u64 = 0x7;
/// HTTP/2 settings with no HTTP/3 meaning: receiving one is H3_SETTINGS_ERROR.
const HTTP2_SETTINGS: [u64; 4] = [0x2, 0x3, 0x4, 0x5];

/// Largest value of a QUIC variable-length integer.
pub const VARINT_MAX: u64 = (1 << 62) - 1;

/// Read a QUIC variable-length integer (RFC 9000 §16) from the front of `input` without
/// consuming it: the value and its length, or `None` if `input` is too short.
pub fn peek_varint(input: &[u8]) -> Option<(u64, usize)> {
    let first = *input.first()?;
    let len = 1usize << (first >> 6);
    let bytes = input.get(..len)?;
    let mut value = u64::from(first & 0x3f);
    for &b in &bytes[1..] {
        value = (value << 8) | u64::from(b);
    }
    Some((value, len))
}

/// Take a variable-length integer off the front of `input`.
pub(crate) fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let (value, len) = peek_varint(input)?;
    *input = &input[len..];
    Some(value)
}

/// Append `value` (at most [`VARINT_MAX`]) as a variable-length integer.
pub fn put_varint(out: &mut Vec<u8>, value: u64) {
    if value < 1 << 6 {
        out.push(value as u8);
    } else if value < 1 << 14 {
        out.extend_from_slice(&(value as u16 | 0x4000).to_be_bytes());
    } else if value < 1 << 30 {
        out.extend_from_slice(&(value as u32 | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&((value & VARINT_MAX) | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// Append one frame's type and length (its payload follows).
pub fn put_frame_head(out: &mut Vec<u8>, ty: u64, len: usize) {
    put_varint(out, ty);
    put_varint(out, len as u64);
}

/// One frame with its payload.
pub fn frame(ty: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 16);
    put_frame_head(&mut out, ty, payload.len());
    out.extend_from_slice(payload);
    out
}

/// A SETTINGS frame with `pairs`.
pub fn settings(pairs: &[(u64, u64)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for &(id, value) in pairs {
        put_varint(&mut payload, id);
        put_varint(&mut payload, value);
    }
    frame(SETTINGS, &payload)
}

/// Parse a SETTINGS payload: identifiers once each, none of HTTP/2's.
pub(crate) fn parse_settings(mut payload: &[u8]) -> Result<Vec<(u64, u64)>, u64> {
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    while !payload.is_empty() {
        let id = take_varint(&mut payload).ok_or(codes::FRAME_ERROR)?;
        let value = take_varint(&mut payload).ok_or(codes::FRAME_ERROR)?;
        if HTTP2_SETTINGS.contains(&id) || pairs.iter().any(|&(seen, _)| seen == id) {
            return Err(codes::SETTINGS_ERROR);
        }
        pairs.push((id, value));
    }
    Ok(pairs)
}

/// A payload that is exactly one variable-length integer (GOAWAY, MAX_PUSH_ID, CANCEL_PUSH).
pub(crate) fn parse_single_varint(mut payload: &[u8]) -> Result<u64, u64> {
    let value = take_varint(&mut payload).ok_or(codes::FRAME_ERROR)?;
    if payload.is_empty() {
        Ok(value)
    } else {
        Err(codes::FRAME_ERROR)
    }
}

/// What the reader found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// Part of a DATA frame's payload; an empty one marks the start of each DATA frame.
    Data(Bytes),
    /// A whole frame of a known type other than DATA.
    Frame { ty: u64, payload: Bytes },
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Head,
    Data(u64),
    Skip(u64),
    Payload(u64, usize),
}

/// The frame reader of one stream; the stream's bytes accumulate in the caller's buffer.
#[derive(Debug, Default)]
pub struct Reader {
    state: State,
}

impl Reader {
    /// Whether the reader stands between frames (a stream may only end there).
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Head)
    }

    /// The next item out of `buf`, consuming what it used; `Ok(None)` until more bytes come.
    /// A known frame whose payload exceeds `limit` is an error (H3_EXCESSIVE_LOAD).
    pub fn next(&mut self, buf: &mut BytesMut, limit: u64) -> Result<Option<Item>, u64> {
        loop {
            match self.state {
                State::Head => {
                    let Some((ty, ty_len)) = peek_varint(buf) else {
                        return Ok(None);
                    };
                    let Some((len, len_len)) = peek_varint(&buf[ty_len..]) else {
                        return Ok(None);
                    };
                    buf.advance(ty_len + len_len);
                    if HTTP2_ONLY.contains(&ty) {
                        return Err(codes::FRAME_UNEXPECTED);
                    }
                    match ty {
                        DATA => {
                            self.state = State::Data(len);
                            return Ok(Some(Item::Data(Bytes::new())));
                        }
                        HEADERS | CANCEL_PUSH | SETTINGS | PUSH_PROMISE | GOAWAY | MAX_PUSH_ID => {
                            if len > limit {
                                return Err(codes::EXCESSIVE_LOAD);
                            }
                            let len = usize::try_from(len).map_err(|_| codes::EXCESSIVE_LOAD)?;
                            self.state = State::Payload(ty, len);
                        }
                        _ => self.state = State::Skip(len),
                    }
                }
                State::Data(left) => {
                    if left == 0 {
                        self.state = State::Head;
                        continue;
                    }
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = left.min(buf.len() as u64) as usize;
                    self.state = State::Data(left - take as u64);
                    return Ok(Some(Item::Data(buf.split_to(take).freeze())));
                }
                State::Skip(left) => {
                    let take = left.min(buf.len() as u64) as usize;
                    buf.advance(take);
                    if left > take as u64 {
                        self.state = State::Skip(left - take as u64);
                        return Ok(None);
                    }
                    self.state = State::Head;
                }
                State::Payload(ty, len) => {
                    if buf.len() < len {
                        return Ok(None);
                    }
                    self.state = State::Head;
                    let payload = buf.split_to(len).freeze();
                    return Ok(Some(Item::Frame { ty, payload }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(bytes: &[u8], limit: u64) -> Result<Vec<Item>, u64> {
        let mut reader = Reader::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // Byte by byte: every split point must work.
        for &b in bytes {
            buf.extend_from_slice(&[b]);
            while let Some(item) = reader.next(&mut buf, limit)? {
                out.push(item);
            }
        }
        Ok(out)
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        for value in [
            0,
            63,
            64,
            16_383,
            16_384,
            (1 << 30) - 1,
            1 << 30,
            VARINT_MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(peek_varint(&out), Some((value, out.len())));
        }
        // RFC 9000 A.1's examples.
        assert_eq!(
            peek_varint(&[0x9d, 0x7f, 0x3e, 0x7d]),
            Some((494_878_333, 4))
        );
        assert_eq!(peek_varint(&[0x7b, 0xbd]), Some((15_293, 2)));
        assert_eq!(peek_varint(&[0x7b]), None);
    }

    #[test]
    fn data_is_streamed_and_unknown_frames_skipped() {
        let mut bytes = frame(HEADERS, b"hd");
        bytes.extend(frame(0x21, b"grease frame payload"));
        bytes.extend(frame(DATA, b"abc"));
        bytes.extend(frame(DATA, b""));
        let got = items(&bytes, 100).expect("valid");
        let data: Vec<u8> = got
            .iter()
            .filter_map(|i| match i {
                Item::Data(d) => Some(d.to_vec()),
                Item::Frame { .. } => None,
            })
            .flatten()
            .collect();
        assert_eq!(data, b"abc");
        assert_eq!(
            got[0],
            Item::Frame {
                ty: HEADERS,
                payload: Bytes::from_static(b"hd")
            }
        );
        // Two DATA frames: two start markers.
        let starts = got
            .iter()
            .filter(|i| **i == Item::Data(Bytes::new()))
            .count();
        assert_eq!(starts, 2);
    }

    #[test]
    fn http2_frame_types_and_oversized_frames_are_errors() {
        assert_eq!(items(&frame(0x9, b""), 100), Err(codes::FRAME_UNEXPECTED));
        assert_eq!(
            items(&frame(HEADERS, &[0; 101]), 100),
            Err(codes::EXCESSIVE_LOAD)
        );
    }

    proptest::proptest! {
        /// Arbitrary bytes, split anywhere, give items or an error code, never a panic,
        /// and DATA payload bytes are never more than the input.
        #[test]
        fn arbitrary_streams_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let data: usize = match items(&bytes, 64) {
                Ok(items) => items
                    .iter()
                    .map(|i| match i {
                        Item::Data(d) => d.len(),
                        Item::Frame { payload, .. } => payload.len(),
                    })
                    .sum(),
                Err(code) => {
                    proptest::prop_assert!(
                        [codes::FRAME_UNEXPECTED, codes::EXCESSIVE_LOAD].contains(&code)
                    );
                    0
                }
            };
            proptest::prop_assert!(data <= bytes.len());
        }
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(parse_settings(&[0x06, 0x40, 0x64]), Ok(vec![(6, 100)]));
        assert_eq!(
            parse_settings(&[0x06, 0x01, 0x06, 0x02]),
            Err(codes::SETTINGS_ERROR)
        );
        assert_eq!(parse_settings(&[0x02, 0x01]), Err(codes::SETTINGS_ERROR));
        assert_eq!(parse_settings(&[0x06]), Err(codes::FRAME_ERROR));
        assert_eq!(parse_single_varint(&[0x04]), Ok(4));
        assert_eq!(parse_single_varint(&[0x04, 0x00]), Err(codes::FRAME_ERROR));
    }
}
