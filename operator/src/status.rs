//! Pure functions from merged results and decisions to the LoadTest's
//! status. The status stays small whatever the number of runners (the merged
//! report goes to a ConfigMap): a fixed set of figures, a bounded list of
//! request names, scenarios and journeys (`listed`), one entry per threshold.

use std::collections::BTreeMap;

use barrage_runner::{
    plan::{CaMode, Target},
    report::{Latencies, SetupMs, Summary},
    snapshot::Snapshot,
    thresholds::Outcome,
};
use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

use crate::crd::{
    ConnectionsStatus, JourneyStatus, LoadTestStatus, OmittedStatus, Phase, RequestStatus,
    SetupStatus, UsersStatus,
};

mod listed;

pub use listed::{MAX_NAMES, MAX_SUBJECTS, Subjects, listed};

pub const COND_VALIDATED: &str = "Validated";
pub const COND_PROVISIONED: &str = "Provisioned";
pub const COND_RUNNERS_READY: &str = "RunnersReady";
pub const COND_STARTED: &str = "Started";
/// True once the test has ended, whatever the verdict: what
/// `kubectl wait --for=condition=Complete` waits for.
pub const COND_COMPLETE: &str = "Complete";
/// The verdict, once there is one.
pub const COND_PASSED: &str = "Passed";
pub const COND_SPEC_CHANGED: &str = "SpecChangeIgnored";
/// Whether `spec.teardown` succeeded, once it ran.
pub const COND_TEARDOWN: &str = "TornDown";
/// For an https target: whether the runners verify its certificate (False
/// only with `target.tls.insecureSkipVerify`).
pub const COND_TARGET_VERIFIED: &str = "TargetVerified";
/// What the status and the Warning event say of `insecureSkipVerify`.
pub const INSECURE_TARGET: &str =
    "target.tls.insecureSkipVerify: the target's certificate is not verified";

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

fn rounded(l: &Latencies) -> Latencies {
    let r = |x: f64| round(x, 3);
    Latencies {
        min: r(l.min),
        mean: r(l.mean),
        p50: r(l.p50),
        p90: r(l.p90),
        p95: r(l.p95),
        p99: r(l.p99),
        p999: r(l.p999),
        max: r(l.max),
    }
}

