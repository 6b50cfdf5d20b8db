//! Request-target handling: split into path and query, check the authority
//! (of an absolute-form target and of the Host header), and percent-decode
//! the path for ASGI's `path`.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use super::RequestError;
use crate::syntax::{alnum_and, hex_digit};

/// A request-target split the way ASGI wants it: `raw_path` and
/// `query_string` (without the `?`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The path, still percent-encoded; `/` for an absolute-form target with
    /// an empty path, `*` for the asterisk-form.
    pub raw_path: &'a [u8],
    /// The bytes after the first `?`, or empty.
    pub query: &'a [u8],
    /// The authority of an absolute-form target: the request's host, whatever its Host
    /// header says (RFC 9112 3.2.2).
    pub authority: Option<&'a [u8]>,
}

/// Split a request-target into path and query.
///
/// Accepts the origin-form (`/p?q`), the absolute-form
/// (`http://host[:port]/p?q`, scheme `http` or `https` in any case) and the
/// asterisk-form (`*`, only for `OPTIONS`). Everything else, including the
/// authority-form, is refused with 400. The authority of an absolute-form
/// target must be a valid `authority` (see `is_authority`).
///
/// The path and query are not held to `pchar`: `parse_request_head` already
/// refused CTLs, spaces, `#` and non-ASCII, and the other VCHARs (`"`, `<`,
/// `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`, `[`, `]`, and a `%` without two hex
/// digits) are sent unencoded by real clients. They change neither the form
/// of the target nor where the request ends, and reach the app unaltered in
/// `raw_path` and `query_string`, so refusing them would only break clients.
pub fn split_target<'a>(method: &[u8], target: &'a [u8]) -> Result<Target<'a>, RequestError> {
    match target.first() {
        Some(b'/') => Ok(split_query(target)),
        Some(b'*') if target.len() == 1 => {
            if method == b"OPTIONS" {
                Ok(Target {
                    raw_path: target,
                    query: b"",
                    authority: None,
                })
            } else {
                Err(RequestError::BadRequest(
                    "asterisk request target only allowed for OPTIONS",
                ))
            }
        }
        Some(_) => split_absolute(target),
        None => Err(RequestError::BadRequest("empty request target")),
    }
}

#[inline]
fn split_query(path_and_query: &[u8]) -> Target<'_> {
    match path_and_query.iter().position(|&b| b == b'?') {
        Some(q) => Target {
            raw_path: &path_and_query[..q],
            query: &path_and_query[q + 1..],
            authority: None,
        },
        None => Target {
            raw_path: path_and_query,
            query: b"",
            authority: None,
        },
    }
}

fn split_absolute(target: &[u8]) -> Result<Target<'_>, RequestError> {
    const BAD: RequestError = RequestError::BadRequest("invalid request target");
    let rest = if starts_with_ignore_case(target, b"http://") {
        &target[7..]
    } else if starts_with_ignore_case(target, b"https://") {
        &target[8..]
    } else {
        return Err(BAD);
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    if !is_authority(&rest[..end]) {
        return Err(BAD);
    }
    let authority = Some(&rest[..end]);
    let path_and_query = &rest[end..];
    if path_and_query.first() == Some(&b'/') {
        Ok(Target {
            authority,
            ..split_query(path_and_query)
        })
    } else {
        // Empty path ("http://h" or "http://h?q"): the path is "/".
        let query = path_and_query.get(1..).unwrap_or(b"");
        Ok(Target {
            raw_path: b"/",
            query,
            authority,
        })
    }
}

/// RFC 3986 `unreserved` and `sub-delims`: the bytes of a `reg-name`
/// besides `pct-encoded`, and of an `IPvFuture` address besides `:`.
static REG_NAME_CHAR: [bool; 256] = alnum_and(b"-._~!$&'()*+,;=");

