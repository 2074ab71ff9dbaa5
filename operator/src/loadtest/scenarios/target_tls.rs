//! `spec.target.tls` by reference: Pending gets every referenced Secret and
//! ConfigMap before anything is made, and fails the test naming what is
//! missing or not PEM; with all there it moves on, saying whether the
//! target is verified; Starting creates runner pods that mount them.

use std::time::Duration;

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Pod, Secret},
};
use kube::runtime::controller::Action;
use serde_json::json;

use super::*;
use crate::{
    fixtures::{Call, Reply, Scenario},
    loadtest::reconcile,
};

const TLS: &str = "{serverName: api.test, caFrom: {configMap: ca, key: ca.crt}, certFrom: {secret: client, key: tls.crt}, keyFrom: {secret: client, key: tls.key}}";

fn https_spec(tls: &str) -> String {
    spec(1, "").replace(
        "target: {baseUrl: 'http://127.0.0.1:9'}",
        &format!("target: {{baseUrl: 'https://127.0.0.1:9', tls: {tls}}}"),
    )
}

fn pending(yaml: &str) -> LoadTest {
    let mut lt = loadtest(yaml, Phase::Pending, Duration::ZERO);
    lt.status = None;
    lt
}

/// A CA, a client certificate it signed, and that certificate's key (PEM).
struct Pems {
    ca: String,
    cert: String,
    key: String,
}

