//! Response building blocks: chunk framing and the `Date` header, written straight
//! into the connection's output buffer (the status line and header checks are in
//! [`crate::syntax`]).

use std::time::{SystemTime, UNIX_EPOCH};

/// Append one chunk of a chunked body: `<hex size>\r\n<data>\r\n`. Empty data
/// writes nothing, since an empty chunk would end the body. (Responses write the size
/// line with `write_chunk_size` and the app's bytes without a copy; this is the reference
/// the tests check it against.)
#[cfg(test)]
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
