//! `Conn` over TLS: the idle-connection check (`ready`) sees through
//! records that carry no data, and still catches a closed or out-of-step
//! connection; the server side is scripted with tokio-rustls.

use std::sync::Arc;

use rcgen::{CertifiedIssuer, KeyPair};
use rustls::{RootCertStore, ServerConfig, pki_types::ServerName};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::oneshot,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::{Conn, Stream, Want, dial};
use crate::tls::{self, client::TlsTarget};

const REQ: &[u8] = b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
const RES: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// What the server does once it has answered the first request.
#[derive(Clone, Copy)]
enum Then {
    /// A TLS 1.3 KeyUpdate (a record with no data, like a late
    /// NewSessionTicket), then it answers a second request.
    KeyUpdate,
    /// close_notify.
    Close,
    /// Bytes nobody asked for.
    Stray,
}

async fn read_request(s: &mut TlsStream<tokio::net::TcpStream>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "the client closed");
        got.extend_from_slice(&buf[..n]);
    }
}

/// A TLS server for one connection: it answers one request, then on `go`
/// does `then`; `done` fires once it did.
async fn server(
    then: Then,
) -> (
    TlsTarget,
    std::net::SocketAddr,
    oneshot::Sender<()>,
    oneshot::Receiver<()>,
) {
    let ca = CertifiedIssuer::self_signed(
        {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            p
        },
        KeyPair::generate().unwrap(),
    )
    .unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            tls::key_from_pem(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let (go, go_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = acceptor.accept(tcp).await.unwrap();
        read_request(&mut s).await;
        s.write_all(RES).await.unwrap();
        s.flush().await.unwrap();
        go_rx.await.unwrap();
        match then {
            Then::KeyUpdate => {
                s.get_mut().1.refresh_traffic_keys().unwrap();
                s.flush().await.unwrap();
                let _ = tx.send(());
                read_request(&mut s).await;
                s.write_all(RES).await.unwrap();
                s.flush().await.unwrap();
            }
            Then::Close => {
                s.shutdown().await.unwrap();
                let _ = tx.send(());
            }
            Then::Stray => {
                s.write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
                    .await
                    .unwrap();
                s.flush().await.unwrap();
                let _ = tx.send(());
            }
        }
        // Keep the connection open until the client is done.
        let _ = s.read(&mut [0u8; 64]).await;
    });
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let target = TlsTarget {
        config: Arc::new(client),
        server_name: ServerName::try_from("127.0.0.1").unwrap(),
        insecure: false,
    };
    (target, addr, go, rx)
}

/// Waits until the reactor has seen the socket readable, so that `ready`'s
/// one poll reads what arrived (without this it might not look yet).
async fn readable(conn: &Conn) {
    match &conn.stream {
        Stream::Tls(t) => t.get_ref().0.readable().await.unwrap(),
        Stream::Plain(_) => unreachable!("a TLS connection"),
    }
}

async fn first_exchange(then: Then) -> Conn {
    let (target, addr, go, done) = server(then).await;
    let (stream, setup) = dial(&Default::default(), &addr.to_string(), Some(&target))
        .await
        .unwrap();
    let mut conn = Conn::new(stream);
    assert!(setup.handshake.is_some());
    assert_eq!(conn.stream.alpn(), None, "no ALPN was offered");
    assert_eq!(conn.send(REQ, Want::default()).await.unwrap().status, 200);
    assert!(!conn.is_closed());
    // Only now, with the connection idle, does the server act.
    go.send(()).unwrap();
    done.await.unwrap();
    readable(&conn).await;
    conn
}

#[tokio::test]
async fn a_record_without_data_leaves_an_idle_tls_connection_ready() {
    let mut conn = first_exchange(Then::KeyUpdate).await;
    assert!(conn.ready(), "a KeyUpdate is not a closed connection");
    let res = conn.send(REQ, Want::default()).await.unwrap();
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn close_notify_or_stray_bytes_make_an_idle_tls_connection_not_ready() {
    for then in [Then::Close, Then::Stray] {
        let mut conn = first_exchange(then).await;
        assert!(!conn.ready());
        assert!(conn.is_closed());
    }
}