fn pems() -> Pems {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["runner".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pems {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn config_map(name: &str, key: &str, value: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.data = Some([(key.to_string(), value.to_string())].into());
    c
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect(),
    );
    s
}

fn get_config_map(name: &str) -> Call {
    Call::get(object(&resource::<ConfigMap>(), NS, name))
}

fn get_secret(name: &str) -> Call {
    Call::get(object(&resource::<Secret>(), NS, name))
}

/// The status write of a test failed in Pending with `reason` and a
/// message that is `message` exactly.
fn failed_with(reason: &'static str, message: String) -> Call {
    Call::patch(status_path()).body("Failed with the reason, naming the reference", move |b| {
        b["status"]["phase"] == "Failed"
            && b["status"]["message"] == message.as_str()
            && b["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["type"] == "Validated" && c["status"] == "False" && c["reason"] == reason
                })
    })
}

#[tokio::test]
async fn a_missing_secret_fails_the_test_naming_it_before_anything_is_made() {
    let lt = pending(&https_spec(TLS));
    let p = pems();
    let (client, mut server) = Scenario::new("missing Secret")
        .expect(get_config_map("ca").reply(Reply::ok(&config_map("ca", "ca.crt", &p.ca))))
        .expect(get_secret("client").reply(Reply::not_found("secrets \"client\"")))
        .expect(failed_with(
            "TargetTlsNotFound",
            "spec.target.tls.certFrom: secret \"client\" not found".into(),
        ))
        .expect(Call::event("Failed"))
        .serve();
    let ctx = context(client, &[], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_missing_key_fails_the_test_naming_it() {
    let lt = pending(&https_spec(TLS));
    let (client, mut server) = Scenario::new("missing key")
        .expect(get_config_map("ca").reply(Reply::ok(&config_map("ca", "ca.pem", "x"))))
        .expect(failed_with(
            "TargetTlsNotFound",
            "spec.target.tls.caFrom: configMap \"ca\" has no key \"ca.crt\"".into(),
        ))
        .expect(Call::event("Failed").includes(json!({"type": "Warning"})))
        .serve();
    let ctx = context(client, &[], 0);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
}

#[tokio::test]
async fn a_key_that_is_not_pem_fails_the_test_without_showing_it() {
    let lt = pending(&https_spec(TLS));
    let p = pems();
    let garbage = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==!!\n-----END PRIVATE KEY-----\n";
    let client_secret = secret("client", &[("tls.crt", &p.cert), ("tls.key", garbage)]);
    let (client, mut server) = Scenario::new("key not PEM")
        .expect(get_config_map("ca").reply(Reply::ok(&config_map("ca", "ca.crt", &p.ca))))
        .expect(get_secret("client").reply(Reply::ok(&client_secret)))
        .expect(get_secret("client").reply(Reply::ok(&client_secret)))
        .expect(
            Call::patch(status_path()).body("Failed: TargetTlsInvalid, key not shown", |b| {
                let m = b["status"]["message"].as_str().unwrap_or_default();
                b["status"]["phase"] == "Failed"
                    && m.starts_with("spec.target.tls.keyFrom: secret \"client\" key \"tls.key\" ")
                    && !m.contains("c2VjcmV0")
                    && b["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["reason"] == "TargetTlsInvalid")
            }),
        )
        .expect(
            Call::event("Failed").body("without the key", |b| !b.to_string().contains("c2VjcmV0")),
        )
        .serve();
    let ctx = context(client, &[], 0);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
}

#[tokio::test]
async fn a_key_of_another_certificate_fails_the_test() {
    let lt = pending(&https_spec(TLS));
    let (p, other) = (pems(), pems());
    let client_secret = secret("client", &[("tls.crt", &p.cert), ("tls.key", &other.key)]);
    let (client, mut server) = Scenario::new("mismatched key")
        .expect(get_config_map("ca").reply(Reply::ok(&config_map("ca", "ca.crt", &p.ca))))
        .expect(get_secret("client").reply(Reply::ok(&client_secret)))
        .expect(get_secret("client").reply(Reply::ok(&client_secret)))
        .expect(failed_with(
            "TargetTlsInvalid",
            "spec.target.tls.keyFrom: secret \"client\" key \"tls.key\" is not the private key of the certificate of spec.target.tls.certFrom (secret \"client\" key \"tls.crt\")".into(),
        ))
        .expect(Call::event("Failed"))
        .serve();
    let ctx = context(client, &[], 0);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
}

#[tokio::test]
async fn valid_references_pass_and_the_plan_names_the_mounted_files() {
    let lt = pending(&https_spec(TLS));
    let p = pems();
    let client_secret = secret("client", &[("tls.crt", &p.cert), ("tls.key", &p.key)]);
    let (client, mut server) = Scenario::new("valid references")
        .expect(get_config_map("ca").reply(Reply::ok(&config_map("ca", "ca.crt", &p.ca))))
        .expect(get_secret("client").reply(Reply::ok(&client_secret)))
        .expect(get_secret("client").reply(Reply::ok(&client_secret)))
        .expect(Call::post(secrets()).named("smoke-token"))
        .expect(
            Call::post(collection(&resource::<ConfigMap>(), NS))
                .named("smoke-plan")
                .body("a plan with the mounted paths and no references", |b| {
                    let plan = b["data"]["plan.yaml"].as_str().unwrap_or_default();
                    plan.contains("caFile: /etc/barrage/target-tls/ca.pem")
                        && plan.contains("keyFile: /etc/barrage/target-tls/key.pem")
                        && !plan.contains("From")
                }),
        )
        .expect(Call::patch(status_path()).includes(json!({"status": {
            "phase": "Starting",
            "conditions": [
                {"type": "Validated", "status": "True"},
                {"type": "Complete", "status": "False"},
                {"type": "TargetVerified", "status": "True", "reason": "Verified"},
            ]
        }})))
        .expect(Call::event("Validated"))
        .serve();
    let ctx = context(client, &[], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    // The values were read, and went nowhere but into their check.
    let written: String = server
        .seen()
        .iter()
        .filter_map(|s| s.body.as_ref().map(|b| b.to_string()))
        .collect();
    // Past the first 36 characters, which every P-256 PKCS#8 key shares
    // (the agent's own key is in the token Secret): the secret part.
    let key_body: String = p.key.lines().nth(1).unwrap().chars().skip(40).collect();
    assert!(!written.contains(&key_body));
}

#[tokio::test]
async fn insecure_skip_verify_is_in_the_status_and_warned_about_once() {
    let lt = pending(&https_spec("{insecureSkipVerify: true}"));
    let (client, mut server) = Scenario::new("insecureSkipVerify")
        .expect(Call::post(secrets()).named("smoke-token"))
        .expect(Call::post(collection(&resource::<ConfigMap>(), NS)).named("smoke-plan"))
        .expect(Call::patch(status_path()).includes(json!({"status": {
            "phase": "Starting",
            "conditions": [
                {"type": "Validated", "status": "True"},
                {"type": "Complete", "status": "False"},
                {"type": "TargetVerified", "status": "False", "reason": "InsecureSkipVerify",
                 "message": "target.tls.insecureSkipVerify: the target's certificate is not verified"},
            ]
        }})))
        .expect(Call::event("Validated"))
        .expect(Call::event("InsecureSkipVerify").includes(json!({"type": "Warning"})))
        .serve();
    let ctx = context(client, &[], 0);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
}

#[tokio::test]
async fn runner_pods_are_created_with_the_references_mounted() {
    let lt = loadtest(
        &https_spec(TLS).replace("runners: 1", "runners: 2"),
        Phase::Starting,
        Duration::ZERO,
    );
    let mounted = |b: &serde_json::Value| {
        let spec = &b["spec"];
        let sources = spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "target-tls")
            .and_then(|v| v["projected"]["sources"].as_array().cloned())
            .unwrap_or_default();
        sources.len() == 3
            && sources[2]["secret"]["items"][0]
                == json!({"key": "tls.key", "path": "key.pem", "mode": 0o440})
            && spec["containers"][0]["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| {
                    m["name"] == "target-tls"
                        && m["mountPath"] == "/etc/barrage/target-tls"
                        && m["readOnly"] == true
                })
            && spec["securityContext"]["fsGroup"] == 65532
    };
    let pods_path = collection(&resource::<Pod>(), NS);
    let (client, mut server) = Scenario::new("runner pods mount the references")
        .expect(
            Call::post(pods_path.clone())
                .named("smoke-runner-0")
                .body("a pod with the target-tls volume", mounted),
        )
        .expect(
            Call::post(pods_path)
                .named("smoke-runner-1")
                .body("a pod with the target-tls volume", mounted),
        )
        .expect(
            Call::patch(status_path())
                .includes(json!({"status": {"phase": "Starting", "runners": "0/2"}})),
        )
        .serve();
    let ctx = context(client, &[], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
}
