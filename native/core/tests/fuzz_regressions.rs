//! Inputs the fuzz targets (native/fuzz, docs/fuzzing.md) found, kept as
//! plain tests so `cargo test` guards them without the fuzzing toolchain.

use ruvicorn_core::http1::request::{parse_request_head, HeadParser};
use ruvicorn_core::http1::{Limits, RequestError};
use ruvicorn_core::proxy::{read_forwarded, TrustedProxies};

fn client_of(name: &'static [u8], value: &'static [u8]) -> Option<String> {
    let trusted = TrustedProxies::parse("127.0.0.1");
    read_forwarded(&trusted, [(name, value)].into_iter()).client
}

/// proxy target: whitespace inside the quotes of a `Forwarded: for=` node
/// was kept in the client address.
#[test]
fn forwarded_client_is_trimmed_inside_quotes() {
    assert_eq!(
        client_of(b"forwarded", b"for=\"192.0.2.1 \"").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(
        client_of(b"forwarded", b"for=\"[\x0b2001:db8::1]:80\"").as_deref(),
        Some("2001:db8::1")
    );
    assert_eq!(
        client_of(b"forwarded", b"for=\" 192.0.2.1 :80\"").as_deref(),
        Some("192.0.2.1")
    );
}

/// proxy target: `Forwarded: for=` with no node gave an empty client
/// address (X-Forwarded-For already gave none).
#[test]
fn empty_forwarded_node_is_no_client() {
    assert_eq!(client_of(b"forwarded", b"for="), None);
    assert_eq!(client_of(b"forwarded", b"for=\"\""), None);
    assert_eq!(client_of(b"x-forwarded-for", b" , "), None);
}

/// head target: a head whose empty lines before the request-line bring it
/// to just past `max_head` was accepted in one read, but refused with 431
/// when a read ended inside its final CRLF. Arrival must not decide.
#[test]
fn leading_empty_lines_and_max_head() {
    let limits = Limits {
        request_line: 16,
        fields: 2,
        field_size: 16,
        body: None,
    };
    let mut bytes = b"\r\n".repeat(12);
    bytes.extend_from_slice(b"PUT /x HTTP/1.0\r\nAccetLngth: )\r\n\r\n");
    assert!(bytes.len() > limits.max_head());
    let whole = parse_request_head(&bytes, &limits).map(|r| r.map(|(_, n)| n));
    let mut parser = HeadParser::new();
    let first = parser.parse(&bytes[..bytes.len() - 1], &limits);
    let split = match first {
        Ok(None) => parser.parse(&bytes, &limits).map(|r| r.map(|(_, n)| n)),
        other => other.map(|r| r.map(|(_, n)| n)),
    };
    assert_eq!(split, whole);
}

/// head target: a request-line with a control byte is refused at once when
/// it arrives without its CRLF, but waits for the end of the head when the
/// CRLF comes in the same read.
#[test]
fn control_byte_in_complete_request_line_is_refused_at_once() {
    let limits = Limits {
        request_line: 8190,
        fields: 100,
        field_size: 8190,
        body: None,
    };
    let bytes = b"\x01GET / HTTP/1.1\r\nHost: a\r\n";
    assert!(HeadParser::new().parse(&bytes[..5], &limits).is_err());
    assert!(parse_request_head(bytes, &limits).is_err());
}

/// head target: a request-line over its limit that ends in a bare LF was 400
/// (bare LF) in one read but 414 when a read ended inside it. Its length
/// decides, however the bytes arrive.
#[test]
fn overlong_line_status_does_not_depend_on_reads() {
    let limits = Limits {
        request_line: 8190,
        fields: 100,
        field_size: 8190,
        body: None,
    };
    let mut bytes = b"GET /".to_vec();
    bytes.extend(std::iter::repeat_n(b'G', 8200));
    bytes.extend_from_slice(b"\nHost: a\r\n\r\n");
    let whole = parse_request_head(&bytes, &limits).map(|r| r.is_some());
    let mut parser = HeadParser::new();
    let split = match parser.parse(&bytes[..8195], &limits) {
        Ok(None) => parser.parse(&bytes, &limits).map(|r| r.is_some()),
        other => other.map(|r| r.is_some()),
    };
    assert_eq!(whole, Err(RequestError::UriTooLong));
    assert_eq!(split, whole);
}

/// h3 target: a request with two `host` fields and no `:authority` passed the request
/// check with both (HTTP/1.1 refuses a second Host).
#[test]
fn h3_two_hosts_without_authority_are_refused() {
    use ruvicorn_core::http3::head::{request, Refusal};
    let field = |name: &str, value: &str| (name.as_bytes().to_vec(), value.as_bytes().to_vec());
    for second in ["b.example", "a.example"] {
        let fields = vec![
            field(":method", "GET"),
            field(":scheme", "https"),
            field(":path", "/"),
            field("host", "a.example"),
            field("host", second),
        ];
        assert_eq!(request(fields).err(), Some(Refusal::Malformed));
    }
}
