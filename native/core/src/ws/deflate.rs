//! permessage-deflate (RFC 7692): negotiation and the per-connection codec.
//!
//! The server side of the negotiation takes the first offer it can honour
//! and answers with the parameters it agreed to. Messages are raw DEFLATE
//! with a sync flush whose `00 00 ff ff` tail is left off on the wire
//! (RFC 7692 7.2.1) and put back before inflating (7.2.2).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::close_code;
use super::WsError;
use crate::syntax::is_token;

/// The extension's registered name.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The end of a sync flush, stripped from every compressed message.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Smallest step by which the output of a decompression grows.
const MIN_GROW: usize = 16 * 1024;

/// `client_max_window_bits` as a client offered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientMaxWindowBits {
    /// Not in the offer: the client will compress with a 32 KiB window.
    #[default]
    NotOffered,
    /// Offered without a value: the client accepts any limit we set.
    NoValue,
    /// Offered with a value: the client will not use a larger window.
    Bits(u8),
}

/// One valid `permessage-deflate` offer from `Sec-WebSocket-Extensions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeflateOffer {
    /// The client asks the server to reset its compressor per message.
    pub server_no_context_takeover: bool,
    /// The client announces it will reset its compressor per message.
    pub client_no_context_takeover: bool,
    /// The largest window (8..=15) the client lets the server compress with.
    pub server_max_window_bits: Option<u8>,
    /// The window the client compresses with, or will let us limit.
    pub client_max_window_bits: ClientMaxWindowBits,
}

