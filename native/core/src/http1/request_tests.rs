//! Tests of request head parsing: each refusal, the limits, and property tests that split
//! generated requests at arbitrary points.
use super::*;
use proptest::prelude::*;

fn small() -> Limits {
    Limits {
        request_line: 64,
        fields: 8,
        field_size: 64,
        body: Some(1000),
    }
}

fn parse(bytes: &[u8]) -> Result<Option<(RequestHead, usize)>, RequestError> {
    parse_request_head(bytes, &Limits::default())
}

/// Parse a complete head that must be accepted and fill the whole input.
fn head(bytes: &[u8]) -> RequestHead {
    match parse(bytes) {
        Ok(Some((head, consumed))) => {
            assert_eq!(
                consumed,
                bytes.len(),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
            head
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
    }
}

fn err_with(bytes: &[u8], limits: &Limits) -> RequestError {
    match parse_request_head(bytes, limits) {
        Err(e) => e,
        Ok(other) => panic!("accepted {:?}: {other:?}", String::from_utf8_lossy(bytes)),
    }
}

fn err(bytes: &[u8]) -> RequestError {
    err_with(bytes, &Limits::default())
}

#[track_caller]
fn bad(bytes: &[u8]) {
    let e = err(bytes);
    assert!(
        matches!(e, RequestError::BadRequest(_)),
        "{:?}: {e:?}",
        String::from_utf8_lossy(bytes)
    );
}

/// A request with these header lines between the request-line and the end.
fn with_headers(lines: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\n{lines}\r\n").into_bytes()
}

fn headers_of(h: &RequestHead) -> Vec<(String, String)> {
    h.iter_headers()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

#[test]
fn simple_get() {
    let h = head(b"GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nX-Foo:  bar \t\r\nACCEPT: */*\r\nx-foo: baz\r\n\r\n");
    assert_eq!(h.method(), b"GET");
    assert_eq!(h.target(), b"/a/b?c=d");
    assert_eq!(h.version, Version::Http11);
    assert_eq!(
        headers_of(&h),
        [
            ("host", "example.com"),
            ("x-foo", "bar"),
            ("accept", "*/*"),
            ("x-foo", "baz"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
    assert_eq!(h.header_name(1), b"x-foo");
    assert_eq!(h.header_value(3), b"baz");
    assert_eq!(h.header(b"x-foo"), Some(&b"bar"[..]));
    assert_eq!(h.header(b"missing"), None);
    assert_eq!(h.framing, Framing::None);
    assert!(h.keep_alive);
    assert!(!h.expect_continue);
    assert!(!h.upgrade);
    assert!(h.raw.ends_with(b"\r\n\r\n"));
}

#[test]
fn empty_values_and_whitespace() {
    let h = head(b"GET / HTTP/1.1\r\nHost:\r\nA: \r\nB:\t \t\r\nC:x y\tz\r\n\r\n");
    assert_eq!(
        headers_of(&h),
        [("host", ""), ("a", ""), ("b", ""), ("c", "x y\tz")]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
}

#[test]
fn obs_text_allowed_in_values() {
    let h = head(b"GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\xff\r\n\r\n");
    assert_eq!(h.header(b"x"), Some(&b"caf\xc3\xa9\xff"[..]));
}

#[test]
fn every_prefix_is_incomplete() {
    let req = b"\r\nPOST /x?y HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    for i in 0..req.len() {
        assert!(
            matches!(parse(&req[..i]), Ok(None)),
            "prefix {i}: {:?}",
            parse(&req[..i])
        );
    }
    let (h, n) = parse(req).expect("valid").expect("complete");
    assert_eq!(n, req.len());
    assert!(h.raw.eq_ignore_ascii_case(&req[2..]));
    assert_eq!(h.framing, Framing::Length(3));
}

#[test]
fn pipelined_bytes_left_unconsumed() {
    let first = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut buf = first.to_vec();
    buf.extend_from_slice(b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
    let (h, n) = parse(&buf).expect("valid").expect("complete");
    assert_eq!(n, first.len());
    assert_eq!(h.target(), b"/1");
    let (h, m) = parse(&buf[n..]).expect("valid").expect("complete");
    assert_eq!(m, buf.len() - n);
    assert_eq!(h.target(), b"/2");
}

#[test]
fn leading_empty_lines_skipped() {
    let (h, n) = parse(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .expect("valid")
        .expect("complete");
    assert_eq!(n, 4 + 27);
    assert_eq!(h.method(), b"GET");
    assert!(matches!(parse(b"\r\n"), Ok(None)));
    assert!(matches!(parse(b"\r\n\r"), Ok(None)));
    bad(b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    bad(b"\r\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    // Empty lines count towards the head size limit.
    assert!(small().max_head() < 600);
    let e = err_with(&b"\r\n".repeat(300), &small());
    assert_eq!(e, HEAD_TOO_LARGE);
}

#[test]
fn valid_token_methods() {
    for m in [
        "GET",
        "PROPFIND",
        "FOO-BAR",
        "M-SEARCH",
        "get",
        "X!#$%&'*+.^_`|~1",
    ] {
        let h = head(format!("{m} / HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        assert_eq!(h.method(), m.as_bytes());
    }
}

#[test]
fn invalid_methods() {
    for m in ["G@T", "GE(T", "GET\"", "G,T", "G/T", "G\tT", "G:T", "[GET]"] {
        bad(format!("{m} / HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    }
    bad(b" / HTTP/1.1\r\nHost: h\r\n\r\n");
    bad(b"GET\x00 / HTTP/1.1\r\nHost: h\r\n\r\n");
    bad(b"G\xc3\x89T / HTTP/1.1\r\nHost: h\r\n\r\n");
}

#[test]
fn versions() {
    assert_eq!(head(b"GET / HTTP/1.0\r\n\r\n").version, Version::Http10);
    assert_eq!(
        head(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").version,
        Version::Http11
    );
    // A higher minor version is read as the highest one implemented (RFC 9110 6.2).
    for minor in 2..=9 {
        let bytes = format!("GET /p HTTP/1.{minor}\r\nHost: h\r\nA: b\r\n\r\n");
        let h = head(bytes.as_bytes());
        assert_eq!(h.version, Version::Http11);
        assert_eq!((h.method(), h.target()), (&b"GET"[..], &b"/p"[..]));
        assert_eq!(h.header(b"a"), Some(&b"b"[..]));
        // As HTTP/1.1: a Host header is required.
        bad(format!("GET / HTTP/1.{minor}\r\n\r\n").as_bytes());
    }
    // Another major version: 505, whatever follows the request-line.
    for v in ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9", "HTTP/9.9"] {
        for rest in ["Host: h\r\n\r\n", "\x00junk", ""] {
            let bytes = format!("GET / {v}\r\n{rest}");
            assert_eq!(
                err(bytes.as_bytes()),
                RequestError::VersionNotSupported,
                "{bytes:?}"
            );
        }
    }
    for v in [
        "HTTP/1.10",
        "HTTP/2.00",
        "HTTP/2",
        "http/1.1",
        "http/2.0",
        "HTTP/1.1x",
        "HTTP/1",
        "HTTP/11",
        "HTTP/1.1 ",
        "HTTP/2.0 ",
        "HTTP /1.1",
        "HTTPS/1.1",
        "HTTP/1.a",
        "HTTP/a.1",
        "HTTP/1,1",
        "",
    ] {
        bad(format!("GET / {v}\r\nHost: h\r\n\r\n").as_bytes());
    }
    // A malformed request-line is 400 whatever its version says.
    for line in [
        "GET  / HTTP/2.0",
        "GET / x HTTP/2.0",
        "G(T / HTTP/2.0",
        " / HTTP/2.0",
    ] {
        bad(format!("{line}\r\nHost: h\r\n\r\n").as_bytes());
    }
}

#[test]
fn http09_simple_request_refused() {
    bad(b"GET /\r\n\r\n");
    bad(b"GET /\r\nHost: h\r\n\r\n");
    bad(b"GET\r\n\r\n");
}

#[test]
fn request_line_spacing() {
    bad(b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n");
    bad(b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n");
    bad(b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n");
    bad(b" GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    bad(b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n");
    bad(b"GET /\tHTTP/1.1\r\nHost: h\r\n\r\n");
}

#[test]
fn targets() {
    for (method, target) in [
        ("GET", "/"),
        ("GET", "/a%20b?q=%2F&x=[]"),
        ("GET", "http://example.com/p?q"),
        ("GET", "HTTPS://example.com"),
        ("OPTIONS", "*"),
        ("OPTIONS", "/"),
        ("GET", "http://[::1]:8080/p"),
        ("GET", "http://h:/p"),
        // VCHARs outside pchar that real clients send unencoded (see split_target).
        ("GET", "/a|b{c}\"d^`<>\\[]?x=|{}"),
        ("GET", "/%zz%4?%"),
    ] {
        let h = head(format!("{method} {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        assert_eq!(h.target(), target.as_bytes());
    }
}

#[test]
fn invalid_targets() {
    for target in [
        &b"/a b"[..],
        b"/a#frag",
        b"/#",
        b"/caf\xc3\xa9",
        b"/\x80",
        b"/\x7f",
        b"/a\x01",
        b"/a\x00b",
        b"/a\tb",
        b"*",
        b"a/b",
        b"example.com:443",
        b"ftp://h/",
        b"http://u@h/",
        b"http://h:x/",
        b"http://h:80:80/",
        b"http://[::1/",
        b"http://[::g]/",
        b"http://a|b/",
        b"http://%zz/",
        b"http:///",
        b"http://caf\xc3\xa9/",
        b"",
    ] {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(target);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(&req);
    }
    bad(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    // The authority-form with any other method (RFC 9112 3.2.3).
    for method in ["OPTIONS", "GET", "POST", "connect"] {
        bad(
            format!("{method} example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
                .as_bytes(),
        );
    }
}

#[test]
fn connect_takes_no_other_form() {
    bad(b"CONNECT * HTTP/1.1\r\nHost: h\r\n\r\n");
    for target in ["/x", "/", "/x?q", "http://h/x", "https://h:443/"] {
        let bytes = format!("CONNECT {target} HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(
            err(bytes.as_bytes()),
            RequestError::BadRequest("CONNECT without an authority-form target"),
            "{bytes:?}"
        );
        bad(format!("CONNECT {target} HTTP/1.0\r\n\r\n").as_bytes());
    }
    // Methods are case-sensitive: `connect` is another method, origin-form is its own.
    assert_eq!(
        head(b"connect /x HTTP/1.1\r\nHost: h\r\n\r\n").method(),
        b"connect"
    );
}

#[test]
fn host_value_is_trimmed_before_the_authority_check() {
    let h = head(&with_headers("Host: \t h:80 \t\r\n"));
    assert_eq!(h.header(b"host"), Some(&b"h:80"[..]));
    bad(&with_headers("Host: h :80\r\n"));
    bad(&with_headers("Host: h: 80\r\n"));
}

#[test]
fn bare_lf_and_cr_refused() {
    for req in [
        &b"GET / HTTP/1.1\nHost: h\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: h\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\n",
        b"GET / HTTP/1.1\nHost: h\n\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\r\n",
        b"GET / HTTP/1.1\rHost: h\r\n\r\n",
        b"GET /\r HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\n\r\n",
    ] {
        bad(req);
    }
    assert_eq!(err(b"GET / HTTP/1.1\nHost: h\r\n\r\n"), BARE_LF);
    assert_eq!(err(b"GET / HTTP/1.1\rHost: h\r\n\r\n"), BARE_CR);
    assert_eq!(err(b"GET / HTTP/1.1\n"), BARE_LF);
    assert_eq!(err(b"\n"), BARE_LF);
}

#[test]
fn obs_fold_refused() {
    bad(&with_headers("Host: h\r\nX: a\r\n b\r\n"));
    bad(&with_headers("Host: h\r\nX: a\r\n\tb\r\n"));
    bad(&with_headers(" Host: h\r\n"));
    bad(&with_headers("\tHost: h\r\n"));
    // Refused before the folded line is complete.
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b"), OBS_FOLD);
    assert_eq!(err(b"GET / HTTP/1.1\r\n "), OBS_FOLD);
}

#[test]
fn header_name_syntax() {
    bad(&with_headers("Host: h\r\nX : a\r\n"));
    bad(&with_headers("Host : h\r\n"));
    bad(&with_headers("Host: h\r\nX\t: a\r\n"));
    bad(&with_headers("Host: h\r\n: a\r\n"));
    bad(&with_headers("Host: h\r\nNoColon\r\n"));
    bad(&with_headers("Host: h\r\nX(y): a\r\n"));
    bad(&with_headers("Host: h\r\nX\x00: a\r\n"));
    bad(&with_headers("Host: h\r\nX\u{e9}: a\r\n"));
    bad(&with_headers("Host: h\r\n\"x\": a\r\n"));
}

#[test]
fn control_chars_in_values_refused() {
    for c in (0u8..0x20).chain([0x7f]) {
        if c == b'\t' || c == b'\r' || c == b'\n' {
            continue;
        }
        let mut req = b"GET / HTTP/1.1\r\nHost: h\r\nX: a".to_vec();
        req.push(c);
        req.extend_from_slice(b"b\r\n\r\n");
        bad(&req);
        let mut req = b"GET / HTTP/1.1\r\nHost: h\r\nX: ".to_vec();
        req.push(c);
        req.extend_from_slice(b"\r\n\r\n");
        bad(&req);
    }
    assert_eq!(
        head(&with_headers("Host: h\r\nX: a\tb\r\n")).header(b"x"),
        Some(&b"a\tb"[..])
    );
}

#[test]
fn host_rules() {
    bad(b"GET / HTTP/1.1\r\n\r\n");
    bad(b"GET / HTTP/1.1\r\nX-Host: h\r\n\r\n");
    bad(&with_headers("Host: a\r\nHost: a\r\n"));
    bad(&with_headers("Host: a\r\nhost: b\r\n"));
    bad(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(head(b"GET / HTTP/1.0\r\n\r\n").headers.len(), 0);
    // Empty is valid (RFC 9110 7.2); every other value is an authority.
    head(&with_headers("Host: \r\n"));
    for ok in crate::http1::target::tests::AUTHORITY_OK {
        let h = head(&with_headers(&format!("Host: {ok}\r\n")));
        assert_eq!(h.header(b"host"), Some(ok.as_bytes()));
    }
    for not_ok in crate::http1::target::tests::AUTHORITY_BAD {
        let e = err(&with_headers(&format!("Host: {not_ok}\r\n")));
        if not_ok
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            assert_eq!(
                e,
                RequestError::BadRequest("invalid Host header"),
                "{not_ok:?}"
            );
        } else {
            assert!(
                matches!(e, RequestError::BadRequest(_)),
                "{not_ok:?}: {e:?}"
            );
        }
    }
}

#[test]
fn content_length() {
    for (v, n) in [("0", 0), ("42", 42), ("007", 7), (" 5 ", 5), ("1000", 1000)] {
        let h = head(&with_headers(&format!(
            "Host: h\r\nContent-Length: {v}\r\n"
        )));
        assert_eq!(h.framing, Framing::Length(n), "{v}");
    }
    let max = u64::MAX.to_string();
    let h = head(&with_headers(&format!(
        "Host: h\r\nContent-Length: {max}\r\n"
    )));
    assert_eq!(h.framing, Framing::Length(u64::MAX));
}

#[test]
fn content_length_refused() {
    for v in [
        "",
        "abc",
        "+5",
        "-5",
        "5 5",
        "5\t5",
        "0x5",
        "5,5",
        "5, 5",
        "1e3",
        "5.0",
        "٣",
        "18446744073709551616",
        "99999999999999999999999",
    ] {
        bad(&with_headers(&format!(
            "Host: h\r\nContent-Length: {v}\r\n"
        )));
    }
    bad(&with_headers(
        "Host: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n",
    ));
    bad(&with_headers(
        "Host: h\r\nContent-Length: 5\r\ncontent-length: 6\r\n",
    ));
    bad(b"POST / HTTP/1.0\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n");
}

#[test]
fn content_length_over_limit() {
    let limits = small();
    let ok = parse_request_head(
        &with_headers("Host: h\r\nContent-Length: 1000\r\n"),
        &limits,
    );
    assert!(matches!(ok, Ok(Some(_))), "{ok:?}");
    assert_eq!(
        err_with(
            &with_headers("Host: h\r\nContent-Length: 1001\r\n"),
            &limits
        ),
        RequestError::PayloadTooLarge
    );
}

#[test]
fn transfer_encoding_chunked() {
    for v in ["chunked", "Chunked", "CHUNKED", " chunked\t"] {
        let h = head(&with_headers(&format!(
            "Host: h\r\nTransfer-Encoding: {v}\r\n"
        )));
        assert_eq!(h.framing, Framing::Chunked);
    }
}

#[test]
fn transfer_encoding_refused() {
    for v in [
        "gzip, chunked",
        "chunked, chunked",
        "chunked,",
        ",chunked",
        "chunked;q=1",
        "chunked chunked",
        "",
        "\"chunked\"",
    ] {
        bad(&with_headers(&format!(
            "Host: h\r\nTransfer-Encoding: {v}\r\n"
        )));
    }
    for v in ["identity", "gzip", "x-custom"] {
        let e = err(&with_headers(&format!(
            "Host: h\r\nTransfer-Encoding: {v}\r\n"
        )));
        assert_eq!(e.status(), 501, "{v}: {e:?}");
    }
    bad(&with_headers(
        "Host: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ));
    bad(&with_headers(
        "Host: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
    ));
    bad(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    bad(b"POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n");
}

#[test]
fn both_framings_refused() {
    bad(&with_headers(
        "Host: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ));
    bad(&with_headers(
        "Host: h\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n",
    ));
    bad(&with_headers(
        "Host: h\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n",
    ));
}

#[test]
fn connection_semantics() {
    let cases: [(&str, &str, bool, bool); 12] = [
        ("1.1", "", true, false),
        ("1.1", "Connection: close\r\n", false, false),
        ("1.1", "Connection: Keep-Alive\r\n", true, false),
        ("1.1", "Connection: foo, CLOSE\r\n", false, false),
        (
            "1.1",
            "Connection: keep-alive\r\nConnection: close\r\n",
            false,
            false,
        ),
        ("1.1", "Connection: closed\r\n", true, false),
        ("1.0", "", false, false),
        ("1.0", "Connection: keep-alive\r\n", true, false),
        ("1.0", "Connection:  Keep-Alive  \r\n", true, false),
        ("1.0", "Connection: keep-alive, close\r\n", false, false),
        (
            "1.1",
            "Connection: Upgrade\r\nUpgrade: websocket\r\n",
            true,
            true,
        ),
        (
            "1.0",
            "Connection: upgrade\r\nUpgrade: websocket\r\n",
            false,
            false,
        ),
    ];
    for (version, lines, keep_alive, upgrade) in cases {
        let req = format!("GET / HTTP/{version}\r\nHost: h\r\n{lines}\r\n");
        let h = head(req.as_bytes());
        assert_eq!(h.keep_alive, keep_alive, "{req:?}");
        assert_eq!(h.upgrade, upgrade, "{req:?}");
    }
    // Upgrade needs both the token and the header.
    assert!(!head(&with_headers("Host: h\r\nUpgrade: websocket\r\n")).upgrade);
    assert!(!head(&with_headers("Host: h\r\nConnection: upgrade\r\n")).upgrade);
    assert!(
        head(&with_headers(
            "Host: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n"
        ))
        .upgrade
    );
}

#[test]
fn expect_continue() {
    assert!(head(&with_headers("Host: h\r\nExpect: 100-continue\r\n")).expect_continue);
    assert!(head(&with_headers("Host: h\r\nexpect: 100-Continue\r\n")).expect_continue);
    assert!(!head(&with_headers("Host: h\r\nExpect: 200-ok\r\n")).expect_continue);
    assert!(!head(b"GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
}

#[test]
fn request_line_limit() {
    let limits = small();
    // "GET " + target + " HTTP/1.1" is exactly the limit.
    let target = format!("/{}", "a".repeat(64 - 4 - 9 - 1));
    let req = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(matches!(
        parse_request_head(req.as_bytes(), &limits),
        Ok(Some(_))
    ));
    let req = format!("GET {target}a HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(err_with(req.as_bytes(), &limits), RequestError::UriTooLong);
    // Detected before the line ends.
    let partial = format!("GET /{}", "a".repeat(60));
    assert_eq!(
        err_with(partial.as_bytes(), &limits),
        RequestError::UriTooLong
    );
    assert!(matches!(
        parse_request_head(&partial.as_bytes()[..64], &limits),
        Ok(None)
    ));
    // A trailing CR does not count.
    let mut at_limit = partial.as_bytes()[..64].to_vec();
    at_limit.push(b'\r');
    assert!(matches!(parse_request_head(&at_limit, &limits), Ok(None)));
}

#[test]
fn field_limits() {
    let limits = small();
    let value = "v".repeat(64 - 3);
    let ok = with_headers(&format!("Host: h\r\nX: {value}\r\n"));
    assert!(matches!(parse_request_head(&ok, &limits), Ok(Some(_))));
    let long = with_headers(&format!("Host: h\r\nX: {value}v\r\n"));
    assert_eq!(err_with(&long, &limits), FIELD_TOO_LONG);
    // Detected before the line ends.
    let partial = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {value}vv");
    assert_eq!(err_with(partial.as_bytes(), &limits), FIELD_TOO_LONG);

    let eight: String = (0..7).map(|i| format!("X{i}: v\r\n")).collect();
    let ok = with_headers(&format!("Host: h\r\n{eight}"));
    assert!(matches!(parse_request_head(&ok, &limits), Ok(Some(_))));
    let nine = with_headers(&format!("Host: h\r\n{eight}Y: v\r\n"));
    assert_eq!(err_with(&nine, &limits), TOO_MANY_FIELDS);
    let partial = format!("GET / HTTP/1.1\r\nHost: h\r\n{eight}Y");
    assert_eq!(err_with(partial.as_bytes(), &limits), TOO_MANY_FIELDS);
}

#[test]
fn many_headers_use_the_heap() {
    let lines: String = (0..90).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let h = head(&with_headers(&format!("Host: h\r\n{lines}")));
    assert_eq!(h.headers.len(), 91);
    assert_eq!(h.header(b"x-89"), Some(&b"89"[..]));
}

#[test]
fn head_size_limit() {
    let limits = Limits {
        request_line: 100,
        fields: 2,
        field_size: 10,
        body: None,
    };
    assert_eq!(limits.max_head(), 100 + 2 + 2 * 12 + 2);
    // The largest valid head is accepted.
    let req = format!(
        "GET /{} HTTP/1.1\r\nHost: hhhh\r\nX: 1234567\r\n\r\n",
        "a".repeat(100 - 14)
    );
    assert_eq!(req.len(), limits.max_head());
    assert!(matches!(
        parse_request_head(req.as_bytes(), &limits),
        Ok(Some(_))
    ));
}

#[test]
fn resumable_parser_matches() {
    let req = b"\r\nPOST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello";
    let mut parser = HeadParser::new();
    let limits = Limits::default();
    let mut found = None;
    for i in 0..=req.len() {
        match parser.parse(&req[..i], &limits) {
            Ok(None) => {}
            Ok(Some((h, n))) => {
                found = Some((h, n, i));
                break;
            }
            Err(e) => panic!("{i}: {e:?}"),
        }
    }
    let (h, n, i) = found.expect("complete");
    assert_eq!(n, i);
    assert_eq!(&req[n..], b"5\r\nhello");
    assert_eq!(h.framing, Framing::Chunked);
    // Reset after a head: it parses a fresh buffer.
    assert!(parser.parse(b"GET / HTTP/1.0\r\n\r\n", &limits).is_ok());
    // A shorter buffer than before resets it too.
    assert!(matches!(
        parser.parse(b"GET / HTTP/1.1\r\nHo", &limits),
        Ok(None)
    ));
    assert!(matches!(parser.parse(b"GET", &limits), Ok(None)));
    assert!(matches!(
        parser.parse(b"GET / HTTP/1.0\r\n\r\n", &limits),
        Ok(Some(_))
    ));
}

#[test]
fn garbage_refused_early() {
    // A TLS ClientHello sent to a plain-text port.
    assert!(matches!(
        err(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        RequestError::BadRequest(_)
    ));
    assert!(matches!(err(b"GET /\x00"), RequestError::BadRequest(_)));
    assert!(matches!(parse(b"GET / HTTP/1.1"), Ok(None)));
}

#[test]
fn find_cr_or_lf_agrees() {
    let mut hay = vec![b'a'; 40];
    assert_eq!(find_cr_or_lf(&hay), None);
    for i in 0..40 {
        for c in [b'\r', b'\n'] {
            hay[i] = c;
            assert_eq!(find_cr_or_lf(&hay), Some(i));
            hay[39] = c;
            assert_eq!(find_cr_or_lf(&hay), Some(i));
            hay[39] = b'a';
            hay[i] = b'a';
        }
    }
    // Bytes next to CR/LF must not produce false hits.
    let near: Vec<u8> = (0..=255u8).filter(|&b| b != b'\r' && b != b'\n').collect();
    assert_eq!(find_cr_or_lf(&near), None);
}

// ---- property tests ----

#[derive(Clone, Debug)]
struct Generated {
    leading_crlf: usize,
    method: String,
    target: String,
    http11: bool,
    /// The minor version an HTTP/1.1 request gives (above 1: read as 1.1).
    minor: u8,
    /// (name, value, OWS before, OWS after)
    headers: Vec<(String, String, String, String)>,
    close: bool,
    content_length: Option<u64>,
    chunked: bool,
}

impl Generated {
    fn bytes(&self) -> Vec<u8> {
        let mut out = "\r\n".repeat(self.leading_crlf);
        let v = if self.http11 {
            format!("1.{}", self.minor)
        } else {
            "1.0".to_owned()
        };
        out.push_str(&format!("{} {} HTTP/{v}\r\n", self.method, self.target));
        out.push_str("Host: example\r\n");
        for (n, v, before, after) in &self.headers {
            out.push_str(&format!("{n}:{before}{v}{after}\r\n"));
        }
        if self.close {
            out.push_str("Connection: close\r\n");
        }
        if let Some(n) = self.content_length {
            out.push_str(&format!("Content-Length: {n}\r\n"));
        }
        if self.chunked {
            out.push_str("Transfer-Encoding: chunked\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

fn generated() -> impl Strategy<Value = Generated> {
    let header = (
        "x-[A-Za-z0-9!#$%&'*+.^_`|~-]{0,12}",
        "([!-~]([ -~]{0,20}[!-~])?)?",
        "[ \t]{0,2}",
        "[ \t]{0,2}",
    );
    (
        0usize..3,
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,10}",
        "/[A-Za-z0-9._~!$&'()*+,;=:@/%-]{0,30}(\\?[A-Za-z0-9=&%/?:@-]{0,20})?",
        any::<bool>(),
        prop::collection::vec(header, 0..12),
        any::<bool>(),
        prop_oneof![Just(None), (0u64..100_000).prop_map(Some)],
        any::<bool>(),
        prop_oneof![3 => Just(1u8), 1 => 2u8..=9],
    )
        .prop_map(
            |(leading_crlf, method, target, http11, headers, close, cl, chunked, minor)| {
                Generated {
                    leading_crlf,
                    method,
                    target,
                    http11,
                    minor,
                    headers,
                    close,
                    content_length: if chunked && http11 { None } else { cl },
                    chunked: chunked && http11,
                }
            },
        )
}

fn check(h: &RequestHead, g: &Generated) -> Result<(), TestCaseError> {
    prop_assert_eq!(h.method(), g.method.as_bytes());
    prop_assert_eq!(h.target(), g.target.as_bytes());
    prop_assert_eq!(h.version == Version::Http11, g.http11);
    let mut expected = vec![(b"host".to_vec(), b"example".to_vec())];
    for (n, v, _, _) in &g.headers {
        expected.push((n.to_ascii_lowercase().into_bytes(), v.clone().into_bytes()));
    }
    if g.close {
        expected.push((b"connection".to_vec(), b"close".to_vec()));
    }
    if let Some(n) = g.content_length {
        expected.push((b"content-length".to_vec(), n.to_string().into_bytes()));
    }
    if g.chunked {
        expected.push((b"transfer-encoding".to_vec(), b"chunked".to_vec()));
    }
    let got: Vec<(Vec<u8>, Vec<u8>)> = h
        .iter_headers()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    prop_assert_eq!(got, expected);
    let framing = match (g.chunked, g.content_length) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::None,
    };
    prop_assert_eq!(h.framing, framing);
    prop_assert_eq!(h.keep_alive, g.http11 && !g.close);
    Ok(())
}

proptest! {
    #[test]
    fn generated_requests_parse_whole_and_split(
        g in generated(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let head_bytes = g.bytes();
        let mut buf = head_bytes.clone();
        buf.extend_from_slice(b"NEXT");
        let limits = Limits::default();
        let (h, n) = parse_request_head(&buf, &limits)
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?
            .ok_or_else(|| TestCaseError::fail("incomplete"))?;
        prop_assert_eq!(n, head_bytes.len());
        check(&h, &g)?;

        // Feed the same bytes in pieces, both stateless and resumable.
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(buf.len())).collect();
        cuts.push(buf.len());
        cuts.sort_unstable();
        let mut parser = HeadParser::new();
        let (mut stateless, mut resumable) = (None, None);
        for &cut in &cuts {
            let piece = &buf[..cut];
            if stateless.is_none() {
                stateless = parse_request_head(piece, &limits)
                    .map_err(|e| TestCaseError::fail(format!("{cut}: {e:?}")))?;
            }
            if resumable.is_none() {
                resumable = parser.parse(piece, &limits)
                    .map_err(|e| TestCaseError::fail(format!("{cut}: {e:?}")))?;
            }
        }
        for found in [stateless, resumable] {
            let (h2, n2) = found.ok_or_else(|| TestCaseError::fail("never complete"))?;
            prop_assert_eq!(n2, n);
            prop_assert_eq!(&h2.raw, &h.raw);
            check(&h2, &g)?;
        }
    }

    #[test]
    fn every_byte_split(g in generated()) {
        let bytes = g.bytes();
        let limits = Limits::default();
        let mut parser = HeadParser::new();
        for i in 1..bytes.len() {
            prop_assert!(matches!(parser.parse(&bytes[..i], &limits), Ok(None)));
        }
        let (h, n) = parser.parse(&bytes, &limits)
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?
            .ok_or_else(|| TestCaseError::fail("incomplete"))?;
        prop_assert_eq!(n, bytes.len());
        check(&h, &g)?;
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let limits = small();
        let _ = parse_request_head(&bytes, &limits);
        let mut parser = HeadParser::new();
        for i in 0..=bytes.len() {
            if !matches!(parser.parse(&bytes[..i], &limits), Ok(None)) {
                break;
            }
        }
    }

    #[test]
    fn mutated_requests_never_panic(
        g in generated(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = g.bytes();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let whole = parse_request_head(&bytes, &Limits::default());
        // Whatever the verdict, splitting the input must not change it.
        let mut parser = HeadParser::new();
        let mut split = Ok(None);
        for i in 1..=bytes.len() {
            split = parser.parse(&bytes[..i], &Limits::default());
            if !matches!(split, Ok(None)) {
                break;
            }
        }
        match (&whole, &split) {
            (Ok(Some((a, n))), Ok(Some((b, m)))) => {
                // The split parse may find a head that ends earlier only
                // if the whole parse found the same one.
                prop_assert_eq!(n, m);
                prop_assert_eq!(&a.raw, &b.raw);
            }
            (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
            (Ok(Some(_)), Err(_)) | (Err(_), Ok(Some(_))) => {
                prop_assert!(false, "whole {:?} vs split {:?}", whole, split);
            }
            // An early refusal of a head that is incomplete as a whole.
            (Ok(None), Err(_)) => {}
            _ => prop_assert!(false, "whole {:?} vs split {:?}", whole, split),
        }
    }

    #[test]
    fn fast_path_agrees_with_scanning_path(
        g in generated(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        request_line in 10usize..80,
        fields in 1usize..12,
        field_size in 10usize..40,
    ) {
        let mut bytes = g.bytes();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let limits = Limits { request_line, fields, field_size, body: Some(50_000) };
        let slow = format!("{:?}", HeadParser::new().parse_scanned(&bytes, &limits));
        if let Some(fast) = fast_path(&bytes, &limits) {
            prop_assert_eq!(&format!("{fast:?}"), &slow);
        }
        let public = format!("{:?}", parse_request_head(&bytes, &limits));
        prop_assert_eq!(public, slow);
    }

    #[test]
    fn request_line_near_limit(limit in 20usize..200, delta in -3i64..=3) {
        let limits = Limits { request_line: limit, ..small() };
        let len = (limit as i64 + delta) as usize;
        let target = format!("/{}", "p".repeat(len - 14));
        let line = format!("GET {target} HTTP/1.1");
        prop_assert_eq!(line.len(), len);
        let req = format!("{line}\r\nHost: h\r\n\r\n");
        let whole = parse_request_head(req.as_bytes(), &limits);
        let partial = parse_request_head(line.as_bytes(), &limits);
        if len <= limit {
            prop_assert!(matches!(whole, Ok(Some(_))), "{:?}", whole);
            prop_assert!(matches!(partial, Ok(None)), "{:?}", partial);
        } else {
            prop_assert_eq!(whole.err(), Some(RequestError::UriTooLong));
            prop_assert_eq!(partial.err(), Some(RequestError::UriTooLong));
        }
    }

    #[test]
    fn field_line_near_limit(limit in 16usize..200, delta in -3i64..=3) {
        let limits = Limits { field_size: limit, ..small() };
        let len = (limit as i64 + delta) as usize;
        let line = format!("X: {}", "v".repeat(len - 3));
        let req = format!("GET / HTTP/1.1\r\nHost: h\r\n{line}\r\n\r\n");
        let partial = format!("GET / HTTP/1.1\r\nHost: h\r\n{line}");
        let whole = parse_request_head(req.as_bytes(), &limits);
        let partial = parse_request_head(partial.as_bytes(), &limits);
        if len <= limit {
            prop_assert!(matches!(whole, Ok(Some(_))), "{:?}", whole);
            prop_assert!(matches!(partial, Ok(None)), "{:?}", partial);
        } else {
            prop_assert_eq!(whole.err(), Some(FIELD_TOO_LONG));
            prop_assert_eq!(partial.err(), Some(FIELD_TOO_LONG));
        }
    }

    #[test]
    fn field_count_near_limit(limit in 1usize..40, delta in -1i64..=2) {
        let limits = Limits { fields: limit, ..small() };
        let count = (limit as i64 + delta).max(1) as usize;
        let lines: String = std::iter::once("Host: h\r\n".to_owned())
            .chain((1..count).map(|i| format!("X{i}: v\r\n")))
            .collect();
        let req = format!("GET / HTTP/1.1\r\n{lines}\r\n");
        let result = parse_request_head(req.as_bytes(), &limits);
        if count <= limit {
            let (h, _) = result
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?
                .ok_or_else(|| TestCaseError::fail("incomplete"))?;
            prop_assert_eq!(h.headers.len(), count);
        } else {
            prop_assert_eq!(result.err(), Some(TOO_MANY_FIELDS));
        }
    }
}
