//! The engine against an HTTPS target on loopback (certificates made here
//! with rcgen): trust (caFile added or replacing, serverName, mutual TLS,
//! insecureSkipVerify), TLS failures under their own kinds, keep-alive and
//! session resumption, journeys, exact counts, and connection setup
//! measured apart from request latency.

#[path = "support/local_run.rs"]
mod local_run;
#[path = "support/tls_target.rs"]
mod tls_target;

use std::{
    path::{Path, PathBuf},
    sync::atomic::Ordering,
};

use barrage_runner::{compile::Slot, planfile, report::Report, snapshot::ErrorKind};
use tls_target::{Ca, Pair, Target, TargetOpts, start};

/// A directory of PEM files for one test.
fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "barrage-tls-{tag}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn target(cert: &Pair) -> Target {
    start(TargetOpts {
        cert,
        client_ca: None,
        tls12_only: false,
    })
    .await
}

/// Runs `plan` (BASE replaced by the target's https URL) with files from `dir`.
async fn run(t: &Target, plan: &str, dir: &Path) -> Report {
    run_workers(t, plan, dir, 1).await
}

async fn run_workers(t: &Target, plan: &str, dir: &Path, workers: u32) -> Report {
    let yaml = plan.replace("BASE", &format!("https://{}", t.addr));
    local_run::run_workers(&yaml, dir.to_path_buf(), workers).await
}

