//! Response building blocks: status line, header checks, chunk framing and
//! the `Date` header, written straight into the connection's output buffer.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{is_field_byte, TCHAR};

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

/// Whether `name` is a valid field name: a non-empty RFC 9110 token.
pub fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| TCHAR[usize::from(b)])
}

/// Whether `value` can be sent as a field value: no CR, LF, NUL or other
/// control character except HTAB. Prevents header injection by the
/// application.
pub fn is_field_value(value: &[u8]) -> bool {
    value.iter().all(|&b| is_field_byte(b))
}

/// Append one chunk of a chunked body: `<hex size>\r\n<data>\r\n`. Empty data
/// writes nothing, since an empty chunk would end the body.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.reserve(16 + 2 + data.len() + 2);
    write_chunk_size(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The `<hex>\r\n` line that opens a chunk of `len` bytes (its data and CRLF follow).
pub fn write_chunk_size(out: &mut Vec<u8>, len: usize) {
    let mut hex = [0u8; 16];
    let mut n = len;
    let mut i = hex.len();
    while n > 0 {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
    }
    out.extend_from_slice(&hex[i..]);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and the end of a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

const DATE_LINE_LEN: usize = b"date: Sun, 06 Nov 1994 08:49:37 GMT\r\n".len();

/// The `date` header line, formatted again only when the second changes.
#[derive(Clone, Debug)]
pub struct DateCache {
    second: u64,
    line: [u8; DATE_LINE_LEN],
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

impl DateCache {
    pub fn new() -> Self {
        let second = now_seconds();
        DateCache {
            second,
            line: format_date_line(second),
        }
    }

    /// `date: <IMF-fixdate>\r\n` for the current second.
    pub fn header_line(&mut self) -> &[u8] {
        let second = now_seconds();
        if second != self.second {
            self.second = second;
            self.line = format_date_line(second);
        }
        &self.line
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `date: Sun, 06 Nov 1994 08:49:37 GMT\r\n` for `secs` after the Unix epoch
/// (RFC 9110 5.6.7 IMF-fixdate). Years past 9999 are written as 9999.
fn format_date_line(secs: u64) -> [u8; DATE_LINE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let year = year.min(9999);
    let (hour, minute, second) = (in_day / 3600, in_day / 60 % 60, in_day % 60);

    let mut line = *b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
    // The epoch was a Thursday. Each index below is in range by construction.
    line[6..9].copy_from_slice(DAYS[(days % 7) as usize]);
    put2(&mut line[11..13], day);
    line[14..17].copy_from_slice(MONTHS[(month - 1) as usize]);
    put2(&mut line[18..20], year / 100);
    put2(&mut line[20..22], year % 100);
    put2(&mut line[23..25], hour);
    put2(&mut line[26..28], minute);
    put2(&mut line[29..31], second);
    line
}

/// Write `n` (< 100) as two decimal digits.
#[inline]
fn put2(dst: &mut [u8], n: u64) {
    dst[0] = b'0' + (n / 10 % 10) as u8;
    dst[1] = b'0' + (n % 10) as u8;
}

/// (year, month 1..=12, day 1..=31) of the proleptic Gregorian calendar for
/// `days` after 1970-01-01 (H. Hinnant's civil_from_days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn chunks() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"");
        assert!(out.is_empty());
        write_chunk(&mut out, b"hello");
        assert_eq!(out, b"5\r\nhello\r\n");
        out.clear();
        write_chunk(&mut out, &[b'x'; 255]);
        assert!(out.starts_with(b"ff\r\nxx"));
        assert!(out.ends_with(b"x\r\n"));
        assert_eq!(out.len(), 2 + 2 + 255 + 2);
        out.clear();
        write_chunk(&mut out, &[0; 4096]);
        assert!(out.starts_with(b"1000\r\n\0"));
        assert_eq!(LAST_CHUNK, b"0\r\n\r\n");
    }

    #[test]
    fn known_dates() {
        let cases: [(u64, &[u8]); 6] = [
            (0, b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"),
            (784_111_777, b"date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
            (951_782_400, b"date: Tue, 29 Feb 2000 00:00:00 GMT\r\n"),
            (1_709_251_199, b"date: Thu, 29 Feb 2024 23:59:59 GMT\r\n"),
            (1_795_320_985, b"date: Sun, 22 Nov 2026 04:16:25 GMT\r\n"),
            (4_102_444_800, b"date: Fri, 01 Jan 2100 00:00:00 GMT\r\n"),
        ];
        for (secs, line) in cases {
            assert_eq!(
                &format_date_line(secs)[..],
                line,
                "{secs}: {}",
                String::from_utf8_lossy(&format_date_line(secs))
            );
        }
        // Far future: clamped, never a panic or a malformed line.
        let far = format_date_line(u64::MAX);
        assert!(far.starts_with(b"date: "));
        assert!(far.ends_with(b" GMT\r\n"));
    }

    #[test]
    fn cache_gives_current_date() {
        let mut cache = DateCache::default();
        let line = cache.header_line().to_vec();
        assert_eq!(line.len(), DATE_LINE_LEN);
        assert!(line.starts_with(b"date: "));
        assert!(line.ends_with(b" GMT\r\n"));
        let now = now_seconds();
        // The cached line is the one for now or the second before.
        assert!(line == format_date_line(now) || line == format_date_line(now - 1));
    }

    /// Reference: walk the calendar day by day is too slow for the whole
    /// range, so check against a leap-year-aware year/month walk.
    fn reference_civil(mut days: u64) -> (u64, u64, u64) {
        let mut year = 1970;
        loop {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let len = if leap { 366 } else { 365 };
            if days < len {
                let months = [
                    31,
                    if leap { 29 } else { 28 },
                    31,
                    30,
                    31,
                    30,
                    31,
                    31,
                    30,
                    31,
                    30,
                    31,
                ];
                for (month, m) in (1..).zip(months) {
                    if days < m {
                        return (year, month, days + 1);
                    }
                    days -= m;
                }
            }
            days -= len;
            year += 1;
        }
    }

    proptest! {
        #[test]
        fn civil_matches_reference(days in 0u64..2_932_896) {
            prop_assert_eq!(civil_from_days(days), reference_civil(days));
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

        #[test]
        fn chunk_size_roundtrip(len in 1usize..70_000) {
            let data = vec![b'a'; len];
            let mut out = Vec::new();
            write_chunk(&mut out, &data);
            let crlf = out.iter().position(|&b| b == b'\r').unwrap_or(0);
            let size = usize::from_str_radix(
                std::str::from_utf8(&out[..crlf]).map_err(|e| TestCaseError::fail(e.to_string()))?,
                16,
            ).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(size, len);
            prop_assert_eq!(out.len(), crlf + 2 + len + 2);
        }
    }
}
