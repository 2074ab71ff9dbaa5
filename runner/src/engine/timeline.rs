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

    /// The due time of this runner's next arrival, or None after the end.
    pub fn next_due(&mut self) -> Option<Duration> {
        let k = self.next as f64;
        while let Some(s) = self.segments.get(self.cursor) {
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
                    break;
                };
                self.next += self.step;
                return Some(Duration::from_secs_f64(s.start + x.min(s.len)));
            }
            self.cursor += 1;
        }
        None
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
    fn no_end_keeps_going_and_zero_rate_stops() {
        let mut t = Timeline::new(&profile(1000.0, &[]), 0, 1);
        let last = (0..5000).filter_map(|_| t.next_due()).last().unwrap();
        assert!((last.as_secs_f64() - 4.999).abs() < 1e-9);
        assert!(all(&profile(0.0, &[(5, 0.0)]), 0, 1).len() <= 1);
    }
}
