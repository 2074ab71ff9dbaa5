//! Teardown: steps run once after the load ends (delete the users a setup
//! made), inline after a local run or by `barrage-runner teardown` in the
//! cluster's teardown Job.
//!
//! Like a setup (`provision`), a teardown runs on the load engine itself as
//! a closed-model plan of one journey named `teardown`, so its requests are
//! counted exactly as the load's are, under metrics of their own
//! (`teardown/STEP`), in a result of their own: the load's figures and
//! verdict never include teardown traffic. With `perRecord` the journey
//! runs once per record of the test's data (`select: unique`, so every
//! record exactly once), `concurrency` runs at a time; else it runs once.
//!
//! Its outcome (`Outcome`: runs, failed, the first failure) is what the CLI
//! prints and puts in its JSON, and what the teardown Job hands the
//! operator on its termination message. A failed teardown fails the test
//! only with `failsTest: true`.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{
    compile::{Compiled, Slot, compile_with_env, compile_with_fields, compile_with_records},
    engine::{Failure, Runner},
    error::{Error, Result},
    plan::{DataSpec, Executor, Load, OnExhausted, Plan, RequestSpec, Select, TeardownSpec},
    snapshot::{ErrorKind, Snapshot},
};

pub const DEFAULT_CONCURRENCY: u32 = 10;
/// How long a teardown may take unless told otherwise (the CLI's
/// `--teardown-timeout`, the LoadTest's `spec.timeouts.teardown`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// The journey's name, and so its metrics' prefix (`teardown/STEP`).
pub const JOURNEY: &str = "teardown";
/// The most bytes of an outcome written to a termination message
/// (Kubernetes keeps 4096).
pub const MAX_MESSAGE: usize = 4000;

/// A teardown compiled and ready to run.
pub struct Teardown {
    pub plan: Arc<Compiled>,
    /// Runs of the steps: one per record with `perRecord`, else one.
    pub runs: u64,
    pub concurrency: u32,
    pub fails_test: bool,
}

/// The plan a teardown runs as: its steps as the one journey of a
/// closed-model plan, over the test's records with `perRecord`.
fn as_plan(plan: &Plan, td: &TeardownSpec, runs: u64, concurrency: u32) -> Plan {
    Plan {
        target: plan.target.clone(),
        load: Load {
            executor: Executor::Concurrency,
            users: Some(concurrency.max(1)),
            iterations: Some(runs.max(1)),
            // At the timeout, runs still on their way count as unfinished
            // at once.
            graceful_stop: Some(crate::duration::HumanDuration(Duration::ZERO)),
            ..Default::default()
        },
        requests: vec![RequestSpec {
            name: JOURNEY.into(),
            vars: td.vars.clone(),
            steps: td.steps.clone(),
            ..Default::default()
        }],
        data: td.per_record.then(|| DataSpec {
            file: plan.data.as_ref().and_then(|d| d.file.clone()),
            select: Select::Unique,
            on_exhausted: OnExhausted::Stop,
            ..Default::default()
        }),
        // The teardown has its own verdict (every run succeeded).
        thresholds: Some(Vec::new()),
        ..Default::default()
    }
}

/// Checks the fields the schema cannot, before anything is compiled.
fn check<'a>(plan: &'a Plan, prefix: &str) -> Result<Option<(&'a TeardownSpec, u32)>> {
    let Some(td) = &plan.teardown else {
        return Ok(None);
    };
    let f = |name: &str| format!("{prefix}teardown.{name}");
    if td.steps.is_empty() {
        return Err(Error::invalid(
            f("steps"),
            "is empty: list the requests that clean up",
        ));
    }
    let concurrency = match td.concurrency {
        Some(0) => return Err(Error::invalid(f("concurrency"), "must be at least 1")),
        Some(n) => {
            crate::limits::count(n as f64, crate::limits::MAX_USERS)
                .map_err(|m| Error::invalid(f("concurrency"), m))?;
            n
        }
        None => DEFAULT_CONCURRENCY,
    };
    if td.per_record && plan.data.is_none() {
        return Err(Error::invalid(
            f("perRecord"),
            "needs the test's records: give data (data.file; in a cluster, setup or dataFrom)",
        ));
    }
    Ok(Some((td, concurrency)))
}

/// Names the teardown's errors as the user wrote them: it is compiled as
/// `requests[0]` of a plan of its own.
fn rename(e: Error, prefix: &str) -> Error {
    let journey = format!("{prefix}requests[0].");
    match e {
        Error::Invalid { field, message } => Error::Invalid {
            field: field.replacen(&journey, &format!("{prefix}teardown."), 1),
            message,
        },
        other => other,
    }
}

