//! Parsing: every metric, op and value form, and errors that name the
//! column and what was expected.

use super::*;

fn th(s: &str) -> Threshold {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn err(s: &str) -> ParseError {
    match s.parse::<Threshold>() {
        Ok(t) => panic!("{s:?} should not parse, got {t:?}"),
        Err(e) => e,
    }
}

/// Asserts the error's column and that its message contains `needle`.
fn assert_err(s: &str, column: usize, needle: &str) {
    let e = err(s);
    assert_eq!(e.column, column, "column for {s:?}: {e}");
    assert!(
        e.message.contains(needle),
        "message for {s:?} should contain {needle:?}: {e}"
    );
}

#[test]
fn parses_the_examples_from_the_plan() {
    let t = th("p(95) < 10ms for get-schema");
    assert_eq!(
        t,
        Threshold {
            source: "p(95) < 10ms for get-schema".into(),
            metric: Metric::Percentile(95.0),
            op: Op::Lt,
            value: 10_000.0,
            scope: Some(Scope::Request("get-schema".into())),
            abort_on_fail: false,
            window: None,
            baseline: None,
            is_default: false,
        }
    );
    let t = th("p(99.9) <= 1.5s abortOnFail");
    assert_eq!(
        (t.metric, t.op, t.value, t.scope, t.abort_on_fail),
        (Metric::Percentile(99.9), Op::Le, 1_500_000.0, None, true)
    );
    let t = th("error_rate < 1%");
    assert_eq!((t.metric, t.op, t.value), (Metric::ErrorRate, Op::Lt, 0.01));
    let t = th("rps > 1000");
    assert_eq!((t.metric, t.op, t.value), (Metric::Rps, Op::Gt, 1000.0));
    let t = th("avg < 20ms for register");
    assert_eq!(
        (t.metric, t.value, t.scope.as_ref().map(Scope::name)),
        (Metric::Avg, 20_000.0, Some("register"))
    );
    let t = th("max < 2s");
    assert_eq!((t.metric, t.value), (Metric::Max, 2_000_000.0));
    let t = th("requests >= 10000");
    assert_eq!(
        (t.metric, t.op, t.value),
        (Metric::Requests, Op::Ge, 10_000.0)
    );
    let t = th("dropped == 0");
    assert_eq!((t.metric, t.op, t.value), (Metric::Dropped, Op::Eq, 0.0));
}

#[test]
fn parses_every_metric() {
    let cases = [
        ("p(95) < 1ms", Metric::Percentile(95.0)),
        ("p(99.99) < 1ms", Metric::Percentile(99.99)),
        ("p(100) < 1ms", Metric::Percentile(100.0)),
        ("p(0.1) < 1ms", Metric::Percentile(0.1)),
        ("med < 1ms", Metric::Percentile(50.0)),
        ("avg < 1ms", Metric::Avg),
        ("min < 1ms", Metric::Min),
        ("max < 1ms", Metric::Max),
        ("error_rate < 0.5", Metric::ErrorRate),
        ("rps > 1", Metric::Rps),
        ("requests > 1", Metric::Requests),
        ("errors < 1", Metric::Errors),
        ("dropped < 1", Metric::Dropped),
    ];
    for (s, metric) in cases {
        assert_eq!(th(s).metric, metric, "{s}");
    }
}

#[test]
fn parses_every_op() {
    let cases = [
        ("<", Op::Lt),
        ("<=", Op::Le),
        (">", Op::Gt),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
    ];
    for (sym, op) in cases {
        assert_eq!(th(&format!("errors {sym} 3")).op, op, "{sym}");
        assert_eq!(op.to_string(), sym);
    }
}

#[test]
fn parses_every_value_form() {
    let latency = [
        ("250us", 250.0),
        ("250µs", 250.0),
        ("10ms", 10_000.0),
        ("0.5ms", 500.0),
        ("1.5s", 1_500_000.0),
        ("2m", 120_000_000.0),
        ("1h", 3_600_000_000.0),
        ("0ms", 0.0),
    ];
    for (v, us) in latency {
        assert_eq!(th(&format!("p(90) < {v}")).value, us, "{v}");
    }
    let rates = [
        ("1%", 0.01),
        ("0.5%", 0.005),
        ("100%", 1.0),
        ("0%", 0.0),
        ("0.01", 0.01),
        ("1", 1.0),
        ("0", 0.0),
    ];
    for (v, fraction) in rates {
        assert_eq!(th(&format!("error_rate <= {v}")).value, fraction, "{v}");
    }
    assert_eq!(th("rps >= 1234.5").value, 1234.5);
    assert_eq!(th("rps >= 1000/s").value, 1000.0);
    assert_eq!(th("requests == 123456789").value, 123_456_789.0);
    assert_eq!(th("errors != 0").value, 0.0);
}

#[test]
fn whitespace_is_free_around_tokens_and_clauses_come_in_either_order() {
    let canonical = th("p(95) < 10ms for get-schema abortOnFail");
    for s in [
        "p(95)<10ms for get-schema abortOnFail",
        "  p( 95 ) <\t10ms   for   get-schema   abortOnFail  ",
        "p (95) < 10ms abortOnFail for get-schema",
    ] {
        let t = th(s);
        assert_eq!(t.source, s.trim());
        assert_eq!(
            Threshold {
                source: canonical.source.clone(),
                ..t
            },
            canonical,
            "{s}"
        );
    }
    assert_eq!(th("rps>1000").value, 1000.0);
    assert_eq!(th("error_rate<1%").value, 0.01);
}

#[test]
fn names_take_the_documented_characters() {
    assert_eq!(
        th("avg < 1s for api/v1.users_get-2")
            .scope
            .as_ref()
            .map(Scope::name),
        Some("api/v1.users_get-2")
    );
}

#[test]
fn parse_error_display_and_error_trait() {
    let e = err("p(95) =< 10ms");
    assert_eq!(
        e.to_string(),
        "column 7: expected a comparison operator (<, <=, >, >=, ==, !=), found \"=<\""
    );
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.to_string().starts_with("column 7: "));
}

