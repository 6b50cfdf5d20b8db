//! The little of HTTP/3 (RFC 9114) and QPACK (RFC 9204) the `--h3` load needs: a request's
//! HEADERS and DATA frames, the client's SETTINGS, and a response's status and body size.
//!
//! The client announces no QPACK dynamic table (no SETTINGS at all: capacity 0), so a
//! server may only send static-table references and literals; it encodes its own requests
//! the same way, without Huffman coding. Of a response only `:status` is decoded, with the
//! Huffman codes of the ten digits (a status value a server Huffman-codes).

const DATA: u64 = 0x0;
const HEADERS: u64 = 0x1;
const SETTINGS: u64 = 0x4;
/// The unidirectional stream type of the control stream.
const CONTROL_STREAM: u64 = 0x0;

/// QPACK static table indices used (RFC 9204 Appendix A).
const AUTHORITY: u64 = 0;
const PATH_ROOT: u64 = 1;
const CONTENT_LENGTH: u64 = 4;
const METHOD_GET: u64 = 17;
const METHOD_POST: u64 = 20;
const SCHEME_HTTPS: u64 = 23;
const CONTENT_TYPE: u64 = 44;
/// The `:status` entries of the static table and their values.
const STATUS_ENTRIES: [(u64, u16); 14] = [
    (24, 103),
    (25, 200),
    (26, 304),
    (27, 404),
    (28, 503),
    (63, 100),
    (64, 204),
    (65, 206),
    (66, 302),
    (67, 400),
    (68, 403),
    (69, 421),
    (70, 425),
    (71, 500),
];

pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// A QUIC variable-length integer at the start of `input`, and its length.
fn varint(input: &[u8]) -> Option<(u64, usize)> {
    let first = *input.first()?;
    let len = 1usize << (first >> 6);
    let bytes = input.get(..len)?;
    let v = bytes[1..]
        .iter()
        .fold(u64::from(first & 0x3f), |acc, &b| (acc << 8) | u64::from(b));
    Some((v, len))
}

/// The control stream's whole content: its type and an empty SETTINGS frame.
pub fn control_stream() -> Vec<u8> {
    let mut out = Vec::with_capacity(3);
    put_varint(&mut out, CONTROL_STREAM);
    put_varint(&mut out, SETTINGS);
    put_varint(&mut out, 0);
    out
}

