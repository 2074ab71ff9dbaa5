//! The webhook's pure parts (AdmissionReview handling, certificate
//! decisions, the bundle) and its server over a real TLS connection.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use super::{
    admit, certs,
    certs::{Data, Plan, Settings},
    refs::{Kind, Lookup},
    serve,
};

const OK: &str = "runners: 2\ntarget: {baseUrl: 'http://10.0.0.1:8080'}\nload: {users: 4, duration: 10s}\nrequests: [{name: a, path: /}]\nthresholds: ['p(95) < 10ms']";

fn spec(yaml: &str) -> Value {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn lt(spec: Value, status: Option<Value>) -> Value {
    let mut o = json!({
        "apiVersion": "barrage.dev/v1alpha1", "kind": "LoadTest",
        "metadata": {"name": "t", "namespace": "n", "labels": {"a": "1"}},
        "spec": spec,
    });
    if let Some(s) = status {
        o["status"] = s;
    }
    o
}

fn slt(spec: Value) -> Value {
    json!({
        "apiVersion": "barrage.dev/v1alpha1", "kind": "ScheduledLoadTest",
        "metadata": {"name": "nightly", "namespace": "n"},
        "spec": spec,
    })
}

fn review(kind: &str, op: &str, object: Value, old: Option<Value>) -> Vec<u8> {
    let plural = format!("{}s", kind.to_lowercase());
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4",
            "kind": {"group": "barrage.dev", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "barrage.dev", "version": "v1alpha1", "resource": plural},
            "name": "t", "namespace": "n", "operation": op,
            "userInfo": {"username": "someone"},
            "object": object, "oldObject": old, "dryRun": false,
        }
    }))
    .unwrap()
}

/// The response part of the answer.
fn answer(body: &[u8]) -> Value {
    answer_with(body, &[])
}

fn answer_with(body: &[u8], missing: &[Lookup]) -> Value {
    let out: Value = serde_json::from_slice(&admit::review(body, missing)).unwrap();
    assert_eq!(out["kind"], "AdmissionReview");
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    out["response"].clone()
}

fn allowed(r: &Value) -> bool {
    r["uid"] == "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4" && r["allowed"] == true
}

/// The fields of the causes, and the message; asserts a refusal.
fn refused(r: &Value) -> (Vec<String>, String) {
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["uid"], "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4");
    let fields = r["status"]["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap().to_string())
        .collect();
    (fields, r["status"]["message"].as_str().unwrap().to_string())
}

#[test]
fn a_valid_loadtest_is_admitted_on_create_and_update() {
    let o = lt(spec(OK), None);
    assert!(allowed(&answer(&review(
        "LoadTest",
        "CREATE",
        o.clone(),
        None
    ))));
    assert!(allowed(&answer(&review(
        "LoadTest",
        "UPDATE",
        o.clone(),
        Some(o)
    ))));
}

#[test]
fn invalid_loadtests_are_refused_naming_the_field() {
    let cases = [
        (
            OK.replace("path: /", "path: '/{{ nope }}'"),
            "spec.requests[0]",
        ),
        (
            OK.replace("p(95) < 10ms", "p(95) <<< 10ms"),
            "spec.thresholds[0]",
        ),
        (OK.replace("runners: 2", "runners: 0"), "spec.runners"),
        // Schema-valid (a string) but not a duration: the typed conversion.
        (
            OK.replace("duration: 10s", "duration: 10 parsecs"),
            "spec.load.duration",
        ),
    ];
    for (yaml, field) in cases {
        let r = answer(&review("LoadTest", "CREATE", lt(spec(&yaml), None), None));
        let (fields, msg) = refused(&r);
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{field}: {fields:?}"
        );
        assert!(msg.contains(field), "{msg}");
        assert_eq!(r["status"]["code"], 422);
        assert_eq!(r["status"]["reason"], "Invalid");
    }
}

