//! When each arrival of the open model is due.
//!
//! The rate is piecewise linear, so the number of arrivals due by time t,
//! N(t), is piecewise quadratic; arrival k is due when N(t) = k. Runner i of
//! n takes arrivals i, i+n, i+2n, ...: together the runners produce exactly
//! the schedule a single runner would, interleaved rather than bunched.

use std::time::Duration;

use crate::compile::Profile;

struct Segment {
    start: f64,
    /// Arrivals due before this segment.
    before: f64,
    r0: f64,
    r1: f64,
    /// Length in seconds; infinite for a rate with no end.
    len: f64,
}

pub struct Timeline {
    segments: Vec<Segment>,
    cursor: usize,
    next: u64,
    step: u64,
}

impl Timeline {
    pub fn new(p: &Profile, index: u32, count: u32) -> Timeline {
        let mut segments = Vec::new();
        let (mut t, mut n, mut r) = (0.0, 0.0, p.start);
        for &(d, to) in &p.stages {
            let len = d.as_secs_f64();
            segments.push(Segment {
                start: t,
                before: n,
                r0: r,
                r1: to,
                len,
            });
            t += len;
            n += (r + to) / 2.0 * len;
            r = to;
        }
        if p.stages.is_empty() {
            segments.push(Segment {
                start: 0.0,
                before: 0.0,
                r0: r,
                r1: r,
                len: f64::INFINITY,
            });
        }
        Timeline {
            segments,
            cursor: 0,
            next: index as u64,
            step: count.max(1) as u64,
        }
    }

    /// The due time of this runner's next arrival, or None after the end
    /// (or when it lies beyond any time a `Duration` can hold, as with an
    /// absurdly low rate: never due is what that means).
    pub fn next_due(&mut self) -> Option<Duration> {
        let (secs, cursor) = self.due_secs(self.next)?;
        let due = Duration::try_from_secs_f64(secs).ok()?;
        self.cursor = cursor;
        self.next = self.next.saturating_add(self.step);
        Some(due)
    }

    /// Skips this runner's arrivals due by `t` that were not taken yet and
    /// returns how many: the arrivals a runner that fell behind could not
    /// send before the load ended. Exact (the same due times as `next_due`)
    /// and quick however many there are.
    pub fn skip_due_by(&mut self, t: Duration) -> u64 {
        let t = t.as_secs_f64();
        let due_by = |k: u64| self.due_secs(k).is_some_and(|(d, _)| d <= t);
        // Estimated from the arrivals' integral, then settled against the
        // due times themselves (a step or two, for rounding).
        let mut last = self.arrivals_by(t).floor().clamp(0.0, u64::MAX as f64) as u64;
        for _ in 0..64 {
            if last == u64::MAX || !due_by(last + 1) {
                break;
            }
            last += 1;
        }
        for _ in 0..64 {
            if due_by(last) || last == 0 {
                break;
            }
            last -= 1;
        }
        if !due_by(last) || last < self.next {
            return 0;
        }
        let n = (last - self.next) / self.step + 1;
        self.next = self.next.saturating_add(n.saturating_mul(self.step));
        n
    }

    /// The due time of arrival `k` (of all runners) in seconds, and the
    /// segment it falls in; None when the schedule has no arrival `k`.
    /// `k` is at least `self.next`, so the search starts at `self.cursor`.
    fn due_secs(&self, k: u64) -> Option<(f64, usize)> {
        let k = k as f64;
        let mut cursor = self.cursor;
        while let Some(s) = self.segments.get(cursor) {
            let n_in = if s.len.is_finite() {
                (s.r0 + s.r1) / 2.0 * s.len
            } else {
                f64::INFINITY
            };
            let y = k - s.before;
            if y < n_in {
                let a = if s.len.is_finite() {
                    (s.r1 - s.r0) / s.len
                } else {
                    0.0
                };
                // x solves r0·x + a·x²/2 = y, written to stay stable when a → 0.
                let den = s.r0 + (s.r0 * s.r0 + 2.0 * a * y).max(0.0).sqrt();
                let x = if y <= 0.0 {
                    0.0
                } else if den > 0.0 {
                    2.0 * y / den
                } else {
                    return None;
                };
                return Some((s.start + x.min(s.len), cursor));
            }
            cursor += 1;
        }
        None
    }

