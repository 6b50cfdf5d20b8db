//! The little of HTTP/3 (RFC 9114) the `--h3` load needs: a request's HEADERS and DATA
//! frames, the client's SETTINGS, and a response's status and body size. Frames and QPACK
//! field sections are ruvicorn's own (`ruvicorn_core::http3`), so the client speaks
//! exactly what the server's encoder and decoder do.
//!
//! The client announces no QPACK dynamic table (an empty SETTINGS: capacity 0), so a
//! server may only send static-table references and literals; its own requests are
//! encoded the same way, without Huffman coding.

use ruvicorn_core::http3::frame::{self, peek_varint, put_frame_head, put_varint, DATA, HEADERS};
use ruvicorn_core::http3::qpack;

/// The unidirectional stream type of the control stream.
const CONTROL_STREAM: u64 = 0x0;
/// Decoded response field bytes accepted (names, values and 32 bytes a field).
const MAX_FIELD_SECTION: u64 = 64 * 1024;

/// The control stream's whole content: its type and an empty SETTINGS frame.
pub fn control_stream() -> Vec<u8> {
    let mut out = Vec::with_capacity(3);
    put_varint(&mut out, CONTROL_STREAM);
    out.extend_from_slice(&frame::settings(&[]));
    out
}

/// A request's bytes: HEADERS, then `body` in one DATA frame when there is one (a POST of
/// `application/octet-stream`, else a GET). The stream is finished after them.
pub fn request(authority: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let post = !body.is_empty();
    let length = body.len().to_string();
    let mut fields: Vec<(&[u8], &[u8])> = vec![
        (b":method", if post { b"POST" } else { b"GET" }),
        (b":scheme", b"https"),
        (b":authority", authority.as_bytes()),
        (b":path", path.as_bytes()),
    ];
    if post {
        fields.push((b"content-type", b"application/octet-stream"));
        fields.push((b"content-length", length.as_bytes()));
    }
    let mut section = Vec::new();
    qpack::encode(fields, &mut section);
    let mut out = Vec::with_capacity(section.len() + body.len() + 16);
    put_frame_head(&mut out, HEADERS, section.len());
    out.extend_from_slice(&section);
    if post {
        put_frame_head(&mut out, DATA, body.len());
        out.extend_from_slice(body);
    }
    out
}

/// The `:status` of a QPACK field section that uses no dynamic table.
pub fn status(input: &[u8]) -> Result<u16, String> {
    let fields = qpack::decode(input, MAX_FIELD_SECTION)
        .map_err(|err| format!("bad response field section: {err:?}"))?;
    let (_, value) = fields
        .iter()
        .find(|(name, _)| name == b":status")
        .ok_or("no :status in the response")?;
    std::str::from_utf8(value)
        .ok()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad :status {value:?}"))
}

/// What a whole response stream held.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: u64,
}

/// Reads a whole response stream: its first HEADERS frame's status and its DATA bytes
/// (unknown frame types and trailers are skipped, as RFC 9114 asks).
pub fn response(mut input: &[u8]) -> Result<Response, String> {
    let mut status = None;
    let mut body = 0u64;
    while !input.is_empty() {
        let (ty, a) = peek_varint(input).ok_or("truncated frame")?;
        let (len, b) = peek_varint(&input[a..]).ok_or("truncated frame")?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| (a + b).checked_add(len))
            .filter(|&end| end <= input.len())
            .ok_or("truncated frame")?;
        let payload = &input[a + b..end];
        match ty {
            HEADERS if status.is_none() => status = Some(self::status(payload)?),
            DATA if status.is_none() => return Err("DATA before HEADERS".into()),
            DATA => body += len,
            _ => {}
        }
        input = &input[end..];
    }
    let status = status.ok_or("a response stream without HEADERS")?;
    Ok(Response { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_and_a_post() {
        let get = request("127.0.0.1:8443", "/", b"");
        // HEADERS of 21 bytes: prefix, GET, https, the authority literal, /
        assert_eq!(&get[..2], &[0x01, 21]);
        assert_eq!(&get[2..6], &[0, 0, 0xc0 | 17, 0xc0 | 23]);
        assert_eq!(&get[6..8], &[0x50, 14]);
        assert_eq!(&get[8..22], b"127.0.0.1:8443");
        assert_eq!(get[22], 0xc1);
        assert_eq!(get.len(), 23);
        let post = request("h", "/echo", &[b'x'; 4096]);
        assert!(post.ends_with(&[b'x'; 4096]));
        let data_head = &post[post.len() - 4096 - 3..post.len() - 4096];
        assert_eq!(data_head, &[0x00, 0x50, 0x00]); // DATA, varint 4096
    }

    #[test]
    fn statuses_static_literal_and_huffman() {
        assert_eq!(status(&[0, 0, 0xc0 | 25]), Ok(200));
        assert_eq!(status(&[0, 0, 0xff, 0x08]), Ok(500)); // 71 = 63 + 8
        assert_eq!(status(&[0, 0, 0x5f, 0x09, 3, b'2', b'0', b'1']), Ok(201)); // name 24
        let mut literal = vec![0, 0, 0x27, 0];
        literal.extend_from_slice(b":status");
        literal.extend_from_slice(&[3, b'4', b'1', b'3']);
        assert_eq!(status(&literal), Ok(413));
        // "201" Huffman: 00010 00000 00001, then a padding of ones: 0x10 0x03
        assert_eq!(status(&[0, 0, 0x5f, 0x09, 0x82, 0x10, 0x03]), Ok(201));
        // "429": 011010 00010 011111, then 7 ones of padding: 0x68 0x4f 0xff
        assert_eq!(status(&[0, 0, 0x5f, 0x09, 0x83, 0x68, 0x4f, 0xff]), Ok(429));
        // Padding that is not all ones.
        assert!(status(&[0, 0, 0x5f, 0x09, 0x83, 0x68, 0x4f, 0xfe]).is_err());
        assert!(status(&[1, 0, 0xc0 | 25]).is_err());
        assert!(status(&[0, 0, 0x80 | 25]).is_err());
        assert_eq!(status(&[0, 0]), Err("no :status in the response".into()));
    }

    #[test]
    fn whole_responses() {
        let mut stream = vec![0x01, 3, 0, 0, 0xd9]; // HEADERS :status 200
        stream.extend_from_slice(&[0x21, 0]); // a reserved frame type, empty
        stream.extend_from_slice(&[0x00, 13]);
        stream.extend_from_slice(b"Hello, world!");
        assert_eq!(
            response(&stream),
            Ok(Response {
                status: 200,
                body: 13
            })
        );
        assert!(response(&stream[..stream.len() - 1]).is_err());
        assert!(response(&[0x00, 1, b'x']).is_err());
        assert!(response(&[]).is_err());
    }

    #[test]
    fn the_control_stream_holds_empty_settings() {
        assert_eq!(control_stream(), [0x00, 0x04, 0x00]);
    }
}
