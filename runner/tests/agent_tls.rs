//! The agent over TLS with a pinned certificate (`tls::pinned`): only a
//! client presenting the same certificate gets an HTTP answer, the token is
//! still required, and a plain-HTTP request gets none. In process
//! (`serve_agent_tls`) and through the binary (`--tls-cert`, `--tls-key`).
//! Certificates are made here with rcgen.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use barrage_runner::{
    agent::{AgentHandle, serve_agent_tls},
    compile::{Slot, compile},
    engine::Runner,
    planfile,
    tls::pinned::{Identity, PinnedPem, PinnedServer, generate},
};
use rustls_pki_types::ServerName;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsConnector;

const TOKEN: &str = "s3cret-token";
const BIN: &str = env!("CARGO_BIN_EXE_barrage-runner");
const PLAN: &str = "target: {baseUrl: 'http://127.0.0.1:9'}\nload: {users: 1, iterations: 1}\nrequests: [{name: a, path: /}]\n";

fn pem() -> PinnedPem {
    let now = SystemTime::now();
    generate("barrage-agent test", now, now + Duration::from_secs(3600)).unwrap()
}

fn identity(p: &PinnedPem) -> Identity {
    Identity::from_pem(p.cert.as_bytes(), p.key.as_bytes()).unwrap()
}

async fn tls_agent(id: &Identity) -> AgentHandle {
    let loaded = planfile::from_str(PLAN, PathBuf::new()).unwrap();
    let slot = Slot { index: 0, count: 1 };
    let compiled = compile(&loaded.plan, slot, &loaded.base_dir, loaded.prefix).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = id.server_config().unwrap();
    serve_agent_tls(listener, Runner::new(Arc::new(compiled)), TOKEN.into(), tls).unwrap()
}

/// Everything the server sends back to `request` until it closes.
async fn exchange<S: AsyncReadExt + AsyncWriteExt + Unpin>(mut s: S, request: &str) -> Vec<u8> {
    // A write may fail once the server has refused; what it sent still counts.
    let _ = s.write_all(request.as_bytes()).await;
    let _ = s.flush().await;
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the agent answers or closes in time");
    got
}

fn get(path: &str, token: Option<&str>) -> String {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: agent\r\n{auth}Connection: close\r\n\r\n")
}

/// The request over TLS with `client`: the raw reply, or the handshake error.
async fn over_tls(
    addr: SocketAddr,
    client: rustls::ClientConfig,
    request: &str,
) -> Result<String, String> {
    let s = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = TlsConnector::from(Arc::new(client))
        .connect(name, s)
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&exchange(tls, request).await).into_owned())
}

