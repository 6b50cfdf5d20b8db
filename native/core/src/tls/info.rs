//! What the ASGI `tls` extension reports about one connection, read once its handshake
//! is done.

use rustls::pki_types::CertificateDer;
use rustls::ServerConnection;

use super::names::{certificate_pem, subject_rfc4514};

/// The values of the `tls` extension (asgiref `specs/tls.rst`) that depend on the
/// connection; `server_cert` is the worker's own and is not repeated here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// 0x0303 for TLS 1.2, 0x0304 for TLS 1.3.
    pub tls_version: Option<u16>,
    /// The IANA id of the suite, e.g. 0x1301 for `TLS_AES_128_GCM_SHA256`.
    pub cipher_suite: Option<u16>,
    /// The client's certificates as PEM, its own first; empty when it sent none.
    pub client_cert_chain: Vec<String>,
    /// The subject of the client's certificate (RFC 4514).
    pub client_cert_name: Option<String>,
}

impl ConnectionInfo {
    /// Read from a connection whose handshake is done. A client certificate that reached
    /// here was verified (rustls fails the handshake otherwise), so there is no error to
    /// report in `client_cert_error`.
    pub fn of(conn: &ServerConnection) -> Self {
        Self::new(
            conn.protocol_version().map(u16::from),
            conn.negotiated_cipher_suite().map(|s| u16::from(s.suite())),
            conn.peer_certificates().unwrap_or_default(),
        )
    }

    /// From what a handshake negotiated, wherever it ran (a TCP connection's rustls
    /// session, or a QUIC connection's).
    pub fn new(
        tls_version: Option<u16>,
        cipher_suite: Option<u16>,
        chain: &[CertificateDer<'_>],
    ) -> Self {
        Self {
            tls_version,
            cipher_suite,
            client_cert_chain: chain.iter().map(|c| certificate_pem(c)).collect(),
            client_cert_name: chain.first().and_then(|c| subject_rfc4514(c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, RootCertStore};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    use super::*;
    use crate::tls::config::{build, ring_provider};
    use crate::tls::testcerts::{Minted, TempFiles};
    use crate::tls::{ClientAuth, TlsOptions};

    fn server(minted: &Minted, files: &TempFiles, auth: ClientAuth) -> Arc<rustls::ServerConfig> {
        server_with(minted, files, auth, None)
    }

    fn server_with(
        minted: &Minted,
        files: &TempFiles,
        auth: ClientAuth,
        ciphers: Option<&str>,
    ) -> Arc<rustls::ServerConfig> {
        let options = TlsOptions {
            certfile: files.write("chain.pem", &minted.server_chain_pem()),
            keyfile: Some(files.write("key.pem", &minted.server_key_pem())),
            password: None,
            ca_certs: Some(files.write("ca.pem", &minted.client_ca.pem())),
            client_auth: auth,
            ciphers: ciphers.map(str::to_owned),
        };
        build(&options).expect("server config").config
    }

    fn client(minted: &Minted, with_cert: bool, tls12: bool) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        let root = CertificateDer::from_pem_slice(minted.root_pem().as_bytes()).expect("root");
        roots.add(root).expect("root store");
        let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let builder = ClientConfig::builder_with_provider(Arc::new(ring_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = if with_cert {
            let key = PrivateKeyDer::from_pem_slice(minted.client_key.serialize_pem().as_bytes());
            builder
                .with_client_auth_cert(vec![minted.client.der().clone()], key.expect("key"))
                .expect("client cert")
        } else {
            builder.with_no_client_auth()
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }

    /// Run a handshake in memory; the server's error if it fails.
    fn handshake(
        server: Arc<rustls::ServerConfig>,
        client: ClientConfig,
    ) -> Result<ServerConnection, rustls::Error> {
        let name = ServerName::try_from("localhost").expect("name");
        let mut c = ClientConnection::new(Arc::new(client), name).expect("client");
        let mut s = ServerConnection::new(server)?;
        for _ in 0..10 {
            let mut wire = Vec::new();
            c.write_tls(&mut wire).expect("client write");
            s.read_tls(&mut wire.as_slice()).expect("server read");
            s.process_new_packets()?;
            let mut back = Vec::new();
            s.write_tls(&mut back).expect("server write");
            c.read_tls(&mut back.as_slice()).expect("client read");
            if c.process_new_packets().is_err() {
                break;
            }
            if !s.is_handshaking() && !c.is_handshaking() {
                return Ok(s);
            }
        }
        Err(rustls::Error::General("handshake did not finish".into()))
    }

    #[test]
    fn reports_version_suite_and_the_client_certificate() {
        let minted = Minted::new();
        let files = TempFiles::new();
        let conn = handshake(
            server(&minted, &files, ClientAuth::Required),
            client(&minted, true, false),
        )
        .expect("handshake");
        let info = ConnectionInfo::of(&conn);
        assert_eq!(info.tls_version, Some(0x0304));
        assert!(matches!(info.cipher_suite, Some(0x1301..=0x1303)));
        assert_eq!(
            info.client_cert_chain,
            vec![certificate_pem(minted.client.der())]
        );
        assert_eq!(
            info.client_cert_name.as_deref(),
            Some("CN=alice,O=Acme\\, Inc.,C=NZ")
        );
        assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
    }

    #[test]
    fn tls12_without_a_client_certificate() {
        let minted = Minted::new();
        let files = TempFiles::new();
        let conn = handshake(
            server(&minted, &files, ClientAuth::None),
            client(&minted, false, true),
        )
        .expect("handshake");
        let info = ConnectionInfo::of(&conn);
        assert_eq!(info.tls_version, Some(0x0303));
        assert!(info.client_cert_chain.is_empty());
        assert_eq!(info.client_cert_name, None);
    }

    #[test]
    fn a_required_certificate_must_be_sent_an_optional_one_may_be_omitted() {
        let minted = Minted::new();
        let files = TempFiles::new();
        let required = server(&minted, &files, ClientAuth::Required);
        assert!(handshake(required, client(&minted, false, false)).is_err());
        let optional = server(&minted, &files, ClientAuth::Optional);
        assert!(handshake(optional.clone(), client(&minted, false, false)).is_ok());
        assert!(handshake(optional, client(&minted, true, false)).is_ok());
    }

    #[test]
    fn the_servers_suite_order_wins_over_the_clients() {
        let minted = Minted::new();
        let files = TempFiles::new();
        // The client lists AES-256-GCM first (rustls's and OpenSSL's default order).
        for (tls12, expected) in [(false, 0x1301), (true, 0xc02b)] {
            let conn = handshake(
                server(&minted, &files, ClientAuth::None),
                client(&minted, false, tls12),
            )
            .expect("handshake");
            assert_eq!(ConnectionInfo::of(&conn).cipher_suite, Some(expected));
        }
        let listed = server_with(
            &minted,
            &files,
            ClientAuth::None,
            Some("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"),
        );
        let conn = handshake(listed, client(&minted, false, false)).expect("handshake");
        assert_eq!(ConnectionInfo::of(&conn).cipher_suite, Some(0x1303));
    }
}
