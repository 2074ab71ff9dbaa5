//! The load model: the level over time (a constant level for a duration,
//! or stages), this runner's share of the iterations and of `maxInFlight`,
//! the pauses, and the report interval (by default chosen by the test's
//! planned length, `default_interval`).

use std::time::Duration;

use super::{DEFAULT_GRACEFUL_STOP, DEFAULT_MAX_IN_FLIGHT, LoadPlan, Profile, Slot};
use crate::{
    error::{Error, Result},
    limits,
    plan::{Executor, Load, Plan, Stage},
    wait::Wait,
};

/// A `load` (the top-level one, or a scenario's) for `slot`: the profile of
/// the whole plan (each runner derives its share while running) and this
/// runner's share of the iterations and of `maxInFlight`. `f` names its
/// fields (`load.users`, `scenarios.S.load.users`).
pub(super) fn compile_load(l: &Load, slot: Slot, f: &dyn Fn(&str) -> String) -> Result<LoadPlan> {
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
        .map(|n| iteration_share(n, concurrency, peak_users(&profile, None), slot));
    Ok(LoadPlan {
        executor: l.executor,
        profile,
        iterations,
        max_in_flight: (max_in_flight / slot.count).max(1),
        think_time: l.think_time.unwrap_or(Wait::ZERO),
        pacing: l.pacing.unwrap_or(Wait::ZERO),
        graceful_stop: l.graceful_stop.map_or(DEFAULT_GRACEFUL_STOP, |d| d.0),
        split: None,
    })
}

/// The load a scenario is checked under when its own failed to compile
/// (its error already reported): one user or request per second for a
/// second, with the same executor, so its requests are still checked.
pub(super) fn stand_in_load(l: &Load, slot: Slot) -> LoadPlan {
    let concurrency = l.executor == Executor::Concurrency;
    let one = Load {
        executor: l.executor,
        users: concurrency.then_some(1),
        rate: (!concurrency).then_some(1.0),
        duration: Some(crate::duration::HumanDuration(Duration::from_secs(1))),
        ..Load::default()
    };
    compile_load(&one, slot, &|n: &str| n.to_string()).expect("the stand-in load is valid")
}

/// The most users `profile` reaches (of a weighted scenario: its part of
/// the most), rounded as the runners round them.
pub(super) fn peak_users(profile: &Profile, split: Option<&Split>) -> u64 {
    let peak = profile
        .stages
        .iter()
        .map(|s| s.1)
        .fold(profile.start, f64::max)
        .round()
        .max(0.0) as u64;
    split.map_or(peak, |s| s.part(peak))
}

/// Splits `total` into parts proportional to `weights` that add up to
/// exactly `total` (largest remainder: each part's floor, then one more to
/// the parts with the largest remainders, ties to the lower index). The
/// same on every runner, so each derives the same parts. All weights 0:
/// everything goes nowhere.
pub fn largest_remainder(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let t = u128::from(total);
    let mut parts: Vec<u64> = weights
        .iter()
        .map(|&w| (t * u128::from(w) / sum) as u64)
        .collect();
    let leftover = total - parts.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Remainders compared exactly as (t * w) mod sum.
    order.sort_by_key(|&i| std::cmp::Reverse(t * u128::from(weights[i]) % sum));
    for &i in order.iter().take(leftover as usize) {
        parts[i] += 1;
    }
    parts
}

/// A weighted scenario's part of the top-level level: at every instant the
/// weighted scenarios' users add up to the rounded level (see
/// `largest_remainder`).
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Every weighted scenario's weight, in `WEIGHT_UNIT`s.
    pub weights: Vec<u64>,
    /// This scenario's place among them.
    pub index: usize,
}

impl Split {
    /// This scenario's part of `total`.
    pub fn part(&self, total: u64) -> u64 {
        largest_remainder(total, &self.weights)[self.index]
    }
}

impl LoadPlan {
    /// The scenario's users (of all runners) at `t` from its start.
    pub fn users_at(&self, t: Duration) -> u64 {
        let total = self.profile.at(t).round().max(0.0) as u64;
        self.split.as_ref().map_or(total, |s| s.part(total))
    }
}

