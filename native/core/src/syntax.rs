//! HTTP syntax shared by every protocol ruvicorn speaks (HTTP/1.1, HTTP/2 and the
//! WebSocket handshake today): the token table, the field-value check, hex digits, a
//! response's `content-length`, the status line and the server's own error responses.
//! A rule written here holds everywhere.

/// A byte-class table: ASCII letters and digits, plus `extra`.
pub(crate) const fn alnum_and(extra: &[u8]) -> [bool; 256] {
    let mut map = [false; 256];
    let mut i = 0;
    while i < 256 {
        map[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    let mut j = 0;
    while j < extra.len() {
        map[extra[j] as usize] = true;
        j += 1;
    }
    map
}

/// RFC 9110 `tchar`: the bytes allowed in a token (method, field name, coding).
pub(crate) static TCHAR: [bool; 256] = alnum_and(b"!#$%&'*+-.^_`|~");

/// Whether `b` may appear in a field value: HTAB, SP, VCHAR or obs-text.
#[inline]
pub(crate) fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= b' ' && b != 0x7f)
}

/// The value of one hex digit (either case).
#[inline]
pub fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The reason phrase ruvicorn sends for `status`, or `b""` if it has none.
pub fn reason_phrase(status: u16) -> &'static [u8] {
    match status {
        100 => b"Continue",
        101 => b"Switching Protocols",
        102 => b"Processing",
        103 => b"Early Hints",
        200 => b"OK",
        201 => b"Created",
        202 => b"Accepted",
        203 => b"Non-Authoritative Information",
        204 => b"No Content",
        205 => b"Reset Content",
        206 => b"Partial Content",
        207 => b"Multi-Status",
        208 => b"Already Reported",
        226 => b"IM Used",
        300 => b"Multiple Choices",
        301 => b"Moved Permanently",
        302 => b"Found",
        303 => b"See Other",
        304 => b"Not Modified",
        305 => b"Use Proxy",
        307 => b"Temporary Redirect",
        308 => b"Permanent Redirect",
        400 => b"Bad Request",
        401 => b"Unauthorized",
        402 => b"Payment Required",
        403 => b"Forbidden",
        404 => b"Not Found",
        405 => b"Method Not Allowed",
        406 => b"Not Acceptable",
        407 => b"Proxy Authentication Required",
        408 => b"Request Timeout",
        409 => b"Conflict",
        410 => b"Gone",
        411 => b"Length Required",
        412 => b"Precondition Failed",
        413 => b"Content Too Large",
        414 => b"URI Too Long",
        415 => b"Unsupported Media Type",
        416 => b"Range Not Satisfiable",
        417 => b"Expectation Failed",
        418 => b"I'm a Teapot",
        421 => b"Misdirected Request",
        422 => b"Unprocessable Content",
        423 => b"Locked",
        424 => b"Failed Dependency",
        425 => b"Too Early",
        426 => b"Upgrade Required",
        428 => b"Precondition Required",
        429 => b"Too Many Requests",
        431 => b"Request Header Fields Too Large",
        451 => b"Unavailable For Legal Reasons",
        500 => b"Internal Server Error",
        501 => b"Not Implemented",
        502 => b"Bad Gateway",
        503 => b"Service Unavailable",
        504 => b"Gateway Timeout",
        505 => b"HTTP Version Not Supported",
        506 => b"Variant Also Negotiates",
        507 => b"Insufficient Storage",
        508 => b"Loop Detected",
        510 => b"Not Extended",
        511 => b"Network Authentication Required",
        _ => b"",
    }
}