/// Writes the figures of `merged` (all runners' results so far) into `st`;
/// what `subjects` names (the thresholds' scopes) is listed whatever its size.
pub fn apply_results(st: &mut LoadTestStatus, merged: &Snapshot, subjects: &Subjects) {
    let s = Summary::of(merged);
    let t = &s.total;
    st.requests = t.requests;
    st.errors = t.errors;
    st.dropped = s.dropped;
    st.retries = t.retries;
    st.rps = round(t.rps, 1);
    st.error_rate = Some(format!("{:.2}%", t.error_rate * 100.0));
    st.latency_ms = (t.requests > 0).then(|| rounded(&t.latency_ms));
    st.start_skew_ms = s.start_skew_ms.map(|x| round(x, 3));
    st.runners_finished = merged.finished;
    st.error_kinds = error_kinds(merged);
    let setup = |m: &SetupMs| SetupStatus {
        p50: round(m.p50, 3),
        p95: round(m.p95, 3),
        p99: round(m.p99, 3),
        max: round(m.max, 3),
    };
    st.connections = s.connections.as_ref().map(|c| ConnectionsStatus {
        opened: c.opened,
        connect_ms: (c.opened > 0).then(|| setup(&c.connect_ms)),
        tls_handshake_ms: c.tls_handshake_ms.as_ref().map(setup),
    });
    st.users = (!s.users.is_empty()).then_some(UsersStatus {
        started: s.users.started,
        on_start_failures: s.users.on_start_failures,
        retired: s.users.retired,
    });
    // Retired users first: the one warning about this run's own users
    // must not be cut by the bound behind the runners' others.
    let retired =
        (s.users.retired > 0).then(|| barrage_runner::report::retired_warning(s.users.retired));
    st.warnings = retired
        .iter()
        .chain(s.warnings.iter().filter(|w| Some(*w) != retired.as_ref()))
        .take(MAX_WARNINGS)
        .map(|w| bounded(w, MAX_WARNING))
        .collect();
    if let Some(r) = st.records.as_mut()
        && merged.records_used.is_some()
    {
        r.distinct_used = Some(s.distinct_records);
    }
    let request = |r: &barrage_runner::report::RequestSummary| RequestStatus {
        requests: r.requests,
        errors: r.errors,
        rps: round(r.rps, 1),
        p50_ms: round(r.latency_ms.p50, 3),
        p95_ms: round(r.latency_ms.p95, 3),
        p99_ms: round(r.latency_ms.p99, 3),
        max_ms: round(r.latency_ms.max, 3),
    };
    let (requests, requests_out) = listed(&s.requests, |r| r.requests, &subjects.requests);
    st.by_request = requests
        .into_iter()
        .map(|(n, r)| (n.clone(), request(r)))
        .collect();
    let (scenarios, scenarios_out) = listed(&s.scenarios, |r| r.requests, &subjects.scenarios);
    st.by_scenario = scenarios
        .into_iter()
        .map(|(n, r)| (n.clone(), request(r)))
        .collect();
    let (journeys, journeys_out) = listed(&s.journeys, |j| j.passes, &subjects.journeys);
    st.by_journey = journeys
        .into_iter()
        .map(|(n, j)| {
            let l = &j.duration_ms;
            let status = JourneyStatus {
                passes: j.passes,
                failed: j.failed,
                p50_ms: round(l.p50, 3),
                p95_ms: round(l.p95, 3),
                p99_ms: round(l.p99, 3),
                max_ms: round(l.max, 3),
            };
            (n.clone(), status)
        })
        .collect();
    st.omitted = (requests_out + scenarios_out + journeys_out > 0).then_some(OmittedStatus {
        requests: requests_out,
        scenarios: scenarios_out,
        journeys: journeys_out,
    });
}

/// Errors of every request name, by kind (a handful of kinds at most).
fn error_kinds(merged: &Snapshot) -> BTreeMap<String, u64> {
    let mut kinds = BTreeMap::new();
    for r in merged.requests.values() {
        for (k, n) in &r.errors {
            *kinds.entry(k.as_str().to_string()).or_default() += n;
        }
    }
    kinds
}

/// "tls_refused 20, connect 3": the kinds, most frequent first, for a
/// failed test's message.
fn kinds_text(kinds: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<_> = kinds.iter().filter(|(_, n)| **n > 0).collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn runners_text(ready: u32, total: u32) -> String {
    format!("{ready}/{total}")
}

/// The phase a finished test ends in.
pub fn final_phase(outcomes: &[Outcome], aborted: bool, failure: bool) -> Phase {
    if aborted {
        Phase::Aborted
    } else if failure || outcomes.iter().any(|o| !o.passed) {
        Phase::Failed
    } else {
        Phase::Succeeded
    }
}

/// Writes the merged results and the thresholds' outcomes into the status
/// and returns the phase the test ends in with its message. A default
/// threshold (the plan named none) is marked "(default)" in the message, as
/// it is in `status.thresholds`.
pub fn judged(
    st: &mut LoadTestStatus,
    merged: &Snapshot,
    outcomes: Vec<Outcome>,
    abort: Option<&str>,
    failure: Option<&str>,
) -> (Phase, String) {
    let subjects = Subjects::of_sources(outcomes.iter().map(|o| o.source.as_str()));
    apply_results(st, merged, &subjects);
    let phase = final_phase(&outcomes, abort.is_some(), failure.is_some());
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| {
            let default = if o.default { " (default)" } else { "" };
            format!("{}{default} (observed {})", o.source, o.observed_text)
        })
        .collect();
    let msg = match (abort, failure) {
        (Some(a), _) => format!("aborted: {a}"),
        (None, Some(f)) => format!("failed: {f}"),
        _ if failed.is_empty() => format!("{} requests, all thresholds passed", st.requests),
        _ => format!("thresholds failed: {}", failed.join("; ")),
    };
    // Whatever made it fail, say what the errors were (a TLS refusal, say).
    let msg = match phase {
        Phase::Succeeded => msg,
        _ if st.error_kinds.is_empty() => msg,
        _ => format!("{msg}; errors: {}", kinds_text(&st.error_kinds)),
    };
    st.thresholds = outcomes;
    (phase, msg)
}

