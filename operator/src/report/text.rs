//! `kubectl barrage report NAME`: the run's metadata, then the same summary
//! a local `barrage-runner run` prints (runner/src/text.rs, reused as is).
//! Without a report (not finished, or the ConfigMap is gone) the figures
//! come from the status, in the same layout.

use std::fmt::Write as _;

use barrage_runner::text;

use super::{ReportState, Run, duration, instant, ms, timestamp};
use crate::crd::LoadTestStatus;

pub fn render(run: &Run) -> String {
    let mut out = String::new();
    header(&mut out, run);
    match &run.report {
        ReportState::Loaded(r) => out.push_str(&text::summary(r, &run.title())),
        _ => match &run.status {
            Some(st) => from_status(&mut out, run, st),
            None => out.push('\n'),
        },
    }
    out
}

fn line(out: &mut String, label: &str, value: &str) {
    let dots = ".".repeat(19usize.saturating_sub(label.chars().count()));
    let _ = writeln!(out, "  {label} {dots} {value}");
}

fn header(out: &mut String, run: &Run) {
    out.push('\n');
    line(out, "loadtest", &run.title());
    let phase = run
        .phase()
        .map_or_else(|| "no status yet".to_string(), |p| format!("{p:?}"));
    let verdict = run.verdict().unwrap_or_else(|| "not decided".into());
    line(out, "phase", &format!("{phase} · verdict {verdict}"));
    if let Some(st) = &run.status {
        if let Some(m) = &st.message {
            line(out, "message", m);
        }
        let ready = if run.finished() {
            String::new()
        } else {
            format!(" · {} ready", st.runners_ready)
        };
        line(
            out,
            "runners",
            &format!(
                "{} planned{ready} · {} finished",
                run.runners, st.runners_finished
            ),
        );
    }
    let started = run
        .loaded()
        .and_then(|r| r.snapshot.started_us)
        .map(timestamp)
        .or_else(|| {
            run.status
                .as_ref()
                .and_then(|s| s.started_at.as_deref().map(instant))
        });
    if let Some(s) = started {
        let until = run
            .status
            .as_ref()
            .and_then(|s| s.finished_at.as_deref().map(instant));
        line(
            out,
            "started",
            &match until {
                Some(f) => format!("{s} · finished {f}"),
                None => s,
            },
        );
    }
    if let Some(cm) = run.status.as_ref().and_then(|s| s.report.as_ref()) {
        line(out, "report", &format!("ConfigMap {cm}"));
    }
    for n in run.notes() {
        let _ = writeln!(out, "  note: {n}");
    }
}

