//! Provisioning: create the test data once, before the load.
//!
//! A setup is a journey (`steps`, with `vars` and captures) run once per
//! user, `concurrency` users at a time. It runs on the load engine itself, as
//! a closed-model plan of `users` iterations, so requests, templates,
//! captures and redirects behave exactly as they do under load. Each user
//! whose journey succeeds becomes one record (a JSON object of its
//! variables); the records are written as JSON lines, the format runners
//! read as `data`.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Map, Value};

use crate::{
    compile::{Compiled, Slot, compile_with_env},
    engine::{Failure, Runner},
    error::{Error, Result},
    plan::{Executor, Load, Plan, RequestSpec, SetupPlan},
    progress::Progress,
    snapshot::{ErrorKind, Snapshot},
};

pub const DEFAULT_CONCURRENCY: u32 = 10;
/// What a Kubernetes Secret holds at most (the sum of its values), and so
/// the most records a LoadTest can carry.
pub const MAX_RECORDS_BYTES: usize = 1024 * 1024;
/// How many failures a failed setup quotes.
const FIRST_ERRORS: usize = 5;

/// A setup compiled and ready to run.
pub struct Setup {
    pub plan: Arc<Compiled>,
    pub users: u32,
    pub concurrency: u32,
    pub tolerated: f64,
    /// The record's fields, and each one's variable slot.
    pub fields: Vec<(String, usize)>,
}

/// Checks and compiles a setup; errors name fields as `{prefix}setup.…`.
pub fn compile(sp: &SetupPlan, prefix: &str) -> Result<Setup> {
    compile_env(sp, prefix, &|k| std::env::var(k).ok())
}

pub fn compile_env(
    sp: &SetupPlan,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Setup> {
    let s = &sp.setup;
    let f = |name: &str| format!("{prefix}setup.{name}");
    let users = match s.users {
        None => {
            return Err(Error::invalid(
                f("users"),
                "is missing: how many users (records) to provision",
            ));
        }
        Some(0) => return Err(Error::invalid(f("users"), "must be at least 1")),
        // Each user's record is held in memory until the end.
        Some(n) => {
            crate::limits::count(n as f64, crate::limits::MAX_USERS)
                .map_err(|m| Error::invalid(f("users"), m))?;
            n
        }
    };
    let concurrency = match s.concurrency {
        Some(0) => return Err(Error::invalid(f("concurrency"), "must be at least 1")),
        c => c.unwrap_or(DEFAULT_CONCURRENCY).min(users),
    };
    let tolerated = s.tolerated_failure_ratio.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&tolerated) {
        return Err(Error::invalid(
            f("toleratedFailureRatio"),
            format!("{tolerated} is not a fraction between 0 and 1"),
        ));
    }
    if s.steps.is_empty() {
        return Err(Error::invalid(
            f("steps"),
            "is empty: list the requests each user makes",
        ));
    }
    let plan = Plan {
        target: sp.target.clone(),
        load: Load {
            executor: Executor::Concurrency,
            users: Some(concurrency),
            iterations: Some(users as u64),
            // At the timeout, users still on their way count as unfinished
            // at once: the Job's deadline is not far behind.
            graceful_stop: Some(crate::duration::HumanDuration(Duration::ZERO)),
            ..Default::default()
        },
        requests: vec![RequestSpec {
            name: "setup".into(),
            vars: s.vars.clone(),
            steps: s.steps.clone(),
            ..Default::default()
        }],
        // The setup has its own verdict (toleratedFailureRatio), not the
        // plans' default threshold.
        thresholds: Some(Vec::new()),
        ..Default::default()
    };
    // The setup is compiled as a one-journey plan: name its errors as the
    // user wrote them.
    let journey = format!("{prefix}requests[0].");
    let compiled = compile_with_env(
        &plan,
        Slot { index: 0, count: 1 },
        Path::new(""),
        prefix,
        env,
    )
    .map_err(|e| match e {
        Error::Invalid { field, message } => Error::Invalid {
            field: field.replacen(&journey, &format!("{prefix}setup."), 1),
            message,
        },
        other => other,
    })?;
    let names = &compiled.scenarios[0].entries[0].var_names;
    let fields = if s.record.is_empty() {
        names
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, n)| (n, i))
            .collect()
    } else {
        let mut fields = Vec::new();
        for (i, want) in s.record.iter().enumerate() {
            let Some(slot) = names.iter().position(|n| n == want) else {
                return Err(Error::invalid(
                    f(&format!("record[{i}]")),
                    format!(
                        "{want:?} is neither a var nor a capture of the steps (they are: {})",
                        names.join(", ")
                    ),
                ));
            };
            fields.push((want.clone(), slot));
        }
        fields
    };
    if fields.is_empty() {
        return Err(Error::invalid(
            f("steps"),
            "capture nothing and there are no vars: a record would be empty",
        ));
    }
    Ok(Setup {
        plan: Arc::new(compiled),
        users,
        concurrency,
        tolerated,
        fields,
    })
}

