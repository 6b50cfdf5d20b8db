//! Request-head parser.
//!
//! Input: a limits byte, a split seed, then the bytes a client sent.
//! Properties: the resumable parser fed the bytes in pieces gives exactly
//! what one call on the whole buffer gives (same head, same `consumed`, same
//! error); a parsed head does not depend on the bytes after it; and a head's
//! parts obey the grammar (token method, lower-case token names, trimmed
//! values, a head ending in CRLFCRLF).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ruvicorn_core::http1::request::{parse_request_head, HeadParser, RequestHead};
use ruvicorn_core::http1::{Limits, RequestError};
use ruvicorn_fuzz::{limits, split_ends, Input};

type Parsed = Result<Option<(RequestHead, usize)>, RequestError>;

/// A comparable rendering of a parse result (`RequestHead` has no `PartialEq`).
fn render(result: &Parsed) -> String {
    format!("{result:?}")
}

/// What must not depend on how the bytes arrived: the whole result when a
/// head parses (or is incomplete), and whether it is refused. Which error
/// refuses it may differ: the parser refuses as soon as a prefix cannot
/// become valid, so with several faults in a head the one noticed first
/// depends on where the reads ended (a line over the limit before its bare
/// LF arrives is 414, the whole line at once is 400). All of them close the
/// connection.
fn outcome(result: &Parsed) -> String {
    match result {
        Err(_) => "refused".into(),
        ok => render(ok),
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_head(bytes: &[u8], head: &RequestHead, consumed: usize, limits: &Limits) {
    assert!(
        consumed <= bytes.len(),
        "consumed {consumed} of {}",
        bytes.len()
    );
    assert!(
        bytes[..consumed].ends_with(b"\r\n\r\n"),
        "head does not end in CRLFCRLF"
    );
    assert!(head.raw.len() <= consumed);
    assert!(head.raw.len() <= limits.max_head(), "head over max_head");
    let method = head.method();
    assert!(
        !method.is_empty() && method.iter().all(|&b| is_tchar(b)),
        "method {method:?}"
    );
    assert!(!head.target().is_empty(), "empty target");
    assert!(
        head.headers.len() <= limits.fields,
        "more fields than the limit"
    );
    for (name, value) in head.iter_headers() {
        assert!(!name.is_empty(), "empty field name");
        assert!(
            name.iter().all(|&b| is_tchar(b) && !b.is_ascii_uppercase()),
            "field name {name:?}"
        );
        assert!(
            !value.starts_with(b" ")
                && !value.starts_with(b"\t")
                && !value.ends_with(b" ")
                && !value.ends_with(b"\t"),
            "untrimmed value {value:?}"
        );
        assert!(
            !value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0),
            "CR, LF or NUL in value {value:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let limits = limits(input.byte());
    let seed = input.byte();
    let bytes = input.rest();

    let whole = parse_request_head(bytes, &limits);
    if let Ok(Some((head, consumed))) = &whole {
        check_head(bytes, head, *consumed, &limits);
        let alone = parse_request_head(&bytes[..*consumed], &limits);
        assert_eq!(
            render(&alone),
            render(&whole),
            "head depends on later bytes"
        );
    }

    // The same bytes arriving in pieces, into one buffer that grows.
    let mut parser = HeadParser::new();
    let mut pieces = None;
    for end in split_ends(bytes.len(), seed) {
        let result = parser.parse(&bytes[..end], &limits);
        if !matches!(result, Ok(None)) {
            pieces = Some((end, result));
            break;
        }
    }
    match pieces {
        Some((end, Err(error))) if matches!(whole, Ok(None)) => {
            // Refused early on a prefix: the whole buffer may still be
            // waiting for its end, but completing the head must not make
            // it acceptable.
            let mut completed = bytes.to_vec();
            completed.extend_from_slice(b"\r\n\r\n");
            let result = parse_request_head(&completed, &limits);
            assert!(
                result.is_err(),
                "first {end} bytes refused ({error}), the completed head parses: {result:?}"
            );
        }
        Some((end, result)) => {
            assert_eq!(
                outcome(&result),
                outcome(&whole),
                "differs when split (first {end} bytes): {result:?} vs {whole:?}"
            );
        }
        None => assert!(
            matches!(whole, Ok(None)),
            "split never completed: {whole:?}"
        ),
    }
});
