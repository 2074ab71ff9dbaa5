//! Journeys with pauses and repeat blocks, templates and body checks,
//! through the engine's whole path against the built-in target: requests
//! counted exactly (each one the target saw, once), pauses taken, a failed
//! check counted as `check` under its label, over HTTP/1.1 and HTTP/2.

#[path = "support/local_run.rs"]
mod local_run;
use local_run::run_solo;

use std::time::Instant;

use barrage_runner::{
    report::Report,
    serve::{LocalServer, ServeConfig, spawn_local},
    snapshot::ErrorKind,
};

async fn server(routes: &str) -> LocalServer {
    spawn_local(ServeConfig::from_yaml_str(routes).unwrap())
        .await
        .unwrap()
}

async fn run(srv: &LocalServer, plan: &str) -> Report {
    run_solo(&plan.replace("BASE", &srv.base_url())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_pauses_and_repeats_its_burst_a_drawn_number_of_times() {
    let srv = server("routes: [{path: /a}, {path: /b}, {path: /c}]").await;
    // One user, 6 passes: each has a 20ms pause, 2 to 4 rounds of two
    // requests with a 5ms pause, and 10ms between rounds.
    let plan = "target: {baseUrl: BASE}\nload: {users: 1, iterations: 6}\nrequests:\n- name: j\n  steps:\n  - {name: a, path: /a}\n  - {sleep: 20ms}\n  - {repeat: 2..4, interval: 10ms, steps: [{name: b, path: /b}, {sleep: 5ms}, {name: c, path: '/c?t={{ now }}&p={{ pick(\"x\", 1) }}'}]}";
    let started = Instant::now();
    let r = run(&srv, plan).await;
    let elapsed = started.elapsed();
    let count = |n: &str| r.summary.requests[n].requests;
    assert_eq!(count("j/a"), 6);
    assert!((12..=24).contains(&count("j/b")), "{}", count("j/b"));
    assert_eq!(count("j/b"), count("j/c"));
    assert_eq!(r.summary.total.errors, 0);
    // Every request the target saw is counted once; a pause is no request.
    assert_eq!(srv.hits("/a"), 6);
    assert_eq!(srv.hits("/b"), count("j/b"));
    assert_eq!(srv.hits("/c"), count("j/c"));
    assert_eq!(r.summary.requests.len(), 3);
    // Each pass takes at least its pauses: 20ms, 5ms per round and 10ms
    // between rounds.
    let rounds = count("j/b");
    let pauses_ms = 6 * 20 + rounds * 5 + (rounds - 6) * 10;
    assert!(
        elapsed.as_millis() as u64 >= pauses_ms,
        "{elapsed:?} for {rounds} rounds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_the_run_ends_a_burst_without_new_requests() {
    let srv = server("routes: [{path: /}]").await;
    // A burst far longer than the run (1000 rounds 50ms apart): the run's
    // end cuts it at its next round, not after its graceful stop of 10s.
    let plan = "target: {baseUrl: BASE}\nload: {users: 1, duration: 500ms}\nrequests:\n- name: j\n  steps:\n  - {repeat: 1000, interval: 50ms, steps: [{name: a, path: /}]}\n  - {name: after, path: /}";
    let started = Instant::now();
    let r = run(&srv, plan).await;
    assert!(
        started.elapsed().as_secs_f64() < 3.0,
        "{:?}",
        started.elapsed()
    );
    let a = r.summary.requests["j/a"].requests;
    // About 10 rounds fit in 500ms; a loaded machine may fit fewer.
    assert!((1..=15).contains(&a), "{a}");
    assert_eq!(srv.hits("/"), a);
    assert!(!r.summary.requests.contains_key("j/after"));
    assert_eq!(r.summary.total.errors, 0);
}

async fn failed_checks_are_counted_by_label(http: &str) {
    let srv = server(
        "routes: [{path: /ok, body: '{\"status\":\"ok\",\"n\":1}'}, {path: /down, body: '{\"status\":\"down\",\"n\":1}'}]",
    )
    .await;
    let plan = format!(
        "target: {{baseUrl: BASE{http}}}\nload: {{users: 2, iterations: 40}}\nrequests:\n\
         - {{name: good, path: /ok, expect: {{body: {{contains: status, json: [{{pointer: /status, equals: ok}}, {{pointer: /n, equals: '1'}}]}}}}}}\n\
         - {{name: bad, path: /down, expect: {{body: {{contains: status, json: [{{pointer: /status, equals: ok}}, {{pointer: /n}}]}}}}}}"
    );
    let r = run(&srv, &plan).await;
    let (good, bad) = (&r.summary.requests["good"], &r.summary.requests["bad"]);
    assert_eq!(good.requests + bad.requests, 40);
    assert!(bad.requests > 0 && good.requests > 0);
    assert_eq!(good.errors, 0);
    // Each bad response fails its first failing check, and only that one.
    assert_eq!(bad.errors_by_kind.get("check"), Some(&bad.requests));
    assert_eq!(
        bad.checks.iter().collect::<Vec<_>>(),
        [(&r#"json /status == "ok""#.to_string(), &bad.requests)]
    );
    assert_eq!(
        r.snapshot.requests["bad"].errors.get(&ErrorKind::Check),
        Some(&bad.requests)
    );
    // They feed the same error rate as any error, and its default threshold.
    assert_eq!(r.summary.total.errors, bad.requests);
    assert!((r.summary.total.error_rate - bad.requests as f64 / 40.0).abs() < 1e-9);
    assert!(!r.passed);
    let text = barrage_runner::text::summary(&r, "t");
    assert!(
        text.contains(&format!("check: {}", bad.requests))
            && text.contains(&format!(
                r#"failed checks ...... bad: json /status == "ok": {}"#,
                bad.requests
            )),
        "{text}"
    );
    assert_eq!(srv.hits("/ok") + srv.hits("/down"), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_checks_are_counted_by_label_over_http1() {
    failed_checks_are_counted_by_label("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_checks_are_counted_by_label_over_http2() {
    failed_checks_are_counted_by_label(", http: '2'").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_body_that_a_check_reads_is_too_large() {
    let body = "x".repeat(5000);
    let srv = server(&format!("routes: [{{path: /, body: '{body}'}}]")).await;
    let plan = "target: {baseUrl: BASE}\nload: {users: 1, iterations: 3}\nrequests: [{name: a, path: /, maxBody: 4KiB, expect: {body: {regex: 'x+'}}}]";
    let r = run(&srv, plan).await;
    let a = &r.summary.requests["a"];
    assert_eq!(a.errors_by_kind.get("body_too_large"), Some(&3));
    assert!(a.checks.is_empty());
    // maxSize alone keeps nothing, so maxBody does not apply.
    let plan = "target: {baseUrl: BASE}\nload: {users: 1, iterations: 3}\nrequests: [{name: a, path: /, maxBody: 4KiB, expect: {body: {maxSize: 6000}}}]";
    let r = run(&srv, plan).await;
    assert_eq!(r.summary.total.errors, 0);
}

/// A setup runs the same steps: its pauses and bursts, and a failed check
/// named in its verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setup_pauses_repeats_and_names_a_failed_check() {
    use barrage_runner::provision;
    let srv = server("routes: [{path: /id, body: '{\"id\":\"u1\"}'}, {path: /b}]").await;
    let setup = |check: &str| {
        format!(
            "target: {{baseUrl: '{}'}}\nsetup:\n  users: 4\n  steps:\n  - {{name: id, path: /id, capture: {{id: {{json: /id}}}}, expect: {{body: {{contains: {check}}}}}}}\n  - {{sleep: 10ms}}\n  - {{repeat: 2, interval: 5ms, steps: [{{name: b, path: '/b?id={{{{ vars.id }}}}'}}]}}",
            srv.base_url()
        )
    };
    let run = |yaml: String| async move {
        let (sp, prefix) = provision::from_str(&yaml).unwrap();
        let c = provision::compile(&sp, prefix).unwrap();
        provision::run(&c, None).await
    };
    let p = run(setup("u1")).await;
    assert_eq!(p.records.len(), 4);
    assert_eq!(p.records[0]["id"], "u1");
    assert_eq!(p.snapshot.requests["setup/b"].count(), 8);
    assert_eq!(srv.hits("/b"), 8);
    let p = run(setup("nope")).await;
    assert_eq!(p.failures.len(), 4);
    let why = p.verdict().unwrap_err();
    assert!(
        why.contains(r#"step "id": status 200, but the body check contains "nope" failed"#),
        "{why}"
    );
    assert_eq!(srv.hits("/b"), 8);
}
