//! `serve` over TLS: which certificate it presents, whether it asks for a
//! client's, and which HTTP versions it offers by ALPN. A TLS port serves
//! only TLS.

use std::{
    io::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{
    error::{Error, Result},
    tls::{self, server::SelfSigned},
};

/// The HTTP versions a port speaks. Cleartext: HTTP/1.1 and h2c by prior
/// knowledge, told apart by the connection's first bytes. TLS: offered by
/// ALPN (h2 first); a client that offers no ALPN is told apart the same way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpVersions {
    #[default]
    Both,
    Http1Only,
    Http2Only,
}

impl HttpVersions {
    pub(crate) fn alpn(self) -> &'static [&'static [u8]] {
        use tls::server::{ALPN_H2, ALPN_HTTP11};
        match self {
            HttpVersions::Both => &[ALPN_H2, ALPN_HTTP11],
            HttpVersions::Http1Only => &[ALPN_HTTP11],
            HttpVersions::Http2Only => &[ALPN_H2],
        }
    }
}

/// What a TLS port presents and asks for.
pub struct TlsOptions {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Clients must present a certificate chaining to one of these; without
    /// one the handshake is refused. None: no client certificate is asked.
    pub client_ca: Option<Vec<CertificateDer<'static>>>,
}

impl Clone for TlsOptions {
    fn clone(&self) -> Self {
        TlsOptions {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            client_ca: self.client_ca.clone(),
        }
    }
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("chain", &self.chain.len())
            .field("key", &"<redacted>")
            .field("client_ca", &self.client_ca.as_ref().map(Vec::len))
            .finish()
    }
}

impl TlsOptions {
    /// `--tls-cert FILE --tls-key FILE` (PEM).
    pub fn from_files(cert: &Path, key: &Path) -> Result<TlsOptions> {
        Ok(TlsOptions {
            chain: tls::read_certs(cert).map_err(|m| Error::invalid("--tls-cert", m))?,
            key: tls::read_key(key).map_err(|m| Error::invalid("--tls-key", m))?,
            client_ca: None,
        })
    }

    /// The server certificate and key of a `tls::server::self_signed` set.
    pub fn from_self_signed(s: &SelfSigned) -> Result<TlsOptions> {
        let bad = |m| Error::Other(format!("the generated certificate: {m}"));
        Ok(TlsOptions {
            chain: tls::certs_from_pem(s.cert_pem.as_bytes()).map_err(bad)?,
            key: tls::key_from_pem(s.key_pem.as_bytes()).map_err(bad)?,
            client_ca: None,
        })
    }

    /// Requires client certificates chaining to `ca` (PEM, one or more).
    pub fn require_client_cert_pem(mut self, ca: &str) -> Result<TlsOptions> {
        let ca =
            tls::certs_from_pem(ca.as_bytes()).map_err(|m| Error::invalid("--tls-client-ca", m))?;
        self.client_ca = Some(ca);
        Ok(self)
    }

    /// `--tls-client-ca FILE`.
    pub fn require_client_cert_file(mut self, ca: &Path) -> Result<TlsOptions> {
        let ca = tls::read_certs(ca).map_err(|m| Error::invalid("--tls-client-ca", m))?;
        self.client_ca = Some(ca);
        Ok(self)
    }

    pub(crate) fn acceptor(&self, versions: HttpVersions) -> Result<tokio_rustls::TlsAcceptor> {
        let config = tls::server::config(
            self.chain.clone(),
            self.key.clone_key(),
            self.client_ca.as_deref(),
            versions.alpn(),
        )
        .map_err(|m| Error::invalid("--tls-cert", m))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// The names a self-signed server certificate is made for: the listen
/// address's IP (loopback for both families if it listens on all
/// addresses), `localhost`, and `extra` (`--tls-name`).
pub fn self_signed_names(ip: IpAddr, extra: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    if ip.is_unspecified() {
        names.extend(["127.0.0.1".to_string(), "::1".to_string()]);
    } else {
        names.push(ip.to_string());
    }
    names.push("localhost".into());
    for n in extra {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

/// What `--tls-self-signed DIR` writes for clients: `ca.pem` (what clients
/// trust), `client.pem` and `client-key.pem` (an mTLS client's certificate
/// and key). The server's own key is never written.
pub struct WrittenFiles {
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// Writes `s`'s client-facing files into `dir` (created if missing). Key
/// files get mode 0600, set on the open file before a byte is written, also
/// when the file already existed with a wider mode.
pub fn write_self_signed(dir: &Path, s: &SelfSigned) -> Result<WrittenFiles> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.into(),
        source,
    })?;
    let files = WrittenFiles {
        ca: dir.join("ca.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client-key.pem"),
    };
    write_file(&files.ca, &s.ca_pem, 0o644)?;
    write_file(&files.client_cert, &s.client_cert_pem, 0o644)?;
    write_file(&files.client_key, &s.client_key_pem, 0o600)?;
    Ok(files)
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()
    })();
    written.map_err(|source| Error::Write {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_the_listen_address_localhost_and_extras_once() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            self_signed_names(ip, &["target.ns.svc".into(), "localhost".into()]),
            ["10.1.2.3", "localhost", "target.ns.svc"]
        );
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(
            self_signed_names(any, &[]),
            ["127.0.0.1", "::1", "localhost"]
        );
    }

    #[test]
    fn bad_pem_names_the_flag() {
        let dir = std::env::temp_dir().join(format!("barrage-serve-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("cert.pem");
        std::fs::write(&cert, "not pem").unwrap();
        let e = TlsOptions::from_files(&cert, &cert)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--tls-cert: "), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