/// A QPACK prefixed integer: `flags` in the bits above the `bits`-bit prefix.
fn put_int(out: &mut Vec<u8>, flags: u8, bits: u32, v: u64) {
    let max = (1u64 << bits) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = v - max;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

fn put_indexed(out: &mut Vec<u8>, index: u64) {
    put_int(out, 0xc0, 6, index); // 1 T=1 (static)
}

fn put_literal(out: &mut Vec<u8>, name_index: u64, value: &[u8]) {
    put_int(out, 0x50, 4, name_index); // 01 N=0 T=1 (static name)
    put_int(out, 0x00, 7, value.len() as u64); // H=0
    out.extend_from_slice(value);
}

/// A request's bytes: HEADERS, then `body` in one DATA frame when there is one (a POST of
/// `application/octet-stream`, else a GET). The stream is finished after them.
pub fn request(authority: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut fields = vec![0, 0]; // required insert count 0, delta base 0
    let post = !body.is_empty();
    put_indexed(&mut fields, if post { METHOD_POST } else { METHOD_GET });
    put_indexed(&mut fields, SCHEME_HTTPS);
    put_literal(&mut fields, AUTHORITY, authority.as_bytes());
    if path == "/" {
        put_indexed(&mut fields, PATH_ROOT);
    } else {
        put_literal(&mut fields, PATH_ROOT, path.as_bytes());
    }
    if post {
        put_literal(&mut fields, CONTENT_TYPE, b"application/octet-stream");
        put_literal(
            &mut fields,
            CONTENT_LENGTH,
            body.len().to_string().as_bytes(),
        );
    }
    let mut out = Vec::with_capacity(fields.len() + body.len() + 16);
    put_varint(&mut out, HEADERS);
    put_varint(&mut out, fields.len() as u64);
    out.extend_from_slice(&fields);
    if post {
        put_varint(&mut out, DATA);
        put_varint(&mut out, body.len() as u64);
        out.extend_from_slice(body);
    }
    out
}

/// A QPACK prefixed integer from `input` (advanced past it).
fn int(input: &mut &[u8], bits: u32) -> Result<u64, String> {
    let max = (1u64 << bits) - 1;
    let (&first, rest) = input.split_first().ok_or("truncated field section")?;
    *input = rest;
    let mut v = u64::from(first) & max;
    if v < max {
        return Ok(v);
    }
    for shift in (0..63).step_by(7) {
        let (&b, rest) = input.split_first().ok_or("truncated field section")?;
        *input = rest;
        v += u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("QPACK integer too long".into())
}

/// A string literal whose Huffman flag is the bit above a `bits`-bit length: (huffman, bytes).
fn string<'a>(input: &mut &'a [u8], bits: u32) -> Result<(bool, &'a [u8]), String> {
    let huffman = input.first().is_some_and(|b| b & (1 << bits) != 0);
    let len = usize::try_from(int(input, bits)?).map_err(|_| "string too long")?;
    if input.len() < len {
        return Err("truncated field section".into());
    }
    let (s, rest) = input.split_at(len);
    *input = rest;
    Ok((huffman, s))
}

/// A status value's three digits, plain or Huffman-coded.
fn status_value(huffman: bool, raw: &[u8]) -> Result<u16, String> {
    let digits = if huffman {
        huffman_digits(raw).ok_or("a Huffman-coded :status that is not three digits")?
    } else {
        raw.to_vec()
    };
    std::str::from_utf8(&digits)
        .ok()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad :status {digits:?}"))
}

/// Decodes a Huffman string made of digits only (RFC 7541 Appendix B: '0'-'2' are 5-bit
/// codes 0-2, '3'-'9' 6-bit codes 0x19-0x1f), or None.
fn huffman_digits(raw: &[u8]) -> Option<Vec<u8>> {
    let total = raw.len() * 8;
    let bit = |i: usize| (raw[i / 8] >> (7 - i % 8)) & 1;
    let take = |at: usize, n: usize| (at..at + n).fold(0u8, |acc, i| (acc << 1) | bit(i));
    let mut out = Vec::new();
    let mut at = 0;
    while total - at >= 5 {
        let five = take(at, 5);
        if five <= 2 {
            out.push(b'0' + five);
            at += 5;
        } else if total - at >= 6 && (0x19..=0x1f).contains(&take(at, 6)) {
            out.push(b'0' + take(at, 6) - 0x16);
            at += 6;
        } else {
            break;
        }
    }
    // What is left is the padding: fewer than 8 bits, all ones.
    let padding = total - at;
    (padding < 8 && (at..total).all(|i| bit(i) == 1)).then_some(out)
}

/// The `:status` of a QPACK field section that uses no dynamic table.
pub fn status(mut input: &[u8]) -> Result<u16, String> {
    if int(&mut input, 8)? != 0 {
        return Err("the field section refers to a dynamic table".into());
    }
    int(&mut input, 7)?; // delta base: nothing refers to it
    let status_of = |index| STATUS_ENTRIES.iter().find(|(i, _)| *i == index);
    while let Some(&b) = input.first() {
        if b & 0x80 != 0 {
            let index = int(&mut input, 6)?;
            if b & 0x40 == 0 {
                return Err("an indexed field from a dynamic table".into());
            }
            if let Some((_, status)) = status_of(index) {
                return Ok(*status);
            }
        } else if b & 0x40 != 0 {
            let index = int(&mut input, 4)?;
            let (huffman, value) = string(&mut input, 7)?;
            if b & 0x10 == 0 {
                return Err("a field name from a dynamic table".into());
            }
            if status_of(index).is_some() {
                return status_value(huffman, value);
            }
        } else if b & 0x20 != 0 {
            let (huffman, name) = string(&mut input, 3)?;
            let (value_huffman, value) = string(&mut input, 7)?;
            if !huffman && name == b":status" {
                return status_value(value_huffman, value);
            }
        } else {
            return Err("a post-base field reference (dynamic table)".into());
        }
    }
    Err("no :status in the response".into())
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
        let (ty, a) = varint(input).ok_or("truncated frame")?;
        let (len, b) = varint(&input[a..]).ok_or("truncated frame")?;
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
    fn varints_round_trip() {
        for v in [
            0,
            63,
            64,
            16383,
            16384,
            (1 << 30) - 1,
            1 << 30,
            (1 << 62) - 1,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(varint(&out), Some((v, out.len())), "{v}");
        }
        assert_eq!(varint(&[0x40]), None);
    }

    #[test]
    fn prefixed_integers_round_trip() {
        for (bits, v) in [(4, 3), (4, 15), (4, 300), (6, 62), (6, 63), (7, 1_000_000)] {
            let mut out = Vec::new();
            put_int(&mut out, 0, bits, v);
            let mut input = &out[..];
            assert_eq!(int(&mut input, bits), Ok(v));
            assert!(input.is_empty());
        }
    }

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
        // "429": 011010 00010 011111 + 7 ones: 0x68 0xbf 0xff? 01101000 01001111 1 -> pad
        assert_eq!(huffman_digits(&[0x68, 0x4f, 0xff]), Some(b"429".to_vec()));
        assert_eq!(huffman_digits(&[0x68, 0x4f, 0xfe]), None);
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
