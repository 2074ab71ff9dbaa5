//! A request that outlives its timeout is counted as a timeout error, its
//! latency is the timeout, the connection is replaced, and the run goes on.

use std::time::Instant;

use barrage_runner::{
    compile::Slot,
    local::{self, Options},
    planfile,
    serve::{ServeConfig, spawn_local},
    snapshot::ErrorKind,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_responses_count_as_timeouts_at_the_timeout() {
    let srv = spawn_local(
        ServeConfig::from_yaml_str("routes: [{path: /slow, latency: 2s}, {path: /fast}]").unwrap(),
    )
    .await
    .unwrap();
    let plan = format!(
        "target: {{baseUrl: '{}', timeout: 5s}}\nload: {{users: 2, iterations: 20}}\nrequests:\n- {{name: slow, path: /slow, timeout: 150ms, weight: 3}}\n- {{name: fast, path: /fast, weight: 1}}\n",
        srv.base_url()
    );
    let loaded = planfile::from_str(&plan, Default::default()).unwrap();
    let t = Instant::now();
    let r = local::run(
        &loaded,
        &Options {
            slots: vec![Slot::SOLO],
            progress: false,
        },
    )
    .await
    .unwrap();
    // 20 iterations, none waiting the server's 2 s.
    assert!(t.elapsed().as_secs_f64() < 3.0, "took {:?}", t.elapsed());
    assert_eq!(r.summary.total.requests, 20);
    let slow = &r.snapshot.requests["slow"];
    assert!(slow.count() > 0, "the weighted mix never picked slow");
    assert_eq!(slow.errors.get(&ErrorKind::Timeout), Some(&slow.count()));
    let max_ms = slow.latency.max() as f64 / 1000.0;
    assert!(
        (150.0..400.0).contains(&max_ms),
        "timeout latency {max_ms}ms"
    );
    // The fast request, sharing the users' connections, is unaffected.
    if let Some(fast) = r.snapshot.requests.get("fast") {
        assert_eq!(fast.error_count(), 0);
    }
}
