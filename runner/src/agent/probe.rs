//! `barrage-runner probe-agent URL`: one GET to an agent, to show from
//! inside a cluster (the runner image is FROM scratch, without curl) what
//! the agent port answers: plain HTTP, TLS without a client certificate,
//! with a throwaway one, or with the LoadTest's own. It says whether an HTTP
//! answer came back, or why not.

use std::{path::PathBuf, sync::Arc, time::Duration};

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

use crate::{
    error::{Error, Result},
    tls::{
        pinned::{self, Identity},
        provider,
    },
};

const TIMEOUT: Duration = Duration::from_secs(10);
/// An agent's answer to a probe is small; more is not read.
const MAX_READ: usize = 64 * 1024;

/// Which client certificate the probe presents over TLS.
pub enum ClientCert {
    None,
    /// A fresh self-signed one, as a stranger would have.
    Throwaway,
    /// The LoadTest's own (`tls.crt`, `tls.key`); the agent's certificate
    /// is then pinned to it too.
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
}

pub struct ProbeOptions {
    pub url: String,
    pub cert: ClientCert,
    pub token_file: Option<PathBuf>,
}

/// What came back: an HTTP status line, or why there was none.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Answered(String),
    Refused(String),
}

pub async fn probe(opts: ProbeOptions) -> Result<Outcome> {
    let (tls, rest) = match opts.url.split_once("://") {
        Some(("http", rest)) => (false, rest),
        Some(("https", rest)) => (true, rest),
        _ => return Err(Error::invalid("URL", "must start with http:// or https://")),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/healthz" } else { path };
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .trim_matches(['[', ']']);
    if !tls && !matches!(opts.cert, ClientCert::None) {
        return Err(Error::invalid(
            "--tls-cert",
            "a client certificate needs an https:// URL",
        ));
    }
    let pinned_id = match &opts.cert {
        ClientCert::Files { cert, key } => {
            Some(Identity::read(cert, key).map_err(|m| Error::invalid("--tls-cert/--tls-key", m))?)
        }
        _ => None,
    };
    let token = match &opts.token_file {
        Some(_) if tls && pinned_id.is_none() => {
            return Err(Error::invalid(
                "--token-file",
                "over https the token is sent only to an agent pinned with --tls-cert",
            ));
        }
        Some(p) => Some(super::read_token(p)?),
        None => None,
    };
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    if let Some(t) = &token {
        request += &format!("Authorization: Bearer {t}\r\n");
    }
    request += "\r\n";

    let connect = tokio::time::timeout(TIMEOUT, TcpStream::connect(authority)).await;
    let stream = match connect {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Ok(Outcome::Refused(format!("cannot connect: {e}"))),
        Err(_) => return Ok(Outcome::Refused("connect timed out".into())),
    };
    if !tls {
        return Ok(exchange(stream, &request).await);
    }
    let config = client_config(&opts.cert, pinned_id.as_ref())?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| Error::invalid("URL", format!("{host:?} is not a host name or address")))?;
    let handshake = TlsConnector::from(Arc::new(config)).connect(name, stream);
    match tokio::time::timeout(TIMEOUT, handshake).await {
        Ok(Ok(s)) => Ok(exchange(s, &request).await),
        Ok(Err(e)) => Ok(Outcome::Refused(format!("TLS handshake failed: {e}"))),
        Err(_) => Ok(Outcome::Refused("TLS handshake timed out".into())),
    }
}

fn client_config(cert: &ClientCert, pinned_id: Option<&Identity>) -> Result<ClientConfig> {
    let setup = |m: String| Error::Other(format!("TLS setup: {m}"));
    if let Some(id) = pinned_id {
        return id.client_config().map_err(setup);
    }
    // The probe may not know the agent's certificate; nothing secret is sent
    // over such a connection (`--token-file` needs the pinned one).
    let any = Arc::new(crate::tls::client::AnyCert::new(provider()));
    if let ClientCert::Throwaway = cert {
        let now = std::time::SystemTime::now();
        let pem = pinned::generate("barrage probe-agent", now, now + TIMEOUT).map_err(setup)?;
        let id = Identity::from_pem(pem.cert.as_bytes(), pem.key.as_bytes()).map_err(setup)?;
        // Presents the throwaway certificate; the agent's is not that one,
        // so the server side is not pinned.
        let mut c = id.client_config().map_err(setup)?;
        c.dangerous().set_certificate_verifier(any);
        return Ok(c);
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(any)
        .with_no_client_auth())
}

/// Sends `request`, reads the reply until the peer closes (bounded).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, request: &str) -> Outcome {
    if let Err(e) = s.write_all(request.as_bytes()).await {
        return Outcome::Refused(format!("cannot send the request: {e}"));
    }
    let _ = s.flush().await;
    let mut got = Vec::new();
    let mut error = None;
    let read = async {
        let mut buf = [0u8; 4096];
        while got.len() < MAX_READ {
            match s.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
    };
    let timed_out = tokio::time::timeout(TIMEOUT, read).await.is_err();
    if got.starts_with(b"HTTP/") {
        let text = String::from_utf8_lossy(&got);
        return Outcome::Answered(text.lines().next().unwrap_or_default().to_string());
    }
    let why = match (error, timed_out) {
        (Some(e), _) => format!("no HTTP answer: {e}"),
        (None, true) => "no HTTP answer in time".into(),
        (None, false) => format!(
            "no HTTP answer: the connection closed after {} bytes that are not HTTP",
            got.len()
        ),
    };
    Outcome::Refused(why)
}
