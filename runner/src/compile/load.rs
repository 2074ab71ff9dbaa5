//! The load model: the level over time (a constant level for a duration,
//! or stages), this runner's share of the iterations and of `maxInFlight`,
//! the pauses, and the report interval the test's length allows.

use std::time::Duration;

use super::{
    DEFAULT_GRACEFUL_STOP, DEFAULT_INTERVAL, DEFAULT_MAX_IN_FLIGHT, LoadPlan, Profile, Slot,
};
use crate::{
    error::{Error, Result},
    limits,
    plan::{Executor, Plan, Stage},
    wait::Wait,
};

/// The plan's `load` for `slot`: the profile of the whole plan (each runner
/// derives its share while running) and this runner's share of the
/// iterations and of `maxInFlight`.
pub(super) fn compile_load(
    plan: &Plan,
    slot: Slot,
    f: &dyn Fn(&str) -> String,
) -> Result<LoadPlan> {
    let l = &plan.load;
    let concurrency = l.executor == Executor::Concurrency;
    let level_field = if concurrency {
        "load.users"
    } else {
        "load.rate"
    };
    if concurrency && l.rate.is_some() {
        return Err(Error::invalid(
            f("load.rate"),
            "only applies to executor: arrival-rate (use load.users)",
        ));
    }
    if !concurrency && l.users.is_some() {
        return Err(Error::invalid(
            f("load.users"),
            "only applies to executor: concurrency (use load.rate)",
        ));
    }
    if !concurrency && (l.think_time.is_some() || l.pacing.is_some()) {
        return Err(Error::invalid(
            f(if l.think_time.is_some() {
                "load.thinkTime"
            } else {
                "load.pacing"
            }),
            "only applies to executor: concurrency",
        ));
    }
    let level = if concurrency {
        l.users.map(f64::from)
    } else {
        l.rate
    };
    let profile = if !l.stages.is_empty() {
        if l.duration.is_some() {
            return Err(Error::invalid(
                f("load.duration"),
                "give either stages or duration, not both",
            ));
        }
        if level.is_some() {
            return Err(Error::invalid(
                f(level_field),
                "give either stages or a constant level, not both",
            ));
        }
        check_stages(&l.stages, concurrency, f)?;
        Profile {
            start: 0.0,
            stages: l.stages.iter().map(|s| (s.duration.0, s.target)).collect(),
        }
    } else {
        let level = level
            .ok_or_else(|| Error::invalid(f(level_field), "is missing (or give load.stages)"))?;
        limits::level(level, concurrency, false).map_err(|m| Error::invalid(f(level_field), m))?;
        match l.duration {
            Some(d) => {
                limits::duration(d.0, limits::MAX_LENGTH)
                    .map_err(|m| Error::invalid(f("load.duration"), m))?;
                Profile {
                    start: level,
                    stages: vec![(d.0, level)],
                }
            }
            None if l.iterations.is_some() => Profile {
                start: level,
                stages: vec![],
            },
            None => {
                return Err(Error::invalid(
                    f("load"),
                    "has no end: give duration, stages or iterations",
                ));
            }
        }
    };
    if l.iterations == Some(0) {
        return Err(Error::invalid(f("load.iterations"), "must be more than 0"));
    }
    if let Some(n) = l.iterations {
        limits::count(n, limits::MAX_ITERATIONS)
            .map_err(|m| Error::invalid(f("load.iterations"), m))?;
        // An open model without an end in time ends when its arrivals do.
        if !concurrency && profile.total().is_none() {
            let secs = n as f64 / profile.start;
            if secs > limits::MAX_LENGTH.as_secs_f64() {
                return Err(Error::invalid(
                    f("load.iterations"),
                    format!(
                        "{n} at {} per second take longer than the limit of {}: give a duration or a higher rate",
                        profile.start,
                        crate::duration::format_duration(limits::MAX_LENGTH)
                    ),
                ));
            }
        }
    }
    let max_in_flight = l.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    if max_in_flight == 0 {
        return Err(Error::invalid(f("load.maxInFlight"), "must be more than 0"));
    }
    limits::count(max_in_flight, limits::MAX_IN_FLIGHT)
        .map_err(|m| Error::invalid(f("load.maxInFlight"), m))?;
    for (field, d) in [
        ("load.thinkTime", l.think_time.map(|w| w.max())),
        ("load.pacing", l.pacing.map(|w| w.max())),
        ("load.gracefulStop", l.graceful_stop.map(|d| d.0)),
    ] {
        if let Some(d) = d {
            limits::at_most(d, limits::MAX_WAIT).map_err(|m| Error::invalid(f(field), m))?;
        }
    }
    let iterations = l
        .iterations
        .map(|n| iteration_share(n, concurrency, &profile, slot));
    Ok(LoadPlan {
        executor: l.executor,
        profile,
        iterations,
        max_in_flight: (max_in_flight / slot.count).max(1),
        think_time: l.think_time.unwrap_or(Wait::ZERO),
        pacing: l.pacing.unwrap_or(Wait::ZERO),
        graceful_stop: l.graceful_stop.map_or(DEFAULT_GRACEFUL_STOP, |d| d.0),
    })
}

