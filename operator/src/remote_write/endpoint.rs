//! Pure: resolved credentials and TLS material into the pusher's
//! `Endpoint`. The values arrive with where they came from (a Secret's key,
//! a file), which is all a message ever says of them.

use std::{collections::BTreeMap, sync::Arc};

use barrage_runner::{
    remote_write::Endpoint,
    tls::{certs_from_pem, key_from_pem, provider},
};
use base64::Engine;
use reqwest::header::HeaderValue;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
};

use super::spec::PUSH_TIMEOUT;

/// A value read from a Secret, a ConfigMap or a file; `at` says where
/// (e.g. `spec.output.prometheusRemoteWrite.bearerTokenFrom: secret "t"
/// key "token"`), for messages. Its `Debug` shows `at` only.
pub struct Value {
    pub at: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Value({})", self.at)
    }
}

#[derive(Debug)]
pub enum Auth {
    None,
    Basic { username: String, password: Value },
    Bearer(Value),
}

/// What `tls` referenced, read; `server_name` as given.
#[derive(Debug, Default)]
pub struct TlsMaterial {
    pub ca: Option<Value>,
    pub cert: Option<Value>,
    pub key: Option<Value>,
    pub server_name: Option<String>,
}

/// The endpoint: `headers` (already checked) plus the `Authorization`
/// header of `auth`, and a rustls config when `tls` asks for more than the
/// web PKI roots. The error names where the bad value came from.
pub fn endpoint(
    url: &str,
    headers: &BTreeMap<String, String>,
    auth: Auth,
    tls: Option<TlsMaterial>,
) -> Result<Endpoint, String> {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(value) = authorization(auth)? {
        hs.push(("Authorization".into(), value));
    }
    let tls = match tls {
        Some(m) if m.ca.is_some() || m.cert.is_some() || m.server_name.is_some() => {
            Some(client_config(&m)?)
        }
        _ => None,
    };
    Ok(Endpoint {
        url: url.to_string(),
        headers: hs,
        tls,
        timeout: PUSH_TIMEOUT,
    })
}

fn authorization(auth: Auth) -> Result<Option<String>, String> {
    let value = match auth {
        Auth::None => return Ok(None),
        Auth::Bearer(t) => {
            // As Prometheus reads its own token files: surrounding space is
            // the file's, not the token's.
            let token = text(&t)?.trim().to_string();
            if token.is_empty() {
                return Err(format!("{} is empty", t.at));
            }
            header_value(&t, format!("Bearer {token}"))?
        }
        Auth::Basic { username, password } => {
            // A trailing newline is the file's (`kubectl create secret
            // --from-file`); any other character is the password's.
            let p = text(&password)?.trim_end_matches(['\n', '\r']).to_string();
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{p}"));
            header_value(&password, format!("Basic {encoded}"))?
        }
    };
    Ok(Some(value))
}

fn text(v: &Value) -> Result<String, String> {
    String::from_utf8(v.bytes.clone()).map_err(|_| format!("{} is not UTF-8 text", v.at))
}

fn header_value(v: &Value, value: String) -> Result<String, String> {
    match HeaderValue::from_str(&value) {
        Ok(_) => Ok(value),
        Err(_) => Err(format!(
            "{} holds characters an HTTP header cannot carry",
            v.at
        )),
    }
}

/// Trusts the CA of `ca` only (a private receiver's), else the bundled web
/// PKI roots; presents the client certificate; checks the receiver's
/// certificate against `server_name` instead of the URL's host when given.
fn client_config(m: &TlsMaterial) -> Result<Arc<ClientConfig>, String> {
    let verifier = verifier(m.ca.as_ref(), m.server_name.as_deref())?;
    // `dangerous` is only rustls's door to a custom verifier: `Named` does
    // the full web PKI verification, for another name.
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&m.cert, &m.key) {
        (Some(cert), Some(key)) => {
            let chain = certs_from_pem(&cert.bytes).map_err(|e| format!("{} {e}", cert.at))?;
            let der = key_from_pem(&key.bytes).map_err(|e| format!("{} {e}", key.at))?;
            // rustls's message names no key material; ours names the keys.
            builder.with_client_auth_cert(chain, der).map_err(|_| {
                format!(
                    "{} is not the private key of the certificate of {} (or not a key rustls can use: RSA, ECDSA P-256/P-384, Ed25519)",
                    key.at, cert.at
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// How the receiver's certificate is verified: against the CA of `ca`
/// only, else the web PKI roots; for `server_name` when given.
pub(super) fn verifier(
    ca: Option<&Value>,
    server_name: Option<&str>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            for c in certs_from_pem(&ca.bytes).map_err(|e| format!("{} {e}", ca.at))? {
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
