use super::*;

const MAX: u64 = 64 * 1024;

fn pairs(fields: &[(&str, &str)]) -> Fields {
    fields
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn rfc9204_b1_literal_with_name_reference() {
    // RFC 9204 B.1: ":path: /index.html" as a literal with a static name reference.
    let section = b"\x00\x00\x51\x0b/index.html";
    assert_eq!(decode(section, MAX), Ok(pairs(&[(":path", "/index.html")])));
}

#[test]
fn round_trip_uses_static_table_and_literals() {
    let fields = pairs(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/a/b?c=d"),
        (":authority", "example.com"),
        ("x-custom-header-of-some-length", "v"),
        ("content-type", "text/plain"),
    ]);
    let mut out = Vec::new();
    encode(fields.iter().map(|(n, v)| (&n[..], &v[..])), &mut out);
    // :method GET is one byte: indexed static entry 17.
    assert_eq!(out[2], 0xc0 | 17);
    assert_eq!(decode(&out, MAX), Ok(fields));
}

#[test]
fn huffman_coded_name_and_value() {
    let mut section = vec![0, 0];
    let name = huffman::encode(b"user-agent-x");
    let value = huffman::encode(b"curl/8.0");
    put_integer(&mut section, 0x28, 3, name.len() as u64); // 001 N=0 H=1 length(3)
    section.extend_from_slice(&name);
    put_integer(&mut section, 0x80, 7, value.len() as u64); // H=1 length(7)
    section.extend_from_slice(&value);
    assert_eq!(
        decode(&section, MAX),
        Ok(pairs(&[("user-agent-x", "curl/8.0")]))
    );
}

#[test]
fn long_integers_round_trip() {
    let long = "v".repeat(300);
    let fields = pairs(&[("x-long-name-beyond-seven-bytes", &long)]);
    let mut out = Vec::new();
    encode(fields.iter().map(|(n, v)| (&n[..], &v[..])), &mut out);
    assert_eq!(decode(&out, MAX), Ok(fields));
}

#[test]
fn dynamic_table_references_are_refused() {
    // Required Insert Count 1.
    assert_eq!(decode(b"\x01\x00", MAX), Err(Error::Invalid));
    // Indexed field line, T=0 (dynamic).
    assert_eq!(decode(b"\x00\x00\x80", MAX), Err(Error::Invalid));
    // Literal with dynamic name reference.
    assert_eq!(decode(b"\x00\x00\x40\x00", MAX), Err(Error::Invalid));
    // Post-base indexed and post-base name reference.
    assert_eq!(decode(b"\x00\x00\x10", MAX), Err(Error::Invalid));
    assert_eq!(decode(b"\x00\x00\x00\x00", MAX), Err(Error::Invalid));
}

#[test]
fn truncated_and_out_of_range_input_is_refused() {
    for section in [
        &b""[..],
        b"\x00",
        b"\x00\x00\x51",                 // name reference without its value
        b"\x00\x00\x51\x05abc",          // value shorter than its length
        b"\x00\x00\xff\x7f",             // static index 63 + 127 = 190: beyond the table
        b"\x00\x00\x27\xff\xff\xff\xff", // unfinished integer
        b"\x00\x00\x3f\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", // integer overflow
    ] {
        assert_eq!(decode(section, MAX), Err(Error::Invalid), "{section:?}");
    }
}

#[test]
fn size_limit_counts_32_bytes_per_field() {
    let section = b"\x00\x00\xd1"; // :method GET: 7 + 3 + 32 = 42 bytes.
    assert_eq!(decode(section, 42).map(|f| f.len()), Ok(1));
    assert_eq!(decode(section, 41), Err(Error::TooLarge));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes decode to fields or to an error, never a panic; what decodes
        /// re-encodes to a section that decodes to the same fields.
        #[test]
        fn arbitrary_sections_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(fields) = decode(&bytes, MAX) {
                let mut out = Vec::new();
                encode(fields.iter().map(|(n, v)| (&n[..], &v[..])), &mut out);
                prop_assert_eq!(decode(&out, MAX), Ok(fields));
            }
        }

        #[test]
        fn arbitrary_huffman_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(decoded) = huffman::decode(&bytes) {
                prop_assert_eq!(huffman::decode(&huffman::encode(&decoded)), Some(decoded));
            }
        }
    }
}

/// The table's indexes as a scan of it finds them: first exact match, first name match.
fn scanned(name: &[u8], value: &[u8]) -> (Option<usize>, Option<usize>) {
    (
        STATIC.iter().position(|&entry| entry == (name, value)),
        STATIC.iter().position(|&(n, _)| n == name),
    )
}

#[test]
fn static_lookup_finds_what_a_scan_of_the_table_finds() {
    let mut probes: Vec<(&[u8], &[u8])> = STATIC.to_vec();
    for &(name, _) in &STATIC {
        probes.extend([(name, &b"no such value"[..]), (name, b""), (name, b"zzz")]);
    }
    probes.extend([
        (&b"x-custom"[..], &b""[..]),
        (b"", b""),
        (b"zzzz", b"0"),
        (b"content-typ", b"text/plain"),
        (b"content-typez", b"text/plain"),
        (b"CONTENT-TYPE", b"text/plain"),
    ]);
    for (name, value) in probes {
        assert_eq!(
            static_index(name, value),
            scanned(name, value),
            "{:?}: {:?}",
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(value)
        );
    }
}
