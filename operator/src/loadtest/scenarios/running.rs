//! Running and its end: results merged into the status each round, the
//! verdict when all runners finished, a runner killed mid-run, an operator
//! restarted mid-run, an abortOnFail threshold, a spec changed mid-run, and
//! the cleanup once the verdict is written.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::runtime::{controller::Action, watcher};
use serde_json::Value;

use super::*;
use crate::{
    fixtures::{Call, Reply, Scenario},
    loadtest::reconcile,
};

fn running(yaml: &str) -> LoadTest {
    let mut lt = loadtest(yaml, Phase::Running, Duration::from_secs(1));
    let st = lt.status.as_mut().unwrap();
    st.start_at_us = Some(super::super::context::unix_us());
    lt
}

fn token_get(lt: &LoadTest, runners: &Runners) -> Call {
    Call::get(object(&resource::<Secret>(), NS, "smoke-token"))
        .reply(Reply::ok(&runners.secret(lt)))
}

fn report_apply() -> Call {
    Call::patch(object(&resource::<ConfigMap>(), NS, "smoke-report"))
        .body("the report", |b| b["data"]["report.json"].is_string())
}

fn status(phase: &'static str, check: impl Fn(&Value) -> bool + Send + 'static) -> Call {
    Call::patch(status_path()).body(phase, move |b| {
        b["status"]["phase"] == phase && check(&b["status"])
    })
}

#[tokio::test]
async fn when_every_runner_finished_the_verdict_counts_every_request() {
    let lt = running(&spec(2, ""));
    let (addr, seen) = target(200).await;
    let runners = Runners::start(&lt, addr).await;
    runners.run_to_end().await;
    let (client, mut server) = Scenario::new("all finished")
        .expect(token_get(&lt, &runners))
        .expect(report_apply())
        .expect(status("Succeeded", |s| {
            s["requests"] == 5 && s["verdict"] == "Passed"
        }))
        .expect(Call::event("Succeeded"))
        .serve();
    let ctx = context(client, &runners.pods(&lt), runners.port);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    // The cleanup follows in the next reconcile, once the verdict is written.
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    assert_eq!(seen.count(), 5);
}

#[tokio::test]
async fn with_a_teardown_the_verdict_is_written_and_the_final_phase_waits() {
    let teardown = "teardown: {steps: [{name: reset, method: POST, path: /reset}]}";
    let lt = running(&spec(2, teardown));
    let (addr, seen) = target(200).await;
    let runners = Runners::start(&lt, addr).await;
    runners.run_to_end().await;
    let (client, mut server) = Scenario::new("all finished, teardown next")
        .expect(token_get(&lt, &runners))
        .expect(report_apply())
        .expect(status("TearingDown", |s| {
            let complete = s["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Complete");
            s["requests"] == 5 && s["verdict"] == "Passed" && !complete
        }))
        .expect(Call::event("TearingDown"))
        .serve();
    let ctx = context(client, &runners.pods(&lt), runners.port);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    // The teardown's requests are its Job's, never the runners'.
    assert_eq!(seen.count(), 5);
}

