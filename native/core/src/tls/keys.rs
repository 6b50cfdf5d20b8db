//! Certificates and private keys from PEM files.
//!
//! Keys may be PKCS#8, PKCS#1 (RSA) or SEC1 (EC), or PKCS#8 encrypted with a password
//! (PBES2: PBKDF2 or scrypt with AES-CBC, what `openssl pkcs8 -topk8 -v2 aes256` and
//! Python's `cryptography` write). Errors name the file, never its content.

use pkcs8::der::pem::PemLabel;
use pkcs8::EncryptedPrivateKeyInfo;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

use super::TlsError;

/// The key formats read, for the error that says which are.
const KEY_FORMATS: &str = "PEM PRIVATE KEY (PKCS#8), RSA PRIVATE KEY (PKCS#1), \
     EC PRIVATE KEY (SEC1) or ENCRYPTED PRIVATE KEY (PKCS#8 with a password)";

fn read(path: &str, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError(format!("cannot read {what} {path}: {err}")))
}

/// A PEM section's kind and DER; `None` for one rustls has no kind for (an encrypted key).
type Section = (Option<SectionKind>, Vec<u8>);

/// Every PEM section of `pem`.
fn sections(pem: &[u8], path: &str) -> Result<Vec<Section>, TlsError> {
    let mut out = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) =
            section.map_err(|err| TlsError(format!("{path} is not valid PEM: {err}")))?;
        out.push((Some(kind), der));
    }
    if let Some(der) = encrypted_section(pem, path)? {
        out.push((None, der));
    }
    Ok(out)
}

/// The `ENCRYPTED PRIVATE KEY` section of `pem`, if it has one.
fn encrypted_section(pem: &[u8], path: &str) -> Result<Option<Vec<u8>>, TlsError> {
    let begin = format!("-----BEGIN {}-----", EncryptedPrivateKeyInfo::PEM_LABEL);
    let end = format!("-----END {}-----", EncryptedPrivateKeyInfo::PEM_LABEL);
    let Some(start) = find(pem, begin.as_bytes()) else {
        return Ok(None);
    };
    let stop = find(&pem[start..], end.as_bytes())
        .map(|at| start + at + end.len())
        .ok_or_else(|| TlsError(format!("{path}: the encrypted private key has no END line")))?;
    let (_, der) = pkcs8::der::pem::decode_vec(&pem[start..stop]).map_err(|err| {
        TlsError(format!(
            "{path}: the encrypted private key is not valid PEM: {err}"
        ))
    })?;
    Ok(Some(der))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The certificate chain in `path`, leaf first.
pub fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_cert_list(path, "certificate file")
}

/// The certificates of a CA bundle.
pub fn read_ca_bundle(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_cert_list(path, "CA bundle")
}

fn read_cert_list(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, what)?;
    let certs: Vec<_> = sections(&pem, path)?
        .into_iter()
        .filter_map(|(kind, der)| (kind == Some(SectionKind::Certificate)).then(|| der.into()))
        .collect();
    if certs.is_empty() {
        return Err(TlsError(format!(
            "no PEM certificate found in {what} {path}"
        )));
    }
    Ok(certs)
}

/// The private key in `path` (decrypted with `password` when it is encrypted).
pub fn read_key(path: &str, password: Option<&str>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, "key file")?;
    if find(&pem, b"Proc-Type: 4,ENCRYPTED").is_some() {
        return Err(TlsError(format!(
            "{path} holds a key in OpenSSL's legacy encrypted format, which is not supported; \
             convert it with `openssl pkcs8 -topk8 -v2 aes256` (read: {KEY_FORMATS})"
        )));
    }
    for (kind, der) in sections(&pem, path)? {
        let key = match kind {
            Some(SectionKind::PrivateKey) => PrivatePkcs8KeyDer::from(der).into(),
            Some(SectionKind::RsaPrivateKey) => PrivatePkcs1KeyDer::from(der).into(),
            Some(SectionKind::EcPrivateKey) => PrivateSec1KeyDer::from(der).into(),
            None => decrypt(&der, path, password)?,
            Some(_) => continue,
        };
        return Ok(key);
    }
    Err(TlsError(format!(
        "no private key found in {path} (read: {KEY_FORMATS})"
    )))
}