/// The load of weighted scenario `index` among `weights`: the top-level
/// `load` (already compiled as `base`, of `shared`) split by weight, with
/// the scenario's own think time and pacing from `own` (the only fields it
/// may set, checked by the caller).
pub(super) fn weighted_load(
    base: &LoadPlan,
    shared: &Load,
    own: Option<&Load>,
    weights: &[u64],
    index: usize,
    slot: Slot,
) -> LoadPlan {
    let concurrency = base.executor == Executor::Concurrency;
    let split = Split {
        weights: weights.to_vec(),
        index,
    };
    let (profile, split) = if concurrency {
        (base.profile.clone(), Some(split))
    } else {
        // Rates split in proportion: arrivals are dealt out one by one
        // on each scenario's own timeline.
        let sum: u64 = weights.iter().sum();
        let k = weights[index] as f64 / sum.max(1) as f64;
        let profile = Profile {
            start: base.profile.start * k,
            stages: base
                .profile
                .stages
                .iter()
                .map(|&(d, r)| (d, r * k))
                .collect(),
        };
        (profile, None)
    };
    let iterations = shared.iterations.map(|n| {
        let mine = largest_remainder(n, weights)[index];
        iteration_share(
            mine,
            concurrency,
            peak_users(&profile, split.as_ref()),
            slot,
        )
    });
    let in_flight = u64::from(shared.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT));
    let in_flight = largest_remainder(in_flight, weights)[index].max(1);
    LoadPlan {
        executor: base.executor,
        profile,
        iterations,
        max_in_flight: (slot.share(in_flight) as u32).max(1),
        think_time: own.and_then(|l| l.think_time).unwrap_or(Wait::ZERO),
        pacing: own.and_then(|l| l.pacing).unwrap_or(Wait::ZERO),
        graceful_stop: base.graceful_stop,
        split,
    }
}

/// This runner's share of the plan's iterations. Arrivals are dealt out one
/// by one, so an even split is exact. Users are whole, so in the closed model
/// a runner may have none (2 users over 3 runners): there the iterations
/// follow each runner's peak users, so none are stranded on a runner that
/// never runs a user.
pub(super) fn iteration_share(total: u64, concurrency: bool, peak: u64, slot: Slot) -> u64 {
    if !concurrency {
        return slot.share(total);
    }
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

/// The widths the default report interval is chosen from, narrowest first.
/// Each of the first four divides 10s, the one default there was before it
/// adapted to the test's length, so every window a plan wrote for that
/// default (a whole number of 10s) is still a whole number of intervals.
const RUNGS: [Duration; 7] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(20),
    Duration::from_secs(30),
    Duration::from_secs(60),
];

/// The narrowest rung that may be chosen for its room in `MAX_INTERVALS`
/// alone, rather than for the point count (the old fixed default).
const WIDE: Duration = Duration::from_secs(10);

/// The most intervals the default gives a test up to 50 minutes: a curve
/// in the plots (a 10s test draws 10 points), yet the per-interval
/// histograms of a test of minutes fit the report ConfigMap (1 MiB) without
/// merging, and a runner's snapshot stays small (16 KiB per interval).
pub const DEFAULT_POINTS: u64 = 300;

/// The report interval of a plan without `reportInterval`, for a test
/// planned to last `length` (`planned_length`; `None` when the plan does
/// not say, a closed model that ends by its iterations alone).
///
/// The narrowest of 1s, 2s, 5s and 10s that cuts the test into at most
/// [`DEFAULT_POINTS`] intervals: a 10s test gets 1s (10 points), 5 minutes
/// 1s (300), 10 minutes 2s, 25 minutes 5s. Longer tests get 10s, as every
/// test did before (an 8-hour soak: 2,880 intervals; the report merges
/// them in pairs where the ConfigMap needs it), up to where 10s would make
/// more than `limits::MAX_INTERVALS` (55h); beyond, the narrowest of 20s,
/// 30s and 1m that keeps within it. Never wider than 10s where 10s worked,
/// so windowed thresholds written for the old default still divide.
///
/// An unknown length gets 10s, as before: a plan that ends by its
/// iterations alone may run as long as `limits::open_ended` allows (20,000
/// intervals, 55h at 10s), and a finer default would cut that short. A
/// short one that wants a curve sets `reportInterval`.
pub fn default_interval(length: Option<Duration>) -> Duration {
    let Some(length) = length else {
        return WIDE;
    };
    let count = |w: Duration| length.as_micros().div_ceil(w.as_micros());
    RUNGS
        .into_iter()
        .find(|&w| {
            count(w) <= u128::from(DEFAULT_POINTS)
                || (w >= WIDE && count(w) <= u128::from(limits::MAX_INTERVALS))
        })
        .unwrap_or(RUNGS[RUNGS.len() - 1])
}

/// The plan's report interval, read from the plan alone: its
/// `reportInterval`, or the default for its planned length. The runners
/// (`compile`) and the operator (which sizes what a runner may send by it)
/// both take it from here, so they agree.
pub fn report_interval(plan: &Plan) -> Duration {
    plan.report_interval
        .map_or_else(|| default_interval(super::planned_length(plan)), |d| d.0)
}

/// The plan's report interval ([`report_interval`]): at least 100ms, at
/// most the longest wait, and not so short that the test has more
/// intervals than the limit (`length`: the longest a timed scenario runs,
/// from the test's start).
pub(super) fn compile_interval(
    plan: &Plan,
    length: Option<Duration>,
    f: &dyn Fn(&str) -> String,
) -> Result<Duration> {
    let interval = report_interval(plan);
    if interval < Duration::from_millis(100) {
        return Err(Error::invalid(
            f("reportInterval"),
            "must be at least 100ms",
        ));
    }
    limits::at_most(interval, limits::MAX_WAIT)
        .map_err(|m| Error::invalid(f("reportInterval"), m))?;
    // Every runner keeps one histogram per interval of the test.
    if let Some(length) = length {
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
