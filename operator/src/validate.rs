//! Checks a LoadTest spec beyond what the CRD schema can: the same plan
//! compilation a runner does (templates, thresholds, durations, weights),
//! plus the cluster-only fields. Runs before anything is created.

use std::{path::Path, time::Duration};

use barrage_runner::{
    compile::{Slot, compile_with_env, compile_with_fields},
    plan::{CaMode, SetupPlan, Target},
    provision,
};

use crate::{
    crd::LoadTestSpec,
    error::{Error, Result},
    object_refs::value_from,
    remote_write, target_tls,
};

/// Kubernetes label values (which carry the LoadTest's name) are at most 63
/// characters; "-runner-NNN" must still fit in a pod name.
pub const MAX_NAME: usize = 52;
pub const MAX_RUNNERS: u32 = 1000;
const MIN_COLLECT: Duration = Duration::from_millis(500);

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Every error in a LoadTest spec, each naming its field (`Error::Invalid`),
/// in field order; empty when the spec is valid. What the admission webhook
/// answers and `barrage-runner validate` prints: a pull request sees all of
/// its mistakes at once, not one per push.
pub fn validate_all(name: &str, spec: &LoadTestSpec) -> Vec<Error> {
    // Foundation: one error for now; the checks below learn to go on past a
    // failed field (issue 17).
    validate(name, spec).err().into_iter().collect()
}

pub fn validate(name: &str, spec: &LoadTestSpec) -> Result<()> {
    if name.len() > MAX_NAME {
        return Err(invalid(
            "metadata.name",
            format!(
                "is {} characters; at most {MAX_NAME} for a LoadTest",
                name.len()
            ),
        ));
    }
    if spec.runners == 0 {
        return Err(invalid("spec.runners", "must be at least 1"));
    }
    if spec.runners > MAX_RUNNERS {
        return Err(invalid(
            "spec.runners",
            format!("{} is more than {MAX_RUNNERS}", spec.runners),
        ));
    }
    if let Some(p) = &spec.runner.image_pull_policy
        && !matches!(p.as_str(), "Always" | "IfNotPresent" | "Never")
    {
        return Err(invalid(
            "spec.runner.imagePullPolicy",
            format!("{p:?} is not Always, IfNotPresent or Never"),
        ));
    }
    if let Some(d) = spec.collect_interval
        && d.0 < MIN_COLLECT
    {
        return Err(invalid("spec.collectInterval", "must be at least 500ms"));
    }
    if let Some(rw) = spec
        .output
        .as_ref()
        .and_then(|o| o.prometheus_remote_write.as_ref())
    {
        remote_write::spec::validate(rw)?;
    }
    // `{{ env.X }}` is resolved inside the pods, from their env: any name
    // is acceptable here.
    target_tls(&spec.plan.target)?;
    // The runner's compiler checks the rest of `target.tls`; the files it
    // names exist only in the pods.
    let mut plan = spec.plan.clone();
    plan.target = target_tls::without_files(&plan.target);
    let any_env = |_: &str| Some(String::new());
    let fields = records(name, spec, &plan.target, &any_env)?;
    let slot = Slot {
        index: 0,
        count: spec.runners,
    };
    match &fields {
        None => compile_with_env(&plan, slot, Path::new(""), "spec.", &any_env)?,
        // As the runners get it (see pods::plan_config_map).
        Some(fields) => compile_with_fields(&plan, slot, "spec.", &any_env, fields.clone())?,
    };
    teardown(spec, &plan, fields, &any_env)
}

/// `spec.teardown`, as its Job will compile it: over the records the
/// runners get, if any (`perRecord` needs them).
fn teardown(
    spec: &LoadTestSpec,
    plan: &barrage_runner::plan::Plan,
    fields: Option<Vec<String>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    let Some(td) = &spec.plan.teardown else {
        return Ok(());
    };
    if let Some(t) = spec.timeouts.teardown
        && t.0.is_zero()
    {
        return Err(invalid("spec.timeouts.teardown", "must be longer than 0"));
    }
    // Records reach the pods from a setup that makes them (the built-in
    // steps, or a custom image with spec.data) or from dataFrom.
    let has_records = spec.data_from.is_some()
        || spec
            .setup
            .as_ref()
            .is_some_and(|s| s.builtin.is_builtin() || spec.plan.data.is_some());
    if td.per_record && !has_records {
        return Err(invalid(
            "spec.teardown.perRecord",
            "needs the test's records: provision them with spec.setup (or a custom setup image with spec.data), or reuse them with spec.dataFrom",
        ));
    }
    match fields.filter(|_| has_records) {
        Some(fields) => barrage_runner::teardown::check_with_fields(plan, "spec.", env, fields)?,
        None => {
            barrage_runner::teardown::compile(plan, Path::new(""), "spec.", env)?;
        }
    }
    Ok(())
}

