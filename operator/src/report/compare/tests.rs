//! Tests of `compare`: the judgement of a change by its direction, the
//! comparison per request and of thresholds, and its text and HTML.

use super::*;
use crate::report::{
    Run,
    testdata::{self, outcome, report, stats},
};

#[test]
fn direction_decides_better_or_worse() {
    let t = 5.0;
    // Latency up is worse, down is better.
    assert_eq!(
        judge(Some(100.0), Some(120.0), Better::Lower, t),
        (Some(20.0), Change::Worse)
    );
    assert_eq!(
        judge(Some(100.0), Some(80.0), Better::Lower, t).1,
        Change::Better
    );
    // Throughput down is worse, up is better.
    assert_eq!(
        judge(Some(100.0), Some(90.0), Better::Higher, t),
        (Some(-10.0), Change::Worse)
    );
    assert_eq!(
        judge(Some(100.0), Some(110.0), Better::Higher, t).1,
        Change::Better
    );
    // Within the noise threshold: the same, whichever way.
    assert_eq!(
        judge(Some(100.0), Some(104.9), Better::Lower, t).1,
        Change::Same
    );
    assert_eq!(
        judge(Some(100.0), Some(95.1), Better::Higher, t).1,
        Change::Same
    );
    // Neutral figures change without a judgement.
    assert_eq!(
        judge(Some(100.0), Some(200.0), Better::Neither, t).1,
        Change::Changed
    );
    // From zero: no percentage, judged by direction; zero to zero is no change.
    assert_eq!(
        judge(Some(0.0), Some(0.01), Better::Lower, t),
        (None, Change::Worse)
    );
    assert_eq!(
        judge(Some(0.0), Some(0.0), Better::Lower, t),
        (Some(0.0), Change::Same)
    );
    assert_eq!(
        judge(None, Some(1.0), Better::Lower, t),
        (None, Change::Unknown)
    );
    // The threshold is a flag: 25% is noise at 30%.
    assert_eq!(
        judge(Some(100.0), Some(125.0), Better::Lower, 30.0).1,
        Change::Same
    );
}

/// B: checkout got slower and failed more, home got faster.
fn two_runs() -> (Run, Run) {
    let a = testdata::run(
        "before",
        report(
            vec![
                ("checkout", stats(2_000, 5_000, 50_000, 0)),
                ("home", stats(8_000, 1_000, 20_000, 0)),
            ],
            vec![
                outcome("p(95) < 60ms", "47.8ms", true),
                outcome("error_rate < 1%", "0.00%", true),
            ],
        ),
    );
    let b = testdata::run(
        "after",
        report(
            vec![
                ("checkout", stats(2_000, 5_000, 90_000, 40)),
                ("home", stats(8_000, 1_000, 10_000, 0)),
            ],
            vec![
                outcome("p(95) < 60ms", "85.8ms", false),
                outcome("error_rate < 1%", "0.40%", true),
            ],
        ),
    );
    (a, b)
}

fn row<'a>(c: &'a Comparison, group: Option<&str>, label: &str) -> &'a Row {
    let g = c
        .groups
        .iter()
        .find(|g| g.name.as_deref() == group)
        .unwrap();
    g.rows.iter().find(|r| r.label == label).unwrap()
}

#[test]
fn per_request_changes_are_judged_and_thresholds_tracked() {
    let (a, b) = two_runs();
    let c = compare(&a, &b, 5.0);
    assert_eq!(c.groups.len(), 3);
    assert_eq!(row(&c, Some("checkout"), "p95 ms").change, Change::Worse);
    assert_eq!(
        row(&c, Some("checkout"), "error rate").change,
        Change::Worse
    );
    assert_eq!(row(&c, Some("checkout"), "error rate").delta_text(), "new");
    assert_eq!(row(&c, Some("home"), "p95 ms").change, Change::Better);
    let home_p95 = row(&c, Some("home"), "p95 ms");
    let d = (home_p95.b.unwrap() - home_p95.a.unwrap()) / home_p95.a.unwrap() * 100.0;
    assert_eq!(home_p95.delta_text(), format!("{d:+.1}%"));
    // Same request counts and duration: no change in throughput.
    assert_eq!(row(&c, None, "req/s").change, Change::Same);
    assert_eq!(row(&c, None, "requests").change, Change::Same);
    assert_eq!(c.thresholds.len(), 2);
    assert_eq!(c.thresholds[0].verdict(), "newly failing");
    assert_eq!(c.thresholds[1].verdict(), "");
    assert_eq!(c.verdict_a.as_deref(), Some("Passed"));
    assert_eq!(c.verdict_b.as_deref(), Some("Failed"));
    // Reversed, the same changes flip.
    let r = compare(&b, &a, 5.0);
    assert_eq!(row(&r, Some("checkout"), "p95 ms").change, Change::Better);
    assert_eq!(r.thresholds[0].verdict(), "now passing");
}

