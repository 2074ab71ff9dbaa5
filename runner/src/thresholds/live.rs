//! The live judgement of `abortOnFail` thresholds while a test runs, one
//! for both the local run (`local`) and the operator's running phase.
//!
//! Each round the caller asks whether the per-interval series is due (a
//! window that a live-judged threshold reads has settled since the last
//! judged one, see [`series_due`]), merges the runners' results (with the
//! series when it is due) and hands them to [`Live::judge`], which says at
//! most once why the test must stop. Windows are judged only on a series
//! that holds every runner's results up to now: a partial series could fail
//! a window that did not fail.

use super::{Metric, Observations, Scope, Threshold, evaluate_live, live_horizon_us, series_due};
use crate::snapshot::Snapshot;

/// What a live judgement remembers between rounds.
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// Up to where (µs from the start) windows were judged on a full series;
    /// a restart (a new `Live`) judges the settled windows again.
    judged_us: u64,
    /// Set once an abort was returned.
    aborted: bool,
}

/// The merged results with the series hidden (not due, or not complete).
struct WithoutSeries<'a>(&'a Snapshot);

impl Observations for WithoutSeries<'_> {
    fn observe(&self, metric: &Metric, scope: Option<&Scope>) -> Option<f64> {
        self.0.observe(metric, scope)
    }
}

impl Live {
    /// Whether any threshold is judged live at all.
    pub fn wanted(thresholds: &[Threshold]) -> bool {
        thresholds.iter().any(|t| t.abort_on_fail)
    }

    /// Whether the series should be merged for this round, `elapsed_us`
    /// into the run.
    pub fn series_due(&self, thresholds: &[Threshold], elapsed_us: u64) -> bool {
        !self.aborted && series_due(thresholds, self.judged_us, elapsed_us)
    }

    /// Judges `merged`; `with_series` says that its series is due and holds
    /// every runner's results (then the windows it settles count as judged).
    /// Returns the reason to abort, once: "threshold \"...\" failed
    /// (observed ...)".
    pub fn judge(
        &mut self,
        thresholds: &[Threshold],
        merged: &Snapshot,
        with_series: bool,
    ) -> Option<String> {
        if self.aborted {
            return None;
        }
        let failed = if with_series {
            let elapsed_us = (merged.elapsed_secs() * 1e6) as u64;
            self.judged_us = self
                .judged_us
                .max(live_horizon_us(merged.interval_us, elapsed_us));
            evaluate_live(thresholds, merged)
        } else {
            evaluate_live(thresholds, &WithoutSeries(merged))
        }?;
        self.aborted = true;
        Some(format!(
            "threshold {:?} failed (observed {})",
            failed.source, failed.observed_text
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        histogram::{new_latency, record},
        snapshot::{Interval, Packed, RequestStats},
    };

    fn t(s: &str) -> Threshold {
        s.parse().unwrap()
    }

    /// A run `secs` long at 1 s intervals, `errors_from` on every request
    /// failing, 10 requests a second.
    fn run(secs: u64, errors_from: u64) -> Snapshot {
        let mut s = Snapshot::empty(1_000_000);
        s.runners = 1;
        s.started_us = Some(0);
        s.until_us = Some(secs * 1_000_000);
        let mut all = RequestStats::default();
        for i in 0..secs {
            let mut h = new_latency();
            (0..10).for_each(|_| record(&mut h, 1_000));
            let errors = if i >= errors_from { 10 } else { 0 };
            s.intervals.push(Interval {
                index: i,
                requests: 10,
                errors,
                latency: Packed::pack(&h),
            });
            all.latency.add(&h).unwrap();
            *all.errors
                .entry(crate::snapshot::ErrorKind::Status)
                .or_default() += errors;
        }
        s.requests.insert("a".into(), all);
        s
    }

    #[test]
    fn the_series_is_due_once_a_window_has_settled() {
        let th = [t("error_rate[each 10s] < 50% abortOnFail")];
        let mut live = Live::default();
        assert!(!live.series_due(&th, 5_000_000));
        assert!(!live.series_due(&th, 10_500_000), "within the margin");
        assert!(live.series_due(&th, 11_500_000));
        assert_eq!(live.judge(&th, &run(11, 99), true), None);
        // Judged up to 10 s: not due again until the next window settles.
        assert!(!live.series_due(&th, 15_000_000));
        assert!(live.series_due(&th, 21_000_001));
        // Nothing live-windowed: never due.
        assert!(!Live::default().series_due(&[t("p(95) < 1s abortOnFail")], 99_000_000));
    }

    #[test]
    fn a_series_that_is_not_complete_is_not_judged() {
        let th = [t("error_rate[each 10s] < 50% abortOnFail")];
        let mut live = Live::default();
        // Every request of the first window failed, but the series is not
        // every runner's: no verdict, and the window stays due.
        assert_eq!(live.judge(&th, &run(12, 0), false), None);
        assert!(live.series_due(&th, 12_000_000));
        let why = live.judge(&th, &run(12, 0), true).unwrap();
        assert!(
            why.starts_with(
                "threshold \"error_rate[each 10s] < 50% abortOnFail\" failed (observed window 0s-10s: error_rate 100.00%"
            ),
            "{why}"
        );
    }

    #[test]
    fn an_abort_is_returned_once() {
        let th = [t("error_rate < 1% abortOnFail"), t("p(95) < 1s")];
        let mut live = Live::default();
        assert_eq!(live.judge(&th, &run(3, 5), false), None);
        let failing = run(3, 1);
        let why = live.judge(&th, &failing, false).unwrap();
        assert!(
            why.starts_with("threshold \"error_rate < 1% abortOnFail\" failed (observed "),
            "{why}"
        );
        assert_eq!(live.judge(&th, &failing, false), None);
        assert!(!live.series_due(&th, 99_000_000));
        assert!(!Live::wanted(&th[1..]) && Live::wanted(&th));
    }
}
