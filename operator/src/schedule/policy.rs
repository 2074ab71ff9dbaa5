//! The scheduling decisions, as pure functions of the spec, what was
//! recorded and the clock (CronJob's semantics, see docs/scheduled.md):
//! which scheduled time is due, whether it starts, replaces or is skipped,
//! the runs' names, and which finished runs the history limits delete.

use std::time::Duration;

use jiff::{Timestamp, tz::TimeZone};

use super::cron::Cron;
use crate::crd::Phase;
use crate::schedule::crd::ConcurrencyPolicy;

/// More missed times than this since the last one gives a warning (and only
/// the latest runs), as CronJob does.
pub const MAX_MISSED: usize = 100;

/// The longest wait between reconciles: a clock that jumps (a suspended VM,
/// NTP) is noticed within this.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// What the controller knows when it decides.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub now: Timestamp,
    /// The ScheduledLoadTest's creation time: no run before it.
    pub created: Timestamp,
    /// The latest scheduled time that got a run, and the latest skipped one.
    pub last_schedule: Option<Timestamp>,
    pub last_skipped: Option<Timestamp>,
    /// Runs that have not finished.
    pub active: usize,
    /// Scheduled times that already have a run (from the runs' names), so a
    /// lost status write never leads to a skip or a second run.
    pub existing: Vec<Timestamp>,
}

#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    pub cron: &'a Cron,
    pub tz: &'a TimeZone,
    pub suspend: bool,
    pub policy: ConcurrencyPolicy,
    pub deadline: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Forbid, and a run is active.
    Forbid,
    /// Too late: past startingDeadlineSeconds.
    Deadline,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Forbid => "ConcurrencyForbid",
            SkipReason::Deadline => "StartingDeadlineExceeded",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing is due.
    None,
    /// Create the run for `at` (Replace: after deleting the active runs).
    Start {
        at: Timestamp,
        replace: bool,
    },
    /// The run for `at` already exists: only record it.
    Record {
        at: Timestamp,
    },
    Skip {
        at: Timestamp,
        reason: SkipReason,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// How many scheduled times were missed, when more than `MAX_MISSED`.
    pub too_many_missed: Option<usize>,
    /// The next scheduled time after now (None while suspended, or when the
    /// expression names no time ahead).
    pub next: Option<Timestamp>,
}

impl Decision {
    /// When to look again: at the next scheduled time, at most `MAX_WAIT`.
    pub fn requeue(&self, now: Timestamp) -> Duration {
        let until = self
            .next
            .map(|n| Duration::try_from(n.duration_since(now)).unwrap_or(Duration::ZERO));
        until
            .map_or(MAX_WAIT, |d| d.min(MAX_WAIT))
            .max(Duration::from_millis(200))
    }
}

/// The latest scheduled time in (earliest, now] and how many there are
/// (counted up to `MAX_MISSED` + 1).
pub fn latest_due(
    cron: &Cron,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, usize) {
    let mut latest = None;
    let mut count = 0;
    let mut t = earliest;
    while let Some(n) = cron.next_after(tz, t) {
        if n > now {
            return (latest, count);
        }
        count += 1;
        latest = Some(n);
        t = n;
        if count > MAX_MISSED {
            break;
        }
    }
    if count <= MAX_MISSED {
        return (latest, count);
    }
    // Too many to walk: the latest lies in the smallest window before now
    // that holds one.
    for window in [3600, 86_400, 32 * 86_400, 367 * 86_400, 11 * 367 * 86_400] {
        let from = now
            .checked_sub(jiff::SignedDuration::from_secs(window))
            .unwrap_or(earliest)
            .max(earliest);
        let mut t = from;
        let mut found = None;
        while let Some(n) = cron.next_after(tz, t).filter(|n| *n <= now) {
            found = Some(n);
            t = n;
        }
        if found.is_some() {
            return (found, count);
        }
    }
    (latest, count)
}

