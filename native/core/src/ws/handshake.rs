//! The opening handshake (RFC 6455 4.2): validating the upgrade request and
//! writing the `101 Switching Protocols` response.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::deflate::{parse_deflate_offers, DeflateOffer};
use crate::syntax::{is_field_value, is_token, write_status_line};

/// Appended to the client's key before hashing (RFC 6455 1.3).
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What a valid upgrade request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The `Sec-WebSocket-Accept` value for the response.
    pub accept_key: String,
    /// `Sec-WebSocket-Protocol` entries in the client's order (for the scope's
    /// `subprotocols`).
    pub subprotocols: Vec<String>,
    /// Valid permessage-deflate offers, for [`super::deflate::negotiate_deflate`].
    pub deflate_offers: Vec<DeflateOffer>,
}

/// Why an upgrade request was refused, and the response that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeError {
    /// 400, or 426 for an unsupported `Sec-WebSocket-Version`.
    pub status: u16,
    /// One line for the response body and the log.
    pub reason: &'static str,
}

impl HandshakeError {
    const fn bad_request(reason: &'static str) -> Self {
        Self {
            status: 400,
            reason,
        }
    }

    /// Appends the complete error response (head and plain-text body).
    ///
    /// It says `Connection: close`: the protocol closes the connection once
    /// it is written. `extra_headers` (such as `date` and `server`) are
    /// checked like the app's.
    pub fn write_response<N, V>(
        &self,
        out: &mut Vec<u8>,
        extra_headers: &[(N, V)],
    ) -> Result<(), InvalidHeader>
    where
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let start = out.len();
        let result = self.write_response_inner(out, extra_headers);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn write_response_inner<N, V>(
        &self,
        out: &mut Vec<u8>,
        extra_headers: &[(N, V)],
    ) -> Result<(), InvalidHeader>
    where
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        write_status_line(out, self.status);
        if self.status == 426 {
            out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n");
        }
        write_headers(out, extra_headers)?;
        let body_len = self.reason.len() + 1;
        out.extend_from_slice(
            format!(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n{}\n",
                self.reason
            )
            .as_bytes(),
        );
        Ok(())
    }
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebSocket handshake refused ({}): {}",
            self.status, self.reason
        )
    }
}

impl std::error::Error for HandshakeError {}

/// A header name or value (or subprotocol) that cannot be put in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidHeader {
    /// What is wrong, in one line.
    pub reason: &'static str,
}

impl std::fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for InvalidHeader {}

/// The values of every header named `name` (case-insensitive), in order.
fn header_values<'h, N, V>(headers: &'h [(N, V)], name: &'h str) -> impl Iterator<Item = &'h [u8]>
where
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    headers
        .iter()
        .filter(move |(n, _)| n.as_ref().eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_ref())
}

/// The comma-separated, trimmed, non-empty items of all `name` headers.
fn list_items<'h, N, V>(headers: &'h [(N, V)], name: &'h str) -> impl Iterator<Item = &'h [u8]>
where
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    header_values(headers, name)
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

fn has_token<N, V>(headers: &[(N, V)], name: &str, token: &str) -> bool
where
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    list_items(headers, name).any(|item| item.eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether the request asks to become a WebSocket (`Upgrade: websocket`);
/// such a request is then answered by [`validate_handshake`]'s verdict.
pub fn is_websocket_upgrade<N, V>(headers: &[(N, V)]) -> bool
where
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    has_token(headers, "upgrade", "websocket")
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID);
    STANDARD.encode(sha1.finalize())
}

/// Checks an upgrade request (RFC 6455 4.2.1).
///
/// `method` is the request method, `http_minor` the minor HTTP version
/// (1 for HTTP/1.1), `headers` the (name, value) pairs as received.
pub fn validate_handshake<N, V>(
    method: &[u8],
    http_minor: u8,
    headers: &[(N, V)],
) -> Result<Handshake, HandshakeError>
where
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    if method != b"GET" {
        return Err(HandshakeError::bad_request(
            "WebSocket upgrade requires GET",
        ));
    }
    if http_minor < 1 {
        return Err(HandshakeError::bad_request(
            "WebSocket upgrade requires HTTP/1.1",
        ));
    }
    if !has_token(headers, "upgrade", "websocket") {
        return Err(HandshakeError::bad_request("missing Upgrade: websocket"));
    }
    if !has_token(headers, "connection", "upgrade") {
        return Err(HandshakeError::bad_request("missing Connection: Upgrade"));
    }
    let mut versions = header_values(headers, "sec-websocket-version");
    let version_ok = matches!(
        (versions.next(), versions.next()),
        (Some(v), None) if v.trim_ascii() == b"13"
    );
    if !version_ok {
        return Err(HandshakeError {
            status: 426,
            reason: "unsupported Sec-WebSocket-Version (13 is supported)",
        });
    }
    let mut keys = header_values(headers, "sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key.trim_ascii(),
        (None, _) => return Err(HandshakeError::bad_request("missing Sec-WebSocket-Key")),
        (Some(_), Some(_)) => {
            return Err(HandshakeError::bad_request(
                "more than one Sec-WebSocket-Key",
            ))
        }
    };
    if !matches!(STANDARD.decode(key), Ok(raw) if raw.len() == 16) {
        return Err(HandshakeError::bad_request("invalid Sec-WebSocket-Key"));
    }
    let subprotocols = list_items(headers, "sec-websocket-protocol")
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let extensions: Vec<&[u8]> = header_values(headers, "sec-websocket-extensions").collect();
    Ok(Handshake {
        accept_key: accept_key(key),
        subprotocols,
        deflate_offers: parse_deflate_offers(&extensions),
    })
}

