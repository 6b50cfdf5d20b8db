//! Request head parsing: httparse for the grammar, plus the checks RFC 9112
//! requires of a server that httparse leaves to its caller (CRLF-only line
//! endings, obs-fold, framing headers, Host, request-target form, limits).

use std::ops::Range;

use super::target::{is_host, is_refused_in_target, split_target};
use super::{Limits, RequestError, Version};
use crate::syntax::is_token;

/// How the body of a request is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// A body of exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed, validated request head.
///
/// It owns a copy of the head bytes (`raw`) and refers to its parts by
/// ranges, so it outlives the connection's read buffer without one
/// allocation per header.
#[derive(Debug)]
pub struct RequestHead {
    /// The head bytes from the request-line to the final CRLFCRLF, with
    /// header names lower-cased in place.
    pub raw: Vec<u8>,
    pub method: Range<usize>,
    pub target: Range<usize>,
    pub version: Version,
    /// `(name, value)` ranges in `raw`, in the order received, repeats kept;
    /// values have leading and trailing whitespace removed.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    pub framing: Framing,
    /// HTTP/1.1: unless `Connection: close`; HTTP/1.0: only with
    /// `Connection: keep-alive` (and no `close`).
    pub keep_alive: bool,
    /// HTTP/1.1 request with `Expect: 100-continue`.
    pub expect_continue: bool,
    /// HTTP/1.1 request whose `Connection` has the `upgrade` token and that
    /// has an `Upgrade` header.
    pub upgrade: bool,
}

impl RequestHead {
    pub fn method(&self) -> &[u8] {
        &self.raw[self.method.clone()]
    }

    pub fn target(&self) -> &[u8] {
        &self.raw[self.target.clone()]
    }

    /// Name of the `i`-th header, lower-case. Panics if `i` is out of range.
    pub fn header_name(&self, i: usize) -> &[u8] {
        &self.raw[self.headers[i].0.clone()]
    }

    /// Value of the `i`-th header. Panics if `i` is out of range.
    pub fn header_value(&self, i: usize) -> &[u8] {
        &self.raw[self.headers[i].1.clone()]
    }

    /// Value of the first header named `lower_name` (which must be lower-case).
    pub fn header(&self, lower_name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(name, _)| &self.raw[name.clone()] == lower_name)
            .map(|(_, value)| &self.raw[value.clone()])
    }

    /// All `(name, value)` pairs, in order.
    pub fn iter_headers(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.headers
            .iter()
            .map(|(name, value)| (&self.raw[name.clone()], &self.raw[value.clone()]))
    }
}

/// Parse a request head from the start of `buf`.
///
/// `Ok(None)`: the head is not complete yet; call again with more bytes.
/// `Ok(Some((head, consumed)))`: `consumed` counts the head's bytes up to and
/// including its final CRLFCRLF (and any empty lines skipped before the
/// request-line); the body, if any, starts at `buf[consumed..]`.
///
/// Each call scans the whole buffer again; `HeadParser` resumes where the
/// previous call stopped instead, which matters when a head trickles in.
pub fn parse_request_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    HeadParser::new().parse(buf, limits)
}

/// A resumable `parse_request_head`: it remembers how far the previous call
/// scanned, so a head arriving a few bytes at a time costs linear, not
/// quadratic, time.
///
/// Give it the same buffer each time, only with bytes appended. It resets
/// itself after returning a head or an error; call `reset()` if the buffer is
/// replaced otherwise.
#[derive(Clone, Debug, Default)]
pub struct HeadParser {
    /// Where the request-line starts, after skipped empty lines.
    start: usize,
    /// Where the line being scanned starts.
    line_start: usize,
    /// Bytes before this hold no CR or LF after `line_start`.
    scan_from: usize,
    /// Field lines completed so far.
    fields: usize,
    /// Whether the request-line is complete.
    request_line_done: bool,
}