/// Whether `authority` is `uri-host [ ":" port ]` with a non-empty host
/// (RFC 9110 4.2.1 and 7.2, RFC 3986 3.2.2 and 3.2.3):
///
/// ```text
/// uri-host    = IP-literal / IPv4address / reg-name
/// IP-literal  = "[" ( IPv6address / IPvFuture ) "]"
/// IPvFuture   = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
/// reg-name    = *( unreserved / pct-encoded / sub-delims )
/// port        = *DIGIT
/// ```
///
/// `IPv4address` is a `reg-name` too, so it needs no case of its own. The
/// userinfo of an absolute-form target (`user@`) is not accepted: `@` is in
/// no part of this grammar, and an `http` URI's userinfo is deprecated
/// (RFC 9110 4.2.4) and a known way to confuse which host a request is for.
///
/// The Host header and the absolute-form target share this one parser, so
/// both agree on what a host is.
pub(crate) fn is_authority(authority: &[u8]) -> bool {
    let port = if let Some(literal) = authority.strip_prefix(b"[") {
        let Some(close) = literal.iter().position(|&b| b == b']') else {
            return false;
        };
        if !is_ip_literal(&literal[..close]) {
            return false;
        }
        &literal[close + 1..]
    } else {
        match reg_name_len(authority) {
            Some(end) if end > 0 => &authority[end..],
            _ => return false,
        }
    };
    match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Whether `b` is refused in a request-target on every protocol: a control character, SP,
/// DEL, or `#` (a fragment is never sent, RFC 9110 7.1). HTTP/1.1 refuses bytes above 0x7F
/// besides (RFC 9112 3.2); HTTP/2 and HTTP/3 take them as UTF-8.
#[inline]
pub fn is_refused_in_target(b: u8) -> bool {
    b <= b' ' || b == 0x7f || b == b'#'
}

/// Whether a `Host` field's value is acceptable: empty (RFC 9110 7.2 allows it, for a
/// target without an authority) or an authority as [`is_authority`] reads it.
pub(crate) fn is_host(value: &[u8]) -> bool {
    value.is_empty() || is_authority(value)
}

/// The syntax rule for a request's authority over HTTP/2 and HTTP/3 (RFC 9113 8.3.1,
/// RFC 9114 4.3.1): `:authority`, if present, is a valid authority, and every `host` field
/// a valid `Host`; without `:authority`, at most one `host` ([`one_valid_host`]). HTTP/2
/// asks no more: there a `host` beside `:authority` is dropped and the app sees
/// `:authority`.
pub(crate) fn authority_fields_valid<'a>(
    authority: Option<&[u8]>,
    hosts: impl IntoIterator<Item = &'a [u8]>,
) -> bool {
    match authority {
        Some(authority) => is_authority(authority) && hosts.into_iter().all(is_host),
        None => one_valid_host(hosts),
    }
}

/// HTTP/3's rule (RFC 9114 4.3.1): [`authority_fields_valid`], and where both are present
/// every `host` holds the `:authority` ("they MUST contain the same value"). Letter case
/// is not a difference: a host name is compared without it (RFC 3986 6.2.2.1).
pub(crate) fn authority_fields_agree<'a>(
    authority: Option<&[u8]>,
    hosts: impl IntoIterator<Item = &'a [u8]>,
) -> bool {
    match authority {
        Some(authority) => {
            is_authority(authority)
                && hosts
                    .into_iter()
                    .all(|host| host.eq_ignore_ascii_case(authority))
        }
        None => one_valid_host(hosts),
    }
}

/// The `host` fields of a request without `:authority`: at most one, and a valid `Host`.
/// That one names the request's authority; a second, even with the same value, is
/// refused as HTTP/1.1 refuses a second Host (RFC 9110 7.2: a request with more than one
/// Host field line is answered 400), so no protocol reads the authority of a request
/// another would refuse.
fn one_valid_host<'a>(hosts: impl IntoIterator<Item = &'a [u8]>) -> bool {
    let mut hosts = hosts.into_iter();
    hosts.next().is_none_or(is_host) && hosts.next().is_none()
}

/// The length of the `reg-name` (unreserved, sub-delims and `%` followed by two hex
/// digits) `bytes` start with, read in one pass up to the first `:` or the end (a run of
/// plain bytes first, the common case); `None` if another byte comes first.
fn reg_name_len(bytes: &[u8]) -> Option<usize> {
    let plain = |rest: &[u8]| {
        rest.iter()
            .position(|&b| !REG_NAME_CHAR[usize::from(b)])
            .unwrap_or(rest.len())
    };
    let mut i = plain(bytes);
    while let Some(&b) = bytes.get(i) {
        if REG_NAME_CHAR[usize::from(b)] {
            i += 1;
        } else if b == b':' {
            break;
        } else if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            i += 3;
        } else {
            return None;
        }
    }
    Some(i)
}

