//! The agent channel's TLS: the operator and a LoadTest's runners share one
//! certificate and key (made per LoadTest, kept in its Secret) and each side
//! accepts exactly that certificate from the other. The agent serves with it
//! and requires it as the client certificate (`PinnedClient`), the operator
//! presents it and requires it from the agent (`PinnedServer`): only the
//! holder of that LoadTest's key can even complete a handshake, and the
//! bearer token stays required on top.
//!
//! Pinning is by DER equality of the end-entity certificate. Names and dates
//! are not checked: pod IPs are unknown when the certificate is made, and a
//! certificate that lives and dies with one LoadTest's Secret must not start
//! failing because a node's clock is off. The handshake signature is still
//! verified with the pinned certificate's key, so presenting the certificate
//! without the key gets nowhere.

use std::{fmt, path::Path, sync::Arc, time::SystemTime};

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, Error as TlsError,
    OtherError, ServerConfig, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature},
    server::danger::{ClientCertVerified, ClientCertVerifier},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::{certs_from_pem, key_from_pem, provider, read_certs, read_key};

/// A freshly made certificate and key, as PEM (what goes into the Secret).
/// Its Debug leaves the key out.
#[derive(Clone)]
pub struct PinnedPem {
    pub cert: String,
    pub key: String,
}

impl fmt::Debug for PinnedPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedPem")
            .field("cert", &self.cert)
            .field("key", &"[secret key elided]")
            .finish()
    }
}

/// Makes a self-signed ECDSA P-256 certificate named `common_name`, valid
/// from `not_before` to `not_after` (informational: pinning ignores dates).
pub fn generate(
    common_name: &str,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<PinnedPem, String> {
    let fail = |e: rcgen::Error| format!("cannot make the agent certificate: {e}");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok(PinnedPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The one certificate both ends pin, and its key. Its Debug leaves the key
/// out (rustls-pki-types elides it too).
#[derive(Clone)]
pub struct Identity {
    cert: CertificateDer<'static>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("cert_bytes", &self.cert.len())
            .field("key", &"[secret key elided]")
            .finish()
    }
}

impl Identity {
    /// From PEM text: exactly one certificate, and its key. Errors say which
    /// of the two is wrong, never what they hold.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<Identity, String> {
        let certs = certs_from_pem(cert).map_err(|m| format!("certificate: {m}"))?;
        let key = key_from_pem(key).map_err(|m| format!("key: {m}"))?;
        Identity::new(certs, key, "the certificate")
    }

    /// From two PEM files (a mounted Secret's `tls.crt` and `tls.key`).
    pub fn read(cert: &Path, key: &Path) -> Result<Identity, String> {
        let certs = read_certs(cert)?;
        let key = read_key(key)?;
        Identity::new(certs, key, &cert.display().to_string())
    }

    fn new(
        mut certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        what: &str,
    ) -> Result<Identity, String> {
        if certs.len() != 1 {
            return Err(format!(
                "{what}: holds {} certificates; the agent channel pins exactly one",
                certs.len()
            ));
        }
        let id = Identity {
            cert: certs.remove(0),
            key: Arc::new(key),
        };
        // Builds one config now, so a key that is not the certificate's is
        // refused here rather than at the first handshake.
        id.client_config()?;
        Ok(id)
    }

    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The agent's side: serves this certificate and requires exactly it
    /// from the client. TLS 1.3 only: both ends are ours.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        let verifier = Arc::new(PinnedClient::new(self.cert.clone()));
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_setup)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())
            .map_err(tls_setup)?;
        Ok(Arc::new(config))
    }

    /// The operator's side: requires exactly this certificate from the
    /// agent, whatever its address, and presents it as the client
    /// certificate.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let verifier = Arc::new(PinnedServer::new(self.cert.clone()));
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_setup)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(vec![self.cert.clone()], self.key.clone_key())
            .map_err(tls_setup)
    }
}

fn tls_setup(e: TlsError) -> String {
    match e {
        TlsError::InconsistentKeys(_) => "the key is not the certificate's key".into(),
        e => format!("cannot set up TLS with the certificate: {e}"),
    }
}

/// The error a peer with another certificate gets (ours, in our logs; the
/// peer sees an alert). rustls shows it by Debug, so both say the same.
struct NotPinned(&'static str);

impl fmt::Debug for NotPinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for NotPinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} presented a certificate other than this LoadTest's agent certificate",
            self.0
        )
    }
}

impl std::error::Error for NotPinned {}

/// The shared half of both verifiers: the pinned certificate and the
/// provider's signature algorithms.
#[derive(Debug)]
struct Pin {
    cert: CertificateDer<'static>,
    algs: WebPkiSupportedAlgorithms,
}

impl Pin {
    fn new(cert: CertificateDer<'static>) -> Pin {
        Pin {
            cert,
            algs: provider().signature_verification_algorithms,
        }
    }

    fn check(&self, end_entity: &CertificateDer<'_>, peer: &'static str) -> Result<(), TlsError> {
        // A chain is not expected: the pinned certificate is self-signed.
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(())
        } else {
            Err(TlsError::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(NotPinned(peer))),
            )))
        }
    }

    /// The handshake is signed with the key of the certificate already
    /// accepted; checked again so the signature can only be the pinned one's.
    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        peer: &'static str,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.check(cert, peer)?;
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        peer: &'static str,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.check(cert, peer)?;
        verify_tls13_signature(message, cert, dss, &self.algs)
    }
}

/// The operator's verifier of an agent: exactly the pinned certificate.
#[derive(Debug)]
pub struct PinnedServer(Pin);

impl PinnedServer {
    pub fn new(cert: CertificateDer<'static>) -> PinnedServer {
        PinnedServer(Pin::new(cert))
    }
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        self.0.check(end_entity, "agent")?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.tls12(message, cert, dss, "agent")
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.tls13(message, cert, dss, "agent")
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.algs.supported_schemes()
    }
}

/// The agent's verifier of a client: a certificate is required, and it must
/// be exactly the pinned one.
#[derive(Debug)]
pub struct PinnedClient(Pin);

impl PinnedClient {
    pub fn new(cert: CertificateDer<'static>) -> PinnedClient {
        PinnedClient(Pin::new(cert))
    }
}

impl ClientCertVerifier for PinnedClient {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        self.0.check(end_entity, "client")?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.tls12(message, cert, dss, "client")
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.tls13(message, cert, dss, "client")
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
