//! TLS for every side of the runner: the engine's client connections to an
//! https:// target (`client`), and the servers that `serve` and the agent
//! run (`server`). One stack, rustls with ring, as kube already uses.
//!
//! PEM files are read here, once, before any load is sent. Errors name the
//! file and what was wrong with it, never its contents: a key file is a
//! secret, and even a certificate file may be one by mistake.

pub mod client;
pub mod pinned;
pub mod server;

use std::{path::Path, sync::Arc};

use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// The crypto provider every config is built with, passed explicitly so no
/// process-wide default needs installing (the operator links the same one).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file (a bundle or a chain); at least one.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    certs_from_pem(&bytes).map_err(|m| format!("{}: {m}", path.display()))
}

pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "is not a valid PEM certificate file".to_string())?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    key_from_pem(&bytes).map_err(|m| format!("{}: {m}", path.display()))
}

pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    // The parser's own error may quote what it read: not repeated.
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|_| "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_errors_never_repeat_the_contents() {
        let secret = b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==!!\n-----END PRIVATE KEY-----\n";
        let e = key_from_pem(secret).unwrap_err();
        assert!(!e.contains("c2VjcmV0"), "{e}");
        let e = certs_from_pem(b"not pem at all").unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn a_generated_pair_reads_back() {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        assert_eq!(certs_from_pem(c.cert.pem().as_bytes()).unwrap().len(), 1);
        assert!(key_from_pem(c.signing_key.serialize_pem().as_bytes()).is_ok());
    }
}
