//! The run's lifecycle where only a test hook can reach: a task that panics
//! fails the run, stops it, and loses nothing it measured.

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use super::Runner;
use crate::{
    compile::Slot,
    planfile,
    report::Report,
    serve::{LocalServer, ServeConfig, spawn_local},
    snapshot::ErrorKind,
    thresholds,
};

async fn server() -> LocalServer {
    spawn_local(ServeConfig::from_yaml_str("routes: [{path: /}]").unwrap())
        .await
        .unwrap()
}

fn runner(srv: &LocalServer, load: &str, slot: Slot) -> Arc<Runner> {
    let yaml = format!(
        "target: {{baseUrl: '{}'}}\nload: {load}\nrequests: [{{name: a, path: /}}]\n",
        srv.base_url()
    );
    let loaded = planfile::from_str(&yaml, Default::default()).unwrap();
    Runner::new(Arc::new(loaded.compile(slot).unwrap()))
}

/// Runs `r` with iteration 5 panicking; returns its report.
async fn run_with_panic(r: &Arc<Runner>) -> Report {
    r.panic_at.store(5, Ordering::SeqCst);
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), r.run())
        .await
        .expect("a panic must not hang the run");
    // It stopped at the panic, not at the planned end (30 s).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let snap = r.snapshot();
    let outcomes = thresholds::evaluate(&r.plan.thresholds, &snap);
    Report::new(snap, outcomes, None)
}

fn check(report: &Report, srv: &LocalServer, what: &str) {
    assert!(!report.passed);
    assert_eq!(
        report.snapshot.failures.len(),
        1,
        "{:?}",
        report.snapshot.failures
    );
    let f = &report.snapshot.failures[0];
    assert!(
        f.contains(what) && f.contains("injected panic at iteration 5"),
        "{f}"
    );
    // What was measured is kept: every request the target saw, plus the one
    // the panic cut off, counted as interrupted.
    let a = &report.snapshot.requests["a"];
    assert_eq!(a.errors.get(&ErrorKind::Interrupted), Some(&1));
    assert_eq!(a.count(), srv.hits("/") + 1);
    assert!(a.count() >= 3, "{}", a.count());
    assert_eq!(report.snapshot.finished, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_user_that_panics_fails_and_stops_the_run() {
    let srv = server().await;
    let r = runner(&srv, "{users: 2, duration: 30s}", Slot::SOLO);
    let report = run_with_panic(&r).await;
    check(&report, &srv, "a virtual user panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_task_that_panics_fails_and_stops_the_run() {
    let srv = server().await;
    let r = runner(
        &srv,
        "{executor: arrival-rate, rate: 50, duration: 30s}",
        Slot { index: 1, count: 2 },
    );
    // Runner 1 of 2 has the odd seqs; 5 is its third iteration.
    let report = run_with_panic(&r).await;
    check(&report, &srv, "a request task panicked");
    assert!(report.snapshot.failures[0].starts_with("runner 1: "));
}

/// One HTTP/1.1 request with `Connection: close` to an agent: the body.
async fn call(addr: std::net::SocketAddr, head: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{head} HTTP/1.1\r\nHost: a\r\nConnection: close\r\nAuthorization: Bearer t\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    raw.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// In a runner pod, the failure reaches the operator in the snapshots it
/// pulls, and the load ends rather than running on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_snapshot_carries_its_engines_failure() {
    let srv = server().await;
    let r = runner(&srv, "{users: 2, duration: 30s}", Slot::SOLO);
    r.panic_at.store(5, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = crate::agent::serve_agent(listener, r.clone(), "t".into()).unwrap();
    let now_us = r.recorder.unix_us(std::time::Instant::now());
    call(
        agent.addr(),
        "POST /start",
        &format!(r#"{{"atUs": {now_us}}}"#),
    )
    .await;
    tokio::time::timeout(Duration::from_secs(10), agent.load_finished())
        .await
        .expect("the failed load finishes");
    let snap = crate::snapshot::Snapshot::from_json(&call(agent.addr(), "GET /snapshot", "").await)
        .unwrap();
    assert_eq!(snap.finished, 1);
    assert_eq!(snap.failures.len(), 1, "{:?}", snap.failures);
    assert!(
        snap.failures[0].contains("a virtual user panicked"),
        "{:?}",
        snap.failures
    );
    assert!(snap.total_requests() >= 5);
}

#[tokio::test]
async fn http1_connections_offer_only_http1_once_auto_chose_it() {
    // "auto" offers both when it asks; the HTTP/1.1 connections made after
    // it chose HTTP/1.1 must not let a server pick h2 for them.
    let yaml = "target: {baseUrl: 'https://127.0.0.1:1', http: auto}\n\
                load: {users: 1, iterations: 1}\nrequests: [{name: a, path: /}]\n";
    let loaded = planfile::from_str(yaml, Default::default()).unwrap();
    let r = Runner::new(Arc::new(loaded.compile(Slot::SOLO).unwrap()));
    let asks = &r.plan.target.tls.as_ref().unwrap().config.alpn_protocols;
    assert_eq!(asks, &[b"h2".to_vec(), b"http/1.1".to_vec()]);
    let h1 = &r.h1_tls.as_ref().unwrap().config.alpn_protocols;
    assert_eq!(h1, &[b"http/1.1".to_vec()]);
}
