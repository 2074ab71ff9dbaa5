//! Tests of the report page: its sections and plots, that nothing is fetched,
//! that user text is escaped, and the pages without intervals or a report.

use super::{tables::thousands, *};
use crate::report::{ReportState, testdata};
use barrage_runner::snapshot::ErrorKind;

/// Points of the polylines inside the element with `id`.
fn points_in(html: &str, id: &str) -> usize {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id}"));
    let svg = &html[start..start + html[start..].find("</svg>").unwrap()];
    svg.split("points=\"")
        .skip(1)
        .map(|p| p[..p.find('"').unwrap()].split(' ').count())
        .sum()
}

#[test]
fn the_page_has_the_verdict_metadata_tables_and_four_plots() {
    let run = testdata::typical("checkout");
    let html = render(&run);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains(
        r#"<header class="banner failed" id="verdict"><h1>FAILED · team-a/checkout</h1>"#
    ));
    for id in ["meta", "summary", "plots", "requests", "thresholds"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no {id}");
    }
    // 10 intervals: one point each per series.
    assert_eq!(points_in(&html, "plot-rps"), 20); // req/s and errors/s
    assert_eq!(points_in(&html, "plot-latency"), 30);
    assert!(points_in(&html, "plot-spectrum") > 3 * 60);
    assert_eq!(html.matches("<g class=\"bar").count(), 2); // 200 and 503
    assert!(html.contains("data-label=\"503\" data-value=\"20\""));
    assert!(
        html.contains("<td>Namespace</td>") || html.contains("<dt>Namespace</dt><dd>team-a</dd>")
    );
    assert!(html.contains("<dt>Runners</dt><dd>2 (2 finished)</dd>"));
    assert!(html.contains("<dt>Start</dt><dd>2023-11-14T22:13:20Z</dd>"));
    assert!(html.contains("<dt>Duration</dt><dd>10.0s</dd>"));
    assert!(
        html.contains("<td>error_rate &lt; 0.1%</td><td>0.20%</td><td class=\"fail\">✗ fail</td>")
    );
    assert!(
        html.contains("<td>p(95) &lt; 100ms</td><td>76.2ms</td><td class=\"pass\">✓ pass</td>")
    );
    let rows = html.matches("<tr class=\"req\">").count();
    assert_eq!(rows, 2);
    assert!(html.contains("<tr class=\"all\"><td>(all)</td><td>10,000</td>"));
}

#[test]
fn nothing_is_fetched_from_anywhere() {
    let html = render(&testdata::typical("a"));
    assert!(html.contains("default-src 'none'"));
    for bad in [
        "<script", "<link", "<img", "src=", "href=", "url(http", "@import", "https://",
    ] {
        assert!(!html.contains(bad), "found {bad}");
    }
    // The only http:// is the SVG namespace name, which is never fetched.
    assert_eq!(
        html.matches("http://").count(),
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
}

#[test]
fn request_names_and_threshold_text_are_escaped() {
    let evil = "<script>alert('x')</script>";
    let run = testdata::run(
        "x",
        testdata::report(
            vec![
                (evil, testdata::stats(100, 1_000, 2_000, 0)),
                ("b&b", testdata::stats(10, 1_000, 2_000, 0)),
            ],
            vec![testdata::outcome(
                &format!("p(95) < 1ms for {evil}"),
                "<b>",
                false,
            )],
        ),
    );
    let html = render(&run);
    assert!(!html.contains("<script"), "unescaped name");
    assert!(!html.contains("<b>"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("b&amp;b"));
}

#[test]
fn a_report_without_intervals_still_renders_with_a_note() {
    let mut run = testdata::typical("slim");
    if let ReportState::Loaded(r) = &mut run.report {
        r.snapshot.intervals.clear();
    }
    let html = render(&run);
    assert!(html.contains("id=\"no-intervals\""));
    assert!(!html.contains("id=\"plot-rps\"") && !html.contains("id=\"plot-latency\""));
    assert!(points_in(&html, "plot-spectrum") > 0);
    assert!(html.contains("id=\"plot-status\""));
    assert!(html.contains("no per-interval series"));
}

#[test]
fn without_a_report_the_status_is_shown_and_no_plots() {
    let mut run = testdata::typical("gone");
    run.report = ReportState::Unreadable {
        config_map: "gone-report".into(),
        reason: "<oops>".into(),
    };
    let html = render(&run);
    assert!(html.contains("unreadable (&lt;oops&gt;)"));
    assert!(html.contains("Summary (from the status)"));
    assert!(!html.contains("<svg"));
    assert!(html.contains("<tr class=\"all\"><td>(all)</td><td>10,000</td>"));
    assert!(html.contains("id=\"thresholds\""));
}

#[test]
fn transport_errors_get_hatched_bars_and_status_errors_do_not_repeat() {
    let mut req = testdata::stats(1_000, 1_000, 5_000, 10);
    req.errors.insert(ErrorKind::Timeout, 7);
    req.errors.insert(ErrorKind::Connect, 3);
    let run = testdata::run("t", testdata::report(vec![("r", req)], vec![]));
    let html = render(&run);
    assert!(html.contains("<g class=\"bar hatched\" data-label=\"timeout\" data-value=\"7\""));
    assert!(html.contains("<g class=\"bar hatched\" data-label=\"connect\" data-value=\"3\""));
    assert!(!html.contains("data-label=\"status\""));
    assert!(html.contains("<g class=\"bar\" data-label=\"503\" data-value=\"10\""));
}

#[test]
fn thousands_separators() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1_000), "1,000");
    assert_eq!(thousands(1_234_567), "1,234,567");
}

#[test]
fn scenarios_and_journeys_have_tables_from_the_report_or_the_status() {
    let mut run = testdata::two_scenarios("mix");
    let html = render(&run);
    for id in ["scenarios", "journeys"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no {id}");
    }
    assert!(html.contains("<td>browse</td><td>6,000</td>"), "{html}");
    assert!(html.contains("<td>buy</td><td>800</td>"), "{html}");
    assert!(
        html.contains("<td>buy/checkout</td><td>400</td><td>2</td>"),
        "{html}"
    );
    assert!(html.contains("p(99) &lt; 2s for journey buy/checkout"));
    // Without the report, the same rows from the status.
    run.report = ReportState::Missing {
        config_map: "mix-report".into(),
    };
    let html = render(&run);
    assert!(html.contains("<td>browse</td><td>6,000</td>"), "{html}");
    assert!(
        html.contains("<td>buy/checkout</td><td>400</td><td>2</td>"),
        "{html}"
    );
    // A plan without them has neither section.
    let html = render(&testdata::typical("a"));
    assert!(!html.contains("id=\"scenarios\"") && !html.contains("id=\"journeys\""));
}
