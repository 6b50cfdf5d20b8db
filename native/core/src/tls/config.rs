//! The rustls server configuration a worker serves with, from the `ssl_*` settings.

use std::sync::Arc;

use rustls::crypto::ring::cipher_suite as suite;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::CertificateDer;

use super::keys::{read_ca_bundle, read_certs, read_key};
use super::names::{cipher_suites, subject_and_issuer};
use super::{ClientAuth, TlsError, TlsOptions, ALPN};

/// What a worker serves with: the rustls configuration and the leaf certificate (the
/// `tls` extension's `server_cert`).
pub struct Built {
    pub config: Arc<ServerConfig>,
    pub leaf: CertificateDer<'static>,
}

/// Every suite ruvicorn serves without `ssl_ciphers`, most preferred first. AES-128-GCM
/// leads because its SHA-256 key schedule makes the cheapest full handshake: most clients
/// list AES-256-GCM first, whose SHA-384 transcript and HKDF ran as ~10% of a worker's
/// CPU per handshake under a new-connection TLS load (SHA-256 has hardware help on
/// current x86-64 and ARM CPUs, SHA-384 does not).
pub const PREFERRED_SUITES: [SupportedCipherSuite; 9] = [
    suite::TLS13_AES_128_GCM_SHA256,
    suite::TLS13_CHACHA20_POLY1305_SHA256,
    suite::TLS13_AES_256_GCM_SHA384,
    suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
];

/// Build the server configuration from `options`, reading every file it names. The
/// one way a configuration is made (the master's check calls it too).
pub fn build(options: &TlsOptions) -> Result<Built, TlsError> {
    let mut provider = ring_provider();
    provider.cipher_suites = match &options.ciphers {
        Some(spec) => cipher_suites(spec)?,
        None => PREFERRED_SUITES.to_vec(),
    };
    let provider = Arc::new(provider);
    let certs = read_certs(&options.certfile)?;
    check_chain(&certs, &options.certfile)?;
    let keyfile = options.keyfile.as_deref().unwrap_or(&options.certfile);
    let key = read_key(keyfile, options.password.as_deref())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&TLS13, &TLS12])
        .map_err(|err| TlsError(format!("ssl_ciphers cannot be served: {err}")))?;
    let verifier = match (options.client_auth, &options.ca_certs) {
        (ClientAuth::None, _) => WebPkiClientVerifier::no_client_auth(),
        (auth, Some(ca_certs)) => {
            let roots = Arc::new(root_store(ca_certs)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = match auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            verifier
                .build()
                .map_err(|err| TlsError(format!("cannot use ssl_ca_certs {ca_certs}: {err}")))?
        }
        (_, None) => {
            return Err(TlsError(
                "ssl_cert_reqs 1 or 2 asks for client certificates: give ssl_ca_certs, \
                 the CAs that sign them"
                    .to_owned(),
            ))
        }
    };
    let leaf = certs[0].clone();
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|err| key_error(&err, keyfile, &options.certfile))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // The server's order (ours, or the one `ssl_ciphers` lists) decides, not the client's.
    config.ignore_client_order = true;
    Ok(Built {
        config: Arc::new(config),
        leaf,
    })
}

fn key_error(err: &rustls::Error, keyfile: &str, certfile: &str) -> TlsError {
    TlsError(match err {
        rustls::Error::InconsistentKeys(_) => {
            format!("the private key in {keyfile} does not match the certificate in {certfile}")
        }
        other => format!("cannot use the private key in {keyfile}: {other}"),
    })
}

fn root_store(path: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_ca_bundle(path)? {
        roots
            .add(cert)
            .map_err(|err| TlsError(format!("a certificate in {path} cannot be a CA: {err}")))?;
    }
    Ok(roots)
}