#[test]
fn errors_name_the_column_and_what_was_expected() {
    // Missing or wrong operator.
    assert_err(
        "p(95) 10ms",
        7,
        "expected a comparison operator (<, <=, >, >=, ==, !=), found \"10ms\"",
    );
    assert_err(
        "p(95)",
        6,
        "expected a comparison operator (<, <=, >, >=, ==, !=), found the end of the threshold",
    );
    assert_err("rps = 1000", 5, "found \"=\"");
    assert_err("rps <> 1000", 5, "found \"<>\"");
    // Bad percentiles.
    assert_err("p(0) < 1ms", 3, "greater than 0 and at most 100, found 0");
    assert_err(
        "p(101) < 1ms",
        3,
        "greater than 0 and at most 100, found 101",
    );
    assert_err(
        "p(abc) < 1ms",
        3,
        "expected a percentile between 0 and 100, as in p(95) or p(99.9), found \"abc\"",
    );
    assert_err("p( -5) < 1ms", 4, "expected a percentile");
    assert_err("p(1.2.3) < 1ms", 3, "\"1.2.3\" is not a number");
    assert_err("p95 < 1ms", 1, "did you mean \"p(95)\"");
    assert_err("p < 1ms", 3, "expected \"(\" after \"p\"");
    assert_err(
        "p(95 < 1ms",
        6,
        "expected \")\" to close \"p(\", found \"<\"",
    );
    // Values.
    assert_err("p(99) < 300", 9, "missing unit after 300");
    assert_err(
        "p(99) < 300 for x",
        9,
        "e.g. \"300ms\" (units: us, ms, s, m)",
    );
    assert!(!err("p(99) < 300 for x").message.contains("right after"));
    assert_err("p(99) < 300 ms", 9, "write the unit right after the number");
    assert_err("avg < 10sec", 9, "unknown unit \"sec\"");
    assert_err("avg < 1m30s", 9, "one number and one unit");
    assert_err(
        "avg < fast",
        7,
        "expected a duration such as 10ms or 1.5s, found \"fast\"",
    );
    assert_err("avg <", 6, "found the end of the threshold");
    assert_err("error_rate < 120%", 14, "between 0% and 100%, found 120%");
    assert_err(
        "error_rate < 5",
        14,
        "fraction between 0 and 1, found 5 (for a percentage write \"5%\")",
    );
    assert_err("error_rate < 1ms", 15, "unexpected \"ms\" after the value");
    assert_err(
        "error_rate < -1%",
        14,
        "expected a percentage such as 1% or a fraction such as 0.01, found \"-1%\"",
    );
    assert_err(
        "requests > 1.5",
        12,
        "requests is a count: expected a whole number, found 1.5",
    );
    assert_err("rps > 1k", 8, "write rps as a plain number");
    // Trailing garbage and clauses.
    assert_err(
        "rps > 1000 please",
        12,
        "unexpected \"please\"; expected \"for NAME\", \"abortOnFail\" or the end",
    );
    assert_err("p(95) < 10ms for get-schema)", 28, "unexpected \")\"");
    assert_err(
        "p(95) < 10ms abortonfail",
        14,
        "keywords are case-sensitive: write \"abortOnFail\"",
    );
    assert_err("p(95) < 10ms FOR x", 14, "write \"for\"");
    assert_err(
        "p(95) < 10ms for",
        17,
        "expected a request name after \"for\"",
    );
    assert_err(
        "p(95) < 10ms for abortOnFail",
        18,
        "expected a request name",
    );
    assert_err("p(95) < 10ms for a for b", 20, "\"for\" given twice");
    assert_err(
        "rps > 1 abortOnFail abortOnFail",
        21,
        "\"abortOnFail\" given twice",
    );
    assert_err("dropped == 0 for x", 14, "remove \"for NAME\"");
    // Metrics.
    assert_err("", 1, "empty threshold");
    assert_err("   ", 4, "empty threshold");
    assert_err("< 10ms", 1, "expected a metric (p(N), med, avg");
    assert_err(
        "latency < 10ms",
        1,
        "unknown metric \"latency\"; expected one of p(N), med, avg, min, max, error_rate, rps, requests, errors, dropped",
    );
    assert_err("errorrate < 1%", 1, "did you mean \"error_rate\"");
    assert_err("mean < 1s", 1, "did you mean \"avg\"");
    assert_err("AVG < 1s", 1, "did you mean \"avg\"");
}