const BARE_LF: RequestError = RequestError::BadRequest("bare LF in request head");
const BARE_CR: RequestError = RequestError::BadRequest("bare CR in request head");
const OBS_FOLD: RequestError = RequestError::BadRequest("obsolete line folding in header");
const BAD_REQUEST_LINE: RequestError = RequestError::BadRequest("malformed request line");
const FIELD_TOO_LONG: RequestError = RequestError::HeaderFieldsTooLarge("header line too long");
const TOO_MANY_FIELDS: RequestError = RequestError::HeaderFieldsTooLarge("too many header fields");
const HEAD_TOO_LARGE: RequestError = RequestError::HeaderFieldsTooLarge("request head too large");

/// Header slots kept on the stack; heads with more fields use the heap.
const STACK_HEADERS: usize = 32;

impl HeadParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget the previous calls; the next `parse` starts from scratch.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// See `parse_request_head`.
    pub fn parse(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<(RequestHead, usize)>, RequestError> {
        if buf.len() < self.scan_from {
            // Not the buffer we scanned before.
            self.reset();
        }
        if self.scan_from == 0 {
            if let Some(result) = fast_path(buf, limits) {
                return result;
            }
        }
        self.parse_scanned(buf, limits)
    }

    /// The general path: scan lines (resuming), then parse a complete head.
    fn parse_scanned(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<(RequestHead, usize)>, RequestError> {
        let result = match self.scan(buf, limits) {
            Ok(Some(end)) => {
                build_head(&buf[self.start..end], self.fields, limits).map(|head| Some((head, end)))
            }
            other => other.map(|_| None),
        };
        if !matches!(result, Ok(None)) {
            self.reset();
        }
        result
    }

    /// Walk the lines of the head: enforce CRLF endings, the limits and
    /// no obs-fold. Returns the end of the head once its empty line is seen.
    fn scan(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, RequestError> {
        let max_head = limits.max_head();
        let mut pos = self.line_start;
        loop {
            let from = self.scan_from.max(pos);
            let Some(cr) = find_cr_or_lf(&buf[from..]).map(|i| from + i) else {
                return self.partial(buf, pos, limits, max_head).map(|()| None);
            };
            // A line over its limit is refused for its length whatever ends it, as
            // while it was partial: where a read ends must not pick the status.
            if !self.request_line_done && cr - pos > limits.request_line {
                return Err(RequestError::UriTooLong);
            }
            if self.request_line_done && cr - pos > limits.field_size {
                return Err(FIELD_TOO_LONG);
            }
            if buf[cr] == b'\n' {
                return Err(BARE_LF);
            }
            match buf.get(cr + 1) {
                Some(b'\n') => {}
                Some(_) => return Err(BARE_CR),
                None => return self.partial(buf, pos, limits, max_head).map(|()| None),
            }
            let line = &buf[pos..cr];
            let next = cr + 2;
            if !self.request_line_done {
                if line.is_empty() {
                    // RFC 9112 2.2: ignore empty lines before the request-line.
                    self.start = next;
                } else if line.len() > limits.request_line {
                    return Err(RequestError::UriTooLong);
                } else if !is_request_line(&buf[from..cr]) {
                    // Garbage: refuse now rather than wait for a head end (bytes before
                    // `from` were checked while the line was partial).
                    return Err(BAD_REQUEST_LINE);
                } else {
                    // HTTP/0.9 or another major version: refused before its fields.
                    check_request_line(line)?;
                    self.request_line_done = true;
                }
            } else if line.is_empty() {
                // Empty lines before the request-line count too, as while the head
                // was partial: where a read ends must not decide the outcome.
                return if next > max_head {
                    Err(HEAD_TOO_LARGE)
                } else {
                    Ok(Some(next))
                };
            } else if line.len() > limits.field_size {
                return Err(FIELD_TOO_LONG);
            } else if line[0] == b' ' || line[0] == b'\t' {
                return Err(OBS_FOLD);
            } else {
                self.fields += 1;
                if self.fields > limits.fields {
                    return Err(TOO_MANY_FIELDS);
                }
            }
            if next > max_head {
                return Err(HEAD_TOO_LARGE);
            }
            pos = next;
        }
    }

    /// The buffer ends inside the line starting at `pos`: refuse it now if it
    /// can no longer become valid, else remember where to resume.
    fn partial(
        &mut self,
        buf: &[u8],
        pos: usize,
        limits: &Limits,
        max_head: usize,
    ) -> Result<(), RequestError> {
        // A trailing CR may still be followed by its LF.
        let end = if buf.last() == Some(&b'\r') {
            buf.len() - 1
        } else {
            buf.len()
        };
        let line = &buf[pos..end];
        let new_from = self.scan_from.max(pos);
        self.line_start = pos;
        self.scan_from = end;
        if !self.request_line_done {
            if line.len() > limits.request_line {
                return Err(RequestError::UriTooLong);
            }
            // A request-line is only SP and visible ASCII: refuse anything
            // else (say, a TLS handshake) at once instead of waiting for CRLF.
            if !is_request_line(&buf[new_from.min(end)..end]) {
                return Err(BAD_REQUEST_LINE);
            }
        } else if !line.is_empty() {
            if line.len() > limits.field_size {
                return Err(FIELD_TOO_LONG);
            }
            if self.fields >= limits.fields {
                return Err(TOO_MANY_FIELDS);
            }
            if line[0] == b' ' || line[0] == b'\t' {
                return Err(OBS_FOLD);
            }
        }
        if buf.len() > max_head {
            return Err(HEAD_TOO_LARGE);
        }
        Ok(())
    }
}

/// The shape of a whole request-line, `method SP target SP HTTP-version` (RFC 9112 3),
/// and its version `HTTP/` DIGIT "." DIGIT (2.3, case-sensitive): 505 for a major version
/// other than 1, 400 for anything malformed. httparse checks the rest.
fn check_request_line(line: &[u8]) -> Result<(), RequestError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_REQUEST_LINE);
    };
    if !is_token(method) || target.is_empty() {
        return Err(BAD_REQUEST_LINE);
    }
    match *version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0'..=b'9'] => Ok(()),
        [b'H', b'T', b'T', b'P', b'/', b'0'..=b'9', b'.', b'0'..=b'9'] => {
            Err(RequestError::VersionNotSupported)
        }
        _ => Err(BAD_REQUEST_LINE),
    }
}

