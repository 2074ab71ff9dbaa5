//! Tests of `policy`: which scheduled time is due (first run, missed times,
//! the starting deadline, too many missed), the concurrency policies, a run
//! that already exists, suspend, the capped wait, time zones, run names and
//! the history limits.

use super::*;
use crate::schedule::cron::parse;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

struct Case {
    cron: Cron,
    tz: TimeZone,
    suspend: bool,
    policy: ConcurrencyPolicy,
    deadline: Option<u64>,
}

fn case(expr: &str) -> Case {
    Case {
        cron: parse(expr).unwrap(),
        tz: TimeZone::UTC,
        suspend: false,
        policy: ConcurrencyPolicy::Allow,
        deadline: None,
    }
}

impl Case {
    fn decide(&self, obs: &Observed) -> Decision {
        decide(
            &Rules {
                cron: &self.cron,
                tz: &self.tz,
                suspend: self.suspend,
                policy: self.policy,
                deadline: self.deadline.map(Duration::from_secs),
            },
            obs,
        )
    }
}

fn obs(created: &str, last: Option<&str>, now: &str) -> Observed {
    Observed {
        now: ts(now),
        created: ts(created),
        last_schedule: last.map(ts),
        ..Default::default()
    }
}

fn start(at: &str) -> Action {
    Action::Start {
        at: ts(at),
        replace: false,
    }
}

#[test]
fn the_first_run_is_the_first_time_after_creation() {
    let c = case("* * * * *");
    let d = c.decide(&obs("2026-01-05T10:00:30Z", None, "2026-01-05T10:00:45Z"));
    assert_eq!(d.action, Action::None);
    assert_eq!(d.next, Some(ts("2026-01-05T10:01:00Z")));
    assert_eq!(
        d.requeue(ts("2026-01-05T10:00:45Z")),
        Duration::from_secs(15)
    );
    let d = c.decide(&obs("2026-01-05T10:00:30Z", None, "2026-01-05T10:01:02Z"));
    assert_eq!(d.action, start("2026-01-05T10:01:00Z"));
    assert_eq!(d.next, Some(ts("2026-01-05T10:02:00Z")));
    // Once recorded, the same time is not due again.
    let d = c.decide(&obs(
        "2026-01-05T10:00:30Z",
        Some("2026-01-05T10:01:00Z"),
        "2026-01-05T10:01:30Z",
    ));
    assert_eq!(d.action, Action::None);
}

#[test]
fn missed_times_run_only_the_latest() {
    let c = case("* * * * *");
    let d = c.decide(&obs(
        "2026-01-05T09:00:00Z",
        Some("2026-01-05T10:01:00Z"),
        "2026-01-05T10:05:10Z",
    ));
    assert_eq!(d.action, start("2026-01-05T10:05:00Z"));
    assert_eq!(d.too_many_missed, None);
}

#[test]
fn the_starting_deadline_skips_a_time_too_old_to_start() {
    let mut c = case("0 * * * *");
    let o = obs(
        "2026-01-05T08:00:00Z",
        Some("2026-01-05T09:00:00Z"),
        "2026-01-05T10:05:00Z",
    );
    // Without a deadline the 10:00 run starts five minutes late.
    assert_eq!(c.decide(&o).action, start("2026-01-05T10:00:00Z"));
    // Within the deadline too.
    c.deadline = Some(600);
    assert_eq!(c.decide(&o).action, start("2026-01-05T10:00:00Z"));
    // Past it: skipped, and recorded as such.
    c.deadline = Some(60);
    let d = c.decide(&o);
    assert_eq!(
        d.action,
        Action::Skip {
            at: ts("2026-01-05T10:00:00Z"),
            reason: SkipReason::Deadline
        }
    );
    assert_eq!(d.next, Some(ts("2026-01-05T11:00:00Z")));
    // The skip recorded, it is not considered again.
    let mut o2 = o.clone();
    o2.last_skipped = Some(ts("2026-01-05T10:00:00Z"));
    assert_eq!(c.decide(&o2).action, Action::None);
    // A time within the deadline wins over older missed ones.
    let mut c = case("*/5 * * * *");
    c.deadline = Some(120);
    let d = c.decide(&obs(
        "2026-01-05T08:00:00Z",
        Some("2026-01-05T09:00:00Z"),
        "2026-01-05T10:06:00Z",
    ));
    assert_eq!(d.action, start("2026-01-05T10:05:00Z"));
}

