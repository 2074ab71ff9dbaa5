//! The data behind the plots, read from a merged snapshot: throughput and
//! percentiles per interval, and the latency percentile spectrum of a
//! histogram. Pure; the drawing is in `svg`.

use barrage_runner::{histogram::Latency, snapshot::Snapshot};

/// One interval of the test (the last one may hold the run's short tail,
/// see [`timeline`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    /// Seconds from the start to the end of the slice.
    pub t: f64,
    /// Seconds of the run the slice covers: the interval's width, less for
    /// the one the run ended in.
    pub secs: f64,
    /// Requests completed in the slice, per second of `secs`.
    pub rps: f64,
    pub errors_per_sec: f64,
    /// Milliseconds; `None` when nothing completed in the slice.
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

/// A tail shorter than this part of an interval is drawn with the
/// interval before it rather than as a point of its own.
const SHORT_TAIL: f64 = 0.5;

/// Where interval `index` (of `width` seconds) lies in a run that lasted
/// `elapsed` seconds: (start, end) in seconds from the start, its end cut
/// at the end of the run. Intervals count from the start of the load (each
/// runner's from its own start, within the start skew of the others), so
/// only the one the run ended in is cut; one past the end (which no runner
/// can have filled) or a run without an end keeps its whole width.
pub fn span(index: u64, width: f64, elapsed: f64) -> (f64, f64) {
    let start = index as f64 * width;
    let end = if elapsed > start && elapsed < start + width {
        elapsed
    } else {
        start + width
    };
    (start, end)
}

/// One slice while it is built: its span, counts and histogram.
struct Raw {
    start: f64,
    end: f64,
    requests: u64,
    errors: u64,
    /// `None` without requests, or when one of its histograms did not
    /// decode (then its percentiles would be those of part of it).
    latency: Option<Latency>,
    unreadable: bool,
}

impl Raw {
    /// Adds the slice right after this one: counts and histograms add
    /// (exactly), and the two spans become one.
    fn absorb(&mut self, next: Raw) {
        self.end = next.end;
        self.requests += next.requests;
        self.errors += next.errors;
        self.unreadable |= next.unreadable;
        self.latency = match (self.latency.take(), next.latency) {
            _ if self.unreadable => None,
            (Some(mut a), Some(b)) => {
                a.add(&b).expect("auto-resizing histograms always add");
                Some(a)
            }
            (a, b) => a.or(b),
        };
    }

    fn slice(&self) -> Slice {
        let secs = self.end - self.start;
        let at = |q: f64| {
            self.latency
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
        };
        Slice {
            t: self.end,
            secs,
            rps: self.requests as f64 / secs,
            errors_per_sec: self.errors as f64 / secs,
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
        }
    }
}

