//! Windowed thresholds on synthetic series: every expected figure is
//! computed here from the samples themselves (exact nearest-rank
//! percentiles, plain error and request counts), never read back from the
//! code under test.

use std::time::Duration;

use super::*;
use crate::{
    histogram::record,
    snapshot::{ErrorKind, Packed, RequestStats, Snapshot},
    thresholds::{ParseError, evaluate, evaluate_live},
};

const MIN: u64 = 60_000_000;

fn th(s: &str) -> Threshold {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

/// One sample: latency in µs and whether the request failed.
type Sample = (u64, bool);

/// A run whose interval `i` (of `width_us`) holds `samples[i]`, lasting
/// `elapsed_us`, as a merged snapshot that went through its wire form.
fn run(width_us: u64, elapsed_us: u64, samples: &[Vec<Sample>]) -> Snapshot {
    let start = 1_000_000;
    let mut s = Snapshot::empty(width_us);
    s.runners = 1;
    s.finished = 1;
    s.started_us = Some(start);
    s.until_us = Some(start + elapsed_us);
    s.runner_starts_us = vec![start];
    let mut all = RequestStats::default();
    for (i, slice) in samples.iter().enumerate() {
        if slice.is_empty() {
            continue;
        }
        let mut latency = crate::histogram::new_latency();
        for &(us, failed) in slice {
            record(&mut latency, us);
            record(&mut all.latency, us);
            if failed {
                *all.errors.entry(ErrorKind::Status).or_default() += 1;
            } else {
                *all.statuses.entry(200).or_default() += 1;
            }
        }
        s.intervals.push(Interval {
            index: i as u64,
            requests: slice.len() as u64,
            errors: slice.iter().filter(|x| x.1).count() as u64,
            latency: Packed::pack(&latency),
        });
    }
    s.requests.insert("r".into(), all);
    Snapshot::from_json(&s.to_json()).expect("the wire form decodes")
}

/// The exact nearest-rank percentile of some samples.
fn exact_percentile(samples: &[&Vec<Sample>], p: f64) -> f64 {
    let mut v: Vec<u64> = samples.iter().flat_map(|s| s.iter().map(|x| x.0)).collect();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.max(1) - 1] as f64
}

/// HdrHistogram keeps three significant digits.
fn assert_close(observed: Option<f64>, exact: f64) {
    let o = observed.expect("an observed value");
    assert!(
        (o - exact).abs() <= exact * 0.001 + 1.0,
        "observed {o}, exact {exact}"
    );
}

/// 100 requests at 1..=100 ms times `factor`.
fn ramp(factor: f64) -> Vec<Sample> {
    (1..=100)
        .map(|j| ((j as f64 * 1000.0 * factor) as u64, false))
        .collect()
}

/// 20 whole minutes (10 at base speed, 10 at `slow` times it) and a
/// 30-second tail of 10-second responses, as the graceful stop leaves.
fn drifting(slow: f64) -> Vec<Vec<Sample>> {
    let mut v: Vec<Vec<Sample>> = (0..20)
        .map(|i| ramp(if i < 10 { 1.0 } else { slow }))
        .collect();
    v.push(vec![(10_000_000, false); 50]);
    v
}

#[test]
fn last_window_against_first_window_uses_the_merged_histograms() {
    let t = th("p(95)[last 10m] <= 1.2 * p(95)[first 10m]");
    for (slow, passes) in [(1.3, false), (1.1, true)] {
        let samples = drifting(slow);
        let snap = run(MIN, 20 * MIN + 30_000_000, &samples);
        let first: Vec<_> = samples[..10].iter().collect();
        let last: Vec<_> = samples[10..20].iter().collect();
        let (p_first, p_last) = (
            exact_percentile(&first, 95.0),
            exact_percentile(&last, 95.0),
        );
        assert_eq!(p_last / p_first <= 1.2, passes, "the data is as meant");

        let o = evaluate(std::slice::from_ref(&t), &snap).remove(0);
        assert_eq!(o.passed, passes, "{o:?}");
        // The tail's 10-second responses are in no window: were they, the
        // last window's p95 would be 10s.
        assert_close(o.observed, p_last);
        assert!(
            o.observed_text.starts_with("window 10m-20m: p(95) "),
            "{}",
            o.observed_text
        );
        assert!(
            o.observed_text.contains("1.2 × p(95) "),
            "{}",
            o.observed_text
        );
        assert!(
            o.observed_text.contains(" in 0s-10m)"),
            "{}",
            o.observed_text
        );
    }
}

