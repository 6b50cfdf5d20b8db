//! `--proxy-protocol`: every connection starts with a PROXY header from a peer in
//! `--forwarded-allow-ips`, beneath TLS and HTTP. Until it is complete the connection's
//! [`Peer`] is unset and its bytes wait here; once read, the header's addresses (or the
//! socket's, for LOCAL and UNKNOWN) become the peer, and the bytes after it go on to the
//! TLS layer or the HTTP/1.1 parser. Anything else closes the connection without a
//! response, with one warning line.

use std::net::SocketAddr;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::HttpProtocol;
use crate::asgi::scope::Peer;
use crate::key;
use ruvicorn_core::proxy::TrustedProxies;
use ruvicorn_core::proxy_protocol::{parse, Parsed};

/// A connection still waiting for its PROXY header.
pub(super) struct AwaitingHeader {
    /// The bytes received so far (at most one read beyond a v2 header's 64 KiB).
    received: Vec<u8>,
    /// The socket's own addresses, kept for a LOCAL or UNKNOWN header.
    socket: Peer,
}

impl HttpProtocol {
    /// Called from connection_made: wait for the header from a peer allowed to send one,
    /// close any other connection.
    pub(super) fn expect_proxy_header(
        slf: &Bound<'_, Self>,
        allowed: &TrustedProxies,
        socket: Peer,
    ) -> PyResult<()> {
        if socket.listed_in(slf.py(), allowed)? {
            slf.get().lock()?.awaiting_header = Some(Box::new(AwaitingHeader {
                received: Vec::new(),
                socket,
            }));
            return Ok(());
        }
        Self::refuse_proxied(slf, socket, "not in --forwarded-allow-ips")
    }

    /// Bytes read before the header is complete: what follows the header once it is (to
    /// go on to TLS or HTTP), None while it is incomplete or after it was refused.
    pub(super) fn proxy_header_received(
        slf: &Bound<'_, Self>,
        data: &[u8],
    ) -> PyResult<Option<Vec<u8>>> {
        let this = slf.get();
        let waited = {
            let mut conn = this.lock()?;
            if conn.closing {
                // Closed by the head timeout while waiting: nothing more is read.
                return Ok(None);
            }
            let Some(waiting) = conn.awaiting_header.as_mut() else {
                return Err(PyRuntimeError::new_err("data before connection_made"));
            };
            waiting.received.extend_from_slice(data);
            let parsed = parse(&waiting.received);
            if parsed == Parsed::Incomplete {
                return Ok(None);
            }
            conn.awaiting_header.take().map(|waited| (parsed, *waited))
        };
        let Some((
            parsed,
            AwaitingHeader {
                mut received,
                socket,
            },
        )) = waited
        else {
            return Ok(None);
        };
        match parsed {
            Parsed::Done {
                addresses,
                consumed,
            } => {
                let peer = match addresses {
                    Some((client, server)) => this.proxied_peer(slf.py(), client, server)?,
                    None => socket,
                };
                this.set_peer(peer)?;
                received.drain(..consumed);
                Ok(Some(received))
            }
            Parsed::Invalid(reason) => Self::refuse_proxied(slf, socket, reason).map(|()| None),
            Parsed::Incomplete => Ok(None),
        }
    }

    /// The peer the header names: forwarding headers in its requests are honoured only
    /// if that client is itself in `--forwarded-allow-ips`.
    fn proxied_peer(
        &self,
        py: Python<'_>,
        client: SocketAddr,
        server: SocketAddr,
    ) -> PyResult<Peer> {
        let pair = |addr: SocketAddr| -> PyResult<Py<PyTuple>> {
            let host = addr.ip().to_string();
            Ok((host, addr.port()).into_pyobject(py)?.unbind())
        };
        let proxies = self.state().settings.proxies.as_ref();
        Peer::new(py, Some(pair(client)?), Some(pair(server)?), proxies)
    }

    /// Close the connection without a word to the peer; one warning line says why.
    fn refuse_proxied(slf: &Bound<'_, Self>, socket: Peer, reason: &str) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let line = format!(
            "PROXY protocol: closing the connection from {}: {reason}",
            socket
                .client_host(py)
                .unwrap_or_else(|| "unix socket".to_owned())
        );
        this.set_peer(socket)?;
        Self::decide(slf, |conn, fx| conn.close(fx))?;
        let log = this.state().error_log.bind(py);
        log.call_method1(key!(py, "warning"), (line,)).map(drop)
    }

    fn set_peer(&self, peer: Peer) -> PyResult<()> {
        self.peer
            .set(peer)
            .map_err(|_| PyRuntimeError::new_err("connection peer set twice"))
    }
}
