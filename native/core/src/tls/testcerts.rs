//! Certificates minted for the unit tests: a root, an intermediate that signs the server's
//! certificate, and a client CA with one client.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use pkcs8::der::pem::LineEnding;
use pkcs8::pkcs5::pbes2;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};

pub(crate) struct Minted {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
    server: rcgen::Certificate,
    server_key: KeyPair,
    pub client_ca: CertifiedIssuer<'static, KeyPair>,
    pub client: rcgen::Certificate,
    pub client_key: KeyPair,
}

fn ca(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params
}

impl Minted {
    pub(crate) fn new() -> Self {
        let key = || KeyPair::generate().expect("key");
        let root = CertifiedIssuer::self_signed(ca("test root"), key()).expect("root");
        let intermediate =
            CertifiedIssuer::signed_by(ca("test intermediate"), key(), &root).expect("int");
        let server_key = key();
        let server = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&server_key, &intermediate)
            .expect("server");
        let client_ca = CertifiedIssuer::self_signed(ca("client ca"), key()).expect("client ca");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CountryName, "NZ");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme, Inc.");
        params.distinguished_name.push(DnType::CommonName, "alice");
        let client_key = key();
        let client = params.signed_by(&client_key, &client_ca).expect("client");
        Self {
            root,
            intermediate,
            server,
            server_key,
            client_ca,
            client,
            client_key,
        }
    }

    /// Leaf, then the intermediate that signed it.
    pub(crate) fn server_chain_pem(&self) -> String {
        self.server.pem() + &self.intermediate.pem()
    }

    pub(crate) fn server_leaf_der(&self) -> Vec<u8> {
        self.server.der().to_vec()
    }

    pub(crate) fn intermediate_pem(&self) -> String {
        self.intermediate.pem()
    }

    pub(crate) fn root_pem(&self) -> String {
        self.root.pem()
    }

    pub(crate) fn server_key_pem(&self) -> String {
        self.server_key.serialize_pem()
    }

    pub(crate) fn server_key_der(&self) -> Vec<u8> {
        self.server_key.serialize_der()
    }

    /// The server's key as SEC1 (`EC PRIVATE KEY`), cut out of its PKCS#8 form.
    pub(crate) fn server_key_sec1_pem(&self) -> String {
        let der = self.server_key.serialize_der();
        let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).expect("pkcs8");
        pkcs8::der::pem::encode_string("EC PRIVATE KEY", LineEnding::LF, info.private_key)
            .expect("pem")
    }

    /// Another key, which matches no certificate here.
    pub(crate) fn stranger_key_pem() -> String {
        KeyPair::generate().expect("key").serialize_pem()
    }
}

/// The server's key encrypted with `password` (PBES2, PBKDF2-SHA256, AES-256-CBC).
pub(crate) fn encrypted_pkcs8_pem(minted: &Minted, password: &str) -> String {
    let der = minted.server_key_der();
    let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).expect("pkcs8");
    let params =
        pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, b"saltsalt", &[7; 16]).expect("params");
    let doc = info.encrypt_with_params(params, password).expect("encrypt");
    doc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .expect("pem")
        .to_string()
}

/// A directory of files for one test, removed when it ends.
pub(crate) struct TempFiles(PathBuf);

impl TempFiles {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ruvicorn-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    pub(crate) fn dir(&self) -> String {
        self.0.display().to_string()
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