fn decrypt(
    der: &[u8],
    path: &str,
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let Some(password) = password else {
        return Err(TlsError(format!(
            "the private key in {path} is encrypted: give its password (ssl_keyfile_password)"
        )));
    };
    let info = EncryptedPrivateKeyInfo::try_from(der).map_err(|err| {
        TlsError(format!(
            "{path}: the encrypted private key is malformed: {err}"
        ))
    })?;
    match info.decrypt(password) {
        Ok(doc) => Ok(PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec()).into()),
        Err(pkcs8::Error::EncryptedPrivateKey(
            err @ (pkcs8::pkcs5::Error::UnsupportedAlgorithm { .. }
            | pkcs8::pkcs5::Error::NoPbes1CryptSupport),
        )) => Err(TlsError(format!(
            "{path}: the key's encryption is not supported ({err}); \
             re-encrypt it with `openssl pkcs8 -topk8 -v2 aes256`"
        ))),
        Err(_) => Err(TlsError(format!(
            "cannot decrypt the private key in {path}: wrong password"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testcerts::{encrypted_pkcs8_pem, Minted, TempFiles};

    #[test]
    fn reads_the_chain_and_every_plain_key_format() {
        let minted = Minted::new();
        let files = TempFiles::new();
        let chain = files.write("chain.pem", &minted.server_chain_pem());
        assert_eq!(read_certs(&chain).map(|c| c.len()), Ok(2));
        let pkcs8 = files.write("key.pem", &minted.server_key_pem());
        assert!(matches!(
            read_key(&pkcs8, None),
            Ok(PrivateKeyDer::Pkcs8(_))
        ));
        let sec1 = files.write("sec1.pem", &minted.server_key_sec1_pem());
        assert!(matches!(read_key(&sec1, None), Ok(PrivateKeyDer::Sec1(_))));
        let both = files.write(
            "both.pem",
            &(minted.server_chain_pem() + &minted.server_key_pem()),
        );
        assert!(read_key(&both, None).is_ok());
        assert_eq!(read_certs(&both).map(|c| c.len()), Ok(2));
    }

    #[test]
    fn encrypted_pkcs8_needs_the_right_password() {
        let minted = Minted::new();
        let files = TempFiles::new();
        let path = files.write("enc.pem", &encrypted_pkcs8_pem(&minted, "s3cret"));
        let key = read_key(&path, Some("s3cret"));
        assert!(matches!(key, Ok(PrivateKeyDer::Pkcs8(_))));
        let plain = minted.server_key_der();
        assert!(matches!(key, Ok(PrivateKeyDer::Pkcs8(k)) if k.secret_pkcs8_der() == plain));
        let wrong = read_key(&path, Some("guess")).map(drop);
        assert!(
            wrong
                .as_ref()
                .is_err_and(|e| e.0.contains("wrong password")),
            "{wrong:?}"
        );
        let missing = read_key(&path, None).map(drop);
        assert!(missing.is_err_and(|e| e.0.contains("give its password")));
    }

    #[test]
    fn errors_name_the_file_and_never_the_secret() {
        let files = TempFiles::new();
        let nothing = files.write("empty.pem", "hello\n");
        let err = read_key(&nothing, Some("hunter2")).map(drop);
        assert!(err
            .as_ref()
            .is_err_and(|e| e.0.contains("no private key found")
                && e.0.contains(&nothing)
                && !e.0.contains("hunter2")));
        assert!(read_certs(&nothing).is_err_and(|e| e.0.contains("no PEM certificate")));
        let absent = format!("{}/absent.pem", files.dir());
        assert!(read_certs(&absent).is_err_and(|e| e.0.starts_with("cannot read certificate file")));
        let legacy = files.write(
            "legacy.pem",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        );
        assert!(read_key(&legacy, Some("x")).is_err_and(|e| e.0.contains("legacy encrypted")));
    }
}
