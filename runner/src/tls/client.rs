//! rustls client configs for the engine (`target.tls`).
//!
//! One `Arc<ClientConfig>` per run, shared by every connection: the roots,
//! the client certificate and the session cache are built once, and a
//! connection after the first resumes its session (rustls's in-memory
//! client cache lives in the config) instead of paying a full handshake.
//!
//! The default is as strict as a browser: the bundled web PKI roots (the
//! runner image has no system store) and the host name checked.
//! `insecureSkipVerify` accepts any certificate but still checks the
//! handshake's signatures, so the connection is at least with the holder
//! of the certificate's key.

use std::{io, path::Path, sync::Arc};

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};

use crate::{
    plan::{CaMode, HttpVersion, TargetTls},
    snapshot::ErrorKind,
};

/// What connecting to an https:// target needs, made once per run.
#[derive(Clone, Debug)]
pub struct TlsTarget {
    pub config: Arc<ClientConfig>,
    /// Sent as SNI (unless an IP address) and checked against the
    /// certificate.
    pub server_name: ServerName<'static>,
    /// `insecureSkipVerify` was set: the summary says so.
    pub insecure: bool,
}

/// The ALPN protocol ids, as offered for `target.http`.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The protocols offered by ALPN for `http`: HTTP/1.1 only, h2 only, or
/// both (h2 preferred) for "auto".
pub fn alpn_for(http: HttpVersion) -> Vec<Vec<u8>> {
    match http {
        HttpVersion::Http1 => vec![ALPN_HTTP1.to_vec()],
        HttpVersion::Http2 => vec![ALPN_H2.to_vec()],
        HttpVersion::Auto => vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()],
    }
}

/// Checks the fields of `target.tls` that need no file, naming the field
/// (`prefix` is `spec.` in a LoadTest): usable by the operator, which has
/// the files only in the runner pods. `Err((field, message))`.
pub fn check(tls: &TargetTls, prefix: &str) -> Result<(), (String, String)> {
    let f = |n: &str| format!("{prefix}target.tls.{n}");
    if let Some(v) = &tls.min_version
        && !matches!(v.as_str(), "1.2" | "1.3")
    {
        return Err((
            f("minVersion"),
            format!("{v:?} is not a TLS version: \"1.2\" or \"1.3\""),
        ));
    }
    let cert = tls.cert_file.is_some() || tls.cert_from.is_some();
    let key = tls.key_file.is_some() || tls.key_from.is_some();
    if cert && !key {
        return Err((f("keyFile"), "is missing: certFile needs its key".into()));
    }
    if key && !cert {
        return Err((
            f("certFile"),
            "is missing: keyFile is the key of a client certificate".into(),
        ));
    }
    if tls.ca_mode == CaMode::Replace && tls.ca_file.is_none() && tls.ca_from.is_none() {
        return Err((
            f("caMode"),
            "replace needs caFile: without it no certificate would be trusted".into(),
        ));
    }
    if let Some(n) = &tls.server_name
        && ServerName::try_from(n.as_str()).is_err()
    {
        return Err((
            f("serverName"),
            format!("{n:?} is not a DNS name or an IP address"),
        ));
    }
    Ok(())
}

/// Builds the run's config from `tls` (absent: all defaults) for a target
/// whose URL host is `host`; files are relative to `base_dir`. Errors are
/// `(field, message)`; they name files, never their contents.
pub fn build(
    tls: Option<&TargetTls>,
    host: &str,
    http: HttpVersion,
    base_dir: &Path,
    prefix: &str,
) -> Result<TlsTarget, (String, String)> {
    let default = TargetTls::default();
    let tls = tls.unwrap_or(&default);
    check(tls, prefix)?;
    let f = |n: &str| format!("{prefix}target.tls.{n}");
    for (set, name) in [
        (tls.ca_from.is_some(), "caFrom"),
        (tls.cert_from.is_some(), "certFrom"),
        (tls.key_from.is_some(), "keyFrom"),
    ] {
        if set {
            return Err((
                f(name),
                "is read by the operator; locally use caFile/certFile/keyFile".into(),
            ));
        }
    }
    let provider = super::provider();
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version.as_deref() {
        Some("1.3") => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| (f("minVersion"), e.to_string()))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        if tls.ca_mode == CaMode::Add {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if let Some(file) = &tls.ca_file {
            let certs = super::read_certs(&base_dir.join(file)).map_err(|m| (f("caFile"), m))?;
            for c in certs {
                roots.add(c).map_err(|_| {
                    (
                        f("caFile"),
                        format!("{file}: holds a certificate that is not a valid CA"),
                    )
                })?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = super::read_certs(&base_dir.join(cert)).map_err(|m| (f("certFile"), m))?;
            let key = super::read_key(&base_dir.join(key)).map_err(|m| (f("keyFile"), m))?;
            // rustls's message names no key material; ours names the files.
            builder.with_client_auth_cert(chain, key).map_err(|_| {
                (
                    f("keyFile"),
                    "is not the private key of certFile (or a key type rustls does not support)"
                        .to_string(),
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn_for(http);
    let name = tls.server_name.as_deref().unwrap_or(host);
    // A bracketed IPv6 host from the URL.
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(name.to_string()).map_err(|_| {
        (
            f("serverName"),
            format!("{name:?} is not a DNS name or an IP address"),
        )
    })?;
    Ok(TlsTarget {
        config: Arc::new(config),
        server_name,
        insecure: tls.insecure_skip_verify,
    })
}

/// The warning for a run that does not verify its target (start and summary).
pub const INSECURE_WARNING: &str =
    "target.tls.insecureSkipVerify: the target's certificate was not verified";

/// The error kind of a failed TLS handshake or TLS read/write, from the
/// rustls error inside `e`; `None` when it is not a TLS error.
pub fn classify(e: &io::Error) -> Option<ErrorKind> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(kind_of(tls))
}

pub fn kind_of(e: &rustls::Error) -> ErrorKind {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => ErrorKind::TlsUnknownCa,
            C::NotValidForName | C::NotValidForNameContext { .. } => ErrorKind::TlsNameMismatch,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => ErrorKind::TlsExpired,
            _ => ErrorKind::Tls,
        },
        rustls::Error::AlertReceived(_) => ErrorKind::TlsRefused,
        _ => ErrorKind::Tls,
    }
}

/// `insecureSkipVerify` (and the agent probe, which may not know the
/// agent's certificate): any certificate, but handshake signatures are
/// still checked with the provider's algorithms.
#[derive(Debug)]
pub struct AnyCert(Arc<CryptoProvider>);

impl AnyCert {
    pub fn new(provider: Arc<CryptoProvider>) -> AnyCert {
        AnyCert(provider)
    }
}

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
