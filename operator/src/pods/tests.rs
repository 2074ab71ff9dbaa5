use super::*;
use crate::crd::LoadTestSpec;

pub(crate) fn defaults() -> RunnerDefaults {
    let resources = serde_json::from_str(r#"{"limits": {"cpu": "500m"}}"#).unwrap();
    RunnerDefaults {
        image: "default/runner:dev".into(),
        pull_policy: "IfNotPresent".into(),
        resources: Some(resources),
        operator_image: "default/operator:dev".into(),
    }
}

pub(crate) fn lt(yaml_spec: &str) -> LoadTest {
    let spec: LoadTestSpec = serde_yaml_ng::from_str(yaml_spec).unwrap();
    let mut lt = LoadTest::new("smoke", spec);
    lt.metadata.namespace = Some("ns1".into());
    lt.metadata.uid = Some("uid-1".into());
    lt
}

const SPEC: &str = "runners: 3\ntarget: {baseUrl: 'http://10.0.0.1:8080'}\nload: {users: 6, duration: 10s}\nrequests: [{name: a, path: /}]\nrunner:\n  image: reg/runner:1\n  nodeSelector: {pool: load}\n  env: [{name: API_KEY, value: k}]\n  labels: {team: sre}\n  tolerations: [{key: dedicated, operator: Exists}]";

#[test]
fn runner_pods_know_their_slot_and_are_owned() {
    let t = lt(SPEC);
    let p = runner_pod(&t, 2, &defaults());
    assert_eq!(p.metadata.name.as_deref(), Some("smoke-runner-2"));
    assert_eq!(p.metadata.namespace.as_deref(), Some("ns1"));
    let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("LoadTest", "smoke", Some(true))
    );
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[LABEL_INDEX], "2");
    assert_eq!(labels["team"], "sre");
    let spec = p.spec.unwrap();
    let c = &spec.containers[0];
    assert_eq!(c.image.as_deref(), Some("reg/runner:1"));
    let env: Vec<_> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
        .collect();
    assert!(
        env.contains(&("BARRAGE_RUNNER_INDEX", "2"))
            && env.contains(&("BARRAGE_RUNNER_COUNT", "3"))
            && env.contains(&("API_KEY", "k"))
    );
    assert_eq!(spec.node_selector.unwrap()["pool"], "load");
    assert_eq!(
        spec.tolerations.unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert!(c.args.as_ref().unwrap().contains(&"agent".to_string()));
}

#[test]
fn runner_pods_pass_the_restricted_pod_security_profile() {
    for spec in [SPEC.to_string(), format!("{SPEC}\n{SETUP}")] {
        let p = runner_pod(&lt(&spec), 1, &defaults());
        let pod = p.spec.unwrap();
        assert_eq!(
            crate::pss::restricted_violations(&pod),
            Vec::<String>::new()
        );
        // Both levels carry the seccomp default: dropping either leaves
        // the other, dropping both is caught.
        let mut bare = pod.clone();
        bare.security_context = None;
        assert!(crate::pss::restricted_violations(&bare).is_empty());
        bare.containers[0]
            .security_context
            .as_mut()
            .unwrap()
            .seccomp_profile = None;
        assert!(!crate::pss::restricted_violations(&bare).is_empty());
    }
}