#[test]
fn the_whole_test_side_still_reads_the_whole_test() {
    let samples = drifting(1.3);
    let snap = run(MIN, 20 * MIN + 30_000_000, &samples);
    let every: Vec<_> = samples.iter().collect();
    let first: Vec<_> = samples[..10].iter().collect();
    let o = th("p(99) <= 50 * p(99)[first 10m]").evaluate(&snap);
    // Over the whole test the tail counts: its 10s responses are the p99
    // (50 of 2050 requests), where the first ten minutes' p99 is 99ms.
    assert_close(o.observed, exact_percentile(&every, 99.0));
    assert!(o.observed.unwrap() > 9_000_000.0);
    let limit = 50.0 * exact_percentile(&first, 99.0);
    assert!(limit < 5_000_000.0);
    assert!(!o.passed, "{o:?}");
    assert!(
        o.observed_text.starts_with("p(99) 10.0"),
        "{}",
        o.observed_text
    );
}

/// 17 whole minutes of 1000 requests and a tail; `errors_at(i)` failures
/// in minute i.
fn erring(errors_at: impl Fn(usize) -> usize) -> Vec<Vec<Sample>> {
    (0..18)
        .map(|i| {
            let n = if i == 17 { 300 } else { 1000 };
            (0..n)
                .map(|j| (1_000 + j as u64, j < errors_at(i)))
                .collect()
        })
        .collect()
}

fn error_rate(samples: &[Vec<Sample>]) -> f64 {
    let n: usize = samples.iter().map(Vec::len).sum();
    let e = samples.iter().flatten().filter(|x| x.1).count();
    e as f64 / n as f64
}

#[test]
fn each_window_judges_every_full_window_and_names_the_failing_one() {
    // Minute 12 has 115 errors; minutes 15 and 16 (a partial trailing
    // window of 5m) and the tail fail massively but belong to no window.
    let samples = erring(|i| match i {
        12 => 115,
        15 | 16 => 900,
        17 => 300,
        _ => 0,
    });
    let snap = run(MIN, 17 * MIN + 20_000_000, &samples);
    let t = th("error_rate[each 5m] < 1%");
    let o = t.evaluate(&snap);
    let expected = error_rate(&samples[10..15]);
    assert!((expected - 0.023).abs() < 1e-12);
    assert!(!o.passed);
    assert_eq!(o.observed, Some(expected));
    assert_eq!(
        o.observed_text,
        "window 10m-15m: error_rate 2.30%, limit < 1%; 1 of 3 window(s) of 5m failed"
    );

    let samples = erring(|i| match i {
        7 => 40,
        12 => 30,
        15 | 16 => 900,
        _ => 0,
    });
    let snap = run(MIN, 17 * MIN + 20_000_000, &samples);
    let o = t.evaluate(&snap);
    assert!(o.passed, "{o:?}");
    assert_eq!(o.observed, Some(error_rate(&samples[5..10])));
    assert_eq!(
        o.observed_text,
        "worst window 5m-10m: error_rate 0.80%, limit < 1%; 3 window(s) of 5m passed"
    );
}

