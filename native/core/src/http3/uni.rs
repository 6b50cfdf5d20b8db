//! The peer's unidirectional streams (RFC 9114 §6.2), sans-IO: its control stream, its
//! QPACK encoder and decoder streams, and any other type, which is to be refused and
//! ignored. The connection appends what QUIC delivers to [`Uni`] and calls
//! [`Uni::parse`]; the fuzz target `h3_uni` drives it the same way.

use bytes::{Buf, BytesMut};

use super::frame::{self, Item, Reader};
use super::{codes, qpack};

const CONTROL: u64 = 0x00;
const PUSH: u64 = 0x01;
const ENCODER: u64 = 0x02;
const DECODER: u64 = 0x03;

/// Bytes buffered per critical stream before they must parse: more is H3_EXCESSIVE_LOAD.
pub const UNI_BUFFER: usize = 64 * 1024;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The stream type has not arrived yet.
    #[default]
    Pending,
    Control {
        settings: bool,
    },
    Encoder,
    Decoder,
    /// A type ruvicorn does not know (§6.2.3); its bytes are dropped.
    Ignored,
}

/// Which critical streams the peer opened: control, QPACK encoder, QPACK decoder. One
/// per connection, shared by its streams: a second of a kind is H3_STREAM_CREATION_ERROR.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PeerStreams([bool; 3]);

/// What [`Uni::parse`] found acceptable, in order (unknown frame types are skipped
/// silently and not reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// The control stream's first frame, as (identifier, value) pairs.
    Settings(Vec<(u64, u64)>),
    /// GOAWAY, MAX_PUSH_ID or CANCEL_PUSH on the control stream, with its one value.
    Frame { ty: u64, value: u64 },
    /// Set Dynamic Table Capacity on the encoder stream (always 0 once accepted).
    Capacity(u64),
    /// A decoder stream instruction (Stream Cancellation): the stream it names.
    Cancel(u64),
}

/// Where a stream stands after [`Uni::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Its type has not arrived yet, or it is a critical stream with nothing wrong so far.
    Open,
    /// Its type is one ruvicorn does not know (§6.2.3): stop it and forget it.
    Unknown,
}

/// One peer-initiated unidirectional stream: its type, the bytes not parsed yet and the
/// control stream's frame reader.
#[derive(Debug)]
pub struct Uni {
    kind: Kind,
    buf: BytesMut,
    reader: Reader,
    bound: usize,
}

impl Default for Uni {
    fn default() -> Self {
        Self::new(UNI_BUFFER)
    }
}

impl Uni {
    /// A stream that buffers at most `bound` unparsed bytes ([`UNI_BUFFER`] by default).
    pub fn new(bound: usize) -> Self {
        Self {
            kind: Kind::Pending,
            buf: BytesMut::new(),
            reader: Reader::default(),
            bound,
        }
    }