/// Each certificate after the leaf must be the issuer of the one before it: a chain in the
/// wrong order, or with a gap, is refused here rather than by every client.
fn check_chain(certs: &[CertificateDer<'_>], path: &str) -> Result<(), TlsError> {
    let mut names = Vec::with_capacity(certs.len());
    for (index, cert) in certs.iter().enumerate() {
        let parsed = subject_and_issuer(cert).ok_or_else(|| {
            TlsError(format!(
                "certificate {} in {path} is not a valid X.509 certificate",
                index + 1
            ))
        })?;
        names.push(parsed);
    }
    for (index, pair) in names.windows(2).enumerate() {
        let (_, issuer) = &pair[0];
        let (subject, _) = &pair[1];
        if issuer != subject {
            return Err(TlsError(format!(
                "the certificate chain in {path} is incomplete or out of order: certificate {} \
                 was not issued by certificate {} (list the leaf first, then each issuer)",
                index + 1,
                index + 2
            )));
        }
    }
    Ok(())
}

/// The *ring* provider: it builds from source with a C compiler alone (aws-lc-rs, which
/// rustls now prefers for its post-quantum key exchange, needs cmake and more). The cost is
/// no post-quantum key exchange group; X25519, P-256 and P-384 are offered.
#[allow(deprecated)]
pub fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testcerts::{encrypted_pkcs8_pem, Minted, TempFiles};

    fn options(certfile: String, keyfile: String) -> TlsOptions {
        TlsOptions {
            certfile,
            keyfile: Some(keyfile),
            password: None,
            ca_certs: None,
            client_auth: ClientAuth::None,
            ciphers: None,
        }
    }

    fn message(options: &TlsOptions) -> String {
        match build(options) {
            Ok(_) => String::from("built"),
            Err(err) => err.0,
        }
    }

    #[test]
    fn builds_tls12_and_13_with_http11_alpn() {
        let minted = Minted::new();
        let files = TempFiles::new();
        let opts = options(
            files.write("chain.pem", &minted.server_chain_pem()),
            files.write("key.pem", &minted.server_key_pem()),
        );
        let built = build(&opts).expect("config");
        assert_eq!(
            built.config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(super::super::alpn(true, false), vec![b"http/1.1".to_vec()]);
        assert_eq!(super::super::alpn(false, true), vec![b"h2".to_vec()]);
        assert_eq!(built.leaf.to_vec(), minted.server_leaf_der());
        let password = TlsOptions {
            keyfile: Some(files.write("enc.pem", &encrypted_pkcs8_pem(&minted, "pw"))),
            password: Some("pw".into()),
            ..opts.clone()
        };
        assert_eq!(message(&password), "built");
        let combined = TlsOptions {
            certfile: files.write(
                "both.pem",
                &(minted.server_chain_pem() + &minted.server_key_pem()),
            ),
            keyfile: None,
            ..opts
        };
        assert_eq!(message(&combined), "built");
    }

    #[test]
    fn refuses_what_cannot_serve_in_one_line() {
        let minted = Minted::new();
        let files = TempFiles::new();
        let chain = files.write("chain.pem", &minted.server_chain_pem());
        let key = files.write("key.pem", &minted.server_key_pem());
        let stranger = files.write("other.pem", &Minted::stranger_key_pem());
        let mismatch = message(&options(chain.clone(), stranger));
        assert!(
            mismatch.contains("does not match the certificate"),
            "{mismatch}"
        );
        let reversed = files.write(
            "reversed.pem",
            &(minted.intermediate_pem() + &minted.server_chain_pem()),
        );
        let order = message(&options(reversed, key.clone()));
        assert!(order.contains("incomplete or out of order"), "{order}");
        let gap = files.write(
            "gap.pem",
            &(minted
                .server_chain_pem()
                .split_inclusive("-----END CERTIFICATE-----\n")
                .next()
                .unwrap_or_default()
                .to_owned()
                + &minted.root_pem()
                + &minted.intermediate_pem()),
        );
        assert!(message(&options(gap, key.clone())).contains("certificate 1 was not issued by"));
        let no_ca = TlsOptions {
            client_auth: ClientAuth::Required,
            ..options(chain.clone(), key.clone())
        };
        assert!(message(&no_ca).contains("give ssl_ca_certs"));
        let openssl = TlsOptions {
            ciphers: Some("ECDHE+AESGCM".into()),
            ..options(chain, key)
        };
        assert!(message(&openssl).contains("IANA"));
        for text in [mismatch, message(&no_ca), message(&openssl)] {
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn client_certificates_optional_or_required() {
        let minted = Minted::new();
        let files = TempFiles::new();
        let ca = files.write("ca.pem", &minted.client_ca.pem());
        for auth in [ClientAuth::Optional, ClientAuth::Required] {
            let opts = TlsOptions {
                ca_certs: Some(ca.clone()),
                client_auth: auth,
                ..options(
                    files.write("chain.pem", &minted.server_chain_pem()),
                    files.write("key.pem", &minted.server_key_pem()),
                )
            };
            assert_eq!(message(&opts), "built");
        }
    }

    #[test]
    fn the_preferred_order_holds_every_suite_once() {
        let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
        assert_eq!(PREFERRED_SUITES.len(), all.len());
        assert!(all.iter().all(|s| PREFERRED_SUITES.contains(s)));
    }
}
