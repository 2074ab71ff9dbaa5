//! Provisioning: the setup Job succeeds (its record count goes into the
//! status) or fails (the test fails with the Job's reason).

use std::time::Duration;

use k8s_openapi::api::{batch::v1::Job, core::v1::Secret};
use kube::runtime::controller::Action;
use serde_json::json;

use super::*;
use crate::{
    fixtures::{Call, Reply, Scenario},
    loadtest::reconcile,
    setup,
};

fn provisioning() -> LoadTest {
    loadtest(
        &spec(1, "setup: {image: 'seed:1'}"),
        Phase::Provisioning,
        Duration::from_secs(5),
    )
}

fn job(lt: &LoadTest, status: serde_json::Value) -> Job {
    let mut j = setup::job(lt, &crate::pods::tests::defaults(), Duration::from_secs(60)).unwrap();
    j.status = Some(serde_json::from_value(status).unwrap());
    j
}

fn jobs() -> String {
    collection(&resource::<Job>(), NS)
}

#[tokio::test]
async fn a_setup_that_succeeds_records_its_count_and_the_test_starts() {
    let lt = provisioning();
    let mut records = setup::records_secret(&lt);
    records
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(setup::ANN_COUNT.into(), "12".into());
    let (client, mut server) = Scenario::new("setup succeeds")
        .expect(
            Call::post(jobs())
                .named("smoke-setup")
                .reply(Reply::already_exists("jobs \"smoke-setup\"")),
        )
        // The Job exists and is ours: it is read, not created again.
        .expect(
            Call::get(object(&resource::<Job>(), NS, "smoke-setup"))
                .reply(Reply::ok(&job(&lt, json!({})))),
        )
        .expect(
            Call::get(object(&resource::<Job>(), NS, "smoke-setup"))
                .reply(Reply::ok(&job(&lt, json!({"succeeded": 1})))),
        )
        .expect(
            Call::get(object(&resource::<Secret>(), NS, "smoke-records"))
                .reply(Reply::ok(&records)),
        )
        .expect(Call::patch(status_path()).includes(json!({"status": {
            "phase": "Starting",
            "records": {"secret": "smoke-records", "count": 12},
            "conditions": [{"type": "Provisioned", "status": "True", "reason": "JobSucceeded"}]
        }})))
        .expect(Call::event("Provisioned"))
        .serve();
    let ctx = context(client, &[], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
}

#[tokio::test]
async fn a_setup_that_fails_fails_the_test_with_the_jobs_reason() {
    let lt = provisioning();
    let failed = json!({"failed": 1, "conditions": [{
        "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit"
    }]});
    let (client, mut server) = Scenario::new("setup fails")
        .expect(Call::post(jobs()).named("smoke-setup"))
        .expect(
            Call::get(object(&resource::<Job>(), NS, "smoke-setup"))
                .reply(Reply::ok(&job(&lt, failed))),
        )
        .expect(
            Call::patch(status_path()).body("Failed: JobFailed, with the Job's reason", |b| {
                b["status"]["phase"] == "Failed"
                    && b["status"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("setup job failed: BackoffLimitExceeded"))
                    && b["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Provisioned" && c["reason"] == "JobFailed")
            }),
        )
        .expect(Call::event("Failed"))
        .serve();
    let ctx = context(client, &[], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
}

/// A built-in setup of 1000 users whose Job is running.
fn provisioning_users() -> LoadTest {
    loadtest(
        &spec(
            1,
            "setup: {users: 1000, steps: [{name: register, method: POST, path: /register}]}",
        ),
        Phase::Provisioning,
        Duration::from_secs(60),
    )
}

/// The setup Job's pod, its setup (init) container running.
fn setup_pod() -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "smoke-setup-x1", "namespace": NS,
            "creationTimestamp": "2026-01-05T03:00:00Z",
            "labels": {crate::pods::LABEL_TEST: NAME},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "smoke-setup", "uid": "job-uid", "controller": true}]
        },
        "status": {"phase": "Pending", "initContainerStatuses": [{
            "name": "setup", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"running": {}}
        }]}
    }))
    .unwrap()
}