/// The inside of an `IP-literal`: an `IPv6address` (std's parser follows
/// RFC 4291 2.2, the same text forms as RFC 3986 3.2.2, an IPv4 tail
/// included) or an `IPvFuture`.
fn is_ip_literal(inner: &[u8]) -> bool {
    if let Some(future) = inner
        .strip_prefix(b"v")
        .or_else(|| inner.strip_prefix(b"V"))
    {
        let Some(dot) = future.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, address) = (&future[..dot], &future[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !address.is_empty()
            && address
                .iter()
                .all(|&b| b == b':' || REG_NAME_CHAR[usize::from(b)]);
    }
    inner
        .iter()
        .all(|&b| b == b':' || b == b'.' || b.is_ascii_hexdigit())
        && std::str::from_utf8(inner).is_ok_and(|text| text.parse::<Ipv6Addr>().is_ok())
}

#[inline]
fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack.len() >= prefix.len() && haystack[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Percent-decode a path for ASGI's `path`.
///
/// `%XX` becomes the byte XX; a `%` not followed by two hex digits is kept
/// as it is; the result is read as UTF-8 with invalid sequences replaced by
/// U+FFFD. Paths without `%` that are valid UTF-8 (all paths that passed
/// `parse_request_head`) are borrowed, not copied.
pub fn percent_decode(raw_path: &[u8]) -> Cow<'_, str> {
    let Some(first) = raw_path.iter().position(|&b| b == b'%') else {
        return String::from_utf8_lossy(raw_path);
    };
    let mut out = Vec::with_capacity(raw_path.len());
    out.extend_from_slice(&raw_path[..first]);
    let mut i = first;
    while i < raw_path.len() {
        let b = raw_path[i];
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                raw_path.get(i + 1).copied().and_then(hex_digit),
                raw_path.get(i + 2).copied().and_then(hex_digit),
            ) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(method: &str, target: &str) -> Result<(String, String), RequestError> {
        split_target(method.as_bytes(), target.as_bytes()).map(|t| {
            (
                String::from_utf8_lossy(t.raw_path).into_owned(),
                String::from_utf8_lossy(t.query).into_owned(),
            )
        })
    }

    fn ok(path: &str, query: &str) -> Result<(String, String), RequestError> {
        Ok((path.to_owned(), query.to_owned()))
    }

    #[test]
    fn origin_form() {
        assert_eq!(split("GET", "/"), ok("/", ""));
        assert_eq!(split("GET", "/a/b"), ok("/a/b", ""));
        assert_eq!(split("GET", "/a?x=1&y=2"), ok("/a", "x=1&y=2"));
        assert_eq!(split("GET", "/a?"), ok("/a", ""));
        assert_eq!(split("GET", "/?a?b"), ok("/", "a?b"));
        assert_eq!(split("GET", "//x"), ok("//x", ""));
    }

    #[test]
    fn absolute_form() {
        assert_eq!(split("GET", "http://h/p?q"), ok("/p", "q"));
        assert_eq!(split("GET", "HTTPS://h:8443/p"), ok("/p", ""));
        assert_eq!(split("GET", "http://h"), ok("/", ""));
        assert_eq!(split("GET", "http://h?q=1"), ok("/", "q=1"));
        assert_eq!(split("GET", "http://h:80"), ok("/", ""));
        assert_eq!(split("GET", "http://[::1]:80/x"), ok("/x", ""));
        assert_eq!(split("OPTIONS", "http://h/"), ok("/", ""));
    }

    #[test]
    fn only_an_absolute_form_target_names_an_authority() {
        let authority = |target: &str| {
            split_target(b"GET", target.as_bytes())
                .map(|t| t.authority.map(|a| String::from_utf8_lossy(a).into_owned()))
        };
        assert_eq!(authority("http://h:8080/p?q"), Ok(Some("h:8080".into())));
        assert_eq!(authority("https://[::1]"), Ok(Some("[::1]".into())));
        assert_eq!(authority("http://h?q"), Ok(Some("h".into())));
        assert_eq!(authority("/p?q"), Ok(None));
        assert_eq!(
            split_target(b"OPTIONS", b"*").map(|t| t.authority),
            Ok(None)
        );
    }

    /// Authorities the grammar admits (also as Host values).
    pub(crate) const AUTHORITY_OK: &[&str] = &[
        "h",
        "example.com",
        "example.com:8080",
        "example.com:",
        "h:0",
        "h:65535",
        "h:000080",
        "local.host.",
        "xn--caf-dma.fr",
        "a-b_c~d",
        "!$&'()*+,;=",
        "a%20b",
        "%41%7e",
        "10.0.0.1",
        "10.0.0.1:80",
        "999.999.999.999",
        "[::1]",
        "[::1]:80",
        "[::1]:",
        "[::]",
        "[2001:db8::1]:443",
        "[2001:DB8:0:0:0:0:0:1]",
        "[1:2:3:4:5:6:7:8]",
        "[1:2:3:4:5:6:7::]",
        "[::2:3:4:5:6:7:8]",
        "[1::8]",
        "[::ffff:192.0.2.1]",
        "[1:2:3:4:5:6:1.2.3.4]",
        "[v1.x]",
        "[V7.a:b!$&'()*+,;=-._~]",
        "[vF0.1]:8080",
    ];

    /// Authorities the grammar refuses (Host values too, but for "").
    pub(crate) const AUTHORITY_BAD: &[&str] = &[
        ":80",
        ":",
        "h:8a",
        "h:-1",
        "h:+80",
        "h: 80",
        "h :80",
        "h:80:90",
        "h::80",
        "h:0x50",
        "[::1",
        "::1",
        "[::1]x",
        "[::1]:x",
        "[::1]]",
        "[[::1]]",
        "[]",
        "[:]",
        "[1:2:3:4:5:6:7:8:9]",
        "[1:2:3:4:5:6:7:8::]",
        "[12345::]",
        "[::g]",
        "[1.2.3.4]",
        "[::1.2.3]",
        "[::256.1.1.1]",
        "[::1.2.3.4:5]",
        "[1:::2]",
        "[1::2::3]",
        "[fe80::1%25eth0]",
        "[ ::1]",
        "[v1]",
        "[v.x]",
        "[v1.]",
        "[vx.1]",
        "[v1.x/y]",
        "[v1.x@y]",
        "[v1.x%20]",
        "a b",
        "a\tb",
        "a/b",
        "a@b",
        "u@h",
        "u:p@h",
        "a?b",
        "a#b",
        "a%",
        "a%2",
        "a%zz",
        "a%%41",
        "caf\u{e9}",
        "\"h\"",
        "a[b",
        "h]",
        "a\\b",
        "a{b}",
        "a|b",
        "a^b",
        "a<b>",
        "a`b",
        "a\u{0}b",
    ];

    #[test]
    fn authority_grammar() {
        for good in AUTHORITY_OK {
            assert!(is_authority(good.as_bytes()), "{good:?}");
            let target = format!("http://{good}/p?q");
            assert_eq!(split("GET", &target), ok("/p", "q"), "{target:?}");
        }
        assert!(!is_authority(b""));
        for bad in AUTHORITY_BAD {
            assert!(!is_authority(bad.as_bytes()), "{bad:?}");
            if bad.contains(['/', '?']) {
                continue; // these end the authority of a target
            }
            let target = format!("https://{bad}/p");
            assert!(
                matches!(split("GET", &target), Err(RequestError::BadRequest(_))),
                "{target:?}"
            );
        }
        // Bytes outside ASCII, one by one.
        for b in 0x80..=0xffu8 {
            assert!(!is_authority(&[b'h', b]));
            assert!(!is_authority(&[b'[', b'v', b'1', b'.', b, b']']));
        }
    }

    #[test]
    fn authority_fields_valid_and_agreeing() {
        let both = |authority: Option<&str>, hosts: &[&str]| {
            let authority = authority.map(str::as_bytes);
            let hosts = || hosts.iter().map(|h| h.as_bytes());
            (
                authority_fields_valid(authority, hosts()),
                authority_fields_agree(authority, hosts()),
            )
        };
        assert_eq!(both(None, &[]), (true, true));
        assert_eq!(both(None, &[""]), (true, true));
        assert_eq!(both(None, &["example.com:80"]), (true, true));
        assert_eq!(both(Some("example.com"), &[]), (true, true));
        let same = ["example.com", "example.com"];
        assert_eq!(both(Some("example.com"), &same), (true, true));
        assert_eq!(both(Some("example.com"), &["EXAMPLE.com"]), (true, true));
        assert_eq!(both(Some(""), &[]), (false, false));
        assert_eq!(both(Some("u@example.com"), &[]), (false, false));
        assert_eq!(both(None, &["x:8a"]), (false, false));
        // Without :authority, one host at most, as HTTP/1.1 takes one Host at most.
        assert_eq!(both(None, &["a.example", "b.example"]), (false, false));
        assert_eq!(both(None, &["a.example", "a.example"]), (false, false));
        assert_eq!(both(None, &["", ""]), (false, false));
        assert_eq!(
            both(Some("example.com"), &["u@example.com"]),
            (false, false)
        );
        // Valid but differing: HTTP/2 drops the host, HTTP/3 refuses the request.
        assert_eq!(both(Some("example.com"), &[""]), (true, false));
        assert_eq!(
            both(Some("example.com"), &["example.com:80"]),
            (true, false)
        );
        let two = ["example.com", "other.example"];
        assert_eq!(both(Some("example.com"), &two), (true, false));
    }

    #[test]
    fn absolute_form_leading_zeros_in_ipv4_tail() {
        // RFC 3986 dec-octet has no leading zeros; std agrees.
        assert!(!is_authority(b"[::01.2.3.4]"));
        assert!(!is_authority(b"[::1.2.3.04]"));
        assert!(is_authority(b"[::0.2.3.4]"));
    }

    #[test]
    fn asterisk_form() {
        assert_eq!(split("OPTIONS", "*"), ok("*", ""));
        for method in ["GET", "options", "POST"] {
            assert!(matches!(
                split(method, "*"),
                Err(RequestError::BadRequest(_))
            ));
        }
    }

    #[test]
    fn refused_forms() {
        for target in [
            "",
            "*x",
            "**",
            "h:80",
            "example.com:443",
            "a/b",
            "?q",
            "ftp://h/p",
            "http:/h/p",
            "http://",
            "http:///p",
            "http://?q",
            "http://:80/p",
            "http://user@h/p",
            "http://u:p@h/",
            "http//h",
            "http://h:x/",
            "http://h:80:80/",
            "http://[::1/",
            "http://[::1]x/",
            "http://[zz::1]/",
            "http://h%/",
            "http://a,b|c/",
            "http://[v1]/",
        ] {
            assert!(
                matches!(split("GET", target), Err(RequestError::BadRequest(_))),
                "{target:?}"
            );
        }
        assert!(matches!(
            split("CONNECT", "h:443"),
            Err(RequestError::BadRequest(_))
        ));
    }

    #[test]
    fn decode_basics() {
        assert!(matches!(
            percent_decode(b"/plain/path"),
            Cow::Borrowed("/plain/path")
        ));
        assert_eq!(percent_decode(b"/a%20b"), "/a b");
        assert_eq!(percent_decode(b"/%2F%2f"), "///");
        assert_eq!(percent_decode(b"/caf%C3%A9"), "/caf\u{e9}");
        assert_eq!(percent_decode(b"/%e2%82%ac"), "/\u{20ac}");
        assert_eq!(percent_decode(b""), "");
    }

    #[test]
    fn decode_invalid_sequences_kept() {
        assert_eq!(percent_decode(b"/%"), "/%");
        assert_eq!(percent_decode(b"/%4"), "/%4");
        assert_eq!(percent_decode(b"/%zz"), "/%zz");
        assert_eq!(percent_decode(b"/%4g%41"), "/%4gA");
        assert_eq!(percent_decode(b"/%%41"), "/%A");
        assert_eq!(percent_decode(b"/100%"), "/100%");
    }

    #[test]
    fn decode_invalid_utf8_is_lossy() {
        assert_eq!(percent_decode(b"/%ff"), "/\u{fffd}");
        assert_eq!(percent_decode(b"/%C3"), "/\u{fffd}");
        assert_eq!(percent_decode(b"/%C3x"), "/\u{fffd}x");
        assert_eq!(percent_decode(b"/\xff"), "/\u{fffd}");
        assert_eq!(percent_decode(b"/%00"), "/\0");
    }

    proptest! {
        #[test]
        fn split_never_panics(method in prop::collection::vec(any::<u8>(), 0..8),
                              target in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = split_target(&method, &target);
        }

        #[test]
        fn decode_matches_reference(raw in prop::collection::vec(any::<u8>(), 0..64)) {
            // Reference: decode byte by byte without the fast paths.
            let mut bytes = Vec::new();
            let mut i = 0;
            while i < raw.len() {
                if raw[i] == b'%' && i + 2 < raw.len() {
                    let h = (raw[i + 1] as char).to_digit(16);
                    let l = (raw[i + 2] as char).to_digit(16);
                    if let (Some(h), Some(l)) = (h, l) {
                        bytes.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                }
                bytes.push(raw[i]);
                i += 1;
            }
            let expected = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert_eq!(percent_decode(&raw).into_owned(), expected);
        }

        #[test]
        fn encode_decode_roundtrip(s in "\\PC{0,32}") {
            let mut encoded = String::new();
            for b in s.bytes() {
                if b.is_ascii_alphanumeric() || b == b'/' {
                    encoded.push(b as char);
                } else {
                    encoded.push_str(&format!("%{b:02X}"));
                }
            }
            prop_assert_eq!(percent_decode(encoded.as_bytes()), s.as_str());
        }
    }
}
