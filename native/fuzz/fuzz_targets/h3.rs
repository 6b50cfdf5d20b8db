//! HTTP/3 request streams: the frame reader (`http3::frame::Reader`), the QPACK field
//! section decoder (`http3::qpack::decode`) and the request check (`http3::head::request`),
//! in the order a request stream's bytes meet them.
//!
//! Input: a control byte (the size of the pieces the stream arrives in, 1 to 64), a second
//! one (bits 0-1: the frame payload limit, one of four; bits 2-3: the decoded field section
//! limit, one of four; bit 4: the rest is one field section rather than a stream's bytes),
//! then the bytes.
//! Properties: nothing panics; the reader fed in pieces gives the same frames, the same DATA
//! bytes frame by frame, the same error and (without one) the same unread bytes as fed the whole stream
//! at once, and never a frame over its limit; a decoded field section stays within its
//! limit (or is refused as too large exactly when it outgrows it), and encoded again it decodes
//! to the same fields; a request the check accepts has a
//! token method, a path with no refused byte, lower-case token names with no
//! connection-specific field and no pseudo-header, at most one `cookie` and one `host`, and
//! the content-length its `content-length` fields say.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ruvicorn_core::http1::target::is_refused_in_target;
use ruvicorn_core::http2::CONNECTION_SPECIFIC;
use ruvicorn_core::http3::frame::{Item, Reader, HEADERS};
use ruvicorn_core::http3::head::{self, Refusal};
use ruvicorn_core::http3::qpack::{self, Error, Fields};
use ruvicorn_core::syntax::is_token;
use ruvicorn_fuzz::Input;

const FRAME_LIMITS: [u64; 4] = [0, 16, 1024, 16 * 1024];
const SECTION_LIMITS: [u64; 4] = [0, 64, 1024, 16 * 1024];

/// What the reader found, in order; DATA payload pieces are merged per frame.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Data(Vec<u8>),
    Frame(u64, Vec<u8>),
    Error(u64),
}

/// Everything the reader finds in `stream` fed `piece` bytes at a time, and the bytes it
/// left unread (none after an error).
fn read(stream: &[u8], piece: usize, limit: u64) -> (Vec<Found>, Vec<u8>) {
    let mut reader = Reader::default();
    let mut buf = BytesMut::new();
    let mut found = Vec::new();
    for chunk in stream.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match reader.next(&mut buf, limit) {
                Ok(None) => break,
                Ok(Some(Item::Data(data))) if data.is_empty() => {
                    found.push(Found::Data(Vec::new()))
                }
                Ok(Some(Item::Data(data))) => match found.last_mut() {
                    Some(Found::Data(frame)) => frame.extend_from_slice(&data),
                    _ => panic!("DATA bytes before the start of a DATA frame"),
                },
                Ok(Some(Item::Frame { ty, payload })) => {
                    assert!(payload.len() as u64 <= limit, "a frame over its limit");
                    found.push(Found::Frame(ty, payload.to_vec()));
                }
                Err(code) => {
                    // The stream is over: what is still buffered depends on the pieces.
                    found.push(Found::Error(code));
                    return (found, Vec::new());
                }
            }
        }
    }
    (found, buf.to_vec())
}

/// The decoded size of `fields` as RFC 9114 4.2.2 counts it.
fn section_size(fields: &Fields) -> u64 {
    fields
        .iter()
        .map(|(name, value)| (name.len() + value.len() + 32) as u64)
        .sum()
}

fn check_section(block: &[u8], limit: u64) {
    let fields = match qpack::decode(block, limit) {
        Ok(fields) => fields,
        // The decoder stops where the fields outgrow the limit: with none, the same bytes
        // decode to more, or are malformed further on.
        Err(Error::TooLarge) => {
            match qpack::decode(block, u64::MAX) {
                Ok(fields) => assert!(section_size(&fields) > limit),
                Err(error) => assert_eq!(error, Error::Invalid),
            }
            return;
        }
        // Malformed before the limit was reached is malformed without one.
        Err(error) => {
            assert_eq!(error, Error::Invalid);
            assert_eq!(qpack::decode(block, u64::MAX), Err(Error::Invalid));
            return;
        }
    };
    assert!(section_size(&fields) <= limit);
    let mut encoded = Vec::new();
    qpack::encode(fields.iter().map(|(n, v)| (&n[..], &v[..])), &mut encoded);
    assert_eq!(qpack::decode(&encoded, limit).as_ref(), Ok(&fields));
    check_request(fields);
}

fn check_request(fields: Fields) {
    let lengths: Vec<Vec<u8>> = fields
        .iter()
        .filter(|(name, _)| name == b"content-length")
        .map(|(_, value)| value.clone())
        .collect();
    let request = match head::request(fields) {
        Ok(request) => request,
        Err(Refusal::Malformed | Refusal::Connect) => return,
    };
    let head = &request.head;
    assert!(is_token(head.method.as_bytes()) && head.method != "CONNECT");
    assert!(!head.target.is_empty());
    assert!(!head.target.bytes().any(is_refused_in_target));
    let mut cookies = 0;
    let mut hosts = 0;
    for (name, _) in &head.headers {
        assert!(is_token(name) && !name.iter().any(u8::is_ascii_uppercase));
        let name = std::str::from_utf8(name).expect("a token is ASCII");
        assert!(!CONNECTION_SPECIFIC.contains(&name));
        cookies += usize::from(name == "cookie");
        hosts += usize::from(name == "host");
    }
    assert!(
        cookies <= 1 && hosts <= 1,
        "{cookies} cookie and {hosts} host fields"
    );
    match request.content_length {
        None => assert!(lengths.is_empty()),
        Some(length) => {
            assert!(!lengths.is_empty());
            for value in lengths {
                assert!(value.iter().all(u8::is_ascii_digit));
                let text = std::str::from_utf8(&value).expect("digits are ASCII");
                assert_eq!(text.parse::<u64>(), Ok(length));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let piece = usize::from(input.byte() % 64) + 1;
    let mode = input.byte();
    let frame_limit = FRAME_LIMITS[usize::from(mode & 0b11)];
    let section_limit = SECTION_LIMITS[usize::from((mode >> 2) & 0b11)];
    let bytes = input.rest();
    if mode & 0b1_0000 != 0 {
        check_section(bytes, section_limit);
        return;
    }
    let whole = read(bytes, bytes.len().max(1), frame_limit);
    let pieces = read(bytes, piece, frame_limit);
    assert_eq!(whole, pieces, "the pieces changed what the reader found");
    for found in &whole.0 {
        if let Found::Frame(HEADERS, payload) = found {
            check_section(payload, section_limit);
        }
    }
});
