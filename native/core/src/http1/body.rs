//! Request body de-framing: `Content-Length` and `chunked` (RFC 9112 6, 7.1),
//! incremental over any split of the input.

use super::request::Framing;
use super::{is_field_byte, Limits, RequestError, TCHAR};

/// Hex digits allowed in a chunk size: 16 fill a `u64`, so no overflow.
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// `Content-Length` body with this many bytes left.
    Length(u64),
    /// Reading the hex digits of a chunk size.
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the size digits, which only a `;` may follow (RFC 9112 BWS).
    SizeBws {
        size: u64,
        len: usize,
    },
    /// Inside a chunk extension (after `;`); `len` counts the size line so far.
    Ext {
        size: u64,
        len: usize,
    },
    /// Saw the CR ending a chunk-size line.
    SizeLf {
        size: u64,
    },
    /// Chunk data with this many bytes left.
    Data(u64),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line or of the final empty line.
    TrailerStart,
    /// In a trailer field name; `len` counts the line so far.
    TrailerName {
        len: usize,
    },
    /// In a trailer field value.
    TrailerValue {
        len: usize,
    },
    /// Saw a CR ending a trailer line (`last`: the final empty line).
    TrailerLf {
        last: bool,
    },
    /// `Content-Length` over the body limit (only reachable if the caller
    /// built a decoder for a head `parse_request_head` would have refused).
    TooLarge,
    Done,
}

/// Incremental body decoder for one request.
#[derive(Clone, Debug)]
pub struct BodyDecoder {
    state: State,
    received: u64,
    trailers: usize,
    max_body: Option<u64>,
    max_fields: usize,
    field_size: usize,
}

const BAD_CHUNK: RequestError = RequestError::BadRequest("invalid chunk framing");
const BAD_CHUNK_SIZE: RequestError = RequestError::BadRequest("invalid chunk size");
const BAD_CHUNK_EXT: RequestError = RequestError::BadRequest("invalid chunk extension");
const BAD_TRAILER: RequestError = RequestError::BadRequest("invalid trailer field");
const EXT_TOO_LONG: RequestError = RequestError::HeaderFieldsTooLarge("chunk extension too long");
const TRAILER_TOO_LONG: RequestError = RequestError::HeaderFieldsTooLarge("trailer field too long");
const TOO_MANY_TRAILERS: RequestError =
    RequestError::HeaderFieldsTooLarge("too many trailer fields");