/// The agreed parameters, which both codecs of a connection follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message, so we reset our
    /// decompressor too.
    pub client_no_context_takeover: bool,
    /// The window the server compresses with (9..=15).
    pub server_max_window_bits: u8,
    /// The largest window the client compresses with (8..=15).
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` response value for these parameters.
    ///
    /// `echo_client_bits` adds `client_max_window_bits`, which a server may
    /// only send when the offer had that parameter.
    fn response_value(&self, echo_server_bits: bool, echo_client_bits: bool) -> String {
        let mut value = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if echo_server_bits {
            value.push_str("; server_max_window_bits=");
            value.push_str(&self.server_max_window_bits.to_string());
        }
        if echo_client_bits {
            value.push_str("; client_max_window_bits=");
            value.push_str(&self.client_max_window_bits.to_string());
        }
        value
    }
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// Splits on `sep` outside double-quoted strings.
fn split_outside_quotes(s: &[u8], sep: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A parameter value: a token, or a quoted string whose content is a token
/// (RFC 6455 9.1). `None` if it is neither.
fn param_value(raw: &[u8]) -> Option<Vec<u8>> {
    let raw = trim(raw);
    let value = match raw {
        [b'"', inner @ .., b'"'] => {
            let mut out = Vec::with_capacity(inner.len());
            let mut it = inner.iter();
            while let Some(&b) = it.next() {
                if b == b'\\' {
                    out.push(*it.next()?);
                } else {
                    out.push(b);
                }
            }
            out
        }
        _ => raw.to_vec(),
    };
    is_token(&value).then_some(value)
}

/// Window bits: "8" to "15", no sign, no leading zero.
fn window_bits(value: &[u8]) -> Option<u8> {
    match value {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// Parses one extension element whose name was `permessage-deflate`;
/// `None` means the offer must be declined (RFC 7692 5).
fn parse_offer(params: &[&[u8]]) -> Option<DeflateOffer> {
    let mut offer = DeflateOffer::default();
    let mut seen = [false; 4];
    for param in params {
        let (name, value) = match param.iter().position(|&b| b == b'=') {
            Some(eq) => (trim(&param[..eq]), Some(param_value(&param[eq + 1..])?)),
            None => (trim(param), None),
        };
        let index = match name.to_ascii_lowercase().as_slice() {
            b"server_no_context_takeover" if value.is_none() => {
                offer.server_no_context_takeover = true;
                0
            }
            b"client_no_context_takeover" if value.is_none() => {
                offer.client_no_context_takeover = true;
                1
            }
            b"server_max_window_bits" => {
                offer.server_max_window_bits = Some(window_bits(&value?)?);
                2
            }
            b"client_max_window_bits" => {
                offer.client_max_window_bits = match value {
                    None => ClientMaxWindowBits::NoValue,
                    Some(v) => ClientMaxWindowBits::Bits(window_bits(&v)?),
                };
                3
            }
            _ => return None,
        };
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
    }
    Some(offer)
}

/// The valid `permessage-deflate` offers in the request's
/// `Sec-WebSocket-Extensions` values, in the client's order of preference.
///
/// Other extensions are ignored; an offer with an unknown, duplicate or
/// invalid parameter is left out, which declines it.
pub fn parse_deflate_offers<V: AsRef<[u8]>>(values: &[V]) -> Vec<DeflateOffer> {
    let mut offers = Vec::new();
    for value in values {
        for element in split_outside_quotes(value.as_ref(), b',') {
            let mut parts = split_outside_quotes(element, b';').into_iter();
            let Some(name) = parts.next() else { continue };
            if !trim(name).eq_ignore_ascii_case(EXTENSION_NAME.as_bytes()) {
                continue;
            }
            let params: Vec<&[u8]> = parts.collect();
            if let Some(offer) = parse_offer(&params) {
                offers.push(offer);
            }
        }
    }
    offers
}

/// Picks the first offer the server can honour.
///
/// Returns the agreed parameters and the `Sec-WebSocket-Extensions` response
/// value, or `None` (no compression) when `enabled` is false or no offer fits.
/// An offer with `server_max_window_bits=8` is declined: the DEFLATE backend
/// cannot compress with a 256-byte window.
pub fn negotiate_deflate(
    offers: &[DeflateOffer],
    enabled: bool,
) -> Option<(DeflateParams, String)> {
    if !enabled {
        return None;
    }
    offers.iter().find_map(|offer| {
        let server_bits = offer.server_max_window_bits.unwrap_or(15);
        if server_bits < 9 {
            return None;
        }
        let client_bits = match offer.client_max_window_bits {
            ClientMaxWindowBits::Bits(bits) => Some(bits),
            ClientMaxWindowBits::NotOffered | ClientMaxWindowBits::NoValue => None,
        };
        let params = DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits.unwrap_or(15),
        };
        let value = params.response_value(
            offer.server_max_window_bits.is_some(),
            client_bits.is_some(),
        );
        Some((params, value))
    })
}

/// Compresses outgoing messages; one per connection.
#[derive(Debug)]
pub struct Deflater {
    compress: Compress,
    no_context_takeover: bool,
}

impl Deflater {
    /// A compressor following the server side of `params`, at the default level.
    pub fn new(params: &DeflateParams) -> Self {
        Self::with_level(params, Compression::default().level())
    }

    /// As [`new`](Self::new), with a zlib level (0..=9).
    pub fn with_level(params: &DeflateParams, level: u32) -> Self {
        Self {
            compress: Compress::new_with_window_bits(
                Compression::new(level.min(9)),
                false,
                params.server_max_window_bits.clamp(9, 15),
            ),
            no_context_takeover: params.server_no_context_takeover,
        }
    }

    /// Appends the compressed form of one whole message to `out`, without
    /// the `00 00 ff ff` tail.
    pub fn compress(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), WsError> {
        let start = out.len();
        out.reserve(input.len() / 2 + 64);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.len().max(1024));
            }
            let before = self.compress.total_in();
            self.compress
                .compress_vec(input, out, FlushCompress::Sync)
                .map_err(|_| internal("compression failed"))?;
            let consumed = usize::try_from(self.compress.total_in() - before).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            // The flush is complete once zlib stops with output space to spare.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.len() == start {
            // Nothing to flush (an empty message after a previous flush):
            // send the empty block header that the tail completes (RFC 7692
            // 7.2.3.6), never an empty payload.
            out.push(0x00);
        }
        if self.no_context_takeover {
            self.compress.reset();
        }
        Ok(())
    }
}

/// Decompresses incoming messages; one per connection.
#[derive(Debug)]
pub struct Inflater {
    decompress: Decompress,
    no_context_takeover: bool,
    /// Compressed bytes seen in the current message so far.
    message_input: usize,
}

impl Inflater {
    /// A decompressor following the client side of `params`.
    pub fn new(params: &DeflateParams) -> Self {
        Self {
            // A window of 9 bits reads anything compressed with 8.
            decompress: Decompress::new_with_window_bits(
                false,
                params.client_max_window_bits.clamp(9, 15),
            ),
            no_context_takeover: params.client_no_context_takeover,
            message_input: 0,
        }
    }

    /// Inflates one frame's payload of a compressed message, appending to
    /// `out`; `fin` marks the message's last frame.
    ///
    /// `out` never grows past `max_size` + 1 bytes: a message that would
    /// inflate beyond `max_size` fails with 1009 at that point, however
    /// small its compressed form. Corrupt data fails with 1002.
    pub fn decompress(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_size: usize,
        fin: bool,
    ) -> Result<(), WsError> {
        self.message_input += input.len();
        let result = self.inflate(input, out, max_size).and_then(|()| {
            // An empty payload is not valid DEFLATE, but some peers send one
            // for an empty message: the tail alone would leave the stream
            // inside a stored block, so it is read as empty instead.
            if fin && self.message_input > 0 {
                self.inflate(&TAIL, out, max_size)
            } else {
                Ok(())
            }
        });
        if fin || result.is_err() {
            self.message_input = 0;
        }
        if result.is_err() || (fin && self.no_context_takeover) {
            self.decompress.reset(false);
        }
        result
    }

    fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max_size: usize,
    ) -> Result<(), WsError> {
        let limit = max_size.saturating_add(1);
        loop {
            if out.len() >= limit {
                return Err(WsError::too_big("message too big"));
            }
            if out.len() == out.capacity() {
                out.reserve_exact(out.len().max(MIN_GROW).min(limit - out.len()));
            }
            let (in_before, out_before) = (self.decompress.total_in(), out.len());
            let status = self
                .decompress
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|_| WsError::protocol("invalid compressed data"))?;
            let consumed =
                usize::try_from(self.decompress.total_in() - in_before).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            if out.len() > max_size {
                return Err(WsError::too_big("message too big"));
            }
            match status {
                // A block with BFINAL set ends the DEFLATE stream (RFC 7692
                // 7.2.3.4): whatever follows starts a new one.
                Status::StreamEnd => {
                    self.decompress.reset(false);
                    if input.is_empty() {
                        return Ok(());
                    }
                }
                Status::Ok | Status::BufError => {
                    let room_left = out.len() < out.capacity();
                    if input.is_empty() && room_left {
                        return Ok(());
                    }
                    if consumed == 0 && out.len() == out_before && room_left {
                        return Err(WsError::protocol("invalid compressed data"));
                    }
                }
            }
        }
    }
}

const fn internal(reason: &'static str) -> WsError {
    WsError {
        code: close_code::INTERNAL_ERROR,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    fn params(
        server_nct: bool,
        client_nct: bool,
        server_bits: u8,
        client_bits: u8,
    ) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: server_nct,
            client_no_context_takeover: client_nct,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        }
    }

    /// The peer's view: a decompressor for what our Deflater sends, which
    /// follows the server side of the parameters.
    fn peer_inflater(p: &DeflateParams) -> Inflater {
        Inflater::new(&DeflateParams {
            client_no_context_takeover: p.server_no_context_takeover,
            client_max_window_bits: p.server_max_window_bits,
            ..*p
        })
    }

    fn compress(d: &mut Deflater, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        d.compress(data, &mut out).expect("compress");
        out
    }

    fn inflate(i: &mut Inflater, data: &[u8]) -> Result<Vec<u8>, WsError> {
        let mut out = Vec::new();
        i.decompress(data, &mut out, 1 << 24, true).map(|()| out)
    }

    fn offers(value: &str) -> Vec<DeflateOffer> {
        parse_deflate_offers(&[value])
    }

    /// `n` words drawn pseudo-randomly: compressible, but not one repeat.
    fn text(n: usize) -> Vec<u8> {
        let words = [
            "ruvicorn ",
            "websocket ",
            "deflate ",
            "message ",
            "frame ",
            "window ",
            "bits ",
            "context ",
            "takeover ",
            "server ",
            "client ",
            "ping ",
            "pong ",
            "close ",
            "text ",
            "binary ",
        ];
        let mut state = 0x2545_f491_u32;
        (0..n)
            .flat_map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                words[(state >> 16) as usize % words.len()].bytes()
            })
            .collect()
    }

    #[test]
    fn rfc_7692_hello_one_block() {
        // RFC 7692 7.2.3.1.
        let mut d = Deflater::new(&DeflateParams::default());
        assert_eq!(compress(&mut d, b"Hello"), HELLO);
        let mut i = Inflater::new(&DeflateParams::default());
        assert_eq!(inflate(&mut i, &HELLO).expect("valid"), b"Hello");
    }

    #[test]
    fn rfc_7692_hello_sharing_the_sliding_window() {
        // RFC 7692 7.2.3.2: the second "Hello" refers back to the first.
        let shared = [0xf2, 0x00, 0x11, 0x00, 0x00];
        let mut d = Deflater::new(&DeflateParams::default());
        assert_eq!(compress(&mut d, b"Hello"), HELLO);
        assert_eq!(compress(&mut d, b"Hello"), shared);
        let mut i = Inflater::new(&DeflateParams::default());
        assert_eq!(inflate(&mut i, &HELLO).expect("valid"), b"Hello");
        assert_eq!(inflate(&mut i, &shared).expect("valid"), b"Hello");
        // Without context takeover both messages are the same 7 bytes.
        let p = params(true, true, 15, 15);
        let mut d = Deflater::new(&p);
        assert_eq!(compress(&mut d, b"Hello"), HELLO);
        assert_eq!(compress(&mut d, b"Hello"), HELLO);
        let mut i = Inflater::new(&p);
        assert_eq!(inflate(&mut i, &HELLO).expect("valid"), b"Hello");
        assert_eq!(inflate(&mut i, &HELLO).expect("valid"), b"Hello");
        // ...and a decompressor that reset cannot read a back-reference.
        let mut i = Inflater::new(&p);
        assert_eq!(inflate(&mut i, &HELLO).expect("valid"), b"Hello");
        assert_eq!(inflate(&mut i, &shared).map_err(|e| e.code), Err(1002));
    }

    #[test]
    fn rfc_7692_other_examples() {
        let mut i = Inflater::new(&DeflateParams::default());
        // 7.2.3.3: a block with no compression.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate(&mut i, &stored).expect("valid"), b"Hello");
        // 7.2.3.4: BFINAL set, then an empty non-final block header.
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate(&mut i, &bfinal).expect("valid"), b"Hello");
        // 7.2.3.5: two DEFLATE blocks in one message.
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(inflate(&mut i, &two).expect("valid"), b"Hello");
        // 7.2.3.6: an empty message.
        assert_eq!(inflate(&mut i, &[0x00]).expect("valid"), b"");
        assert_eq!(inflate(&mut i, &[]).expect("valid"), b"");
    }

    #[test]
    fn empty_message_round_trips() {
        let mut d = Deflater::new(&DeflateParams::default());
        let c = compress(&mut d, b"");
        assert!(c.len() <= 1, "{c:?}");
        let mut i = Inflater::new(&DeflateParams::default());
        assert_eq!(inflate(&mut i, &c).expect("valid"), b"");
    }

    #[test]
    fn round_trips_with_every_window_and_takeover_setting() {
        let messages: Vec<Vec<u8>> = vec![
            text(300),
            b"Hello".to_vec(),
            text(300),
            (0..100_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            text(20_000),
            Vec::new(),
            text(300),
        ];
        for bits in 9..=15u8 {
            for no_takeover in [false, true] {
                let p = params(no_takeover, no_takeover, bits, bits);
                let mut d = Deflater::new(&p);
                let mut i = peer_inflater(&p);
                let mut sizes = Vec::new();
                for m in &messages {
                    let c = compress(&mut d, m);
                    sizes.push(c.len());
                    assert_eq!(&inflate(&mut i, &c).expect("valid"), m, "bits {bits}");
                }
                // A message repeated within the window (text(300) is about
                // 2.4 KB) is nearly free only with context takeover.
                if no_takeover {
                    assert_eq!(sizes[2], sizes[0], "bits {bits}");
                    assert_eq!(sizes[6], sizes[0], "bits {bits}");
                } else if bits >= 12 {
                    assert!(sizes[2] < sizes[0] / 4, "bits {bits}: {sizes:?}");
                }
            }
        }
    }

    #[test]
    fn decompresses_a_message_split_across_frames() {
        let message = text(30_000);
        let mut d = Deflater::new(&DeflateParams::default());
        let c = compress(&mut d, &message);
        let mut i = Inflater::new(&DeflateParams::default());
        for pieces in [1usize, 2, 3, 7, 100] {
            let mut out = Vec::new();
            let chunk = c.len().div_ceil(pieces).max(1);
            let chunks: Vec<&[u8]> = c.chunks(chunk).collect();
            for (n, part) in chunks.iter().enumerate() {
                i.decompress(part, &mut out, 1 << 20, n + 1 == chunks.len())
                    .expect("valid");
            }
            assert_eq!(out, message);
            // Takeover is on: compress the next message with the same state.
            let c2 = compress(&mut d, &message);
            assert_eq!(inflate(&mut i, &c2).expect("valid"), message);
        }
    }

    #[test]
    fn zip_bomb_stops_at_max_size() {
        let zeros = vec![0u8; 10 << 20];
        let mut d = Deflater::new(&DeflateParams::default());
        let bomb = compress(&mut d, &zeros);
        assert!(bomb.len() < 20_000);
        let mut i = Inflater::new(&DeflateParams::default());
        let mut out = Vec::new();
        let err = i.decompress(&bomb, &mut out, 1 << 20, true);
        assert_eq!(err.map_err(|e| e.code), Err(1009));
        assert!(out.capacity() <= (1 << 20) + 1, "{}", out.capacity());
        // Exactly max_size is still fine.
        let mut i = Inflater::new(&DeflateParams::default());
        let mut out = Vec::new();
        i.decompress(&bomb, &mut out, 10 << 20, true).expect("fits");
        assert_eq!(out.len(), 10 << 20);
    }

    #[test]
    fn corrupt_data_is_1002() {
        let mut i = Inflater::new(&DeflateParams::default());
        assert_eq!(
            inflate(&mut i, &[0xff, 0xff, 0xff]).map_err(|e| e.code),
            Err(1002)
        );
        // The decompressor recovers for the next message.
        assert_eq!(inflate(&mut i, &HELLO).expect("valid"), b"Hello");
    }

    #[test]
    fn parses_offers() {
        assert_eq!(offers("permessage-deflate"), vec![DeflateOffer::default()]);
        let got = offers(
            "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits; \
             server_max_window_bits=10, PerMessage-Deflate ;server_no_context_takeover ; \
             client_no_context_takeover; client_max_window_bits=\"9\"",
        );
        assert_eq!(
            got,
            vec![
                DeflateOffer {
                    server_max_window_bits: Some(10),
                    client_max_window_bits: ClientMaxWindowBits::NoValue,
                    ..DeflateOffer::default()
                },
                DeflateOffer {
                    server_no_context_takeover: true,
                    client_no_context_takeover: true,
                    server_max_window_bits: None,
                    client_max_window_bits: ClientMaxWindowBits::Bits(9),
                },
            ]
        );
        // Several header lines keep their order.
        let got = parse_deflate_offers(&[
            b"permessage-deflate; server_max_window_bits=12".as_slice(),
            b"permessage-deflate",
        ]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].server_max_window_bits, Some(12));
    }

    #[test]
    fn invalid_offers_are_declined() {
        for bad in [
            "permessage-deflate; unknown_param",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=+9",
            "permessage-deflate; client_max_window_bits=\"1 0\"",
            "permessage-deflate; client_max_window_bits=\"10",
        ] {
            assert_eq!(offers(bad), vec![], "{bad}");
        }
        // A declined offer does not hide the next one.
        let got = offers("permessage-deflate; foo, permessage-deflate; client_no_context_takeover");
        assert_eq!(got.len(), 1);
        assert!(got[0].client_no_context_takeover);
    }

    #[test]
    fn negotiation_answers() {
        let n = |v: &str| negotiate_deflate(&offers(v), true).map(|(_, r)| r);
        assert_eq!(
            n("permessage-deflate").as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            n("permessage-deflate; client_max_window_bits").as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            n(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
               server_max_window_bits=10; client_max_window_bits=12"
            )
            .as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10; client_max_window_bits=12"
            )
        );
        // A window of 8 for our compressor cannot be honoured: next offer.
        assert_eq!(
            n(
                "permessage-deflate; server_max_window_bits=8, permessage-deflate; \
               client_no_context_takeover"
            )
            .as_deref(),
            Some("permessage-deflate; client_no_context_takeover")
        );
        assert_eq!(n("permessage-deflate; server_max_window_bits=8"), None);
        // 8 for the client's compressor is fine: we inflate with 9.
        let (p, r) = negotiate_deflate(
            &offers("permessage-deflate; client_max_window_bits=8"),
            true,
        )
        .expect("accepted");
        assert_eq!(r, "permessage-deflate; client_max_window_bits=8");
        assert_eq!(p.client_max_window_bits, 8);
        assert!(Inflater::new(&p)
            .decompress(&HELLO, &mut Vec::new(), 100, true)
            .is_ok());
        assert_eq!(n("x-other"), None);
        assert_eq!(
            negotiate_deflate(&offers("permessage-deflate"), false),
            None
        );
        let (p, _) = negotiate_deflate(
            &offers("permessage-deflate; server_max_window_bits=11"),
            true,
        )
        .expect("accepted");
        assert_eq!(p, params(false, false, 11, 15));
    }
}
