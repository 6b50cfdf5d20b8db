//! Names and encodings a person or an app reads: IANA cipher suite names, PEM text and a
//! certificate subject as an RFC 4514 string.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use pkcs8::der::Decode;
use rustls::crypto::ring::ALL_CIPHER_SUITES;
use rustls::SupportedCipherSuite;

use super::TlsError;

/// The IANA name of a suite. rustls spells TLS 1.3 suites `TLS13_...`; IANA (and
/// OpenSSL's `-ciphersuites`, Python's `ssl`) spell them `TLS_...`.
pub fn iana_name(suite: SupportedCipherSuite) -> String {
    let name = suite.suite().as_str().unwrap_or("unknown");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_owned(),
    }
}

/// Every suite ruvicorn can serve, by IANA name, as one line.
pub fn supported_names() -> String {
    ALL_CIPHER_SUITES
        .iter()
        .map(|s| iana_name(*s))
        .collect::<Vec<_>>()
        .join(":")
}

/// The suites `spec` names (IANA names separated by `:` or `,`), in its order.
pub fn cipher_suites(spec: &str) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let mut suites = Vec::new();
    for name in spec
        .split([':', ','])
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        if !name
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("TLS_"))
        {
            return Err(TlsError(format!(
                "ssl_ciphers takes IANA cipher suite names, not an OpenSSL cipher string \
                 ({name:?}); supported: {}",
                supported_names()
            )));
        }
        let found = ALL_CIPHER_SUITES
            .iter()
            .find(|suite| iana_name(**suite).eq_ignore_ascii_case(name));
        match found {
            Some(suite) if !suites.contains(suite) => suites.push(*suite),
            Some(_) => {}
            None => {
                return Err(TlsError(format!(
                    "unsupported cipher suite {name} in ssl_ciphers; supported: {}",
                    supported_names()
                )))
            }
        }
    }
    if suites.is_empty() {
        return Err(TlsError(format!(
            "ssl_ciphers names no cipher suite; supported: {}",
            supported_names()
        )));
    }
    Ok(suites)
}

/// `der` as PEM text with the label `CERTIFICATE`, in 64-column lines.
pub fn certificate_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::with_capacity(body.len() + body.len() / 64 + 60);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        // base64 output is ASCII.
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// The subject of the certificate `der` as an RFC 4514 string (last RDN first); None
/// when it does not parse.
pub fn subject_rfc4514(der: &[u8]) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(cert.tbs_certificate.subject.to_string())
}

/// Subject and issuer of the certificate `der`, DER-encoded, to compare names.
pub(super) fn subject_and_issuer(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    use pkcs8::der::Encode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    Some((tbs.subject.to_der().ok()?, tbs.issuer.to_der().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testcerts::Minted;

    #[test]
    fn iana_names_in_either_separator() {
        let suites =
            cipher_suites("TLS_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
                .expect("known names");
        let ids: Vec<u16> = suites.iter().map(|s| u16::from(s.suite())).collect();
        assert_eq!(ids, [0x1301, 0xc02b]);
        assert_eq!(
            cipher_suites("tls_chacha20_poly1305_sha256").map(|s| s.len()),
            Ok(1)
        );
    }

    #[test]
    fn openssl_strings_are_refused_with_the_names_to_use() {
        for spec in ["ECDHE+AESGCM", "HIGH:!aNULL", "DEFAULT", "AES256-SHA"] {
            let err = cipher_suites(spec).expect_err(spec);
            assert!(err.0.contains("IANA cipher suite names"), "{err}");
            assert!(err.0.contains("TLS_AES_128_GCM_SHA256"), "{err}");
            assert!(!err.0.contains('\n'));
        }
        let err = cipher_suites("TLS_RSA_WITH_RC4_128_SHA").expect_err("unsupported");
        assert!(err
            .0
            .starts_with("unsupported cipher suite TLS_RSA_WITH_RC4_128_SHA"));
        assert!(cipher_suites(" : ").is_err());
    }

    #[test]
    fn pem_round_trips_through_the_pem_reader() {
        use rustls_pki_types::pem::PemObject;
        let der = Minted::new().server_leaf_der();
        let pem = certificate_pem(&der);
        assert!(pem.lines().all(|line| line.len() <= 64));
        let back = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes());
        assert_eq!(back.map(|c| c.to_vec()).ok(), Some(der));
    }

    #[test]
    fn subject_is_rfc4514_last_rdn_first_and_escaped() {
        let minted = Minted::new();
        assert_eq!(
            subject_rfc4514(minted.client.der()).as_deref(),
            Some("CN=alice,O=Acme\\, Inc.,C=NZ")
        );
        assert_eq!(subject_rfc4514(b"not a certificate"), None);
    }
}
