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
