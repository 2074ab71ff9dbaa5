//! Test support: certificates made in the test (rcgen: a CA, server and
//! client certificates signed by it) and an HTTPS target on loopback
//! (tokio-rustls acceptor + hyper's HTTP/1.1 server) that counts what it
//! saw: connections, full and resumed handshakes, requests by path.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use http_body_util::Full;
use hyper::{Request, Response, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A leaf for `names` (DNS names or IP addresses); `expired` makes one
    /// valid only in 2000.
    pub fn leaf(&self, names: &[&str], expired: bool) -> Pair {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        if expired {
            p.not_before = date_time_ymd(2000, 1, 1);
            p.not_after = date_time_ymd(2000, 12, 31);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Pair {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        barrage_runner::tls::certs_from_pem(self.cert_pem.as_bytes()).unwrap()
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        barrage_runner::tls::key_from_pem(self.key_pem.as_bytes()).unwrap()
    }

    /// Writes `NAME.crt` and `NAME.key` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) {
        std::fs::write(dir.join(format!("{name}.crt")), &self.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), &self.key_pem).unwrap();
    }
}

/// How the target's TLS is set up.
pub struct TargetOpts<'a> {
    pub cert: &'a Pair,
    /// Require a client certificate signed by this CA.
    pub client_ca: Option<&'a Ca>,
    /// Offer TLS 1.2 only.
    pub tls12_only: bool,
}

#[derive(Default)]
pub struct Seen {
    pub connections: AtomicU64,
    pub full_handshakes: AtomicU64,
    pub resumed: AtomicU64,
    /// Requests by path (and query).
    pub paths: Mutex<BTreeMap<String, u64>>,
}

impl Seen {
    pub fn hits(&self, path: &str) -> u64 {
        self.paths.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.paths.lock().unwrap().values().sum()
    }
}

pub struct Target {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
}

/// Routes: `/token` answers `{"token":"t-42"}`; `/close` answers with
/// `Connection: close`; `/to-http` redirects to http:// on the same
/// host and port; anything else 200 "ok".
pub async fn start(opts: TargetOpts<'_>) -> Target {
    let provider = barrage_runner::tls::provider();
    let versions: &[&rustls::SupportedProtocolVersion] = if opts.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match opts.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der()).unwrap();
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .unwrap(),
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(opts.cert.chain(), opts.cert.key())
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            s.connections.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            let s = s.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let resumed = matches!(
                    tls.get_ref().1.handshake_kind(),
                    Some(rustls::HandshakeKind::Resumed)
                );
                if resumed {
                    s.resumed.fetch_add(1, Ordering::SeqCst);
                } else {
                    s.full_handshakes.fetch_add(1, Ordering::SeqCst);
                }
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let s = s.clone();
                    async move { Ok::<_, Infallible>(answer(&s, &req, addr)) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Target { addr, seen }
}

fn answer(
    s: &Seen,
    req: &Request<hyper::body::Incoming>,
    addr: SocketAddr,
) -> Response<Full<Bytes>> {
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    *s.paths.lock().unwrap().entry(pq).or_default() += 1;
    let r = Response::builder();
    match req.uri().path() {
        "/token" => r
            .header("content-type", "application/json")
            .body(Full::from(r#"{"token":"t-42"}"#)),
        "/close" => r.header("connection", "close").body(Full::from("bye")),
        "/to-http" => r
            .status(302)
            .header("location", format!("http://{addr}/plain"))
            .body(Full::default()),
        _ => r.body(Full::from("ok")),
    }
    .unwrap()
}
