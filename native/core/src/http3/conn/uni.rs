//! The peer's unidirectional streams (RFC 9114 §6.2): its control stream, its QPACK encoder
//! and decoder streams, and any other type, which is refused and ignored.

use bytes::{Buf, BytesMut};
use quinn_proto::{StreamId, VarInt};

use super::{read_into, Conn};
use crate::http3::frame::{self, Item, Reader};
use crate::http3::{codes, qpack};

const CONTROL: u64 = 0x00;
const PUSH: u64 = 0x01;
const ENCODER: u64 = 0x02;
const DECODER: u64 = 0x03;

/// Bytes buffered per critical stream before they must parse: more is H3_EXCESSIVE_LOAD.
const UNI_BUFFER: usize = 64 * 1024;

#[derive(Debug, Default)]
enum Kind {
    /// The stream type has not arrived yet.
    #[default]
    Unknown,
    Control {
        settings: bool,
    },
    Encoder,
    Decoder,
}

#[derive(Debug, Default)]
pub(super) struct Uni {
    kind: Kind,
    buf: BytesMut,
    reader: Reader,
}

impl Conn {
    pub(super) fn read_uni(&mut self, id: StreamId) {
        let Some(uni) = self.uni.get_mut(&id) else {
            return;
        };
        let end = read_into(&mut self.quic, id, &mut uni.buf, UNI_BUFFER);
        let ended = end.fin || end.reset.is_some();
        if let Err(code) = self.parse_uni(id) {
            return self.fail(code, "invalid unidirectional stream");
        }
        let Some(uni) = self.uni.get(&id) else {
            return;
        };
        if ended {
            if matches!(uni.kind, Kind::Unknown) {
                self.uni.remove(&id);
            } else {
                // §6.2.1, RFC 9204 §4.2: critical streams never close.
                self.fail(codes::CLOSED_CRITICAL_STREAM, "critical stream closed");
            }
        } else if uni.buf.len() >= UNI_BUFFER {
            self.fail(codes::EXCESSIVE_LOAD, "unidirectional stream buffer full");
        }
    }

    fn parse_uni(&mut self, id: StreamId) -> Result<(), u64> {
        let limit = self.settings.max_header_list_size;
        let Some(uni) = self.uni.get_mut(&id) else {
            return Ok(());
        };
        if matches!(uni.kind, Kind::Unknown) {
            let Some((ty, len)) = frame::peek_varint(&uni.buf) else {
                return Ok(());
            };
            uni.buf.advance(len);
            let slot = match ty {
                CONTROL => 0,
                ENCODER => 1,
                DECODER => 2,
                // §6.2.2: only servers push.
                PUSH => return Err(codes::STREAM_CREATION_ERROR),
                _ => {
                    // §6.2.3: unknown types are ignored, their senders told to stop.
                    let _ = self
                        .quic
                        .recv_stream(id)
                        .stop(VarInt::from_u32(codes::STREAM_CREATION_ERROR as u32));
                    self.uni.remove(&id);
                    return Ok(());
                }
            };
            if std::mem::replace(&mut self.peer_streams[slot], true) {
                return Err(codes::STREAM_CREATION_ERROR);
            }
            uni.kind = match ty {
                CONTROL => Kind::Control { settings: false },
                ENCODER => Kind::Encoder,
                _ => Kind::Decoder,
            };
        }
        match &mut uni.kind {
            Kind::Control { settings } => {
                while let Some(item) = uni.reader.next(&mut uni.buf, limit)? {
                    control_frame(item, settings)?;
                }
                Ok(())
            }
            Kind::Encoder => encoder_instructions(&mut uni.buf),
            Kind::Decoder => decoder_instructions(&mut uni.buf),
            Kind::Unknown => Ok(()),
        }
    }
}

/// One frame on the peer's control stream (§6.2.1, §7.2).
fn control_frame(item: Item, settings: &mut bool) -> Result<(), u64> {
    let Item::Frame { ty, payload } = item else {
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
        return frame::parse_settings(&payload).map(drop);
    }
    match ty {
        frame::GOAWAY | frame::MAX_PUSH_ID | frame::CANCEL_PUSH => {
            frame::parse_single_varint(&payload).map(drop)
        }
        // SETTINGS twice, HEADERS, PUSH_PROMISE.
        _ => Err(codes::FRAME_UNEXPECTED),
    }
}

/// The peer's encoder stream: with a table capacity of 0 the only valid instruction is
/// Set Dynamic Table Capacity to 0 (RFC 9204 §4.3).
fn encoder_instructions(buf: &mut BytesMut) -> Result<(), u64> {
    while let Some(&first) = buf.first() {
        if first & 0xe0 != 0x20 {
            return Err(codes::QPACK_ENCODER_STREAM_ERROR);
        }
        match instruction(buf, 5)? {
            None => break,
            Some(0) => {}
            Some(_) => return Err(codes::QPACK_ENCODER_STREAM_ERROR),
        }
    }
    Ok(())
}

/// The peer's decoder stream (RFC 9204 §4.4): ruvicorn's field sections never use the
/// dynamic table, so only Stream Cancellation may come.
fn decoder_instructions(buf: &mut BytesMut) -> Result<(), u64> {
    while let Some(&first) = buf.first() {
        if first & 0xc0 != 0x40 {
            return Err(codes::QPACK_DECODER_STREAM_ERROR);
        }
        if instruction(buf, 6)?.is_none() {
            break;
        }
    }
    Ok(())
}

/// One prefixed integer off the front of `buf`, `None` if it is not complete yet.
fn instruction(buf: &mut BytesMut, bits: u32) -> Result<Option<u64>, u64> {
    let mut input = &buf[..];
    match qpack::integer(&mut input, bits) {
        Ok(value) => {
            let used = buf.len() - input.len();
            buf.advance(used);
            Ok(Some(value))
        }
        Err(qpack::Error::Truncated) => Ok(None),
        Err(_) => Err(codes::QPACK_ENCODER_STREAM_ERROR),
    }
}
