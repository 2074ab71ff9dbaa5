//! The built-in target server, end to end over real sockets, with a minimal
//! hand-written HTTP/1.1 client (`support/serve_client.rs`). The injected
//! latency's accuracy is measured alone, in `serve_latency.rs`.

#[path = "support/serve_client.rs"]
mod serve_client;

use std::time::{Duration, Instant};

use barrage_runner::{
    Error,
    serve::{ServeConfig, ServeLimits, spawn_local, spawn_local_with},
};
use serve_client::{Client, Reply, ms, server};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

// In a module so that `cargo test serve` selects these tests.
mod serve {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn latency_distribution_ten_percent_slow() {
        let s = server("routes: [{path: /slow, latency: '10%:50ms'}, {path: /fast}]").await;
        let n = 200;
        // Four keep-alive connections, 50 requests each: faster than one, and
        // still few enough that a fast response is not delayed by queueing.
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let addr = s.addr();
            tasks.push(tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                let mut times = Vec::new();
                for _ in 0..n / 4 {
                    let r = c.get("/slow").await;
                    assert_eq!(r.status, 200);
                    times.push(r.elapsed);
                }
                times
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.extend(t.await.unwrap());
        }
        times.sort();
        let slow = times.iter().filter(|t| **t >= ms(50)).count();
        // The server spreads its 10% evenly over the route's requests (not
        // random draws): 20 of 200 within 3. A slow one never takes less than
        // 50 ms; a few more than 23 allow for fast ones delayed that long on a
        // busy machine.
        assert!(
            (17..=30).contains(&slow),
            "{slow} of {n} took >= 50ms; want 20"
        );
        // The fast 90% really are fast: the median is far below 50 ms.
        assert!(times[n / 2] < ms(20), "median {:?}", times[n / 2]);
        // The slow ones take about 50 ms, not some other delay.
        let slow_median = times[n - slow / 2 - 1];
        assert!(
            slow_median < ms(150),
            "median of the slow ones {slow_median:?}"
        );
        assert_eq!(s.hits("/slow"), n as u64);
        assert_eq!(s.hits("/fast"), 0);
    }

