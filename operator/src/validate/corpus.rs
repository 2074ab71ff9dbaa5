//! The operator's `validate_all` and `barrage-runner validate`'s manifest
//! check (`barrage_runner::manifest::check_manifest`) give the same
//! verdict and errors over a corpus of manifests: the examples and
//! invalid ones of each kind.

use barrage_runner::manifest::{self, Kind};

use crate::schedule::{self, crd::ScheduledLoadTest};

/// Valid and invalid manifests, one multi-document text.
const CORPUS: &str = r#"
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: five}
spec:
  runners: 0
  target: {baseUrl: 'http://10.0.0.1', headers: {x: '{{ nope }}'}}
  load: {users: 2, duration: 0s}
  requests: [{name: a, path: /}, {name: b, path: x}]
  thresholds: ['p(95) < ten']
---
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: cluster}
spec:
  runner: {imagePullPolicy: Sometimes}
  collectInterval: 10ms
  target: {baseUrl: 'http://10.0.0.1', tls: {insecureSkipVerify: true}}
  load: {users: 1, duration: 10s}
  requests: [{name: a, path: '/{{ record.id }}'}]
  data: {file: users.csv}
  dataFrom: {loadTest: cluster}
  output: {prometheusRemoteWrite: {url: 'ftp://p', headers: {Authorization: x}}}
---
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: setup}
spec:
  target: {baseUrl: 'https://10.0.0.1', tls: {caFile: /ca.pem, keyFrom: {configMap: k, key: tls.key}}}
  load: {users: 1, duration: 10s}
  requests: [{name: a, path: '/{{ record.email }}'}]
  setup: {users: 2, command: [x], steps: [{name: s, path: /, capture: {token: {json: /t}}}]}
  teardown: {perRecord: true, steps: [{name: d, path: '/{{ record.token }}'}]}
  timeouts: {teardown: 0s}
---
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: good}
spec:
  runners: 3
  target: {baseUrl: 'http://10.0.0.1', headers: {k: '{{ env.KEY }}'}}
  load: {users: 6, duration: 10s}
  requests: [{name: a, path: /}]
  thresholds: ['p(95) < 10ms']
---
apiVersion: barrage.dev/v1alpha1
kind: ScheduledLoadTest
metadata: {name: nightly-bad}
spec:
  schedule: "0 9 * * mond"
  timeZone: Europe/Berlinn
  startingDeadlineSeconds: -5
  template:
    spec:
      target: {baseUrl: 'http://10.0.0.1'}
      load: {users: 1, duration: 10s}
      requests: [{name: a, path: x}]
---
apiVersion: barrage.dev/v1alpha1
kind: ScheduledLoadTest
metadata: {name: nightly}
spec:
  schedule: "*/5 * * * *"
  template:
    spec:
      target: {baseUrl: 'http://10.0.0.1'}
      load: {users: 1, duration: 10s}
      requests: [{name: a, path: /}]
"#;

fn examples() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        out.extend(text.split("\n---\n").map(str::to_string));
    }
    out
}

fn strings<E: std::fmt::Display>(errors: Vec<E>) -> Vec<String> {
    errors.iter().map(|e| e.to_string()).collect()
}

/// The operator's answer for a manifest, from its typed object.
fn operator(doc: &serde_json::Value) -> Vec<String> {
    match doc["kind"].as_str() {
        Some("LoadTest") => {
            let lt: crate::crd::LoadTest = serde_json::from_value(doc.clone()).unwrap();
            let name = lt.metadata.name.clone().unwrap_or_default();
            strings(crate::validate::validate_all(&name, &lt.spec))
        }
        Some("ScheduledLoadTest") => {
            let slt: ScheduledLoadTest = serde_json::from_value(doc.clone()).unwrap();
            strings(schedule::validate::validate_all(&slt))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_operator_and_the_cli_give_the_same_answer() {
    let mut docs: Vec<String> = CORPUS.split("\n---\n").map(str::to_string).collect();
    docs.extend(examples());
    let (mut valid, mut invalid) = (0, 0);
    for text in docs {
        let doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        let Ok((kind, name)) = manifest::kind_of(&doc) else {
            continue;
        };
        if kind == Kind::Plan {
            continue;
        }
        let cli = strings(manifest::check_manifest(
            kind,
            name.as_deref().unwrap_or(""),
            &doc,
        ));
        assert_eq!(operator(&doc), cli, "{text}");
        if cli.is_empty() {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid >= 8 && invalid >= 4,
        "{valid} valid, {invalid} invalid"
    );
}

#[test]
fn a_spec_with_five_independent_errors_gets_exactly_those_five() {
    let doc: serde_json::Value =
        serde_yaml_ng::from_str(CORPUS.split("\n---\n").next().unwrap()).unwrap();
    let fields: Vec<String> = operator(&doc)
        .iter()
        .map(|e| e.split(": ").next().unwrap().to_string())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.runners",
            "spec.target.headers.x",
            "spec.load.duration",
            "spec.requests[1].path",
            "spec.thresholds[0]",
        ]
    );
}

#[test]
fn cluster_fields_setup_and_schedules_report_every_error() {
    let docs: Vec<serde_json::Value> = CORPUS
        .split("\n---\n")
        .map(|t| serde_yaml_ng::from_str(t).unwrap())
        .collect();
    let fields = |d: &serde_json::Value| -> Vec<String> {
        operator(d)
            .iter()
            .map(|e| e.split(": ").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        fields(&docs[1]),
        [
            "spec.runner.imagePullPolicy",
            "spec.collectInterval",
            "spec.output.prometheusRemoteWrite.url",
            "spec.target.tls",
            "spec.dataFrom.loadTest",
            "spec.data.file",
        ]
    );
    assert_eq!(
        fields(&docs[2]),
        [
            "spec.target.tls.caFile",
            "spec.setup.command",
            "spec.timeouts.teardown",
        ]
    );
    assert_eq!(
        fields(&docs[4]),
        [
            "spec.schedule",
            "spec.timeZone",
            "spec.startingDeadlineSeconds",
            "spec.template.spec.requests[0].path",
        ]
    );
}