/// Compiles the plan's teardown (None without one), reading the records of
/// `data.file` (relative to `base_dir`) with `perRecord`. Errors name
/// fields as `{prefix}teardown.…`.
pub fn compile(
    plan: &Plan,
    base_dir: &Path,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Teardown>> {
    let Some((td, concurrency)) = check(plan, prefix)? else {
        return Ok(None);
    };
    // Compiled once to learn how many records there are, then with the
    // runs it makes (a plan's iterations are part of its compiled form).
    let probe = as_plan(plan, td, 1, 1);
    let first = compile_with_env(&probe, Slot::SOLO, base_dir, prefix, env)
        .map_err(|e| rename(e, prefix))?;
    let runs = match &first.data {
        Some(d) => d.records.rows.len() as u64,
        None => 1,
    };
    let concurrency = concurrency.min(runs.max(1).min(u32::MAX as u64) as u32);
    let plan = as_plan(plan, td, runs, concurrency);
    let compiled = match &first.data {
        Some(d) => {
            compile_with_records(&plan, Slot::SOLO, base_dir, prefix, env, d.records.clone())
        }
        None => compile_with_env(&plan, Slot::SOLO, base_dir, prefix, env),
    }
    .map_err(|e| rename(e, prefix))?;
    Ok(Some(Teardown {
        plan: Arc::new(compiled),
        runs,
        concurrency,
        fails_test: td.fails_test,
    }))
}

/// Checks a teardown whose records do not exist yet (a setup will make
/// them), against the fields those records will have.
pub fn check_with_fields(
    plan: &Plan,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
    fields: Vec<String>,
) -> Result<()> {
    // The records will be the plan's data (a cluster's plan names them).
    let mut plan = plan.clone();
    plan.data.get_or_insert_with(Default::default);
    let Some((td, concurrency)) = check(&plan, prefix)? else {
        return Ok(());
    };
    let p = as_plan(&plan, td, 1, concurrency);
    compile_with_fields(&p, Slot::SOLO, prefix, env, fields).map_err(|e| rename(e, prefix))?;
    Ok(())
}

/// The first run that failed: which step, how, and the status if any
/// (never a URL, header or body: those may hold secrets).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirstFailure {
    /// The step's name, without the `teardown/` prefix.
    pub step: String,
    /// The error kind, as in the summary (`status`, `timeout`, ...).
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// How a teardown went. `failed` counts runs that failed or did not finish.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub runs: u64,
    pub failed: u64,
    /// Runs not finished by the timeout (or an interrupt); part of `failed`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unfinished: u64,
    /// The teardown's own requests and errors.
    pub requests: u64,
    pub errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<FirstFailure>,
    /// Whether a failure fails the test (`failsTest`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fails_test: bool,
    pub elapsed_secs: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.failed == 0
    }

    /// Whether this outcome turns the test's verdict to failed.
    pub fn fails_the_test(&self) -> bool {
        self.fails_test && !self.succeeded()
    }

    /// One line for people: counts and the first failure.
    pub fn message(&self) -> String {
        let mut m = if self.succeeded() {
            format!("teardown: {} runs succeeded", self.runs)
        } else {
            format!("teardown: {} of {} runs failed", self.failed, self.runs)
        };
        if let Some(f) = &self.first_failure {
            let status = f
                .status
                .map(|s| format!(", status {s}"))
                .unwrap_or_default();
            m.push_str(&format!(
                "; first failure: step {:?}: {}{status}",
                f.step, f.error
            ));
        }
        if self.unfinished > 0 {
            m.push_str(&format!("; {} runs did not finish", self.unfinished));
        }
        m
    }
}

/// A teardown's outcome and its requests, as a load test would report them.
pub struct Done {
    pub outcome: Outcome,
    pub snapshot: Snapshot,
}

/// Runs the teardown: every run once, or until `timeout` or `interrupt`
/// resolves (then the runs in flight get the engine's interrupt grace and
/// count as unfinished).
pub async fn run(
    t: &Teardown,
    timeout: Duration,
    interrupt: impl std::future::Future<Output = ()>,
) -> Done {
    let runner = Runner::with_journal(t.plan.clone());
    let started = Instant::now();
    if t.runs > 0 {
        let go = runner.run();
        tokio::pin!(go);
        tokio::select! {
            _ = &mut go => {}
            _ = tokio::time::sleep(timeout) => {
                runner.stop.trigger();
                go.await;
            }
            _ = interrupt => {
                runner.interrupt();
                go.await;
            }
        }
    }
    let mut journal = runner.take_journal();
    journal.sort_by_key(|f| f.seq);
    let failures: Vec<&Failure> = journal
        .iter()
        .filter_map(|d| d.result.as_ref().err())
        .collect();
    let finished = journal.len() as u64;
    let unfinished = t.runs.saturating_sub(finished);
    let snapshot = runner.snapshot_with(false);
    let all = snapshot.stats(None).unwrap_or_default();
    Done {
        outcome: Outcome {
            runs: t.runs,
            failed: failures.len() as u64 + unfinished,
            unfinished,
            requests: all.count(),
            errors: all.error_count(),
            first_failure: failures.first().map(|f| first_failure(f)),
            fails_test: t.fails_test,
            elapsed_secs: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        },
        snapshot,
    }
}