/// The per-interval series, or `None` when the snapshot has none (the
/// operator drops them from reports over the ConfigMap limit).
///
/// Intervals are indexed from the start; a missing index is an interval in
/// which nothing completed: 0 req/s (a stall shows as a dip to zero) and a
/// gap in the latency lines. Every rate is a count over the seconds its
/// slice covers ([`span`]): the last interval is usually cut short by the
/// end of the run. When what is left of it is shorter than half an
/// interval (typically the responses that arrive during the graceful
/// stop, a few milliseconds) it is drawn with the interval before it, over
/// both their seconds: a handful of requests over a few milliseconds would
/// draw a spike (or a dip) that says nothing about the load. So the slices
/// tile the run: their seconds add up to its length and their requests to
/// its total, and the throughput averaged over them by their seconds is
/// the run's req/s (the status's `rps`).
pub fn timeline(s: &Snapshot) -> Option<Timeline> {
    if s.intervals.is_empty() || s.interval_us == 0 {
        return None;
    }
    let width = s.interval_us as f64 / 1e6;
    let elapsed = s.elapsed_secs();
    let last = s.intervals.iter().map(|i| i.index).max().unwrap_or(0);
    let mut unreadable = 0;
    let mut raw: Vec<Raw> = Vec::with_capacity(last as usize + 1);
    for index in 0..=last {
        let (start, end) = span(index, width, elapsed);
        let found = s
            .intervals
            .binary_search_by_key(&index, |i| i.index)
            .ok()
            .map(|i| &s.intervals[i]);
        let (requests, errors) = found.map_or((0, 0), |i| (i.requests, i.errors));
        let (latency, bad) = match found.map(|i| i.latency.unpack()) {
            Some(Ok(h)) => (Some(h), false),
            Some(Err(_)) => (None, true),
            None => (None, false),
        };
        unreadable += usize::from(bad);
        raw.push(Raw {
            start,
            end,
            requests,
            errors,
            latency,
            unreadable: bad,
        });
    }
    if raw.len() >= 2
        && raw
            .last()
            .is_some_and(|r| r.end - r.start < SHORT_TAIL * width)
    {
        let tail = raw.pop().expect("checked above");
        raw.last_mut().expect("checked above").absorb(tail);
    }
    Some(Timeline {
        interval_secs: width,
        slices: raw.iter().map(Raw::slice).collect(),
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

    /// Like the README's in-cluster example (10 s at 100 req/s) with the
    /// default 1s interval: ten whole intervals of 100, then the responses
    /// that arrived during the graceful stop, 4 in 12 ms.
    fn ten_seconds(tail_us: u64, tail: u64) -> Snapshot {
        let mut ivs: Vec<Interval> = (0..10).map(|i| iv(i, 100, 1, &[2_000; 100])).collect();
        ivs.push(iv(10, tail, 0, &vec![40_000; tail as usize]));
        let mut s = snap(ivs, 10_000_000 + tail_us);
        let mut all = barrage_runner::snapshot::RequestStats::default();
        for _ in 0..1_000 {
            record(&mut all.latency, 2_000);
        }
        for _ in 0..tail {
            record(&mut all.latency, 40_000);
        }
        s.requests.insert("a".into(), all);
        s
    }

    #[test]
    fn a_short_tail_is_drawn_with_the_interval_before_it() {
        let s = ten_seconds(12_000, 4);
        let t = timeline(&s).unwrap();
        // Ten points, not eleven: 4 requests over 12 ms would draw 333 req/s.
        assert_eq!(t.slices.len(), 10);
        assert!(
            t.slices[..9]
                .iter()
                .all(|x| x.rps == 100.0 && x.secs == 1.0)
        );
        let last = &t.slices[9];
        assert_eq!(last.t, 10.012);
        assert!((last.secs - 1.012).abs() < 1e-9);
        assert!((last.rps - 104.0 / 1.012).abs() < 1e-9, "{last:?}");
        // Its latency is of both: 4 of 104 at 40 ms reach p99.
        assert_eq!(last.p50, Some(2.0));
        assert!(last.p99.unwrap() >= 39.9);
        // A tail of half an interval or more is a point of its own, over
        // its own seconds.
        let t = timeline(&ten_seconds(600_000, 30)).unwrap();
        assert_eq!(t.slices.len(), 11);
        assert!((t.slices[10].secs - 0.6).abs() < 1e-9);
        assert!((t.slices[10].rps - 50.0).abs() < 1e-9);
    }

    #[test]
    fn a_run_shorter_than_one_interval_is_one_slice_over_its_length() {
        let t = timeline(&snap(vec![iv(0, 30, 0, &[1_000; 30])], 300_000)).unwrap();
        assert_eq!(t.slices.len(), 1);
        assert_eq!((t.slices[0].t, t.slices[0].secs), (0.3, 0.3));
        assert!((t.slices[0].rps - 100.0).abs() < 1e-9);
    }

    /// The report's throughput and the status's `rps` are one definition
    /// (requests over the seconds they cover): the slices tile the run, so
    /// their rates averaged by their seconds are the status's figure.
    #[test]
    fn the_slices_add_up_to_the_status_s_totals_and_rate() {
        for (tail_us, tail) in [(12_000, 4), (600_000, 30), (0, 0)] {
            let mut s = ten_seconds(tail_us, tail);
            if tail == 0 {
                s.intervals.pop();
            }
            let t = timeline(&s).unwrap();
            let secs: f64 = t.slices.iter().map(|x| x.secs).sum();
            let requests: f64 = t.slices.iter().map(|x| x.rps * x.secs).sum();
            assert!((secs - s.elapsed_secs()).abs() < 1e-9);
            assert!((requests - s.total_requests() as f64).abs() < 1e-6);
            let mut st = crate::crd::LoadTestStatus::default();
            crate::status::apply_results(&mut st, &s, &Default::default());
            assert!(
                (requests / secs - st.rps).abs() <= 0.05,
                "{} vs {}",
                requests / secs,
                st.rps
            );
        }
    }

    #[test]
    fn merged_intervals_keep_the_rule() {
        // The ConfigMap's halving: 2 s intervals, the tail of 12 ms in the
        // sixth (10 s to 12 s), drawn with the fifth.
        let mut s = ten_seconds(12_000, 4);
        crate::downsample::halve(&mut s);
        let t = timeline(&s).unwrap();
        assert_eq!(t.slices.len(), 5);
        assert!((t.slices[4].secs - 2.012).abs() < 1e-9);
        assert!((t.slices[4].rps - 204.0 / 2.012).abs() < 1e-9);
    }

    #[test]
    fn an_unreadable_histogram_is_not_passed_off_as_the_whole_slice_s() {
        let mut s = ten_seconds(12_000, 4);
        s.intervals[10].latency = serde_json::from_str("\"not a histogram\"").unwrap();
        let t = timeline(&s).unwrap();
        assert_eq!(t.unreadable, 1);
        assert_eq!(t.slices[9].p50, None);
        assert!((t.slices[9].rps - 104.0 / 1.012).abs() < 1e-9);
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
