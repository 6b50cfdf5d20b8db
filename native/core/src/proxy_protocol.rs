//! The PROXY protocol header (versions 1 and 2) a TCP load balancer sends as the very first
//! bytes of a connection, before TLS and HTTP, to say who the client is.
//!
//! [`parse`] reads the bytes received so far and says whether the header is complete,
//! needs more bytes, or is not a valid header; every byte is checked against the grammar,
//! so a peer cannot slip anything past it into the TLS or HTTP layers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes a version 2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A version 1 header is one line of at most this many bytes, CRLF included.
pub const V1_MAX: usize = 107;
const V1_PREFIX: &[u8] = b"PROXY ";
/// A version 2 header's fixed part: signature, version/command, family/protocol, length.
const V2_FIXED: usize = 16;

/// Who the header says is at each end. `None` for a LOCAL command (a health check from
/// the balancer itself), `UNKNOWN`, or a family without IP addresses: the connection's own
/// addresses stand.
pub type Addresses = Option<(SocketAddr, SocketAddr)>;

/// What the bytes received so far are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A valid beginning: more bytes are needed.
    Incomplete,
    /// A complete header: the client's and the server's addresses, and how many bytes it
    /// took (what follows belongs to the next layer).
    Done {
        addresses: Addresses,
        consumed: usize,
    },
    /// Not a valid header.
    Invalid(&'static str),
}

/// Read a PROXY header from the start of `data`.
pub fn parse(data: &[u8]) -> Parsed {
    let v1 = V1_PREFIX.len().min(data.len());
    let v2 = V2_SIGNATURE.len().min(data.len());
    if data[..v1] == V1_PREFIX[..v1] && !data.is_empty() {
        parse_v1(data)
    } else if data[..v2] == V2_SIGNATURE[..v2] {
        parse_v2(data)
    } else {
        Parsed::Invalid("no PROXY protocol header")
    }
}

fn parse_v1(data: &[u8]) -> Parsed {
    let window = &data[..data.len().min(V1_MAX)];
    // Only printable ASCII before the CR, so a bare LF or CR is refused at once.
    let Some(end) = window.iter().position(|&b| !(0x20..0x7f).contains(&b)) else {
        return if data.len() >= V1_MAX {
            Parsed::Invalid("PROXY v1 line longer than 107 bytes")
        } else {
            Parsed::Incomplete
        };
    };
    if window[end] != b'\r' {
        return Parsed::Invalid("PROXY v1 line holds a control byte");
    }
    match window.get(end + 1) {
        None if data.len() >= V1_MAX => Parsed::Invalid("PROXY v1 line longer than 107 bytes"),
        None => Parsed::Incomplete,
        Some(b'\n') => match v1_fields(&window[V1_PREFIX.len().min(end)..end]) {
            Ok(addresses) => Parsed::Done {
                addresses,
                consumed: end + 2,
            },
            Err(reason) => Parsed::Invalid(reason),
        },
        Some(_) => Parsed::Invalid("PROXY v1 line holds a bare CR"),
    }
}

/// `TCP4 src dst sport dport`, `TCP6 ...`, or `UNKNOWN` with anything after it.
fn v1_fields(line: &[u8]) -> Result<Addresses, &'static str> {
    // The line is printable ASCII, so this cannot fail.
    let line = std::str::from_utf8(line).map_err(|_| "PROXY v1 line is not ASCII")?;
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Ok(None);
    }
    let mut fields = line.split(' ');
    let v6 = match fields.next() {
        Some("TCP4") => false,
        Some("TCP6") => true,
        _ => return Err("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN"),
    };
    let mut next = || fields.next().ok_or("PROXY v1 line has too few fields");
    let (src, dst) = (v1_ip(next()?, v6)?, v1_ip(next()?, v6)?);
    let (sport, dport) = (v1_port(next()?)?, v1_port(next()?)?);
    if fields.next().is_some() {
        return Err("PROXY v1 line has too many fields");
    }
    Ok(Some((
        SocketAddr::new(src, sport),
        SocketAddr::new(dst, dport),
    )))
}

fn v1_ip(text: &str, v6: bool) -> Result<IpAddr, &'static str> {
    let ip = if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    ip.map_err(|_| "PROXY v1 address does not match its protocol")
}

/// A decimal port, 0 to 65535, without sign or leading zeros.
fn v1_port(text: &str) -> Result<u16, &'static str> {
    let plain = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    plain
        .then(|| text.parse::<u16>().ok())
        .flatten()
        .ok_or("PROXY v1 port is not a number from 0 to 65535")
}