/// Append `HTTP/1.1 <status> <reason>\r\n`. ruvicorn always answers as
/// HTTP/1.1 (RFC 9110 6.2), also to HTTP/1.0 requests. The space after the
/// code is kept when the reason is empty, as the grammar requires.
pub fn write_status_line(out: &mut Vec<u8>, status: u16) {
    let reason = reason_phrase(status);
    out.reserve(9 + 5 + 1 + reason.len() + 2);
    out.extend_from_slice(b"HTTP/1.1 ");
    if (100..1000).contains(&status) {
        // Truncation is intended: each value is one decimal digit.
        out.extend_from_slice(&[
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
        ]);
    } else {
        out.extend_from_slice(status.to_string().as_bytes());
    }
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
}

/// Whether `b` is an RFC 9110 `tchar`.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// Whether `name` is a valid field name (or any token): a non-empty RFC 9110 token.
#[inline]
pub fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().copied().all(is_tchar)
}

/// Whether `value` can be sent as a field value: no CR, LF, NUL or other
/// control character except HTAB. Prevents header injection by the
/// application.
pub fn is_field_value(value: &[u8]) -> bool {
    value.iter().all(|&b| is_field_byte(b))
}

/// Whether a field value starts or ends with SP or HTAB: malformed in a request over
/// HTTP/2 and HTTP/3 (RFC 9113 8.2.1, RFC 9114 4.2), which carry values unframed.
#[inline]
pub(crate) fn is_padded(value: &[u8]) -> bool {
    let blank = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    blank(value.first()) || blank(value.last())
}

