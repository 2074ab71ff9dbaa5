//! The built-in target over HTTPS and HTTP/2, end to end over real sockets,
//! with hyper's HTTP/1.1 and HTTP/2 clients over tokio-rustls (and raw `h2`
//! where the server's settings are checked). Certificates are made here with
//! `tls::server::self_signed` (rcgen).

#[path = "support/serve_client.rs"]
mod serve_client;
#[path = "support/tls_client.rs"]
mod tls_client;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use barrage_runner::{
    serve::{
        HttpVersions, LocalServer, ServeConfig, ServeLimits, ServeOptions, TlsOptions, spawn_local,
        spawn_local_opts, spawn_local_self_signed, spawn_local_tls,
    },
    tls::server::SelfSigned,
};
use hyper::{Request, Version};
use tls_client::{H1, H2, H2Conn, alpn, certs, client_config, h1_get, tls_connect};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn config(yaml: &str) -> ServeConfig {
    ServeConfig::from_yaml_str(yaml).unwrap()
}

async fn tls_server(yaml: &str, s: &SelfSigned, limits: ServeLimits) -> LocalServer {
    let options = ServeOptions {
        limits,
        tls: Some(TlsOptions::from_self_signed(s).unwrap()),
        http: HttpVersions::Both,
    };
    spawn_local_opts(config(yaml), options).await.unwrap()
}

