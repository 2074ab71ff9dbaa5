//! TLS for a remote-write receiver, for the CLI (`--out-prometheus-ca`) and
//! the operator (`spec.output.prometheusRemoteWrite.tls`, the chart's
//! default) alike: a private CA or the bundled web PKI roots, a client
//! certificate, and the name the receiver's certificate is checked for when
//! it is not the URL's host (reqwest connects to the URL's host; the check
//! is the verifier's).

use std::sync::Arc;

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
};

use crate::tls::{certs_from_pem, key_from_pem, provider};

/// PEM bytes and where they came from (a file, a Secret's key): messages
/// name `at`, never the bytes.
#[derive(Clone, Copy)]
pub struct Pem<'a> {
    pub at: &'a str,
    pub bytes: &'a [u8],
}

/// Trusts `ca` only (a private receiver's), else the bundled web PKI roots;
/// presents `client` (certificate, key) for mutual TLS; checks the
/// receiver's certificate for `server_name` instead of the URL's host when
/// given. Errors name where the faulty part came from, never a key.
pub fn client_config(
    ca: Option<Pem<'_>>,
    client: Option<(Pem<'_>, Pem<'_>)>,
    server_name: Option<&str>,
) -> Result<ClientConfig, String> {
    let verifier = verifier(ca, server_name)?;
    // `dangerous` is only rustls's door to a custom verifier: `Named` does
    // the full web PKI verification, for another name.
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match client {
        Some((cert, key)) => {
            let chain = certs_from_pem(cert.bytes).map_err(|e| format!("{} {e}", cert.at))?;
            let der = key_from_pem(key.bytes).map_err(|e| format!("{} {e}", key.at))?;
            // rustls's message names no key material; ours names the keys.
            builder.with_client_auth_cert(chain, der).map_err(|_| {
                format!(
                    "{} is not the private key of the certificate of {} (or not a key rustls can use: RSA, ECDSA P-256/P-384, Ed25519)",
                    key.at, cert.at
                )
            })?
        }
        None => builder.with_no_client_auth(),
    })
}

/// How the receiver's certificate is verified: against `ca` only, else the
/// web PKI roots; for `server_name` when given.
pub fn verifier(
    ca: Option<Pem<'_>>,
    server_name: Option<&str>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            for c in certs_from_pem(ca.bytes).map_err(|e| format!("{} {e}", ca.at))? {
                roots
                    .add(c)
                    .map_err(|_| format!("{} holds a certificate that is not a valid CA", ca.at))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| format!("the receiver's trust roots: {e}"))?;
    Ok(match server_name {
        Some(n) => Arc::new(Named {
            inner: webpki,
            name: ServerName::try_from(n.to_string())
                .map_err(|_| format!("{n:?} is not a DNS name or an IP address"))?,
        }),
        None => webpki,
    })
}

/// The web PKI verification of the receiver's certificate for `name`
/// rather than the name the connection was made to.
#[derive(Debug)]
struct Named {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for Named {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