#[tokio::test]
async fn an_operator_restarted_mid_run_recovers_every_runners_results() {
    let lt = running(&spec(2, "").replace("iterations: 5", "duration: 2s"));
    let (addr, seen) = target(200).await;
    let runners = Runners::start(&lt, addr).await;
    runners.start_now().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (client, mut server) = Scenario::new("restart mid-run")
        .expect(token_get(&lt, &runners))
        .expect(status("Running", |s| {
            s["requests"].as_u64().is_some_and(|n| n > 0)
        }))
        .serve();
    let first = context(client.clone(), &runners.pods(&lt), runners.port);
    let action = server.run(reconcile(dynamic(&lt), first)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    runners.wait_finished().await;
    // A new operator: nothing in memory, the token read again, and every
    // runner's whole results pulled again.
    server.expect(token_get(&lt, &runners));
    server.expect(report_apply());
    let total = seen.count();
    server.expect(status("Succeeded", move |s| s["requests"] == total));
    server.expect(Call::event("Succeeded"));
    let restarted = context(client, &runners.pods(&lt), runners.port);
    server
        .run(reconcile(dynamic(&lt), restarted))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_runner_killed_mid_run_fails_the_test_and_keeps_the_others_results() {
    let lt = running(&spec(2, "").replace("users: 1", "users: 2"));
    let (addr, seen) = target(200).await;
    let runners = Runners::start(&lt, addr).await;
    runners.run_to_end().await;
    let by_runner_1 = runners.requests(1).await;
    assert!(by_runner_1 > 0 && by_runner_1 < seen.count());
    let kept = seen.count() - by_runner_1;
    // Runner 1's pod is gone from the cluster.
    let pods: Vec<Pod> = runners.pods(&lt).into_iter().take(1).collect();
    let (client, mut server) = Scenario::new("runner killed")
        .expect(token_get(&lt, &runners))
        .expect(report_apply())
        .expect(status("Failed", move |s| {
            s["message"]
                .as_str()
                .is_some_and(|m| m.contains("smoke-runner-1 is gone"))
                && s["requests"] == kept
        }))
        .expect(Call::event("Failed"))
        .serve();
    let ctx = context(client, &pods, runners.port);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
}

#[tokio::test]
async fn an_abort_on_fail_threshold_stops_the_runners_and_aborts_the_test() {
    let lt = running(&spec(1, "thresholds: ['error_rate < 1% abortOnFail']"));
    let (addr, _) = target(500).await;
    let runners = Runners::start(&lt, addr).await;
    runners.run_to_end().await;
    let (client, mut server) = Scenario::new("abortOnFail")
        .expect(token_get(&lt, &runners))
        .expect(report_apply())
        .expect(status("Aborted", |s| {
            s["message"].as_str().is_some_and(|m| {
                m.starts_with(
                    "aborted: threshold \"error_rate < 1% abortOnFail\" failed (observed 100",
                )
            })
        }))
        .expect(Call::event("Aborting"))
        .expect(Call::event("Failed"))
        .serve();
    let ctx = context(client, &runners.pods(&lt), runners.port);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
}

#[tokio::test]
async fn a_spec_changed_mid_run_is_noted_once_and_the_run_goes_on() {
    let mut lt = running(&spec(1, ""));
    lt.metadata.generation = Some(2);
    let (addr, _) = target(200).await;
    let runners = Runners::start(&lt, addr).await;
    runners.run_to_end().await;
    let (client, mut server) = Scenario::new("spec changed mid-run")
        .expect(token_get(&lt, &runners))
        .expect(report_apply())
        .expect(status("Succeeded", |s| {
            s["observedGeneration"] == 1
                && s["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "SpecChangeIgnored" && c["observedGeneration"] == 2)
        }))
        .expect(Call::event("SpecChangeIgnored"))
        .expect(Call::event("Succeeded"))
        .serve();
    let ctx = context(client, &runners.pods(&lt), runners.port);
    server
        .run(reconcile(dynamic(&lt), ctx.clone()))
        .await
        .unwrap();
    // The next reconcile, on the status as written: cleanup, no second note.
    let written = server
        .seen()
        .into_iter()
        .rev()
        .filter(|s| s.path.ends_with("/status"))
        .find_map(|s| s.body)
        .unwrap();
    lt.status = Some(serde_json::from_value(written["status"].clone()).unwrap());
    server.expect(
        Call::delete(object(&resource::<Pod>(), NS, "smoke-runner-0")).reply(Reply::deleted()),
    );
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(server.events(), ["SpecChangeIgnored", "Succeeded"]);
}

#[tokio::test]
async fn once_the_verdict_is_written_the_runner_pods_are_deleted() {
    let lt = loadtest(&spec(2, ""), Phase::Succeeded, Duration::ZERO);
    let pods = [
        runner_pod(&lt, 0, Some(ip(0))),
        runner_pod(&lt, 1, Some(ip(1))),
    ];
    let pod = |i| object(&resource::<Pod>(), NS, &format!("smoke-runner-{i}"));
    let (client, mut server) = Scenario::new("cleanup")
        .expect(Call::delete(pod(0)).reply(Reply::deleted()))
        .expect(Call::delete(pod(1)).reply(Reply::not_found("pods \"smoke-runner-1\"")))
        .serve();
    let ctx = context(client, &pods, 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_runner_that_dies_keeps_what_it_reported_before() {
    let lt = running(&spec(2, "").replace("users: 1, iterations: 5", "users: 2, duration: 2s"));
    let (addr, seen) = target(200).await;
    let mut runners = Runners::start(&lt, addr).await;
    runners.start_now().await;
    // Runner 1 ends early, and reports once more before its pod dies.
    runners.handles[1].stop_load();
    tokio::time::timeout(Duration::from_secs(5), runners.handles[1].load_finished())
        .await
        .unwrap();
    let (client, mut server) = Scenario::new("a runner dies")
        .expect(token_get(&lt, &runners))
        .expect(status("Running", |s| {
            s["requests"].as_u64().is_some_and(|n| n > 0)
        }))
        .serve();
    let pods = runners.pods(&lt);
    let (ctx, mut store) = context_with_store(client, Some(&pods), runners.port);
    server
        .run(reconcile(dynamic(&lt), ctx.clone()))
        .await
        .unwrap();
    // Its pod and agent are gone; runner 0 finishes.
    runners.handles.remove(1).close().await;
    store.apply_watcher_event(&watcher::Event::Delete(pods[1].clone()));
    runners.wait_finished().await;
    server.expect(report_apply());
    let total = seen.count();
    server.expect(status("Failed", move |s| {
        s["message"]
            .as_str()
            .is_some_and(|m| m.contains("smoke-runner-1 is gone"))
            && s["requests"] == total
    }));
    server.expect(Call::event("Failed"));
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
}

#[tokio::test]
async fn an_abort_on_fail_threshold_stops_running_runners_then_the_test_ends_aborted() {
    let yaml = spec(1, "thresholds: ['error_rate < 1% abortOnFail']")
        .replace("iterations: 5", "duration: 30s");
    let lt = running(&yaml);
    let (addr, _) = target(500).await;
    let runners = Runners::start(&lt, addr).await;
    runners.start_now().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (client, mut server) = Scenario::new("abort mid-run")
        .expect(token_get(&lt, &runners))
        .expect(status("Running", |s| {
            s["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("aborting: threshold"))
        }))
        .expect(Call::event("Aborting"))
        .serve();
    let ctx = context(client, &runners.pods(&lt), runners.port);
    let action = server
        .run(reconcile(dynamic(&lt), ctx.clone()))
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    // The runners were told to stop: they end long before their 30 s.
    runners.wait_finished().await;
    // The next round finds them finished: the verdict says why they stopped
    // (the store remembers the abort).
    server.expect(report_apply());
    server.expect(status("Aborted", |s| {
        s["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("aborted: threshold"))
    }));
    server.expect(Call::event("Failed"));
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
}

#[tokio::test]
async fn a_loadtest_deleted_mid_run_leaves_nothing_in_memory() {
    let lt = running(&spec(1, "").replace("iterations: 5", "duration: 30s"));
    let (addr, _) = target(200).await;
    let runners = Runners::start(&lt, addr).await;
    runners.start_now().await;
    let (client, mut server) = Scenario::new("deleted mid-run")
        .expect(token_get(&lt, &runners))
        .expect(status("Running", |_| true))
        .serve();
    let ctx = context(client, &runners.pods(&lt), runners.port);
    server
        .run(reconcile(dynamic(&lt), ctx.clone()))
        .await
        .unwrap();
    assert!(ctx.results.holds("uid-1"));
    // Deleted without a finalizer: the controller's wake-up finds it gone.
    ctx.forget_gone(NS, NAME);
    assert!(!ctx.results.holds("uid-1"));
    runners.handles[0].stop_load();
}
