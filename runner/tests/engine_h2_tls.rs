//! The engine's HTTP/2 over TLS against the built-in target (`serve` with a
//! self-signed CA): `http: "2"` multiplexes the users over
//! `target.connections` connections chosen by ALPN; `"auto"` asks the
//! server once and then runs HTTP/2 or HTTP/1.1 as it chose; `"2"` against a
//! server that only speaks HTTP/1.1 fails each request: its handshake is
//! refused (no protocol in common), `tls_refused`. Which
//! protocol ran shows in the connections opened: HTTP/1.1 connections are
//! each user's own, HTTP/2 ones are shared.

#[path = "support/local_run.rs"]
mod local_run;

use std::path::PathBuf;

use barrage_runner::{
    report::Report,
    serve::{HttpVersions, LocalServer, ServeConfig, ServeOptions, TlsOptions, spawn_local_opts},
    snapshot::ErrorKind,
    tls::server::self_signed,
};

struct Target {
    server: LocalServer,
    dir: PathBuf,
}

async fn target(http: HttpVersions) -> Target {
    let made = self_signed(&["127.0.0.1".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "barrage-h2-tls-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), &made.ca_pem).unwrap();
    let config = ServeConfig::from_yaml_str("routes: [{path: /, body: ok}]").unwrap();
    let server = spawn_local_opts(
        config,
        ServeOptions {
            tls: Some(TlsOptions::from_self_signed(&made).unwrap()),
            http,
            ..ServeOptions::default()
        },
    )
    .await
    .unwrap();
    Target { server, dir }
}

async fn run(t: &Target, target_extra: &str, users: u32, iterations: u32) -> Report {
    let yaml = format!(
        "target: {{baseUrl: '{}', tls: {{caFile: ca.pem, caMode: replace}}{target_extra}}}\n\
         load: {{users: {users}, iterations: {iterations}}}\n\
         requests: [{{name: root, path: /}}]\n",
        t.server.base_url()
    );
    local_run::run_workers(&yaml, t.dir.clone(), 1).await
}

fn opened(r: &Report) -> u64 {
    r.summary.connections.as_ref().map_or(0, |c| c.opened)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_alpn_shares_its_connections_and_counts_every_stream() {
    let t = target(HttpVersions::Both).await;
    let r = run(&t, ", http: '2', connections: 2", 20, 1000).await;
    assert!(r.passed, "{:?}", r.summary);
    assert_eq!(r.summary.total.requests, 1000);
    assert_eq!(r.summary.total.errors, 0);
    // 20 users, 2 connections: HTTP/1.1 would have opened 20.
    assert_eq!(opened(&r), 2);
    let c = r.summary.connections.as_ref().unwrap();
    assert!(
        c.tls_handshake_ms.is_some(),
        "handshakes are their own figure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_runs_h2_when_the_server_chooses_it_and_http1_when_not() {
    let both = target(HttpVersions::Both).await;
    let r = run(&both, ", http: auto, connections: 2", 20, 400).await;
    assert!(r.passed, "{:?}", r.summary);
    assert_eq!(r.summary.total.requests, 400);
    // The one connection that asked, then the two HTTP/2 connections.
    assert_eq!(opened(&r), 3);

    let h1 = target(HttpVersions::Http1Only).await;
    let r = run(&h1, ", http: auto", 20, 400).await;
    assert!(r.passed, "{:?}", r.summary);
    assert_eq!(r.summary.total.requests, 400);
    // The one that asked, then each user's own HTTP/1.1 connection.
    assert_eq!(opened(&r), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_against_an_http1_only_server_fails_each_request_as_refused() {
    let t = target(HttpVersions::Http1Only).await;
    let r = run(&t, ", http: '2'", 2, 10).await;
    assert!(!r.passed);
    assert_eq!(r.summary.total.requests, 10);
    let errors = &r.snapshot.stats(None).unwrap().errors;
    assert_eq!(errors.get(&ErrorKind::TlsRefused), Some(&10), "{errors:?}");
}