/// This runner's share of the plan's iterations. Arrivals are dealt out one
/// by one, so an even split is exact. Users are whole, so in the closed model
/// a runner may have none (2 users over 3 runners): there the iterations
/// follow each runner's peak users, so none are stranded on a runner that
/// never runs a user.
pub(super) fn iteration_share(total: u64, concurrency: bool, profile: &Profile, slot: Slot) -> u64 {
    if !concurrency {
        return slot.share(total);
    }
    let peak = profile
        .stages
        .iter()
        .map(|s| s.1)
        .fold(profile.start, f64::max)
        .round() as u64;
    let users: Vec<u64> = (0..slot.count)
        .map(|i| {
            Slot {
                index: i,
                count: slot.count,
            }
            .share(peak)
        })
        .collect();
    let sum: u64 = users.iter().sum();
    if sum == 0 {
        return slot.share(total);
    }
    // Largest remainder: floors first, then the leftover one by one to the
    // runners with users, in index order (deterministic on every runner).
    let floor = |u: u64| (total as u128 * u as u128 / sum as u128) as u64;
    let leftover = total - users.iter().map(|&u| floor(u)).sum::<u64>();
    let rank = users[..slot.index as usize]
        .iter()
        .filter(|&&u| u > 0)
        .count() as u64;
    let mine = users[slot.index as usize];
    floor(mine) + u64::from(mine > 0 && rank < leftover)
}

fn check_stages(stages: &[Stage], concurrency: bool, f: &dyn Fn(&str) -> String) -> Result<()> {
    for (i, s) in stages.iter().enumerate() {
        limits::duration(s.duration.0, limits::MAX_LENGTH)
            .map_err(|m| Error::invalid(f(&format!("load.stages[{i}].duration")), m))?;
        limits::level(s.target, concurrency, true)
            .map_err(|m| Error::invalid(f(&format!("load.stages[{i}].target")), m))?;
    }
    let total: Duration = stages.iter().map(|s| s.duration.0).sum();
    limits::at_most(total, limits::MAX_LENGTH)
        .map_err(|m| Error::invalid(f("load.stages"), format!("together {m}")))
}

/// The plan's `reportInterval`: at least 100ms, at most the longest wait,
/// and not so short that the test has more intervals than the limit.
pub(super) fn compile_interval(
    plan: &Plan,
    profile: &Profile,
    f: &dyn Fn(&str) -> String,
) -> Result<Duration> {
    let interval = plan.report_interval.map_or(DEFAULT_INTERVAL, |d| d.0);
    if interval < Duration::from_millis(100) {
        return Err(Error::invalid(
            f("reportInterval"),
            "must be at least 100ms",
        ));
    }
    limits::at_most(interval, limits::MAX_WAIT)
        .map_err(|m| Error::invalid(f("reportInterval"), m))?;
    // Every runner keeps one histogram per interval of the test.
    if let Some(length) = profile.total() {
        let n = length.as_micros().div_ceil(interval.as_micros()) as u64;
        if n > limits::MAX_INTERVALS {
            return Err(Error::invalid(
                f("reportInterval"),
                format!(
                    "{} makes {n} intervals of a {} test, more than the limit of {}: make it longer",
                    crate::duration::format_duration(interval),
                    crate::duration::format_duration(length),
                    limits::MAX_INTERVALS
                ),
            ));
        }
    }
    Ok(interval)
}
