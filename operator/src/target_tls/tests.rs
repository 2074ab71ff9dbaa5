//! The mounts, the plan the pods read and the check of referenced values,
//! on the runner pods and the setup Job's pod as the operator builds them.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::*;
use crate::{
    crd::LoadTest,
    pods::{
        plan_config_map, runner_pod,
        tests::{defaults, lt},
    },
    pss::restricted_violations,
};
use barrage_runner::plan::CaMode;

const HTTPS: &str = "runners: 2\ntarget:\n  baseUrl: 'https://api.test:8443'\n  tls: {serverName: api.test, caFrom: {configMap: ca, key: ca.crt}, certFrom: {secret: client, key: tls.crt}, keyFrom: {secret: client, key: tls.key}}\nload: {users: 2, duration: 10s}\nrequests: [{name: a, path: /}]";

const SETUP: &str =
    "setup: {users: 5, steps: [{name: login, path: /login, capture: {token: {json: /t}}}]}";

fn runner(t: &LoadTest) -> PodSpec {
    runner_pod(t, 0, &defaults()).spec.unwrap()
}

fn setup_pod(t: &LoadTest) -> PodSpec {
    crate::setup::job(t, &defaults(), Duration::from_secs(60))
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
}

fn tls_mount(c: &Container) -> Option<VolumeMount> {
    c.volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == VOLUME)
        .cloned()
}

fn tls_volume(p: &PodSpec) -> Option<Volume> {
    p.volumes
        .iter()
        .flatten()
        .find(|v| v.name == VOLUME)
        .cloned()
}

/// (kind, object, key, file, mode) of each projected source.
fn projected(v: &Volume) -> Vec<(&'static str, String, String, String, i32)> {
    v.projected
        .as_ref()
        .unwrap()
        .sources
        .iter()
        .flatten()
        .map(|s| {
            let (kind, name, items) = match (&s.secret, &s.config_map) {
                (Some(s), None) => ("secret", s.name.clone(), s.items.clone()),
                (None, Some(c)) => ("configMap", c.name.clone(), c.items.clone()),
                other => panic!("one secret or configMap per source: {other:?}"),
            };
            let items = items.expect("only the named keys are projected");
            assert_eq!(items.len(), 1, "{items:?}");
            let i = &items[0];
            (kind, name, i.key.clone(), i.path.clone(), i.mode.unwrap())
        })
        .collect()
}

#[test]
fn runner_pods_mount_exactly_the_named_keys_read_only() {
    let p = runner(&lt(HTTPS));
    let v = tls_volume(&p).expect("a target-tls volume");
    assert_eq!(
        projected(&v),
        [
            (
                "configMap",
                "ca".into(),
                "ca.crt".into(),
                "ca.pem".into(),
                0o444
            ),
            (
                "secret",
                "client".into(),
                "tls.crt".into(),
                "cert.pem".into(),
                0o444
            ),
            (
                "secret",
                "client".into(),
                "tls.key".into(),
                "key.pem".into(),
                0o440
            ),
        ]
    );
    let m = tls_mount(&p.containers[0]).expect("mounted in the runner");
    assert_eq!(
        (m.mount_path.as_str(), m.read_only),
        ("/etc/barrage/target-tls", Some(true))
    );
    // The key is group-readable: the runner's user must be in that group.
    let sc = p.security_context.as_ref().unwrap();
    assert_eq!(sc.fs_group, Some(FS_GROUP));
    assert_eq!(
        p.containers[0]
            .security_context
            .as_ref()
            .unwrap()
            .run_as_user,
        Some(FS_GROUP),
        "the runner's user owns the files' group"
    );
    assert_eq!(restricted_violations(&p), Vec::<String>::new());
}

#[test]
fn without_references_nothing_is_mounted_and_the_pod_is_unchanged() {
    for spec in [
        HTTPS.replace(
            "tls: {serverName: api.test, caFrom: {configMap: ca, key: ca.crt}, certFrom: {secret: client, key: tls.crt}, keyFrom: {secret: client, key: tls.key}}",
            "tls: {insecureSkipVerify: true}",
        ),
        HTTPS.replace("https://api.test:8443", "http://api.test").replace(
            "  tls: {serverName: api.test, caFrom: {configMap: ca, key: ca.crt}, certFrom: {secret: client, key: tls.crt}, keyFrom: {secret: client, key: tls.key}}\n",
            "",
        ),
    ] {
        let p = runner(&lt(&spec));
        assert!(tls_volume(&p).is_none(), "{spec}");
        assert!(tls_mount(&p.containers[0]).is_none());
        assert_eq!(
            p.security_context,
            Some(crate::pss::pod_security_context())
        );
    }
}

#[test]
fn a_ca_alone_is_mounted_alone() {
    let t = lt(&HTTPS.replace(
        ", certFrom: {secret: client, key: tls.crt}, keyFrom: {secret: client, key: tls.key}",
        "",
    ));
    let v = tls_volume(&runner(&t)).unwrap();
    assert_eq!(
        projected(&v),
        [(
            "configMap",
            "ca".into(),
            "ca.crt".into(),
            "ca.pem".into(),
            0o444
        )]
    );
}