/// What to do now.
pub fn decide(rules: &Rules, obs: &Observed) -> Decision {
    let none = |next| Decision {
        action: Action::None,
        too_many_missed: None,
        next,
    };
    if rules.suspend {
        // Runs already started go on; nothing new starts and nothing is
        // recorded as missed (CronJob: resuming runs the latest missed time
        // if the starting deadline allows).
        return none(None);
    }
    let next = rules.cron.next_after(rules.tz, obs.now);
    let base = [obs.last_schedule, obs.last_skipped]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(obs.created);
    // Times older than the starting deadline cannot start in time: they are
    // neither run nor counted as missed (as in CronJob).
    let horizon = rules.deadline.map(|d| {
        obs.now
            .checked_sub(jiff::SignedDuration::try_from(d).unwrap_or_default())
            .unwrap_or(obs.now)
    });
    let earliest = horizon.map_or(base, |h| h.max(base));
    let (due, count) = if earliest < obs.now {
        latest_due(rules.cron, rules.tz, earliest, obs.now)
    } else {
        (None, 0)
    };
    let Some(at) = due else {
        // Nothing in the window; one that fell before it was missed for good,
        // which the status records (CronJob only logs it), so it is looked
        // at once.
        if let Some(h) = horizon.filter(|h| *h > base)
            && let (Some(at), _) = latest_due(rules.cron, rules.tz, base, h)
            && !obs.existing.contains(&at)
        {
            return Decision {
                action: Action::Skip {
                    at,
                    reason: SkipReason::Deadline,
                },
                too_many_missed: None,
                next,
            };
        }
        return none(next);
    };
    let too_many_missed = (count > MAX_MISSED).then_some(count);
    let action = if obs.existing.contains(&at) {
        Action::Record { at }
    } else if obs.active > 0 {
        match rules.policy {
            ConcurrencyPolicy::Allow => Action::Start { at, replace: false },
            ConcurrencyPolicy::Replace => Action::Start { at, replace: true },
            ConcurrencyPolicy::Forbid => Action::Skip {
                at,
                reason: SkipReason::Forbid,
            },
        }
    } else {
        Action::Start { at, replace: false }
    };
    Decision {
        action,
        too_many_missed,
        next,
    }
}

/// The longest run name: LoadTest names are at most
/// `crate::validate::MAX_NAME` characters.
pub const MAX_RUN_NAME: usize = crate::validate::MAX_NAME;

/// The run's name for scheduled time `at`: `<slt>-<unix minutes>`, so one
/// scheduled time can only ever create one run. A name too long for that is
/// cut and given a hash of the whole name, so two long names that share a
/// beginning still differ.
pub fn run_name(slt: &str, at: Timestamp) -> String {
    let minutes = at.as_second().div_euclid(60).to_string();
    let room = MAX_RUN_NAME - 1 - minutes.len();
    if slt.len() <= room {
        return format!("{slt}-{minutes}");
    }
    let hash = format!("{:08x}", fnv1a(slt.as_bytes()) as u32);
    let keep = room - hash.len() - 1;
    let head = slt[..keep].trim_end_matches(['-', '.']);
    format!("{head}-{hash}-{minutes}")
}

/// The scheduled time a run name carries (the inverse of `run_name`).
pub fn scheduled_of(run: &str) -> Option<Timestamp> {
    let (_, minutes) = run.rsplit_once('-')?;
    let m: i64 = minutes.parse().ok()?;
    Timestamp::from_second(m.checked_mul(60)?).ok()
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100000001b3)
    })
}

/// A finished run as the history limits see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub name: String,
    pub scheduled: Timestamp,
    pub phase: Phase,
}

/// The finished runs to delete: all but the newest `succeeded` Succeeded
/// ones and the newest `failed` Failed or Aborted ones.
pub fn prune(runs: &[Finished], succeeded: u32, failed: u32) -> Vec<String> {
    let mut sorted: Vec<&Finished> = runs.iter().filter(|r| r.phase.is_terminal()).collect();
    sorted.sort_by(|a, b| b.scheduled.cmp(&a.scheduled).then(b.name.cmp(&a.name)));
    let (mut ok, mut bad) = (0u32, 0u32);
    let mut out = Vec::new();
    for r in sorted {
        let (n, limit) = if r.phase == Phase::Succeeded {
            (&mut ok, succeeded)
        } else {
            (&mut bad, failed)
        };
        *n += 1;
        if *n > limit {
            out.push(r.name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
}
