//! The ScheduledLoadTest's status from its runs, as a pure function: the
//! active runs, the history of the latest runs with their results (kept after
//! their LoadTests are deleted), the trend columns and the conditions.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    crd::LoadTestStatus,
    schedule::{
        crd::{RunRecord, RunRef, ScheduledLoadTestStatus},
        policy::{Action, Decision},
    },
    status::set_condition,
};

/// Runs the history keeps.
pub const MAX_HISTORY: usize = 10;
/// Finished runs shown in the trend columns.
pub const TREND: usize = 5;

pub const COND_READY: &str = "Ready";
pub const COND_SUSPENDED: &str = "Suspended";
pub const COND_LAST_RUN_PASSED: &str = "LastRunPassed";

/// A run (LoadTest) as listed.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub name: String,
    pub uid: Option<String>,
    pub scheduled: Timestamp,
    pub status: LoadTestStatus,
    /// Being deleted (Replace, or by someone else).
    pub deleting: bool,
}

impl Run {
    pub fn is_active(&self) -> bool {
        !self.deleting && !self.status.phase.is_terminal()
    }
}

/// What this reconcile did, for the status.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The run created now (it is not in the listing yet).
    pub created: Option<Run>,
    /// Runs deleted by Replace.
    pub replaced: Vec<String>,
}