#[test]
fn every_error_is_in_the_message_and_the_causes() {
    // What validate_all returns, all of it (one error or many).
    let yaml = OK
        .replace("runners: 2", "runners: 0")
        .replace("p(95) < 10ms", "p(95) <<< 10ms");
    let name = "t";
    let errors = crate::validate::validate_all(name, &serde_json::from_value(spec(&yaml)).unwrap());
    assert!(!errors.is_empty());
    let r = answer(&review("LoadTest", "CREATE", lt(spec(&yaml), None), None));
    let (fields, msg) = refused(&r);
    assert_eq!(fields.len(), errors.len());
    for e in &errors {
        assert!(msg.contains(&e.to_string()), "{msg}");
    }
    if errors.len() > 1 {
        assert!(
            msg.starts_with(&format!("{} errors:\n* ", errors.len())),
            "{msg}"
        );
    }
}

#[test]
fn the_deny_message_lists_several_errors_one_per_line() {
    let review: kube::core::admission::AdmissionReview<kube::api::DynamicObject> =
        serde_json::from_slice(&review("LoadTest", "CREATE", lt(spec(OK), None), None)).unwrap();
    let req: kube::core::admission::AdmissionRequest<_> = review.try_into().unwrap();
    let e = |f: &str, m: &str| crate::error::Error::Invalid {
        field: f.into(),
        message: m.into(),
    };
    let resp = admit::deny(
        kube::core::admission::AdmissionResponse::from(&req),
        &req,
        vec![e("spec.a", "bad"), e("spec.b", "worse")],
    );
    let v = serde_json::to_value(&resp).unwrap();
    let (fields, msg) = refused(&v);
    assert_eq!(fields, ["spec.a", "spec.b"]);
    assert_eq!(msg, "2 errors:\n* spec.a: bad\n* spec.b: worse");
    // kubectl names the object from the details: `The LoadTest "x" is invalid`.
    let details = &v["status"]["details"];
    assert_eq!(details["kind"], "LoadTest", "{details}");
    assert_eq!(details["group"], "barrage.dev", "{details}");
    assert_eq!(details["name"], req.name.as_str(), "{details}");
    assert!(!req.name.is_empty());
}

#[test]
fn a_scheduled_loadtest_is_checked_with_its_template() {
    let good = json!({"schedule": "0 3 * * *", "template": {"spec": spec(OK)}});
    assert!(allowed(&answer(&review(
        "ScheduledLoadTest",
        "CREATE",
        slt(good.clone()),
        None
    ))));
    let mut bad_cron = good.clone();
    bad_cron["schedule"] = json!("0 25 * * *");
    let (fields, _) = refused(&answer(&review(
        "ScheduledLoadTest",
        "CREATE",
        slt(bad_cron),
        None,
    )));
    assert_eq!(fields, ["spec.schedule"]);
    let bad_tpl = json!({"schedule": "0 3 * * *", "template": {"spec": spec(&OK.replace("path: /", "path: '/{{ nope }}'"))}});
    let (fields, _) = refused(&answer(&review(
        "ScheduledLoadTest",
        "UPDATE",
        slt(bad_tpl),
        Some(slt(good.clone())),
    )));
    assert!(
        fields[0].starts_with("spec.template.spec.requests[0]"),
        "{fields:?}"
    );
    // A template edit is admitted when valid (it applies from the next run).
    let mut edited = good.clone();
    edited["template"]["spec"]["runners"] = json!(5);
    assert!(allowed(&answer(&review(
        "ScheduledLoadTest",
        "UPDATE",
        slt(edited),
        Some(slt(good))
    ))));
}

