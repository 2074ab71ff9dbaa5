//! The checks of a LoadTest spec beyond its schema, over a plain view of
//! the manifest ([`LoadTestView`]): the plan as the runner pods will
//! compile it (templates, thresholds, durations, weights; `{{ env.X }}`
//! left to the pods), and the cluster fields (runners, the runner pods'
//! pull policy, collectInterval, setup, dataFrom, data, teardown, target
//! TLS by reference, remote-write output). The operator builds the view
//! from its typed spec and the admission webhook answers with these
//! errors; `barrage-runner validate` reads the view from a file: one
//! implementation, the same answer.
//!
//! Independent parts are checked independently, so every mistake is
//! reported at once; within one part, the first error stops it where the
//! later checks depend on it.

use std::{path::Path, time::Duration};

use serde::Deserialize;

use super::{output::RemoteWrite, refs::value_from};
use crate::{
    compile::{Slot, compile_all_with_env, compile_all_with_fields, named_record_fields},
    duration::HumanDuration,
    error::{Error, Errors, Result},
    plan::{CaMode, Plan, SetupPlan, SetupSpec, Target, TargetTls},
    provision,
};

/// Kubernetes label values (which carry the LoadTest's name) are at most 63
/// characters; "-runner-NNN" must still fit in a pod name.
pub const MAX_NAME: usize = 52;
pub const MAX_RUNNERS: u32 = 1000;
const MIN_COLLECT: Duration = Duration::from_millis(500);