/// Sets a condition, keeping its transition time when its status is unchanged.
pub fn set_condition(
    conds: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let message = bounded(message, MAX_MESSAGE);
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.last_transition_time = Time(now);
        }
        c.status = status;
        c.reason = reason.into();
        c.message = message;
        c.observed_generation = generation;
    } else {
        conds.push(Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        });
    }
}

pub fn condition<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// Sets `TargetVerified` for an https target (none for http): True with
/// what the runners trust, or False when they verify nothing. Returns the
/// warning to publish in that case.
pub fn target_verification(
    st: &mut LoadTestStatus,
    target: &Target,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<&'static str> {
    let https = target
        .base_url
        .split_once("://")
        .is_some_and(|(s, _)| s.eq_ignore_ascii_case("https"));
    if !https {
        return None;
    }
    let tls = target.tls.clone().unwrap_or_default();
    if tls.insecure_skip_verify {
        set_condition(
            &mut st.conditions,
            COND_TARGET_VERIFIED,
            false,
            "InsecureSkipVerify",
            INSECURE_TARGET,
            generation,
            now,
        );
        return Some(INSECURE_TARGET);
    }
    let roots = match (&tls.ca_from, tls.ca_mode) {
        (None, _) => "the bundled web PKI roots".to_string(),
        (Some(_), CaMode::Add) => {
            "the bundled web PKI roots and the CA of spec.target.tls.caFrom".to_string()
        }
        (Some(_), CaMode::Replace) => "the CA of spec.target.tls.caFrom only".to_string(),
    };
    set_condition(
        &mut st.conditions,
        COND_TARGET_VERIFIED,
        true,
        "Verified",
        &format!("the runners verify the target's certificate against {roots}"),
        generation,
        now,
    );
    None
}

/// Marks the test finished: phase, verdict and the Complete/Passed conditions.
/// Failed because of `cond` (set False with `reason`): the one way a test
/// fails before or while it runs, from a bad spec to a failed setup.
pub fn failed(
    st: &mut LoadTestStatus,
    cond: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    set_condition(
        &mut st.conditions,
        cond,
        false,
        reason,
        message,
        generation,
        now,
    );
    finish(st, Phase::Failed, message.to_string(), generation, now);
}

/// Failed because the spec of `generation` is invalid (`msg` says where):
/// Validated False with reason InvalidSpec.
pub fn invalid_spec(st: &mut LoadTestStatus, msg: &str, generation: Option<i64>, now: Timestamp) {
    st.observed_generation = generation;
    failed(st, COND_VALIDATED, "InvalidSpec", msg, generation, now);
}

pub fn finish(
    st: &mut LoadTestStatus,
    phase: Phase,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    finish_as(st, phase, &format!("{phase:?}"), message, generation, now);
}

/// The condition reason of a test that a runner's engine failed.
pub const REASON_ENGINE_FAILED: &str = "RunnerEngineFailed";