/// The status's figures in the layout of the runner's summary.
fn from_status(out: &mut String, run: &Run, st: &LoadTestStatus) {
    let secs = match (&st.started_at, &st.finished_at) {
        (Some(a), Some(b)) => seconds_between(a, b),
        _ => None,
    };
    let _ = writeln!(
        out,
        "\n  barrage · {} · {} runner(s){}\n",
        run.title(),
        run.runners,
        secs.map(|s| format!(" · {}", duration(s)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "  requests ........... {}  ({:.1}/s)",
        st.requests, st.rps
    );
    let _ = writeln!(
        out,
        "  errors ............. {} ({})",
        st.errors,
        st.error_rate.as_deref().unwrap_or("0.00%")
    );
    if st.dropped > 0 {
        let _ = writeln!(
            out,
            "  dropped ............ {} (maxInFlight reached)",
            st.dropped
        );
    }
    if let Some(skew) = st.start_skew_ms.filter(|_| run.runners > 1) {
        let _ = writeln!(out, "  start skew ......... {skew:.1}ms");
    }
    if st.latency_ms.is_some() || !st.by_request.is_empty() {
        let _ = writeln!(
            out,
            "\n  {:<24} {:>9} {:>8} {:>8} {:>8} {:>8}",
            "latency (ms)", "count", "p50", "p95", "p99", "max"
        );
        for (name, r) in &st.by_request {
            let _ = writeln!(
                out,
                "  {name:<24} {:>9} {:>8} {:>8} {:>8} {:>8}",
                r.requests,
                ms(r.p50_ms),
                ms(r.p95_ms),
                ms(r.p99_ms),
                ms(r.max_ms)
            );
        }
        if let Some(l) = &st.latency_ms {
            let _ = writeln!(
                out,
                "  {:<24} {:>9} {:>8} {:>8} {:>8} {:>8}",
                "(all)",
                st.requests,
                ms(l.p50),
                ms(l.p95),
                ms(l.p99),
                ms(l.max)
            );
        }
    }
    status_views(out, st);
    text::thresholds(out, &st.thresholds);
    let verdict = match st.verdict.as_deref() {
        Some("Passed") => "PASSED",
        Some(_) => "FAILED",
        None => "(no verdict yet)",
    };
    let _ = writeln!(out, "\n  {verdict}\n");
}

/// The status's scenarios and journeys (the listed ones), and how many it
/// leaves out.
fn status_views(out: &mut String, st: &crate::crd::LoadTestStatus) {
    if !st.by_scenario.is_empty() {
        let _ = writeln!(
            out,
            "\n  {:<24} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
            "scenario (ms)", "requests", "rps", "errors", "p50", "p95", "p99"
        );
        for (name, r) in &st.by_scenario {
            let _ = writeln!(
                out,
                "  {name:<24} {:>9} {:>9.1} {:>8} {:>8} {:>8} {:>8}",
                r.requests,
                r.rps,
                r.errors,
                ms(r.p50_ms),
                ms(r.p95_ms),
                ms(r.p99_ms)
            );
        }
    }
    if !st.by_journey.is_empty() {
        let _ = writeln!(
            out,
            "\n  {:<24} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
            "journey (whole, ms)", "passes", "failed", "p50", "p95", "p99", "max"
        );
        for (name, j) in &st.by_journey {
            let _ = writeln!(
                out,
                "  {name:<24} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
                j.passes,
                j.failed,
                ms(j.p50_ms),
                ms(j.p95_ms),
                ms(j.p99_ms),
                ms(j.max_ms)
            );
        }
    }
    if let Some(o) = &st.omitted {
        let _ = writeln!(
            out,
            "\n  not in the status .. {} request names, {} scenarios, {} journeys (the report has them)",
            o.requests, o.scenarios, o.journeys
        );
    }
}

/// Seconds between two RFC 3339 instants.
pub fn seconds_between(a: &str, b: &str) -> Option<f64> {
    let a: k8s_openapi::jiff::Timestamp = a.parse().ok()?;
    let b: k8s_openapi::jiff::Timestamp = b.parse().ok()?;
    Some((b.as_microsecond() - a.as_microsecond()) as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{crd::Phase, report::testdata};

    #[test]
    fn a_finished_run_prints_the_runner_summary_under_its_metadata() {
        let run = testdata::typical("checkout");
        let out = render(&run);
        let r = run.loaded().unwrap();
        // The runner's own summary, unchanged, follows the header.
        assert!(out.ends_with(&text::summary(r, "team-a/checkout")), "{out}");
        assert!(
            out.contains("loadtest ........... team-a/checkout"),
            "{out}"
        );
        assert!(out.contains("phase .............. Failed · verdict Failed"));
        assert!(out.contains("report ............. ConfigMap checkout-report"));
        assert!(out.contains(
            "started ............ 2023-11-14T22:13:20Z · finished 2023-11-14T22:13:31Z\n"
        ));
        assert!(!out.contains("note:"));
    }

    #[test]
    fn without_the_report_the_status_figures_are_shown_and_the_gap_is_said() {
        let mut run = testdata::typical("checkout");
        run.report = crate::report::ReportState::Missing {
            config_map: "checkout-report".into(),
        };
        let st = run.status.clone().unwrap();
        let out = render(&run);
        assert!(
            out.contains("note: the report ConfigMap checkout-report is missing"),
            "{out}"
        );
        assert!(out.contains(&format!(
            "requests ........... {}  ({:.1}/s)",
            st.requests, st.rps
        )));
        assert!(out.contains(&format!("errors ............. {} (0.20%)", st.errors)));
        assert!(out.contains("✗ error_rate < 0.1%"));
        let p95 = ms(st.by_request["home"].p95_ms);
        let home = out
            .lines()
            .find(|l| l.trim_start().starts_with("home"))
            .unwrap();
        assert!(home.contains(&p95), "{home}");
        assert!(out.contains("· 11.1s"), "{out}");
        assert!(out.trim_end().ends_with("FAILED"));
    }

    #[test]
    fn scenarios_and_journeys_are_shown_from_the_report_or_the_status() {
        let mut run = testdata::two_scenarios("mix");
        let out = render(&run);
        let words = |out: &str, start: &str| {
            out.lines()
                .find(|l| l.trim_start().starts_with(start))
                .unwrap_or_else(|| panic!("no {start:?} in {out}"))
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(words(&out, "buy/checkout ")[1..3], ["400", "2"]);
        assert_eq!(words(&out, "browse ")[1], "6000");
        assert!(
            out.contains("✓ p(99) < 2s for journey buy/checkout"),
            "{out}"
        );
        run.report = crate::report::ReportState::Missing {
            config_map: "mix-report".into(),
        };
        let out = render(&run);
        assert_eq!(words(&out, "buy/checkout ")[1..3], ["400", "2"]);
        assert_eq!(words(&out, "buy ")[1], "800");
        assert!(!out.contains("not in the status"), "{out}");
        // With names left out, it says how many.
        if let Some(st) = run.status.as_mut() {
            st.omitted = Some(crate::crd::OmittedStatus {
                requests: 0,
                scenarios: 3,
                journeys: 7,
            });
        }
        let out = render(&run);
        assert!(
            out.contains("0 request names, 3 scenarios, 7 journeys (the report has them)"),
            "{out}"
        );
    }

    #[test]
    fn a_running_test_says_it_is_not_finished() {
        let mut run = testdata::typical("live");
        run.report = crate::report::ReportState::NotYet;
        if let Some(st) = run.status.as_mut() {
            st.phase = Phase::Running;
            st.verdict = None;
            st.finished_at = None;
            st.report = None;
        }
        let out = render(&run);
        assert!(
            out.contains("note: not finished yet (phase Running)"),
            "{out}"
        );
        assert!(out.contains("verdict not decided"));
        assert!(out.trim_end().ends_with("(no verdict yet)"));
    }
}