impl BodyDecoder {
    pub fn new(framing: Framing, limits: &Limits) -> Self {
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) if limits.body.is_some_and(|max| n > max) => State::TooLarge,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size { size: 0, digits: 0 },
        };
        BodyDecoder {
            state,
            received: 0,
            trailers: 0,
            max_body: limits.body,
            max_fields: limits.fields,
            field_size: limits.field_size,
        }
    }

    /// Whether the whole body has been read.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Payload bytes decoded so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Decode as much of `input` as possible, appending payload to `out`;
    /// returns the bytes of `input` consumed. Consumption stops exactly at
    /// the end of the body, so bytes of a pipelined request stay unconsumed.
    /// After an error the decoder's state is unspecified: close the connection.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, RequestError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Length(left) | State::Data(left) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.received += take as u64;
                    let left = left - take as u64;
                    self.state = match self.state {
                        State::Length(_) if left == 0 => State::Done,
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::DataCr,
                        _ => State::Data(left),
                    };
                }
                State::Done => break,
                State::TooLarge => return Err(RequestError::PayloadTooLarge),
                state => {
                    self.state = self.step(state, input[i])?;
                    i += 1;
                }
            }
        }
        Ok(i)
    }

    /// Advance the framing state machine by one byte.
    #[inline]
    fn step(&mut self, state: State, b: u8) -> Result<State, RequestError> {
        Ok(match state {
            State::Size { size, digits } => match b {
                b'\r' | b';' if digits == 0 => return Err(BAD_CHUNK_SIZE),
                b'\r' => {
                    self.check_body(size)?;
                    State::SizeLf { size }
                }
                b';' => {
                    self.check_body(size)?;
                    self.ext(size, usize::from(digits) + 1)?
                }
                b' ' | b'\t' if digits > 0 => {
                    self.check_body(size)?;
                    self.bws(size, usize::from(digits) + 1)?
                }
                _ => {
                    let Some(digit) = hex_digit(b) else {
                        return Err(BAD_CHUNK_SIZE);
                    };
                    if digits == MAX_SIZE_DIGITS {
                        return Err(BAD_CHUNK_SIZE);
                    }
                    State::Size {
                        size: (size << 4) | u64::from(digit),
                        digits: digits + 1,
                    }
                }
            },
            State::SizeBws { size, len } => match b {
                b' ' | b'\t' => self.bws(size, len + 1)?,
                b';' => self.ext(size, len + 1)?,
                _ => return Err(BAD_CHUNK_SIZE),
            },
            State::Ext { size, len } => match b {
                b'\r' => State::SizeLf { size },
                _ if is_field_byte(b) => self.ext(size, len + 1)?,
                _ => return Err(BAD_CHUNK_EXT),
            },
            State::SizeLf { size } => match b {
                b'\n' if size == 0 => State::TrailerStart,
                b'\n' => State::Data(size),
                _ => return Err(BAD_CHUNK),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(BAD_CHUNK),
            },
            State::DataLf => match b {
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return Err(BAD_CHUNK),
            },
            State::TrailerStart => match b {
                b'\r' => State::TrailerLf { last: true },
                _ if TCHAR[usize::from(b)] => {
                    self.trailers += 1;
                    if self.trailers > self.max_fields {
                        return Err(TOO_MANY_TRAILERS);
                    }
                    self.trailer(State::TrailerName { len: 1 })?
                }
                _ => return Err(BAD_TRAILER),
            },
            State::TrailerName { len } => match b {
                b':' => self.trailer(State::TrailerValue { len: len + 1 })?,
                _ if TCHAR[usize::from(b)] => self.trailer(State::TrailerName { len: len + 1 })?,
                _ => return Err(BAD_TRAILER),
            },
            State::TrailerValue { len } => match b {
                b'\r' => State::TrailerLf { last: false },
                _ if is_field_byte(b) => self.trailer(State::TrailerValue { len: len + 1 })?,
                _ => return Err(BAD_TRAILER),
            },
            State::TrailerLf { last } => match b {
                b'\n' if last => State::Done,
                b'\n' => State::TrailerStart,
                _ => return Err(BAD_CHUNK),
            },
            // Handled by `decode`.
            State::Length(_) | State::Data(_) | State::TooLarge | State::Done => state,
        })
    }

    /// Refuse a chunk that would take the body past the limit, before
    /// reading its data.
    #[inline]
    fn check_body(&self, size: u64) -> Result<(), RequestError> {
        match self.max_body {
            Some(max) if self.received.saturating_add(size) > max => {
                Err(RequestError::PayloadTooLarge)
            }
            _ => Ok(()),
        }
    }

    #[inline]
    fn bws(&self, size: u64, len: usize) -> Result<State, RequestError> {
        if len > self.field_size {
            return Err(EXT_TOO_LONG);
        }
        Ok(State::SizeBws { size, len })
    }

    fn ext(&self, size: u64, len: usize) -> Result<State, RequestError> {
        if len > self.field_size {
            return Err(EXT_TOO_LONG);
        }
        Ok(State::Ext { size, len })
    }

    #[inline]
    fn trailer(&self, state: State) -> Result<State, RequestError> {
        match state {
            State::TrailerName { len } | State::TrailerValue { len } if len > self.field_size => {
                Err(TRAILER_TOO_LONG)
            }
            _ => Ok(state),
        }
    }
}