#[test]
fn columns_count_characters_not_bytes() {
    // "µs" is 3 bytes; the error after it is at character column 13.
    assert_err("avg < 250µs !", 13, "unexpected \"!\"");
}

#[test]
fn suggestions_stay_quiet_for_unrelated_words() {
    assert!(!err("latency < 1s").message.contains("did you mean"));
    assert!(!err("foo < 1s").message.contains("did you mean"));
    assert_eq!(suggest_metric("dropd").as_deref(), Some("dropped"));
    assert_eq!(suggest_metric("P99.9").as_deref(), Some("p(99.9)"));
}

#[test]
fn parse_all_names_the_entry() {
    let ok = parse_all("spec.thresholds", &["rps > 1", "dropped == 0"]).unwrap();
    assert_eq!(ok.len(), 2);
    let e = parse_all(
        "spec.thresholds",
        &["rps > 1", "dropped == 0", "p(95) =< 10ms"],
    )
    .unwrap_err();
    assert_eq!(e.category(), "invalid");
    assert_eq!(
        e.to_string(),
        "spec.thresholds[2]: column 7: expected a comparison operator (<, <=, >, >=, ==, !=), found \"=<\" in \"p(95) =< 10ms\""
    );
}

#[test]
fn for_scenario_and_for_journey_select_them() {
    let scope = |s: &str| th(s).scope;
    assert_eq!(
        scope("p(95) < 500ms for scenario browse"),
        Some(Scope::Scenario("browse".into()))
    );
    assert_eq!(
        scope("p(99) < 2s for journey buy/checkout abortOnFail"),
        Some(Scope::Journey("buy/checkout".into()))
    );
    assert!(th("p(99) < 2s for journey buy/checkout abortOnFail").abort_on_fail);
    assert_eq!(
        scope("error_rate < 1% for   scenario\tbrowse"),
        Some(Scope::Scenario("browse".into()))
    );
    assert_eq!(
        scope("rps > 10 abortOnFail for scenario x"),
        Some(Scope::Scenario("x".into()))
    );
    // Alone, the words are request names.
    assert_eq!(
        scope("rps > 10 for scenario"),
        Some(Scope::Request("scenario".into()))
    );
    assert_eq!(
        scope("rps > 10 for journey abortOnFail"),
        Some(Scope::Request("journey".into()))
    );
    assert_eq!(
        scope("rps > 10 for scenario/home"),
        Some(Scope::Request("scenario/home".into()))
    );
    // The canonical form parses back to the same scope.
    for s in [
        "p(95) < 500ms for scenario browse",
        "max < 2s for journey onStart",
    ] {
        let t = th(s);
        assert_eq!(th(&t.to_string()).scope, t.scope, "{t}");
    }
}

#[test]
fn scenario_and_journey_scopes_refuse_windows_and_dropped() {
    for s in [
        "p(95)[last 1m] < 1s for scenario browse",
        "error_rate[each 1m] < 1% for journey checkout",
    ] {
        let e = err(s);
        assert!(e.message.contains("scenario or journey"), "{s}: {e}");
    }
    let e = err("dropped == 0 for scenario browse");
    assert!(e.message.contains("remove \"for NAME\""), "{e}");
    let e = err("p(95) < 1s for scenario a for journey b");
    assert!(e.message.contains("\"for\" given twice"), "{e}");
}
