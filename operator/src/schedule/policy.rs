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

pub use barrage_runner::manifest::schedule::{MAX_RUN_NAME, run_name};

/// The scheduled time a run name carries (the inverse of `run_name`).
pub fn scheduled_of(run: &str) -> Option<Timestamp> {
    let (_, minutes) = run.rsplit_once('-')?;
    let m: i64 = minutes.parse().ok()?;
    Timestamp::from_second(m.checked_mul(60)?).ok()
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
mod tests;