/// Reads until the server closes the connection (EOF or an error); how long
/// that took. Panics after 10 s.
async fn wait_closed(mut c: TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await {
            Err(_) => panic!("connection still open after 10 s"),
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

// In a module so that `cargo test serve_tls` selects these tests.
mod serve_tls {
    use super::*;

    #[tokio::test]
    async fn https_with_the_self_signed_ca_by_ip_and_by_name() {
        let s = certs();
        let server = spawn_local_tls(
            config("routes: [{path: /, body: hello}]"),
            TlsOptions::from_self_signed(&s).unwrap(),
        )
        .await
        .unwrap();
        assert!(server.base_url().starts_with("https://127.0.0.1:"));
        for name in ["127.0.0.1", "localhost"] {
            let io = tls_connect(server.addr(), client_config(&s.ca_pem, None, &[H1]), name)
                .await
                .unwrap();
            let r = h1_get(io, "/").await.unwrap();
            assert_eq!((r.status, r.body.as_str()), (200, "hello"), "{name}");
        }
        // Session resumption: a client's second connection skips the full
        // handshake, as the engine's keep-alive reconnects expect.
        let cfg = client_config(&s.ca_pem, None, &[H1]);
        let kinds = {
            let mut kinds = Vec::new();
            for _ in 0..2 {
                let io = tls_connect(server.addr(), cfg.clone(), "localhost")
                    .await
                    .unwrap();
                kinds.push(io.get_ref().1.handshake_kind());
                // The tickets arrive after the handshake, with the reply.
                assert_eq!(h1_get(io, "/").await.unwrap().status, 200);
            }
            kinds
        };
        use rustls::HandshakeKind::{Full, Resumed};
        assert_eq!(kinds, [Some(Full), Some(Resumed)]);
        // A client trusting another CA refuses the server.
        let other = certs();
        let e = tls_connect(
            server.addr(),
            client_config(&other.ca_pem, None, &[H1]),
            "localhost",
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        // A TLS port serves only TLS: a cleartext request gets no HTTP reply.
        let mut c = serve_client::Client::connect(server.addr()).await;
        c.conn
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), c.conn.read_to_end(&mut reply)).await;
        assert!(!reply.starts_with(b"HTTP/"), "{reply:?}");
        assert_eq!(server.hits("/"), 4);
    }

    #[tokio::test]
    async fn client_certificates_refused_without_one_accepted_with_it() {
        let (server, s) = spawn_local_self_signed(config("routes: [{path: /, body: in}]"), true)
            .await
            .unwrap();
        let other = certs();
        for (what, client) in [
            ("no client certificate", None),
            (
                "one from another CA",
                Some((
                    other.client_cert_pem.as_str(),
                    other.client_key_pem.as_str(),
                )),
            ),
        ] {
            let cfg = client_config(&s.ca_pem, client, &[H1]);
            // TLS 1.3: the client's side of the handshake ends before the
            // server has checked its certificate, so the refusal (an alert)
            // may arrive with the first read.
            let refused = match tls_connect(server.addr(), cfg, "localhost").await {
                Err(e) => e.to_string(),
                Ok(io) => h1_get(io, "/").await.unwrap_err(),
            };
            assert!(
                refused.contains("CertificateRequired")
                    || refused.contains("UnknownCA")
                    || refused.contains("BadCertificate")
                    || refused.contains("DecryptError"),
                "{what}: {refused}"
            );
        }
        assert_eq!(server.hits("/"), 0, "a refused client reached no route");
        let cfg = client_config(
            &s.ca_pem,
            Some((&s.client_cert_pem, &s.client_key_pem)),
            &[H2, H1],
        );
        let io = tls_connect(server.addr(), cfg, "localhost").await.unwrap();
        let h2 = H2Conn::new(io, server.base_url().replace("127.0.0.1", "localhost")).await;
        let r = h2.get("/").await;
        assert_eq!((r.status, r.body.as_str()), (200, "in"));
        assert_eq!(server.hits("/"), 1);
    }

    #[tokio::test]
    async fn h2_over_alpn_multiplexes_streams_with_latency_errors_and_auth() {
        let s = certs();
        let yaml = "
auth: {}
routes:
  - {path: /slow, latency: 300ms, body: slow}
  - {path: /fail, errorRate: 1.0, errorStatus: 503}
  - {path: /me, requireToken: true}
";
        let server = tls_server(yaml, &s, ServeLimits::default()).await;
        let cfg = client_config(&s.ca_pem, None, &[H2, H1]);
        let io = tls_connect(server.addr(), cfg, "localhost").await.unwrap();
        assert_eq!(alpn(&io).as_deref(), Some(H2));
        let h2 = Arc::new(H2Conn::new(io, server.base_url()).await);
        // Ten streams at once on one connection: together about one latency,
        // not ten.
        let start = Instant::now();
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let h2 = h2.clone();
                tokio::spawn(async move { h2.get("/slow").await })
            })
            .collect();
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(
                (r.status, r.version, r.body.as_str()),
                (200, Version::HTTP_2, "slow")
            );
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(
            took < Duration::from_millis(2500),
            "streams ran one by one: {took:?}"
        );
        assert_eq!(server.hits("/slow"), 10);
        assert_eq!(h2.get("/fail").await.status, 503);
        assert_eq!(h2.get("/me").await.status, 401);
        // A request body over h2 (the auth endpoints read JSON).
        let r = h2
            .send(
                "POST",
                "/auth/register",
                &[("content-type", "application/json")],
                r#"{"email": "a@example.com", "password": "pw"}"#,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(server.registered_users(), 1);
        assert_eq!(h2.get("/nowhere").await.status, 404);
    }

    #[tokio::test]
    async fn h2c_by_prior_knowledge_and_http11_on_the_same_cleartext_port() {
        let server = spawn_local(config("routes: [{path: /, body: both}]"))
            .await
            .unwrap();
        let io = TcpStream::connect(server.addr()).await.unwrap();
        let h2 = H2Conn::new(io, server.base_url()).await;
        let r = h2.get("/").await;
        assert_eq!(
            (r.status, r.version, r.body.as_str()),
            (200, Version::HTTP_2, "both")
        );
        let mut c = serve_client::Client::connect(server.addr()).await;
        let r = c.get("/").await;
        assert_eq!((r.status, r.body.as_str()), (200, "both"));
        assert_eq!(server.hits("/"), 2);

        // The server's HTTP/2 settings, as a raw h2 client sees them.
        let io = TcpStream::connect(server.addr()).await.unwrap();
        let (mut send, conn) = h2::client::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = Request::get(format!("{}/", server.base_url()))
            .body(())
            .unwrap();
        let (resp, _) = send.send_request(req, true).unwrap();
        assert_eq!(resp.await.unwrap().status(), 200);
        assert_eq!(send.current_max_send_streams(), 256);
    }

    #[tokio::test]
    async fn http_version_flags_limit_what_alpn_and_cleartext_offer() {
        let s = certs();
        let only1 = ServeOptions {
            tls: Some(TlsOptions::from_self_signed(&s).unwrap()),
            http: HttpVersions::Http1Only,
            ..ServeOptions::default()
        };
        let server = spawn_local_opts(config("routes: [{path: /}]"), only1)
            .await
            .unwrap();
        let io = tls_connect(
            server.addr(),
            client_config(&s.ca_pem, None, &[H2, H1]),
            "localhost",
        )
        .await
        .unwrap();
        assert_eq!(alpn(&io).as_deref(), Some(H1));
        assert_eq!(h1_get(io, "/").await.unwrap().version, Version::HTTP_11);
        // A client that speaks only h2 finds no common protocol.
        let e = tls_connect(
            server.addr(),
            client_config(&s.ca_pem, None, &[H2]),
            "localhost",
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("NoApplicationProtocol"), "{e}");

        let only2 = ServeOptions {
            http: HttpVersions::Http2Only,
            ..ServeOptions::default()
        };
        let server = spawn_local_opts(config("routes: [{path: /}]"), only2)
            .await
            .unwrap();
        let io = TcpStream::connect(server.addr()).await.unwrap();
        assert!(
            h1_get(io, "/").await.is_err(),
            "HTTP/1.1 on an h2-only port"
        );
        let io = TcpStream::connect(server.addr()).await.unwrap();
        assert_eq!(
            H2Conn::new(io, server.base_url())
                .await
                .get("/")
                .await
                .status,
            200
        );
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_the_handshake_is_closed_by_the_header_read_timeout() {
        let s = certs();
        let limits = ServeLimits {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(60),
            max_connections: 100,
        };
        let server = tls_server("routes: [{path: /}]", &s, limits).await;
        // One sends nothing, one the first bytes of a ClientHello record.
        let silent = TcpStream::connect(server.addr()).await.unwrap();
        let mut partial = TcpStream::connect(server.addr()).await.unwrap();
        partial.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
        let (a, b) = tokio::join!(wait_closed(silent), wait_closed(partial));
        for t in [a, b] {
            assert!(t >= Duration::from_millis(250), "closed after {t:?}");
            assert!(t < Duration::from_secs(5), "closed after {t:?}");
        }
        // After the handshake: a head that never ends is cut by the header
        // limit (the timer sees the encrypted bytes arrive), while a
        // connection that has sent nothing yet is idle, not slow, and is
        // still served afterwards.
        let cfg = client_config(&s.ca_pem, None, &[H1]);
        let idle = tls_connect(server.addr(), cfg.clone(), "localhost")
            .await
            .unwrap();
        let mut slow = tls_connect(server.addr(), cfg, "localhost").await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        slow.flush().await.unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf))
            .await
            .expect("a slow head over TLS is closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        let t = start.elapsed();
        assert!(t >= Duration::from_millis(250), "closed after {t:?}");
        assert_eq!(h1_get(idle, "/").await.unwrap().status, 200);
    }

    #[tokio::test]
    async fn an_idle_h2_connection_gets_goaway_but_a_long_stream_is_not_cut() {
        let limits = ServeLimits {
            header_read_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(400),
            max_connections: 100,
        };
        let options = ServeOptions {
            limits,
            ..ServeOptions::default()
        };
        let server = spawn_local_opts(config("routes: [{path: /, latency: 900ms}]"), options)
            .await
            .unwrap();
        let io = TcpStream::connect(server.addr()).await.unwrap();
        let h2 = H2Conn::new(io, server.base_url()).await;
        // Longer than both limits, and answered.
        assert_eq!(h2.get("/").await.status, 200);
        let idle_from = Instant::now();
        let H2Conn { conn, .. } = h2;
        let closed = tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .expect("the idle h2 connection is closed")
            .unwrap();
        let t = idle_from.elapsed();
        // GOAWAY then a clean close, not a cut socket.
        assert!(closed.is_ok(), "{closed:?}");
        assert!(t >= Duration::from_millis(350), "closed after {t:?}");
    }

    /// At the connection cap an idle HTTP/2 connection is shed like an idle
    /// HTTP/1.1 one, while a connection with a request in progress is not.
    #[tokio::test]
    async fn at_the_cap_an_idle_h2_connection_makes_room() {
        let limits = ServeLimits {
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 2,
        };
        let options = ServeOptions {
            limits,
            ..ServeOptions::default()
        };
        let yaml = "routes: [{path: /slow, latency: 2s}, {path: /}]";
        let server = spawn_local_opts(config(yaml), options).await.unwrap();
        let io = TcpStream::connect(server.addr()).await.unwrap();
        let h2 = H2Conn::new(io, server.base_url()).await;
        assert_eq!(h2.get("/").await.status, 200);
        let addr = server.addr();
        let busy = tokio::spawn(async move {
            let mut c = serve_client::Client::connect(addr).await;
            c.get("/slow").await.status
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.hits("/slow") == 0 {
            assert!(Instant::now() < deadline, "the slow request never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let start = Instant::now();
        let mut c = serve_client::Client::connect(server.addr()).await;
        assert_eq!(c.get("/").await.status, 200);
        let t = start.elapsed();
        assert!(t < Duration::from_millis(1500), "served only after {t:?}");
        let H2Conn { conn, .. } = h2;
        tokio::time::timeout(Duration::from_secs(5), conn)
            .await
            .expect("the idle h2 connection was the one closed")
            .unwrap()
            .unwrap_err();
        assert_eq!(busy.await.unwrap(), 200, "the busy connection was not cut");
    }

    /// A stream the client resets mid-request ends there: it does not keep
    /// its connection busy (never idle, never shed) until its latency is over
    /// or forever.
    #[tokio::test]
    async fn a_stream_reset_by_the_client_leaves_its_connection_idle() {
        let limits = ServeLimits {
            header_read_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(300),
            max_connections: 100,
        };
        let options = ServeOptions {
            limits,
            ..ServeOptions::default()
        };
        let server = spawn_local_opts(config("routes: [{path: /, latency: 30s}]"), options)
            .await
            .unwrap();
        let io = TcpStream::connect(server.addr()).await.unwrap();
        let (mut send, conn) = h2::client::handshake(io).await.unwrap();
        let conn = tokio::spawn(conn);
        let req = Request::get(format!("{}/", server.base_url()))
            .body(())
            .unwrap();
        let (resp, _stream) = send.send_request(req, true).unwrap();
        // Reset once the server has the request (the route has seen it).
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.hits("/") == 0 {
            assert!(Instant::now() < deadline, "the request never arrived");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(resp);
        drop(_stream);
        let reset_at = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .expect("the connection is closed as idle, long before the 30 s latency")
            .unwrap()
            .unwrap();
        assert!(reset_at.elapsed() >= Duration::from_millis(250));
    }

    /// `serve --tls-self-signed DIR --tls-require-client-cert`, as a demo
    /// runs it: the files a client needs are written (keys 0600, also over a
    /// file that was there), and they are what the server trusts.
    #[tokio::test]
    async fn cli_self_signed_writes_the_ca_and_an_mtls_client_pair() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new("cli");
        let key = dir.0.join("client-key.pem");
        std::fs::write(&key, "old").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let _child = Kill(
            std::process::Command::new(env!("CARGO_BIN_EXE_barrage-runner"))
                .args(["serve", "--listen", &addr.to_string(), "--tls-self-signed"])
                .arg(&dir.0)
                .args(["--tls-name", "target.example", "--tls-require-client-cert"])
                .env("BARRAGE_LOG", "error")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn serve"),
        );
        let ca = dir.0.join("ca.pem");
        let cert = dir.0.join("client.pem");
        let deadline = Instant::now() + Duration::from_secs(20);
        // The key is written last; the server listens before writing.
        while std::fs::read_to_string(&key).map_or(true, |k| !k.contains("END PRIVATE KEY")) {
            assert!(Instant::now() < deadline, "serve wrote no key");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (path, mode) in [(&ca, 0o644), (&cert, 0o644), (&key, 0o600)] {
            let m = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, mode, "{}", path.display());
        }
        let mut names: Vec<_> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["ca.pem", "client-key.pem", "client.pem"],
            "no server key written"
        );
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        let (ca, cert, key) = (read(&ca), read(&cert), read(&key));
        let refused = match tls_connect(addr, client_config(&ca, None, &[H1]), "localhost").await {
            Err(e) => e.to_string(),
            Ok(io) => h1_get(io, "/").await.unwrap_err(),
        };
        assert!(refused.contains("CertificateRequired"), "{refused}");
        for name in ["127.0.0.1", "localhost", "target.example"] {
            let cfg = client_config(&ca, Some((&cert, &key)), &[H1]);
            // target.example resolves nowhere: connect by address, verify by name.
            let io = tls_connect(addr, cfg, name).await.unwrap();
            let r = h1_get(io, "/").await.unwrap();
            assert_eq!(r.status, 200, "{name}");
        }
    }

    /// Bad TLS flags end `serve` with status 2 and the flag named, before
    /// it listens; a key file's contents never appear.
    #[test]
    fn cli_refuses_bad_tls_flags_naming_them() {
        let dir = TempDir::new("flags");
        let bad = dir.0.join("bad.pem");
        std::fs::write(&bad, "SECRET-KEY-MATERIAL").unwrap();
        let good = certs();
        let cert = dir.0.join("cert.pem");
        std::fs::write(&cert, &good.cert_pem).unwrap();
        let other_key = dir.0.join("other-key.pem");
        let other = certs();
        std::fs::write(&other_key, &other.key_pem).unwrap();
        let other_key_line = other.key_pem.lines().nth(1).unwrap().to_string();
        let bad = bad.to_str().unwrap();
        let other_key = other_key.to_str().unwrap();
        let cert = cert.to_str().unwrap();
        let dir_arg = dir.0.to_str().unwrap();
        for (args, needle) in [
            (vec!["--tls-cert", bad, "--tls-key", bad], "--tls-cert"),
            (vec!["--tls-cert", cert, "--tls-key", bad], "--tls-key"),
            (
                vec!["--tls-cert", cert, "--tls-key", "/nonexistent/key.pem"],
                "--tls-key",
            ),
            (vec!["--tls-key", bad], "--tls-cert"),
            (
                vec!["--tls-cert", cert, "--tls-key", other_key],
                "usable pair",
            ),
            (vec!["--tls-client-ca", cert], "--tls-client-ca"),
            (vec!["--tls-require-client-cert"], "--tls-self-signed"),
            (
                vec!["--tls-self-signed", dir_arg, "--tls-client-ca", bad],
                "--tls-client-ca",
            ),
            (
                vec!["--tls-self-signed", dir_arg, "--tls-name", "b\u{e9}d"],
                "--tls-name",
            ),
            (vec!["--http1-only", "--http2-only"], "--http2-only"),
        ] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_barrage-runner"))
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(&args)
                .env("BARRAGE_LOG", "error")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(needle), "{args:?}: {stderr}");
            assert!(!stderr.contains("SECRET-KEY"), "{args:?}: {stderr}");
            assert!(!stderr.contains(&other_key_line), "{args:?}: {stderr}");
        }
    }
}

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "barrage-serve-tls-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
