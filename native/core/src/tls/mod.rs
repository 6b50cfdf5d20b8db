//! TLS without I/O: reading the certificate and key files, the rustls server
//! configuration a worker serves with, and what the ASGI `tls` extension reports about a
//! connection. The binding crate feeds rustls the socket's bytes; nothing here reads one.
//!
//! [`config::build`] is the one way a server configuration is made: the worker serves with
//! it and the master's check before (re)starting workers runs it too, so a check that
//! passes means the workers will start.

pub mod config;
pub mod info;
pub mod keys;
pub mod names;

use std::fmt;

/// The TLS library, for the binding crate that drives its connections.
pub use rustls;

/// ALPN protocols offered, most preferred first: the one list (`--http` narrows it, see
/// [`alpn`]).
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The ALPN list for the HTTP versions served.
pub fn alpn(http1: bool, http2: bool) -> Vec<Vec<u8>> {
    ALPN.iter()
        .filter(|p| if **p == b"h2" { http2 } else { http1 })
        .map(|p| p.to_vec())
        .collect()
}

/// Whether clients present a certificate (`--ssl-cert-reqs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// 0: none is asked for.
    None,
    /// 1: asked for; a client may omit it, but one it sends must verify.
    Optional,
    /// 2: a client without a certificate signed by `--ssl-ca-certs` fails the handshake.
    Required,
}

impl ClientAuth {
    /// `--ssl-cert-reqs` as a number (the `ssl.CERT_*` values).
    pub fn from_number(value: i64) -> Result<Self, TlsError> {
        match value {
            0 => Ok(Self::None),
            1 => Ok(Self::Optional),
            2 => Ok(Self::Required),
            other => Err(TlsError(format!(
                "ssl_cert_reqs must be 0 (none), 1 (optional) or 2 (required), not {other}"
            ))),
        }
    }
}

/// The TLS settings, as files and names (the `ssl_*` settings).
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// PEM chain, leaf first; also the key's file when `keyfile` is not given.
    pub certfile: String,
    pub keyfile: Option<String>,
    pub password: Option<String>,
    /// PEM bundle of the CAs that sign client certificates.
    pub ca_certs: Option<String>,
    pub client_auth: ClientAuth,
    /// IANA cipher suite names separated by `:` or `,`; None keeps the defaults.
    pub ciphers: Option<String>,
}

/// A TLS setting that cannot be served with: one line for a person, naming the file or
/// value at fault and never a key's or password's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

#[cfg(test)]
pub(crate) mod testcerts;
