//! Runs and reports built in memory, for the rendering tests.

use std::collections::BTreeMap;

use barrage_runner::{
    histogram::{new_latency, record},
    report::Report,
    snapshot::{ErrorKind, Interval, JourneyStats, Packed, RequestStats, Snapshot},
    thresholds::{self, Outcome, Threshold},
};

use super::{ReportState, Run};
use crate::crd::{LoadTestStatus, Phase};

pub const START_US: u64 = 1_700_000_000_000_000;

/// A request with `n` samples spread evenly over `lo..=hi` µs, all 200s
/// but `errors` 503s, over 10 s.
pub fn stats(n: u64, lo: u64, hi: u64, errors: u64) -> RequestStats {
    let mut r = RequestStats::default();
    for i in 0..n {
        record(
            &mut r.latency,
            lo + (hi - lo) * i / n.max(2).saturating_sub(1),
        );
    }
    r.statuses.insert(200, n - errors);
    if errors > 0 {
        r.statuses.insert(503, errors);
        r.errors.insert(ErrorKind::Status, errors);
    }
    r.first_start_us = START_US;
    r.last_end_us = START_US + 10_000_000;
    r
}

/// A finished run of 10 s with the given requests and 10 intervals.
pub fn report(requests: Vec<(&str, RequestStats)>, thresholds: Vec<Outcome>) -> Report {
    let mut s = Snapshot::empty(1_000_000);
    s.runners = 2;
    s.finished = 2;
    s.started_us = Some(START_US);
    s.until_us = Some(START_US + 10_000_000);
    s.runner_starts_us = vec![START_US, START_US + 1_200];
    s.requests = requests
        .into_iter()
        .map(|(n, r)| (n.to_string(), r))
        .collect::<BTreeMap<_, _>>();
    let total = s.stats(None).unwrap_or_default();
    let per = total.count() / 10;
    s.intervals = (0..10)
        .map(|index| {
            let mut h = new_latency();
            for i in 0..per {
                record(&mut h, 1_000 + index * 1_000 + i);
            }
            Interval {
                index,
                requests: per,
                errors: total.error_count() / 10,
                latency: Packed::pack(&h),
            }
        })
        .collect();
    Report::new(s, thresholds, None)
}

pub fn outcome(source: &str, observed: &str, passed: bool) -> Outcome {
    Outcome {
        source: source.into(),
        observed: None,
        observed_text: observed.into(),
        passed,
        abort_on_fail: false,
        default: false,
    }
}

/// A finished run whose status is what the operator writes for `report`.
pub fn run(name: &str, report: Report) -> Run {
    let mut st = LoadTestStatus::default();
    crate::status::apply_results(&mut st, &report.snapshot, &Default::default());
    st.phase = if report.passed {
        Phase::Succeeded
    } else {
        Phase::Failed
    };
    st.verdict = Some(if report.passed { "Passed" } else { "Failed" }.into());
    st.thresholds = report.thresholds.clone();
    st.report = Some(format!("{name}-report"));
    st.started_at = Some("2023-11-14T22:13:20Z".into());
    st.finished_at = Some("2023-11-14T22:13:31.123456789Z".into());
    st.message = Some(if report.passed {
        "all thresholds passed".into()
    } else {
        "thresholds failed".into()
    });
    Run {
        namespace: "team-a".into(),
        name: name.into(),
        runners: 2,
        status: Some(st),
        report: ReportState::Loaded(Box::new(report)),
    }
}

/// A typical run: two requests, one with errors.
pub fn typical(name: &str) -> Run {
    run(
        name,
        report(
            vec![
                ("checkout", stats(2_000, 5_000, 80_000, 20)),
                ("home", stats(8_000, 1_000, 20_000, 0)),
            ],
            vec![
                outcome("p(95) < 100ms", "76.2ms", true),
                outcome("error_rate < 0.1%", "0.20%", false),
            ],
        ),
    )
}

/// A run of two named scenarios, `browse` (home) and `buy` (a checkout
/// journey of two steps, 2 of its 400 passes failed), judged by a
/// threshold on each.
pub fn two_scenarios(name: &str) -> Run {
    let mut r = report(
        vec![
            ("browse/home", stats(6_000, 1_000, 20_000, 0)),
            ("buy/checkout/cart", stats(400, 5_000, 50_000, 0)),
            ("buy/checkout/pay", stats(400, 20_000, 90_000, 2)),
        ],
        Vec::new(),
    );
    let s = &mut r.snapshot;
    s.scenarios
        .insert("browse".into(), s.requests["browse/home"].clone());
    let mut buy = s.requests["buy/checkout/cart"].clone();
    buy.merge(&s.requests["buy/checkout/pay"]);
    s.scenarios.insert("buy".into(), buy);
    let mut j = JourneyStats::default();
    for i in 0..400u64 {
        j.record(
            1_200_000 + i * 1_000,
            i >= 2,
            START_US,
            START_US + 10_000_000,
        );
    }
    s.journeys.insert("buy/checkout".into(), j);
    let plan: Vec<Threshold> = [
        "p(95) < 30ms for scenario browse",
        "p(99) < 2s for journey buy/checkout",
    ]
    .iter()
    .map(|t| Threshold::parse(t).unwrap())
    .collect();
    let outcomes = thresholds::evaluate(&plan, &r.snapshot);
    // Two scenarios and one journey: the status lists them all.
    run(name, Report::new(r.snapshot, outcomes, None))
}