#[test]
fn one_request_on_both_sides_is_not_repeated_under_its_name() {
    let one = |name: &str, hi: u64| {
        testdata::run(
            name,
            report(vec![("api", stats(1_000, 1_000, hi, 0))], vec![]),
        )
    };
    let c = compare(&one("a", 10_000), &one("b", 20_000), 5.0);
    assert_eq!(c.groups.len(), 1);
    assert_eq!(c.groups[0].name, None);
    assert_eq!(row(&c, None, "p95 ms").change, Change::Worse);
    let other = testdata::run(
        "c",
        report(vec![("web", stats(10, 1_000, 2_000, 0))], vec![]),
    );
    let c = compare(&one("a", 10_000), &other, 5.0);
    assert_eq!(c.groups.len(), 3);
    assert_eq!(row(&c, Some("api"), "requests").b, None);
    assert_eq!(row(&c, Some("api"), "requests").change, Change::Unknown);
}

#[test]
fn text_is_coloured_only_when_asked_and_says_worse_either_way() {
    let (a, b) = two_runs();
    let c = compare(&a, &b, 5.0);
    let plain = render_text(&c, false);
    assert!(!plain.contains('\x1b'));
    let p95 = plain
        .lines()
        .find(|l| l.contains("p95 ms") && l.contains("worse"))
        .unwrap();
    assert!(p95.contains("▼ worse"), "{p95}");
    assert!(plain.contains("p(95) < 60ms"));
    assert!(plain.contains("newly failing"));
    assert!(plain.contains("verdict: Passed → Failed"));
    assert!(plain.contains(&format!(
        "{} worse, {} better beyond 5%",
        c.worse(),
        c.better()
    )));
    let coloured = render_text(&c, true);
    assert!(coloured.contains("\x1b[1;31m    p95 ms"));
    assert!(coloured.contains("\x1b[32m    p95 ms"));
}

#[test]
fn html_marks_rows_and_escapes_names() {
    let (a, mut b) = two_runs();
    b.name = "<i>after</i>".into();
    let c = compare(&a, &b, 5.0);
    let page = render_html(&c, &a, &b);
    assert!(!page.contains("<i>"));
    assert!(page.contains("team-a/&lt;i&gt;after&lt;/i&gt;"));
    assert_eq!(page.matches("<tr class=\"worse\">").count(), c.worse());
    assert_eq!(page.matches("<tr class=\"better\">").count(), c.better());
    assert!(page.contains("id=\"plot-spectrum\""));
    assert_eq!(page.matches("<g class=\"series\"").count(), 2);
    assert!(page.contains("<td class=\"worse\">newly failing</td>"));
    assert!(page.contains("banner failed"));
}

#[test]
fn a_run_without_report_compares_on_its_status_figures() {
    let (a, mut b) = two_runs();
    b.report = crate::report::ReportState::Missing {
        config_map: "after-report".into(),
    };
    let c = compare(&a, &b, 5.0);
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("after-report is missing"))
    );
    assert!(
        c.notes
            .iter()
            .any(|n| n.starts_with("B: figures from the status"))
    );
    assert_eq!(row(&c, Some("checkout"), "p95 ms").change, Change::Worse);
    assert!(!render_html(&c, &a, &b).contains("<svg"));
}