/// A client that accepts the agent's certificate (pinned to it) but
/// presents `cert`, or none.
fn client_with(agent: &Identity, cert: Option<&PinnedPem>) -> rustls::ClientConfig {
    let builder = rustls::ClientConfig::builder_with_provider(barrage_runner::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer::new(agent.cert().clone())));
    match cert {
        Some(p) => {
            let certs = barrage_runner::tls::certs_from_pem(p.cert.as_bytes()).unwrap();
            let key = barrage_runner::tls::key_from_pem(p.key.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_pinned_client_gets_an_answer_and_the_token_is_still_required() {
    let id = identity(&pem());
    let agent = tls_agent(&id).await;
    let addr = agent.addr();

    let ok = over_tls(
        addr,
        id.client_config().unwrap(),
        &get("/status", Some(TOKEN)),
    )
    .await
    .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("\"state\":\"ready\""), "{ok}");

    let no_token = over_tls(addr, id.client_config().unwrap(), &get("/status", None))
        .await
        .unwrap();
    assert!(no_token.starts_with("HTTP/1.1 401"), "{no_token}");

    // The same request from a client with another certificate, or none:
    // no HTTP answer, whichever side notices first.
    let stranger_pem = pem();
    let stranger = identity(&stranger_pem);
    for (who, client) in [
        ("another certificate", client_with(&id, Some(&stranger_pem))),
        ("no certificate", client_with(&id, None)),
    ] {
        match over_tls(addr, client, &get("/status", Some(TOKEN))).await {
            Err(_) => {}
            Ok(reply) => assert!(!reply.contains("HTTP/1.1"), "{who}: answered {reply}"),
        }
    }

    // A client pinned to another certificate refuses the agent itself.
    let e = over_tls(
        addr,
        stranger.client_config().unwrap(),
        &get("/status", Some(TOKEN)),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("other than this LoadTest's agent certificate"),
        "{e}"
    );

    // Still serving the right client after all that.
    let ok = over_tls(addr, id.client_config().unwrap(), &get("/healthz", None))
        .await
        .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_request_gets_no_http_answer() {
    let id = identity(&pem());
    let agent = tls_agent(&id).await;
    let s = TcpStream::connect(agent.addr()).await.unwrap();
    let reply = exchange(s, &get("/healthz", None)).await;
    assert!(!reply.starts_with(b"HTTP/"), "{reply:?}");
    assert!(
        !String::from_utf8_lossy(&reply).contains("HTTP/1.1"),
        "{reply:?}"
    );
}

// ---------------------------------------------------------------- the binary

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Files(PathBuf);

impl Files {
    fn new(name: &str) -> Files {
        let p =
            std::env::temp_dir().join(format!("barrage-agent-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Files(p)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spawn(args: &[&str]) -> Proc {
    Proc(
        Command::new(BIN)
            .arg("agent")
            .args(args)
            .env("BARRAGE_RUNNER_INDEX", "0")
            .env("BARRAGE_RUNNER_COUNT", "1")
            .env("BARRAGE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn barrage-runner agent"),
    )
}

fn exit_of(mut p: Proc) -> (Option<i32>, String) {
    let st = p.0.wait().unwrap();
    let mut err = String::new();
    use std::io::Read;
    let _ = p.0.stderr.take().unwrap().read_to_string(&mut err);
    (st.code(), err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_tls_with_its_flags_and_refuses_a_wrong_key() {
    let dir = Files::new("bin");
    let p = pem();
    let id = identity(&p);
    let plan = dir.file("plan.yaml", PLAN);
    let token = dir.file("token", TOKEN);
    let cert = dir.file("tls.crt", &p.cert);
    let key = dir.file("tls.key", &p.key);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let addr: SocketAddr = listen.parse().unwrap();
    let base = ["--plan", &plan, "--token-file", &token, "--listen", &listen];

    let mut agent = spawn(&[&base[..], &["--tls-cert", &cert, "--tls-key", &key]].concat());
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_err() {
        assert!(agent.0.try_wait().unwrap().is_none(), "the agent exited");
        assert!(Instant::now() < deadline, "agent not listening on {addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ok = over_tls(
        addr,
        id.client_config().unwrap(),
        &get("/status", Some(TOKEN)),
    )
    .await
    .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let plain = exchange(
        TcpStream::connect(addr).await.unwrap(),
        &get("/healthz", None),
    )
    .await;
    assert!(!plain.starts_with(b"HTTP/"), "{plain:?}");

    // What an e2e check runs from a pod: `probe-agent`, refused without
    // TLS, without a client certificate and with a stranger's; answered
    // with the LoadTest's (and the token still decides past /healthz).
    let url = |scheme: &str, path: &str| format!("{scheme}://{addr}{path}");
    let ours = |path: &str| {
        vec![
            url("https", path),
            "--tls-cert".into(),
            cert.clone(),
            "--tls-key".into(),
            key.clone(),
        ]
    };
    let with_token = [ours("/status"), vec!["--token-file".into(), token.clone()]].concat();
    for (args, code, says) in [
        (vec![url("http", "/healthz")], 1, "refused: no HTTP answer"),
        (vec![url("https", "/healthz")], 1, "refused: "),
        (
            vec![url("https", "/healthz"), "--throwaway-cert".into()],
            1,
            "refused: ",
        ),
        (ours("/healthz"), 0, "answered: HTTP/1.1 200 OK"),
        (ours("/status"), 0, "answered: HTTP/1.1 401"),
        (with_token, 0, "answered: HTTP/1.1 200 OK"),
    ] {
        let out = Command::new(BIN)
            .arg("probe-agent")
            .args(&args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {text}");
        assert!(text.starts_with(says), "{args:?}: {text}");
    }
    drop(agent);

    // Another certificate's key: refused at startup, exit 2, the key unshown.
    let other = pem();
    let wrong = dir.file("wrong.key", &other.key);
    let (code, err) = exit_of(spawn(
        &[&base[..], &["--tls-cert", &cert, "--tls-key", &wrong]].concat(),
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--tls-cert/--tls-key"), "{err}");
    assert!(err.contains("not the certificate's key"), "{err}");
    let body = other.key.lines().nth(1).unwrap();
    assert!(!err.contains(body), "{err}");

    // One flag without the other is a usage error.
    let (code, err) = exit_of(spawn(&[&base[..], &["--tls-cert", &cert]].concat()));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--tls-key"), "{err}");
}
