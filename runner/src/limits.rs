//! Upper (and a few lower) bounds on what a plan may ask for, so that memory
//! and time are sized by a sane plan, never by a typo: `users: 10000000`
//! took 3.6 GB, `rate: 1e12` would have run for hours, and `rate: 1e-300`
//! made the engine's timeline overflow. Each check returns the message for
//! the caller to attach to the field it checked. README "The plan" lists
//! them.

use std::time::Duration;

use crate::duration::format_duration;

/// Virtual users (closed model) of the whole plan, at any moment.
pub const MAX_USERS: f64 = 1_000_000.0;
/// Requests per second (open model) of the whole plan, at any moment.
pub const MAX_RATE: f64 = 10_000_000.0;
/// The slowest rate that is not 0: one request per day.
pub const MIN_RATE: f64 = 1.0 / 86_400.0;
/// `load.iterations` in total.
pub const MAX_ITERATIONS: u64 = 1_000_000_000;
/// `load.maxInFlight`.
pub const MAX_IN_FLIGHT: u32 = 1_000_000;
/// A test's length (`duration`, the sum of `stages`, or iterations / rate).
pub const MAX_LENGTH: Duration = Duration::from_secs(7 * 24 * 3600);
/// Timeouts, `gracefulStop`, `thinkTime`, `pacing`, `reportInterval`.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Per-interval histograms kept for a test (its length / `reportInterval`).
pub const MAX_INTERVALS: u64 = 20_000;
/// Runners (`--workers`, `--runner-count`, the runner slots).
pub const MAX_RUNNERS: u32 = 1024;
/// Named scenarios of a plan (each runs its own executor and users).
pub const MAX_SCENARIOS: usize = 256;
/// HTTP/2 connections per runner (`target.connections`).
pub const MAX_CONNECTIONS: u32 = 10_000;
/// A request's `maxBody` (a kept body is held whole until its captures
/// are read, once per request in flight).
pub const MAX_BODY: u64 = 256 << 20;

/// Steps one pass through a repeat block may run (its most rounds times
/// its steps): a pass's requests and length stay sized by the plan.
pub const MAX_REPEAT_STEPS: u64 = 10_000;
/// `expect.body.json` checks of one request.
pub const MAX_JSON_CHECKS: usize = 64;
/// The longest label a body check's failures are counted under (longer
/// ones are cut): the results stay sized by the plan, not by its texts.
pub const MAX_CHECK_LABEL: usize = 80;

/// How long a plan that ends by its iterations alone (no `duration`, no
/// `stages`) may run: as long as 20,000 report intervals (55h at the 10s
/// default of a plan without a planned length), at most 168h. Its series and every figure sized by time then stay
/// bounded like a timed plan's; the operator sizes its limits by this too.
pub fn open_ended(interval: Duration) -> Duration {
    let by_intervals = interval.saturating_mul(u32::try_from(MAX_INTERVALS).unwrap_or(u32::MAX));
    MAX_LENGTH.min(by_intervals)
}

/// A level (users or requests per second): finite, at most the maximum,
/// and for a rate not absurdly small. `zero_ok` for stage targets (a ramp
/// down to 0).
pub fn level(v: f64, concurrency: bool, zero_ok: bool) -> Result<(), String> {
    // 1e-300 and 1e12 as written, not as 300 digits.
    let shown = if v != 0.0 && v.is_finite() && !(1e-4..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    };
    let (max, what) = if concurrency {
        (MAX_USERS, "users")
    } else {
        (MAX_RATE, "requests per second")
    };
    if !v.is_finite() || v < 0.0 || (v == 0.0 && !zero_ok) {
        return Err(format!(
            "{shown} must be {} a finite number",
            if zero_ok {
                "0 or more,"
            } else {
                "more than 0,"
            }
        ));
    }
    if v > max {
        return Err(format!("{shown} is more than the limit of {max} {what}"));
    }
    if !concurrency && v > 0.0 && v < MIN_RATE {
        return Err(format!(
            "{shown} requests per second is less than one a day (the lowest rate is {MIN_RATE:.3e}/s)"
        ));
    }
    Ok(())
}

/// A duration that must be more than 0 and at most `max`.
pub fn duration(d: Duration, max: Duration) -> Result<(), String> {
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    at_most(d, max)
}

pub fn at_most(d: Duration, max: Duration) -> Result<(), String> {
    if d > max {
        return Err(format!(
            "{} is more than the limit of {}",
            format_duration(d),
            format_duration(max)
        ));
    }
    Ok(())
}

pub fn count<T: PartialOrd + std::fmt::Display>(v: T, max: T) -> Result<(), String> {
    if v > max {
        return Err(format!("{v} is more than the limit of {max}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan that ends by its iterations alone runs at most 20,000 report
    /// intervals, and never past the longest test.
    #[test]
    fn open_ended_plans_are_bounded_by_intervals_and_length() {
        let s = Duration::from_secs;
        assert_eq!(open_ended(s(10)), s(200_000));
        assert_eq!(open_ended(Duration::from_millis(100)), s(2_000));
        assert_eq!(open_ended(s(3600)), MAX_LENGTH);
        assert!(open_ended(s(10)).as_micros() / s(10).as_micros() <= u128::from(MAX_INTERVALS));
    }

    #[test]
    fn levels_are_bounded_both_ways() {
        assert!(level(1e12, false, false).unwrap_err().contains("limit"));
        assert!(
            level(2e6, true, false)
                .unwrap_err()
                .contains("1000000 users")
        );
        assert!(
            level(1e-300, false, false)
                .unwrap_err()
                .contains("one a day")
        );
        assert!(level(f64::NAN, false, false).is_err());
        assert!(level(f64::INFINITY, true, true).is_err());
        assert!(level(0.0, false, false).is_err());
        level(0.0, false, true).unwrap();
        level(MAX_RATE, false, false).unwrap();
        level(MIN_RATE, false, false).unwrap();
        level(1e-300, true, false).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn durations_name_the_limit() {
        let e = at_most(Duration::from_secs(8 * 86_400), MAX_LENGTH).unwrap_err();
        assert!(e.contains("limit of 168h"), "{e}");
        assert_eq!(
            duration(Duration::ZERO, MAX_WAIT).unwrap_err(),
            "must be more than 0"
        );
    }
}