#[test]
fn too_many_missed_times_warn_and_run_the_latest() {
    let c = case("* * * * *");
    let d = c.decide(&obs(
        "2026-01-01T00:00:00Z",
        Some("2026-01-05T08:00:00Z"),
        "2026-01-05T10:00:30Z",
    ));
    assert_eq!(d.action, start("2026-01-05T10:00:00Z"));
    assert!(d.too_many_missed.is_some_and(|n| n > MAX_MISSED));
    // Exactly 100 missed is not too many.
    let d = c.decide(&obs(
        "2026-01-01T00:00:00Z",
        Some("2026-01-05T08:20:00Z"),
        "2026-01-05T10:00:30Z",
    ));
    assert_eq!(d.too_many_missed, None);
    assert_eq!(d.action, start("2026-01-05T10:00:00Z"));
    // A starting deadline bounds what counts as missed (as in CronJob).
    let mut c = case("* * * * *");
    c.deadline = Some(300);
    let d = c.decide(&obs(
        "2026-01-01T00:00:00Z",
        Some("2026-01-05T08:00:00Z"),
        "2026-01-05T10:00:30Z",
    ));
    assert_eq!(d.too_many_missed, None);
    assert_eq!(d.action, start("2026-01-05T10:00:00Z"));
    // Sparse schedules far back: found through the windows.
    let c = case("0 3 * * *");
    let d = c.decide(&obs(
        "2025-01-01T00:00:00Z",
        Some("2025-01-01T03:00:00Z"),
        "2026-01-05T10:00:00Z",
    ));
    assert_eq!(d.action, start("2026-01-05T03:00:00Z"));
    assert!(d.too_many_missed.is_some());
}

#[test]
fn each_concurrency_policy_with_a_run_active() {
    let due = |policy, active| {
        let mut c = case("* * * * *");
        c.policy = policy;
        let mut o = obs(
            "2026-01-05T10:00:00Z",
            Some("2026-01-05T10:01:00Z"),
            "2026-01-05T10:02:01Z",
        );
        o.active = active;
        c.decide(&o).action
    };
    let at = ts("2026-01-05T10:02:00Z");
    for p in [
        ConcurrencyPolicy::Allow,
        ConcurrencyPolicy::Forbid,
        ConcurrencyPolicy::Replace,
    ] {
        assert_eq!(due(p, 0), Action::Start { at, replace: false }, "{p:?}");
    }
    assert_eq!(
        due(ConcurrencyPolicy::Allow, 2),
        Action::Start { at, replace: false }
    );
    assert_eq!(
        due(ConcurrencyPolicy::Replace, 1),
        Action::Start { at, replace: true }
    );
    assert_eq!(
        due(ConcurrencyPolicy::Forbid, 1),
        Action::Skip {
            at,
            reason: SkipReason::Forbid
        }
    );
}

#[test]
fn a_run_that_exists_is_recorded_not_skipped_or_created_again() {
    let mut c = case("* * * * *");
    c.policy = ConcurrencyPolicy::Forbid;
    let mut o = obs(
        "2026-01-05T10:00:00Z",
        Some("2026-01-05T10:01:00Z"),
        "2026-01-05T10:02:03Z",
    );
    // The run for 10:02 was created, but the status write was lost.
    o.active = 1;
    o.existing = vec![ts("2026-01-05T10:02:00Z")];
    assert_eq!(
        c.decide(&o).action,
        Action::Record {
            at: ts("2026-01-05T10:02:00Z")
        }
    );
}

#[test]
fn suspend_starts_nothing_and_resuming_runs_the_latest_missed() {
    let mut c = case("* * * * *");
    c.suspend = true;
    let o = obs(
        "2026-01-05T10:00:00Z",
        Some("2026-01-05T10:01:00Z"),
        "2026-01-05T10:05:03Z",
    );
    let d = c.decide(&o);
    assert_eq!(d.action, Action::None);
    assert_eq!(d.next, None);
    assert_eq!(d.requeue(o.now), MAX_WAIT);
    c.suspend = false;
    assert_eq!(c.decide(&o).action, start("2026-01-05T10:05:00Z"));
    c.deadline = Some(2);
    assert!(matches!(
        c.decide(&o).action,
        Action::Skip {
            reason: SkipReason::Deadline,
            ..
        }
    ));
}