#[test]
fn the_plan_names_the_mounted_files_instead_of_the_references() {
    let t = lt(&format!("{HTTPS}\n{SETUP}"));
    let data = plan_config_map(&t).data.unwrap();
    let plan = barrage_runner::planfile::from_str(&data["plan.yaml"], Default::default())
        .unwrap()
        .plan;
    let tls = plan.target.tls.unwrap();
    assert_eq!(
        (
            tls.ca_file.as_deref(),
            tls.cert_file.as_deref(),
            tls.key_file.as_deref()
        ),
        (
            Some("/etc/barrage/target-tls/ca.pem"),
            Some("/etc/barrage/target-tls/cert.pem"),
            Some("/etc/barrage/target-tls/key.pem")
        )
    );
    assert_eq!(
        (&tls.ca_from, &tls.cert_from, &tls.key_from),
        (&None, &None, &None),
        "the runner refuses references"
    );
    assert_eq!(tls.server_name.as_deref(), Some("api.test"));
    // The built-in setup talks to the same target with the same files.
    let (sp, _) = barrage_runner::provision::from_str(&data["setup.yaml"]).unwrap();
    let stls = sp.target.tls.unwrap();
    assert_eq!(
        stls.ca_file.as_deref(),
        Some("/etc/barrage/target-tls/ca.pem")
    );
    assert_eq!(stls.key_from, None);
}

#[test]
fn the_setup_pod_mounts_them_for_the_setup_container_only() {
    for setup in [SETUP, "setup: {image: reg/seed:1}"] {
        let p = setup_pod(&lt(&format!("{HTTPS}\n{setup}")));
        let v = tls_volume(&p).expect("a target-tls volume");
        assert_eq!(projected(&v).len(), 3);
        let init = &p.init_containers.as_ref().unwrap()[0];
        let m = tls_mount(init).expect("mounted in the setup container");
        assert_eq!(m.read_only, Some(true));
        assert_eq!(m.mount_path, DIR);
        // The publisher has no business with them.
        assert!(tls_mount(&p.containers[0]).is_none(), "{setup}");
        assert_eq!(
            p.security_context.as_ref().unwrap().fs_group,
            Some(FS_GROUP)
        );
        assert_eq!(restricted_violations(&p), Vec::<String>::new(), "{setup}");
    }
    let plain = setup_pod(&lt(&format!(
        "{}\n{SETUP}",
        HTTPS.replace("caFrom: {configMap: ca, key: ca.crt}, certFrom: {secret: client, key: tls.crt}, keyFrom: {secret: client, key: tls.key}", "minVersion: '1.3'")
    )));
    assert!(tls_volume(&plain).is_none());
    assert_eq!(plain.security_context.unwrap().fs_group, None);
}

#[test]
fn the_checked_target_has_no_files_nor_references() {
    let t = lt(&HTTPS.replace(
        "serverName: api.test",
        "serverName: api.test, caMode: replace",
    ));
    let checked = without_files(&t.spec.plan.target);
    let tls = checked.tls.unwrap();
    assert_eq!(tls.ca_mode, CaMode::Add);
    assert!(tls.ca_from.is_none() && tls.cert_from.is_none() && tls.key_from.is_none());
    assert!(tls.ca_file.is_none() && tls.cert_file.is_none() && tls.key_file.is_none());
    assert_eq!(tls.server_name.as_deref(), Some("api.test"));
}

fn pem_pair() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["api.test".into()]).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

#[test]
fn referenced_values_are_checked_without_ever_being_quoted() {
    let t = lt(HTTPS);
    let tls = t.spec.plan.target.tls.as_ref().unwrap();
    let [ca, cert, key] = refs(tls)[..] else {
        panic!("three references")
    };
    let (cert_pem, key_pem) = pem_pair();
    assert_eq!(check(&ca, Some(cert_pem.as_bytes())), Ok(()));
    assert_eq!(check(&cert, Some(cert_pem.as_bytes())), Ok(()));
    assert_eq!(check(&key, Some(key_pem.as_bytes())), Ok(()));
    assert_eq!(
        check(&ca, None).unwrap_err(),
        "spec.target.tls.caFrom: configMap \"ca\" has no key \"ca.crt\""
    );
    assert_eq!(
        not_found(&key),
        "spec.target.tls.keyFrom: secret \"client\" not found"
    );
    // A key where a certificate belongs, a certificate where the key does:
    // refused, and the message holds nothing of either.
    let e = check(&cert, Some(key_pem.as_bytes())).unwrap_err();
    assert!(
        e.starts_with("spec.target.tls.certFrom: secret \"client\" key \"tls.crt\" "),
        "{e}"
    );
    let body: String = key_pem.lines().nth(1).unwrap().chars().take(16).collect();
    assert!(!e.contains(&body), "{e}");
    let e = check(
        &key,
        Some(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==!!\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap_err();
    assert!(e.contains("keyFrom") && !e.contains("c2VjcmV0"), "{e}");
}

#[test]
fn a_client_key_must_be_the_certificates() {
    let t = lt(HTTPS);
    let tls = t.spec.plan.target.tls.as_ref().unwrap();
    let [_, cert, key] = refs(tls)[..] else {
        panic!("three references")
    };
    let (cert_pem, key_pem) = pem_pair();
    let (_, other_key) = pem_pair();
    assert_eq!(
        check_pair((&cert, cert_pem.as_bytes()), (&key, key_pem.as_bytes())),
        Ok(())
    );
    let e = check_pair((&cert, cert_pem.as_bytes()), (&key, other_key.as_bytes())).unwrap_err();
    assert_eq!(
        e,
        "spec.target.tls.keyFrom: secret \"client\" key \"tls.key\" is not the private key of the certificate of spec.target.tls.certFrom (secret \"client\" key \"tls.crt\")"
    );
}