fn status(phase: &str, validated: Option<&str>) -> Value {
    let mut s = json!({"phase": phase, "observedGeneration": 1});
    if let Some(v) = validated {
        s["conditions"] = json!([{"type": "Validated", "status": v, "reason": "R", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
    }
    s
}

#[test]
fn a_started_tests_spec_is_frozen_but_its_metadata_is_not() {
    let old_spec = spec(OK);
    let new_spec = spec(&OK.replace("users: 4", "users: 8"));
    for phase in [
        "Provisioning",
        "Starting",
        "Running",
        "TearingDown",
        "Succeeded",
        "Aborted",
    ] {
        let old = lt(old_spec.clone(), Some(status(phase, Some("True"))));
        let new = lt(new_spec.clone(), Some(status(phase, Some("True"))));
        let (fields, msg) = refused(&answer(&review(
            "LoadTest",
            "UPDATE",
            new,
            Some(old.clone()),
        )));
        assert_eq!(fields, ["spec"], "{phase}");
        assert!(msg.contains(phase), "{msg}");
        assert!(
            msg.contains("labels, annotations") && msg.contains("delete"),
            "{msg}"
        );
        // Labels only: admitted.
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"]["b"] = json!("2");
        assert!(
            allowed(&answer(&review(
                "LoadTest",
                "UPDATE",
                relabelled,
                Some(old)
            ))),
            "{phase}"
        );
    }
    // An object stored with a bad spec (before the webhook) still takes labels.
    let bad = lt(
        spec(&OK.replace("runners: 2", "runners: 0")),
        Some(status("Failed", Some("False"))),
    );
    let mut relabelled = bad.clone();
    relabelled["metadata"]["labels"]["b"] = json!("2");
    assert!(allowed(&answer(&review(
        "LoadTest",
        "UPDATE",
        relabelled,
        Some(bad)
    ))));
    // A test that failed while running is a record too.
    let old = lt(old_spec.clone(), Some(status("Failed", Some("True"))));
    let new = lt(new_spec.clone(), None);
    refused(&answer(&review("LoadTest", "UPDATE", new, Some(old))));
    // Before it starts, and after its spec was refused (the fix path): admitted.
    for st in [
        None,
        Some(status("Pending", None)),
        Some(status("Failed", Some("False"))),
    ] {
        let old = lt(old_spec.clone(), st);
        let new = lt(new_spec.clone(), None);
        assert!(allowed(&answer(&review(
            "LoadTest",
            "UPDATE",
            new,
            Some(old)
        ))));
    }
}

#[test]
fn malformed_requests_are_refused_never_panicking() {
    // Not JSON, not a review, no request: refused, no uid to copy.
    for body in [
        &b"\xff\x00garbage"[..],
        &b"{}"[..],
        &b"[1,2]"[..],
        &b"{\"request\": 5}"[..],
    ] {
        let r = answer(body);
        assert_eq!(r["allowed"], false, "{r}");
    }
    // A review whose request is malformed: the path is named, the uid kept.
    let mut v: Value =
        serde_json::from_slice(&review("LoadTest", "CREATE", lt(spec(OK), None), None)).unwrap();
    v["request"]["operation"] = json!("EXPLODE");
    let r = answer(&serde_json::to_vec(&v).unwrap());
    assert_eq!(r["allowed"], false);
    assert_eq!(r["uid"], "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4");
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("request.operation"),
        "{r}"
    );
    // An object of the wrong shape: the field is named.
    let r = answer(&review(
        "LoadTest",
        "CREATE",
        lt(json!({"runners": "many"}), None),
        None,
    ));
    let (fields, _) = refused(&r);
    assert_eq!(fields.len(), 1);
    // Deletes are not ours to judge; other kinds pass.
    assert!(allowed(&answer(&review(
        "LoadTest",
        "DELETE",
        Value::Null,
        Some(lt(spec(OK), None))
    ))));
    assert!(allowed(&answer(&review(
        "Pod",
        "CREATE",
        json!({"metadata": {"name": "p"}}),
        None
    ))));
}

#[test]
fn references_the_cluster_may_lack_are_warnings_not_refusals() {
    let yaml = OK.replace(
        "baseUrl: 'http://10.0.0.1:8080'",
        "baseUrl: 'https://10.0.0.1:8443', tls: {caFrom: {secret: ca, key: ca.crt}}",
    ) + "\ndataFrom: {loadTest: seed}";
    let body = review("LoadTest", "CREATE", lt(spec(&yaml), None), None);
    let lookups = admit::lookups(&body);
    let want = |field: &str, kind, name: &str, key: Option<&str>| Lookup {
        field: field.into(),
        namespace: "n".into(),
        kind,
        name: name.into(),
        key: key.map(Into::into),
    };
    assert_eq!(
        lookups,
        [
            want("spec.target.tls.caFrom", Kind::Secret, "ca", Some("ca.crt")),
            want("spec.dataFrom.loadTest", Kind::LoadTest, "seed", None),
        ]
    );
    assert!(allowed(&answer(&body)));
    let r = answer_with(&body, &lookups[..1]);
    assert!(allowed(&r));
    let w = r["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1);
    let w = w[0].as_str().unwrap();
    assert!(
        w.starts_with(
            "spec.target.tls.caFrom: Secret \"ca\" with key \"ca.crt\" is not in namespace n"
        ),
        "{w}"
    );
    // In a ScheduledLoadTest, named in the template.
    let body = review(
        "ScheduledLoadTest",
        "CREATE",
        slt(json!({"schedule": "@daily", "template": {"spec": spec(&yaml)}})),
        None,
    );
    assert_eq!(
        admit::lookups(&body)[0].field,
        "spec.template.spec.target.tls.caFrom"
    );
}

// --- certificates --------------------------------------------------------

fn settings() -> Settings {
    Settings {
        ca_validity: Duration::from_secs(3600 * 24 * 365),
        ca_renew_before: Duration::from_secs(3600 * 24 * 30),
        cert_validity: Duration::from_secs(3600 * 24),
        cert_renew_before: Duration::from_secs(3600 * 8),
        settle: Duration::from_secs(60),
        dns_names: certs::service_names("barrage-webhook", "barrage-system"),
    }
}

fn step(data: &Data, now: SystemTime, s: &Settings) -> (Plan, Data) {
    let p = certs::plan(now, data, s);
    (p, certs::apply(p, now, data, s).unwrap())
}

fn bundle_cns(data: &Data) -> Vec<String> {
    let b = certs::bundle(data);
    rustls_pki_types::CertificateDer::pem_slice_iter(&b)
        .map(|d| {
            let d = d.unwrap();
            let (_, c) = x509_parser::parse_x509_certificate(&d).unwrap();
            c.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn cn(data: &Data, k: &str) -> certs::Parsed {
    certs::parse(&data[k]).unwrap()
}

#[test]
fn an_empty_or_broken_secret_gets_a_fresh_ca_and_certificate() {
    let s = settings();
    let t0 = SystemTime::now();
    let (p, d) = step(&Data::new(), t0, &s);
    assert_eq!(p, Plan::Fresh);
    let ca = cn(&d, certs::CA_CRT);
    let leaf = cn(&d, certs::TLS_CRT);
    assert_eq!(leaf.issuer_cn, ca.subject_cn);
    assert_eq!(leaf.dns_names, s.dns_names);
    assert_eq!(leaf.dns_names[0], "barrage-webhook.barrage-system.svc");
    assert_eq!(certs::plan(t0, &d, &s), Plan::Keep);
    assert_eq!(bundle_cns(&d), [ca.subject_cn]);
    // The server takes what was made.
    serve::certified_key(&d[certs::TLS_CRT], &d[certs::TLS_KEY]).unwrap();
    // Corrupt or expired CA: fresh again.
    let mut bad = d.clone();
    bad.insert(certs::CA_CRT.into(), b"not pem".to_vec());
    assert_eq!(certs::plan(t0, &bad, &s), Plan::Fresh);
    let past_ca = t0 + s.ca_validity + Duration::from_secs(1);
    assert_eq!(certs::plan(past_ca, &d, &s), Plan::Fresh);
}

#[test]
fn the_serving_certificate_is_renewed_under_the_same_ca_before_it_expires() {
    let s = settings();
    let t0 = SystemTime::now();
    let (_, d) = step(&Data::new(), t0, &s);
    let early = t0 + s.cert_validity - s.cert_renew_before - Duration::from_secs(120);
    assert_eq!(certs::plan(early, &d, &s), Plan::Keep);
    let due = t0 + s.cert_validity - s.cert_renew_before + Duration::from_secs(1);
    let (p, d2) = step(&d, due, &s);
    assert_eq!(p, Plan::RenewCert);
    assert_eq!(d2[certs::CA_CRT], d[certs::CA_CRT], "the CA stays");
    assert_ne!(d2[certs::TLS_CRT], d[certs::TLS_CRT]);
    assert_eq!(
        certs::bundle(&d2),
        certs::bundle(&d),
        "the bundle does not change"
    );
    assert_eq!(certs::plan(due, &d2, &s), Plan::Keep);
    // Another service name: a new certificate too.
    let mut s2 = s.clone();
    s2.dns_names = certs::service_names("other", "ns");
    assert_eq!(certs::plan(t0, &d, &s2), Plan::RenewCert);
}

#[test]
fn the_ca_rotates_in_steps_that_keep_the_served_certificate_trusted() {
    let s = settings();
    let t0 = SystemTime::now();
    let (_, d) = step(&Data::new(), t0, &s);
    let old_ca = cn(&d, certs::CA_CRT).subject_cn;
    // The CA nears its end: the next is staged and trusted beside it.
    let t1 = t0 + s.ca_validity - s.ca_renew_before + Duration::from_secs(10);
    let (p, d1) = step(&d, t1, &s);
    assert_eq!(p, Plan::StageCa);
    let next_ca = cn(&d1, certs::NEXT_CA_CRT).subject_cn;
    assert_ne!(next_ca, old_ca);
    assert_eq!(bundle_cns(&d1), [old_ca.clone(), next_ca.clone()]);
    // The leaf (renewed meanwhile, if due) is still the old CA's until settle.
    let (p, d1) = step(&d1, t1 + s.settle / 2, &s);
    assert!(matches!(p, Plan::Keep | Plan::RenewCert), "{p:?}");
    assert_eq!(cn(&d1, certs::TLS_CRT).issuer_cn, old_ca);
    // Settled: the leaf switches; both CAs stay trusted.
    let t2 = t1 + s.settle + Duration::from_secs(1);
    let (p, d2) = step(&d1, t2, &s);
    assert_eq!(p, Plan::SwitchCa);
    assert_eq!(cn(&d2, certs::TLS_CRT).issuer_cn, next_ca);
    assert_eq!(bundle_cns(&d2), [next_ca.clone(), old_ca.clone()]);
    assert_eq!(certs::plan(t2 + s.settle / 2, &d2, &s), Plan::Keep);
    // Settled again: the old CA is dropped.
    let t3 = t2 + s.settle + Duration::from_secs(1);
    let (p, d3) = step(&d2, t3, &s);
    assert_eq!(p, Plan::DropOldCa);
    assert_eq!(bundle_cns(&d3), [next_ca]);
    assert_eq!(certs::plan(t3, &d3, &s), Plan::Keep);
    // Every step's leaf was trusted by that step's bundle.
    for data in [&d1, &d2, &d3] {
        let issuer = cn(data, certs::TLS_CRT).issuer_cn;
        assert!(bundle_cns(data).contains(&issuer));
    }
}

#[test]
fn the_bundle_holds_each_ca_once() {
    let s = settings();
    let (_, d) = step(&Data::new(), SystemTime::now(), &s);
    let mut twice = d.clone();
    twice.insert(certs::OLD_CA_CRT.into(), d[certs::CA_CRT].clone());
    assert_eq!(certs::bundle(&twice), certs::bundle(&d));
    assert!(certs::bundle(&Data::new()).is_empty());
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let mut s = settings();
    s.cert_renew_before = s.cert_validity;
    assert!(
        s.check()
            .unwrap_err()
            .contains("--webhook-cert-renew-before")
    );
    let mut s = settings();
    s.cert_validity = s.ca_validity * 2;
    assert!(s.check().is_err());
    settings().check().unwrap();
}

// --- the server ------------------------------------------------------------

/// POSTs `body` (or only its headers, when `send` is false) over TLS
/// trusting `ca`; returns the certificate served and the raw answer.
async fn post_as(
    addr: std::net::SocketAddr,
    ca: &[u8],
    body: &[u8],
    send: bool,
) -> (Vec<u8>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name =
        rustls_pki_types::ServerName::try_from("barrage-webhook.barrage-system.svc").unwrap();
    let mut tls = conn.connect(name, tcp).await.unwrap();
    let served = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        serve::PATH,
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    if send {
        tls.write_all(body).await.unwrap();
    }
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    (served, text)
}

async fn post(addr: std::net::SocketAddr, ca: &[u8], body: &[u8]) -> (Vec<u8>, String) {
    post_as(addr, ca, body, true).await
}

#[tokio::test]
async fn the_server_answers_over_tls_and_swaps_its_certificate_live() {
    let s = settings();
    let (_, d) = step(&Data::new(), SystemTime::now(), &s);
    let swap = Arc::new(serve::Swap::default());
    assert!(!swap.loaded());
    assert!(swap.load(&d[certs::TLS_CRT], &d[certs::TLS_KEY]).unwrap());
    assert!(
        !swap.load(&d[certs::TLS_CRT], &d[certs::TLS_KEY]).unwrap(),
        "same: no swap"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve::serve(listener, swap.clone(), None));
    let body = review(
        "LoadTest",
        "CREATE",
        lt(spec(&OK.replace("runners: 2", "runners: 0")), None),
        None,
    );
    let (first, text) = post(addr, &d[certs::CA_CRT], &body).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("\"allowed\":false") && text.contains("spec.runners"),
        "{text}"
    );
    // A renewed certificate is served by the next connection, no restart.
    // (made now, so that the client finds it valid)
    let d2 = certs::apply(Plan::RenewCert, SystemTime::now(), &d, &s).unwrap();
    assert!(swap.load(&d2[certs::TLS_CRT], &d2[certs::TLS_KEY]).unwrap());
    let (second, text) = post(
        addr,
        &d2[certs::CA_CRT],
        &review("LoadTest", "CREATE", lt(spec(OK), None), None),
    )
    .await;
    assert_ne!(first, second);
    assert!(text.contains("\"allowed\":true"), "{text}");
    // A body over the limit is not read: refused, and the server goes on.
    let big = vec![b' '; serve::MAX_BODY + 1];
    let (_, text) = post_as(addr, &d2[certs::CA_CRT], &big, false).await;
    assert!(text.contains("over 4194304 bytes"), "{text}");
    assert!(text.contains("\"allowed\":false"), "{text}");
    let (_, text) = post(addr, &d2[certs::CA_CRT], &body).await;
    assert!(text.contains("spec.runners"), "{text}");
}

#[test]
fn a_key_of_another_certificate_is_refused_without_quoting_it() {
    let s = settings();
    let (_, a) = step(&Data::new(), SystemTime::now(), &s);
    let (_, b) = step(&Data::new(), SystemTime::now(), &s);
    let e = serve::certified_key(&a[certs::TLS_CRT], &b[certs::TLS_KEY])
        .err()
        .unwrap();
    assert_eq!(e, "tls.key is not the key of tls.crt");
    let e = serve::certified_key(&a[certs::TLS_CRT], b"junk")
        .err()
        .unwrap();
    assert!(!e.contains("junk"));
}