fn first_failure(f: &Failure) -> FirstFailure {
    let step = f.step.strip_prefix("teardown/").unwrap_or(&f.step);
    FirstFailure {
        step: step.to_string(),
        error: match f.error {
            ErrorKind::Status if f.status.is_some() => "status".into(),
            k => k.as_str().into(),
        },
        status: f.status,
    }
}

/// The outcome as the teardown Job's termination message: JSON, cut to
/// what Kubernetes keeps (only the first failure can make it long).
pub fn termination_message(o: &Outcome) -> String {
    let text = serde_json::to_string(o).expect("outcomes serialize");
    if text.len() <= MAX_MESSAGE {
        return text;
    }
    let mut short = o.clone();
    if let Some(f) = &mut short.first_failure {
        f.step = f.step.chars().take(200).collect();
    }
    serde_json::to_string(&short).expect("outcomes serialize")
}

/// Reads a teardown Job's termination message back; None when it is not
/// an outcome (the teardown could not start: its message is an error).
pub fn parse_message(text: &str) -> Option<Outcome> {
    serde_json::from_str(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> Plan {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const BASE: &str = "target: {baseUrl: 'http://127.0.0.1:1'}\nrequests: [{name: a, path: /}]\n";

    fn err(yaml: &str) -> (String, String) {
        let p = plan(&format!("{BASE}{yaml}"));
        match compile(&p, Path::new(""), "spec.", &|_| None) {
            Err(Error::Invalid { field, message }) => (field, message),
            Err(e) => panic!("not an invalid field: {e}"),
            Ok(_) => panic!("compiled: {yaml}"),
        }
    }

    #[test]
    fn errors_name_the_teardown_field() {
        let (f, _) = err("teardown: {steps: [{name: x, path: '/{{ nope }}'}]}");
        assert!(f.starts_with("spec.teardown.steps[0]"), "{f}");
        let (f, m) = err("teardown: {steps: []}");
        assert_eq!(f, "spec.teardown.steps");
        assert!(m.contains("empty"), "{m}");
        let (f, _) = err("teardown: {concurrency: 0, steps: [{name: x, path: /}]}");
        assert_eq!(f, "spec.teardown.concurrency");
        let (f, m) = err("teardown: {perRecord: true, steps: [{name: x, path: /}]}");
        assert_eq!(f, "spec.teardown.perRecord");
        assert!(m.contains("records"), "{m}");
        // Without perRecord there is no record to read.
        let (f, _) = err("teardown: {steps: [{name: x, path: '/{{ record.id }}'}]}");
        assert!(f.starts_with("spec.teardown.steps[0]"), "{f}");
    }

    #[test]
    fn without_records_it_runs_once_and_names_its_metrics() {
        let p = plan(&format!(
            "{BASE}teardown: {{concurrency: 4, steps: [{{name: bye, path: /}}]}}"
        ));
        let t = compile(&p, Path::new(""), "", &|_| None).unwrap().unwrap();
        assert_eq!((t.runs, t.concurrency), (1, 1));
        assert_eq!(t.plan.names, ["teardown/bye"]);
        assert!(
            compile(&plan(BASE), Path::new(""), "", &|_| None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_teardown_with_fields_is_checked_against_them() {
        let p = plan(&format!(
            "{BASE}data: {{select: cycle}}\nteardown: {{perRecord: true, steps: [{{name: x, path: '/{{{{ record.token }}}}'}}]}}"
        ));
        check_with_fields(&p, "spec.", &|_| None, vec!["token".into()]).unwrap();
        let e = check_with_fields(&p, "spec.", &|_| None, vec!["email".into()]).unwrap_err();
        assert!(e.to_string().contains("spec.teardown.steps[0]"), "{e}");
    }

    #[test]
    fn the_message_says_counts_and_the_first_failure_only() {
        let o = Outcome {
            runs: 5,
            failed: 2,
            unfinished: 1,
            first_failure: Some(FirstFailure {
                step: "delete".into(),
                error: "status".into(),
                status: Some(404),
            }),
            ..Default::default()
        };
        assert_eq!(
            o.message(),
            "teardown: 2 of 5 runs failed; first failure: step \"delete\": status, status 404; 1 runs did not finish"
        );
        assert!(!o.fails_the_test());
        assert!(
            Outcome {
                fails_test: true,
                ..o.clone()
            }
            .fails_the_test()
        );
        assert_eq!(parse_message(&termination_message(&o)), Some(o));
        assert_eq!(parse_message("error: spec.teardown.steps: is empty"), None);
        let long = Outcome {
            first_failure: Some(FirstFailure {
                step: "x".repeat(10_000),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(termination_message(&long).len() <= MAX_MESSAGE);
    }
}