#[test]
fn rps_per_window_divides_by_the_window_not_the_run() {
    let counts = [100usize, 100, 100, 99, 100, 100];
    let samples: Vec<Vec<Sample>> = counts.iter().map(|&n| vec![(500, false); n]).collect();
    let snap = run(1_000_000, 6_200_000, &samples);
    let o = th("rps[each 2s] >= 100").evaluate(&snap);
    assert!(!o.passed);
    assert_eq!(o.observed, Some((100.0 + 99.0) / 2.0));
    assert!(
        o.observed_text.starts_with("window 2s-4s: rps 99.5/s"),
        "{}",
        o.observed_text
    );
    assert!(o.observed_text.contains("1 of 3"), "{}", o.observed_text);
    // Counts compare between windows of one length.
    let o = th("requests[last 2s] >= requests[first 2s]").evaluate(&snap);
    assert!(o.passed, "{o:?}");
    assert_eq!(o.observed, Some(200.0));
    assert!(
        !th("requests[from 2s to 4s] >= requests[first 2s]")
            .evaluate(&snap)
            .passed
    );
}

#[test]
fn windows_the_run_did_not_cover_are_no_data_and_fail() {
    let samples: Vec<Vec<Sample>> = (0..7).map(|_| ramp(1.0)).collect();
    let snap = run(MIN, 7 * MIN + 5_000_000, &samples);
    for s in [
        "p(95)[first 10m] < 1s",
        "p(95)[last 10m] < 1s",
        "p(95)[each 10m] < 1s",
        "p(95)[from 5m to 8m] < 1s",
        "p(95) < 2 * p(95)[first 10m]",
    ] {
        let o = th(s).evaluate(&snap);
        assert!(!o.passed, "{s}: {o:?}");
        assert_eq!(o.observed, None, "{s}");
        assert!(
            o.observed_text.starts_with("no data: "),
            "{s}: {}",
            o.observed_text
        );
        assert!(
            o.observed_text.contains("covered 7m"),
            "{s}: {}",
            o.observed_text
        );
    }
    // Within the run, the same kind of window is judged.
    assert!(th("p(95)[from 5m to 7m] < 1s").evaluate(&snap).passed);
    // No series at all (results without intervals).
    let mut bare = snap.clone();
    bare.intervals.clear();
    let o = th("p(95)[first 1m] < 1s").evaluate(&bare);
    assert_eq!(
        (o.passed, o.observed_text.as_str()),
        (false, "no data: the results hold no interval series")
    );
}

#[test]
fn an_empty_window_fails_at_the_end_but_does_not_abort_live() {
    let mut samples: Vec<Vec<Sample>> = (0..4).map(|_| ramp(1.0)).collect();
    samples[2].clear();
    let snap = run(MIN, 4 * MIN + 10_000_000, &samples);
    let o = th("p(95)[each 1m] < 1s").evaluate(&snap);
    assert!(!o.passed);
    assert_eq!(
        o.observed_text,
        "window 2m-3m: no requests, limit < 1s; 1 of 4 window(s) of 1m failed"
    );
    assert_eq!(
        evaluate_live(&[th("p(95)[each 1m] < 1s abortOnFail")], &snap),
        None
    );
    // An empty window's rate is a measured 0, not missing data.
    let o = th("rps[each 1m] > 0").evaluate(&snap);
    assert_eq!((o.passed, o.observed), (false, Some(0.0)));
}

