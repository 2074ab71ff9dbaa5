//! The webhook's HTTPS server: every replica serves it (validation is
//! stateless), with whatever serving certificate its Secret holds now, swapped
//! in without a restart when the Secret changes.

use std::{
    convert::Infallible,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use kube::Client;
use rustls::{
    ServerConfig,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::{admit, refs};

/// The path the ValidatingWebhookConfiguration names.
pub const PATH: &str = "/validate";
/// The largest AdmissionReview read: an object and its old version, each at
/// most etcd's 1.5 MiB, and the envelope. Larger bodies are refused unread.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Connections served at once; more wait for a slot (memory stays bounded
/// by MAX_BODY times this whatever callers send).
const MAX_CONNECTIONS: usize = 32;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The serving certificate now in use; None until one has loaded.
#[derive(Debug, Default)]
pub struct Swap {
    current: RwLock<Option<(Vec<u8>, Arc<CertifiedKey>)>>,
}

impl Swap {
    /// Loads `crt` (the certificate, then any chain) and `key` (PEM) unless
    /// they are what is served already. Returns whether it swapped.
    pub fn load(&self, crt: &[u8], key: &[u8]) -> Result<bool, String> {
        let mut fingerprint = crt.to_vec();
        fingerprint.extend_from_slice(key);
        if self
            .current
            .read()
            .map(|c| c.as_ref().is_some_and(|(f, _)| *f == fingerprint))
            .unwrap_or(false)
        {
            return Ok(false);
        }
        let ck = certified_key(crt, key)?;
        let mut cur = self
            .current
            .write()
            .map_err(|_| "poisoned lock".to_string())?;
        *cur = Some((fingerprint, Arc::new(ck)));
        Ok(true)
    }

    pub fn loaded(&self) -> bool {
        self.current.read().map(|c| c.is_some()).unwrap_or(false)
    }
}

impl ResolvesServerCert for Swap {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok()?.as_ref().map(|(_, k)| k.clone())
    }
}

/// A rustls certified key from PEM; the message never quotes the key.
pub fn certified_key(crt: &[u8], key: &[u8]) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt is not PEM certificates: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|_| "tls.key is not a PEM private key".to_string())?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|_| "tls.key is not a supported private key".to_string())?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match()
        .map_err(|_| "tls.key is not the key of tls.crt".to_string())?;
    Ok(ck)
}

/// Whether this replica serves the webhook now (bound, with a certificate);
/// /readyz answers 503 until then, so the webhook Service sends the API
/// server only to replicas that can answer. Always true when the webhook
/// is off.
static SERVING: AtomicBool = AtomicBool::new(true);

pub fn ready() -> bool {
    SERVING.load(Ordering::Relaxed)
}

pub(super) fn set_ready(v: bool) {
    SERVING.store(v, Ordering::Relaxed);
}

fn reply(code: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static parts are valid")
}

async fn handle(
    client: Option<Client>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != PATH {
        return Ok(reply(StatusCode::NOT_FOUND, b"{}".to_vec()));
    }
    if req.method() != Method::POST {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, b"{}".to_vec()));
    }
    // Refused unread when it says it is too long; Limited stops one that lies.
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        let review = admit::unreadable(&format!("the request body is over {MAX_BODY} bytes"));
        return Ok(reply(StatusCode::OK, review));
    }
    let body = Limited::new(req.into_body(), MAX_BODY);
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            let review = admit::unreadable(&format!("the request body could not be read: {e}"));
            return Ok(reply(StatusCode::OK, review));
        }
        Err(_) => {
            let review = admit::unreadable("the request body did not arrive in time");
            return Ok(reply(StatusCode::OK, review));
        }
    };
    let lookups = admit::lookups(&bytes);
    let missing = match &client {
        Some(c) => refs::missing(c, &lookups).await,
        None => Vec::new(),
    };
    Ok(reply(StatusCode::OK, admit::review(&bytes, &missing)))
}

/// Serves the webhook on `listener` until the process ends. `client` looks
/// up what a LoadTest references (for warnings); None skips that.
pub async fn serve(
    listener: TcpListener,
    swap: Arc<Swap>,
    client: Option<Client>,
) -> std::io::Result<()> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_cert_resolver(swap.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let addr = listener.local_addr()?;
    info!(%addr, path = PATH, "serving the admission webhook");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "webhook accept failed");
                continue;
            }
        };
        let (acceptor, client) = (acceptor.clone(), client.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let svc = service_fn(move |req| handle(client.clone(), req));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}