    /// N(t): how many arrivals (of all runners) the schedule has by `t` s.
    fn arrivals_by(&self, t: f64) -> f64 {
        let mut n = 0.0;
        for s in &self.segments {
            if t < s.start {
                break;
            }
            let x = (t - s.start).min(s.len);
            let a = if s.len.is_finite() {
                (s.r1 - s.r0) / s.len
            } else {
                0.0
            };
            n = s.before + s.r0 * x + a * x * x / 2.0;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(start: f64, stages: &[(u64, f64)]) -> Profile {
        Profile {
            start,
            stages: stages
                .iter()
                .map(|&(s, r)| (Duration::from_secs(s), r))
                .collect(),
        }
    }

    fn all(p: &Profile, i: u32, n: u32) -> Vec<f64> {
        let mut t = Timeline::new(p, i, n);
        std::iter::from_fn(|| t.next_due())
            .map(|d| d.as_secs_f64())
            .collect()
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let v = all(&profile(10.0, &[(2, 10.0)]), 0, 1);
        assert_eq!(v.len(), 20);
        for (k, t) in v.iter().enumerate() {
            assert!((t - k as f64 * 0.1).abs() < 1e-9, "{k}: {t}");
        }
    }

    #[test]
    fn a_linear_ramp_schedules_its_integral() {
        // 0 -> 100/s over 10 s: 500 arrivals, a quarter of them in the first half.
        let v = all(&profile(0.0, &[(10, 100.0)]), 0, 1);
        assert_eq!(v.len(), 500);
        let first_half = v.iter().filter(|&&t| t < 5.0).count();
        assert!((124..=126).contains(&first_half), "{first_half}");
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn runners_split_the_schedule_exactly() {
        let p = profile(0.0, &[(3, 50.0), (4, 50.0), (2, 0.0)]);
        let single = all(&p, 0, 1);
        let mut merged: Vec<f64> = (0..3).flat_map(|i| all(&p, i, 3)).collect();
        merged.sort_by(f64::total_cmp);
        assert_eq!(merged.len(), single.len());
        for (a, b) in merged.iter().zip(&single) {
            assert!((a - b).abs() < 1e-9);
        }
    }

    #[test]
    fn skipping_counts_exactly_the_arrivals_due_by_then() {
        let p = profile(0.0, &[(3, 50.0), (4, 50.0), (2, 0.0)]);
        for (i, n) in [(0, 1), (0, 3), (1, 3), (2, 3)] {
            for t in [0.0, 0.01, 1.0, 2.5, 3.0, 5.25, 8.0, 9.0, 100.0] {
                let want = all(&p, i, n).iter().filter(|&&d| d <= t).count() as u64;
                let mut tl = Timeline::new(&p, i, n);
                let skipped = tl.skip_due_by(Duration::from_secs_f64(t));
                assert_eq!(skipped, want, "slot {i}/{n} at {t}s");
                // The rest comes after, unchanged.
                let rest: Vec<f64> = std::iter::from_fn(|| tl.next_due())
                    .map(|d| d.as_secs_f64())
                    .collect();
                assert_eq!(rest, all(&p, i, n)[want as usize..], "slot {i}/{n} at {t}s");
            }
        }
    }

    #[test]
    fn skipping_after_some_were_taken_counts_only_the_rest() {
        let p = profile(10.0, &[(10, 10.0)]);
        let mut tl = Timeline::new(&p, 0, 1);
        for _ in 0..7 {
            tl.next_due();
        }
        // 0.0 .. 4.9 are due by 4.95 s: 50, of which 7 were taken.
        assert_eq!(tl.skip_due_by(Duration::from_secs_f64(4.95)), 43);
        assert_eq!(tl.skip_due_by(Duration::from_secs_f64(4.95)), 0);
        assert_eq!(tl.next_due(), Some(Duration::from_secs_f64(5.0)));
    }

    #[test]
    fn an_enormous_rate_skips_its_backlog_at_once() {
        // 1e12/s for an hour: far too many to step through one by one.
        let p = profile(1e12, &[(3600, 1e12)]);
        let mut tl = Timeline::new(&p, 1, 4);
        tl.next_due();
        let started = std::time::Instant::now();
        let skipped = tl.skip_due_by(Duration::from_secs(3600));
        assert!(started.elapsed() < Duration::from_secs(1));
        // 3.6e15 arrivals in all; this runner takes every 4th, one already.
        let want = 3.6e15 / 4.0 - 1.0;
        assert!((skipped as f64 - want).abs() <= 2.0, "{skipped}");
        assert_eq!(tl.next_due(), None);
    }

    #[test]
    fn extreme_rates_end_the_timeline_instead_of_panicking() {
        // The second arrival at 1e-300/s is due in 1e300 s, beyond any Duration.
        let mut t = Timeline::new(&profile(1e-300, &[]), 0, 1);
        assert_eq!(t.next_due(), Some(Duration::ZERO));
        assert_eq!(t.next_due(), None);
        for rate in [f64::NAN, f64::INFINITY, -1.0, f64::MAX, f64::MIN_POSITIVE] {
            let mut t = Timeline::new(&profile(rate, &[]), 0, 1);
            for _ in 0..3 {
                let _ = t.next_due();
            }
            let _ = t.skip_due_by(Duration::from_secs(10));
            let mut t = Timeline::new(&profile(0.0, &[(1, rate)]), 0, 1);
            let _ = t.next_due();
            let _ = t.skip_due_by(Duration::MAX);
        }
    }

    #[test]
    fn no_end_keeps_going_and_zero_rate_stops() {
        let mut t = Timeline::new(&profile(1000.0, &[]), 0, 1);
        let last = (0..5000).filter_map(|_| t.next_due()).last().unwrap();
        assert!((last.as_secs_f64() - 4.999).abs() < 1e-9);
        assert!(all(&profile(0.0, &[(5, 0.0)]), 0, 1).len() <= 1);
    }
}