/// What a setup produced.
#[derive(Debug)]
pub struct Provisioned {
    pub users: u32,
    pub tolerated: f64,
    /// One JSON object per successful user, in user order.
    pub records: Vec<Map<String, Value>>,
    /// Failed users (by user number), in user order.
    pub failures: Vec<(u64, Failure)>,
    /// Users that had not finished when the setup timed out.
    pub unfinished: u64,
    pub timeout: Option<Duration>,
    pub elapsed: Duration,
    /// The setup's own requests, as a load test would report them.
    pub snapshot: Snapshot,
}

/// Runs the setup: every user once, or until `timeout`.
pub async fn run(c: &Setup, timeout: Option<Duration>) -> Provisioned {
    run_watched(c, timeout, None, |_, _| {}).await
}

/// [`run`], telling `watch` how far it is every `every` (the first time at
/// once): the time since the start and the users finished so far (failed
/// ones too) and failed. The final count is [`Provisioned::progress`].
pub async fn run_watched(
    c: &Setup,
    timeout: Option<Duration>,
    every: Option<Duration>,
    mut watch: impl FnMut(Duration, Progress),
) -> Provisioned {
    let runner = Runner::with_journal(c.plan.clone());
    let started = Instant::now();
    let timer = timeout.map(|t| {
        let r = runner.clone();
        tokio::spawn(async move {
            tokio::time::sleep(t).await;
            r.stop.trigger();
        })
    });
    match every {
        None => runner.run().await,
        Some(every) => {
            let total = Some(c.users as u64);
            // The first report before any user starts (an interval's first
            // tick may wait for the timer driver on a busy machine).
            let (done, failed) = runner.journal_counts();
            watch(started.elapsed(), Progress::setup(done, failed, total));
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let run = runner.run();
            tokio::pin!(run);
            loop {
                tokio::select! {
                    biased;
                    _ = tick.tick() => {
                        let (done, failed) = runner.journal_counts();
                        watch(started.elapsed(), Progress::setup(done, failed, total));
                    }
                    () = &mut run => break,
                }
            }
        }
    }
    if let Some(t) = timer {
        t.abort();
    }
    let mut journal = runner.take_journal();
    journal.sort_by_key(|f| f.seq);
    let mut records = Vec::new();
    let mut failures = Vec::new();
    for done in journal {
        match done.result {
            Ok(vars) => records.push(
                c.fields
                    .iter()
                    .map(|(name, slot)| {
                        let v = vars[*slot].clone().unwrap_or_default();
                        (name.clone(), Value::String(v))
                    })
                    .collect(),
            ),
            Err(f) => failures.push((done.seq, f)),
        }
    }
    let finished = (records.len() + failures.len()) as u64;
    Provisioned {
        users: c.users,
        tolerated: c.tolerated,
        records,
        failures,
        unfinished: (c.users as u64).saturating_sub(finished),
        timeout,
        elapsed: started.elapsed(),
        snapshot: runner.snapshot_with(false),
    }
}

impl Provisioned {
    pub fn failed(&self) -> u64 {
        self.failures.len() as u64 + self.unfinished
    }

    /// The final progress: every user done, the unfinished ones failed.
    pub fn progress(&self) -> Progress {
        let total = self.users as u64;
        Progress::setup(total, self.failed().min(total), Some(total))
    }

    /// Ok when few enough users failed, else why not, with the first errors.
    pub fn verdict(&self) -> std::result::Result<(), String> {
        let failed = self.failed();
        if self.records.is_empty() {
            return Err(format!(
                "setup produced no records: all {} users failed{}",
                self.users,
                self.first_errors()
            ));
        }
        // As a fraction of users, not a product: 0.29 * 100 is 28.999...
        if failed as f64 / self.users as f64 > self.tolerated {
            return Err(format!(
                "setup failed for {failed} of {} users (setup.toleratedFailureRatio: {}){}",
                self.users,
                percent(self.tolerated),
                self.first_errors()
            ));
        }
        Ok(())
    }

    fn first_errors(&self) -> String {
        let mut out = String::new();
        for (seq, f) in self.failures.iter().take(FIRST_ERRORS) {
            out.push_str(&format!("; user {seq}: {}", describe(f)));
        }
        if self.failures.len() > FIRST_ERRORS {
            out.push_str(&format!(
                "; and {} more failed",
                self.failures.len() - FIRST_ERRORS
            ));
        }
        if self.unfinished > 0 {
            let within = self
                .timeout
                .map(|t| {
                    format!(
                        " within the setup timeout {}",
                        crate::duration::format_duration(t)
                    )
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "; {} users did not finish{within}",
                self.unfinished
            ));
        }
        out
    }