/// Why runners' engines failed (a task panicked), if any did: the test then
/// fails whatever it measured.
///
/// The texts come from runners, so they are bounded here: a broken or hostile
/// runner image must not make the status too large for the API server (then
/// no status write would ever succeed and the test would never end).
pub fn engine_failure(merged: &Snapshot) -> Option<String> {
    const SHOWN: usize = 5;
    const EACH: usize = 256;
    if merged.failures.is_empty() {
        return None;
    }
    let mut shown: Vec<String> = merged
        .failures
        .iter()
        .take(SHOWN)
        .map(|f| bounded(f, EACH))
        .collect();
    if merged.failures.len() > SHOWN {
        shown.push(format!("and {} more", merged.failures.len() - SHOWN));
    }
    Some(format!("runner engine failed: {}", shown.join("; ")))
}

/// The longest `status.message`, like a condition's message.
pub const MAX_MESSAGE: usize = 1024;
/// `status.warnings`: at most this many, each at most `MAX_WARNING` characters.
pub const MAX_WARNINGS: usize = 8;
pub const MAX_WARNING: usize = 256;

/// `text` cut to at most `max` characters, marked when cut.
pub fn bounded(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `finish`, with the Complete and Passed conditions' reason given.
pub fn finish_as(
    st: &mut LoadTestStatus,
    phase: Phase,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    st.phase = phase;
    st.phase_since = Some(now.to_string());
    let passed = phase == Phase::Succeeded;
    st.verdict = Some(if passed { "Passed" } else { "Failed" }.into());
    st.finished_at = Some(now.to_string());
    set_condition(
        &mut st.conditions,
        COND_COMPLETE,
        true,
        reason,
        &message,
        generation,
        now,
    );
    set_condition(
        &mut st.conditions,
        COND_PASSED,
        passed,
        reason,
        &message,
        generation,
        now,
    );
    st.message = Some(bounded(&message, MAX_MESSAGE));
}

/// The load's verdict, before the teardown: the `Passed` condition and
/// `verdict` say it, the phase is TearingDown. The final phase and the
/// `Complete` condition come after the teardown (`finish_after_teardown`).
pub fn judged_before_teardown(
    st: &mut LoadTestStatus,
    phase: Phase,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let passed = phase == Phase::Succeeded;
    st.verdict = Some(if passed { "Passed" } else { "Failed" }.into());
    set_condition(
        &mut st.conditions,
        COND_PASSED,
        passed,
        reason,
        message,
        generation,
        now,
    );
    st.phase = Phase::TearingDown;
    st.phase_since = Some(now.to_string());
    st.message = Some(bounded(&format!("tearing down; {message}"), MAX_MESSAGE));
}

/// The condition reason of a test that only its teardown failed.
pub const REASON_TEARDOWN_FAILED: &str = "TeardownFailed";

/// The final phase after the teardown: the load's verdict (from the
/// `Passed` condition `judged_before_teardown` set), failed too when the
/// teardown failed and `fails` (its `failsTest`). Returns the phase and
/// the message.
pub fn finish_after_teardown(
    st: &mut LoadTestStatus,
    fails: bool,
    teardown: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> (Phase, String) {
    let load = condition(&st.conditions, COND_PASSED).cloned();
    let passed = load.as_ref().is_some_and(|c| c.status == "True");
    let reason = load.as_ref().map_or("Failed", |c| c.reason.as_str());
    let load_msg = load.as_ref().map_or("", |c| c.message.as_str());
    let (phase, reason) = match (passed, fails) {
        (true, false) => (Phase::Succeeded, reason),
        (true, true) => (Phase::Failed, REASON_TEARDOWN_FAILED),
        (false, _) if reason == "Aborted" => (Phase::Aborted, reason),
        (false, _) => (Phase::Failed, reason),
    };
    let message = if fails {
        format!("{load_msg}; {teardown} (teardown.failsTest)")
    } else {
        load_msg.to_string()
    };
    let reason = reason.to_string();
    finish_as(st, phase, &reason, message.clone(), generation, now);
    (phase, message)
}

#[cfg(test)]
mod tests;