    #[tokio::test]
    async fn fixed_latency_applies_to_every_request() {
        let s =
            server("routes: [{path: /, latency: 30ms, body: hi}, {path: /now, body: now}]").await;
        let mut c = Client::connect(s.addr()).await;
        let mut times = Vec::new();
        for _ in 0..10 {
            let r = c.get("/").await;
            assert_eq!((r.status, r.body.as_str()), (200, "hi"));
            times.push(r.elapsed);
        }
        times.sort();
        assert!(times[0] >= ms(30), "fastest {:?}", times[0]);
        assert!(times[5] < ms(130), "median {:?}", times[5]);
        let r = c.get("/now").await;
        assert!(
            r.elapsed < ms(30),
            "a route without latency took {:?}",
            r.elapsed
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn error_rate_and_status() {
        let s = server(
            "routes:\n\
         - {path: /flaky, errorRate: 0.3, errorStatus: 503, body: fine}\n\
         - {path: /never, errorRate: 0}\n\
         - {path: /always, errorRate: 1, status: 201}",
        )
        .await;
        let mut c = Client::connect(s.addr()).await;
        let n = 400;
        let mut errors = 0;
        for _ in 0..n {
            let r = c.get("/flaky").await;
            match r.status {
                503 => errors += 1,
                200 => assert_eq!(r.body, "fine"),
                other => panic!("unexpected status {other}"),
            }
        }
        // Spread evenly over the route's requests, not drawn at random:
        // 30% of 400 within 3.
        assert!(
            (117..=123).contains(&errors),
            "{errors} of {n} errors; want 120"
        );
        for _ in 0..50 {
            assert_eq!(c.get("/never").await.status, 200);
            assert_eq!(c.get("/always").await.status, 500);
        }
        assert_eq!(s.hits("/flaky"), n);
    }

    #[tokio::test]
    async fn unmatched_paths_get_404_and_wrong_methods_405() {
        let s = server(
            "routes:\n\
         - {method: GET, path: /things, body: list}\n\
         - {method: post, path: /things, status: 201}\n\
         - {path: /any, body: any}",
        )
        .await;
        let mut c = Client::connect(s.addr()).await;
        assert_eq!(c.get("/nope").await.status, 404);
        assert_eq!(c.get("/things/1").await.status, 404);
        assert_eq!(c.get("/things").await.body, "list");
        assert_eq!(c.send("POST", "/things", b"{}").await.status, 201);
        assert_eq!(c.send("DELETE", "/things", b"").await.status, 405);
        for m in ["GET", "PUT", "DELETE", "PATCH"] {
            let r = c.send(m, "/any", b"x").await;
            assert_eq!((r.status, r.body.as_str()), (200, "any"), "{m}");
        }
        assert_eq!(s.unmatched(), 3);
        assert_eq!(s.hits("/things"), 2);
        assert_eq!(s.hits("/any"), 4);
    }

    #[tokio::test]
    async fn params_and_prefixes_match() {
        let s = server(
            "routes:\n\
         - {path: '/users/{id}/orders', body: orders}\n\
         - {path: '/static/*', body: static, headers: {content-type: text/css, x-demo: '1'}}\n\
         - {path: '/*', status: 418}",
        )
        .await;
        let mut c = Client::connect(s.addr()).await;
        assert_eq!(c.get("/users/42/orders").await.body, "orders");
        assert_eq!(c.get("/users/42/orders?page=2").await.body, "orders");
        // Not one segment / too long: falls through to the catch-all.
        assert_eq!(c.get("/users//orders").await.status, 418);
        assert_eq!(c.get("/users/4/2/orders").await.status, 418);
        assert_eq!(c.get("/users/42/orders/1").await.status, 418);
        let r = c.get("/static/css/site.css").await;
        assert_eq!((r.status, r.body.as_str()), (200, "static"));
        assert_eq!(r.header("content-type"), Some("text/css"));
        assert_eq!(r.header("x-demo"), Some("1"));
        assert_eq!(c.get("/static").await.status, 418);
        assert_eq!(s.hits("/users/{id}/orders"), 2);
        assert_eq!(s.hits("/static/*"), 1);
        assert_eq!(s.hits("/*"), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stall_holds_requests_until_the_window_ends() {
        // Window [600ms, 1600ms) from server start.
        let s = server(
            "routes:\n\
         - {path: /stall, stall: {after: 600ms, duration: 1s}}\n\
         - {path: /stall-slow, latency: 300ms, stall: {after: 600ms, duration: 1s}}\n\
         - {path: /free}",
        )
        .await;
        let start = s.started_at();
        let end = start + ms(1600);
        let addr = s.addr();
        // Issue `path` at `at` after start; return when the response arrived.
        let at = |offset: u64, path: &'static str| async move {
            tokio::time::sleep_until((start + ms(offset)).into()).await;
            let mut c = Client::connect(addr).await;
            let r = c.get(path).await;
            assert_eq!(r.status, 200, "{path}");
            Instant::now()
        };
        let before = tokio::spawn(at(0, "/stall"));
        // In progress when the window opens (would finish at ~700ms).
        let overlapping = tokio::spawn(at(400, "/stall-slow"));
        let inside = tokio::spawn(at(900, "/stall"));
        let other_route = tokio::spawn(at(900, "/free"));
        let after = tokio::spawn(at(1700, "/stall"));

        let before = before.await.unwrap();
        assert!(
            before < start + ms(400),
            "before the window: {:?}",
            before - start
        );
        let inside = inside.await.unwrap();
        assert!(
            inside >= end,
            "inside the window: answered at {:?}",
            inside - start
        );
        assert!(
            inside < end + ms(500),
            "held too long: {:?}",
            inside - start
        );
        let overlapping = overlapping.await.unwrap();
        assert!(
            overlapping >= end,
            "in progress at window start: {:?}",
            overlapping - start
        );
        let other_route = other_route.await.unwrap();
        assert!(
            other_route < start + ms(1300),
            "other route stalled: {:?}",
            other_route - start
        );
        let after = after.await.unwrap();
        assert!(
            after < start + ms(2100),
            "after the window: {:?}",
            after - start
        );
    }

    #[tokio::test]
    async fn builtin_routes_answer() {
        let s = spawn_local(ServeConfig::builtin()).await.unwrap();
        assert!(s.base_url().starts_with("http://127.0.0.1:"));
        let mut c = Client::connect(s.addr()).await;
        let r = c.get("/").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        let r = c.get("/schemas/ids/1").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(
            r.elapsed >= ms(1),
            "schemas has at least 1ms latency: {:?}",
            r.elapsed
        );
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(v["id"].is_string() && v["schema"].is_string(), "{v}");
        assert_eq!(
            c.send("POST", "/schemas", br#"{"schema":"x"}"#)
                .await
                .status,
            201
        );
        let r = c
            .send(
                "POST",
                "/compatibility/subjects/s/versions/latest",
                br#"{"schema":"x"}"#,
            )
            .await;
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!((r.status, v["is_compatible"].as_bool()), (200, Some(true)));
        assert_eq!(c.get("/slow").await.status, 200);
        assert_eq!(c.get("/error").await.status, 500);
        assert_eq!(c.get("/missing").await.status, 404);
    }

    #[tokio::test]
    async fn large_request_bodies_keep_the_connection_usable() {
        let s = server("routes: [{method: POST, path: /upload, status: 202}, {path: /}]").await;
        let mut c = Client::connect(s.addr()).await;
        let big = vec![b'x'; 300_000];
        for _ in 0..3 {
            assert_eq!(c.send("POST", "/upload", &big).await.status, 202);
            assert_eq!(c.get("/").await.status, 200);
        }
        // Also for a 404 whose body nobody wanted.
        assert_eq!(c.send("POST", "/elsewhere", &big).await.status, 404);
        assert_eq!(c.get("/").await.status, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_keep_alive_connections() {
        let s = server("routes: [{path: /, latency: 100ms, body: ok}]").await;
        let n = 300;
        let mut clients = Vec::new();
        for _ in 0..n {
            clients.push(Client::connect(s.addr()).await);
        }
        let start = Instant::now();
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|mut c| {
                tokio::spawn(async move {
                    let a = c.get("/").await.status;
                    let b = c.get("/").await.status;
                    (a, b)
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), (200, 200));
        }
        // Served concurrently, not one after another (that would take 100 s).
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(s.hits("/"), 2 * n);
    }

    /// Memory per idle keep-alive connection (server and this client
    /// together, since they share the process). Slow-ish and machine-sensitive,
    /// so opt-in: `cargo test --release -p barrage-runner --test serve -- --ignored`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn idle_connections_are_cheap() {
        fn rss_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
        let s = server("routes: [{path: /, body: ok}]").await;
        let n = 4000;
        let before = rss_kib();
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let mut c = Client::connect(s.addr()).await;
            assert_eq!(c.get("/").await.status, 200);
            clients.push(c);
        }
        let per_conn = (rss_kib() - before) as f64 / n as f64;
        println!("{per_conn:.1} KiB per idle connection (server + client)");
        // hyper keeps an 8 KiB read and an 8 KiB write buffer per connection,
        // the client an 8 KiB BufReader; the rest should be small.
        assert!(per_conn < 48.0, "{per_conn:.1} KiB per connection");
        assert_eq!(s.hits("/"), n as u64);
    }

    /// Waits until the server closes `s` (EOF or reset): how long that took.
    async fn closed_after(mut s: TcpStream, start: Instant) -> Duration {
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                Err(_) => panic!("still open after 10 s"),
                Ok(Ok(0) | Err(_)) => return start.elapsed(),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// A head sent up to (not including) its final empty line.
    const HALF_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_and_slow_heads_are_closed_but_requests_in_progress_are_not() {
        let limits = ServeLimits {
            header_read_timeout: ms(300),
            idle_timeout: ms(900),
            max_connections: 1000,
        };
        let config = ServeConfig::from_yaml_str(
            "routes: [{path: /slow, latency: 1500ms, body: slow}, {path: /, body: ok}]",
        )
        .unwrap();
        let s = spawn_local_with(config, limits).await.unwrap();
        let start = Instant::now();
        let mut idle = Vec::new();
        let mut slowloris = Vec::new();
        for _ in 0..5 {
            idle.push(TcpStream::connect(s.addr()).await.unwrap());
            let mut c = TcpStream::connect(s.addr()).await.unwrap();
            c.write_all(HALF_HEAD).await.unwrap();
            slowloris.push(c);
        }
        // One more trickles a header line every 100 ms: the limit counts from
        // the head's first byte, not from the last one.
        let mut trickle = TcpStream::connect(s.addr()).await.unwrap();
        trickle.write_all(HALF_HEAD).await.unwrap();
        let trickler = tokio::spawn(async move {
            let t0 = Instant::now();
            for i in 0.. {
                tokio::time::sleep(ms(100)).await;
                if trickle
                    .write_all(format!("X-{i}: y\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return t0.elapsed();
                }
                if t0.elapsed() > Duration::from_secs(5) {
                    panic!("a trickled head was never cut");
                }
            }
            unreachable!()
        });
        // A request in progress longer than both limits is answered.
        let slow = tokio::spawn({
            let addr = s.addr();
            async move { Client::connect(addr).await.get("/slow").await }
        });

        let heads: Vec<_> = slowloris
            .into_iter()
            .map(|c| tokio::spawn(closed_after(c, start)))
            .collect();
        let idles: Vec<_> = idle
            .into_iter()
            .map(|c| tokio::spawn(closed_after(c, start)))
            .collect();
        for h in heads {
            let t = h.await.unwrap();
            assert!(t >= ms(300) && t < ms(900), "half head closed after {t:?}");
        }
        assert!(trickler.await.unwrap() < Duration::from_secs(2));
        for h in idles {
            let t = h.await.unwrap();
            assert!(
                t >= ms(900) && t < ms(2500),
                "idle connection closed after {t:?}"
            );
        }
        let r = slow.await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "slow"));
        // A keep-alive connection is closed only after being idle that long.
        let mut c = Client::connect(s.addr()).await;
        for _ in 0..4 {
            tokio::time::sleep(ms(300)).await;
            assert_eq!(c.get("/").await.status, 200);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_the_connection_cap_idle_sockets_make_room_for_a_real_client() {
        // Long timeouts: only shedding at the cap can let the client in soon.
        let limits = ServeLimits {
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 20,
        };
        let config = ServeConfig::from_yaml_str(
            "routes: [{path: /slow, latency: 2s, body: slow}, {path: /, body: ok}]",
        )
        .unwrap();
        let s = spawn_local_with(config, limits).await.unwrap();
        // Two requests in progress, which must survive the shedding.
        let busy: Vec<_> = (0..2)
            .map(|_| {
                let addr = s.addr();
                tokio::spawn(async move { Client::connect(addr).await.get("/slow").await })
            })
            .collect();
        let mut hogs = Vec::new();
        for i in 0..40 {
            let mut c = TcpStream::connect(s.addr()).await.unwrap();
            if i % 2 == 0 {
                c.write_all(HALF_HEAD).await.unwrap();
            }
            hogs.push(c);
        }
        let start = Instant::now();
        let mut c = Client::connect(s.addr()).await;
        let r = tokio::time::timeout(Duration::from_secs(5), c.get("/"))
            .await
            .expect("a real client is served although idle sockets filled the cap");
        assert_eq!(r.status, 200);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        for b in busy {
            let r = b.await.unwrap();
            assert_eq!((r.status, r.body.as_str()), (200, "slow"));
        }
    }

    #[tokio::test]
    async fn shutdown_stops_the_listener() {
        let s = server("routes: [{path: /}]").await;
        let addr = s.addr();
        let mut c = Client::connect(addr).await;
        assert_eq!(c.get("/").await.status, 200);
        tokio::time::timeout(Duration::from_secs(5), s.shutdown())
            .await
            .expect("an idle keep-alive connection does not hold up shutdown");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still accepting after shutdown"
        );
        // The idle connection was closed too.
        let mut buf = [0u8; 1];
        let n = c.conn.read(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0, "the kept-alive connection should be closed");
    }

    #[tokio::test]
    async fn dropping_the_server_stops_it() {
        let s = server("routes: [{path: /}]").await;
        let addr = s.addr();
        drop(s);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).await.is_ok() {
            assert!(Instant::now() < deadline, "still accepting 5s after drop");
            tokio::time::sleep(ms(10)).await;
        }
    }

    #[tokio::test]
    async fn run_cli_reports_bad_config_and_address() {
        use barrage_runner::serve::run_cli;
        let missing = std::path::Path::new("/nonexistent/serve.yaml");
        let err = run_cli("127.0.0.1:0", Some(missing), Default::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err}");
        let err = run_cli("not-an-address", None, Default::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Listen { .. }), "{err}");
    }

    fn invalid(yaml: &str) -> (String, String) {
        match ServeConfig::from_yaml_str(yaml) {
            Err(Error::Invalid { field, message }) => (field, message),
            other => panic!("expected an Invalid error for {yaml:?}, got {other:?}"),
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        let (field, msg) = invalid("routes: [{path: /}, {path: /x, bodyy: hi}]");
        assert!(field.starts_with("routes[1]"), "{field}: {msg}");
        assert!(msg.contains("bodyy"), "{field}: {msg}");

        let (field, msg) = invalid("routes: [{path: /}, {path: /}, {path: /x, latency: '10%:50'}]");
        assert_eq!(field, "routes[2].latency", "{msg}");
        assert!(msg.contains("missing unit"), "{msg}");

        let (field, msg) = invalid("routes: [{path: /x, latency: '60%:1ms, 50%:2ms'}]");
        assert_eq!(field, "routes[0].latency", "{msg}");
        assert!(msg.contains("100%"), "{msg}");

        for rate in ["1.5", "-0.1"] {
            let (field, msg) = invalid(&format!(
                "routes: [{{path: /}}, {{path: /x, errorRate: {rate}}}]"
            ));
            assert_eq!(field, "routes[1].errorRate", "{msg}");
            assert!(msg.contains(rate), "{msg}");
        }

        let (field, _) = invalid("routes: [{path: x}]");
        assert_eq!(field, "routes[0].path");
        let (field, _) = invalid("routes: [{path: /, method: 'GE T'}]");
        assert_eq!(field, "routes[0].method");
        let (field, _) = invalid("routes: [{path: /, status: 99}]");
        assert_eq!(field, "routes[0].status");
        let (field, _) = invalid("routes: [{path: /, stall: {after: 1s}}]");
        assert!(field.starts_with("routes[0].stall"), "{field}");
        let (field, _) = invalid("routes: [{path: /, headers: {'bad header': x}}]");
        assert_eq!(field, "routes[0].headers");
        let (field, _) = invalid("routes: []");
        assert_eq!(field, "routes");
        let (field, msg) = invalid("rutes: []");
        assert!(msg.contains("rutes"), "{field}: {msg}");
    }

    #[test]
    fn json_configs_and_files_load() {
        let c = ServeConfig::from_yaml_str(
            r#"{"routes":[{"path":"/j","errorRate":0.5,"latency":"1ms"}]}"#,
        )
        .unwrap();
        assert_eq!(c.routes[0].error_rate, 0.5);

        let dir = std::env::temp_dir().join(format!("barrage-serve-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.yaml");
        std::fs::write(&file, "routes: [{path: /, latency: 'fast'}]").unwrap();
        match ServeConfig::load(&file) {
            Err(Error::Invalid { field, message }) => {
                assert_eq!(field, "routes[0].latency");
                assert!(message.contains("bad.yaml"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ServeConfig::load(dir.join("missing.yaml")),
            Err(Error::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // --- The auth flow (register, authorize with PKCE, token, bearer checks).

    /// RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const REDIRECT: &str = "http://app.test/cb";

    fn json(r: &Reply) -> serde_json::Value {
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {:?}", r.body))
    }

    fn basic(email: &str, password: &str) -> String {
        use base64::Engine as _;
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
        format!("Basic {creds}")
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    async fn register(c: &mut Client, email: &str, password: &str) -> Reply {
        let body = serde_json::json!({"email": email, "password": password}).to_string();
        c.send("POST", "/auth/register", body.as_bytes()).await
    }

    fn authorize_path(challenge: &str, method: &str, state: &str) -> String {
        format!(
            "/auth/authorize?client_id=barrage&redirect_uri={}&response_type=code\
             &code_challenge={challenge}&code_challenge_method={method}&state={state}",
            "http%3A%2F%2Fapp.test%2Fcb"
        )
    }

    /// GET /auth/authorize with Basic credentials; the code from the redirect.
    async fn authorize(c: &mut Client, email: &str, password: &str, challenge: &str) -> String {
        let auth = basic(email, password);
        let r = c
            .send_with(
                "GET",
                &authorize_path(challenge, "S256", "st"),
                &[("Authorization", &auth)],
                b"",
            )
            .await;
        assert_eq!(r.status, 302, "{}", r.body);
        let location = r.header("location").expect("a Location header");
        let query = location
            .strip_prefix(&format!("{REDIRECT}?"))
            .unwrap_or_else(|| panic!("{location}"));
        query
            .split('&')
            .find_map(|p| p.strip_prefix("code="))
            .expect("a code")
            .to_string()
    }

    async fn exchange(c: &mut Client, code: &str, verifier: &str) -> Reply {
        let body = format!(
            "grant_type=authorization_code&code={code}&code_verifier={verifier}\
             &redirect_uri=http%3A%2F%2Fapp.test%2Fcb"
        );
        c.send_with(
            "POST",
            "/auth/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .await
    }

    /// Register (if needed), authorize and exchange: an access token.
    async fn login(c: &mut Client, email: &str, password: &str) -> String {
        let r = register(c, email, password).await;
        assert!(matches!(r.status, 201 | 409), "{r:?}");
        let code = authorize(c, email, password, CHALLENGE).await;
        let r = exchange(c, &code, VERIFIER).await;
        assert_eq!(r.status, 200, "{}", r.body);
        json(&r)["access_token"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn registrations_stop_at_max_users_and_stats_say_so() {
        let s = server("auth: {maxUsers: 3}").await;
        let mut c = Client::connect(s.addr()).await;
        for i in 0..3 {
            let r = register(&mut c, &format!("u{i}@example.com"), "pw").await;
            assert_eq!(r.status, 201, "{}", r.body);
        }
        for i in 3..6 {
            let r = register(&mut c, &format!("u{i}@example.com"), "pw").await;
            assert_eq!(r.status, 507, "{}", r.body);
            assert_eq!(json(&r)["error"], "user_limit");
            assert!(r.body.contains("auth.maxUsers"), "{}", r.body);
        }
        // A taken email is still a conflict, not a limit.
        assert_eq!(register(&mut c, "u0@example.com", "pw").await.status, 409);
        assert_eq!(s.registered_users(), 3);
        // The users kept still work.
        login(&mut c, "u1@example.com", "pw").await;
        let stats = json(&c.get("/auth/stats").await);
        assert_eq!(stats["registered"], 3);
        assert_eq!(stats["maxUsers"], 3);
        assert_eq!(stats["refusedRegistrations"], 3);
        // Oversized fields are refused, so each user's memory is bounded too.
        let long = "x".repeat(257);
        let r = register(&mut c, &long, "pw").await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains("email is over 256 bytes"), "{}", r.body);
    }

    #[tokio::test]
    async fn auth_flow_end_to_end() {
        let s = server(
            "auth: {tokenTtl: 1h}\n\
             routes:\n\
             - {method: GET, path: /private, requireToken: true, body: secret}\n\
             - {path: /public, body: public}",
        )
        .await;
        let mut c = Client::connect(s.addr()).await;

        let r = register(&mut c, "alice@example.com", "s3cret").await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let alice = json(&r)["userId"].as_str().unwrap().to_string();
        assert_eq!(
            s.user_id("alice@example.com").as_deref(),
            Some(alice.as_str())
        );
        let r = register(&mut c, "alice@example.com", "other").await;
        assert_eq!(r.status, 409, "duplicate email: {}", r.body);
        assert_eq!(
            c.send("POST", "/auth/register", b"{\"email\":1}")
                .await
                .status,
            400
        );
        assert_eq!(
            c.send("POST", "/auth/register", b"not json").await.status,
            400
        );
        assert_eq!(s.registered_users(), 1);

        // Authorize: 302 to the redirect URI with the code and the state.
        let auth = basic("alice@example.com", "s3cret");
        let r = c
            .send_with(
                "GET",
                &authorize_path(CHALLENGE, "S256", "xyz%20%2F1"),
                &[("Authorization", &auth)],
                b"",
            )
            .await;
        assert_eq!(r.status, 302, "{}", r.body);
        let location = r.header("location").unwrap().to_string();
        assert!(
            location.starts_with("http://app.test/cb?code="),
            "{location}"
        );
        assert!(location.ends_with("&state=xyz%20%2F1"), "{location}");
        let code = location["http://app.test/cb?code=".len()..]
            .split('&')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(code.len(), 43, "{code}");

        // A wrong verifier is refused (and does not use the code up).
        let wrong = "A".repeat(43);
        let r = exchange(&mut c, &code, &wrong).await;
        assert_eq!(r.status, 400);
        assert_eq!(json(&r)["error"], "invalid_grant");
        // The right one gets a token.
        let r = exchange(&mut c, &code, VERIFIER).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = json(&r);
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["expires_in"], 3600);
        let token = v["access_token"].as_str().unwrap().to_string();
        assert!(token.len() >= 32, "{token}");
        // A code is single-use.
        let r = exchange(&mut c, &code, VERIFIER).await;
        assert_eq!(
            (r.status, json(&r)["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert_eq!(s.tokens_issued(), 1);

        // Bearer checks.
        let r = c
            .send_with(
                "GET",
                "/auth/me",
                &[("Authorization", &bearer(&token))],
                b"",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(json(&r)["userId"], alice.as_str());
        assert_eq!(json(&r)["email"], "alice@example.com");
        let r = c.get("/auth/me").await;
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let r = c
            .send_with("GET", "/auth/me", &[("Authorization", "Bearer nope")], b"")
            .await;
        assert_eq!(
            (r.status, json(&r)["error"].as_str()),
            (401, Some("invalid_token"))
        );
        let r = c
            .send_with("GET", "/auth/me", &[("Authorization", &auth)], b"")
            .await;
        assert_eq!(r.status, 401, "Basic is not a bearer token");

        // requireToken routes.
        let r = c
            .send_with(
                "GET",
                "/private",
                &[("Authorization", &bearer(&token))],
                b"",
            )
            .await;
        assert_eq!((r.status, r.body.as_str()), (200, "secret"));
        assert_eq!(c.get("/private").await.status, 401);
        assert_eq!(c.get("/public").await.status, 200);
        assert_eq!(c.send("PUT", "/auth/authorize", b"").await.status, 405);

        assert_eq!(s.distinct_users(), 1);
        assert_eq!(
            s.user_requests().get(&alice),
            Some(&2),
            "{:?}",
            s.user_requests()
        );
        assert_eq!(s.hits("/private"), 2);
        assert_eq!(s.hits("/auth/token"), 3);
        assert_eq!(s.hits("/auth/authorize"), 1);

        // DELETE /auth/me: the user and every token of theirs are gone.
        let me = [("Authorization", bearer(&token))];
        let me = [(me[0].0, me[0].1.as_str())];
        let r = c.send_with("DELETE", "/auth/me", &[], b"").await;
        assert_eq!(r.status, 401);
        assert_eq!(s.registered_users(), 1);
        let r = c.send_with("DELETE", "/auth/me", &me, b"").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(json(&r)["deleted"], alice.as_str());
        assert_eq!((s.registered_users(), s.deleted_users()), (0, 1));
        assert_eq!(c.send_with("GET", "/auth/me", &me, b"").await.status, 401);
        let r = c.send_with("DELETE", "/auth/me", &me, b"").await;
        assert_eq!(r.status, 401, "a deleted user's token is not live");
        assert_eq!(s.deleted_users(), 1);
        // The email may register again, as a new user.
        assert_eq!(
            register(&mut c, "alice@example.com", "other").await.status,
            201
        );
        assert_ne!(s.user_id("alice@example.com"), Some(alice));
    }

    #[tokio::test]
    async fn authorize_and_token_errors() {
        // A catch-all route does not hide the auth endpoints.
        let s = server("auth: {}\nroutes: [{path: '/*', status: 418}]").await;
        let mut c = Client::connect(s.addr()).await;
        assert_eq!(register(&mut c, "bob@example.com", "pw").await.status, 201);
        let good = basic("bob@example.com", "pw");
        let get = |path: String, auth: String| (path, auth);
        let cases = [
            (
                get(
                    authorize_path(CHALLENGE, "S256", "s"),
                    basic("bob@example.com", "bad"),
                ),
                401,
            ),
            (
                get(
                    authorize_path(CHALLENGE, "S256", "s"),
                    basic("eve@example.com", "pw"),
                ),
                401,
            ),
            (
                get(authorize_path(CHALLENGE, "S256", "s"), String::new()),
                401,
            ),
            (
                get(authorize_path(CHALLENGE, "plain", "s"), good.clone()),
                400,
            ),
            (get(authorize_path("", "S256", "s"), good.clone()), 400),
            (
                get(authorize_path("tooShort", "S256", "s"), good.clone()),
                400,
            ),
            (
                get(
                    authorize_path(CHALLENGE, "S256", "s")
                        .replace("&code_challenge_method=S256", ""),
                    good.clone(),
                ),
                400,
            ),
            (
                get(
                    authorize_path(CHALLENGE, "S256", "s").replace("&code_challenge=", "&x="),
                    good.clone(),
                ),
                400,
            ),
            (
                get(
                    authorize_path(CHALLENGE, "S256", "s")
                        .replace("response_type=code", "response_type=token"),
                    good.clone(),
                ),
                400,
            ),
            (
                get(
                    authorize_path(CHALLENGE, "S256", "s").replace("client_id=barrage&", ""),
                    good.clone(),
                ),
                400,
            ),
        ];
        for ((path, auth), want) in cases {
            let headers: &[(&str, &str)] = if auth.is_empty() {
                &[]
            } else {
                &[("Authorization", &auth)]
            };
            let r = c.send_with("GET", &path, headers, b"").await;
            assert_eq!(r.status, want, "{path} {auth}: {}", r.body);
            assert!(json(&r)["error"].is_string(), "{}", r.body);
        }
        // Another method falls through to the routes, like any path.
        assert_eq!(c.send("PUT", "/auth/authorize", b"").await.status, 418);

        // The form POST variant, to a redirect URI that already has a query.
        let body = format!(
            "client_id=c&redirect_uri=http%3A%2F%2Fapp.test%2Fcb%3Fx%3D1&response_type=code\
             &code_challenge={CHALLENGE}&code_challenge_method=S256\
             &email=bob%40example.com&password=pw"
        );
        let form = [("Content-Type", "application/x-www-form-urlencoded")];
        let r = c
            .send_with("POST", "/auth/authorize", &form, body.as_bytes())
            .await;
        assert_eq!(r.status, 302, "{}", r.body);
        let location = r.header("location").unwrap();
        let code = location
            .strip_prefix("http://app.test/cb?x=1&code=")
            .unwrap_or_else(|| panic!("{location}"))
            .to_string();
        let r = c
            .send_with(
                "POST",
                "/auth/authorize",
                &form,
                body.replace("pw", "nope").as_bytes(),
            )
            .await;
        assert_eq!(r.status, 401);

        // Token errors: the redirect URI must match, the grant type be known.
        let token_req = |extra: &str| {
            format!("grant_type=authorization_code&code={code}&code_verifier={VERIFIER}{extra}")
        };
        for (body, error) in [
            (
                token_req("&redirect_uri=http%3A%2F%2Fapp.test%2Fcb"),
                "invalid_grant",
            ),
            (token_req(""), "invalid_grant"),
            (
                token_req("&redirect_uri=x").replace("authorization_code", "password"),
                "unsupported_grant_type",
            ),
            (
                token_req("&redirect_uri=x").replace(&code, "unknown"),
                "invalid_grant",
            ),
            (
                token_req("&redirect_uri=x").replace(VERIFIER, "short"),
                "invalid_grant",
            ),
        ] {
            let r = c
                .send_with("POST", "/auth/token", &form, body.as_bytes())
                .await;
            assert_eq!(
                (r.status, json(&r)["error"].as_str()),
                (400, Some(error)),
                "{body}"
            );
        }
        let good = token_req("&redirect_uri=http%3A%2F%2Fapp.test%2Fcb%3Fx%3D1");
        let r = c
            .send_with("POST", "/auth/token", &form, good.as_bytes())
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(c.get("/elsewhere").await.status, 418);
    }

    #[tokio::test]
    async fn codes_and_tokens_expire() {
        let s = server("auth: {tokenTtl: 300ms, codeTtl: 300ms}").await;
        let mut c = Client::connect(s.addr()).await;
        let token = login(&mut c, "carol@example.com", "pw").await;
        let stale_code = authorize(&mut c, "carol@example.com", "pw", CHALLENGE).await;
        let me = |t: &str| ("Authorization".to_string(), bearer(t));
        let (n, v) = me(&token);
        assert_eq!(
            c.send_with("GET", "/auth/me", &[(&n, &v)], b"")
                .await
                .status,
            200
        );
        tokio::time::sleep(ms(400)).await;
        assert_eq!(
            c.send_with("GET", "/auth/me", &[(&n, &v)], b"")
                .await
                .status,
            401
        );
        let r = exchange(&mut c, &stale_code, VERIFIER).await;
        assert_eq!(
            (r.status, json(&r)["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        // Any verifier whose challenge was sent works, not just the RFC's.
        let verifier = "x".repeat(64);
        let challenge = barrage_runner::serve::pkce_challenge(&verifier);
        let code = authorize(&mut c, "carol@example.com", "pw", &challenge).await;
        let r = exchange(&mut c, &code, &verifier).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(json(&r)["expires_in"], 0, "300ms rounds down to 0 s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn distinct_users_and_per_user_counts() {
        let s = server("auth: {}\nroutes: [{path: /api/*, requireToken: true, body: ok}]").await;
        let addr = s.addr();
        // Five users registered, three of them log in and make 1, 2 and 3
        // requests each on their own connections; the third logs in twice.
        let mut c = Client::connect(addr).await;
        for i in 0..5 {
            assert_eq!(
                register(&mut c, &format!("u{i}@example.com"), "pw")
                    .await
                    .status,
                201
            );
        }
        let mut tasks = Vec::new();
        for i in 0..3usize {
            tasks.push(tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                let email = format!("u{i}@example.com");
                let mut tokens = vec![login(&mut c, &email, "pw").await];
                if i == 2 {
                    tokens.push(login(&mut c, &email, "pw").await);
                }
                for n in 0..=i {
                    let t = bearer(&tokens[n % tokens.len()]);
                    let r = c
                        .send_with("GET", "/api/x", &[("Authorization", &t)], b"")
                        .await;
                    assert_eq!(r.status, 200);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // Refused requests count for nobody.
        assert_eq!(c.get("/api/x").await.status, 401);

        assert_eq!(s.distinct_users(), 3);
        assert_eq!(s.registered_users(), 5);
        assert_eq!(s.tokens_issued(), 4);
        let counts = s.user_requests();
        assert_eq!(counts.len(), 5);
        for i in 0..5u64 {
            let id = s.user_id(&format!("u{i}@example.com")).unwrap();
            let want = if i < 3 { i + 1 } else { 0 };
            assert_eq!(counts[&id], want, "u{i}: {counts:?}");
        }
        assert_eq!(s.hits("/api/*"), 7);
    }

    #[tokio::test]
    async fn builtin_has_auth() {
        let s = spawn_local(ServeConfig::builtin()).await.unwrap();
        let mut c = Client::connect(s.addr()).await;
        assert_eq!(c.get("/account/plan").await.status, 401);
        let token = login(&mut c, "demo@example.com", "demo").await;
        let r = c
            .send_with(
                "GET",
                "/account/plan",
                &[("Authorization", &bearer(&token))],
                b"",
            )
            .await;
        assert_eq!((r.status, json(&r)["plan"].as_str()), (200, Some("demo")));
        assert_eq!(s.distinct_users(), 1);
        // Without `auth`, the endpoints do not exist and requireToken is refused.
        let s = server("routes: [{path: /}]").await;
        let mut c = Client::connect(s.addr()).await;
        assert_eq!(c.send("POST", "/auth/register", b"{}").await.status, 404);
        assert_eq!(s.distinct_users(), 0);
        let (field, _) = invalid("routes: [{path: /, requireToken: true}]");
        assert_eq!(field, "routes[0].requireToken");
    }
}