/// Where the minor digit of an `HTTP/1.x` request-line with x above 1 is: such a request
/// is read as HTTP/1.1, the highest minor version ruvicorn implements (RFC 9110 6.2).
/// `head` starts with a request-line `check_request_line` accepted.
fn higher_minor(head: &[u8]) -> Option<usize> {
    let eol = head.iter().position(|&b| b == b'\r')?;
    let version = head.get(eol.checked_sub(8)?..eol)?;
    let minor = *version.last()?;
    (version.starts_with(b"HTTP/1.") && (b'2'..=b'9').contains(&minor)).then_some(eol - 1)
}

/// Whether `bytes` may be part of a request-line: SP and visible ASCII only.
#[inline]
fn is_request_line(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == b' ' || b.is_ascii_graphic())
}

/// Index of the first CR or LF in `hay`, eight bytes at a time.
#[inline]
fn find_cr_or_lf(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const CR: u64 = LO * b'\r' as u64;
    const LF: u64 = LO * b'\n' as u64;
    let mut chunks = hay.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let (x, y) = (w ^ CR, w ^ LF);
        // The lowest set bit marks the first zero byte of x or y exactly.
        let found = ((x.wrapping_sub(LO) & !x) | (y.wrapping_sub(LO) & !y)) & HI;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|i| offset + i)
}

