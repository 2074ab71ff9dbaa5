//! The final report as the ConfigMap keeps it. A soak test of hours holds
//! thousands of per-interval histograms, more than a ConfigMap takes; rather
//! than lose the series, adjacent intervals are merged (exactly: counts add,
//! histograms add) into intervals twice as wide, as often as needed to fit.
//! The thresholds were judged before, on the full-resolution series.

use barrage_runner::{
    report::Report,
    snapshot::{Interval, Snapshot},
    thresholds::{self, Threshold},
};

/// Judges the thresholds on the full-resolution `merged` results, then
/// writes the report as JSON of at most `max` bytes where it can: the
/// returned report is the full one (for the status), the JSON the one to
/// keep.
pub fn final_report(
    plan: &[Threshold],
    merged: Snapshot,
    stopped: Option<String>,
    max: usize,
) -> (Report, String) {
    let outcomes = thresholds::evaluate(plan, &merged);
    let report = Report::new(merged, outcomes, stopped);
    let json = fit(&report, max);
    (report, json)
}

/// The report as JSON within `max` bytes if the series can be made to fit:
/// its intervals are merged in pairs until it does, the width kept in
/// `snapshot.intervalUs` and the recorded one in `recordedIntervalUs`. When
/// even a single interval is too many (histograms of very many request
/// names), the scenarios' and journeys' histograms go first (their figures
/// stay in the summary), then the series, rather than the report.
pub fn fit(report: &Report, max: usize) -> String {
    let json = to_json(report);
    if json.len() <= max {
        return json;
    }
    let mut slim = report.clone();
    slim.recorded_interval_us = Some(report.snapshot.interval_us);
    while slim.snapshot.intervals.len() > 1 {
        halve(&mut slim.snapshot);
        let json = to_json(&slim);
        if json.len() <= max {
            return json;
        }
    }
    slim.snapshot.scenarios.clear();
    slim.snapshot.journeys.clear();
    let json = to_json(&slim);
    if json.len() <= max {
        return json;
    }
    slim.snapshot.intervals.clear();
    slim.recorded_interval_us = None;
    to_json(&slim)
}

/// Merges intervals `2j` and `2j+1` into interval `j` of twice the width.
pub fn halve(s: &mut Snapshot) {
    let mut out: Vec<Interval> = Vec::with_capacity(s.intervals.len().div_ceil(2));
    for iv in s.intervals.drain(..) {
        let index = iv.index / 2;
        match out.last_mut() {
            Some(last) if last.index == index => last.absorb(&iv),
            _ => out.push(Interval { index, ..iv }),
        }
    }
    s.intervals = out;
    s.interval_us *= 2;
}

fn to_json(r: &Report) -> String {
    serde_json::to_string(r).expect("reports serialize")
}

#[cfg(test)]
mod tests {
    use barrage_runner::{
        histogram::{Latency, new_latency, record},
        snapshot::{Packed, RequestStats},
    };

    use super::*;

    const SECOND: u64 = 1_000_000;

    /// Interval `index` holding `n` requests of latency `base + k` µs.
    fn interval(index: u64, n: u64, base: u64) -> (Interval, Latency) {
        let mut h = new_latency();
        for k in 0..n {
            record(&mut h, base + k * 7);
        }
        let iv = Interval {
            index,
            requests: n,
            errors: index % 3,
            latency: Packed::pack(&h),
        };
        (iv, h)
    }

    /// A run of `len` one-second intervals (some indexes left out: no
    /// requests then), with its totals.
    fn run(len: u64, gaps: &[u64]) -> (Snapshot, Latency) {
        let mut s = Snapshot::empty(SECOND);
        s.runners = 1;
        s.started_us = Some(SECOND);
        s.until_us = Some(SECOND + len * SECOND);
        let mut all = RequestStats::default();
        let mut series = new_latency();
        for i in (0..len).filter(|i| !gaps.contains(i)) {
            let (iv, h) = interval(i, 20 + i % 5, 1_000 + i * 100);
            all.latency.add(&h).unwrap();
            series.add(&h).unwrap();
            s.intervals.push(iv);
        }
        *all.statuses.entry(200).or_default() = all.latency.len();
        s.requests.insert("r".into(), all);
        (s, series)
    }

    fn merged_latency(ivs: &[Interval]) -> Latency {
        let mut h = new_latency();
        for iv in ivs {
            h.add(iv.latency.unpack().unwrap()).unwrap();
        }
        h
    }

    #[test]
    fn halving_merges_neighbours_exactly() {
        let (mut s, _) = run(5, &[]);
        let before = s.intervals.clone();
        halve(&mut s);
        assert_eq!(s.interval_us, 2 * SECOND);
        let indexes: Vec<u64> = s.intervals.iter().map(|i| i.index).collect();
        assert_eq!(indexes, [0, 1, 2]);
        for (j, iv) in s.intervals.iter().enumerate() {
            let pair: Vec<Interval> = before
                .iter()
                .filter(|b| b.index / 2 == j as u64)
                .cloned()
                .collect();
            assert_eq!(iv.requests, pair.iter().map(|p| p.requests).sum::<u64>());
            assert_eq!(iv.errors, pair.iter().map(|p| p.errors).sum::<u64>());
            assert_eq!(iv.latency.unpack().unwrap(), merged_latency(&pair), "{j}");
        }
    }

