//! The PROXY protocol header (`--proxy-protocol`, v1 and v2).
//!
//! Input: a control byte (the size of the pieces the bytes arrive in, 1 to 64), then the
//! bytes a load balancer sends.
//! Properties: nothing panics; fed a prefix at a time, the parser says Incomplete until
//! it says the same as on the whole input (a refusal is never taken back, a header never
//! depends on the bytes after it); a header takes at most 107 bytes in v1 and exactly its
//! stated length in v2; a v1 TCP4 line is the canonical text of the addresses it gave,
//! and a TCP6 line says the same addresses as that text.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use ruvicorn_core::proxy_protocol::{parse, Parsed, V1_MAX, V2_SIGNATURE};
use ruvicorn_fuzz::Input;

fn check_header(data: &[u8], addresses: Option<(SocketAddr, SocketAddr)>, consumed: usize) {
    assert!(consumed <= data.len());
    if data.starts_with(&V2_SIGNATURE) {
        let len = usize::from(u16::from_be_bytes([data[14], data[15]]));
        assert_eq!(consumed, 16 + len);
        return;
    }
    assert!(consumed <= V1_MAX, "v1 header of {consumed} bytes");
    let line = &data[..consumed];
    assert!(line.starts_with(b"PROXY ") && line.ends_with(b"\r\n"));
    if let Some((client, server)) = addresses {
        assert_eq!(client.is_ipv4(), server.is_ipv4());
        let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
        let text = format!(
            "PROXY {family} {} {} {} {}\r\n",
            client.ip(),
            server.ip(),
            client.port(),
            server.port()
        );
        if client.is_ipv4() {
            assert_eq!(text.as_bytes(), line);
        } else {
            let again = parse(text.as_bytes());
            let want = Parsed::Done {
                addresses,
                consumed: text.len(),
            };
            assert_eq!(again, want);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let piece = usize::from(input.byte() % 64) + 1;
    let bytes = input.rest();
    let whole = parse(bytes);
    let mut cut = 0;
    loop {
        cut = (cut + piece).min(bytes.len());
        let partial = parse(&bytes[..cut]);
        if partial != Parsed::Incomplete {
            match (&partial, &whole) {
                (Parsed::Invalid(_), Parsed::Invalid(_)) => {}
                _ => assert_eq!(partial, whole, "at {cut} of {}", bytes.len()),
            }
            break;
        }
        if cut == bytes.len() {
            assert_eq!(whole, Parsed::Incomplete);
            break;
        }
    }
    if let Parsed::Done {
        addresses,
        consumed,
    } = whole
    {
        check_header(bytes, addresses, consumed);
    }
});