fn write_headers<N, V>(out: &mut Vec<u8>, headers: &[(N, V)]) -> Result<(), InvalidHeader>
where
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    for (name, value) in headers {
        let (name, value) = (name.as_ref(), value.as_ref());
        if !is_token(name) {
            return Err(InvalidHeader {
                reason: "invalid header name",
            });
        }
        if !is_field_value(value) {
            return Err(InvalidHeader {
                reason: "invalid header value",
            });
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.trim_ascii());
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

/// Appends the `101 Switching Protocols` response head.
///
/// `subprotocol` is the one the app chose, `extensions` the value from
/// [`super::deflate::negotiate_deflate`], `extra_headers` the app's (and the
/// server's own, such as `date`). Nothing is written if any of them could
/// not be sent as is.
pub fn write_accept_response<N, V>(
    out: &mut Vec<u8>,
    accept_key: &str,
    subprotocol: Option<&str>,
    extensions: Option<&str>,
    extra_headers: &[(N, V)],
) -> Result<(), InvalidHeader>
where
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    if subprotocol.is_some_and(|p| !is_token(p.as_bytes())) {
        return Err(InvalidHeader {
            reason: "invalid subprotocol",
        });
    }
    let start = out.len();
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    let mut own: Vec<(&str, &str)> = vec![("Sec-WebSocket-Accept", accept_key)];
    if let Some(p) = subprotocol {
        own.push(("Sec-WebSocket-Protocol", p));
    }
    if let Some(e) = extensions {
        own.push(("Sec-WebSocket-Extensions", e));
    }
    let result = write_headers(out, &own).and_then(|()| write_headers(out, extra_headers));
    if result.is_err() {
        out.truncate(start);
        return result;
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::deflate::negotiate_deflate;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = [
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        for (n, v) in extra {
            h.retain(|(name, _)| !name.eq_ignore_ascii_case(n));
            if !v.is_empty() {
                h.push((n.to_string(), v.to_string()));
            }
        }
        h
    }

    fn status(extra: &[(&str, &str)]) -> Result<Handshake, u16> {
        validate_handshake(b"GET", 1, &request(extra)).map_err(|e| e.status)
    }

    #[test]
    fn rfc_6455_accept_key_example() {
        assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let h = validate_handshake(b"GET", 1, &request(&[])).expect("valid");
        assert_eq!(h.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(h.subprotocols.is_empty());
        assert!(h.deflate_offers.is_empty());
    }

    #[test]
    fn header_tokens_are_case_insensitive_lists() {
        let h = status(&[
            ("upgrade", "foo/2, WebSocket"),
            ("connection", "keep-alive, UPGRADE"),
            ("sec-websocket-key", "  dGhlIHNhbXBsZSBub25jZQ== "),
        ])
        .expect("valid");
        assert_eq!(h.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        // Connection split over two header lines.
        let mut headers = request(&[("Connection", "keep-alive")]);
        headers.push(("Connection".into(), "Upgrade".into()));
        assert!(validate_handshake(b"GET", 1, &headers).is_ok());
        assert!(is_websocket_upgrade(&request(&[])));
        assert!(!is_websocket_upgrade(&request(&[("Upgrade", "h2c")])));
    }

    #[test]
    fn bad_requests_are_400() {
        assert_eq!(
            validate_handshake(b"POST", 1, &request(&[])).map_err(|e| e.status),
            Err(400)
        );
        assert_eq!(
            validate_handshake(b"GET", 0, &request(&[])).map_err(|e| e.status),
            Err(400)
        );
        for extra in [
            [("Upgrade", "")],
            [("Upgrade", "websocketx")],
            [("Connection", "")],
            [("Connection", "keep-alive")],
            [("Sec-WebSocket-Key", "")],
            [("Sec-WebSocket-Key", "not base64!")],
            [("Sec-WebSocket-Key", "dGhlIHNhbXBsZQ==")], // 11 bytes
            [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ")], // no padding
        ] {
            assert_eq!(status(&extra), Err(400), "{extra:?}");
        }
        let mut two_keys = request(&[]);
        two_keys.push(("Sec-WebSocket-Key".into(), KEY.into()));
        assert_eq!(
            validate_handshake(b"GET", 1, &two_keys).map_err(|e| e.status),
            Err(400)
        );
    }

    #[test]
    fn unsupported_versions_are_426() {
        for v in ["", "8", "12", "13, 8", "14"] {
            assert_eq!(status(&[("Sec-WebSocket-Version", v)]), Err(426), "{v:?}");
        }
        let err = validate_handshake(b"GET", 1, &request(&[("Sec-WebSocket-Version", "8")]))
            .expect_err("426");
        let mut out = Vec::new();
        err.write_response(&mut out, &[("server", "ruvicorn")])
            .expect("valid");
        let text = String::from_utf8(out).expect("ascii");
        assert!(
            text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
        assert!(text.contains("\r\nserver: ruvicorn\r\n"), "{text}");
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{text}"
        );
    }

    #[test]
    fn bad_request_response() {
        let err =
            validate_handshake(b"GET", 1, &request(&[("Sec-WebSocket-Key", "")])).expect_err("400");
        let mut out = b"keep".to_vec();
        let no_headers: &[(&str, &str)] = &[];
        err.write_response(&mut out, no_headers).expect("valid");
        let text = String::from_utf8(out).expect("ascii");
        assert!(
            text.starts_with("keepHTTP/1.1 400 Bad Request\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("\r\n\r\nmissing Sec-WebSocket-Key\n"),
            "{text}"
        );
        assert!(text.contains("Connection: close\r\n"));
        let mut out = b"keep".to_vec();
        assert!(err.write_response(&mut out, &[("x", "a\r\nb")]).is_err());
        assert_eq!(out, b"keep");
    }

    #[test]
    fn subprotocols_keep_order() {
        let mut headers = request(&[("Sec-WebSocket-Protocol", " chat , superchat,, v2.json ")]);
        headers.push(("sec-websocket-protocol".into(), "mqtt".into()));
        let h = validate_handshake(b"GET", 1, &headers).expect("valid");
        assert_eq!(h.subprotocols, ["chat", "superchat", "v2.json", "mqtt"]);
    }

    #[test]
    fn deflate_offers_are_parsed() {
        let h = status(&[(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; client_max_window_bits, permessage-deflate",
        )])
        .expect("valid");
        assert_eq!(h.deflate_offers.len(), 2);
        let (_, value) = negotiate_deflate(&h.deflate_offers, true).expect("agreed");
        assert_eq!(value, "permessage-deflate");
    }

    #[test]
    fn accept_response_head() {
        let mut out = Vec::new();
        write_accept_response(
            &mut out,
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            Some("chat"),
            Some("permessage-deflate"),
            &[("x-app", "1"), ("set-cookie", "a=b")],
        )
        .expect("valid");
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: chat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate\r\n\
             x-app: 1\r\n\
             set-cookie: a=b\r\n\
             \r\n"
        );
        let mut out = Vec::new();
        let none: &[(&[u8], &[u8])] = &[];
        write_accept_response(&mut out, "k", None, None, none).expect("valid");
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: k\r\n\r\n"
        );
    }

    /// `websocket.accept` headers pass the same check as HTTP response headers.
    #[test]
    fn accept_response_refuses_header_injection() {
        let mut out = b"prev".to_vec();
        for (sub, headers) in [
            (Some("a b"), vec![]),
            (Some("x\r\ny: z"), vec![]),
            (None, vec![("bad name", "v")]),
            (None, vec![("x", "v\r\nInjected: 1")]),
            (None, vec![("", "v")]),
            (None, vec![("a:b", "v")]),
            (None, vec![("caf\u{e9}", "v")]),
            (None, vec![("x", "v\rw")]),
            (None, vec![("x", "v\nw")]),
            (None, vec![("x", "v\0w")]),
            (None, vec![("x", "v\x01w")]),
            (None, vec![("x", "v\x7fw")]),
        ] {
            let r = write_accept_response(&mut out, "k", sub, None, &headers);
            assert!(r.is_err(), "{sub:?} {headers:?}");
            assert_eq!(out, b"prev");
        }
    }
}