#[test]
fn live_judges_each_window_once_it_has_settled() {
    let samples = erring(|i| if i == 12 { 115 } else { 0 });
    let t = th("error_rate[each 5m] < 1% abortOnFail");
    let live_at = |elapsed: u64| {
        let snap = run(MIN, elapsed, &samples[..(elapsed / MIN) as usize + 1]);
        evaluate_live(std::slice::from_ref(&t), &snap)
    };
    // The failing window ends at 15m; runners close it on their own clocks.
    assert_eq!(live_at(14 * MIN), None);
    assert_eq!(live_at(15 * MIN + 500_000), None);
    let o = live_at(15 * MIN + LIVE_MARGIN_US).expect("settled and failed");
    assert_eq!(o.observed, Some(error_rate(&samples[10..15])));
    assert!(
        o.observed_text.starts_with("window 10m-15m"),
        "{}",
        o.observed_text
    );
    assert!(o.abort_on_fail);

    // `last` and the whole test only settle at the end.
    let snap = run(MIN, 17 * MIN, &samples[..17]);
    for s in [
        "error_rate[last 5m] < 0.1% abortOnFail",
        "error_rate[each 5m] < 0.5 * error_rate abortOnFail",
        "p(95)[each 5m] < 0.5 * p(95)[last 5m] abortOnFail",
        "error_rate < 0.5 * error_rate[first 5m] abortOnFail",
    ] {
        assert!(!th(s).evaluate(&snap).passed, "{s} fails at the end");
        assert_eq!(
            evaluate_live(&[th(s)], &snap),
            None,
            "{s} is not judged live"
        );
    }
    // Windows compared with a settled first window are judged live.
    let drift = drifting(1.3);
    let snap = run(MIN, 13 * MIN + 2_000_000, &drift[..14]);
    let t = th("p(95)[each 1m] <= 1.2 * p(95)[first 10m] abortOnFail");
    let o = evaluate_live(std::slice::from_ref(&t), &snap).expect("minutes 10-12 fail");
    assert!(o.observed_text.contains("3 of 13"), "{}", o.observed_text);
    // Before the first 10 minutes have settled, there is nothing to compare with.
    let snap = run(MIN, 10 * MIN + 500_000, &drift[..11]);
    assert_eq!(evaluate_live(std::slice::from_ref(&t), &snap), None);
    // Without a series (a live pull that left it out), nothing is judged.
    let mut bare = run(MIN, 17 * MIN, &samples[..17]);
    bare.intervals.clear();
    assert_eq!(
        evaluate_live(&[th("error_rate[each 5m] < 1% abortOnFail")], &bare),
        None
    );
}

#[test]
fn the_series_is_due_when_a_live_window_has_settled() {
    let ts: Vec<Threshold> = [
        "error_rate[each 5m] < 1% abortOnFail",
        "p(95)[last 1m] < 1s abortOnFail",
        "p(95)[each 1m] < 1s",
    ]
    .into_iter()
    .map(th)
    .collect();
    let s = 1_000_000;
    assert!(!series_due(&ts, 0, 4 * MIN));
    assert!(!series_due(&ts, 0, 5 * MIN + s / 2));
    assert!(series_due(&ts, 0, 5 * MIN + s));
    assert!(!series_due(&ts, 5 * MIN, 9 * MIN));
    assert!(series_due(&ts, 5 * MIN, 10 * MIN + 2 * s));
    // After a restart (nothing judged yet) every settled window is due.
    assert!(series_due(&ts, 0, 60 * MIN));
    let range = [th("p(95)[from 1m to 2m] < 1s abortOnFail")];
    assert!(series_due(&range, 0, 2 * MIN + s));
    assert!(!series_due(&range, 2 * MIN, 60 * MIN));
    let first = [th("p(95)[each 1h] < 2 * p(95)[first 10m] abortOnFail")];
    assert!(series_due(&first, 0, 10 * MIN + s));
    assert!(!series_due(&first, 10 * MIN, 59 * MIN));
    // Thresholds judged only at the end never ask for it.
    let end_only: Vec<Threshold> = ["p(95)[last 1m] < 1s abortOnFail", "p(95)[each 1m] < 1s"]
        .into_iter()
        .map(th)
        .collect();
    assert!(!series_due(&end_only, 0, 60 * MIN));

    assert_eq!(live_horizon_us(MIN, 5 * MIN + 3 * s / 2), 5 * MIN);
    assert_eq!(live_horizon_us(MIN, 5 * MIN + s / 2), 4 * MIN);
    assert_eq!(live_horizon_us(MIN, 0), 0);
}

// ------------------------------------------------------------- parsing

