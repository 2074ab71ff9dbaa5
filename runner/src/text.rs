//! The end-of-run summary for people, in the spirit of k6's: totals, then a
//! latency table per request, status codes, and each threshold's verdict.

use std::fmt::Write as _;

use crate::{
    report::{JourneySummary, Latencies, Report, RequestSummary, Summary},
    thresholds::Outcome,
};

fn row(out: &mut String, name: &str, r: &RequestSummary) {
    let l: &Latencies = &r.latency_ms;
    let _ = writeln!(
        out,
        "  {name:<24} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        r.requests, l.min, l.p50, l.p90, l.p95, l.p99, l.p999, l.max
    );
}

/// A table per named scenario and per journey (nothing when the plan has
/// neither): requests, rate, errors and latency of each scenario; passes,
/// failed passes and whole-pass duration of each journey.
pub fn views(out: &mut String, s: &Summary) {
    if !s.scenarios.is_empty() {
        let _ = writeln!(
            out,
            "\n  {:<24} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
            "scenario (ms)", "requests", "rps", "errors", "p50", "p95", "p99"
        );
        for (name, r) in &s.scenarios {
            scenario_row(out, name, r);
        }
    }
    if !s.journeys.is_empty() {
        let _ = writeln!(
            out,
            "\n  {:<24} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
            "journey (whole, ms)", "passes", "failed", "p50", "p95", "p99", "max"
        );
        for (name, j) in &s.journeys {
            journey_row(out, name, j);
        }
    }
}

fn scenario_row(out: &mut String, name: &str, r: &RequestSummary) {
    let l = &r.latency_ms;
    let _ = writeln!(
        out,
        "  {name:<24} {:>9} {:>9.1} {:>7.2}% {:>8.2} {:>8.2} {:>8.2}",
        r.requests,
        r.rps,
        r.error_rate * 100.0,
        l.p50,
        l.p95,
        l.p99
    );
}

fn journey_row(out: &mut String, name: &str, j: &JourneySummary) {
    let l = &j.duration_ms;
    let _ = writeln!(
        out,
        "  {name:<24} {:>9} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        j.passes, j.failed, l.p50, l.p95, l.p99, l.max
    );
}

/// Each threshold's verdict and observed value (nothing without thresholds).
pub fn thresholds(out: &mut String, outcomes: &[Outcome]) {
    if outcomes.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n  thresholds");
    for o in outcomes {
        let _ = writeln!(
            out,
            "    {} {:<40} observed {}",
            if o.passed { "✓" } else { "✗" },
            if o.default {
                format!("{} (default)", o.source)
            } else {
                o.source.clone()
            },
            o.observed_text
        );
    }
}

pub fn summary(report: &Report, title: &str) -> String {
    let s = &report.summary;
    let t = &s.total;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n  barrage · {title} · {} runner(s) · {:.1}s\n",
        s.runners, s.duration_secs
    );
    let _ = writeln!(
        out,
        "  requests ........... {}  ({:.1}/s)",
        t.requests, t.rps
    );
    let kinds: Vec<String> = t
        .errors_by_kind
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let _ = writeln!(
        out,
        "  errors ............. {} ({:.2}%){}",
        t.errors,
        t.error_rate * 100.0,
        if kinds.is_empty() {
            String::new()
        } else {
            format!("  {}", kinds.join(", "))
        }
    );
    // Which checks failed, by request: bounded by the plan's checks.
    let failed_checks = s
        .requests
        .iter()
        .flat_map(|(name, r)| r.checks.iter().map(move |(l, n)| (name, l, n)));
    for (i, (name, label, n)) in failed_checks.enumerate() {
        let head = if i == 0 {
            "  failed checks ......"
        } else {
            "                      "
        };
        let _ = writeln!(out, "{head} {name}: {label}: {n}");
    }
    if t.retries > 0 {
        let _ = writeln!(
            out,
            "  retries ............ {} (idempotent requests resent after a keep-alive close)",
            t.retries
        );
    }
    if s.dropped > 0 {
        let _ = writeln!(
            out,
            "  dropped ............ {} (maxInFlight reached)",
            s.dropped
        );
    }
    if report.snapshot.data_exhausted > 0 {
        let _ = writeln!(
            out,
            "  data exhausted ..... every `unique` record was used; the load stopped there"
        );
    }
    if s.distinct_records > 0 {
        let _ = writeln!(
            out,
            "  data records ....... {} distinct",
            s.distinct_records
        );
    }
    let _ = writeln!(
        out,
        "  sent / received .... {} / {} bytes",
        t.bytes_sent, t.bytes_received
    );
    if let Some(c) = &s.connections {
        let ms = |m: &crate::report::SetupMs| {
            format!(
                "p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2} ms",
                m.p50, m.p95, m.p99, m.max
            )
        };
        let _ = writeln!(
            out,
            "  connections ........ {} opened; connect {}",
            c.opened,
            ms(&c.connect_ms)
        );
        if let Some(h) = &c.tls_handshake_ms {
            let _ = writeln!(out, "  tls handshake ...... {}", ms(h));
        }
    }
    for w in &s.warnings {
        let _ = writeln!(out, "  warning ............ {w}");
    }
    if let Some(skew) = s.start_skew_ms.filter(|_| s.runners > 1) {
        let _ = writeln!(out, "  start skew ......... {skew:.1}ms");
    }
    let _ = writeln!(
        out,
        "\n  {:<24} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "latency (ms)", "count", "min", "p50", "p90", "p95", "p99", "p99.9", "max"
    );
    for (name, r) in &s.requests {
        row(&mut out, name, r);
    }
    if s.requests.len() > 1 {
        row(&mut out, "(all)", t);
    }
    views(&mut out, s);
    let codes: Vec<String> = t
        .statuses
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    let _ = writeln!(
        out,
        "\n  status codes ....... {}",
        if codes.is_empty() {
            "none".into()
        } else {
            codes.join("  ")
        }
    );
    thresholds(&mut out, &report.thresholds);
    if let Some(why) = &report.aborted {
        let _ = writeln!(out, "\n  aborted: {why}");
    }
    for why in &report.snapshot.failures {
        let _ = writeln!(out, "\n  engine failure: {why}");
    }
    let _ = writeln!(
        out,
        "\n  {}\n",
        if report.passed { "PASSED" } else { "FAILED" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_threshold_is_marked() {
        let o = Outcome {
            source: crate::thresholds::DEFAULT.into(),
            observed: Some(1.0),
            observed_text: "100.00%".into(),
            passed: false,
            abort_on_fail: false,
            default: true,
        };
        let mut out = String::new();
        thresholds(&mut out, std::slice::from_ref(&o));
        assert!(out.contains("✗ error_rate < 1% (default)"), "{out}");
        let mut out = String::new();
        thresholds(
            &mut out,
            &[Outcome {
                default: false,
                ..o
            }],
        );
        assert!(!out.contains("(default)"), "{out}");
    }
}
