//! Inputs the fuzz targets (native/fuzz, docs/fuzzing.md) found, kept as
//! plain tests so `cargo test` guards them without the fuzzing toolchain.

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
