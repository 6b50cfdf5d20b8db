//! Sans-IO HTTP/1.1 building blocks for ruvicorn's protocol: request head
//! parsing, body de-framing, request-target handling and response framing.
//!
//! Nothing here touches sockets or Python; the protocol object feeds bytes in
//! and writes the bytes these functions produce.

pub mod body;
pub mod connection;
pub mod request;
pub mod response;
pub mod target;

use std::fmt;

/// Size limits applied while reading a request.
///
/// They bound the memory one connection can make ruvicorn hold before the
/// application sees anything.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest request-line accepted, in bytes, not counting its CRLF.
    pub request_line: usize,
    /// Most header fields accepted in a head (and trailer fields in a chunked body).
    pub fields: usize,
    /// Longest single field line, in bytes, not counting its CRLF.
    pub field_size: usize,
    /// Largest body accepted, in payload bytes; `None` for no limit.
    pub body: Option<u64>,
}

#[cfg(test)]
impl Default for Limits {
    /// Limits that admit every ordinary request.
    fn default() -> Self {
        Limits {
            request_line: 8190,
            fields: 100,
            field_size: 8190,
            body: None,
        }
    }
}

impl Limits {
    /// Largest head that can be valid under these limits: a request-line, the
    /// field lines and the final CRLF. A buffer larger than this without a
    /// complete head can be refused without reading more.
    pub fn max_head(&self) -> usize {
        self.request_line
            .saturating_add(2)
            .saturating_add(
                self.fields
                    .saturating_mul(self.field_size.saturating_add(2)),
            )
            .saturating_add(2)
    }
}

/// The HTTP version of a request; ruvicorn speaks only these two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// The version as ASGI's `http_version` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "1.0",
            Version::Http11 => "1.1",
        }
    }
}

/// Why a request was refused; `status()` gives the response code.
///
/// Every variant means the connection cannot be trusted to stay in sync, so
/// the protocol answers with the status and closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// 400: the bytes break HTTP/1.1 syntax or framing rules.
    BadRequest(&'static str),
    /// 414: the request-line is longer than `Limits::request_line`.
    UriTooLong,
    /// 431: too many fields, a field line too long, or a head too large.
    HeaderFieldsTooLarge(&'static str),
    /// 413: the body is larger than `Limits::body`.
    PayloadTooLarge,
    /// 501: a well-formed transfer-coding ruvicorn does not implement.
    NotImplemented(&'static str),
    /// 505: a well-formed request-line of an HTTP major version other than 1.
    VersionNotSupported,
}

impl RequestError {
    /// The HTTP status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::BadRequest(_) => 400,
            RequestError::UriTooLong => 414,
            RequestError::HeaderFieldsTooLarge(_) => 431,
            RequestError::PayloadTooLarge => 413,
            RequestError::NotImplemented(_) => 501,
            RequestError::VersionNotSupported => 505,
        }
    }

    /// A short description for the log line.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::BadRequest(why)
            | RequestError::HeaderFieldsTooLarge(why)
            | RequestError::NotImplemented(why) => why,
            RequestError::UriTooLong => "request line too long",
            RequestError::PayloadTooLarge => "request body too large",
            RequestError::VersionNotSupported => "unsupported HTTP major version",
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status(), self.reason())
    }
}

impl std::error::Error for RequestError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_reasons() {
        let cases = [
            (RequestError::BadRequest("x"), 400, "x"),
            (RequestError::UriTooLong, 414, "request line too long"),
            (RequestError::HeaderFieldsTooLarge("y"), 431, "y"),
            (RequestError::PayloadTooLarge, 413, "request body too large"),
            (RequestError::NotImplemented("z"), 501, "z"),
            (
                RequestError::VersionNotSupported,
                505,
                "unsupported HTTP major version",
            ),
        ];
        for (err, status, reason) in cases {
            assert_eq!(err.status(), status);
            assert_eq!(err.reason(), reason);
            assert_eq!(err.to_string(), format!("{status}: {reason}"));
        }
    }

    #[test]
    fn max_head_saturates() {
        let limits = Limits {
            request_line: usize::MAX,
            fields: usize::MAX,
            field_size: usize::MAX,
            body: None,
        };
        assert_eq!(limits.max_head(), usize::MAX);
        assert_eq!(Limits::default().max_head(), 8192 + 100 * 8192 + 2);
    }
}
