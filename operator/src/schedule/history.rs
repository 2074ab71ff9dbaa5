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
mod tests {
    use barrage_runner::report::Latencies;

    use super::*;
    use crate::{
        crd::Phase,
        schedule::policy::{Action, SkipReason},
        status::condition,
    };

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn minute(m: i64) -> Timestamp {
        ts("2026-01-05T10:00:00Z") + jiff::SignedDuration::from_mins(m)
    }

    fn run(m: i64, phase: Phase, p95: f64, verdict: &str) -> Run {
        let done = phase.is_terminal();
        Run {
            name: format!("n-{m}"),
            uid: Some(format!("uid-{m}")),
            scheduled: minute(m),
            status: LoadTestStatus {
                phase,
                requests: 1000,
                rps: 20.0 + m as f64,
                error_rate: Some("0.00%".into()),
                latency_ms: Some(Latencies {
                    p95,
                    ..Default::default()
                }),
                verdict: done.then(|| verdict.to_string()),
                finished_at: done
                    .then(|| (minute(m) + jiff::SignedDuration::from_secs(75)).to_string()),
                ..Default::default()
            },
            deleting: false,
        }
    }

    fn decision(action: Action) -> Decision {
        Decision {
            action,
            too_many_missed: None,
            next: Some(minute(10)),
        }
    }

    fn status(
        old: &ScheduledLoadTestStatus,
        runs: &[Run],
        action: Action,
        outcome: &Outcome,
    ) -> ScheduledLoadTestStatus {
        next_status(
            old,
            runs,
            &decision(action),
            outcome,
            false,
            Some(1),
            minute(9),
        )
    }

