//! The operator's validation of LoadTest specs: each rule names its field.
use super::*;
use crate::target_tls;

fn spec(yaml: &str) -> LoadTestSpec {
    serde_yaml_ng::from_str(yaml).unwrap()
}

const OK: &str = "runners: 3\ntarget: {baseUrl: 'http://10.0.0.1:8080', headers: {k: '{{ env.KEY }}'}}\nload: {users: 6, duration: 10s}\nrequests: [{name: a, path: /}]\nthresholds: ['p(95) < 10ms']";

const SETUP: &str =
    "setup: {users: 3, steps: [{name: login, path: /login, capture: {token: {json: /token}}}]";

#[test]
fn a_good_spec_passes_with_env_left_to_the_pod() {
    validate("t", &spec(OK)).unwrap();
}

#[test]
fn records_come_from_the_setup_or_an_earlier_loadtest() {
    let uses = OK.replace("path: /}]", "path: '/{{ record.token }}'}]");
    // Built-in: the fields are what the steps capture.
    validate(
        "t",
        &spec(&format!("{uses}\n{SETUP}}}\ndata: {{select: unique}}")),
    )
    .unwrap();
    validate("t", &spec(&format!("{uses}\n{SETUP}}}"))).unwrap();
    // Reused or custom: whatever fields the plan names (the pod checks).
    validate("t", &spec(&format!("{uses}\ndataFrom: {{loadTest: seed}}"))).unwrap();
    validate(
        "t",
        &spec(&format!(
            "{uses}\nsetup: {{image: seed:1}}\ndata: {{select: random}}"
        )),
    )
    .unwrap();
    // Without any records, record.FIELD is an error.
    assert!(validate("t", &spec(&uses)).is_err());
}

