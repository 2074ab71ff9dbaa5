//! Starting: runner pods are created; a runner not ready by the start
//! timeout fails the test; once all are ready, all get one start instant,
//! stored before any runner hears it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Action;
use serde_json::json;

use super::*;
use crate::{
    fixtures::{Call, Reply, Scenario},
    loadtest::reconcile,
};

fn pods_path() -> String {
    collection(&resource::<Pod>(), NS)
}

#[tokio::test]
async fn missing_runner_pods_are_created() {
    let lt = loadtest(&spec(2, ""), Phase::Starting, Duration::ZERO);
    let (client, mut server) = Scenario::new("runner pods are created")
        .expect(Call::post(pods_path()).named("smoke-runner-0"))
        .expect(Call::post(pods_path()).named("smoke-runner-1"))
        .expect(
            Call::patch(status_path())
                .includes(json!({"status": {"phase": "Starting", "runners": "0/2"}})),
        )
        .serve();
    let ctx = context(client, &[], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
}

#[tokio::test]
async fn a_runner_not_ready_by_the_start_timeout_fails_the_test() {
    let lt = loadtest(&spec(2, ""), Phase::Starting, Duration::from_secs(301));
    let pods = [runner_pod(&lt, 0, Some(ip(0))), runner_pod(&lt, 1, None)];
    let (client, mut server) = Scenario::new("runner not ready in time")
        .expect(
            Call::patch(status_path()).body("Failed: Timeout, naming the runner", |b| {
                let m = b["status"]["message"].as_str().unwrap_or_default();
                b["status"]["phase"] == "Failed"
                    && m.starts_with("1 of 2 runners ready after 5m")
                    && m.contains("smoke-runner-1: Unschedulable")
            }),
        )
        .expect(Call::event("Failed"))
        .serve();
    let ctx = context(client, &pods, 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn ready_runners_all_get_the_start_instant_that_was_stored_first() {
    let lt = loadtest(&spec(2, ""), Phase::Starting, Duration::ZERO);
    let runners = Runners::start(&lt, target(200).await.0).await;
    let (client, mut server) = Scenario::new("all ready: start")
        // Stored before any runner hears it ...
        .expect(
            Call::patch(status_path()).body("Running with the start instant", |b| {
                b["status"]["phase"] == "Running" && b["status"]["startAtUs"].as_u64().is_some()
            }),
        )
        // ... then told, with the token from the Secret; no second write.
        .expect(
            Call::get(object(
                &resource::<k8s_openapi::api::core::v1::Secret>(),
                NS,
                "smoke-token",
            ))
            .reply(Reply::ok(&runners.secret(&lt))),
        )
        .expect(Call::event("Started"))
        .serve();
    let ctx = context(client, &runners.pods(&lt), runners.port);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    let stored = server
        .seen()
        .into_iter()
        .find_map(|s| s.body?["status"]["startAtUs"].as_u64())
        .unwrap();
    for h in &runners.handles {
        assert_eq!(h.status().start_at_us, Some(stored));
    }
}

#[tokio::test]
async fn runners_with_another_certificate_are_not_told_to_start() {
    let lt = loadtest(&spec(2, ""), Phase::Starting, Duration::ZERO);
    let runners = Runners::start(&lt, target(200).await.0).await;
    // The Secret holds another certificate than the one the agents serve
    // (impostors at the runners' addresses, as far as the operator knows).
    let mut secret = runners.secret(&lt);
    let now = std::time::SystemTime::now();
    let other = barrage_runner::tls::pinned::generate("other", now, now).unwrap();
    let data = secret.data.as_mut().unwrap();
    data.insert("tls.crt".into(), k8s_openapi::ByteString(other.cert.into()));
    data.insert("tls.key".into(), k8s_openapi::ByteString(other.key.into()));
    let (client, mut server) = Scenario::new("runners with another certificate")
        .expect(Call::patch(status_path()).includes(json!({"status": {"phase": "Running"}})))
        .expect(
            Call::get(object(&resource::<Secret>(), NS, "smoke-token")).reply(Reply::ok(&secret)),
        )
        .expect(Call::event("Started"))
        .expect(
            Call::event("StartRetry").body("naming the certificate", |b| {
                let note = b["note"].as_str().unwrap_or_default();
                note.contains("smoke-runner-0")
                    && note.contains("smoke-runner-1")
                    && note.contains("other than this LoadTest's agent certificate")
            }),
        )
        .serve();
    let ctx = context(client, &runners.pods(&lt), runners.port);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    for h in &runners.handles {
        assert_eq!(h.status().start_at_us, None);
    }
}

#[tokio::test]
async fn a_runner_pod_name_held_by_a_stranger_fails_the_test() {
    let lt = loadtest(&spec(1, ""), Phase::Starting, Duration::ZERO);
    let mut stranger = runner_pod(&lt, 0, None);
    stranger.metadata.owner_references = None;
    let (client, mut server) = Scenario::new("runner pod name taken")
        .expect(Call::post(pods_path()).reply(Reply::already_exists("pods \"smoke-runner-0\"")))
        .expect(
            Call::get(object(&resource::<Pod>(), NS, "smoke-runner-0")).reply(Reply::ok(&stranger)),
        )
        .expect(Call::patch(status_path()).body("Failed: NameTaken", |b| {
            b["status"]["phase"] == "Failed"
                && b["status"]["message"].as_str().is_some_and(|m| {
                    m.contains("Pod smoke-runner-0 exists and does not belong to this LoadTest")
                })
        }))
        .expect(Call::event("Failed"))
        .serve();
    let ctx = context(client, &[], 0);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
}

#[tokio::test]
async fn a_full_quota_is_waited_for_until_the_start_timeout_says_why() {
    let quota =
        "pods \"smoke-runner-0\" is forbidden: exceeded quota: compute, requested: cpu=500m";
    let lt = loadtest(&spec(1, ""), Phase::Starting, Duration::ZERO);
    let (client, mut server) = Scenario::new("quota full: wait")
        .expect(Call::post(pods_path()).reply(Reply::error(403, "Forbidden", quota)))
        .expect(
            Call::patch(status_path()).body("still Starting, saying why", |b| {
                b["status"]["phase"] == "Starting"
                    && b["status"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("exceeded quota"))
            }),
        )
        .serve();
    let ctx = context(client, &[], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    // Past the start timeout, the failure names the quota.
    let late = loadtest(&spec(1, ""), Phase::Starting, Duration::from_secs(301));
    let (client, mut server) = Scenario::new("quota full: timeout")
        .expect(Call::post(pods_path()).reply(Reply::error(403, "Forbidden", quota)))
        .expect(
            Call::patch(status_path()).body("Failed, naming the quota", |b| {
                b["status"]["phase"] == "Failed"
                    && b["status"]["message"].as_str().is_some_and(|m| {
                        m.starts_with("0 of 1 runners ready after 5m")
                            && m.contains("exceeded quota")
                    })
            }),
        )
        .expect(Call::event("Failed"))
        .serve();
    let ctx = context(client, &[], 0);
    server.run(reconcile(dynamic(&late), ctx)).await.unwrap();
}

#[tokio::test]
async fn a_pod_watch_that_has_not_listed_yet_fails_the_reconcile_instead_of_guessing() {
    let lt = loadtest(&spec(1, ""), Phase::Starting, Duration::ZERO);
    let (client, mut server) = Scenario::new("pod store not ready").serve();
    let (ctx, writer) = context_with_store(client, None, 0);
    let err = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("has not listed the pods of namespace ns1"),
        "{err}"
    );
    drop(writer);
}