#[inline]
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> Limits {
        Limits {
            request_line: 100,
            fields: 4,
            field_size: 32,
            body: None,
        }
    }

    /// Decode `input` whole: (payload, consumed, complete).
    fn decode_with(
        framing: Framing,
        limits: &Limits,
        input: &[u8],
    ) -> Result<(Vec<u8>, usize, bool), RequestError> {
        let mut d = BodyDecoder::new(framing, limits);
        let mut out = Vec::new();
        let n = d.decode(input, &mut out)?;
        assert_eq!(d.received(), out.len() as u64);
        Ok((out, n, d.is_complete()))
    }

    /// Decode `input` one byte at a time.
    fn decode_bytewise(
        framing: Framing,
        limits: &Limits,
        input: &[u8],
    ) -> Result<(Vec<u8>, usize, bool), RequestError> {
        let mut d = BodyDecoder::new(framing, limits);
        let mut out = Vec::new();
        let mut consumed = 0;
        for i in 0..input.len() {
            let n = d.decode(&input[i..=i], &mut out)?;
            consumed += n;
            if n == 0 {
                break;
            }
        }
        Ok((out, consumed, d.is_complete()))
    }

    fn chunked(input: &[u8]) -> Result<(Vec<u8>, usize, bool), RequestError> {
        let whole = decode_with(Framing::Chunked, &limits(), input);
        let bytewise = decode_bytewise(Framing::Chunked, &limits(), input);
        assert_eq!(whole, bytewise, "{:?}", String::from_utf8_lossy(input));
        whole
    }

    #[track_caller]
    fn chunked_ok(input: &[u8], body: &[u8]) {
        assert_eq!(chunked(input), Ok((body.to_vec(), input.len(), true)));
    }

    #[track_caller]
    fn chunked_bad(input: &[u8]) {
        let e = chunked(input);
        assert!(
            matches!(e, Err(RequestError::BadRequest(_))),
            "{:?}: {e:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[test]
    fn no_body() {
        for framing in [Framing::None, Framing::Length(0)] {
            let mut d = BodyDecoder::new(framing, &limits());
            assert!(d.is_complete());
            let mut out = Vec::new();
            assert_eq!(d.decode(b"GET / HTTP/1.1\r\n", &mut out), Ok(0));
            assert!(out.is_empty());
            assert_eq!(d.received(), 0);
        }
    }

    #[test]
    fn content_length() {
        let mut d = BodyDecoder::new(Framing::Length(5), &limits());
        let mut out = Vec::new();
        assert_eq!(d.decode(b"he", &mut out), Ok(2));
        assert!(!d.is_complete());
        assert_eq!(d.received(), 2);
        assert_eq!(d.decode(b"", &mut out), Ok(0));
        assert_eq!(d.decode(b"lloGET", &mut out), Ok(3));
        assert!(d.is_complete());
        assert_eq!(out, b"hello");
        assert_eq!(d.decode(b"more", &mut out), Ok(0));
        assert_eq!(d.received(), 5);
    }

    #[test]
    fn content_length_over_limit() {
        let limits = Limits {
            body: Some(4),
            ..limits()
        };
        let mut d = BodyDecoder::new(Framing::Length(5), &limits);
        assert_eq!(
            d.decode(b"x", &mut Vec::new()),
            Err(RequestError::PayloadTooLarge)
        );
        let mut d = BodyDecoder::new(Framing::Length(4), &limits);
        assert_eq!(d.decode(b"abcd", &mut Vec::new()), Ok(4));
        assert!(d.is_complete());
    }

    #[test]
    fn chunked_basic() {
        chunked_ok(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world");
        chunked_ok(b"0\r\n\r\n", b"");
        chunked_ok(b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789");
        chunked_ok(b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789");
        chunked_ok(b"000001\r\nx\r\n000\r\n\r\n", b"x");
        chunked_ok(b"0000000000000001\r\nx\r\n0\r\n\r\n", b"x");
    }

    #[test]
    fn chunked_stops_at_end() {
        let input = b"3\r\nabc\r\n0\r\n\r\nPOST / HTTP/1.1\r\n";
        assert_eq!(chunked(input), Ok((b"abc".to_vec(), 13, true)));
    }

    #[test]
    fn chunk_extensions() {
        chunked_ok(b"3;name=value\r\nabc\r\n0;x\r\n\r\n", b"abc");
        chunked_ok(b"3;a=\"q s\";b\r\nabc\r\n0\r\n\r\n", b"abc");
        chunked_ok(b"3;\t\xff\r\nabc\r\n0\r\n\r\n", b"abc");
        chunked_bad(b"3;a\x00\r\nabc\r\n0\r\n\r\n");
        chunked_bad(b"3;a\x7f\r\nabc\r\n0\r\n\r\n");
        chunked_bad(b"3;a\nabc\r\n0\r\n\r\n");
        chunked_bad(b"3;a\rb\r\nabc\r\n0\r\n\r\n");
        // The size line counts against the field size limit (32).
        let ok = format!("3;{}\r\nabc\r\n0\r\n\r\n", "e".repeat(30));
        chunked_ok(ok.as_bytes(), b"abc");
        let long = format!("3;{}\r\nabc\r\n0\r\n\r\n", "e".repeat(31));
        assert_eq!(chunked(long.as_bytes()), Err(EXT_TOO_LONG));
        // Per chunk, not cumulative.
        let many = format!("1;{e}\r\na\r\n1;{e}\r\nb\r\n0\r\n\r\n", e = "e".repeat(30));
        chunked_ok(many.as_bytes(), b"ab");
    }

    #[test]
    fn whitespace_before_extension_is_accepted() {
        // RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name ... )
        let mut decoder = BodyDecoder::new(Framing::Chunked, &Limits::default());
        let mut out = Vec::new();
        let input = b"3 \t;x\r\nabc\r\n0\r\n\r\n";
        assert_eq!(decoder.decode(input, &mut out), Ok(input.len()));
        assert_eq!(out, b"abc");
        assert!(decoder.is_complete());
    }

    #[test]
    fn chunk_size_refused() {
        for bad in [
            &b"\r\nabc\r\n0\r\n\r\n"[..],
            b";x\r\n0\r\n\r\n",
            b"+3\r\nabc\r\n0\r\n\r\n",
            b"-3\r\nabc\r\n0\r\n\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            b" 3\r\nabc\r\n0\r\n\r\n",
            b"3 \r\nabc\r\n0\r\n\r\n",
            b"3\t\r\nabc\r\n0\r\n\r\n",
            b"3 x\r\nabc\r\n0\r\n\r\n",
            b"g\r\n",
            b"3\n\nabc\r\n0\r\n\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\rabc\r\n0\r\n\r\n",
            b"3\rabc",
            b"00000000000000001\r\nx\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"ffffffffffffffffff\r\n",
        ] {
            chunked_bad(bad);
        }
    }

    #[test]
    fn chunk_data_framing_refused() {
        chunked_bad(b"3\r\nabcd\r\n0\r\n\r\n");
        chunked_bad(b"3\r\nab\r\n0\r\n\r\n");
        chunked_bad(b"3\r\nabc\n0\r\n\r\n");
        chunked_bad(b"3\r\nabc\r0\r\n\r\n");
        chunked_bad(b"3\r\nabc0\r\n\r\n");
        chunked_bad(b"0\r\n\n");
        chunked_bad(b"0\r\n\r\r");
        chunked_bad(b"0\r\n\rx");
    }

    #[test]
    fn huge_chunk_size_is_accepted_in_pieces() {
        let mut d = BodyDecoder::new(Framing::Chunked, &limits());
        let mut out = Vec::new();
        assert_eq!(d.decode(b"ffffffffffffffff\r\nabc", &mut out), Ok(21));
        assert_eq!(out, b"abc");
        assert!(!d.is_complete());
    }

    #[test]
    fn trailers() {
        chunked_ok(b"3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n", b"abc");
        chunked_ok(b"0\r\nA: 1\r\nB:\r\nC:  \t x \r\n\r\n", b"");
        chunked_ok(b"0\r\nA: caf\xc3\xa9\r\n\r\n", b"");
        for bad in [
            &b"0\r\nA : 1\r\n\r\n"[..],
            b"0\r\n: 1\r\n\r\n",
            b"0\r\nA\r\n\r\n",
            b"0\r\n A: 1\r\n\r\n",
            b"0\r\nA: 1\r\n b\r\n\r\n",
            b"0\r\nA: 1\n\r\n",
            b"0\r\nA: 1\r\n\n",
            b"0\r\nA: \x01\r\n\r\n",
            b"0\r\nA(: 1\r\n\r\n",
            b"0\r\nA: 1\rB: 2\r\n\r\n",
        ] {
            chunked_bad(bad);
        }
    }

    #[test]
    fn trailer_limits() {
        // fields = 4, field_size = 32.
        chunked_ok(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", b"");
        assert_eq!(
            chunked(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n"),
            Err(TOO_MANY_TRAILERS)
        );
        let ok = format!("0\r\nX: {}\r\n\r\n", "v".repeat(29));
        chunked_ok(ok.as_bytes(), b"");
        let long = format!("0\r\nX: {}\r\n\r\n", "v".repeat(30));
        assert_eq!(chunked(long.as_bytes()), Err(TRAILER_TOO_LONG));
        let long_name = format!("0\r\n{}: v\r\n\r\n", "n".repeat(33));
        assert_eq!(chunked(long_name.as_bytes()), Err(TRAILER_TOO_LONG));
    }

    #[test]
    fn chunked_body_limit() {
        let limits = Limits {
            body: Some(10),
            ..limits()
        };
        let ok = b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
        assert_eq!(
            decode_with(Framing::Chunked, &limits, ok),
            Ok((b"helloworld".to_vec(), ok.len(), true))
        );
        let over = b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n";
        assert_eq!(
            decode_with(Framing::Chunked, &limits, over),
            Err(RequestError::PayloadTooLarge)
        );
        // Refused at the size line, before any of the chunk's data.
        let mut d = BodyDecoder::new(Framing::Chunked, &limits);
        let mut out = Vec::new();
        assert_eq!(
            d.decode(b"5\r\nhello\r\n6;", &mut out),
            Err(RequestError::PayloadTooLarge)
        );
        assert_eq!(
            decode_bytewise(Framing::Chunked, &limits, b"b\r\n"),
            Err(RequestError::PayloadTooLarge)
        );
        assert_eq!(
            decode_with(Framing::Chunked, &limits, b"ffffffffffffffff\r\n"),
            Err(RequestError::PayloadTooLarge)
        );
    }

    fn encode_chunked(chunks: &[(Vec<u8>, Option<String>)], trailers: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for (data, ext) in chunks {
            if data.is_empty() {
                continue;
            }
            out.extend_from_slice(format!("{:x}", data.len()).as_bytes());
            if let Some(ext) = ext {
                out.push(b';');
                out.extend_from_slice(ext.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        for t in trailers {
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Feed `input` cut at `cuts`, carrying unconsumed bytes over like a
    /// connection buffer does.
    fn decode_cut(
        framing: Framing,
        limits: &Limits,
        input: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<u8>, usize, bool), RequestError> {
        let mut d = BodyDecoder::new(framing, limits);
        let mut out = Vec::new();
        let mut buffer = Vec::new();
        let mut consumed = 0;
        let mut last = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            buffer.extend_from_slice(&input[last..cut]);
            last = cut;
            let n = d.decode(&buffer, &mut out)?;
            consumed += n;
            buffer.drain(..n);
        }
        Ok((out, consumed, d.is_complete()))
    }

    proptest! {
        #[test]
        fn chunked_any_split(
            chunks in prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..40),
                 prop::option::of("[a-z]{1,5}(=[a-z0-9]{1,5})?")),
                0..8),
            trailers in prop::collection::vec("[A-Za-z-]{1,8}: [ -~]{0,10}", 0..4),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            tail in prop::collection::vec(any::<u8>(), 0..10),
        ) {
            let body: Vec<u8> = chunks.iter().flat_map(|(d, _)| d.clone()).collect();
            let mut input = encode_chunked(&chunks, &trailers);
            let framed = input.len();
            input.extend_from_slice(&tail);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            let limits = limits();
            let expected = Ok((body, framed, true));
            prop_assert_eq!(&decode_with(Framing::Chunked, &limits, &input), &expected);
            prop_assert_eq!(&decode_cut(Framing::Chunked, &limits, &input, &cuts), &expected);
            prop_assert_eq!(&decode_bytewise(Framing::Chunked, &limits, &input), &expected);
        }

        #[test]
        fn length_any_split(
            body in prop::collection::vec(any::<u8>(), 0..200),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            tail in prop::collection::vec(any::<u8>(), 0..10),
        ) {
            let mut input = body.clone();
            input.extend_from_slice(&tail);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            let framing = Framing::Length(body.len() as u64);
            let expected = Ok((body.clone(), body.len(), true));
            prop_assert_eq!(&decode_cut(framing, &limits(), &input, &cuts), &expected);
            prop_assert_eq!(&decode_bytewise(framing, &limits(), &input), &expected);
        }

        #[test]
        fn random_bytes_never_panic(
            input in prop::collection::vec(any::<u8>(), 0..200),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            let limits = Limits { body: Some(100), ..limits() };
            let whole = decode_with(Framing::Chunked, &limits, &input);
            let cut = decode_cut(Framing::Chunked, &limits, &input, &cuts);
            // Any split gives the same verdict.
            prop_assert_eq!(whole.is_ok(), cut.is_ok());
            if let (Ok(a), Ok(b)) = (whole, cut) {
                prop_assert_eq!(a, b);
            }
        }

        #[test]
        fn chunk_like_bytes_never_panic(
            pieces in prop::collection::vec(
                prop_oneof![
                    Just(b"\r\n".to_vec()), Just(b"\r".to_vec()), Just(b"\n".to_vec()),
                    Just(b"0".to_vec()), Just(b";".to_vec()), Just(b":".to_vec()),
                    "[0-9a-fA-F]{1,3}".prop_map(String::into_bytes),
                    prop::collection::vec(any::<u8>(), 1..4),
                ],
                0..30),
        ) {
            let input: Vec<u8> = pieces.concat();
            let whole = decode_with(Framing::Chunked, &limits(), &input);
            let bytewise = decode_bytewise(Framing::Chunked, &limits(), &input);
            prop_assert_eq!(whole, bytewise);
        }
    }
}
