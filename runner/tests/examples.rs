//! The suites in `examples/` that show issue 14's scenarios and virtual
//! users, run as written (they are short on purpose) against the built-in
//! target on loopback: each one's mix, per-scenario figures and verdict,
//! and for the login-once suite that every user logged in exactly once.

#[path = "support/local_run.rs"]
mod local_run;
use local_run::run_workers;

use std::path::PathBuf;

use barrage_runner::{
    report::Report,
    serve::{LocalServer, ServeConfig, spawn_local},
};

const LOCUST: &str = include_str!("../../examples/locust-users.yaml");
const K6: &str = include_str!("../../examples/k6-scenarios.yaml");
const LOGIN_ONCE: &str = include_str!("../../examples/login-once.yaml");

/// The example pointed at `srv` instead of its 127.0.0.1:8080.
fn aimed(example: &str, srv: &LocalServer) -> String {
    assert!(example.contains("http://127.0.0.1:8080"));
    example.replace("http://127.0.0.1:8080", &srv.base_url())
}

async fn builtin() -> LocalServer {
    spawn_local(ServeConfig::builtin()).await.unwrap()
}

fn count(r: &Report, name: &str) -> u64 {
    r.snapshot.requests.get(name).map_or(0, |s| s.count())
}

fn errors(r: &Report) -> String {
    format!(
        "{:?} {:?}",
        r.summary.total.errors_by_kind, r.summary.warnings
    )
}

/// Three user types, 10 : 1 : 0.5 of 23 users: every scenario ran, the
/// readers' mix is 3 : 1, a writer's journey is two requests and a pause,
/// a crawler's burst 5 to 10 pages, and the verdict holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_locust_style_suite_runs_its_three_user_types() {
    let srv = builtin().await;
    let r = run_workers(&aimed(LOCUST, &srv), PathBuf::new(), 2).await;
    assert_eq!(r.summary.total.errors, 0, "{}", errors(&r));
    assert!(r.passed, "{:?}", r.thresholds);
    for s in ["reader", "writer", "crawler"] {
        let n = r.summary.scenarios.get(s).map_or(0, |x| x.requests);
        assert!(n > 0, "scenario {s} sent nothing");
    }
    // The scenarios' figures are exactly their requests'.
    let reader = count(&r, "reader/schema") + count(&r, "reader/home");
    assert_eq!(r.summary.scenarios["reader"].requests, reader);
    let (schema, home) = (count(&r, "reader/schema"), count(&r, "reader/home"));
    let share = schema as f64 / reader as f64;
    assert!((0.65..0.85).contains(&share), "schema {schema} of {reader}");
    assert!(home > 0);
    // A writer's pass: both requests, the journey counted as one pass each;
    // a pass the end cut short in its pause (at most one per writer) sent
    // its check only and is not a pass.
    let passes = r.summary.journeys["writer/publish"].passes;
    assert!(passes > 0);
    let checks = count(&r, "writer/publish/check");
    assert!(
        (passes..=passes + 2).contains(&checks),
        "{checks} checks, {passes} passes"
    );
    assert_eq!(count(&r, "writer/publish/register"), passes);
    // A crawler's burst: 5 to 10 pages per pass (plus at most 9 of a burst
    // that the end cut short, which is no pass).
    let bursts = r.summary.journeys["crawler/burst"].passes;
    let pages = count(&r, "crawler/burst/page");
    assert!(
        bursts > 0 && (5 * bursts..=10 * bursts + 9).contains(&pages),
        "{pages} pages in {bursts} bursts"
    );
    // Twenty readers think 50-150 ms; one crawler 200 ms: readers dominate.
    assert!(reader > 5 * bursts, "{reader} vs {bursts}");
}

/// A ramping closed scenario and an arrival-rate spike starting 1.5 s later,
/// split over three runners: the spike's 250 arrivals exactly, no request of
/// it before its start, and the per-scenario thresholds judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_k6_style_suite_runs_a_ramp_and_a_later_spike() {
    let srv = builtin().await;
    let r = run_workers(&aimed(K6, &srv), PathBuf::new(), 3).await;
    assert_eq!(r.summary.total.errors, 0, "{}", errors(&r));
    // Every arrival sent or counted dropped: at most the last few, when a
    // busy machine runs a scheduler past the planned end.
    assert_eq!(
        count(&r, "spike/slow") + r.summary.dropped,
        250,
        "50 on the ramp, then 200"
    );
    assert!(r.summary.dropped <= 3, "{} dropped", r.summary.dropped);
    assert_eq!(
        r.summary.scenarios["spike"].requests,
        count(&r, "spike/slow")
    );
    let browse = &r.snapshot.scenarios["browse"];
    let spike = &r.snapshot.scenarios["spike"];
    assert_eq!(browse.count(), count(&r, "browse/schema"));
    assert!(browse.count() > 100, "{}", browse.count());
    // From the test's start, not browse's first request (which waits for
    // its ramp's first user).
    let late_us = spike.first_start_us - r.snapshot.started_us.unwrap();
    assert!(
        late_us >= 1_490_000,
        "the spike started {late_us} µs after the test"
    );
    let judged: Vec<String> = r.thresholds.iter().map(|o| o.source.clone()).collect();
    assert!(
        judged.iter().any(|t| t.contains("for scenario browse")),
        "{judged:?}"
    );
    assert!(
        judged.iter().any(|t| t.contains("for scenario spike")),
        "{judged:?}"
    );
    assert!(r.passed, "{:?}", r.thresholds);
}

/// Five users log in once each (one token apiece, whatever how many tasks
/// they ran), every task carries the user's own token, and each user
/// deletes its account when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_once_suite_logs_each_user_in_once() {
    let srv = builtin().await;
    let r = run_workers(&aimed(LOGIN_ONCE, &srv), PathBuf::new(), 1).await;
    assert_eq!(r.summary.total.errors, 0, "{}", errors(&r));
    assert!(r.passed, "{:?}", r.thresholds);
    assert_eq!(srv.tokens_issued(), 5, "one login per user");
    assert_eq!(count(&r, "onStart/token"), 5);
    assert_eq!(r.summary.journeys["onStart"].passes, 5);
    let tasks = count(&r, "account") + count(&r, "me");
    assert!(tasks > 5 * 5, "{tasks} tasks");
    assert_eq!(srv.distinct_users(), 5);
    assert_eq!(srv.rejected(), 0, "every task carried a live token");
    assert_eq!(count(&r, "onStop/delete-account"), 5);
    assert_eq!(srv.deleted_users(), 5);
    assert_eq!(srv.registered_users(), 0);
}