/// Kubernetes times have whole seconds; a status with more would never
/// compare equal to what is read back.
pub fn time(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

fn record(r: &Run) -> RunRecord {
    let st = &r.status;
    let done = st.phase.is_terminal();
    // Figures only once the run has finished: a running test's figures
    // change every few seconds, and so would this status.
    RunRecord {
        name: r.name.clone(),
        scheduled_time: time(r.scheduled),
        phase: format!("{:?}", st.phase),
        verdict: done.then(|| st.verdict.clone()).flatten(),
        rps: (done && st.requests > 0).then_some(st.rps),
        p95_ms: done
            .then(|| st.latency_ms.as_ref().map(|l| l.p95))
            .flatten(),
        error_rate: done.then(|| st.error_rate.clone()).flatten(),
        finished_at: done.then(|| st.finished_at.clone()).flatten(),
    }
}

fn finished(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Aborted")
}

/// The history: the old records, updated from the runs still there, runs
/// that vanished unfinished marked Deleted (or Replaced), newest first.
pub fn merge_history(old: &[RunRecord], runs: &[Run], replaced: &[String]) -> Vec<RunRecord> {
    let mut out: Vec<RunRecord> = old
        .iter()
        .filter(|o| !runs.iter().any(|r| r.name == o.name))
        .cloned()
        .map(|mut o| {
            if replaced.contains(&o.name) {
                o.phase = "Replaced".into();
            } else if !finished(&o.phase) && o.phase != "Replaced" {
                o.phase = "Deleted".into();
            }
            o
        })
        .collect();
    for r in runs {
        let mut rec = record(r);
        if replaced.contains(&r.name) && !finished(&rec.phase) {
            rec.phase = "Replaced".into();
        }
        out.push(rec);
    }
    out.sort_by(|a, b| {
        b.scheduled_time
            .0
            .cmp(&a.scheduled_time.0)
            .then(b.name.cmp(&a.name))
    });
    out.truncate(MAX_HISTORY);
    out
}

fn trend(history: &[RunRecord], f: impl Fn(&RunRecord) -> Option<f64>) -> Option<String> {
    let parts: Vec<String> = history
        .iter()
        .filter(|r| finished(&r.phase))
        .take(TREND)
        .map(|r| {
            let v = f(r).map_or_else(|| "-".to_string(), |x| format!("{x:.1}"));
            if r.verdict.as_deref() == Some("Failed") {
                v + "!"
            } else {
                v
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The whole status after this reconcile. `runs` are the runs as listed
/// (before this reconcile's own changes); `invalid` is a spec error, which
/// leaves everything but the Ready condition as it was.
pub fn next_status(
    old: &ScheduledLoadTestStatus,
    runs: &[Run],
    decision: &Decision,
    outcome: &Outcome,
    suspend: bool,
    generation: Option<i64>,
    now: Timestamp,
) -> ScheduledLoadTestStatus {
    let mut st = old.clone();
    st.observed_generation = generation;
    let mut all: Vec<Run> = runs.to_vec();
    if let Some(c) = &outcome.created
        && !all.iter().any(|r| r.name == c.name)
    {
        all.push(c.clone());
    }
    match decision.action {
        Action::Start { at, .. } | Action::Record { at } => {
            st.last_schedule_time = Some(time(at));
        }
        Action::Skip { at, reason } => {
            st.last_skipped_time = Some(time(at));
            st.last_skipped_reason = Some(reason.as_str().into());
            st.skipped_runs += 1;
        }
        Action::None => {}
    }
    st.next_schedule_time = decision.next.map(time);
    let mut active: Vec<RunRef> = all
        .iter()
        .filter(|r| r.is_active() && !outcome.replaced.contains(&r.name))
        .map(|r| RunRef {
            name: r.name.clone(),
            uid: r.uid.clone(),
        })
        .collect();
    active.sort_by(|a, b| a.name.cmp(&b.name));
    st.active_count = active.len() as u32;
    st.active = active;
    st.history = merge_history(&old.history, &all, &outcome.replaced);
    let latest_ok = st
        .history
        .iter()
        .filter(|r| r.phase == "Succeeded")
        .filter_map(|r| r.finished_at.as_deref()?.parse::<Timestamp>().ok())
        .max();
    if let Some(t) = latest_ok
        && st.last_successful_time.as_ref().is_none_or(|o| o.0 < t)
    {
        st.last_successful_time = Some(time(t));
    }
    let last_done = st.history.iter().find(|r| finished(&r.phase));
    st.last_verdict = last_done.and_then(|r| r.verdict.clone());
    st.recent_p95 = trend(&st.history, |r| r.p95_ms);
    st.recent_rps = trend(&st.history, |r| r.rps);

    let ready_msg = match (suspend, decision.next) {
        (true, _) => "suspended: no new runs".to_string(),
        (false, Some(n)) => format!("next run at {}", time(n).0),
        (false, None) => "the schedule names no time in the next 10 years".to_string(),
    };
    let ready = suspend || decision.next.is_some();
    let reason = if ready { "Scheduled" } else { "NoFutureTime" };
    set_condition(
        &mut st.conditions,
        COND_READY,
        ready,
        reason,
        &ready_msg,
        generation,
        now,
    );
    set_condition(
        &mut st.conditions,
        COND_SUSPENDED,
        suspend,
        if suspend { "Suspended" } else { "Active" },
        if suspend {
            "spec.suspend is true"
        } else {
            "runs start on schedule"
        },
        generation,
        now,
    );
    if let Some(r) = last_done {
        let passed = r.verdict.as_deref() == Some("Passed");
        let msg = format!(
            "{} ({}): {}",
            r.name,
            r.phase,
            r.verdict.as_deref().unwrap_or("no verdict")
        );
        set_condition(
            &mut st.conditions,
            COND_LAST_RUN_PASSED,
            passed,
            if passed { "Passed" } else { "Failed" },
            &msg,
            generation,
            now,
        );
    }
    st
}

/// The status of a ScheduledLoadTest whose spec is invalid: Ready False
/// naming the field; the rest (history, runs) stays as it was.
pub fn invalid_status(
    old: &ScheduledLoadTestStatus,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> ScheduledLoadTestStatus {
    let mut st = old.clone();
    st.observed_generation = generation;
    st.next_schedule_time = None;
    set_condition(
        &mut st.conditions,
        COND_READY,
        false,
        "InvalidSpec",
        message,
        generation,
        now,
    );
    st
}

#[cfg(test)]
mod tests;