/// Range of `part` inside `base`, which it must be a sub-slice of.
fn range_in(base: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= base.len()).then_some(start..end)
}

fn map_httparse_error(err: httparse::Error) -> RequestError {
    match err {
        httparse::Error::HeaderName => RequestError::BadRequest("invalid header name"),
        httparse::Error::HeaderValue => RequestError::BadRequest("invalid header value"),
        httparse::Error::Version => RequestError::BadRequest("unsupported HTTP version"),
        httparse::Error::TooManyHeaders => TOO_MANY_FIELDS,
        _ => BAD_REQUEST_LINE,
    }
}

/// The common case, a whole head in the buffer, parsed in one httparse pass
/// without scanning the bytes first: the line structure httparse leaves
/// unchecked (bare LF endings, line lengths) is checked from where the
/// header names start.
///
/// `None` unless a complete head passed every check: the caller then takes
/// the scanning path, which also gives the canonical error for bad input.
#[inline]
fn fast_path(
    buf: &[u8],
    limits: &Limits,
) -> Option<Result<Option<(RequestHead, usize)>, RequestError>> {
    if matches!(buf.first(), Some(b'\r' | b'\n') | None) {
        return None;
    }
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut req = httparse::Request::new(&mut stack);
    let Ok(httparse::Status::Complete(n)) = req.parse(buf) else {
        return None;
    };
    let head = &buf[..n];
    if req.headers.len() > limits.fields || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    // httparse ends a line at any LF. Every line but the request-line starts
    // with a header name, and every LF either ends the line before a name or
    // is one of the final CRLFCRLF, so checking for CR LF before each name
    // proves there is no bare LF; httparse itself refuses bare CR.
    let mut line_start = 0;
    let mut max_len = limits.request_line;
    for h in req.headers.iter() {
        let start = range_in(head, h.name.as_bytes())?.start;
        if start < line_start + 2 || head[start - 2..start] != *b"\r\n" {
            return None;
        }
        if start - 2 - line_start > max_len {
            return None;
        }
        line_start = start;
        max_len = limits.field_size;
    }
    if n - 4 < line_start || n - 4 - line_start > max_len {
        return None;
    }
    Some(finish(head, &req, limits).map(|h| Some((h, n))))
}

/// Parse and validate a complete head (`head` ends with CRLFCRLF, has CRLF
/// line endings only and exactly `fields` field lines).
fn build_head(head: &[u8], fields: usize, limits: &Limits) -> Result<RequestHead, RequestError> {
    // httparse knows HTTP/1.0 and HTTP/1.1 only: a higher minor version is parsed (and
    // kept in the head's bytes) as HTTP/1.1, the same length.
    let rewritten;
    let head = match higher_minor(head) {
        Some(at) => {
            let mut copy = head.to_vec();
            if let Some(minor) = copy.get_mut(at) {
                *minor = b'1';
            }
            rewritten = copy;
            &rewritten[..]
        }
        None => head,
    };
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap;
    let slots: &mut [httparse::Header<'_>] = if fields <= STACK_HEADERS {
        &mut stack[..fields]
    } else {
        heap = vec![httparse::EMPTY_HEADER; fields];
        &mut heap
    };
    let mut req = httparse::Request::new(slots);
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(BAD_REQUEST_LINE),
        Err(err) => return Err(map_httparse_error(err)),
    }
    finish(head, &req, limits)
}

