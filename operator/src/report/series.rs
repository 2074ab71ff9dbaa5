//! The data behind the plots, read from a merged snapshot: throughput and
//! percentiles per interval, and the latency percentile spectrum of a
//! histogram. Pure; the drawing is in `svg`.

use barrage_runner::{histogram::Latency, snapshot::Snapshot};

/// One interval of the test.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    /// Seconds from the start to the end of the interval.
    pub t: f64,
    pub rps: f64,
    pub errors_per_sec: f64,
    /// Milliseconds; `None` when nothing completed in the interval.
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    pub interval_secs: f64,
    pub slices: Vec<Slice>,
    /// Intervals whose histogram did not decode (left out of the latency lines).
    pub unreadable: usize,
}

/// The per-interval series, or `None` when the snapshot has none (the
/// operator drops them from reports over the ConfigMap limit).
///
/// Intervals are indexed from the start; a missing index is an interval in
/// which nothing completed: 0 req/s (a stall shows as a dip to zero) and a
/// gap in the latency lines. The last interval is usually partial, so its
/// rate is over the time it actually covers.
pub fn timeline(s: &Snapshot) -> Option<Timeline> {
    if s.intervals.is_empty() || s.interval_us == 0 {
        return None;
    }
    let iv = s.interval_us as f64 / 1e6;
    let elapsed = s.elapsed_secs();
    let last = s.intervals.iter().map(|i| i.index).max().unwrap_or(0);
    let mut unreadable = 0;
    let mut slices = Vec::with_capacity(last as usize + 1);
    for index in 0..=last {
        let start = index as f64 * iv;
        let mut end = start + iv;
        if index == last && elapsed > start && elapsed < end {
            end = elapsed;
        }
        let secs = end - start;
        let found = s
            .intervals
            .binary_search_by_key(&index, |i| i.index)
            .ok()
            .map(|i| &s.intervals[i]);
        let (requests, errors) = found.map_or((0, 0), |i| (i.requests, i.errors));
        let h = match found.map(|i| i.latency.unpack()) {
            Some(Ok(h)) => Some(h),
            Some(Err(_)) => {
                unreadable += 1;
                None
            }
            None => None,
        };
        let at = |q: f64| {
            h.as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
        };
        slices.push(Slice {
            t: end,
            rps: requests as f64 / secs,
            errors_per_sec: errors as f64 / secs,
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
        });
    }
    Some(Timeline {
        interval_secs: iv,
        slices,
        unreadable,
    })
}

/// The percentile spectrum: (percentile, latency ms) from p0 towards
/// 99.999, in steps of a twentieth of a nine. It stops where the histogram
/// runs out of samples (1,000 samples say nothing about p99.99) and ends on
/// the maximum.
pub fn spectrum(h: &Latency, max_nines: f64) -> Vec<(f64, f64)> {
    let n = h.len();
    if n == 0 {
        return Vec::new();
    }
    let reach = (n as f64).log10().min(max_nines);
    let steps = (reach * 20.0).floor() as usize;
    let mut out: Vec<(f64, f64)> = (0..=steps)
        .map(|i| {
            let p = super::svg::percentile_of_nines(i as f64 / 20.0);
            (p, h.value_at_quantile(p / 100.0) as f64 / 1000.0)
        })
        .collect();
    let top = super::svg::percentile_of_nines(reach);
    if out.last().is_some_and(|l| l.0 < top - 1e-9) {
        out.push((top, h.max() as f64 / 1000.0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_runner::{
        histogram::{new_latency, record},
        snapshot::{Interval, Packed},
    };

    fn iv(index: u64, requests: u64, errors: u64, us: &[u64]) -> Interval {
        let mut h = new_latency();
        us.iter().for_each(|&v| record(&mut h, v));
        Interval {
            index,
            requests,
            errors,
            latency: Packed::pack(&h),
        }
    }

    fn snap(intervals: Vec<Interval>, elapsed_us: u64) -> Snapshot {
        let mut s = Snapshot::empty(1_000_000);
        s.started_us = Some(1_000_000_000);
        s.until_us = Some(1_000_000_000 + elapsed_us);
        s.intervals = intervals;
        s
    }

    #[test]
    fn no_intervals_is_no_timeline() {
        assert_eq!(timeline(&snap(vec![], 5_000_000)), None);
    }

    #[test]
    fn rates_per_interval_with_a_gap_and_a_partial_last_interval() {
        let s = snap(
            vec![
                iv(0, 100, 0, &[1_000; 100]),
                // index 1 missing: a stall, nothing completed
                iv(2, 50, 5, &[2_000, 4_000]),
            ],
            2_500_000,
        );
        let t = timeline(&s).unwrap();
        assert_eq!(t.slices.len(), 3);
        assert_eq!(t.slices[0].rps, 100.0);
        assert_eq!(t.slices[0].p50, Some(1.0));
        assert_eq!(t.slices[1].rps, 0.0);
        assert_eq!(t.slices[1].p95, None);
        // The last interval covers 0.5 s of the 2.5 s run.
        assert_eq!(t.slices[2].t, 2.5);
        assert_eq!(t.slices[2].rps, 100.0);
        assert_eq!(t.slices[2].errors_per_sec, 10.0);
        assert!(t.slices[2].p99.unwrap() >= 3.99);
    }

    #[test]
    fn the_spectrum_follows_the_histogram_up_to_its_resolution() {
        let mut h = new_latency();
        // 990 fast samples at 1 ms and 10 slow ones at 100 ms.
        (0..990).for_each(|_| record(&mut h, 1_000));
        (0..10).for_each(|_| record(&mut h, 100_000));
        let sp = spectrum(&h, 5.0);
        // 1,000 samples reach three nines, no further.
        let last = sp.last().unwrap();
        assert!((last.0 - 99.9).abs() < 1e-6, "{last:?}");
        assert!((last.1 - 100.0).abs() < 0.1);
        assert_eq!(sp[0], (0.0, 1.0));
        let at = |p: f64| sp.iter().find(|x| (x.0 - p).abs() < 1e-6).unwrap().1;
        assert!((at(90.0) - 1.0).abs() < 0.01);
        assert!((at(99.9) - 100.0).abs() < 0.1);
        assert!(sp.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert!(spectrum(&new_latency(), 5.0).is_empty());
    }
}