/// What the checks read of a LoadTest's spec: the plan and the cluster
/// fields they judge. Fields typed by Kubernetes (resources, affinity,
/// tolerations, env, securityContext ...) are the API schema's to check;
/// `securityContext` is only looked at for being set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadTestView {
    #[serde(flatten)]
    pub plan: Plan,
    #[serde(default = "one")]
    pub runners: u32,
    #[serde(default)]
    pub runner: RunnerView,
    #[serde(default)]
    pub setup: Option<SetupView>,
    #[serde(default)]
    pub data_from: Option<DataFromView>,
    #[serde(default)]
    pub timeouts: TimeoutsView,
    #[serde(default)]
    pub collect_interval: Option<HumanDuration>,
    #[serde(default)]
    pub output: Option<OutputView>,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerView {
    #[serde(default)]
    pub image_pull_policy: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupView {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub backoff_limit: Option<i32>,
    #[serde(default)]
    pub security_context: Option<serde_json::Value>,
    #[serde(flatten)]
    pub builtin: SetupSpec,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataFromView {
    pub load_test: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutsView {
    #[serde(default)]
    pub teardown: Option<HumanDuration>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputView {
    #[serde(default)]
    pub prometheus_remote_write: Option<RemoteWrite>,
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::invalid(field, message)
}

/// Every error of a LoadTest named `name` with this spec, in field order,
/// each once, at most `Errors::MAX`; empty when it is valid.
pub fn validate_load_test(name: &str, spec: &LoadTestView) -> Vec<Error> {
    let mut errs = Errors::new();
    check_load_test(name, spec, &mut errs);
    errs.into_vec()
}

pub(super) fn check_load_test(name: &str, spec: &LoadTestView, errs: &mut Errors) {
    if name.len() > MAX_NAME {
        errs.push(invalid(
            "metadata.name",
            format!(
                "is {} characters; at most {MAX_NAME} for a LoadTest",
                name.len()
            ),
        ));
    }
    if spec.runners == 0 {
        errs.push(invalid("spec.runners", "must be at least 1"));
    }
    if spec.runners > MAX_RUNNERS {
        errs.push(invalid(
            "spec.runners",
            format!("{} is more than {MAX_RUNNERS}", spec.runners),
        ));
    }
    if let Some(p) = &spec.runner.image_pull_policy
        && !matches!(p.as_str(), "Always" | "IfNotPresent" | "Never")
    {
        errs.push(invalid(
            "spec.runner.imagePullPolicy",
            format!("{p:?} is not Always, IfNotPresent or Never"),
        ));
    }
    if let Some(d) = spec.collect_interval
        && d.0 < MIN_COLLECT
    {
        errs.push(invalid("spec.collectInterval", "must be at least 500ms"));
    }
    if let Some(rw) = spec
        .output
        .as_ref()
        .and_then(|o| o.prometheus_remote_write.as_ref())
    {
        errs.take(super::output::validate(rw));
    }
    // `{{ env.X }}` is resolved inside the pods, from their env: any name
    // is acceptable here.
    errs.take(target_tls(&spec.plan.target));
    // The runner's compiler checks the rest of `target.tls`; the files it
    // names exist only in the pods.
    let mut plan = spec.plan.clone();
    plan.target = without_files(&plan.target);
    let any_env = |_: &str| Some(String::new());
    let fields = records(name, spec, &plan.target, &any_env, errs);
    let slot = Slot {
        index: 0,
        count: spec.runners.clamp(1, MAX_RUNNERS),
    };
    let compiled = match &fields {
        None => compile_all_with_env(&plan, slot, Path::new(""), "spec.", &any_env),
        // As the runners get it (the operator's plan ConfigMap).
        Some(fields) => compile_all_with_fields(&plan, slot, "spec.", &any_env, fields.clone()),
    };
    if let Err(e) = compiled {
        errs.extend(e);
    }
    errs.take(teardown(spec, &plan, fields, &any_env));
}

/// `target` as the operator checks a plan whose TLS files exist only in
/// the pods: neither files nor references (nor `caMode`, which needs a
/// CA); [`target_tls`] checks those itself, the compiler everything else.
pub fn without_files(target: &Target) -> Target {
    let mut t = target.clone();
    if let Some(tls) = t.tls.as_mut() {
        *tls = TargetTls {
            ca_file: None,
            ca_mode: CaMode::default(),
            cert_file: None,
            key_file: None,
            ca_from: None,
            cert_from: None,
            key_from: None,
            ..tls.clone()
        };
    }
    t
}

/// `spec.teardown`, as its Job will compile it: over the records the
/// runners get, if any (`perRecord` needs them).
fn teardown(
    spec: &LoadTestView,
    plan: &Plan,
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
        Some(fields) => crate::teardown::check_with_fields(plan, "spec.", env, fields)?,
        None => {
            crate::teardown::compile(plan, Path::new(""), "spec.", env)?;
        }
    }
    Ok(())
}

/// Checks setup, dataFrom and data, each on its own. The records' fields,
/// when the runners get records: known for the built-in setup, else every
/// `record.FIELD` the plan names (the runner pod checks them for real).
fn records(
    name: &str,
    spec: &LoadTestView,
    target: &Target,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Errors,
) -> Option<Vec<String>> {
    let mut fields = None;
    if let Some(s) = &spec.setup {
        match setup(s, target, env) {
            Ok(f) => fields = f,
            Err(e) => {
                errs.push(e);
                // A failed built-in setup: its fields are unknown, so the
                // plan is checked against those it names.
                if s.builtin.is_builtin() {
                    fields = Some(named_record_fields(&spec.plan));
                }
            }
        }
    }
    if let Some(from) = &spec.data_from {
        errs.take(data_from(name, spec, from));
    }
    if let Some(d) = &spec.plan.data {
        if d.file.is_some() {
            errs.push(invalid(
                "spec.data.file",
                "runner pods have no files: records come from spec.setup or spec.dataFrom",
            ));
        } else if spec.setup.is_none() && spec.data_from.is_none() {
            errs.push(invalid(
                "spec.data",
                "has no records: provision them with spec.setup, or reuse an earlier LoadTest's with spec.dataFrom",
            ));
        }
    }
    let gets_records = spec.data_from.is_some() || fields.is_some() || spec.plan.data.is_some();
    if fields.is_none() && gets_records {
        fields = Some(named_record_fields(&spec.plan));
    }
    fields
}

/// `spec.setup`: the fields of the records the built-in steps make.
fn setup(
    s: &SetupView,
    target: &Target,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Vec<String>>> {
    if s.backoff_limit.is_some_and(|b| b < 0) {
        return Err(invalid("spec.setup.backoffLimit", "must be 0 or more"));
    }
    match (&s.image, s.builtin.is_builtin()) {
        (Some(_), true) => Err(invalid(
            "spec.setup",
            "give either `image` (a custom setup) or the built-in `users` and `steps`, not both",
        )),
        (None, false) => Err(invalid(
            "spec.setup",
            "is empty: give the built-in `users` and `steps`, or a custom `image`",
        )),
        (Some(i), false) if i.trim().is_empty() => Err(invalid("spec.setup.image", "is empty")),
        (Some(_), false) => Ok(None),
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
            Ok(Some(c.fields.into_iter().map(|(n, _)| n).collect()))
        }
    }
}

fn data_from(name: &str, spec: &LoadTestView, from: &DataFromView) -> Result<()> {
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
    Ok(())
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
        (Some(_), None) => Err(invalid(
            "spec.target.tls.certFrom",
            "needs keyFrom, the client certificate's private key",
        )),
        (None, Some(_)) => Err(invalid(
            "spec.target.tls.keyFrom",
            "needs certFrom, the client certificate it is the key of",
        )),
        _ if tls.ca_mode == CaMode::Replace && tls.ca_from.is_none() => Err(invalid(
            "spec.target.tls.caMode",
            "replace trusts only the CAs of caFrom, and there is no caFrom",
        )),
        _ => Ok(()),
    }
}
