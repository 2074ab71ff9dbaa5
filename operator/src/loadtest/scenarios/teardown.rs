//! TearingDown: the runners' final results give the load's verdict and the
//! teardown Job starts; its pod's report goes into `status.teardown` and
//! the final phase follows (the load's verdict, unless `failsTest`).

use std::time::Duration;

use barrage_runner::teardown::{Outcome, termination_message};
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::*;
use crate::{
    fixtures::{Call, Reply, Scenario},
    loadtest::reconcile,
    teardown,
};

const TEARDOWN: &str = "teardown: {steps: [{name: reset, method: POST, path: /reset}]}";

fn tearing_down(extra: &str, since: Duration) -> LoadTest {
    let mut lt = loadtest(&spec(1, extra), Phase::TearingDown, since);
    let st = lt.status.as_mut().unwrap();
    crate::status::judged_before_teardown(
        st,
        Phase::Succeeded,
        "Succeeded",
        "5 requests, all thresholds passed",
        Some(1),
        ago(since),
    );
    st.phase_since = Some(ago(since).to_string());
    lt
}

fn the_job(lt: &LoadTest) -> Job {
    let mut j =
        teardown::job(lt, &crate::pods::tests::defaults(), Duration::from_secs(60)).unwrap();
    j.metadata.uid = Some("job-uid".into());
    j
}

fn job_get(lt: &LoadTest) -> Call {
    Call::get(object(&resource::<Job>(), NS, "smoke-teardown")).reply(Reply::ok(&the_job(lt)))
}

/// The Job's pod, its container ended with `message`.
fn pod(message: &str, code: i32) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "smoke-teardown-x1", "namespace": NS,
            "labels": {pods::LABEL_TEST: NAME, pods::LABEL_ROLE: "teardown"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "smoke-teardown", "uid": "job-uid", "controller": true}]
        },
        "status": {"containerStatuses": [{
            "name": "teardown", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "message": message}}
        }]}
    }))
    .unwrap()
}

fn status(check: impl Fn(&Value) -> bool + Send + 'static) -> Call {
    Call::patch(status_path()).body("the status", move |b| check(&b["status"]))
}

#[tokio::test]
async fn the_job_starts_and_the_test_waits_for_it() {
    let lt = tearing_down(TEARDOWN, Duration::from_secs(1));
    let (client, mut server) = Scenario::new("teardown starts")
        .expect(Call::post(collection(&resource::<Job>(), NS)).named("smoke-teardown"))
        .expect(job_get(&lt))
        .expect(status(|s| {
            s["phase"] == "TearingDown"
                && s["verdict"] == "Passed"
                && s["teardown"]["phase"] == "Running"
                && s["teardown"]["job"] == "smoke-teardown"
        }))
        .serve();
    let ctx = context(client, &[], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
}

#[tokio::test]
async fn its_report_goes_into_the_status_and_the_loads_verdict_stands() {
    let lt = tearing_down(TEARDOWN, Duration::from_secs(5));
    let failed = Outcome {
        runs: 1,
        failed: 1,
        requests: 1,
        errors: 1,
        ..Default::default()
    };
    let (client, mut server) = Scenario::new("teardown failed, verdict stands")
        .expect(
            Call::post(collection(&resource::<Job>(), NS))
                .named("smoke-teardown")
                .reply(Reply::already_exists("jobs \"smoke-teardown\"")),
        )
        .expect(
            Call::get(object(&resource::<Job>(), NS, "smoke-teardown"))
                .reply(Reply::ok(&the_job(&lt))),
        )
        .expect(job_get(&lt))
        .expect(status(|s| {
            s["phase"] == "Succeeded"
                && s["verdict"] == "Passed"
                && s["teardown"]["phase"] == "Failed"
                && s["teardown"]["runs"] == 1
                && s["teardown"]["failed"] == 1
                && s["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "TornDown" && c["status"] == "False")
        }))
        .expect(Call::event("TeardownFailed"))
        .expect(Call::event("Succeeded"))
        .serve();
    let ctx = context(client, &[pod(&termination_message(&failed), 1)], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    // The cleanup of the finished test follows in the next reconcile.
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
}

#[tokio::test]
async fn a_teardown_that_cannot_run_fails_the_test_with_fails_test() {
    let strict = TEARDOWN.replace("teardown: {", "teardown: {failsTest: true, ");
    let lt = tearing_down(&strict, Duration::from_secs(5));
    let (client, mut server) = Scenario::new("teardown broken, failsTest")
        .expect(Call::post(collection(&resource::<Job>(), NS)).named("smoke-teardown"))
        .expect(job_get(&lt))
        .expect(status(|s| {
            s["phase"] == "Failed"
                && s["verdict"] == "Failed"
                && s["teardown"]["phase"] == "Failed"
                && s["message"].as_str().is_some_and(|m| {
                    m.contains("spec.teardown.steps") && m.contains("teardown.failsTest")
                })
        }))
        .expect(Call::event("TeardownFailed"))
        .expect(Call::event("Failed"))
        .serve();
    let pods = [pod("error: spec.teardown.steps[0].path: bad", 2)];
    let ctx = context(client, &pods, 0);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
}

#[tokio::test]
async fn a_job_without_a_report_by_the_timeout_ends_the_wait() {
    let extra = format!("{TEARDOWN}\ntimeouts: {{teardown: 1s}}");
    let lt = tearing_down(&extra, Duration::from_secs(600));
    let (client, mut server) = Scenario::new("teardown timed out")
        .expect(Call::post(collection(&resource::<Job>(), NS)).named("smoke-teardown"))
        .expect(job_get(&lt))
        .expect(status(|s| {
            s["phase"] == "Succeeded"
                && s["teardown"]["phase"] == "Failed"
                && s["teardown"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("spec.timeouts.teardown (1s)"))
        }))
        .expect(Call::event("TeardownFailed"))
        .expect(Call::event("Succeeded"))
        .serve();
    let ctx = context(client, &[], 0);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
}
