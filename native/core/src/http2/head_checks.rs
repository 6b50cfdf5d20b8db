//! The checks of a head before it goes on: a request's fields against the limits HTTP/1.1
//! answers 431 for and against what RFC 9113 calls malformed (the engine accepts both),
//! and the `content-length` of a response head the app sent.

use http::{HeaderMap, Response, StatusCode};

use super::SendError;
use crate::http1::target::authority_fields_valid;
use crate::syntax::{is_padded, response_content_length};

/// Whether a request's fields exceed the limits an HTTP/1.1 head answers 431 for: more
/// than `max_fields` fields (each cookie crumb counts, as the engine holds them apart), or
/// one longer than `max_field_size` as the line `name: value`.
pub(super) fn fields_too_large(
    headers: &HeaderMap,
    max_fields: usize,
    max_field_size: usize,
) -> bool {
    headers.len() > max_fields
        || headers
            .iter()
            .any(|(name, value)| name.as_str().len() + 2 + value.len() > max_field_size)
}

/// A request the engine accepts that RFC 9113 calls malformed: a field value with leading
/// or trailing SP or HTAB (§8.2.1), an authority (`:authority` or `host`) with userinfo or
/// otherwise invalid as an HTTP/1.1 `Host` (§8.3.1), more than one `host` without
/// `:authority` (as HTTP/1.1 refuses a second Host), a CONNECT without `:authority`
/// (§8.5). A valid `host` differing from `:authority` is dropped, not refused (§8.3.1
/// says SHOULD, and a proxy may write a default port into one of them).
pub(super) fn is_malformed(parts: &http::request::Parts) -> bool {
    let authority = parts.uri.authority().map(|a| a.as_str().as_bytes());
    let hosts = parts.headers.get_all(http::header::HOST);
    parts
        .headers
        .values()
        .any(|value| is_padded(value.as_bytes()))
        || !authority_fields_valid(authority, hosts.iter().map(http::HeaderValue::as_bytes))
        || (parts.method == http::Method::CONNECT && authority.is_none())
}

/// 431 Request Header Fields Too Large, without a body.
pub(super) fn too_large_response() -> Response<()> {
    status_only(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
}

/// The answer to a well-formed CONNECT, over HTTP/2 and HTTP/3: ruvicorn opens no tunnels
/// (RFC 9110 9.3.6), and a status, unlike a reset, does not invite the client to retry.
pub(crate) fn connect_response() -> Response<()> {
    status_only(StatusCode::NOT_IMPLEMENTED)
}

fn status_only(status: StatusCode) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = status;
    response
}

/// The body length a response head declares: its `content-length`, one value of digits
/// only (an app's invalid or repeated one is refused, as on HTTP/1.1).
pub(super) fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, SendError> {
    headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .try_fold(None, |seen, value| {
            response_content_length(seen, value.as_bytes()).map(Some)
        })
        .ok_or_else(|| SendError::Invalid("invalid or repeated content-length header".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Request};

    fn parts(method: &str, uri: &str, fields: &[(&str, &[u8])]) -> http::request::Parts {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in fields {
            request = request.header(*name, HeaderValue::from_bytes(value).expect("value"));
        }
        request.body(()).expect("request").into_parts().0
    }

    fn headers(fields: &[(&str, &[u8])]) -> HeaderMap {
        parts("GET", "https://example.com/", fields).headers
    }

    #[test]
    fn field_limits() {
        let three = headers(&[("a", b"1"), ("cookie", b"x=1"), ("cookie", b"y=2")]);
        assert!(!fields_too_large(&three, 3, 100));
        assert!(fields_too_large(&three, 2, 100));
        // Counted as the line `name: value`.
        let one = headers(&[("name", b"12345")]);
        assert!(!fields_too_large(&one, 100, 11));
        assert!(fields_too_large(&one, 100, 10));
        assert!(!fields_too_large(&HeaderMap::new(), 0, 0));
    }

    #[test]
    fn malformed_requests() {
        let ok = parts("GET", "https://example.com:8443/a?b", &[("x", b"a b")]);
        assert!(!is_malformed(&ok));
        assert!(!is_malformed(&parts(
            "GET",
            "/",
            &[("host", b"example.com")]
        )));
        assert!(!is_malformed(&parts("GET", "/", &[("host", b"")])));
        assert!(!is_malformed(&parts("CONNECT", "example.com:443", &[])));
        for value in [&b" a"[..], b"a ", b"\ta", b"a\t", b" "] {
            let padded = parts("GET", "https://example.com/", &[("x", value)]);
            assert!(is_malformed(&padded), "{value:?}");
        }
        assert!(is_malformed(&parts(
            "GET",
            "https://user@example.com/",
            &[]
        )));
        assert!(is_malformed(&parts(
            "GET",
            "/",
            &[("host", b"user@example.com")]
        )));
        assert!(is_malformed(&parts("GET", "/", &[("host", b"a b")])));
        // Without :authority, a second host is refused whatever its value.
        for second in [&b"other.example"[..], b"example.com"] {
            let two = [("host", &b"example.com"[..]), ("host", second)];
            assert!(is_malformed(&parts("GET", "/", &two)), "{second:?}");
        }
        // Both present: a valid host is accepted (and dropped for :authority), whatever
        // its value; an invalid one is malformed.
        let uri = "https://example.com/";
        for host in [
            &b"example.com"[..],
            b"other.example",
            b"example.com:443",
            b"EXAMPLE.com",
            b"",
        ] {
            assert!(
                !is_malformed(&parts("GET", uri, &[("host", host)])),
                "{host:?}"
            );
        }
        assert!(is_malformed(&parts(
            "GET",
            uri,
            &[("host", b"example.com"), ("host", b"u@other.example")]
        )));
        assert!(is_malformed(&parts("CONNECT", "/", &[])));
    }

    #[test]
    fn too_large_is_a_bare_431() {
        let response = too_large_response();
        assert_eq!(response.status(), 431);
        assert!(response.headers().is_empty());
    }

    #[test]
    fn declared_lengths() {
        assert_eq!(declared_length(&headers(&[])), Ok(None));
        let one = headers(&[("content-length", b"12")]);
        assert_eq!(declared_length(&one), Ok(Some(12)));
        for bad in [
            &[("content-length", &b"12"[..]), ("content-length", b"12")][..],
            &[("content-length", b" 12")],
            &[("content-length", b"")],
            &[("content-length", b"-1")],
            &[("content-length", b"18446744073709551616")],
        ] {
            let refused =
                SendError::Invalid("invalid or repeated content-length header".to_owned());
            assert_eq!(declared_length(&headers(bad)), Err(refused), "{bad:?}");
        }
    }
}
