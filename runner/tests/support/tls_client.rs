//! A TLS client for tests of HTTPS and HTTP/2 servers: rustls client configs
//! trusting a test CA (optionally with a client certificate), and hyper's
//! HTTP/1.1 and HTTP/2 clients over tokio-rustls or plain TCP.
#![allow(dead_code)] // each test file uses its own part

use std::{net::SocketAddr, sync::Arc};

use barrage_runner::tls::{
    self,
    server::{SelfSigned, self_signed},
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    task::JoinHandle,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

pub const H2: &[u8] = b"h2";
pub const H1: &[u8] = b"http/1.1";

pub fn certs() -> SelfSigned {
    self_signed(&["127.0.0.1".into(), "localhost".into()]).unwrap()
}

/// A client trusting `ca_pem` only, presenting `client` (cert, key) if
/// given, offering `alpn`.
pub fn client_config(
    ca_pem: &str,
    client: Option<(&str, &str)>,
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in tls::certs_from_pem(ca_pem.as_bytes()).unwrap() {
        roots.add(c).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut c = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                tls::certs_from_pem(cert.as_bytes()).unwrap(),
                tls::key_from_pem(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

pub fn alpn(s: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub version: Version,
    pub body: String,
}

pub fn request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(uri);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

pub async fn read_reply(
    resp: Result<hyper::Response<hyper::body::Incoming>, hyper::Error>,
) -> Result<Reply, String> {
    let resp = resp.map_err(|e| format!("{e:?}"))?;
    let (status, version) = (resp.status().as_u16(), resp.version());
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?
        .to_bytes();
    Ok(Reply {
        status,
        version,
        body: String::from_utf8_lossy(&body).into(),
    })
}

/// One HTTP/1.1 GET on `io`.
pub async fn h1_get<I>(io: I, path: &str) -> Result<Reply, String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("{e:?}"))?;
    let conn = tokio::spawn(conn);
    let reply = read_reply(
        send.send_request(request("GET", path, &[("host", "localhost")], ""))
            .await,
    )
    .await;
    // A refused handshake surfaces on the connection as often as on the request.
    if reply.is_err() {
        conn.abort();
    }
    reply
}

/// An HTTP/2 connection (prior knowledge on cleartext, or after ALPN h2).
pub struct H2Conn {
    pub send: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    pub conn: JoinHandle<Result<(), hyper::Error>>,
    pub base: String,
}

impl H2Conn {
    pub async fn new<I>(io: I, base: String) -> H2Conn
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .expect("h2 handshake");
        H2Conn {
            send,
            conn: tokio::spawn(conn),
            base,
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Reply, String> {
        let mut send = self.send.clone();
        send.ready().await.map_err(|e| format!("{e:?}"))?;
        let uri = format!("{}{path}", self.base);
        read_reply(
            send.send_request(request(method, &uri, headers, body))
                .await,
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], "").await.unwrap()
    }
}