fn running_job(lt: &LoadTest) -> Job {
    let mut j = job(lt, json!({"active": 1}));
    j.metadata.uid = Some("job-uid".into());
    j
}

#[tokio::test]
async fn provisioning_progress_is_read_from_the_setup_pods_log_at_a_bounded_rate() {
    let lt = provisioning_users();
    // The log's tail: a line cut by limitBytes at the end, and a hostile
    // line before the last valid one; the last whole valid line wins.
    let log = "  400/1000 users (3 failed), 7.1/s\nbarrage-progress done=412 failed=3\nbarrage-progress done=999999 total=1000\nbarrage-progress done=41";
    let (client, mut server) = Scenario::new("provisioning progress")
        .expect(Call::post(jobs()).named("smoke-setup"))
        .expect(
            Call::get(object(&resource::<Job>(), NS, "smoke-setup"))
                .reply(Reply::ok(&running_job(&lt))),
        )
        .expect(
            Call::get(format!(
                "{}/log",
                object(
                    &resource::<k8s_openapi::api::core::v1::Pod>(),
                    NS,
                    "smoke-setup-x1"
                )
            ))
            .query("container", "setup")
            .query("tailLines", "50")
            .query("limitBytes", "262144")
            .reply(Reply::text(log)),
        )
        .expect(Call::patch(status_path()).includes(json!({"status": {
            "phase": "Provisioning",
            "progress": {
                "stage": "setup", "unit": "users",
                "done": 412, "failed": 3, "total": 1000,
                "text": "412/1000 users (3 failed)"
            }
        }})))
        .serve();
    let ctx = context(client, &[setup_pod()], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    let written = server.seen().last().unwrap().body.clone().unwrap();
    let progress = written["status"]["progress"].clone();

    // The next reconcile within REFRESH reads no log and writes no status.
    let mut lt = lt;
    lt.status.as_mut().unwrap().progress = Some(serde_json::from_value(progress).unwrap());
    let (client, mut server) = Scenario::new("progress not due")
        .expect(Call::post(jobs()).named("smoke-setup"))
        .expect(
            Call::get(object(&resource::<Job>(), NS, "smoke-setup"))
                .reply(Reply::ok(&running_job(&lt))),
        )
        .serve();
    let ctx = context(client, &[setup_pod()], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));

    // REFRESH later, 88 more users: the rate and the estimate.
    let p = lt.status.as_mut().unwrap().progress.as_mut().unwrap();
    p.observed_at = Some(ago(Duration::from_secs(8)).to_string());
    let (client, mut server) = Scenario::new("progress with a rate")
        .expect(Call::post(jobs()).named("smoke-setup"))
        .expect(
            Call::get(object(&resource::<Job>(), NS, "smoke-setup"))
                .reply(Reply::ok(&running_job(&lt))),
        )
        .expect(
            Call::get(format!(
                "{}/log",
                object(
                    &resource::<k8s_openapi::api::core::v1::Pod>(),
                    NS,
                    "smoke-setup-x1"
                )
            ))
            .reply(Reply::text(
                "barrage-progress done=500 failed=3 total=1000\n",
            )),
        )
        .expect(
            Call::patch(status_path()).body("11/s, about 45s left", |b| {
                let p = &b["status"]["progress"];
                let rate = p["perSecond"].as_f64().unwrap_or(0.0);
                p["done"] == 500
                    && (10.5..11.5).contains(&rate)
                    && (43..=48).contains(&p["remainingSeconds"].as_u64().unwrap_or(0))
                    && p["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("500/1000 users (3 failed), 11/s, about 4"))
            }),
        )
        .serve();
    let ctx = context(client, &[setup_pod()], 0);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
}
