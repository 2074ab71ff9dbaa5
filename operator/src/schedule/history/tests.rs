//! Tests of `history`: the status a reconcile computes (active runs, the
//! history with its results and trend, skips, conditions), and that the same
//! inputs give the same status.

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
