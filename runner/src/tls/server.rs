//! rustls server configs for `serve`, and the throwaway certificates it (and
//! tests) make: a CA, a server certificate it signed, and a client
//! certificate it signed for mTLS demos.
//!
//! Errors name what was wrong, never key material: rustls and rcgen errors
//! are replaced by fixed messages where they could quote input.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN protocol ids, in the server's order of preference.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// A CA made in process, a server certificate and a client certificate it
/// signed, all PEM. Clients trust `ca_pem`; the server presents `cert_pem`
/// with `key_pem`; an mTLS client presents `client_cert_pem` with
/// `client_key_pem`. The CA's own key is dropped once both are signed, so
/// nothing else can ever chain to this CA.
#[derive(Clone)]
pub struct SelfSigned {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl std::fmt::Debug for SelfSigned {
    // The keys are secrets even in a test's panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("client_cert_pem", &self.client_cert_pem)
            .field("client_key_pem", &"<redacted>")
            .finish()
    }
}

/// Makes a CA, a server certificate for `names` (each an IP address or a DNS
/// name) and a client certificate ("barrage-client"), ECDSA P-256.
pub fn self_signed(names: &[String]) -> Result<SelfSigned, String> {
    if names.is_empty() {
        return Err("a server certificate needs at least one name".into());
    }
    let fail = |what: &'static str| move |e: rcgen::Error| format!("cannot make the {what}: {e}");

    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // A name of its own: a client trusting another such CA then reports an
    // unknown issuer, not a bad signature from a namesake.
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("barrage serve CA {:016x}", fastrand::u64(..)),
    );
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(fail("CA key"))?;
    let ca_cert = ca.self_signed(&ca_key).map_err(fail("CA certificate"))?;
    let issuer = Issuer::new(ca, ca_key);

    // rcgen reads each name as an IP address if it parses as one.
    let mut server = CertificateParams::new(names.to_vec())
        .map_err(|_| format!("not a valid DNS name or IP address among {names:?}"))?;
    server
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let server_key = KeyPair::generate().map_err(fail("server key"))?;
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .map_err(fail("server certificate"))?;

    let mut client = CertificateParams::default();
    client
        .distinguished_name
        .push(DnType::CommonName, "barrage-client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let client_key = KeyPair::generate().map_err(fail("client key"))?;
    let client_cert = client
        .signed_by(&client_key, &issuer)
        .map_err(fail("client certificate"))?;

    Ok(SelfSigned {
        ca_pem: ca_cert.pem(),
        cert_pem: server_cert.pem(),
        key_pem: server_key.serialize_pem(),
        client_cert_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
    })
}

/// A server config presenting `chain` (leaf first) with `key`, offering
/// `alpn` in that order. With `client_ca`, clients must present a
/// certificate chaining to one of those certificates, or the handshake is
/// refused. Stateless session tickets, so resumption costs no server memory
/// however many clients connect.
pub fn config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<&[CertificateDer<'static>]>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, String> {
    let provider = super::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(cas) => {
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots
                    .add(ca.clone())
                    .map_err(|e| format!("the client CA is not a usable CA certificate: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("the client CA: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // rustls' errors here describe the mismatch, never the key's bytes.
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not make a usable pair: {e}"))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| format!("session tickets: {e}"))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{certs_from_pem, key_from_pem};

    #[test]
    fn a_self_signed_set_makes_a_server_config_with_and_without_client_auth() {
        let s = self_signed(&["127.0.0.1".into(), "localhost".into()]).unwrap();
        let chain = certs_from_pem(s.cert_pem.as_bytes()).unwrap();
        let ca = certs_from_pem(s.ca_pem.as_bytes()).unwrap();
        let key = || key_from_pem(s.key_pem.as_bytes()).unwrap();
        let c = config(chain.clone(), key(), None, &[ALPN_H2, ALPN_HTTP11]).unwrap();
        assert_eq!(c.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(config(chain, key(), Some(&ca), &[]).is_ok());
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_without_quoting_it() {
        let a = self_signed(&["localhost".into()]).unwrap();
        let b = self_signed(&["localhost".into()]).unwrap();
        let chain = certs_from_pem(a.cert_pem.as_bytes()).unwrap();
        let key = key_from_pem(b.key_pem.as_bytes()).unwrap();
        let e = config(chain, key, None, &[]).unwrap_err();
        assert!(e.contains("usable pair"), "{e}");
        let body = b.key_pem.lines().nth(1).unwrap();
        assert!(!e.contains(body), "{e}");
        assert!(!format!("{b:?}").contains(body), "Debug shows no key");
    }

    #[test]
    fn names_must_be_valid() {
        assert!(self_signed(&[]).is_err());
        assert!(self_signed(&["b\u{e9}d.example".into()]).is_err());
    }
}
