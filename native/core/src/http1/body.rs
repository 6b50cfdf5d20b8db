//! Request body de-framing: `Content-Length` and `chunked` (RFC 9112 6, 7.1),
//! incremental over any split of the input.
//!
//! Every byte of a chunked body's framing is checked against the grammar of
//! RFC 9112 7.1; nothing is skipped, since a proxy that reads a skipped byte
//! differently (an unterminated quoted-string in a chunk extension, say)
//! would put the end of the body somewhere else:
//!
//! ```text
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! chunk-ext-name = token
//! chunk-ext-val  = token / quoted-string
//! quoted-string  = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! trailer-section = *( field-line CRLF )
//! field-line     = field-name ":" OWS field-value OWS
//! ```

use super::request::Framing;
use super::{Limits, RequestError};
use crate::syntax::{hex_digit, is_field_byte, is_tchar};

/// A chunk size with any of these bits set would overflow one more hex digit.
const SIZE_OVERFLOW_BITS: u64 = !(u64::MAX >> 4);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// `Content-Length` body with this many bytes left.
    Length(u64),
    /// Reading the hex digits of a chunk size (leading zeros included).
    Size,
    /// BWS after the size or after an extension: only more BWS or `;` may
    /// follow (whitespace right before the CRLF is not in the grammar).
    ExtBws,
    /// After `;` and any BWS: a `chunk-ext-name` must start.
    ExtNameStart,
    /// In a `chunk-ext-name`.
    ExtName,
    /// BWS after a `chunk-ext-name`: more BWS, `=` or `;`.
    ExtNameBws,
    /// After `=` and any BWS: a token or a quoted-string must start.
    ExtValueStart,
    /// In a token `chunk-ext-val`.
    ExtToken,
    /// Inside a quoted-string, after its opening DQUOTE.
    ExtQuoted,
    /// After a backslash inside a quoted-string.
    ExtQuotedPair,
    /// Right after the closing DQUOTE of a quoted-string.
    ExtQuotedEnd,
    /// Saw the CR ending a chunk-size line.
    SizeLf,
    /// Chunk data with this many bytes left.
    Data(u64),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line or of the final empty line.
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value (OWS included).
    TrailerValue,
    /// Saw a CR ending a trailer line (`last`: the final empty line).
    TrailerLf {
        last: bool,
    },
    /// `Content-Length` over the body limit (only reachable if the caller
    /// built a decoder for a head `parse_request_head` would have refused).
    TooLarge,
    Done,
}

impl State {
    /// Whether the state is inside a chunk-size line, before its CR.
    fn in_size_line(self) -> bool {
        matches!(
            self,
            State::Size
                | State::ExtBws
                | State::ExtNameStart
                | State::ExtName
                | State::ExtNameBws
                | State::ExtValueStart
                | State::ExtToken
                | State::ExtQuoted
                | State::ExtQuotedPair
                | State::ExtQuotedEnd
        )
    }
}

