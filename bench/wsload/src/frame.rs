//! WebSocket framing (RFC 6455 section 5), the little of it a closed-loop echo needs:
//! parse one frame from a buffer (unmasking in place) and encode one frame.

use base64::Engine as _;
use sha1::{Digest, Sha1};

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Larger frames are refused: an echo benchmark never sends one, so it means a broken peer.
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// One parsed frame: where its (unmasked) payload lies in the buffer and how long it was.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub start: usize,
    pub end: usize,
    /// Bytes of the buffer the frame took, header included.
    pub len: usize,
}

/// Parses the frame at the start of `buf`, unmasking its payload in place.
///
/// `Ok(None)` means more bytes are needed.
pub fn parse(buf: &mut [u8]) -> Result<Option<Frame>, &'static str> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err("frame with reserved bits set");
    }
    let masked = b1 & 0x80 != 0;
    let mut pos = 2;
    let mut payload = usize::from(b1 & 0x7F);
    if payload == 126 {
        let Some(ext) = buf.get(2..4) else {
            return Ok(None);
        };
        payload = usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        pos = 4;
    } else if payload == 127 {
        let Some(ext) = buf.get(2..10) else {
            return Ok(None);
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(ext);
        payload = usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX);
        pos = 10;
    }
    if payload > MAX_PAYLOAD {
        return Err("frame larger than 16 MiB");
    }
    let mut mask = [0u8; 4];
    if masked {
        let Some(m) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        mask.copy_from_slice(m);
        pos += 4;
    }
    let end = pos + payload;
    if buf.len() < end {
        return Ok(None);
    }
    if masked {
        apply_mask(&mut buf[pos..end], mask);
    }
    Ok(Some(Frame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0F,
        start: pos,
        end,
        len: end,
    }))
}

/// Appends one frame to `out`, masked with `mask` when given (a client must mask).
pub fn encode(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            let at = out.len();
            out.extend_from_slice(payload);
            apply_mask(&mut out[at..], m);
        }
        None => out.extend_from_slice(payload),
    }
}

fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// The value of header `name` (lower case) in an HTTP head, trimmed.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Small, fast, good-enough randomness for masks and keys (xorshift32).
pub struct Rng(u32);

impl Rng {
    pub fn new(seed: u32) -> Self {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// Read everything the socket has into `inbuf`; true when the peer closed.
/// A short read means the socket is drained: the next bytes raise a new edge, so the read
/// that would only say WouldBlock (one syscall a message) is saved.
pub fn drain_into(
    stream: &mut impl std::io::Read,
    buf: &mut [u8],
    inbuf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    loop {
        match stream.read(buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                inbuf.extend_from_slice(&buf[..n]);
                if n < buf.len() {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_masked_and_not() {
        for len in [0usize, 13, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut buf = Vec::new();
                encode(&mut buf, true, OP_TEXT, &payload, mask);
                let total = buf.len();
                assert_eq!(parse(&mut buf[..total - 1]), Ok(None));
                let f = parse(&mut buf).ok().flatten().expect("a whole frame");
                assert!(f.fin);
                assert_eq!(f.opcode, OP_TEXT);
                assert_eq!(f.len, total);
                assert_eq!(&buf[f.start..f.end], &payload[..]);
            }
        }
    }

    #[test]
    fn broken_frames_are_refused() {
        assert_eq!(
            parse(&mut [0xC1, 0x00]),
            Err("frame with reserved bits set")
        );
        let mut huge = vec![0x81, 0x7F];
        huge.extend_from_slice(&(MAX_PAYLOAD as u64 + 1).to_be_bytes());
        assert_eq!(parse(&mut huge), Err("frame larger than 16 MiB"));
        // A length that needs an extended header not yet received: wait for more.
        assert_eq!(parse(&mut [0x81, 0x7E, 0x01]), Ok(None));
    }

    #[test]
    fn rfc_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn header_lookup() {
        let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept:  abc \r\n";
        assert_eq!(header(head, "sec-websocket-accept"), Some("abc"));
        assert_eq!(header(head, "missing"), None);
    }
}
