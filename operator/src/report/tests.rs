//! Tests of the report's shared parts: references, the report's format
//! version, the notes on what is (not) shown, figures for people.

use super::*;

#[test]
fn refs_take_the_default_namespace_or_their_own() {
    assert_eq!(
        parse_ref("a", "ns", "A").unwrap(),
        ("ns".to_string(), "a".to_string())
    );
    assert_eq!(
        parse_ref("other/b", "ns", "B").unwrap(),
        ("other".to_string(), "b".to_string())
    );
    for bad in ["", "ns/", "/b", "a/b/c"] {
        let e = parse_ref(bad, "ns", "B").unwrap_err().to_string();
        assert!(e.starts_with("B: "), "{e}");
    }
}

#[test]
fn reports_of_another_format_version_are_refused_clearly() {
    let r = testdata::typical("a").loaded().unwrap().clone();
    let mut v: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(parse_report(&v.to_string()).unwrap(), r);
    v["version"] = (FORMAT_VERSION + 1).into();
    let e = parse_report(&v.to_string()).unwrap_err();
    assert!(e.contains("format version"), "{e}");
    let e = parse_report("{}").unwrap_err();
    assert!(e.contains("not a report"), "{e}");
}

#[test]
fn notes_say_what_is_missing() {
    let mut run = testdata::typical("a");
    assert!(run.notes().is_empty(), "{:?}", run.notes());
    run.report = ReportState::Missing {
        config_map: "a-report".into(),
    };
    assert!(run.notes()[0].contains("a-report is missing"));
    if let Some(st) = run.status.as_mut() {
        st.phase = Phase::Running;
    }
    run.report = ReportState::NotYet;
    assert!(run.notes()[0].contains("not finished yet (phase Running)"));
    run.status = None;
    assert!(run.notes()[0].contains("no status yet"));
    let mut slim = testdata::typical("b");
    if let ReportState::Loaded(r) = &mut slim.report {
        r.snapshot.intervals.clear();
    }
    assert!(slim.notes()[0].contains("no per-interval series"));
    let mut merged = testdata::typical("c");
    if let ReportState::Loaded(r) = &mut merged.report {
        r.recorded_interval_us = Some(1_000_000);
        r.snapshot.interval_us = 8_000_000;
    }
    assert_eq!(
        merged.notes(),
        [
            "the series over time was recorded in 1.0s intervals and merged into 8.0s ones to fit the ConfigMap"
        ]
    );
}

#[test]
fn figures_for_people() {
    assert_eq!(ms(1234.4), "1234");
    assert_eq!(ms(12.34), "12.3");
    assert_eq!(ms(1.234), "1.23");
    assert_eq!(duration(12.34), "12.3s");
    assert_eq!(duration(65.0), "1m 05s");
    assert_eq!(duration(3725.0), "1h 02m 05s");
    assert_eq!(timestamp(testdata::START_US), "2023-11-14T22:13:20Z");
    assert_eq!(
        instant("2026-11-22T23:50:58.898149689Z"),
        "2026-11-22T23:50:58Z"
    );
    assert_eq!(instant("yesterday"), "yesterday");
}