#[test]
fn waits_are_capped_so_clock_jumps_are_noticed() {
    let c = case("0 0 1 1 *");
    let now = ts("2026-01-05T10:00:00Z");
    let d = c.decide(&obs("2026-01-05T09:00:00Z", None, "2026-01-05T10:00:00Z"));
    assert_eq!(d.next, Some(ts("2027-01-01T00:00:00Z")));
    assert_eq!(d.requeue(now), MAX_WAIT);
}

#[test]
fn scheduling_in_a_time_zone() {
    let mut c = case("30 2 * * *");
    c.tz = crate::schedule::cron::time_zone("Europe/Berlin").unwrap();
    // The spring-forward day: 02:30 does not exist, the run is at 03:00 CEST.
    let d = c.decide(&obs(
        "2026-03-28T00:00:00Z",
        Some("2026-03-28T01:30:00Z"),
        "2026-03-29T01:00:05Z",
    ));
    assert_eq!(d.action, start("2026-03-29T01:00:00Z"));
}

#[test]
fn run_names_are_deterministic_and_fit() {
    let at = ts("2026-01-01T00:00:00Z");
    assert_eq!(run_name("nightly", at), "nightly-29453760");
    assert_eq!(
        run_name("nightly", ts("2026-01-01T00:00:59Z")),
        "nightly-29453760"
    );
    assert_eq!(
        run_name("nightly", ts("2026-01-01T00:01:00Z")),
        "nightly-29453761"
    );
    assert_eq!(scheduled_of(&run_name("nightly", at)), Some(at));
    let a = "a".repeat(40) + "-checkout-soak-europe";
    let b = "a".repeat(40) + "-checkout-soak-america";
    let (ra, rb) = (run_name(&a, at), run_name(&b, at));
    assert!(
        ra.len() <= MAX_RUN_NAME && rb.len() <= MAX_RUN_NAME,
        "{ra} {rb}"
    );
    assert_ne!(ra, rb);
    assert_eq!(ra, run_name(&a, at));
    assert!(ra.ends_with("-29453760"), "{ra}");
    assert_eq!(scheduled_of(&ra), Some(at));
    // A cut that ends on a dash or dot drops it before the hash.
    for sep in ["-", "."] {
        let c = format!("{}{sep}{}", "b".repeat(33), "c".repeat(30));
        let rc = run_name(&c, at);
        assert!(rc.starts_with(&format!("{}-", "b".repeat(33))), "{rc}");
        assert_eq!(rc.len(), 33 + 1 + 8 + 1 + 8, "{rc}");
    }
    let longest = "z".repeat(63);
    assert!(run_name(&longest, at).len() <= MAX_RUN_NAME);
    // Exactly at the limit: kept whole.
    let fits = "f".repeat(MAX_RUN_NAME - 9);
    assert_eq!(run_name(&fits, at), format!("{fits}-29453760"));
}

#[test]
fn history_limits_keep_the_newest_of_each_kind() {
    let run = |name: &str, min: i64, phase| Finished {
        name: name.into(),
        scheduled: Timestamp::from_second(min * 60).unwrap(),
        phase,
    };
    let runs = [
        run("s1", 1, Phase::Succeeded),
        run("f2", 2, Phase::Failed),
        run("s3", 3, Phase::Succeeded),
        run("a4", 4, Phase::Aborted),
        run("s5", 5, Phase::Succeeded),
        run("r6", 6, Phase::Running),
        run("s7", 7, Phase::Succeeded),
    ];
    let mut out = prune(&runs, 3, 1);
    out.sort();
    assert_eq!(out, ["f2", "s1"]);
    let mut out = prune(&runs, 1, 0);
    out.sort();
    assert_eq!(out, ["a4", "f2", "s1", "s3", "s5"]);
    assert!(prune(&runs, 10, 10).is_empty());
}