/// Checks setup, dataFrom and data together. The records' fields, when
/// the runners get records: known for the built-in setup, else every
/// `record.FIELD` the plan names (the runner pod checks them for real).
fn records(
    name: &str,
    spec: &LoadTestSpec,
    target: &Target,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Vec<String>>> {
    let mut fields = None;
    if let Some(s) = &spec.setup {
        if s.backoff_limit.is_some_and(|b| b < 0) {
            return Err(invalid("spec.setup.backoffLimit", "must be 0 or more"));
        }
        match (&s.image, s.builtin.is_builtin()) {
            (Some(_), true) => {
                return Err(invalid(
                    "spec.setup",
                    "give either `image` (a custom setup) or the built-in `users` and `steps`, not both",
                ));
            }
            (None, false) => {
                return Err(invalid(
                    "spec.setup",
                    "is empty: give the built-in `users` and `steps`, or a custom `image`",
                ));
            }
            (Some(i), false) if i.trim().is_empty() => {
                return Err(invalid("spec.setup.image", "is empty"));
            }
            (Some(_), false) => {}
            (None, true) => {
                if s.security_context.is_some() {
                    return Err(invalid(
                        "spec.setup.securityContext",
                        "goes with a custom `image`; the built-in setup always runs restricted",
                    ));
                }
                if !s.command.is_empty() || !s.args.is_empty() {
                    return Err(invalid(
                        "spec.setup.command",
                        "command and args go with a custom `image`; the built-in steps take none",
                    ));
                }
                let sp = SetupPlan {
                    target: target.clone(),
                    setup: s.builtin.clone(),
                };
                let c = provision::compile_env(&sp, "spec.", env)?;
                fields = Some(c.fields.into_iter().map(|(n, _)| n).collect());
            }
        }
    }
    if let Some(from) = &spec.data_from {
        if spec.setup.is_some() {
            return Err(invalid(
                "spec.dataFrom",
                "reuses another LoadTest's records, so there is nothing to provision: remove spec.setup",
            ));
        }
        if from.load_test.trim().is_empty() {
            return Err(invalid("spec.dataFrom.loadTest", "is empty"));
        }
        if from.load_test == name {
            return Err(invalid(
                "spec.dataFrom.loadTest",
                "names this LoadTest itself; name the earlier LoadTest whose setup made the records",
            ));
        }
    }
    if let Some(d) = &spec.plan.data {
        if d.file.is_some() {
            return Err(invalid(
                "spec.data.file",
                "runner pods have no files: records come from spec.setup or spec.dataFrom",
            ));
        }
        if spec.setup.is_none() && spec.data_from.is_none() {
            return Err(invalid(
                "spec.data",
                "has no records: provision them with spec.setup, or reuse an earlier LoadTest's with spec.dataFrom",
            ));
        }
    }
    let gets_records = spec.data_from.is_some() || fields.is_some() || spec.plan.data.is_some();
    if fields.is_none() && gets_records {
        fields = Some(named_record_fields(&spec.plan));
    }
    Ok(fields)
}

/// `spec.target.tls` in a cluster: files by reference only (the pods have
/// none of the user's), each reference a valid one, a key only from a
/// Secret, a certificate with its key, and only for an https target.
fn target_tls(target: &Target) -> Result<()> {
    let Some(tls) = &target.tls else {
        return Ok(());
    };
    let scheme = target.base_url.split_once("://").map(|(s, _)| s);
    if !scheme.is_some_and(|s| s.eq_ignore_ascii_case("https")) {
        return Err(invalid(
            "spec.target.tls",
            "applies to an https:// baseUrl only",
        ));
    }
    for (file, set, from) in [
        ("caFile", &tls.ca_file, "caFrom"),
        ("certFile", &tls.cert_file, "certFrom"),
        ("keyFile", &tls.key_file, "keyFrom"),
    ] {
        if set.is_some() {
            return Err(invalid(
                &format!("spec.target.tls.{file}"),
                format!("files are not on runner pods; use {from}"),
            ));
        }
    }
    for (field, from) in [
        ("spec.target.tls.caFrom", &tls.ca_from),
        ("spec.target.tls.certFrom", &tls.cert_from),
        ("spec.target.tls.keyFrom", &tls.key_from),
    ] {
        if let Some(v) = from {
            value_from(field, v)?;
        }
    }
    if tls
        .key_from
        .as_ref()
        .is_some_and(|k| k.config_map.is_some())
    {
        return Err(invalid(
            "spec.target.tls.keyFrom.configMap",
            "a private key is a secret: keep it in a Secret and give keyFrom.secret",
        ));
    }
    match (&tls.cert_from, &tls.key_from) {
        (Some(_), None) => {
            return Err(invalid(
                "spec.target.tls.certFrom",
                "needs keyFrom, the client certificate's private key",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "spec.target.tls.keyFrom",
                "needs certFrom, the client certificate it is the key of",
            ));
        }
        _ => {}
    }
    if tls.ca_mode == CaMode::Replace && tls.ca_from.is_none() {
        return Err(invalid(
            "spec.target.tls.caMode",
            "replace trusts only the CAs of caFrom, and there is no caFrom",
        ));
    }
    Ok(())
}

/// Every `{{ record.FIELD }}` the plan's templates name.
fn named_record_fields(plan: &barrage_runner::plan::Plan) -> Vec<String> {
    let text = serde_json::to_string(plan).expect("plans serialize");
    let mut out: Vec<String> = Vec::new();
    for (i, _) in text.match_indices("record.") {
        // Only inside a template: the nearest "{{" before is after any "}}".
        let before = &text[..i];
        let open = before.rfind("{{");
        if open.is_none_or(|o| before.rfind("}}").is_some_and(|c| c > o)) {
            continue;
        }
        let name: String = text[i + "record.".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
            .collect();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(named_record_fields(&p.plan), ["id", "tok-en"]);
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
                https(
                    "{certFrom: {secret: c, key: tls.crt}, keyFrom: {configMap: c, key: tls.key}}",
                ),
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
}