    /// Append as much of `bytes` as fits under the bound; returns how many were taken.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let room = self.bound.saturating_sub(self.buf.len());
        let take = room.min(bytes.len());
        self.buf.extend_from_slice(&bytes[..take]);
        take
    }

    /// The buffer QUIC reads into, and how much it may hold.
    pub(crate) fn buf_mut(&mut self) -> (&mut BytesMut, usize) {
        (&mut self.buf, self.bound)
    }

    /// Bytes received and not parsed yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The buffer is at its bound with nothing more to parse: the stream is stuck.
    pub fn is_full(&self) -> bool {
        self.buf.len() >= self.bound
    }

    /// Whether the stream is a control, encoder or decoder stream, which must never close
    /// (§6.2.1, RFC 9204 §4.2). A stream whose type has not arrived is not.
    pub fn is_critical(&self) -> bool {
        matches!(
            self.kind,
            Kind::Control { .. } | Kind::Encoder | Kind::Decoder
        )
    }

    /// Parse what is buffered: the stream type first, then frames or instructions, each
    /// reported to `accepted`. `limit` bounds a control frame's payload. An error is an
    /// HTTP/3 or QPACK connection error code; the stream is not to be parsed after it.
    pub fn parse(
        &mut self,
        peers: &mut PeerStreams,
        limit: u64,
        mut accepted: impl FnMut(Accepted),
    ) -> Result<Status, u64> {
        if self.kind == Kind::Pending {
            let Some((ty, len)) = frame::peek_varint(&self.buf) else {
                return Ok(Status::Open);
            };
            self.buf.advance(len);
            let (slot, kind) = match ty {
                CONTROL => (0, Kind::Control { settings: false }),
                ENCODER => (1, Kind::Encoder),
                DECODER => (2, Kind::Decoder),
                // §6.2.2: only servers push.
                PUSH => return Err(codes::STREAM_CREATION_ERROR),
                _ => (usize::MAX, Kind::Ignored),
            };
            if let Some(seen) = peers.0.get_mut(slot) {
                if std::mem::replace(seen, true) {
                    return Err(codes::STREAM_CREATION_ERROR);
                }
            }
            self.kind = kind;
        }
        match &mut self.kind {
            Kind::Control { settings } => {
                while let Some(item) = self.reader.next(&mut self.buf, limit)? {
                    accepted(control_frame(item, settings)?);
                }
                Ok(Status::Open)
            }
            Kind::Encoder => encoder_instructions(&mut self.buf, accepted).map(|()| Status::Open),
            Kind::Decoder => decoder_instructions(&mut self.buf, accepted).map(|()| Status::Open),
            Kind::Ignored => {
                self.buf.clear();
                Ok(Status::Unknown)
            }
            Kind::Pending => Ok(Status::Open),
        }
    }
}

/// One frame on the peer's control stream (§6.2.1, §7.2).
fn control_frame(item: Item, settings: &mut bool) -> Result<Accepted, u64> {
    let Item::Frame { ty, payload } = item else {
        // DATA: never allowed on the control stream (§7.2.1).
        return Err(if *settings {
            codes::FRAME_UNEXPECTED
        } else {
            codes::MISSING_SETTINGS
        });
    };
    if !*settings {
        if ty != frame::SETTINGS {
            return Err(codes::MISSING_SETTINGS);
        }
        *settings = true;
        // Nothing the peer may set changes what ruvicorn sends: it never uses a dynamic
        // table and its response heads are far below any sane field section limit.
        return frame::parse_settings(&payload).map(Accepted::Settings);
    }
    match ty {
        frame::GOAWAY | frame::MAX_PUSH_ID | frame::CANCEL_PUSH => {
            frame::parse_single_varint(&payload).map(|value| Accepted::Frame { ty, value })
        }
        // SETTINGS twice, HEADERS, PUSH_PROMISE.
        _ => Err(codes::FRAME_UNEXPECTED),
    }
}

/// The peer's encoder stream: with a table capacity of 0 the only valid instruction is
/// Set Dynamic Table Capacity to 0 (RFC 9204 §4.3).
fn encoder_instructions(buf: &mut BytesMut, mut accepted: impl FnMut(Accepted)) -> Result<(), u64> {
    while let Some(&first) = buf.first() {
        if first & 0xe0 != 0x20 {
            return Err(codes::QPACK_ENCODER_STREAM_ERROR);
        }
        match instruction(buf, 5, codes::QPACK_ENCODER_STREAM_ERROR)? {
            None => break,
            Some(0) => accepted(Accepted::Capacity(0)),
            Some(_) => return Err(codes::QPACK_ENCODER_STREAM_ERROR),
        }
    }
    Ok(())
}

