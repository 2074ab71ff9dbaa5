use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

fn fresh() -> Identity {
    let now = SystemTime::now();
    let pem = generate("barrage-agent ns1/t", now, now + Duration::from_secs(3600)).unwrap();
    Identity::from_pem(pem.cert.as_bytes(), pem.key.as_bytes()).unwrap()
}

/// One handshake over loopback, the server with `server`, the client with
/// `client`: each side's outcome, and on success one echoed message.
async fn handshake(
    server: Arc<ServerConfig>,
    client: ClientConfig,
) -> (Result<(), String>, Result<(), String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let served = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut tls = TlsAcceptor::from(server)
            .accept(s)
            .await
            .map_err(|e| e.to_string())?;
        let mut b = [0u8; 4];
        tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
        tls.write_all(&b).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())
    });
    let client = async {
        let s = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = TlsConnector::from(Arc::new(client))
            .connect(name, s)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut b = [0u8; 4];
        // In TLS 1.3 a refused client certificate shows only here.
        tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
        assert_eq!(&b, b"ping");
        Ok(())
    };
    let c = tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .expect("the handshake ends");
    let s = tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the server side ends")
        .unwrap();
    (s, c)
}

#[tokio::test]
async fn the_same_certificate_on_both_sides_talks() {
    let id = fresh();
    let (s, c) = handshake(id.server_config().unwrap(), id.client_config().unwrap()).await;
    assert_eq!((s, c), (Ok(()), Ok(())));
}

#[tokio::test]
async fn an_agent_with_another_certificate_is_refused_by_the_operator() {
    let (ours, theirs) = (fresh(), fresh());
    let (_, c) = handshake(
        theirs.server_config().unwrap(),
        ours.client_config().unwrap(),
    )
    .await;
    let e = c.unwrap_err();
    assert!(
        e.contains("the agent presented a certificate other than this LoadTest's"),
        "{e}"
    );
}

#[tokio::test]
async fn a_client_with_another_certificate_is_refused_by_the_agent() {
    let (agent, stranger) = (fresh(), fresh());
    // The stranger trusts the agent's certificate but presents its own.
    let client = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer(Pin::new(agent.cert.clone()))))
        .with_client_auth_cert(vec![stranger.cert.clone()], stranger.key.clone_key())
        .unwrap();
    let (s, c) = handshake(agent.server_config().unwrap(), client).await;
    let e = s.unwrap_err();
    assert!(
        e.contains("the client presented a certificate other than this LoadTest's"),
        "{e}"
    );
    assert!(c.is_err(), "the stranger got an answer");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_by_the_agent() {
    let agent = fresh();
    let client = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer(Pin::new(agent.cert.clone()))))
        .with_no_client_auth();
    let (s, c) = handshake(agent.server_config().unwrap(), client).await;
    let e = s.unwrap_err();
    assert!(e.contains("no certificate"), "{e}");
    assert!(c.is_err(), "a client without a certificate got an answer");
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_up_front() {
    let now = SystemTime::now();
    let a = generate("a", now, now + Duration::from_secs(60)).unwrap();
    let b = generate("b", now, now + Duration::from_secs(60)).unwrap();
    let e = Identity::from_pem(a.cert.as_bytes(), b.key.as_bytes()).unwrap_err();
    assert_eq!(e, "the key is not the certificate's key");
    let two = format!("{}{}", a.cert, b.cert);
    let e = Identity::from_pem(two.as_bytes(), a.key.as_bytes()).unwrap_err();
    assert!(e.contains("holds 2 certificates"), "{e}");
    let e = Identity::from_pem(a.cert.as_bytes(), b"nope").unwrap_err();
    assert!(e.starts_with("key: "), "{e}");
}

#[test]
fn debug_output_never_shows_the_key() {
    let now = SystemTime::now();
    let pem = generate("barrage-agent ns1/t", now, now + Duration::from_secs(60)).unwrap();
    assert!(pem.key.contains("PRIVATE KEY"));
    let body: String = pem.key.lines().nth(1).unwrap().into();
    let id = Identity::from_pem(pem.cert.as_bytes(), pem.key.as_bytes()).unwrap();
    for shown in [format!("{pem:?}"), format!("{id:?}"), format!("{id:#?}")] {
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(!shown.contains(&body), "{shown}");
        assert!(shown.contains("[secret key elided]"), "{shown}");
    }
    let parsed = certs_from_pem(pem.cert.as_bytes()).unwrap().remove(0);
    assert_eq!(id.cert(), &parsed);
}
