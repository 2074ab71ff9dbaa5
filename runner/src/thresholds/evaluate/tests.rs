//! Judging: each op, no data, live aborts, the default threshold.

use super::*;
use crate::thresholds::{Metric, Scope, Threshold};

/// The default joins any plan whose own thresholds do not bound the
/// errors of all requests; `[]` means none at all.
#[test]
fn the_default_joins_plans_that_do_not_bound_errors() {
    let sources = |l: Option<&[&str]>| {
        let owned: Option<Vec<String>> = l.map(|l| l.iter().map(|s| s.to_string()).collect());
        plan_sources(owned.as_deref())
            .into_iter()
            .map(|(s, d)| (s.to_string(), d))
            .collect::<Vec<_>>()
    };
    let with_default = |own: &[&str]| {
        let mut v: Vec<_> = own.iter().map(|s| (s.to_string(), false)).collect();
        v.push((DEFAULT.to_string(), true));
        v
    };
    assert_eq!(sources(None), with_default(&[]));
    assert_eq!(sources(Some(&[])), vec![]);
    for own in [
        &["p(95) < 10ms"][..],
        &["error_rate < 5% for a"],
        &["error_rate > 1%"],
        &["rps > 100", "p(99) < 1s"],
    ] {
        assert_eq!(sources(Some(own)), with_default(own), "{own:?}");
    }
    for own in [
        &["p(95) < 10ms", "error_rate < 5%"][..],
        &["errors == 0"],
        &["errors <= 3"],
        &["error_rate[each 1m] < 2%"],
    ] {
        let mine: Vec<_> = own.iter().map(|s| (s.to_string(), false)).collect();
        assert_eq!(sources(Some(own)), mine, "{own:?}");
    }
}