    /// The records as JSON lines, checked against what a Secret can hold.
    pub fn to_jsonl(&self) -> std::result::Result<String, String> {
        let mut out = String::new();
        for r in &self.records {
            out.push_str(&serde_json::to_string(r).expect("strings serialize"));
            out.push('\n');
        }
        check_size(out.len(), self.records.len())?;
        Ok(out)
    }
}

/// An error for records too large for one Secret.
pub fn check_size(bytes: usize, records: usize) -> std::result::Result<(), String> {
    if bytes > MAX_RECORDS_BYTES {
        return Err(format!(
            "the {records} records take {bytes} bytes; a Kubernetes Secret holds at most \
             {MAX_RECORDS_BYTES} bytes (1 MiB): provision fewer users, or keep fewer \
             fields with setup.record"
        ));
    }
    Ok(())
}

fn describe(f: &Failure) -> String {
    let what = match (f.error, f.status) {
        (ErrorKind::Status, Some(s)) if f.expected.is_empty() => {
            format!("status {s} (expected 2xx or 3xx)")
        }
        (ErrorKind::Status, Some(s)) => format!(
            "status {s} (expected {})",
            f.expected
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        (ErrorKind::Capture, Some(s)) => format!("status {s}, but a capture found nothing"),
        (ErrorKind::Check, Some(s)) => format!(
            "status {s}, but the body check {} failed",
            f.check.as_deref().unwrap_or("(unnamed)")
        ),
        (ErrorKind::Timeout, _) => "timed out".into(),
        (ErrorKind::Connect, _) => "could not connect".into(),
        (ErrorKind::Dns, _) => "the target's host name did not resolve".into(),
        (ErrorKind::Http, _) => "broken connection or invalid HTTP".into(),
        (k, _) => k.as_str().into(),
    };
    let step = f.step.strip_prefix("setup/").unwrap_or(&f.step);
    format!("step {step:?}: {what}")
}

/// A ratio as a percentage for people: 0.29 is "29%", not 28.999999999999996.
fn percent(x: f64) -> String {
    let p = format!("{:.2}", x * 100.0);
    format!("{}%", p.trim_end_matches('0').trim_end_matches('.'))
}

/// Reads a setup from a file: a bare `{target, setup}`, or a LoadTest
/// manifest's `spec.target` and `spec.setup`. Returns the setup and the
/// prefix its errors carry (`spec.` for a manifest).
pub fn load_file(path: &Path) -> Result<(SetupPlan, &'static str)> {
    let text =
        crate::planfile::read_plan(path).map_err(|e| crate::planfile::in_file(Some(path), e))?;
    from_str(&text).map_err(|e| crate::planfile::in_file(Some(path), e))
}

/// Cluster-only keys of a LoadTest's `spec.setup`.
const CUSTOM_SETUP: &[&str] = &["image", "command", "args", "env", "backoffLimit"];

pub fn from_str(text: &str) -> Result<(SetupPlan, &'static str)> {
    use serde_yaml_ng::Value as Y;
    let doc: Y = crate::planfile::parse_document(text)?;
    let manifest = doc.get("kind").is_some() || doc.get("apiVersion").is_some();
    let (body, prefix) = if manifest {
        (
            doc.get("spec")
                .cloned()
                .ok_or_else(|| Error::invalid("spec", "is missing"))?,
            "spec.",
        )
    } else {
        (doc, "")
    };
    let target = body
        .get("target")
        .cloned()
        .ok_or_else(|| Error::invalid(format!("{prefix}target"), "is missing"))?;
    let mut setup = body.get("setup").cloned().ok_or_else(|| {
        Error::invalid(format!("{prefix}setup"), "is missing: nothing to provision")
    })?;
    if let Y::Mapping(m) = &mut setup {
        if m.contains_key("image") {
            return Err(Error::invalid(
                format!("{prefix}setup.image"),
                "a custom setup image runs only in a cluster; run it yourself and give its records as data.file",
            ));
        }
        for k in CUSTOM_SETUP {
            m.remove(*k);
        }
    }
    let mut map = serde_yaml_ng::Mapping::new();
    map.insert("target".into(), target);
    map.insert("setup".into(), setup);
    let sp: SetupPlan = serde_path_to_error::deserialize(Y::Mapping(map))
        .map_err(|e| Error::invalid(format!("{prefix}{}", e.path()), e.into_inner().to_string()))?;
    Ok((sp, prefix))
}

/// Where `barrage-runner setup` writes records unless told otherwise.
pub fn default_out() -> PathBuf {
    PathBuf::from("records.jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_does_not_resolve_is_said_so() {
        let f = Failure {
            step: "setup/token".into(),
            error: ErrorKind::Dns,
            status: None,
            expected: vec![],
            check: None,
        };
        assert_eq!(
            describe(&f),
            "step \"token\": the target's host name did not resolve"
        );
    }

    #[test]
    fn percentages_read_as_people_write_them() {
        assert_eq!(percent(0.29), "29%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.005), "0.5%");
        assert_eq!(percent(0.1234), "12.34%");
    }
}