fn d(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn parses_windows_and_comparisons() {
    let t = th("p(95)[last 10m] <= 1.2 * p(95)[first 10m]");
    assert_eq!(
        (t.metric, t.window, t.op, t.value),
        (
            Metric::Percentile(95.0),
            Some(Window::Last(d(600))),
            Op::Le,
            1.2
        )
    );
    assert_eq!(
        t.baseline,
        Some(Baseline {
            metric: Metric::Percentile(95.0),
            window: Some(Window::First(d(600)))
        })
    );
    let t = th("error_rate[each 5m] < 1%");
    assert_eq!(
        (t.window, t.value, t.baseline),
        (Some(Window::Each(d(300))), 0.01, None)
    );
    let t = th("rps[each 1m] >= 100/s abortOnFail");
    assert_eq!(
        (t.window, t.value, t.abort_on_fail),
        (Some(Window::Each(d(60))), 100.0, true)
    );
    let t = th("p(99)[from 10m to 1h30m] < 300ms");
    assert_eq!(t.window, Some(Window::Range(d(600), d(5400))));
    let t = th("  p( 95 ) [ last  10m ]<=p(95)[ first 10m]  ");
    assert_eq!((t.window, t.value), (Some(Window::Last(d(600))), 1.0));
    let t = th("avg[each 1m] < 2*avg");
    assert_eq!(
        (t.value, t.baseline.as_ref().map(|b| (b.metric, b.window))),
        (2.0, Some((Metric::Avg, None)))
    );
    // Two whole-test figures compared: the tail against the median.
    let t = th("p(99) < 3 * med for r");
    assert_eq!(
        (
            t.window,
            t.baseline.map(|b| b.metric),
            t.scope.as_ref().map(Scope::name)
        ),
        (None, Some(Metric::Percentile(50.0)), Some("r"))
    );
    // Thresholds without a window are what they always were.
    let t = th("p(95) < 10ms for get-schema");
    assert!(!t.is_windowed());
    assert_eq!((t.window, t.baseline), (None, None));
}

#[test]
fn display_is_canonical_and_round_trips() {
    let cases = [
        (
            "p(95)[last 10m]<=1.2*p(95)[first 10m]",
            "p(95)[last 10m] <= 1.2 * p(95)[first 10m]",
        ),
        (
            "p(95)[last 600s] <= 1 * p(95)[first 10m]",
            "p(95)[last 10m] <= p(95)[first 10m]",
        ),
        ("error_rate[each 5m] < 0.01", "error_rate[each 5m] < 1%"),
        (
            "p(99) [from 10m to 20m] < 0.3s abortOnFail",
            "p(99)[from 10m to 20m] < 300ms abortOnFail",
        ),
        ("med[each 90s] < 1s", "p(50)[each 1m30s] < 1s"),
        ("rps[each 1m] >= 0.5 * rps", "rps[each 1m] >= 0.5 * rps"),
    ];
    for (input, canonical) in cases {
        let t = th(input);
        assert_eq!(t.to_string(), canonical, "{input}");
        let back = th(canonical);
        assert_eq!(
            Threshold {
                source: t.source.clone(),
                ..back
            },
            t,
            "{input}"
        );
    }
}

fn err(s: &str, limits: Option<&Limits>) -> ParseError {
    match Threshold::parse_with(s, limits) {
        Ok(t) => panic!("{s:?} should not parse, got {t:?}"),
        Err(e) => e,
    }
}

fn assert_err(s: &str, limits: Option<&Limits>, column: usize, needle: &str) {
    let e = err(s, limits);
    assert_eq!(e.column, column, "column for {s:?}: {e}");
    assert!(
        e.message.contains(needle),
        "message for {s:?} should contain {needle:?}: {e}"
    );
}

#[test]
fn window_syntax_errors_name_the_column() {
    assert_err(
        "p(95)[next 10m] < 1s",
        None,
        7,
        "expected first, last, each or from inside \"[ ]\"",
    );
    assert_err(
        "p(95)[Last 10m] < 1s",
        None,
        7,
        "keywords are case-sensitive: write \"last\"",
    );
    assert_err(
        "p(95)[last] < 1s",
        None,
        11,
        "expected a duration such as 5m or 30s, found \"]\"",
    );
    assert_err("p(95)[last 10] < 1s", None, 12, "missing unit after 10");
    assert_err(
        "p(95)[last 10m < 1s",
        None,
        16,
        "expected \"]\" to close the window, found \"<\"",
    );
    assert_err(
        "p(95)[each 0s] < 1s",
        None,
        12,
        "a window must be longer than 0",
    );
    assert_err(
        "p(95)[from 20m to 10m] < 1s",
        None,
        19,
        "must end after it starts",
    );
    assert_err(
        "p(95)[from 1m until 2m] < 1s",
        None,
        15,
        "expected \"to\" after \"from 1m\"",
    );
    assert_err(
        "dropped[each 1m] == 0",
        None,
        8,
        "dropped is not kept per interval",
    );
    assert_err(
        "p(95)[each 1m] < 1s for api",
        None,
        21,
        "remove \"for NAME\"",
    );
    assert_err(
        "p(95) < p(95)[last 1m] for api",
        None,
        24,
        "remove \"for NAME\"",
    );
    assert_err(
        "p(95)[last 10m] < 1.2 * p(95)[each 5m]",
        None,
        30,
        "the right side is one figure",
    );
    assert_err(
        "p(95)[last 10m] < 1.2 * error_rate[first 10m]",
        None,
        25,
        "cannot compare p(95) (a latency) with error_rate (a fraction)",
    );
    assert_err(
        "requests[last 5m] >= 0.9 * requests[first 10m]",
        None,
        28,
        "only compares between windows of the same length; compare rps",
    );
    assert_err(
        "errors <= 2 * errors",
        None,
        15,
        "only compares between windows",
    );
    assert_err("p(95) < 0 * p(50)", None, 9, "greater than 0, found \"0\"");
    assert_err(
        "p(95) < 1.2 * 10ms",
        None,
        15,
        "expected a metric after \"*\"",
    );
    // A value that is not a metric still gets the value's message.
    assert_err(
        "avg < fast",
        None,
        7,
        "expected a duration such as 10ms or 1.5s",
    );
}

#[test]
fn windows_must_fit_the_plan() {
    let plan = Limits {
        interval: d(20),
        interval_is_default: false,
        length: Some(d(600)),
    };
    let p = Some(&plan);
    assert_err(
        "p(95)[each 45s] < 1s",
        p,
        12,
        "45s is not a whole number of reportInterval (20s): windows are made of whole intervals; use 40s or 1m, or set reportInterval to 5s",
    );
    assert_err(
        "p(95)[last 10s] < 1s",
        p,
        12,
        "use 20s, or set reportInterval to 10s",
    );
    assert_err(
        "p(95)[last 15m] < 1s",
        p,
        12,
        "the window (15m) is longer than the test (10m",
    );
    assert_err(
        "p(95)[from 5m to 11m] < 1s",
        p,
        18,
        "ends at 11m, after the end of the test (10m",
    );
    assert_err(
        "p(95)[from 30s to 2m] < 1s",
        p,
        12,
        "30s is not a whole number",
    );
    assert_err(
        "p(95) < 2 * p(95)[first 50s]",
        p,
        25,
        "50s is not a whole number",
    );
    let default = Limits {
        interval: d(10),
        interval_is_default: true,
        length: None,
    };
    assert_err(
        "error_rate[each 15s] < 1%",
        Some(&default),
        17,
        "reportInterval (10s, the default for the test's length)",
    );
    // Fitting windows parse; with no fixed length (iterations), any length.
    for s in [
        "p(95)[each 40s] < 1s",
        "p(95)[last 10m] < 1s",
        "p(95)[from 0s to 10m] < 1s",
        "p(95)[each 1m] <= 1.5 * p(95)[first 2m]",
    ] {
        Threshold::parse_with(s, p).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    Threshold::parse_with("p(95)[first 10h] < 1s", Some(&default)).unwrap();
    // Without a plan only sense is checked.
    th("p(95)[each 45s] < 1s");
}