#[test]
fn a_per_record_teardown_needs_records_and_uses_their_fields() {
    let td = |extra: &str| {
        format!(
            "{OK}\n{extra}\nteardown: {{perRecord: true, steps: [{{name: d, method: DELETE, path: '/u/{{{{ record.token }}}}'}}]}}"
        )
    };
    let e = validate("t", &spec(&td(""))).unwrap_err().to_string();
    assert!(e.contains("spec.teardown.perRecord"), "{e}");
    let e = validate("t", &spec(&td("setup: {image: seed:1}")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.teardown.perRecord"), "{e}");
    validate("t", &spec(&td(&format!("{SETUP}}}")))).unwrap();
    validate("t", &spec(&td("dataFrom: {loadTest: seed}"))).unwrap();
    // The built-in setup's records have no field `id`.
    let e = validate(
        "t",
        &spec(&td(&format!("{SETUP}}}")).replace("record.token", "record.id")),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("spec.teardown.steps[0]"), "{e}");
    // Once, without records, it is fine; errors name the teardown.
    let once = format!("{OK}\nteardown: {{steps: [{{name: d, path: /reset}}]}}");
    validate("t", &spec(&once)).unwrap();
    let e = validate("t", &spec(&once.replace("/reset", "'/{{ nope }}'")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.teardown.steps[0]"), "{e}");
    let e = validate("t", &spec(&format!("{once}\ntimeouts: {{teardown: 0s}}")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.timeouts.teardown"), "{e}");
}

#[test]
fn named_record_fields_are_found_inside_templates_only() {
    let p = spec(&OK.replace(
        "path: /}]",
        "path: '/a/{{ record.id }}/record.x', headers: {h: '{{record.tok-en}} {{ record.id }}'}}]",
    ));
    assert_eq!(
        barrage_runner::compile::named_record_fields(&p.plan),
        ["id", "tok-en"]
    );
}

/// OK against an https target, with `tls` as its target.tls.
fn https(tls: &str) -> String {
    OK.replace(
        "baseUrl: 'http://10.0.0.1:8080',",
        &format!("baseUrl: 'https://10.0.0.1:8443', tls: {tls},"),
    )
}

const MTLS: &str = "{caFrom: {configMap: ca, key: ca.crt}, certFrom: {secret: client, key: tls.crt}, keyFrom: {secret: client, key: tls.key}}";

#[test]
fn target_tls_takes_references_for_an_https_target() {
    for tls in [
        MTLS,
        "{caFrom: {secret: ca, key: ca.crt}, caMode: replace, serverName: api.test}",
        "{insecureSkipVerify: true}",
        "{minVersion: '1.3'}",
    ] {
        validate("t", &spec(&https(tls))).unwrap();
    }
    // With a setup, which talks to the target too.
    validate("t", &spec(&format!("{}\n{SETUP}}}", https(MTLS)))).unwrap();
}

#[test]
fn the_https_example_is_valid_and_its_pods_mount_the_references() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/loadtest-https.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let obj: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    let lt: crate::crd::LoadTest = serde_json::from_value(obj).unwrap();
    validate("https", &lt.spec).unwrap();
    let pod = crate::pods::runner_pod(&lt, 0, &crate::pods::tests::defaults());
    let spec = pod.spec.unwrap();
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .any(|v| v.name == target_tls::VOLUME)
    );
    assert_eq!(
        crate::pss::restricted_violations(&spec),
        Vec::<String>::new()
    );
}

#[test]
fn target_tls_errors_name_the_field() {
    let cases = [
        (
            https("{caFile: /etc/ca.pem}"),
            "spec.target.tls.caFile",
            "use caFrom",
        ),
        (
            https("{certFile: c.pem, keyFile: k.pem}"),
            "spec.target.tls.certFile",
            "use certFrom",
        ),
        (
            https("{keyFile: k.pem}"),
            "spec.target.tls.keyFile",
            "use keyFrom",
        ),
        (
            https("{caFrom: {key: ca.crt}}"),
            "spec.target.tls.caFrom",
            "exactly one of secret and configMap",
        ),
        (
            https("{caFrom: {secret: a, configMap: b, key: ca.crt}}"),
            "spec.target.tls.caFrom",
            "exactly one",
        ),
        (
            https("{caFrom: {secret: ca, key: ''}}"),
            "spec.target.tls.caFrom.key",
            "not a Secret or ConfigMap key",
        ),
        (
            https("{caFrom: {secret: ca, key: ../../etc/passwd}}"),
            "spec.target.tls.caFrom.key",
            "not a Secret or ConfigMap key",
        ),
        (
            https("{caFrom: {secret: ca, key: ..}}"),
            "spec.target.tls.caFrom.key",
            "not a Secret or ConfigMap key",
        ),
        (
            https("{caFrom: {secret: Bad_Name, key: ca.crt}}"),
            "spec.target.tls.caFrom.secret",
            "not a valid object name",
        ),
        (
            https("{caFrom: {configMap: '', key: ca.crt}}"),
            "spec.target.tls.caFrom.configMap",
            "1 to 253",
        ),
        (
            https("{certFrom: {secret: c, key: tls.crt}, keyFrom: {configMap: c, key: tls.key}}"),
            "spec.target.tls.keyFrom.configMap",
            "a private key is a secret",
        ),
        (
            https("{certFrom: {secret: c, key: tls.crt}}"),
            "spec.target.tls.certFrom",
            "needs keyFrom",
        ),
        (
            https("{keyFrom: {secret: c, key: tls.key}}"),
            "spec.target.tls.keyFrom",
            "needs certFrom",
        ),
        (
            https("{caMode: replace}"),
            "spec.target.tls.caMode",
            "no caFrom",
        ),
        (
            https(MTLS).replace("https://10.0.0.1:8443", "http://10.0.0.1:8080"),
            "spec.target.tls",
            "https:// baseUrl only",
        ),
    ];
    for (yaml, field, says) in cases {
        match validate("t", &spec(&yaml)) {
            Err(Error::Invalid { field: f, message }) => {
                assert_eq!(f, field, "{yaml}");
                assert!(message.contains(says), "{yaml}: {message}");
            }
            other => panic!("{yaml}: expected an error on {field}, got {other:?}"),
        }
    }
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (OK.replace("runners: 3", "runners: 0"), "spec.runners"),
        (
            OK.replace("p(95) < 10ms", "p(95) < ten"),
            "spec.thresholds[0]",
        ),
        (
            OK.replace("duration: 10s", "duration: 0s"),
            "spec.load.duration",
        ),
        (OK.replace("path: /", "path: x"), "spec.requests[0].path"),
        (
            format!("{OK}\ncollectInterval: 10ms"),
            "spec.collectInterval",
        ),
        (
            format!("{OK}\nrunner: {{imagePullPolicy: Sometimes}}"),
            "spec.runner.imagePullPolicy",
        ),
        (
            format!("{OK}\ndata: {{file: users.json}}"),
            "spec.data.file",
        ),
        (format!("{OK}\ndata: {{select: cycle}}"), "spec.data"),
        (format!("{OK}\nsetup: {{}}"), "spec.setup"),
        (
            format!("{OK}\nsetup: {{image: seed, users: 3, steps: [{{name: a, path: /}}]}}"),
            "spec.setup",
        ),
        (format!("{OK}\nsetup: {{image: ' '}}"), "spec.setup.image"),
        (
            format!("{OK}\nsetup: {{image: seed, backoffLimit: -1}}"),
            "spec.setup.backoffLimit",
        ),
        (
            format!("{OK}\n{SETUP}, command: [x]}}"),
            "spec.setup.command",
        ),
        (
            format!("{OK}\n{SETUP}, securityContext: {{runAsNonRoot: false}}}}"),
            "spec.setup.securityContext",
        ),
        (
            format!("{OK}\nsetup: {{users: 3, steps: [{{name: a, path: nope}}]}}"),
            "spec.setup.steps[0].path",
        ),
        (
            format!("{OK}\n{SETUP}, record: [nope]}}"),
            "spec.setup.record[0]",
        ),
        (
            format!("{OK}\n{SETUP}}}\ndataFrom: {{loadTest: other}}"),
            "spec.dataFrom",
        ),
        (
            format!("{OK}\ndataFrom: {{loadTest: t}}"),
            "spec.dataFrom.loadTest",
        ),
        // The built-in setup records `token` only.
        (
            format!("{OK}\n{SETUP}}}").replace("path: /}]", "path: '/{{ record.email }}'}]"),
            "spec.requests[0].path",
        ),
    ];
    for (yaml, field) in cases {
        match validate("t", &spec(&yaml)) {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "{yaml}"),
            other => panic!("{yaml}: expected an error on {field}, got {other:?}"),
        }
    }
    match validate(&"x".repeat(60), &spec(OK)) {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "metadata.name"),
        other => panic!("{other:?}"),
    }
}