/// Incremental body decoder for one request.
#[derive(Clone, Debug)]
pub struct BodyDecoder {
    state: State,
    /// The size of the chunk whose size line is being read.
    size: u64,
    /// Bytes of the current chunk-size or trailer line so far, without CRLF.
    line: usize,
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
const SIZE_LINE_TOO_LONG: RequestError =
    RequestError::HeaderFieldsTooLarge("chunk size line too long");
const TRAILER_TOO_LONG: RequestError = RequestError::HeaderFieldsTooLarge("trailer field too long");
const TOO_MANY_TRAILERS: RequestError =
    RequestError::HeaderFieldsTooLarge("too many trailer fields");

#[inline]
fn is_bws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl BodyDecoder {
    pub fn new(framing: Framing, limits: &Limits) -> Self {
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) if limits.body.is_some_and(|max| n > max) => State::TooLarge,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size,
        };
        BodyDecoder {
            state,
            size: 0,
            line: 0,
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
        let line_before = self.line;
        if b != b'\r' {
            if state.in_size_line() {
                self.count_line_byte(SIZE_LINE_TOO_LONG)?;
            } else if matches!(
                state,
                State::TrailerStart | State::TrailerName | State::TrailerValue
            ) {
                self.count_line_byte(TRAILER_TOO_LONG)?;
            }
        }
        Ok(match state {
            State::Size => {
                if let Some(digit) = hex_digit(b) {
                    // Check before shifting: leading zeros never overflow.
                    if self.size & SIZE_OVERFLOW_BITS != 0 {
                        return Err(BAD_CHUNK_SIZE);
                    }
                    self.size = (self.size << 4) | u64::from(digit);
                    return Ok(State::Size);
                }
                if line_before == 0 {
                    return Err(BAD_CHUNK_SIZE);
                }
                match b {
                    b'\r' => self.end_size(State::SizeLf)?,
                    b';' => self.end_size(State::ExtNameStart)?,
                    _ if is_bws(b) => self.end_size(State::ExtBws)?,
                    _ => return Err(BAD_CHUNK_SIZE),
                }
            }
            State::ExtBws => match b {
                b';' => State::ExtNameStart,
                _ if is_bws(b) => State::ExtBws,
                _ => return Err(BAD_CHUNK_EXT),
            },
            State::ExtNameStart => match b {
                _ if is_bws(b) => State::ExtNameStart,
                _ if is_tchar(b) => State::ExtName,
                _ => return Err(BAD_CHUNK_EXT),
            },
            State::ExtName | State::ExtNameBws => match b {
                b'=' => State::ExtValueStart,
                b';' => State::ExtNameStart,
                b'\r' if state == State::ExtName => State::SizeLf,
                _ if is_bws(b) => State::ExtNameBws,
                _ if is_tchar(b) && state == State::ExtName => State::ExtName,
                _ => return Err(BAD_CHUNK_EXT),
            },
            State::ExtValueStart => match b {
                b'"' => State::ExtQuoted,
                _ if is_bws(b) => State::ExtValueStart,
                _ if is_tchar(b) => State::ExtToken,
                _ => return Err(BAD_CHUNK_EXT),
            },
            State::ExtToken | State::ExtQuotedEnd => match b {
                b';' => State::ExtNameStart,
                b'\r' => State::SizeLf,
                _ if is_bws(b) => State::ExtBws,
                _ if is_tchar(b) && state == State::ExtToken => State::ExtToken,
                _ => return Err(BAD_CHUNK_EXT),
            },
            State::ExtQuoted => match b {
                b'"' => State::ExtQuotedEnd,
                b'\\' => State::ExtQuotedPair,
                // qdtext: HTAB, SP, VCHAR but DQUOTE and backslash, obs-text.
                _ if is_field_byte(b) => State::ExtQuoted,
                _ => return Err(BAD_CHUNK_EXT),
            },
            State::ExtQuotedPair => match b {
                // quoted-pair: "\" ( HTAB / SP / VCHAR / obs-text )
                _ if is_field_byte(b) => State::ExtQuoted,
                _ => return Err(BAD_CHUNK_EXT),
            },
            State::SizeLf => match b {
                b'\n' if self.size == 0 => {
                    self.line = 0;
                    State::TrailerStart
                }
                b'\n' => State::Data(self.size),
                _ => return Err(BAD_CHUNK),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(BAD_CHUNK),
            },
            State::DataLf => match b {
                b'\n' => {
                    self.size = 0;
                    self.line = 0;
                    State::Size
                }
                _ => return Err(BAD_CHUNK),
            },
            State::TrailerStart => match b {
                b'\r' => State::TrailerLf { last: true },
                _ if is_tchar(b) => {
                    self.trailers += 1;
                    if self.trailers > self.max_fields {
                        return Err(TOO_MANY_TRAILERS);
                    }
                    State::TrailerName
                }
                _ => return Err(BAD_TRAILER),
            },
            State::TrailerName => match b {
                b':' => State::TrailerValue,
                _ if is_tchar(b) => State::TrailerName,
                _ => return Err(BAD_TRAILER),
            },
            // OWS field-value OWS: any run of SP, HTAB, VCHAR and obs-text.
            State::TrailerValue => match b {
                b'\r' => State::TrailerLf { last: false },
                _ if is_field_byte(b) => State::TrailerValue,
                _ => return Err(BAD_TRAILER),
            },
            State::TrailerLf { last } => match b {
                b'\n' if last => State::Done,
                b'\n' => {
                    self.line = 0;
                    State::TrailerStart
                }
                _ => return Err(BAD_CHUNK),
            },
            // Handled by `decode`.
            State::Length(_) | State::Data(_) | State::TooLarge | State::Done => state,
        })
    }