/// Validate what httparse parsed from `head` and build the `RequestHead`.
fn finish(
    head: &[u8],
    req: &httparse::Request<'_, '_>,
    limits: &Limits,
) -> Result<RequestHead, RequestError> {
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(BAD_REQUEST_LINE);
    };
    let version = match minor {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return Err(RequestError::BadRequest("unsupported HTTP version")),
    };
    let target = target.as_bytes();
    if target
        .iter()
        .any(|&b| !b.is_ascii() || is_refused_in_target(b))
    {
        return Err(RequestError::BadRequest("invalid request target"));
    }
    split_target(method.as_bytes(), target)?;
    if method == "CONNECT" {
        // RFC 9112 3.2.3: CONNECT takes the authority-form only, which split_target refuses
        // (ruvicorn is no proxy); any other form is malformed.
        return Err(RequestError::BadRequest(
            "CONNECT without an authority-form target",
        ));
    }

    let mut headers = Vec::with_capacity(req.headers.len());
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut hosts = 0usize;
    let (mut close, mut keep_alive_token, mut upgrade_token) = (false, false, false);
    let mut has_upgrade = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let (name, value) = (h.name.as_bytes(), h.value);
        let (Some(name_range), Some(value_range)) = (range_in(head, name), range_in(head, value))
        else {
            return Err(BAD_REQUEST_LINE);
        };
        headers.push((name_range, value_range));
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                hosts += 1;
                // RFC 9110 7.2 allows an empty Host (a target without an
                // authority); anything else is `uri-host [ ":" port ]`.
                if !is_host(value) {
                    return Err(RequestError::BadRequest("invalid Host header"));
                }
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => has_upgrade = true,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in value.split(|&b| b == b',') {
                    let token = trim_ows(token);
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                    upgrade_token |= token.eq_ignore_ascii_case(b"upgrade");
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                if content_length.is_some() {
                    return Err(RequestError::BadRequest("repeated Content-Length"));
                }
                content_length = Some(parse_content_length(value)?);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                if transfer_encoding.is_some() {
                    return Err(RequestError::BadRequest("repeated Transfer-Encoding"));
                }
                transfer_encoding = Some(value);
            }
            _ => {}
        }
    }

    if hosts > 1 {
        return Err(RequestError::BadRequest("more than one Host header"));
    }
    if hosts == 0 && version == Version::Http11 {
        return Err(RequestError::BadRequest("missing Host header"));
    }
    let framing = match (transfer_encoding, content_length) {
        (Some(_), _) if version == Version::Http10 => {
            return Err(RequestError::BadRequest(
                "Transfer-Encoding in an HTTP/1.0 request",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(RequestError::BadRequest(
                "both Transfer-Encoding and Content-Length",
            ))
        }
        (Some(coding), None) => {
            if coding.eq_ignore_ascii_case(b"chunked") {
                Framing::Chunked
            } else if is_token(coding) {
                return Err(RequestError::NotImplemented("unsupported transfer coding"));
            } else {
                return Err(RequestError::BadRequest("invalid Transfer-Encoding"));
            }
        }
        (None, Some(n)) => {
            if limits.body.is_some_and(|max| n > max) {
                return Err(RequestError::PayloadTooLarge);
            }
            Framing::Length(n)
        }
        (None, None) => Framing::None,
    };
    let http11 = version == Version::Http11;
    let keep_alive = !close && (http11 || keep_alive_token);

    let Some(method) = range_in(head, method.as_bytes()) else {
        return Err(BAD_REQUEST_LINE);
    };
    let Some(target) = range_in(head, target) else {
        return Err(BAD_REQUEST_LINE);
    };
    let mut raw = head.to_vec();
    for (name, _) in &headers {
        raw[name.clone()].make_ascii_lowercase();
    }
    Ok(RequestHead {
        raw,
        method,
        target,
        version,
        headers,
        framing,
        keep_alive,
        expect_continue: http11 && expect_continue,
        upgrade: http11 && upgrade_token && has_upgrade,
    })
}

#[inline]
fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// `Content-Length = 1*DIGIT`, one value only.
fn parse_content_length(value: &[u8]) -> Result<u64, RequestError> {
    const BAD: RequestError = RequestError::BadRequest("invalid Content-Length");
    if value.is_empty() {
        return Err(BAD);
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return Err(BAD);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(BAD)?;
    }
    Ok(n)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