    #[test]
    fn a_created_run_is_active_and_in_the_history_at_once() {
        let created = Run {
            name: "n-3".into(),
            uid: Some("u".into()),
            scheduled: minute(3),
            ..Default::default()
        };
        let outcome = Outcome {
            created: Some(created),
            ..Default::default()
        };
        let st = status(
            &Default::default(),
            &[],
            Action::Start {
                at: minute(3),
                replace: false,
            },
            &outcome,
        );
        assert_eq!(st.last_schedule_time, Some(time(minute(3))));
        assert_eq!(st.active_count, 1);
        assert_eq!(st.active[0].name, "n-3");
        assert_eq!(st.history.len(), 1);
        assert_eq!(st.history[0].phase, "Pending");
        assert_eq!(st.history[0].p95_ms, None);
        assert_eq!(st.next_schedule_time, Some(time(minute(10))));
        assert_eq!(st.observed_generation, Some(1));
        let ready = condition(&st.conditions, COND_READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.observed_generation),
            ("True", Some(1))
        );
        assert!(
            ready.message.contains("2026-01-05T10:10:00Z"),
            "{}",
            ready.message
        );
        assert_eq!(
            condition(&st.conditions, COND_SUSPENDED).unwrap().status,
            "False"
        );
        assert!(condition(&st.conditions, COND_LAST_RUN_PASSED).is_none());
    }

    #[test]
    fn finished_runs_carry_their_results_and_the_trend() {
        let runs = [
            run(1, Phase::Succeeded, 41.25, "Passed"),
            run(2, Phase::Failed, 88.0, "Failed"),
            run(3, Phase::Succeeded, 39.5, "Passed"),
            run(4, Phase::Running, 10.0, ""),
        ];
        let st = status(
            &Default::default(),
            &runs,
            Action::None,
            &Outcome::default(),
        );
        let names: Vec<&str> = st.history.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["n-4", "n-3", "n-2", "n-1"], "newest first");
        let r3 = &st.history[1];
        assert_eq!(
            (r3.phase.as_str(), r3.verdict.as_deref(), r3.rps, r3.p95_ms),
            ("Succeeded", Some("Passed"), Some(23.0), Some(39.5))
        );
        assert_eq!(r3.error_rate.as_deref(), Some("0.00%"));
        assert_eq!(r3.finished_at, runs[2].status.finished_at);
        // A running test's figures change every few seconds: not recorded.
        assert_eq!((st.history[0].rps, st.history[0].p95_ms), (None, None));
        assert_eq!(st.active_count, 1);
        assert_eq!(st.last_verdict.as_deref(), Some("Passed"));
        assert_eq!(st.recent_p95.as_deref(), Some("39.5 88.0! 41.2"));
        assert_eq!(st.recent_rps.as_deref(), Some("23.0 22.0! 21.0"));
        assert_eq!(
            st.last_successful_time,
            Some(time(minute(3) + jiff::SignedDuration::from_secs(75)))
        );
        let c = condition(&st.conditions, COND_LAST_RUN_PASSED).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Passed"));
        assert!(c.message.contains("n-3"), "{}", c.message);
        // The latest finished run failing turns it False.
        let runs = [
            run(1, Phase::Succeeded, 41.0, "Passed"),
            run(5, Phase::Aborted, 99.0, "Failed"),
        ];
        let st = status(&st, &runs, Action::None, &Outcome::default());
        let c = condition(&st.conditions, COND_LAST_RUN_PASSED).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "Failed"));
        assert_eq!(st.last_verdict.as_deref(), Some("Failed"));
    }

    #[test]
    fn the_history_survives_the_deletion_of_its_loadtests() {
        let runs = [
            run(1, Phase::Succeeded, 41.0, "Passed"),
            run(2, Phase::Running, 0.0, ""),
        ];
        let st = status(
            &Default::default(),
            &runs,
            Action::None,
            &Outcome::default(),
        );
        // n-1 deleted by the history limit, n-2 deleted by someone while running.
        let later = status(
            &st,
            &[run(3, Phase::Succeeded, 40.0, "Passed")],
            Action::None,
            &Outcome::default(),
        );
        let by_name = |n: &str| later.history.iter().find(|r| r.name == n).unwrap().clone();
        assert_eq!(
            by_name("n-1"),
            st.history.iter().find(|r| r.name == "n-1").unwrap().clone()
        );
        assert_eq!(by_name("n-1").p95_ms, Some(41.0));
        assert_eq!(by_name("n-2").phase, "Deleted");
        assert_eq!(later.recent_p95.as_deref(), Some("40.0 41.0"));
        assert_eq!(later.active_count, 0);
        // Replaced runs say so.
        let st = status(
            &Default::default(),
            &[run(5, Phase::Running, 0.0, "")],
            Action::None,
            &Outcome::default(),
        );
        let outcome = Outcome {
            replaced: vec!["n-5".into()],
            ..Default::default()
        };
        let st = status(
            &st,
            &[run(5, Phase::Running, 0.0, "")],
            Action::Start {
                at: minute(6),
                replace: true,
            },
            &outcome,
        );
        assert_eq!(st.history[0].phase, "Replaced");
        assert_eq!(st.active_count, 0);
        let st = status(&st, &[], Action::None, &Outcome::default());
        assert_eq!(st.history[0].phase, "Replaced");
    }

    #[test]
    fn the_history_keeps_the_newest_ten() {
        let runs: Vec<Run> = (0..14)
            .map(|m| run(m, Phase::Succeeded, 40.0, "Passed"))
            .collect();
        let st = status(
            &Default::default(),
            &runs,
            Action::None,
            &Outcome::default(),
        );
        assert_eq!(st.history.len(), MAX_HISTORY);
        assert_eq!(st.history[0].name, "n-13");
        assert_eq!(st.history[9].name, "n-4");
        assert_eq!(st.recent_p95.as_deref(), Some("40.0 40.0 40.0 40.0 40.0"));
    }

    #[test]
    fn skips_are_counted_and_recorded() {
        let skip = Action::Skip {
            at: minute(2),
            reason: SkipReason::Forbid,
        };
        let st = status(&Default::default(), &[], skip, &Outcome::default());
        assert_eq!(st.last_skipped_time, Some(time(minute(2))));
        assert_eq!(st.last_skipped_reason.as_deref(), Some("ConcurrencyForbid"));
        assert_eq!(st.skipped_runs, 1);
        assert_eq!(st.last_schedule_time, None);
        let st = status(
            &st,
            &[],
            Action::Skip {
                at: minute(3),
                reason: SkipReason::Deadline,
            },
            &Outcome::default(),
        );
        assert_eq!(st.skipped_runs, 2);
        assert_eq!(
            st.last_skipped_reason.as_deref(),
            Some("StartingDeadlineExceeded")
        );
    }

    #[test]
    fn the_same_inputs_give_the_same_status() {
        // What makes re-applying a manifest a no-op: nothing in the status
        // depends on when it was computed, only on what was observed.
        let runs = [
            run(1, Phase::Succeeded, 41.0, "Passed"),
            run(2, Phase::Failed, 80.0, "Failed"),
        ];
        let first = status(
            &Default::default(),
            &runs,
            Action::None,
            &Outcome::default(),
        );
        let d = decision(Action::None);
        let again = next_status(
            &first,
            &runs,
            &d,
            &Outcome::default(),
            false,
            Some(1),
            minute(30),
        );
        assert_eq!(again, first);
        // A whole-second time survives the API's second precision.
        let t = time(ts("2026-01-05T10:00:00.123456Z"));
        let back: Time = serde_json::from_value(serde_json::to_value(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn suspended_and_invalid() {
        let d = Decision {
            action: Action::None,
            too_many_missed: None,
            next: None,
        };
        let st = next_status(
            &Default::default(),
            &[],
            &d,
            &Outcome::default(),
            true,
            Some(2),
            minute(0),
        );
        let c = condition(&st.conditions, COND_SUSPENDED).unwrap();
        assert_eq!(
            (c.status.as_str(), c.observed_generation),
            ("True", Some(2))
        );
        assert_eq!(
            condition(&st.conditions, COND_READY).unwrap().status,
            "True"
        );
        assert_eq!(st.next_schedule_time, None);
        let bad = invalid_status(&st, "invalid spec: spec.timeZone: nope", Some(3), minute(1));
        let c = condition(&bad.conditions, COND_READY).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert!(c.message.contains("spec.timeZone"));
        assert_eq!(bad.observed_generation, Some(3));
    }
}