fn th(s: &str) -> Threshold {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

/// Figures by metric and scope as written after `for` ("a", "scenario b").
struct Fake(Vec<(Metric, Option<&'static str>, f64)>);

impl Observations for Fake {
    fn observe(&self, metric: &Metric, scope: Option<&Scope>) -> Option<f64> {
        let scope = scope.map(ToString::to_string);
        self.0
            .iter()
            .find(|(m, s, _)| m == metric && *s == scope.as_deref())
            .map(|&(_, _, v)| v)
    }
}

#[test]
fn evaluate_checks_each_op() {
    let cases = [
        ("<", 9.0, true),
        ("<", 10.0, false),
        ("<=", 10.0, true),
        ("<=", 11.0, false),
        (">", 11.0, true),
        (">", 10.0, false),
        (">=", 10.0, true),
        (">=", 9.0, false),
        ("==", 10.0, true),
        ("==", 9.0, false),
        ("!=", 9.0, true),
        ("!=", 10.0, false),
    ];
    for (op, observed, passed) in cases {
        let count = th(&format!("requests {op} 10"));
        let obs = Fake(vec![(Metric::Requests, None, observed)]);
        let outcome = &evaluate(std::slice::from_ref(&count), &obs)[0];
        assert_eq!(outcome.passed, passed, "requests {op} 10 with {observed}");
        assert_eq!(outcome.observed, Some(observed));

        let latency = th(&format!("p(95) {op} 10ms for api"));
        let obs = Fake(vec![(
            Metric::Percentile(95.0),
            Some("api"),
            observed * 1000.0,
        )]);
        assert_eq!(
            latency.evaluate(&obs).passed,
            passed,
            "p(95) {op} 10ms with {observed}ms"
        );
    }
}

#[test]
fn evaluate_reports_in_order_with_readable_observations() {
    let thresholds: Vec<Threshold> = [
        "p(95) < 10ms for get-schema",
        "error_rate < 1%",
        "rps > 1000",
        "max < 2s",
        "errors == 0",
    ]
    .into_iter()
    .map(th)
    .collect();
    let obs = Fake(vec![
        (Metric::Percentile(95.0), Some("get-schema"), 12_345.0),
        (Metric::ErrorRate, None, 0.0052),
        (Metric::Rps, None, 1234.5),
        (Metric::Max, None, 1_200_000.0),
        (Metric::Errors, None, 3.0),
    ]);
    let outcomes = evaluate(&thresholds, &obs);
    let summary: Vec<(&str, bool, &str)> = outcomes
        .iter()
        .map(|o| (o.source.as_str(), o.passed, o.observed_text.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("p(95) < 10ms for get-schema", false, "12.3ms"),
            ("error_rate < 1%", true, "0.52%"),
            ("rps > 1000", true, "1234.5/s"),
            ("max < 2s", true, "1.20s"),
            ("errors == 0", false, "3"),
        ]
    );
    assert_eq!(
        outcomes[0].to_string(),
        "p(95) < 10ms for get-schema: FAILED (observed 12.3ms)"
    );
    assert_eq!(
        outcomes[1].to_string(),
        "error_rate < 1%: passed (observed 0.52%)"
    );
}

#[test]
fn no_data_fails_except_unscoped_counts() {
    let thresholds: Vec<Threshold> = [
        "p(95) < 10ms for never-ran",
        "avg < 1s",
        "error_rate < 1%",
        "rps >= 0",
        "dropped == 0",
        "errors < 1",
        "requests == 0",
        "requests >= 1",
        "errors == 0 for never-ran",
    ]
    .into_iter()
    .map(th)
    .collect();
    let outcomes = evaluate(&thresholds, &Fake(vec![]));
    let summary: Vec<(bool, Option<f64>, &str)> = outcomes
        .iter()
        .map(|o| (o.passed, o.observed, o.observed_text.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (false, None, "no data"),
            (false, None, "no data"),
            (false, None, "no data"),
            (false, None, "no data"),
            (true, Some(0.0), "0"),
            (true, Some(0.0), "0"),
            (true, Some(0.0), "0"),
            (false, Some(0.0), "0"),
            (false, None, "no data"),
        ]
    );
}

#[test]
fn nan_counts_as_no_data() {
    let obs = Fake(vec![(Metric::Avg, None, f64::NAN)]);
    let outcome = th("avg != 1ms").evaluate(&obs);
    assert_eq!((outcome.passed, outcome.observed), (false, None));
    assert_eq!(evaluate_live(&[th("avg != 1ms abortOnFail")], &obs), None);
}

#[test]
fn evaluate_live_only_considers_abort_on_fail() {
    let thresholds: Vec<Threshold> = [
        "p(99) < 100ms",
        "error_rate < 1% abortOnFail",
        "p(95) < 10ms for missing abortOnFail",
        "max < 1s abortOnFail",
        "rps > 1000 abortOnFail",
    ]
    .into_iter()
    .map(th)
    .collect();
    let healthy = Fake(vec![
        (Metric::Percentile(99.0), None, 500_000.0), // fails, but not abortOnFail
        (Metric::ErrorRate, None, 0.001),
        (Metric::Max, None, 900_000.0),
        (Metric::Rps, None, 2000.0),
    ]);
    assert_eq!(evaluate_live(&thresholds, &healthy), None);

    let failing = Fake(vec![
        (Metric::ErrorRate, None, 0.001),
        (Metric::Max, None, 1_500_000.0),
        (Metric::Rps, None, 10.0),
    ]);
    let outcome = evaluate_live(&thresholds, &failing).expect("max < 1s fails first");
    assert_eq!(
        outcome,
        Outcome {
            source: "max < 1s abortOnFail".into(),
            observed: Some(1_500_000.0),
            observed_text: "1.50s".into(),
            passed: false,
            abort_on_fail: true,
            default: false,
        }
    );
}

#[test]
fn evaluate_live_aborts_on_counts_only_when_final() {
    let obs = Fake(vec![
        (Metric::Requests, None, 50.0),
        (Metric::Errors, None, 10.0),
        (Metric::Dropped, None, 1.0),
    ]);
    let live = |s: &str| evaluate_live(&[th(s)], &obs).map(|o| o.observed);
    // Upper bounds exceeded: counts only grow, so this is final.
    assert_eq!(live("errors < 10 abortOnFail"), Some(Some(10.0)));
    assert_eq!(live("errors <= 9 abortOnFail"), Some(Some(10.0)));
    assert_eq!(live("dropped == 0 abortOnFail"), Some(Some(1.0)));
    // Not reached yet: decided at the end.
    assert_eq!(live("requests >= 10000 abortOnFail"), None);
    assert_eq!(live("requests > 10000 abortOnFail"), None);
    assert_eq!(live("requests == 100 abortOnFail"), None);
    assert_eq!(live("errors != 10 abortOnFail"), None);
    // The same thresholds do fail at the end.
    assert!(!th("requests >= 10000 abortOnFail").evaluate(&obs).passed);
    // Live, no data is not a failure; at the end it is.
    assert_eq!(live("errors < 1 for nothing abortOnFail"), None);
    assert_eq!(live("avg < 1ms abortOnFail"), None);
}

#[test]
fn outcome_serializes_camel_case() {
    let outcome = th("p(95) < 10ms abortOnFail").evaluate(&Fake(vec![(
        Metric::Percentile(95.0),
        None,
        8_000.0,
    )]));
    let json = serde_json::to_value(&outcome).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "source": "p(95) < 10ms abortOnFail",
            "observed": 8000.0,
            "observedText": "8.0ms",
            "passed": true,
            "abortOnFail": true,
        })
    );
    let back: Outcome = serde_json::from_value(json).unwrap();
    assert_eq!(back, outcome);
}