fn kinds(r: &Report) -> Vec<(ErrorKind, u64)> {
    r.snapshot.stats(None).unwrap().errors.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_over_tls_with_a_private_ca_counts_exactly() {
    let ca = Ca::new("test ca");
    let d = dir("keepalive");
    std::fs::write(d.join("ca.crt"), ca.pem()).unwrap();
    let t = target(&ca.leaf(&["127.0.0.1", "localhost"], false)).await;
    for mode in ["add", "replace"] {
        let before = t.seen.connections.load(Ordering::SeqCst);
        let served = t.seen.total();
        let plan = format!(
            "target: {{baseUrl: BASE, tls: {{caFile: ca.crt, caMode: {mode}}}}}\n\
             load: {{users: 2, iterations: 60}}\nrequests: [{{name: a, path: /a}}]\n"
        );
        let r = run(&t, &plan, &d).await;
        assert!(r.passed, "{mode}: {:?}", kinds(&r));
        assert_eq!(r.summary.total.requests, 60, "{mode}");
        assert_eq!(
            t.seen.total() - served,
            60,
            "{mode}: the target saw each once"
        );
        // Two users, one kept-alive connection each: two handshakes.
        let opened = t.seen.connections.load(Ordering::SeqCst) - before;
        assert!((1..=2).contains(&opened), "{mode}: {opened} connections");
        let c = &r.snapshot.connections;
        assert_eq!(c.opened(), opened, "{mode}");
        assert_eq!(c.tls_handshake.len(), opened, "{mode}");
        let s = r.summary.connections.as_ref().unwrap();
        assert_eq!(s.opened, opened);
        assert!(s.tls_handshake_ms.as_ref().unwrap().max > 0.0);
        // Not mixed into request latency: 60 request samples, no more.
        assert_eq!(r.snapshot.requests["a"].latency.len(), 60);
        assert!(r.summary.warnings.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_resume_the_tls_session() {
    let ca = Ca::new("test ca");
    let d = dir("resume");
    std::fs::write(d.join("ca.crt"), ca.pem()).unwrap();
    let t = target(&ca.leaf(&["127.0.0.1"], false)).await;
    // Every answer closes its connection: four connections, one after another.
    let plan = "target: {baseUrl: BASE, tls: {caFile: ca.crt}}\n\
                load: {users: 1, iterations: 4}\nrequests: [{name: c, path: /close}]\n";
    let r = run(&t, plan, &d).await;
    assert!(r.passed, "{:?}", kinds(&r));
    assert_eq!(t.seen.connections.load(Ordering::SeqCst), 4);
    assert_eq!(t.seen.full_handshakes.load(Ordering::SeqCst), 1);
    assert_eq!(t.seen.resumed.load(Ordering::SeqCst), 3);
    assert_eq!(r.snapshot.connections.tls_handshake.len(), 4);
}

/// Three requests that all fail the same way, each counted once; the
/// target never sees a request.
async fn fails_as(t: &Target, tls: &str, d: &Path, want: ErrorKind) {
    let plan = format!(
        "target: {{baseUrl: BASE, tls: {tls}}}\n\
         load: {{users: 1, iterations: 3}}\nrequests: [{{name: a, path: /a}}]\n"
    );
    let r = run(t, &plan, d).await;
    assert_eq!(kinds(&r), [(want, 3)], "{tls}");
    assert_eq!(r.summary.total.requests, 3, "{tls}");
    assert!(!r.passed);
    assert_eq!(t.seen.total(), 0, "{tls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_are_counted_under_their_own_kinds() {
    let ca = Ca::new("test ca");
    let d = dir("failures");
    std::fs::write(d.join("ca.crt"), ca.pem()).unwrap();
    // Not in the bundled roots.
    let good = target(&ca.leaf(&["127.0.0.1"], false)).await;
    fails_as(&good, "{}", &d, ErrorKind::TlsUnknownCa).await;
    // A name the certificate does not hold.
    fails_as(
        &good,
        "{caFile: ca.crt, serverName: other.test}",
        &d,
        ErrorKind::TlsNameMismatch,
    )
    .await;
    let expired = target(&ca.leaf(&["127.0.0.1"], true)).await;
    fails_as(&expired, "{caFile: ca.crt}", &d, ErrorKind::TlsExpired).await;
    // A TLS 1.2-only target refuses a client that insists on 1.3.
    let old = start(TargetOpts {
        cert: &ca.leaf(&["127.0.0.1"], false),
        client_ca: None,
        tls12_only: true,
    })
    .await;
    fails_as(
        &old,
        "{caFile: ca.crt, minVersion: '1.3'}",
        &d,
        ErrorKind::TlsRefused,
    )
    .await;
    // ... and serves one that accepts 1.2.
    let r = run(
        &old,
        "target: {baseUrl: BASE, tls: {caFile: ca.crt}}\nload: {users: 1, iterations: 2}\nrequests: [{name: a, path: /a}]\n",
        &d,
    )
    .await;
    assert!(r.passed, "{:?}", kinds(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_name_overrides_the_host_of_the_url() {
    let ca = Ca::new("test ca");
    let d = dir("sni");
    std::fs::write(d.join("ca.crt"), ca.pem()).unwrap();
    // Only a DNS name: reached by IP, it is verified against serverName.
    let t = target(&ca.leaf(&["target.test"], false)).await;
    let plan = "target: {baseUrl: BASE, tls: {caFile: ca.crt, serverName: target.test}}\n\
                load: {users: 1, iterations: 3}\nrequests: [{name: a, path: /a}]\n";
    let r = run(&t, plan, &d).await;
    assert!(r.passed, "{:?}", kinds(&r));
    assert_eq!(t.seen.total(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_runner_without_its_certificate() {
    let ca = Ca::new("test ca");
    let clients = Ca::new("client ca");
    let d = dir("mtls");
    std::fs::write(d.join("ca.crt"), ca.pem()).unwrap();
    clients.leaf(&["runner"], false).write(&d, "client");
    let t = start(TargetOpts {
        cert: &ca.leaf(&["127.0.0.1"], false),
        client_ca: Some(&clients),
        tls12_only: false,
    })
    .await;
    fails_as(&t, "{caFile: ca.crt}", &d, ErrorKind::TlsRefused).await;
    let plan = "target: {baseUrl: BASE, tls: {caFile: ca.crt, certFile: client.crt, keyFile: client.key}}\n\
                load: {users: 1, iterations: 3}\nrequests: [{name: a, path: /a}]\n";
    let r = run(&t, plan, &d).await;
    assert!(r.passed, "{:?}", kinds(&r));
    assert_eq!(t.seen.total(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_skip_verify_connects_and_says_so() {
    let ca = Ca::new("untrusted");
    let d = dir("insecure");
    let t = target(&ca.leaf(&["elsewhere.test"], false)).await;
    let plan = "target: {baseUrl: BASE, tls: {insecureSkipVerify: true}}\n\
                load: {users: 1, iterations: 2}\nrequests: [{name: a, path: /a}]\n";
    let r = run(&t, plan, &d).await;
    assert!(r.passed, "{:?}", kinds(&r));
    let warning = barrage_runner::tls::client::INSECURE_WARNING;
    assert_eq!(r.summary.warnings, [warning]);
    let json = serde_json::to_value(&r.summary).unwrap();
    assert_eq!(json["warnings"][0], warning);
    // What --summary-json writes.
    let brief = r.brief();
    assert_eq!(brief["warnings"][0], warning);
    assert_eq!(brief["connections"]["opened"], 1);
    assert!(
        brief["connections"]["tlsHandshakeMs"]["p50"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(brief["connections"]["connectMs"]["max"].is_number());
    assert!(barrage_runner::text::summary(&r, "t").contains(warning));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_captures_over_tls_and_redirects_never_go_to_http() {
    let ca = Ca::new("test ca");
    let d = dir("journey");
    std::fs::write(d.join("ca.crt"), ca.pem()).unwrap();
    let t = target(&ca.leaf(&["127.0.0.1"], false)).await;
    let plan = r#"target: {baseUrl: BASE, tls: {caFile: ca.crt}}
load: {users: 2, iterations: 10}
requests:
  - name: j
    steps:
      - {name: token, path: /token, capture: {tok: {json: /token}}}
      - {name: use, path: "/use?t={{ vars.tok }}"}
      - {name: down, path: /to-http, followRedirects: true, expect: {status: [302]}}
"#;
    let r = run(&t, plan, &d).await;
    assert!(r.passed, "{:?}", kinds(&r));
    assert_eq!(t.seen.hits("/token"), 10);
    assert_eq!(t.seen.hits("/use?t=t-42"), 10);
    // The https -> http redirect is the response, not followed.
    assert_eq!(t.seen.hits("/to-http"), 10);
    assert_eq!(t.seen.hits("/plain"), 0);
    assert_eq!(r.summary.total.requests, 30);
    assert_eq!(t.seen.total(), 30);
}

#[test]
fn tls_files_are_checked_before_the_run_and_keys_never_shown() {
    let d = dir("files");
    let secret = "c2VjcmV0LWtleS1tYXRlcmlhbC1kby1ub3Qtc2hvdw";
    std::fs::write(
        d.join("bad.key"),
        format!("-----BEGIN PRIVATE KEY-----\n{secret}!!\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    let ca = Ca::new("c");
    ca.leaf(&["runner"], false).write(&d, "client");
    let other = ca.leaf(&["other"], false);
    std::fs::write(d.join("other.key"), &other.key_pem).unwrap();
    let compile = |tls: &str| {
        let yaml = format!(
            "target: {{baseUrl: 'https://127.0.0.1:9', tls: {tls}}}\nload: {{users: 1, iterations: 1}}\nrequests: [{{name: a, path: /}}]\n"
        );
        planfile::from_str(&yaml, d.clone())
            .and_then(|l| l.compile(Slot::SOLO))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let e = compile("{certFile: client.crt, keyFile: bad.key}").unwrap_err();
    assert!(
        e.contains("target.tls.keyFile") && e.contains("bad.key"),
        "{e}"
    );
    assert!(!e.contains(secret) && !e.contains("c2VjcmV0"), "{e}");
    // A key that is not the certificate's: named, never shown.
    let e = compile("{certFile: client.crt, keyFile: other.key}").unwrap_err();
    assert!(e.contains("target.tls.keyFile"), "{e}");
    assert!(!e.contains("PRIVATE KEY"), "{e}");
    let e = compile("{caFile: missing.crt}").unwrap_err();
    assert!(
        e.contains("target.tls.caFile") && e.contains("missing.crt"),
        "{e}"
    );
    assert!(compile("{certFile: client.crt, keyFile: client.key}").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_data_forms_and_thresholds_work_over_tls() {
    let ca = Ca::new("test ca");
    let d = dir("open");
    std::fs::write(d.join("ca.crt"), ca.pem()).unwrap();
    let rows: Vec<String> = (0..100).map(|i| format!("{{\"id\":\"u{i}\"}}")).collect();
    std::fs::write(d.join("users.jsonl"), rows.join("\n")).unwrap();
    let t = target(&ca.leaf(&["127.0.0.1"], false)).await;
    let plan = r#"target: {baseUrl: BASE, tls: {caFile: ca.crt}}
load: {executor: arrival-rate, rate: 100, duration: 1s}
data: {file: users.jsonl, select: unique}
requests:
  - {name: f, method: POST, path: /form, form: {id: "{{ record.id }}"}}
thresholds: ["error_rate == 0", "p(99) < 5s", "requests == 100"]
"#;
    let r = run_workers(&t, plan, &d, 2).await;
    assert!(r.passed, "{:?} {:?}", kinds(&r), r.thresholds);
    assert_eq!(r.thresholds.len(), 3);
    assert_eq!(r.summary.total.requests + r.summary.dropped, 100);
    assert_eq!(r.summary.total.requests, 100);
    assert_eq!(t.seen.hits("/form"), 100);
    assert_eq!(r.summary.distinct_records, 100);
    // Both runners' connections, merged.
    let c = &r.snapshot.connections;
    assert_eq!(c.opened(), t.seen.connections.load(Ordering::SeqCst));
    assert_eq!(c.tls_handshake.len(), c.opened());
}

/// A TCP server on loopback that does `serve` with every connection.
async fn raw_server<F, Fut>(serve: F) -> Target
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(tls_target::Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(tcp));
        }
    });
    Target { addr, seen }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_finishes_the_handshake_times_out_and_plain_http_is_a_tls_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let d = dir("raw");
    // Accepts, reads the ClientHello, says nothing.
    let silent = raw_server(|mut tcp| async move {
        let mut buf = [0u8; 4096];
        while tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    let plan = "target: {baseUrl: BASE, timeout: 300ms}\n\
                load: {users: 1, iterations: 2}\nrequests: [{name: a, path: /a}]\n";
    let r = run(&silent, plan, &d).await;
    assert_eq!(kinds(&r), [(ErrorKind::Timeout, 2)]);
    assert_eq!(r.summary.total.requests, 2);
    // Connected, but no handshake completed: no connection opened.
    assert_eq!(silent.seen.connections.load(Ordering::SeqCst), 2);
    assert!(r.snapshot.connections.is_empty());
    assert!(r.summary.connections.is_none());

    // A cleartext HTTP server behind an https:// URL.
    let plain = raw_server(|mut tcp| async move {
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
    })
    .await;
    let r = run(&plain, plan, &d).await;
    assert_eq!(kinds(&r), [(ErrorKind::Tls, 2)]);
    assert_eq!(r.summary.total.requests, 2);
}