fn parse_v2(data: &[u8]) -> Parsed {
    if data.len() < V2_FIXED {
        return Parsed::Incomplete;
    }
    let (version, command) = (data[12] >> 4, data[12] & 0x0f);
    if version != 2 {
        return Parsed::Invalid("PROXY v2 version is not 2");
    }
    let local = match command {
        0 => true,
        1 => false,
        _ => return Parsed::Invalid("PROXY v2 command is neither LOCAL nor PROXY"),
    };
    let (family, protocol) = (data[13] >> 4, data[13] & 0x0f);
    let len = usize::from(u16::from_be_bytes([data[14], data[15]]));
    let Some(body) = data.get(V2_FIXED..V2_FIXED + len) else {
        return Parsed::Incomplete;
    };
    match v2_body(local, family, protocol, body) {
        Ok(addresses) => Parsed::Done {
            addresses,
            consumed: V2_FIXED + len,
        },
        Err(reason) => Parsed::Invalid(reason),
    }
}

/// The address block for the family, then TLVs to the end (each skipped by its length).
fn v2_body(local: bool, family: u8, protocol: u8, body: &[u8]) -> Result<Addresses, &'static str> {
    if protocol > 2 {
        return Err("PROXY v2 transport protocol is unknown");
    }
    let block = match family {
        0 => 0,
        1 => 12,
        2 => 36,
        3 => 216,
        _ => return Err("PROXY v2 address family is unknown"),
    };
    let Some((addrs, mut tlvs)) = body.split_at_checked(block) else {
        return Err("PROXY v2 length is shorter than its addresses");
    };
    while !tlvs.is_empty() {
        let [_, hi, lo, ..] = *tlvs else {
            return Err("PROXY v2 TLV is cut short");
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        tlvs = tlvs
            .get(end..)
            .ok_or("PROXY v2 TLV is longer than the header")?;
    }
    if local || family == 0 || family == 3 {
        return Ok(None);
    }
    if protocol != 1 {
        return Err("PROXY v2 transport is not a stream (TCP)");
    }
    let port = |at: usize| u16::from_be_bytes([addrs[at], addrs[at + 1]]);
    Ok(Some(if family == 1 {
        let ip = |at: usize| IpAddr::from([addrs[at], addrs[at + 1], addrs[at + 2], addrs[at + 3]]);
        (
            SocketAddr::new(ip(0), port(8)),
            SocketAddr::new(ip(4), port(10)),
        )
    } else {
        let ip = |at: usize| {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addrs[at..at + 16]);
            IpAddr::from(octets)
        };
        (
            SocketAddr::new(ip(0), port(32)),
            SocketAddr::new(ip(16), port(34)),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(text: &str) -> SocketAddr {
        text.parse().expect("a socket address")
    }

    fn done(addresses: Addresses, consumed: usize) -> Parsed {
        Parsed::Done {
            addresses,
            consumed,
        }
    }

    /// A v2 header: version/command, family/protocol, then the body.
    fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(ver_cmd);
        out.push(fam);
        out.extend_from_slice(
            &u16::try_from(body.len())
                .expect("a short body")
                .to_be_bytes(),
        );
        out.extend_from_slice(body);
        out
    }

    fn v4_body() -> Vec<u8> {
        let mut body = vec![192, 0, 2, 1, 10, 0, 0, 1];
        body.extend_from_slice(&5678u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body
    }

    /// Fed one byte more each time, the parser says Incomplete until the last byte, then
    /// the same as for the whole input.
    fn byte_by_byte(input: &[u8]) -> Parsed {
        for cut in 0..input.len() {
            let partial = parse(&input[..cut]);
            if partial != Parsed::Incomplete {
                return partial;
            }
        }
        parse(input)
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let line = b"PROXY TCP4 192.0.2.1 10.0.0.1 5678 443\r\nGET / HTTP/1.1\r\n";
        let want = done(Some((sa("192.0.2.1:5678"), sa("10.0.0.1:443"))), 40);
        assert_eq!(parse(line), want);
        assert_eq!(byte_by_byte(&line[..40]), want);
        let line = b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
        let want = done(Some((sa("[2001:db8::1]:65535"), sa("[::1]:0"))), line.len());
        assert_eq!(byte_by_byte(line), want);
    }

    #[test]
    fn v1_unknown_keeps_the_socket_addresses() {
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), done(None, 15));
        let line = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
        assert_eq!(parse(line), done(None, line.len()));
    }

    #[test]
    fn v1_longest_line_is_accepted_and_one_more_byte_refused() {
        let src = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let line = format!("PROXY UNKNOWN {src} {src} 65535 65535\r\n");
        assert_eq!(line.len(), V1_MAX);
        assert!(matches!(
            parse(line.as_bytes()),
            Parsed::Done { consumed: 107, .. }
        ));
        let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(92));
        assert_eq!(long.len(), V1_MAX + 1);
        assert_eq!(
            byte_by_byte(long.as_bytes()),
            Parsed::Invalid("PROXY v1 line longer than 107 bytes")
        );
        // No CRLF within 107 bytes, however it goes on.
        assert!(matches!(parse(&[b'P'; 200]), Parsed::Invalid(_)));
        let mut open = b"PROXY UNKNOWN ".to_vec();
        open.resize(V1_MAX, b'a');
        assert!(matches!(parse(&open), Parsed::Invalid(_)));
        assert_eq!(parse(&open[..V1_MAX - 1]), Parsed::Incomplete);
    }

    #[test]
    fn v1_malformed() {
        for bad in [
            &b"PROXY TCP4 192.0.2.1 10.0.0.1 5678 443\n"[..],
            b"PROXY TCP4 192.0.2.1 10.0.0.1 5678 443\rX",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 5678\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 5678 443 1\r\n",
            b"PROXY TCP4 192.0.2.1  10.0.0.1 5678 443\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 5678 443 \r\n",
            b"PROXY TCP4 ::1 ::1 5678 443\r\n",
            b"PROXY TCP6 192.0.2.1 10.0.0.1 5678 443\r\n",
            b"PROXY TCP4 192.0.2.01 10.0.0.1 5678 443\r\n",
            b"PROXY TCP4 192.0.2.256 10.0.0.1 5678 443\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 65536 443\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 -1 443\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 +1 443\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 0443 443\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 5678 \r\n",
            b"PROXY UDP4 192.0.2.1 10.0.0.1 5678 443\r\n",
            b"PROXY tcp4 192.0.2.1 10.0.0.1 5678 443\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY \r\n",
            b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xff\r\n",
            b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x00",
            b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            let got = byte_by_byte(bad);
            assert!(matches!(got, Parsed::Invalid(_)), "{bad:?}: {got:?}");
        }
    }

    #[test]
    fn empty_and_partial_prefixes_wait() {
        assert_eq!(parse(b""), Parsed::Incomplete);
        assert_eq!(parse(b"PRO"), Parsed::Incomplete);
        assert_eq!(parse(&V2_SIGNATURE[..7]), Parsed::Incomplete);
        assert_eq!(parse(b"PROXY TCP4 1.2"), Parsed::Incomplete);
    }

    #[test]
    fn v2_ipv4_with_tlvs() {
        let mut body = v4_body();
        // PP2_TYPE_ALPN "h2", then a NOOP padding TLV with an empty value.
        body.extend_from_slice(&[0x01, 0, 2, b'h', b'2', 0x04, 0, 0]);
        let mut header = v2(0x21, 0x11, &body);
        let len = header.len();
        let want = done(Some((sa("192.0.2.1:5678"), sa("10.0.0.1:443"))), len);
        assert_eq!(byte_by_byte(&header), want);
        header.extend_from_slice(b"\x16\x03\x01");
        assert_eq!(parse(&header), want);
    }

    #[test]
    fn v2_ipv6() {
        let src: Ipv6Addr = "2001:db8::7".parse().expect("an address");
        let dst: Ipv6Addr = "2001:db8::8".parse().expect("an address");
        let mut body = src.octets().to_vec();
        body.extend_from_slice(&dst.octets());
        body.extend_from_slice(&[0x1f, 0x90, 0x01, 0xbb]);
        let header = v2(0x21, 0x21, &body);
        let want = done(
            Some((sa("[2001:db8::7]:8080"), sa("[2001:db8::8]:443"))),
            header.len(),
        );
        assert_eq!(byte_by_byte(&header), want);
    }

    #[test]
    fn v2_local_unspec_and_unix_keep_the_socket_addresses() {
        // LOCAL with an address block: the block is skipped, not used.
        let header = v2(0x20, 0x11, &v4_body());
        assert_eq!(parse(&header), done(None, header.len()));
        assert_eq!(parse(&v2(0x20, 0x00, &[])), done(None, 16));
        assert_eq!(parse(&v2(0x21, 0x00, &[0x04, 0, 0])), done(None, 19));
        let unix = v2(0x21, 0x31, &[0u8; 216]);
        assert_eq!(parse(&unix), done(None, 232));
    }

    #[test]
    fn v2_malformed() {
        let body = v4_body();
        let mut cases = vec![
            v2(0x11, 0x11, &body),
            v2(0x31, 0x11, &body),
            v2(0x22, 0x11, &body),
            v2(0x2f, 0x11, &body),
            v2(0x21, 0x41, &body),
            v2(0x21, 0x13, &body),
            v2(0x21, 0x12, &body),
            v2(0x21, 0x10, &body),
            v2(0x21, 0x11, &body[..11]),
            v2(0x21, 0x21, &body),
            // TLVs cut short or overrunning the header's length.
            v2(0x21, 0x11, &[&body[..], &[0x01, 0]].concat()),
            v2(0x21, 0x11, &[&body[..], &[0x01, 0, 3, b'h', b'2']].concat()),
        ];
        let mut bad_signature = v2(0x21, 0x11, &body);
        bad_signature[11] = b'X';
        cases.push(bad_signature);
        for bad in cases {
            let got = byte_by_byte(&bad);
            assert!(matches!(got, Parsed::Invalid(_)), "{bad:?}: {got:?}");
        }
    }

    #[test]
    fn v2_length_beyond_the_data_waits() {
        let header = v2(0x21, 0x11, &v4_body());
        assert_eq!(parse(&header[..header.len() - 1]), Parsed::Incomplete);
        let mut huge = header[..16].to_vec();
        huge[14] = 0xff;
        huge[15] = 0xff;
        assert_eq!(parse(&huge), Parsed::Incomplete);
    }
}
