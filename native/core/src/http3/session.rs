//! What a QUIC connection's TLS handshake negotiated, for the ASGI `tls` extension.
//!
//! quinn-proto's rustls session reports the peer's certificates but not the cipher suite.
//! So the server configuration is wrapped: each session is quinn-proto's own, and the
//! wrapper reads the suite from the ServerHello that session writes (RFC 8446 §4.1.3: a
//! fixed layout up to the suite). Everything else is passed through untouched.

use std::any::Any;
use std::sync::Arc;

use quinn_proto::crypto::{
    self, ExportKeyingMaterialError, HeaderKey, KeyPair, Keys, PacketKey, UnsupportedVersion,
};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::{ConnectionId, Side, TransportError};
use rustls::pki_types::CertificateDer;

use crate::tls::info::ConnectionInfo;

/// QUIC runs TLS 1.3 and nothing else (RFC 9001 §4.2).
const TLS13: u16 = 0x0304;
/// The handshake message type of a ServerHello (and of a HelloRetryRequest, which names
/// the same suite as the ServerHello that follows it).
const SERVER_HELLO: u8 = 2;

/// What [`Session::handshake_data`] hands out.
struct Negotiated {
    cipher_suite: Option<u16>,
}

/// The `tls` extension's values of a connection, once its handshake got far enough.
pub(crate) fn info(quic: &quinn_proto::Connection) -> Option<ConnectionInfo> {
    let session = quic.crypto_session();
    let suite = session.handshake_data()?.downcast::<Negotiated>().ok()?;
    let chain = session
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|chain| *chain)
        .unwrap_or_default();
    Some(ConnectionInfo::new(Some(TLS13), suite.cipher_suite, &chain))
}

/// The cipher suite of a ServerHello handshake message at the start of `bytes`.
fn server_hello_suite(bytes: &[u8]) -> Option<u16> {
    // type (1), length (3), legacy_version (2), random (32), legacy_session_id <0..32>.
    if *bytes.first()? != SERVER_HELLO {
        return None;
    }
    let at = 39 + usize::from(*bytes.get(38)?);
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// quinn-proto's server configuration, its sessions wrapped in [`Session`].
pub(crate) struct ServerConfig(pub(crate) Arc<dyn crypto::ServerConfig>);

impl crypto::ServerConfig for ServerConfig {
    fn initial_keys(
        &self,
        version: u32,
        dst_cid: &ConnectionId,
    ) -> Result<Keys, UnsupportedVersion> {
        self.0.initial_keys(version, dst_cid)
    }

    fn retry_tag(&self, version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        self.0.retry_tag(version, orig_dst_cid, packet)
    }

    fn start_session(
        self: Arc<Self>,
        version: u32,
        params: &TransportParameters,
    ) -> Box<dyn crypto::Session> {
        Box::new(Session {
            inner: self.0.clone().start_session(version, params),
            cipher_suite: None,
        })
    }
}

/// One connection's session: quinn-proto's, plus the suite its ServerHello named.
struct Session {
    inner: Box<dyn crypto::Session>,
    cipher_suite: Option<u16>,
}

impl crypto::Session for Session {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        self.inner.initial_keys(dst_cid, side)
    }

    /// Present once quinn-proto's is (the ClientHello was read), so a caller can tell
    /// "not yet" from "negotiated".
    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        self.inner.handshake_data()?;
        Some(Box::new(Negotiated {
            cipher_suite: self.cipher_suite,
        }))
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.inner.peer_identity()
    }

    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        self.inner.early_crypto()
    }

    fn early_data_accepted(&self) -> Option<bool> {
        self.inner.early_data_accepted()
    }

    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        self.inner.read_handshake(buf)
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        self.inner.transport_parameters()
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        let start = buf.len();
        let keys = self.inner.write_handshake(buf);
        if self.cipher_suite.is_none() {
            self.cipher_suite = buf.get(start..).and_then(server_hello_suite);
        }
        keys
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        self.inner.next_1rtt_keys()
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.inner.is_valid_retry(orig_dst_cid, header, payload)
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        self.inner.export_keying_material(output, label, context)
    }
}

#[cfg(test)]
mod tests {
    use super::server_hello_suite;

    #[test]
    fn the_suite_follows_the_session_id() {
        let mut hello = vec![2, 0, 0, 50, 3, 3];
        hello.extend([7; 32]);
        hello.extend([2, 0xaa, 0xbb, 0x13, 0x02, 0]);
        assert_eq!(server_hello_suite(&hello), Some(0x1302));
        hello[38] = 0;
        assert_eq!(server_hello_suite(&hello), Some(0xaabb));
        assert_eq!(server_hello_suite(&hello[..39]), None);
        hello[0] = 8; // EncryptedExtensions
        assert_eq!(server_hello_suite(&hello), None);
    }
}
