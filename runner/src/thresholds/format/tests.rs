//! The canonical form parses back exactly; observed values read well.

use super::*;
use crate::thresholds::Scope;

fn th(s: &str) -> Threshold {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

#[test]
fn display_is_canonical() {
    let cases = [
        ("p(95)<10ms for get-schema", "p(95) < 10ms for get-schema"),
        ("med < 1500ms", "p(50) < 1.5s"),
        ("p(99.9) <= 1.5s abortOnFail", "p(99.9) <= 1.5s abortOnFail"),
        ("max < 90s", "max < 1.5m"),
        ("min > 250us", "min > 250us"),
        ("max < 1.2345s", "max < 1234.5ms"),
        ("avg < 0.0005s", "avg < 500us"),
        ("avg < 0ms", "avg < 0ms"),
        ("error_rate < 0.01", "error_rate < 1%"),
        ("error_rate < 0.5%", "error_rate < 0.5%"),
        ("rps > 1000/s", "rps > 1000"),
        ("requests >= 10000", "requests >= 10000"),
        ("dropped == 0", "dropped == 0"),
        (
            "errors != 3 abortOnFail for x",
            "errors != 3 for x abortOnFail",
        ),
    ];
    for (input, canonical) in cases {
        assert_eq!(th(input).to_string(), canonical, "{input}");
    }
}

#[test]
fn display_round_trips() {
    let inputs = [
        "p(95) < 10ms for get-schema",
        "p(99.9) <= 1.5s abortOnFail",
        "med >= 0.1ms",
        "avg < 0.3ms",
        "avg < 1.234567s",
        "max != 7.000001s",
        "min == 0.000001s",
        "p(33.333) > 333.3333ms",
        "error_rate < 0.003",
        "error_rate < 0.0033333",
        "error_rate < 33.3333%",
        "error_rate > 0.1%",
        "rps > 0.3",
        "requests >= 9007199254740993",
        "dropped == 0",
    ];
    for input in inputs {
        let t = th(input);
        let canonical = t.to_string();
        let back = th(&canonical);
        assert_eq!(
            back,
            Threshold {
                source: canonical.clone(),
                ..t
            },
            "{input} -> {canonical}"
        );
        assert_eq!(back.to_string(), canonical);
    }
    // Every formatted value parses back to the same f64, exactly.
    for i in 0..2000u32 {
        let v = f64::from(i) * 0.37 + f64::from(i % 7) / 3.0;
        let latency = th(&format!("avg < {}", Metric::Avg.format_value(v)));
        assert_eq!(latency.value, v, "latency {v}");
        let fraction = v / 1000.0;
        if fraction <= 1.0 {
            let rate = th(&format!(
                "error_rate < {}",
                Metric::ErrorRate.format_value(fraction)
            ));
            assert_eq!(rate.value, fraction, "error_rate {fraction}");
        }
    }
}

#[test]
fn observed_formatting() {
    assert_eq!(Metric::Avg.format_observed(850.0), "850us");
    assert_eq!(Metric::Avg.format_observed(12_345.0), "12.3ms");
    assert_eq!(Metric::Avg.format_observed(1_200_000.0), "1.20s");
    assert_eq!(Metric::Avg.format_observed(150_000_000.0), "2.5m");
    assert_eq!(Metric::ErrorRate.format_observed(0.0052), "0.52%");
    assert_eq!(Metric::Rps.format_observed(1234.49), "1234.5/s");
    assert_eq!(Metric::Dropped.format_observed(42.0), "42");
}

#[test]
fn threshold_serde_is_the_string_form() {
    let list: Vec<Threshold> =
        serde_json::from_str(r#"["p(95)<10ms for a", "dropped == 0"]"#).unwrap();
    assert_eq!(list[0].scope.as_ref().map(Scope::name), Some("a"));
    assert_eq!(
        serde_json::to_string(&list).unwrap(),
        r#"["p(95)<10ms for a","dropped == 0"]"#
    );
    let built = Threshold {
        source: String::new(),
        ..list[1].clone()
    };
    assert_eq!(serde_json::to_string(&built).unwrap(), r#""dropped == 0""#);
    let e = serde_json::from_str::<Threshold>(r#""rps >> 1""#).unwrap_err();
    assert!(
        e.to_string()
            .contains("column 5: expected a comparison operator"),
        "{e}"
    );
}