    #[test]
    fn halving_keeps_gaps_where_both_halves_were_empty() {
        let (mut s, _) = run(8, &[2, 3, 5]);
        halve(&mut s);
        let seen: Vec<(u64, u64)> = s.intervals.iter().map(|i| (i.index, i.requests)).collect();
        // 0+1, (2, 3 empty), 4 alone, 6+7.
        assert_eq!(seen, [(0, 20 + 21), (2, 24), (3, 21 + 22)]);
    }

    #[test]
    fn a_long_series_is_downsampled_until_the_report_fits() {
        let (s, series) = run(600, &[17]);
        let report = Report::new(s, Vec::new(), None);
        let full = to_json(&report).len();
        let max = full / 3;
        let json = fit(&report, max);
        assert!(json.len() <= max, "{} > {max}", json.len());
        let kept: Report = serde_json::from_str(&json).unwrap();
        let width = kept.snapshot.interval_us;
        assert_eq!(kept.recorded_interval_us, Some(SECOND));
        assert!(width >= 2 * SECOND);
        let factor = width / SECOND;
        assert!(factor.is_power_of_two(), "{factor}");
        // Nothing lost: the same requests and the same latencies, in
        // 600 / factor intervals (rounded up).
        let ivs = &kept.snapshot.intervals;
        assert_eq!(ivs.len() as u64, 600_u64.div_ceil(factor));
        assert_eq!(
            ivs.iter().map(|i| i.requests).sum::<u64>(),
            report
                .snapshot
                .intervals
                .iter()
                .map(|i| i.requests)
                .sum::<u64>()
        );
        assert_eq!(merged_latency(ivs), series);
        assert_eq!(kept.summary, report.summary);
        // The finest width that fits: half of it would not.
        let mut finer = report.clone();
        while finer.snapshot.interval_us < width / 2 {
            halve(&mut finer.snapshot);
        }
        assert!(to_json(&finer).len() > max);
    }

    #[test]
    fn a_report_that_fits_is_kept_as_it_is() {
        let (s, _) = run(30, &[]);
        let report = Report::new(s, Vec::new(), None);
        let json = fit(&report, 900 * 1024);
        assert_eq!(json, to_json(&report));
        assert!(!json.contains("recordedIntervalUs"));
    }

    #[test]
    fn when_even_one_interval_is_too_many_the_series_goes() {
        let (s, _) = run(10, &[]);
        let report = Report::new(s, Vec::new(), None);
        let json = fit(&report, 100);
        let kept: Report = serde_json::from_str(&json).unwrap();
        assert!(kept.snapshot.intervals.is_empty());
        assert_eq!(kept.recorded_interval_us, None);
        assert_eq!(kept.summary, report.summary);
    }

    #[test]
    fn scenario_and_journey_histograms_go_before_the_series_but_their_figures_stay() {
        let (mut s, _) = run(4, &[]);
        let r = s.requests["r"].clone();
        for i in 0..300 {
            s.scenarios.insert(format!("scenario-{i}"), r.clone());
            let mut j = barrage_runner::snapshot::JourneyStats::default();
            j.record(1_000 + i, true, 0, 1);
            s.journeys.insert(format!("journey-{i}"), j);
        }
        let report = Report::new(s, Vec::new(), None);
        let whole = to_json(&report).len();
        let mut bare = report.clone();
        bare.snapshot.scenarios.clear();
        bare.snapshot.journeys.clear();
        let max = to_json(&bare).len() + 10;
        assert!(whole > max);
        let json = fit(&report, max);
        assert!(json.len() <= max, "{} > {max}", json.len());
        let kept: Report = serde_json::from_str(&json).unwrap();
        assert!(kept.snapshot.scenarios.is_empty() && kept.snapshot.journeys.is_empty());
        assert!(!kept.snapshot.intervals.is_empty());
        assert_eq!(kept.summary, report.summary);
        assert_eq!(kept.summary.scenarios.len(), 300);
        assert_eq!(kept.summary.journeys.len(), 300);
    }

    #[test]
    fn thresholds_judge_the_full_resolution_series() {
        // One bad second (index 7) among fast ones: only one-second windows
        // see it whole, and they exist only before downsampling.
        let (mut s, _) = run(600, &[]);
        let (bad, _) = interval(7, 20, 900_000);
        s.intervals[7] = bad;
        let plan: Vec<Threshold> = ["p(50)[each 1s] < 500ms", "p(50)[first 1s] < 500ms"]
            .into_iter()
            .map(|t| t.parse().unwrap())
            .collect();
        let small = to_json(&Report::new(s.clone(), Vec::new(), None)).len() / 4;
        let (report, json) = final_report(&plan, s, None, small);
        let each = &report.thresholds[0];
        assert!(!each.passed);
        assert!(
            each.observed_text.starts_with("window 7s-8s: "),
            "{}",
            each.observed_text
        );
        assert!(report.thresholds[1].passed);
        // The full report stays full; the kept one is coarser but carries
        // the same verdicts.
        assert_eq!(report.snapshot.interval_us, SECOND);
        let kept: Report = serde_json::from_str(&json).unwrap();
        assert!(kept.snapshot.interval_us > SECOND);
        assert_eq!(kept.thresholds, report.thresholds);
        assert!(!kept.passed);
    }
}
