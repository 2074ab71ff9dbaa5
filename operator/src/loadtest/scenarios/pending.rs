//! Pending: a valid spec gets its token and plan and moves on; an invalid
//! one, or a name held by a stranger, ends Failed with the reason.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::controller::Action;
use serde_json::json;

use super::*;
use crate::{
    fixtures::{Call, Reply, Scenario},
    loadtest::reconcile,
};
use barrage_runner::tls::pinned;

fn pending(yaml: &str) -> LoadTest {
    let mut lt = loadtest(yaml, Phase::Pending, Duration::ZERO);
    lt.status = None;
    lt
}

#[tokio::test]
async fn a_valid_spec_gets_its_token_and_plan_then_starts() {
    let lt = pending(&spec(2, ""));
    let (client, mut server) = Scenario::new("valid spec")
        .expect(
            Call::post(secrets())
                .named("smoke-token")
                // The token is never written in the clear into the status or
                // an event; it goes only into its Secret.
                .body("a 64-hex-digit token", |b| {
                    b["stringData"]["token"].as_str().is_some_and(|t| t.len() == 64)
                })
                // ... and the certificate and key the agent channel pins.
                .body("the agent certificate and its key", |b| {
                    let data = &b["stringData"];
                    let (cert, key) = (data["tls.crt"].as_str(), data["tls.key"].as_str());
                    cert.zip(key).is_some_and(|(c, k)| {
                        pinned::Identity::from_pem(c.as_bytes(), k.as_bytes()).is_ok()
                    })
                }),
        )
        .expect(Call::post(collection(&resource::<ConfigMap>(), NS)).named("smoke-plan"))
        .expect(Call::patch(status_path()).includes(json!({"status": {
            "phase": "Starting", "observedGeneration": 1, "runners": "0/2",
            "conditions": [{"type": "Validated", "status": "True"}, {"type": "Complete", "status": "False"}]
        }})))
        .expect(Call::event("Validated"))
        .serve();
    let ctx = context(client, &[], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    // The key went into its Secret and nowhere else: not the status, not
    // an event, not the plan.
    let seen = server.seen();
    let secret = seen
        .iter()
        .find(|s| s.body.as_ref().is_some_and(|b| b["kind"] == "Secret"))
        .and_then(|s| s.body.clone())
        .unwrap();
    let key = secret["stringData"]["tls.key"].as_str().unwrap();
    let key_body = key.lines().nth(1).unwrap();
    for s in seen.iter().filter(|s| s.body.as_ref() != Some(&secret)) {
        let text = s.body.as_ref().map(|b| b.to_string()).unwrap_or_default();
        assert!(
            !text.contains(key_body),
            "the key in {} {}",
            s.method,
            s.path
        );
        assert!(
            !text.contains("PRIVATE KEY"),
            "a key in {} {}",
            s.method,
            s.path
        );
    }
}

#[tokio::test]
async fn a_spec_with_a_setup_goes_to_provisioning_with_the_setups_rights() {
    let lt = pending(&spec(1, "setup: {image: 'seed:1'}"));
    let rbac =
        |plural: &str| format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/{plural}");
    let (client, mut server) = Scenario::new("spec with a setup")
        .allow_events()
        .expect(Call::post(secrets()).named("smoke-token"))
        .expect(Call::post(collection(&resource::<ConfigMap>(), NS)).named("smoke-plan"))
        .expect(Call::post(secrets()).named("smoke-records"))
        .expect(Call::post(format!("/api/v1/namespaces/{NS}/serviceaccounts")).named("smoke-setup"))
        .expect(Call::post(rbac("roles")).named("smoke-setup"))
        .expect(Call::post(rbac("rolebindings")).named("smoke-setup"))
        .expect(Call::patch(status_path()).includes(json!({"status": {"phase": "Provisioning"}})))
        .serve();
    let ctx = context(client, &[], 0);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(server.events(), ["Validated"]);
}

#[tokio::test]
async fn an_invalid_spec_fails_naming_the_field_and_is_not_retried() {
    // Converts to our types, but the checks refuse it.
    let lt = pending(&spec(0, ""));
    let (client, mut server) = Scenario::new("invalid spec")
        .expect(
            Call::patch(status_path()).body("Failed, naming spec.runners", |b| {
                b["status"]["phase"] == "Failed"
                    && b["status"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("spec.runners"))
            }),
        )
        .expect(Call::event("InvalidSpec"))
        .serve();
    let ctx = context(client, &[], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_spec_that_does_not_convert_fails_once() {
    let mut obj = (*dynamic(&pending(&spec(1, "")))).clone();
    obj.data["spec"]["load"]["duration"] = json!("10 parsecs");
    let (client, mut server) = Scenario::new("spec that does not convert")
        .expect(
            Call::patch(status_path()).body("Failed, naming spec.load.duration", |b| {
                b["status"]["phase"] == "Failed"
                    && b["status"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("spec.load.duration"))
            }),
        )
        .expect(Call::event("InvalidSpec"))
        .serve();
    let ctx = context(client, &[], 0);
    server
        .run(reconcile(std::sync::Arc::new(obj.clone()), ctx.clone()))
        .await
        .unwrap();
    // Written once: the same failure again writes nothing.
    let written = server
        .seen()
        .into_iter()
        .find(|s| s.path.ends_with("/status"))
        .and_then(|s| s.body)
        .unwrap();
    obj.data["status"] = written["status"].clone();
    let action = server
        .run(reconcile(std::sync::Arc::new(obj), ctx))
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_name_held_by_a_stranger_fails_the_test_naming_the_owner() {
    let lt = pending(&spec(1, ""));
    let mut stranger = Secret::default();
    stranger.metadata.name = Some("smoke-token".into());
    stranger.metadata.owner_references = Some(vec![
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "billing",
            "uid": "other", "controller": true
        }))
        .unwrap(),
    ]);
    let (client, mut server) = Scenario::new("name taken by a stranger")
        .expect(Call::post(secrets()).reply(Reply::already_exists("secrets \"smoke-token\"")))
        .expect(
            Call::get(object(&resource::<Secret>(), NS, "smoke-token")).reply(Reply::ok(&stranger)),
        )
        .expect(Call::patch(status_path()).body("Failed: NameTaken", |b| {
            b["status"]["phase"] == "Failed"
                && b["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["reason"] == "NameTaken")
                && b["status"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("belongs to Deployment billing"))
        }))
        .expect(Call::event("Failed"))
        .serve();
    let ctx = context(client, &[], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::await_change());
}