/// One `content-length` field of a response the app sent, given `seen`, the length an
/// earlier one declared: its length, or `None` when the response must be refused. Only
/// digits (no sign, no whitespace) that fit a `u64`, and only one such field, even when
/// a second one agrees. Fold a response's values through it, starting from `None`.
pub fn response_content_length(seen: Option<u64>, value: &[u8]) -> Option<u64> {
    if seen.is_some() || value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |length, &digit| {
        length.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// The interim response that asks a client to send the body it announced with
/// `Expect: 100-continue`.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A complete response the server sends on its own (a refused request, a timeout, a 500
/// for an app that failed): `status` with its reason as a plain-text body, then
/// `Connection: close`. `defaults` are the server's own header lines (`date`, `server`,
/// `--header`), already checked.
pub fn error_response(status: u16, defaults: &[u8]) -> Vec<u8> {
    let reason = reason_phrase(status);
    let body: &[u8] = if reason.is_empty() { b"Error" } else { reason };
    let mut out = Vec::with_capacity(160 + body.len());
    write_status_line(&mut out, status);
    out.extend_from_slice(b"content-type: text/plain; charset=utf-8\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\nconnection: close\r\n");
    out.extend_from_slice(defaults);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tchar_map() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(TCHAR[b as usize], expected, "byte {b}");
        }
    }

    #[test]
    fn hex_digits() {
        for b in 0..=255u8 {
            let expected = (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
            assert_eq!(hex_digit(b), expected, "byte {b}");
        }
    }

    #[test]
    fn error_responses() {
        let out = error_response(408, b"server: ruvicorn\r\n");
        assert_eq!(
            out,
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n\
              content-length: 15\r\nconnection: close\r\nserver: ruvicorn\r\n\r\nRequest Timeout"
        );
        assert!(error_response(599, b"")
            .ends_with(b"content-length: 5\r\nconnection: close\r\n\r\nError"));
    }

    fn status_line(status: u16) -> Vec<u8> {
        let mut out = b"prefix".to_vec();
        write_status_line(&mut out, status);
        out.split_off(6)
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_line(200), b"HTTP/1.1 200 OK\r\n");
        assert_eq!(status_line(404), b"HTTP/1.1 404 Not Found\r\n");
        assert_eq!(status_line(101), b"HTTP/1.1 101 Switching Protocols\r\n");
        assert_eq!(status_line(599), b"HTTP/1.1 599 \r\n");
        assert_eq!(status_line(999), b"HTTP/1.1 999 \r\n");
        assert_eq!(status_line(100), b"HTTP/1.1 100 Continue\r\n");
        assert_eq!(status_line(42), b"HTTP/1.1 42 \r\n");
        assert_eq!(status_line(0), b"HTTP/1.1 0 \r\n");
        assert_eq!(status_line(1000), b"HTTP/1.1 1000 \r\n");
        assert_eq!(status_line(65535), b"HTTP/1.1 65535 \r\n");
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(413), b"Content Too Large");
        assert_eq!(reason_phrase(431), b"Request Header Fields Too Large");
        assert_eq!(reason_phrase(505), b"HTTP Version Not Supported");
        assert_eq!(reason_phrase(299), b"");
        for status in 0..=u16::MAX {
            let reason = reason_phrase(status);
            assert!(is_field_value(reason), "{status}");
            if !reason.is_empty() {
                assert!((100..600).contains(&status));
            }
        }
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"content-type"));
        assert!(is_token(b"X-Custom_1!#$%&'*+.^`|~"));
        for bad in [
            &b""[..],
            b"a b",
            b"a:b",
            b"a\r\nb",
            b"a\0",
            b"(x)",
            b"\"q\"",
            b"a/b",
            b"caf\xc3\xa9",
            b"a\t",
        ] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn field_values() {
        assert!(is_field_value(b""));
        assert!(is_field_value(b"text/html; charset=utf-8"));
        assert!(is_field_value(b"a\tb  c"));
        assert!(is_field_value(b"caf\xc3\xa9 \x80\xff"));
        for bad in [
            &b"a\rb"[..],
            b"a\nb",
            b"a\r\nSet-Cookie: x",
            b"\0",
            b"\x01",
            b"\x1f",
            b"\x7f",
        ] {
            assert!(!is_field_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn response_content_lengths() {
        assert_eq!(response_content_length(None, b"0"), Some(0));
        assert_eq!(response_content_length(None, b"42"), Some(42));
        assert_eq!(response_content_length(None, b"007"), Some(7));
        assert_eq!(
            response_content_length(None, b"18446744073709551615"),
            Some(u64::MAX)
        );
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"99999999999999999999999",
            b" 5",
            b"5 ",
            b"\t5",
            b"5\t",
            b"+5",
            b"-5",
            b"5,5",
            b"0x10",
            b"1e3",
            b"five",
            b"\xd9\xa5",
        ] {
            assert_eq!(response_content_length(None, bad), None, "{bad:?}");
        }
        // A second field is refused, whatever it says.
        assert_eq!(response_content_length(Some(5), b"5"), None);
        assert_eq!(response_content_length(Some(0), b"6"), None);
        let fold = |values: &[&[u8]]| {
            values.iter().try_fold(None, |seen, value| {
                response_content_length(seen, value).map(Some)
            })
        };
        assert_eq!(fold(&[]), Some(None));
        assert_eq!(fold(&[b"12"]), Some(Some(12)));
        assert_eq!(fold(&[b"12", b"12"]), None);
        assert_eq!(fold(&[b"x", b"12"]), None);
    }

    proptest! {
        #[test]
        fn response_content_length_matches_decimal(length: u64) {
            let text = length.to_string();
            prop_assert_eq!(response_content_length(None, text.as_bytes()), Some(length));
        }

        #[test]
        fn response_content_length_is_a_digits_only_decimal(
            value in proptest::collection::vec(prop_oneof![3 => b'0'..=b'9', 1 => any::<u8>()], 0..24)
        ) {
            let expected = std::str::from_utf8(&value)
                .ok()
                .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|text| text.parse::<u64>().ok());
            prop_assert_eq!(response_content_length(None, &value), expected);
        }

        #[test]
        fn status_line_parses_back(status in 100u16..1000) {
            let line = status_line(status);
            let text = String::from_utf8(line).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let expected = format!(
                "HTTP/1.1 {status} {}\r\n",
                String::from_utf8_lossy(reason_phrase(status))
            );
            prop_assert_eq!(text, expected);
        }
    }
}