/// The peer's decoder stream (RFC 9204 §4.4): ruvicorn's field sections never use the
/// dynamic table, so only Stream Cancellation may come.
fn decoder_instructions(buf: &mut BytesMut, mut accepted: impl FnMut(Accepted)) -> Result<(), u64> {
    while let Some(&first) = buf.first() {
        if first & 0xc0 != 0x40 {
            return Err(codes::QPACK_DECODER_STREAM_ERROR);
        }
        match instruction(buf, 6, codes::QPACK_DECODER_STREAM_ERROR)? {
            None => break,
            Some(stream) => accepted(Accepted::Cancel(stream)),
        }
    }
    Ok(())
}

/// One prefixed integer off the front of `buf`, `None` if it is not complete yet; one too
/// large for 62 bits is `error`, the code of the stream it came on (RFC 9204 §6).
fn instruction(buf: &mut BytesMut, bits: u32, error: u64) -> Result<Option<u64>, u64> {
    let mut input = &buf[..];
    match qpack::integer(&mut input, bits) {
        Ok(value) => {
            let used = buf.len() - input.len();
            buf.advance(used);
            Ok(Some(value))
        }
        Err(qpack::Error::Truncated) => Ok(None),
        Err(_) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http3::frame::{frame, put_varint, settings, DATA, HEADERS, SETTINGS};

    const LIMIT: u64 = 64 * 1024;

    /// A stream of type `ty` followed by `body`.
    fn stream(ty: u64, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, ty);
        out.extend_from_slice(body);
        out
    }

    /// Feed `bytes` in pieces of `piece` bytes: what was accepted, and the outcome.
    fn run(bytes: &[u8], piece: usize) -> (Vec<Accepted>, Result<Status, u64>) {
        let mut uni = Uni::default();
        let mut peers = PeerStreams::default();
        let mut found = Vec::new();
        let mut status = Ok(Status::Open);
        for chunk in bytes.chunks(piece.max(1)) {
            assert_eq!(uni.push(chunk), chunk.len());
            status = uni.parse(&mut peers, LIMIT, |a| found.push(a));
            if status.is_err() {
                break;
            }
        }
        (found, status)
    }

    fn outcome(bytes: &[u8]) -> Result<Status, u64> {
        run(bytes, bytes.len()).1
    }

    fn control(frames: &[Vec<u8>]) -> Vec<u8> {
        stream(CONTROL, &frames.concat())
    }

    #[test]
    fn control_stream_with_settings_and_goaway() {
        let bytes = control(&[settings(&[(0x6, 16384), (0x21, 1)]), frame(0x7, &[0x04])]);
        let (found, status) = run(&bytes, bytes.len());
        assert_eq!(status, Ok(Status::Open));
        assert_eq!(
            found,
            [
                Accepted::Settings(vec![(0x6, 16384), (0x21, 1)]),
                Accepted::Frame { ty: 0x7, value: 4 },
            ]
        );
    }

    #[test]
    fn first_control_frame_must_be_settings() {
        // §6.2.1: anything else first is H3_MISSING_SETTINGS, DATA included.
        for first in [frame(0x7, &[0]), frame(HEADERS, &[0, 0]), frame(DATA, b"x")] {
            assert_eq!(outcome(&control(&[first])), Err(codes::MISSING_SETTINGS));
        }
        // An unknown frame type is skipped and does not count as the first frame.
        let grease = frame(0x21, b"abc");
        let bytes = control(&[grease, settings(&[])]);
        assert_eq!(
            run(&bytes, 1),
            (vec![Accepted::Settings(vec![])], Ok(Status::Open))
        );
    }

    #[test]
    fn second_settings_is_frame_unexpected() {
        // §7.2.4: SETTINGS more than once.
        let bytes = control(&[settings(&[]), settings(&[])]);
        assert_eq!(outcome(&bytes), Err(codes::FRAME_UNEXPECTED));
    }

    #[test]
    fn request_frames_on_the_control_stream_are_frame_unexpected() {
        // §7.2.1, §7.2.2, §7.2.5: DATA, HEADERS and PUSH_PROMISE belong on request streams.
        for bad in [frame(DATA, b"x"), frame(HEADERS, &[0, 0]), frame(0x5, &[0])] {
            let bytes = control(&[settings(&[]), bad]);
            assert_eq!(outcome(&bytes), Err(codes::FRAME_UNEXPECTED));
        }
        // §7.2.8: HTTP/2 frame types are refused the same way.
        let bytes = control(&[settings(&[]), frame(0x2, &[])]);
        assert_eq!(outcome(&bytes), Err(codes::FRAME_UNEXPECTED));
    }

    #[test]
    fn malformed_settings_are_refused() {
        // A setting of HTTP/2's, and one named twice.
        assert_eq!(
            outcome(&control(&[settings(&[(0x2, 0)])])),
            Err(codes::SETTINGS_ERROR)
        );
        assert_eq!(
            outcome(&control(&[settings(&[(0x6, 1), (0x6, 2)])])),
            Err(codes::SETTINGS_ERROR)
        );
        // A truncated pair.
        assert_eq!(
            outcome(&control(&[frame(SETTINGS, &[0x6])])),
            Err(codes::FRAME_ERROR)
        );
    }

    #[test]
    fn encoder_stream_takes_only_capacity_zero() {
        // ruvicorn announces SETTINGS_QPACK_MAX_TABLE_CAPACITY 0 (RFC 9204 §4.3.1): a
        // capacity of 0 is accepted, anything above it is an encoder stream error.
        let (found, status) = run(&stream(ENCODER, &[0x20, 0x20]), 1);
        assert_eq!(status, Ok(Status::Open));
        assert_eq!(found, [Accepted::Capacity(0), Accepted::Capacity(0)]);
        assert_eq!(
            outcome(&stream(ENCODER, &[0x21])),
            Err(codes::QPACK_ENCODER_STREAM_ERROR)
        );
        // A capacity of 31 + 100 in a continued integer.
        assert_eq!(
            outcome(&stream(ENCODER, &[0x3f, 100])),
            Err(codes::QPACK_ENCODER_STREAM_ERROR)
        );
        // Inserts (with or without a name reference) and Duplicate would use the table.
        for insert in [&[0xc1, 0x01, b'a'][..], &[0x41, b'a', 0x01, b'b'], &[0x00]] {
            assert_eq!(
                outcome(&stream(ENCODER, insert)),
                Err(codes::QPACK_ENCODER_STREAM_ERROR)
            );
        }
    }

    #[test]
    fn decoder_stream_takes_only_stream_cancellation() {
        let (found, status) = run(&stream(DECODER, &[0x44, 0x7f, 0x01]), 1);
        assert_eq!(status, Ok(Status::Open));
        assert_eq!(found, [Accepted::Cancel(4), Accepted::Cancel(64)]);
        // Section Acknowledgment and Insert Count Increment: ruvicorn never references the
        // table, so neither can be owed (RFC 9204 §4.4.1, §4.4.3).
        for bad in [0x81u8, 0x01] {
            assert_eq!(
                outcome(&stream(DECODER, &[bad])),
                Err(codes::QPACK_DECODER_STREAM_ERROR)
            );
        }
    }

    #[test]
    fn overlong_integers_are_the_error_of_their_stream() {
        // A prefixed integer past 62 bits: on the decoder stream this was reported as an
        // encoder stream error.
        let overlong = [0x80u8; 10];
        let mut decoder = vec![0x7f];
        decoder.extend_from_slice(&overlong);
        assert_eq!(
            outcome(&stream(DECODER, &decoder)),
            Err(codes::QPACK_DECODER_STREAM_ERROR)
        );
        let mut encoder = vec![0x3f];
        encoder.extend_from_slice(&overlong);
        assert_eq!(
            outcome(&stream(ENCODER, &encoder)),
            Err(codes::QPACK_ENCODER_STREAM_ERROR)
        );
    }

    #[test]
    fn stream_types() {
        // §6.2.2: a client may not open a push stream.
        assert_eq!(outcome(&[0x01]), Err(codes::STREAM_CREATION_ERROR));
        // §6.2.3: unknown (and reserved) types are ignored, whatever follows.
        assert_eq!(outcome(&stream(0x21, b"\xff\xff")), Ok(Status::Unknown));
        // A two-byte type not complete yet.
        let mut uni = Uni::default();
        let mut peers = PeerStreams::default();
        uni.push(&[0x40]);
        assert_eq!(uni.parse(&mut peers, LIMIT, |_| {}), Ok(Status::Open));
        assert!(!uni.is_critical());
        uni.push(&[0x02]);
        assert_eq!(uni.parse(&mut peers, LIMIT, |_| {}), Ok(Status::Open));
        assert!(uni.is_critical());
    }

    #[test]
    fn second_critical_stream_of_a_kind_is_refused() {
        let mut peers = PeerStreams::default();
        for ty in [CONTROL, ENCODER, DECODER] {
            let mut first = Uni::default();
            first.push(&[ty as u8]);
            assert_eq!(first.parse(&mut peers, LIMIT, |_| {}), Ok(Status::Open));
        }
        for ty in [CONTROL, ENCODER, DECODER] {
            let mut again = Uni::default();
            again.push(&[ty as u8]);
            let refused = again.parse(&mut peers, LIMIT, |_| {});
            assert_eq!(refused, Err(codes::STREAM_CREATION_ERROR));
        }
    }

    #[test]
    fn buffer_stops_at_its_bound() {
        let mut uni = Uni::new(8);
        let mut peers = PeerStreams::default();
        // A SETTINGS frame announcing 16 bytes: it can never complete within 8.
        let bytes = control(&[frame(SETTINGS, &[0; 16])]);
        assert_eq!(uni.push(&bytes), 8);
        assert_eq!(uni.buffered(), 8);
        // The type and frame head parse, leaving room for 3 more payload bytes.
        assert_eq!(uni.parse(&mut peers, LIMIT, |_| {}), Ok(Status::Open));
        assert_eq!(uni.push(&bytes[8..]), 3);
        assert_eq!(uni.parse(&mut peers, LIMIT, |_| {}), Ok(Status::Open));
        assert!(uni.is_full());
        assert_eq!(uni.push(b"more"), 0);
        // A frame over the payload limit is refused before it is buffered.
        let mut uni = Uni::default();
        uni.push(&control(&[frame(SETTINGS, &[0; 16])]));
        let over = uni.parse(&mut PeerStreams::default(), 15, |_| {});
        assert_eq!(over, Err(codes::EXCESSIVE_LOAD));
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let streams = [
            control(&[
                frame(0x21, b"grease"),
                settings(&[(0x1, 0), (0x6, 1 << 20), (0x7, 0)]),
                frame(0xd, &[0x40, 0x10]),
                frame(0x3, &[0x01]),
                frame(0x7, &[0x80, 0, 0, 4]),
            ]),
            control(&[settings(&[]), frame(HEADERS, &[0, 0])]),
            stream(ENCODER, &[0x20, 0x3f, 0x00, 0x20]),
            stream(ENCODER, &[0x20, 0x3f, 0x01]),
            stream(DECODER, &[0x40, 0x7f, 0x80, 0x01, 0x45]),
            stream(DECODER, &[0x40, 0x80]),
        ];
        for bytes in &streams {
            let whole = run(bytes, bytes.len());
            for at in 1..bytes.len() {
                let mut uni = Uni::default();
                let mut peers = PeerStreams::default();
                let mut found = Vec::new();
                let mut status = Ok(Status::Open);
                for part in [&bytes[..at], &bytes[at..]] {
                    uni.push(part);
                    status = uni.parse(&mut peers, LIMIT, |a| found.push(a));
                    if status.is_err() {
                        break;
                    }
                }
                assert_eq!((found, status), whole, "split at {at} of {bytes:02x?}");
            }
            assert_eq!(run(bytes, 1), whole);
        }
    }
}