#[test]
fn the_default_image_applies_when_the_spec_has_none() {
    let t = lt(
        "target: {baseUrl: 'http://10.0.0.1'}\nload: {users: 1, duration: 1s}\nrequests: [{name: a, path: /}]",
    );
    assert_eq!(t.spec.runners, 1);
    let p = runner_pod(&t, 0, &defaults());
    let c = &p.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("default/runner:dev"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let cpu = &c.resources.as_ref().unwrap().limits.as_ref().unwrap()["cpu"];
    assert_eq!(cpu.0, "500m");
    assert!(crate::setup::job(&t, &defaults(), Default::default()).is_none());
    assert_eq!(records_source(&t), None);
}

#[test]
fn the_plan_config_map_holds_a_plan_the_runner_reads_back() {
    let t = lt(SPEC);
    let cm = plan_config_map(&t);
    let yaml = &cm.data.unwrap()["plan.yaml"];
    let back = barrage_runner::planfile::from_str(yaml, Default::default()).unwrap();
    assert_eq!(back.plan, t.spec.plan);
}

#[test]
fn runners_serve_tls_with_the_secrets_certificate_and_the_secret_holds_it() {
    let t = lt(SPEC);
    let now = std::time::SystemTime::now();
    let pem = barrage_runner::tls::pinned::generate("t", now, now).unwrap();
    let s = token_secret(&t, "tok", &pem);
    let data = s.string_data.unwrap();
    assert_eq!(data[TOKEN_KEY], "tok");
    assert_eq!(data[TLS_CERT_KEY], pem.cert);
    assert_eq!(data[TLS_KEY_KEY], pem.key);
    let p = runner_pod(&t, 0, &defaults());
    let spec = p.spec.unwrap();
    let c = &spec.containers[0];
    let args = c.args.clone().unwrap().join(" ");
    assert!(
            args.contains("--token-file /etc/barrage/token/token --tls-cert /etc/barrage/token/tls.crt --tls-key /etc/barrage/token/tls.key"),
            "{args}"
        );
    // The files are the mounted Secret's keys.
    let vol = spec
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "token")
        .unwrap();
    let secret = vol.secret.unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("smoke-token"));
    assert_eq!(secret.items, None, "every key of the Secret is mounted");
    let mount = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "token")
        .unwrap();
    assert_eq!(mount.mount_path, TOKEN_DIR);
    // The kubelet cannot complete a pinned handshake: a TCP probe.
    let probe = c.readiness_probe.as_ref().unwrap();
    assert_eq!(probe.http_get, None);
    assert_eq!(
        probe.tcp_socket.as_ref().unwrap().port,
        IntOrString::Int(AGENT_PORT)
    );
}

const SETUP: &str =
    "setup: {users: 5, steps: [{name: login, path: /login, capture: {token: {json: /t}}}]}";

#[test]
fn runners_mount_the_records_of_their_setup_or_of_the_reused_loadtest() {
    let mounted = |t: &LoadTest| {
        let p = runner_pod(t, 0, &defaults());
        let spec = p.spec.unwrap();
        let vol = spec
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "records");
        let mount = spec.containers[0]
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .find(|m| m.name == "records");
        vol.map(|v| {
            (
                v.secret.unwrap().secret_name.unwrap(),
                mount.unwrap().mount_path,
            )
        })
    };
    let own = lt(&format!("{SPEC}\n{SETUP}"));
    assert_eq!(
        mounted(&own),
        Some(("smoke-records".to_string(), DATA_DIR.to_string()))
    );
    let reused = lt(&format!("{SPEC}\ndataFrom: {{loadTest: seed}}"));
    assert_eq!(mounted(&reused).unwrap().0, "seed-records");
    // A custom setup gives records only when the spec asks for data.
    let custom = lt(&format!("{SPEC}\nsetup: {{image: reg/seed:1}}"));
    assert_eq!(mounted(&custom), None);
    let custom = lt(&format!(
        "{SPEC}\nsetup: {{image: reg/seed:1}}\ndata: {{select: unique}}"
    ));
    assert_eq!(mounted(&custom).unwrap().0, "smoke-records");
    assert_eq!(mounted(&lt(SPEC)), None);
}

#[test]
fn with_records_the_plan_reads_them_and_the_setup_is_beside_it() {
    let t = lt(&format!(
        "{SPEC}\n{SETUP}\ndata: {{select: mixed, repeat: 0.8}}"
    ));
    let data = plan_config_map(&t).data.unwrap();
    let plan = barrage_runner::planfile::from_str(&data["plan.yaml"], Default::default())
        .unwrap()
        .plan;
    let d = plan.data.unwrap();
    assert_eq!(d.file.as_deref(), Some("/etc/barrage/data/records.jsonl"));
    assert_eq!(d.repeat, Some(0.8));
    let (sp, _) = barrage_runner::provision::from_str(&data["setup.yaml"]).unwrap();
    assert_eq!(sp.setup.users, Some(5));
    assert_eq!(sp.target.base_url, "http://10.0.0.1:8080");
}