    /// Count one more byte of a framing line against the field size limit.
    #[inline]
    fn count_line_byte(&mut self, too_long: RequestError) -> Result<(), RequestError> {
        self.line += 1;
        if self.line > self.field_size {
            return Err(too_long);
        }
        Ok(())
    }

    /// The chunk size is complete: refuse a chunk that would take the body
    /// past the limit before reading its data, else go on to `next`.
    #[inline]
    fn end_size(&self, next: State) -> Result<State, RequestError> {
        match self.max_body {
            Some(max) if self.received.saturating_add(self.size) > max => {
                Err(RequestError::PayloadTooLarge)
            }
            _ => Ok(next),
        }
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

    /// A recursive-descent reading of RFC 9112 7.1.1 over a whole size
    /// line (without CRLF), written independently of the state machine.
    fn reference_size_line(line: &[u8]) -> bool {
        let at = |i: usize| line.get(i).copied();
        let bws = |mut i: usize| {
            while matches!(at(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            i
        };
        let token = |mut i: usize| {
            let start = i;
            while at(i).is_some_and(is_tchar) {
                i += 1;
            }
            (i > start).then_some(i)
        };
        let quoted = |mut i: usize| {
            if at(i) != Some(b'"') {
                return None;
            }
            i += 1;
            loop {
                match at(i)? {
                    b'"' => return Some(i + 1),
                    b'\\' => match at(i + 1)? {
                        b'\t' | b' '..=b'~' | 0x80..=0xff => i += 2,
                        _ => return None,
                    },
                    b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => i += 1,
                    _ => return None,
                }
            }
        };
        let Some(mut i) = (0..=line.len()).find(|&i| !at(i).is_some_and(|b| b.is_ascii_hexdigit()))
        else {
            return false;
        };
        if i == 0 {
            return false;
        }
        while i < line.len() {
            i = bws(i);
            if at(i) != Some(b';') {
                return false;
            }
            let Some(end) = token(bws(i + 1)) else {
                return false;
            };
            i = end;
            let j = bws(i);
            if at(j) == Some(b'=') {
                let k = bws(j + 1);
                let Some(end) = token(k).or_else(|| quoted(k)) else {
                    return false;
                };
                i = end;
            }
        }
        true
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
        chunked_bad(b"3;\t\xff\r\nabc\r\n0\r\n\r\n");
        chunked_bad(b"3;a\x00\r\nabc\r\n0\r\n\r\n");
        chunked_bad(b"3;a\x7f\r\nabc\r\n0\r\n\r\n");
        chunked_bad(b"3;a\nabc\r\n0\r\n\r\n");
        chunked_bad(b"3;a\rb\r\nabc\r\n0\r\n\r\n");
        // The size line counts against the field size limit (32).
        let ok = format!("3;{}\r\nabc\r\n0\r\n\r\n", "e".repeat(30));
        chunked_ok(ok.as_bytes(), b"abc");
        let long = format!("3;{}\r\nabc\r\n0\r\n\r\n", "e".repeat(31));
        assert_eq!(chunked(long.as_bytes()), Err(SIZE_LINE_TOO_LONG));
        // Per chunk, not cumulative.
        let many = format!("1;{e}\r\na\r\n1;{e}\r\nb\r\n0\r\n\r\n", e = "e".repeat(30));
        chunked_ok(many.as_bytes(), b"ab");
    }

    /// Size lines (without their CRLF) of a 3-byte chunk the grammar admits.
    const EXT_OK: &[&[u8]] = &[
        b"3;a",
        b"3;a=b",
        b"3;a=b;c=d;e",
        b"3 ;a",
        b"3\t; \ta",
        b"3;a =b",
        b"3;a= b",
        b"3;a \t=\t b",
        b"3;a ;b",
        b"3;a=b ;c",
        b"3;a=\"\"",
        b"3;a=\"x y\"",
        b"3;a=\"\tx\"",
        b"3;a=\"!#[]~\"",
        b"3;a=\"\\\"\"",
        b"3;a=\"\\\\\"",
        b"3;a=\"\\ \\\t\\x\"",
        b"3;a=\"\x80\xff\"",
        b"3;a=\"\\\xff\"",
        b"3;a=\";b=c\"",
        b"3;a=\"x\";b=\"y\"",
        b"3;a=\"x\" ;b",
        b"3;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~",
    ];

    /// Size lines the grammar refuses: each is a 400.
    const EXT_BAD: &[&[u8]] = &[
        // Quoted-strings: unterminated, or with bytes qdtext and quoted-pair lack.
        b"3;a=\"x",
        b"3;a=\"",
        b"3;a=\"x\\\"",
        b"3;a=\"x\x00\"",
        b"3;a=\"x\x01\"",
        b"3;a=\"x\x7f\"",
        b"3;a=\"x\nb\"",
        b"3;a=\"x\\\x00\"",
        b"3;a=\"x\\\x7f\"",
        b"3;a=\"x\"y",
        b"3;a=\"x\"\"",
        b"3;a=x\"y\"",
        b"3;\"a\"=b",
        b"3;a\"=b",
        // Names and token values.
        b"3;",
        b"3;;a",
        b"3;a;",
        b"3;=b",
        b"3;a=",
        b"3;a==b",
        b"3;a=b=c",
        b"3;a b",
        b"3;a=b c",
        b"3;a=(b)",
        b"3;a/b",
        b"3;a=b,c",
        b"3;a@b",
        b"3;caf\xc3\xa9",
        b"3;a=\xff",
        b"3;a\x0bb",
        // Whitespace not followed by `;` (in particular right before the CRLF).
        b"3 ",
        b"3\t",
        b"3;a ",
        b"3;a=b ",
        b"3;a=\"x\" ",
        b"3;a=b\t",
        b"3 a",
        b"3;a = ",
        b"3 x;a",
        // Not BWS.
        b"3\x0b;a",
        b"3;\x0ba",
        b"3\x00;a",
    ];

    #[test]
    fn chunk_extension_grammar() {
        for &line in EXT_OK {
            let mut input = line.to_vec();
            input.extend_from_slice(b"\r\nabc\r\n0");
            input.extend_from_slice(&line[1..]);
            input.extend_from_slice(b"\r\n\r\n");
            let limits = Limits::default();
            let expected = Ok((b"abc".to_vec(), input.len(), true));
            assert_eq!(
                decode_with(Framing::Chunked, &limits, &input),
                expected,
                "{:?}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(decode_bytewise(Framing::Chunked, &limits, &input), expected);
            assert!(reference_size_line(line), "{line:?}");
        }
        for &line in EXT_BAD {
            let mut input = line.to_vec();
            input.extend_from_slice(b"\r\nabc\r\n0\r\n\r\n");
            chunked_bad(&input);
            // The same line as the last chunk.
            let mut last = b"0".to_vec();
            last.extend_from_slice(&line[1..]);
            last.extend_from_slice(b"\r\n\r\n");
            chunked_bad(&last);
            assert!(!reference_size_line(line), "{line:?}");
        }
    }

    #[test]
    fn unterminated_quoted_string_is_refused_at_the_line_end() {
        // The smuggling vector: a proxy that honours quoting reads the CRLF,
        // the chunk data and the next chunk as part of the extension.
        let mut d = BodyDecoder::new(Framing::Chunked, &Limits::default());
        let mut out = Vec::new();
        assert_eq!(d.decode(b"5;a=\"x", &mut out), Ok(6));
        assert_eq!(d.decode(b"\r\n", &mut out), Err(BAD_CHUNK_EXT));
        assert!(out.is_empty());
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
    fn leading_zeros_in_chunk_size() {
        chunked_ok(b"000000000000000000005\r\nhello\r\n0\r\n\r\n", b"hello");
        chunked_ok(b"00000000000000001\r\nx\r\n0\r\n\r\n", b"x");
        chunked_ok(b"3\r\nabc\r\n000000000000000000000000\r\n\r\n", b"abc");
        // As many zeros as the size line limit (32) allows.
        let zeros = format!("{}3\r\nabc\r\n0\r\n\r\n", "0".repeat(31));
        chunked_ok(zeros.as_bytes(), b"abc");
        let zeros = format!("{}3;e\r\nabc\r\n0\r\n\r\n", "0".repeat(29));
        chunked_ok(zeros.as_bytes(), b"abc");
        let long = format!("{}3\r\nabc\r\n0\r\n\r\n", "0".repeat(32));
        assert_eq!(chunked(long.as_bytes()), Err(SIZE_LINE_TOO_LONG));
        let long = format!("{}\r\n\r\n", "0".repeat(33));
        assert_eq!(chunked(long.as_bytes()), Err(SIZE_LINE_TOO_LONG));
    }

    #[test]
    fn chunk_size_overflow_is_refused_before_shifting() {
        let mut d = BodyDecoder::new(Framing::Chunked, &Limits::default());
        assert_eq!(d.decode(b"0fffffffffffffff", &mut Vec::new()), Ok(16));
        assert_eq!(d.size, u64::MAX >> 4);
        assert_eq!(d.decode(b"f", &mut Vec::new()), Ok(1));
        assert_eq!(d.size, u64::MAX);
        // One more digit, even a zero, would shift bits out.
        assert_eq!(d.decode(b"0", &mut Vec::new()), Err(BAD_CHUNK_SIZE));
        let mut d = BodyDecoder::new(Framing::Chunked, &Limits::default());
        assert_eq!(
            d.decode(b"10000000000000000\r\n", &mut Vec::new()),
            Err(BAD_CHUNK_SIZE)
        );
        let mut d = BodyDecoder::new(Framing::Chunked, &Limits::default());
        let n = d.decode(b"000ffffffffffffffff\r\nab", &mut Vec::new());
        assert_eq!(n, Ok(23));
        assert!(!d.is_complete());
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
        chunked_ok(b"0\r\nA:x\ty  z\r\n\r\n", b"");
        chunked_ok(b"0\r\n!#$%&'*+-.^_`|~:\"(),/;<=>?@[]{}\\\r\n\r\n", b"");
        for bad in [
            &b"0\r\nA : 1\r\n\r\n"[..],
            b"0\r\nA\t: 1\r\n\r\n",
            b"0\r\n: 1\r\n\r\n",
            b"0\r\nA\r\n\r\n",
            b"0\r\n A: 1\r\n\r\n",
            b"0\r\n\tA: 1\r\n\r\n",
            b"0\r\nA: 1\r\n b\r\n\r\n",
            b"0\r\nA: 1\r\n\tb\r\n\r\n",
            b"0\r\nA: 1\n\r\n",
            b"0\r\nA: 1\r\n\n",
            b"0\r\nA: \x01\r\n\r\n",
            b"0\r\nA: a\x00b\r\n\r\n",
            b"0\r\nA: a\x7f\r\n\r\n",
            b"0\r\nA: a\x0bb\r\n\r\n",
            b"0\r\nA(: 1\r\n\r\n",
            b"0\r\n\"A\": 1\r\n\r\n",
            b"0\r\nA\xc3\xa9: 1\r\n\r\n",
            b"0\r\nA: 1\rB: 2\r\n\r\n",
            b"0\r\nA: 1\r\r\n\r\n",
        ] {
            chunked_bad(bad);
        }
    }

    #[test]
    fn trailers_never_change_framing() {
        // Framing fields in the trailer section are just trailer fields: the
        // body ends at the empty line, and the bytes after it stay unread.
        let body = b"3\r\nabc\r\n0\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut input = body.to_vec();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(chunked(&input), Ok((b"abc".to_vec(), body.len(), true)));
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

    /// A chunked body: each chunk's size with `zeros` leading zeros and its
    /// extensions (`ext`, written as is after the size), then trailers.
    fn encode_chunked(chunks: &[(Vec<u8>, usize, String)], trailers: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for (data, zeros, ext) in chunks {
            if data.is_empty() {
                continue;
            }
            out.extend_from_slice("0".repeat(*zeros).as_bytes());
            out.extend_from_slice(format!("{:x}", data.len()).as_bytes());
            out.extend_from_slice(ext.as_bytes());
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

    /// Limits wide enough for every size line the property tests generate.
    fn wide() -> Limits {
        Limits {
            field_size: 400,
            ..limits()
        }
    }

    /// Valid chunk extensions: BWS, token and quoted-string values with
    /// quoted-pairs and obs-text.
    const EXT_RE: &str = r#"([ \t]{0,2};[ \t]{0,2}[a-z!#~]{1,5}([ \t]{0,2}=[ \t]{0,2}([a-z0-9]{1,5}|"([\t !#-\[\]-~é]|\\[\t -~é]){0,8}"))?){0,3}"#;

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
                (prop::collection::vec(any::<u8>(), 0..40), 0usize..24, EXT_RE),
                0..8),
            trailers in prop::collection::vec(
                "([A-Za-z-]{1,8}|Content-Length|Transfer-Encoding):[ \t]{0,2}[ -~]{0,10}",
                0..4),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            tail in prop::collection::vec(any::<u8>(), 0..10),
        ) {
            let body: Vec<u8> = chunks.iter().flat_map(|(d, _, _)| d.clone()).collect();
            let mut input = encode_chunked(&chunks, &trailers);
            let framed = input.len();
            input.extend_from_slice(&tail);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            let limits = wide();
            let expected = Ok((body, framed, true));
            prop_assert_eq!(&decode_with(Framing::Chunked, &limits, &input), &expected);
            prop_assert_eq!(&decode_cut(Framing::Chunked, &limits, &input, &cuts), &expected);
            prop_assert_eq!(&decode_bytewise(Framing::Chunked, &limits, &input), &expected);
        }

        #[test]
        fn size_line_matches_reference(
            zeros in 1usize..3,
            pieces in prop::collection::vec(
                prop::sample::select(vec![
                    &b"3"[..], b"a", b"x", b"~", b" ", b"\t", b";", b"=", b"\"", b"\\",
                    b"\xc3\xa9", b"\x00", b"\x01", b"\x7f", b"\x0b", b"(", b",", b"/",
                ]),
                0..30),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut line = b"0".repeat(zeros);
            line.extend(pieces.concat());
            let digits: Vec<u8> = line.iter().copied().take_while(u8::is_ascii_hexdigit).collect();
            let size = u64::from_str_radix(std::str::from_utf8(&digits).unwrap_or("0"), 16);
            let size = size.unwrap_or(u64::MAX);
            prop_assume!(size <= 64);
            let data = vec![b'd'; size as usize];
            let mut input = line.clone();
            input.extend_from_slice(b"\r\n");
            if size > 0 {
                input.extend_from_slice(&data);
                input.extend_from_slice(b"\r\n0\r\n");
            }
            input.extend_from_slice(b"\r\n");
            let limits = wide();
            let whole = decode_with(Framing::Chunked, &limits, &input);
            if reference_size_line(&line) {
                prop_assert_eq!(&whole, &Ok((data, input.len(), true)));
            } else {
                prop_assert!(matches!(whole, Err(RequestError::BadRequest(_))), "{:?}", whole);
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            prop_assert_eq!(&decode_cut(Framing::Chunked, &limits, &input, &cuts), &whole);
            prop_assert_eq!(&decode_bytewise(Framing::Chunked, &limits, &input), &whole);
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
                    Just(b"=".to_vec()), Just(b"\"".to_vec()), Just(b"\\".to_vec()),
                    Just(b" ".to_vec()), Just(b"\t".to_vec()),
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
