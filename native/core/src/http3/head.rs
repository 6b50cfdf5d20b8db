//! Request and response field sections, checked (RFC 9114 §4.2-4.3) and mapped to the same
//! [`RequestHead`] HTTP/2 produces, so the binding maps both to ASGI the same way.

use std::borrow::Cow;

use super::qpack::{self, Fields};
use crate::http1::target::{authority_fields_agree, is_refused_in_target};
use crate::http2::{RequestHead, CONNECTION_SPECIFIC};
use crate::syntax::{is_field_value, is_padded, is_token};

/// A request head, and the content-length it announced.
#[derive(Debug)]
pub struct Request {
    pub head: RequestHead,
    pub content_length: Option<u64>,
}

/// Why a request's fields are not handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed: the stream is reset with H3_MESSAGE_ERROR (§4.1.2).
    Malformed,
    /// A well-formed CONNECT (§4.4), which ruvicorn answers as HTTP/2 does: no tunnels.
    Connect,
}

/// Check a request's decoded fields and map them: pseudo-headers first, once each, the
/// mandatory ones present; names lower-case tokens; no connection-specific fields.
pub fn request(fields: Fields) -> Result<Request, Refusal> {
    let mut method = None;
    let mut scheme = None;
    let mut authority = None;
    let mut path = None;
    let mut regular = false;
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(fields.len() + 1);
    let mut cookie: Option<Vec<u8>> = None;
    let mut content_length: Option<u64> = None;
    let mut host = false;
    for (name, value) in fields {
        if !is_field_value(&value) || is_padded(&value) {
            return Err(Refusal::Malformed);
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            let slot = match pseudo {
                b"method" => &mut method,
                b"scheme" => &mut scheme,
                b"authority" => &mut authority,
                b"path" => &mut path,
                _ => return Err(Refusal::Malformed),
            };
            if regular || slot.is_some() {
                return Err(Refusal::Malformed);
            }
            *slot = Some(value);
            continue;
        }
        regular = true;
        if !is_token(&name) || name.iter().any(u8::is_ascii_uppercase) {
            return Err(Refusal::Malformed);
        }
        let text = std::str::from_utf8(&name).map_err(|_| Refusal::Malformed)?;
        if CONNECTION_SPECIFIC.contains(&text) || (text == "te" && value != b"trailers") {
            return Err(Refusal::Malformed);
        }
        match text {
            "cookie" => {
                let joined = cookie.get_or_insert_with(Vec::new);
                if !joined.is_empty() {
                    joined.extend_from_slice(b"; ");
                }
                joined.extend_from_slice(&value);
            }
            "content-length" => {
                let parsed = parse_length(&value).ok_or(Refusal::Malformed)?;
                if content_length.is_some_and(|seen| seen != parsed) {
                    return Err(Refusal::Malformed);
                }
                content_length = Some(parsed);
                headers.push((name, value));
            }
            "host" => {
                host = true;
                headers.push((name, value));
            }
            _ => headers.push((name, value)),
        }
    }
    let method = method.ok_or(Refusal::Malformed)?;
    // §4.3.1: :authority and host as HTTP/2 and HTTP/1.1 read an authority, the same
    // value where both are present, one host at most where :authority is not. A host
    // field is looked for only if one came.
    let hosts: &[(Vec<u8>, Vec<u8>)] = if host { &headers } else { &[] };
    let hosts = hosts.iter().filter(|(n, _)| n == b"host");
    if !authority_fields_agree(authority.as_deref(), hosts.map(|(_, v)| &v[..])) {
        return Err(Refusal::Malformed);
    }
    if method == b"CONNECT" {
        // §4.4: the authority to reach; no :scheme, no :path.
        let well_formed = scheme.is_none() && path.is_none() && authority.is_some();
        return Err(if well_formed {
            Refusal::Connect
        } else {
            Refusal::Malformed
        });
    }
    let (Some(scheme), Some(path)) = (scheme, path) else {
        return Err(Refusal::Malformed);
    };
    // Malformed as on HTTP/2: a :path with SP, `#` or a control character (refused on
    // HTTP/1.1 too, by the same function), a :scheme outside RFC 3986's grammar (read by
    // the function HTTP/2's engine reads it with; `https`, which it accepts, skips it).
    if path.is_empty()
        || path.iter().copied().any(is_refused_in_target)
        || (scheme != b"https" && http::uri::Scheme::try_from(&scheme[..]).is_err())
        || !is_token(&method)
    {
        return Err(Refusal::Malformed);
    }
    if let Some(authority) = authority {
        // Any host field holds the same value: :authority leads, once.
        if host {
            headers.retain(|(n, _)| n != b"host");
        }
        headers.insert(0, (b"host".to_vec(), authority));
    }
    if let Some(cookie) = cookie {
        headers.push((b"cookie".to_vec(), cookie));
    }
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|_| Refusal::Malformed);
    Ok(Request {
        head: RequestHead {
            method: text(method)?,
            target: text(path)?,
            scheme: Some(text(scheme)?),
            headers,
            end_stream: false,
        },
        content_length,
    })
}

/// Whether a request's fields exceed the limits an HTTP/1.1 head answers 431 for: more
/// than `max_fields` fields (pseudo-headers aside, each field line counted), or one longer
/// than `max_field_size` as the line `name: value`.
pub(crate) fn fields_too_large(fields: &Fields, max_fields: usize, max_field_size: usize) -> bool {
    let mut count = 0;
    for (name, value) in fields {
        if name.starts_with(b":") {
            continue;
        }
        count += 1;
        if count > max_fields || name.len() + 2 + value.len() > max_field_size {
            return true;
        }
    }
    false
}

/// The body length a response head declares: its `content-length`, one value of digits
/// only (an invalid or repeated one is refused, as on HTTP/1.1 and HTTP/2).
pub(crate) fn declared_length(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Option<u64>, Invalid> {
    fields
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"content-length"))
        .try_fold(None, |seen, (_, value)| {
            crate::syntax::response_content_length(seen, value).map(Some)
        })
        .ok_or_else(|| Invalid("invalid or repeated content-length header".to_owned()))
}

fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Why a response head or trailers cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid(pub String);

/// Encode a response head (`status` first) or trailers (`status` `None`) as a field
/// section: names lower-cased, connection-specific fields dropped. Fields are encoded
/// from the caller's bytes; only a name with upper-case letters is copied.
pub(crate) fn response(
    status: Option<u16>,
    fields: &[(Vec<u8>, Vec<u8>)],
) -> Result<Vec<u8>, Invalid> {
    let mut lowered: Vec<(Cow<'_, [u8]>, &[u8])> = Vec::with_capacity(fields.len() + 1);
    let digits;
    if let Some(status) = status {
        if !(100..=999).contains(&status) {
            return Err(Invalid(format!("invalid status {status}")));
        }
        digits = [100, 10, 1].map(|unit| b'0' + ((status / unit) % 10) as u8);
        lowered.push((Cow::Borrowed(b":status"), &digits));
    }
    for (name, value) in fields {
        if !is_token(name) {
            return Err(Invalid("invalid header name".to_owned()));
        }
        let name = if name.iter().any(u8::is_ascii_uppercase) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(&name[..])
        };
        if CONNECTION_SPECIFIC
            .iter()
            .any(|c| c.as_bytes() == &name[..])
        {
            continue;
        }
        if !is_field_value(value) {
            return Err(Invalid(format!(
                "invalid value for header {}",
                String::from_utf8_lossy(&name)
            )));
        }
        lowered.push((name, value));
    }
    let mut out = Vec::new();
    qpack::encode(lowered.iter().map(|(n, v)| (&n[..], *v)), &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> Fields {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    const BASE: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "example.com"),
        (":path", "/p?q"),
    ];

    #[test]
    fn maps_like_http2() {
        let mut list = BASE.to_vec();
        list.extend([("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2")]);
        let request = request(fields(&list)).expect("valid");
        assert_eq!(request.head.method, "GET");
        assert_eq!(request.head.target, "/p?q");
        assert_eq!(request.head.scheme.as_deref(), Some("https"));
        assert_eq!(
            request.head.headers,
            vec![
                (b"host".to_vec(), b"example.com".to_vec()),
                (b"accept".to_vec(), b"*/*".to_vec()),
                (b"cookie".to_vec(), b"a=1; b=2".to_vec()),
            ]
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![(":method", "GET"), (":path", "/")],       // no :scheme
            vec![(":method", "GET"), (":scheme", "https")], // no :path
            [&BASE[..], &[(":method", "GET")]].concat(),    // duplicate
            [&BASE[..], &[(":status", "200")]].concat(),    // response pseudo
            vec![("accept", "*/*"), BASE[0], BASE[1], BASE[3]], // pseudo after regular
            [&BASE[..], &[("Accept", "x")]].concat(),       // upper case
            [&BASE[..], &[("connection", "close")]].concat(), // connection-specific
            [&BASE[..], &[("te", "gzip")]].concat(),
            [&BASE[..], &[("x", "a\r\nb")]].concat(),
            [&BASE[..], &[("x", " padded")]].concat(),
            [&BASE[..], &[("x", "padded\t")]].concat(),
            [&BASE[..], &[("x", " ")]].concat(),
            [
                &BASE[..],
                &[("content-length", "1"), ("content-length", "2")],
            ]
            .concat(),
            [&BASE[..], &[("content-length", "-1")]].concat(),
            [&BASE[..], &[("host", "other.example")]].concat(),
            vec![(":method", "GET"), (":scheme", "https"), (":path", "")],
        ];
        for case in cases {
            assert_eq!(
                request(fields(&case)).err(),
                Some(Refusal::Malformed),
                "{case:?}"
            );
        }
    }

    #[test]
    fn path_and_scheme_refuse_what_http1_and_http2_refuse() {
        let with = |scheme: &'static str, path: &'static str| {
            let list = [(":method", "GET"), (":scheme", scheme), (":path", path)];
            request(fields(&list))
        };
        // Visible ASCII HTTP/1.1 accepts on purpose stays accepted; UTF-8 as on HTTP/2.
        for path in ["/", "*", "/a%20b?c=d&e", "/caf\u{e9}", "/{x}|\"^`<>"] {
            assert!(with("https", path).is_ok(), "{path:?}");
        }
        for scheme in ["http", "HTTPS", "coap+tcp", "x-1.2"] {
            assert!(with(scheme, "/").is_ok(), "{scheme:?}");
        }
        let cases = [
            ("https", "/a b"),
            ("https", "/a\tb"),
            ("https", "/a#b"),
            ("https", "/#"),
            ("https", "/a\u{7f}"),
            ("ht tps", "/"),
            ("https:", "/"),
            ("h/s", "/"),
            ("caf\u{e9}", "/"),
        ];
        for (scheme, path) in cases {
            assert_eq!(
                with(scheme, path).err(),
                Some(Refusal::Malformed),
                "{scheme:?} {path:?}"
            );
        }
    }

    #[test]
    fn authority_and_host_follow_the_rule_http2_shares() {
        let get = [(":method", "GET"), (":scheme", "https"), (":path", "/")];
        let with =
            |extra: &[(&'static str, &'static str)]| request(fields(&[&get[..], extra].concat()));
        let host_of = |extra: &[(&'static str, &'static str)]| {
            let head = with(extra).expect("valid").head;
            let hosts: Vec<_> = head
                .headers
                .into_iter()
                .filter(|(n, _)| n == b"host")
                .collect();
            hosts
        };
        let host = |v: &str| vec![(b"host".to_vec(), v.as_bytes().to_vec())];
        // Valid: either alone, both the same (mapped once), an empty host alone.
        assert_eq!(host_of(&[(":authority", "[::1]:4433")]), host("[::1]:4433"));
        assert_eq!(
            host_of(&[("host", "example.com:8443")]),
            host("example.com:8443")
        );
        assert_eq!(host_of(&[("host", "")]), host(""));
        let both = [(":authority", "example.com"), ("host", "example.com")];
        assert_eq!(host_of(&both), host("example.com"));
        assert!(with(&[]).is_ok());
        let malformed: Vec<Vec<(&str, &str)>> = vec![
            vec![(":authority", "")],
            vec![(":authority", "user@example.com")],
            vec![(":authority", "example.com:8a")],
            vec![(":authority", "a b")],
            vec![(":authority", "[::1]x")],
            vec![(":authority", "example.com:80:80")],
            vec![("host", "user@example.com")],
            vec![("host", "x:8a")],
            vec![("host", "a, b")],
            vec![("host", "example.com"), ("host", "other.example")],
            vec![("host", "example.com"), ("host", "example.com")],
            vec![(":authority", "example.com"), ("host", "other.example")],
            vec![(":authority", "example.com"), ("host", "example.com:443")],
            vec![(":authority", "example.com"), ("host", "")],
            vec![
                (":authority", "example.com"),
                ("host", "example.com"),
                ("host", "other.example"),
            ],
        ];
        for case in malformed {
            assert_eq!(with(&case).err(), Some(Refusal::Malformed), "{case:?}");
        }
    }

    #[test]
    fn connect_is_well_formed_with_an_authority_and_no_scheme_or_path() {
        let connect = [(":method", "CONNECT"), (":authority", "example.com:443")];
        assert_eq!(request(fields(&connect)).err(), Some(Refusal::Connect));
        let with_field = [&connect[..], &[("x-a", "1"), ("host", "example.com:443")]].concat();
        assert_eq!(request(fields(&with_field)).err(), Some(Refusal::Connect));
        let malformed: Vec<Vec<(&str, &str)>> = vec![
            vec![(":method", "CONNECT")],
            vec![(":method", "CONNECT"), (":authority", "")],
            vec![
                (":method", "CONNECT"),
                (":authority", "user@example.com:443"),
            ],
            [&connect[..], &[(":scheme", "https")]].concat(),
            [&connect[..], &[(":path", "/")]].concat(),
            [&connect[..], &[(":scheme", "https"), (":path", "/")]].concat(),
            [&connect[..], &[("connection", "keep-alive")]].concat(),
            [&connect[..], &[("host", "other.example:443")]].concat(),
        ];
        for case in malformed {
            assert_eq!(
                request(fields(&case)).err(),
                Some(Refusal::Malformed),
                "{case:?}"
            );
        }
    }

    #[test]
    fn declared_length_is_one_value_of_digits() {
        let with = |list: &[(&str, &str)]| declared_length(&fields(list));
        assert_eq!(with(&[("x", "1")]), Ok(None));
        assert_eq!(with(&[("Content-Length", "042")]), Ok(Some(42)));
        for bad in [
            &[("content-length", "")][..],
            &[("content-length", "+1")],
            &[("content-length", "18446744073709551616")],
            &[("content-length", "1"), ("content-length", "1")],
        ] {
            assert!(with(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn field_limits_count_lines_not_pseudo_headers() {
        let mut list = BASE.to_vec();
        list.extend([("cookie", "a=1"), ("cookie", "b=2")]);
        assert!(!fields_too_large(&fields(&list), 2, 20));
        assert!(fields_too_large(&fields(&list), 1, 20));
        // `cookie: a=1` is 11 bytes.
        assert!(!fields_too_large(&fields(&list), 2, 11));
        assert!(fields_too_large(&fields(&list), 2, 10));
    }

    #[test]
    fn response_drops_connection_fields_and_checks_values() {
        let section = response(
            Some(200),
            &[
                (b"Content-Type".to_vec(), b"text/plain".to_vec()),
                (b"connection".to_vec(), b"close".to_vec()),
            ],
        )
        .expect("valid");
        let decoded = qpack::decode(&section, 1 << 16).expect("decodes");
        assert_eq!(
            decoded,
            fields(&[(":status", "200"), ("content-type", "text/plain")])
        );
        assert!(response(Some(200), &[(b"x".to_vec(), b"a\nb".to_vec())]).is_err());
        assert!(response(Some(42), &[]).is_err());
        assert!(response(Some(1000), &[]).is_err());
    }

    #[test]
    fn response_status_is_three_digits_and_trailers_have_none() {
        for status in [100, 204, 404, 999] {
            let section = response(Some(status), &[]).expect("valid");
            let decoded = qpack::decode(&section, 1 << 16).expect("decodes");
            let text = status.to_string();
            assert_eq!(decoded, fields(&[(":status", text.as_str())]));
        }
        let trailers = response(None, &[(b"x-sum".to_vec(), b"1".to_vec())]).expect("valid");
        let decoded = qpack::decode(&trailers, 1 << 16).expect("decodes");
        assert_eq!(decoded, fields(&[("x-sum", "1")]));
    }
}
