//! The page's tables: the test's metadata, the summary, one row per
//! request, per scenario and per journey, the status's figures when there
//! is no report, the thresholds; and the number formats they use.

use std::fmt::Write as _;

use barrage_runner::{report::RequestSummary, thresholds::Outcome};

use crate::report::{Run, duration, figures, instant, ms, svg::esc, text, timestamp};

pub(super) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn pct(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

pub(super) fn meta(b: &mut String, run: &Run) {
    let mut rows: Vec<(&str, String)> = vec![
        ("LoadTest", run.name.clone()),
        ("Namespace", run.namespace.clone()),
    ];
    let st = run.status.as_ref();
    rows.push((
        "Runners",
        match st {
            Some(s) => format!("{} ({} finished)", run.runners, s.runners_finished),
            None => run.runners.to_string(),
        },
    ));
    rows.push((
        "Phase",
        run.phase()
            .map_or_else(|| "no status yet".into(), |p| format!("{p:?}")),
    ));
    let report = run.loaded();
    let start = report
        .and_then(|r| r.snapshot.started_us)
        .map(timestamp)
        .or_else(|| st.and_then(|s| s.started_at.as_deref().map(instant)));
    rows.push(("Start", start.unwrap_or_else(|| "–".into())));
    let secs = report.map(|r| r.summary.duration_secs).or_else(|| {
        st.and_then(|s| match (&s.started_at, &s.finished_at) {
            (Some(a), Some(b)) => text::seconds_between(a, b),
            _ => None,
        })
    });
    rows.push(("Duration", secs.map_or_else(|| "–".into(), duration)));
    if let Some(f) = st.and_then(|s| s.finished_at.as_deref().map(instant)) {
        rows.push(("Finished", f));
    }
    let skew = report
        .and_then(|r| r.summary.start_skew_ms)
        .or_else(|| st.and_then(|s| s.start_skew_ms));
    if let Some(skew) = skew {
        rows.push(("Start skew", format!("{skew:.1} ms")));
    }
    if let Some(cm) = st.and_then(|s| s.report.clone()) {
        rows.push(("Report", format!("ConfigMap {cm}")));
    }
    b.push_str(r#"<h2>Test</h2><dl class="meta" id="meta">"#);
    for (k, v) in rows {
        let _ = write!(b, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
    }
    b.push_str("</dl>");
}

pub(super) fn summary_table(b: &mut String, t: &RequestSummary, dropped: u64, secs: f64) {
    let l = &t.latency_ms;
    let kinds: Vec<String> = t
        .errors_by_kind
        .iter()
        .map(|(k, v)| format!("{k}: {}", thousands(*v)))
        .collect();
    let rows = [
        ("Requests", thousands(t.requests)),
        (
            "Throughput",
            format!("{:.1} req/s over {}", t.rps, duration(secs)),
        ),
        (
            "Errors",
            format!(
                "{} ({}){}",
                thousands(t.errors),
                pct(t.error_rate),
                if kinds.is_empty() {
                    String::new()
                } else {
                    format!(" · {}", kinds.join(", "))
                }
            ),
        ),
        ("Dropped (maxInFlight)", thousands(dropped)),
        (
            "Latency p50 / p95 / p99",
            format!("{} / {} / {} ms", ms(l.p50), ms(l.p95), ms(l.p99)),
        ),
        (
            "Latency min / mean / max",
            format!("{} / {} / {} ms", ms(l.min), ms(l.mean), ms(l.max)),
        ),
        (
            "Sent / received",
            format!(
                "{} / {} bytes",
                thousands(t.bytes_sent),
                thousands(t.bytes_received)
            ),
        ),
    ];
    b.push_str("<table class=\"summary\"><tbody>");
    for (k, v) in rows {
        let _ = write!(b, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    }
    b.push_str("</tbody></table>");
}

pub(super) fn request_table(
    b: &mut String,
    requests: &std::collections::BTreeMap<String, RequestSummary>,
    total: &RequestSummary,
) {
    b.push_str(
        "<table class=\"requests\"><thead><tr><th>request</th><th>count</th><th>req/s</th><th>errors</th>\
         <th>min</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr></thead><tbody>",
    );
    let row = |b: &mut String, name: &str, class: &str, r: &RequestSummary| {
        let l = &r.latency_ms;
        let _ = write!(
            b,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{:.1}</td><td>{} ({})</td>",
            esc(name),
            thousands(r.requests),
            r.rps,
            thousands(r.errors),
            pct(r.error_rate)
        );
        for v in [l.min, l.p50, l.p90, l.p95, l.p99, l.p999, l.max] {
            let _ = write!(b, "<td>{}</td>", ms(v));
        }
        b.push_str("</tr>");
    };
    for (name, r) in requests {
        row(b, name, "req", r);
    }
    if requests.len() != 1 {
        row(b, "(all)", "all", total);
    }
    b.push_str("</tbody></table><p><small>Latencies in milliseconds, from the exactly merged histograms of all runners.</small></p>");
}

/// The status's figures when the report is not there: fewer columns.
pub(super) fn status_tables(b: &mut String, f: &figures::RunFigures) {
    let opt = |v: Option<f64>| v.map_or_else(|| "–".into(), ms);
    b.push_str(
        "<table class=\"requests\"><thead><tr><th>request</th><th>count</th><th>req/s</th><th>errors</th>\
         <th>p50</th><th>p95</th><th>p99</th><th>max</th></tr></thead><tbody>",
    );
    let mut rows: Vec<(&str, &str, &figures::Figures)> = f
        .by_request
        .iter()
        .map(|(n, x)| (n.as_str(), "req", x))
        .collect();
    rows.push(("(all)", "all", &f.total));
    for (name, class, x) in rows {
        let _ = write!(
            b,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{:.1}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            thousands(x.requests),
            x.rps,
            thousands(x.errors),
            pct(x.error_rate),
            opt(x.p50),
            opt(x.p95),
            opt(x.p99),
            opt(x.max)
        );
    }
    b.push_str("</tbody></table><p><small>Latencies in milliseconds.</small></p>");
}

/// A section per named scenario and per journey (none for a plan without
/// them), from the report or from the status (then only the listed ones).
pub(super) fn view_tables(b: &mut String, f: &figures::RunFigures) {
    let opt = |v: Option<f64>| v.map_or_else(|| "–".into(), ms);
    if !f.by_scenario.is_empty() {
        b.push_str(
            "<h2>Scenarios</h2><section id=\"scenarios\"><table class=\"requests\"><thead><tr>\
             <th>scenario</th><th>requests</th><th>req/s</th><th>errors</th>\
             <th>p50</th><th>p95</th><th>p99</th><th>max</th></tr></thead><tbody>",
        );
        for (name, x) in &f.by_scenario {
            let _ = write!(
                b,
                "<tr class=\"req\"><td>{}</td><td>{}</td><td>{:.1}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                thousands(x.requests),
                x.rps,
                thousands(x.errors),
                pct(x.error_rate),
                opt(x.p50),
                opt(x.p95),
                opt(x.p99),
                opt(x.max)
            );
        }
        b.push_str("</tbody></table><p><small>Every request of the scenario's steps; latencies in milliseconds.</small></p></section>");
    }
    if !f.by_journey.is_empty() {
        b.push_str(
            "<h2>Journeys</h2><section id=\"journeys\"><table class=\"requests\"><thead><tr>\
             <th>journey</th><th>passes</th><th>failed</th>\
             <th>p50</th><th>p95</th><th>p99</th><th>max</th></tr></thead><tbody>",
        );
        for (name, j) in &f.by_journey {
            let _ = write!(
                b,
                "<tr class=\"req\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                thousands(j.passes),
                thousands(j.failed),
                opt(j.p50),
                opt(j.p95),
                opt(j.p99),
                opt(j.max)
            );
        }
        b.push_str("</tbody></table><p><small>A whole pass, from its first step's start to its last step's end, pauses included, in milliseconds; not requests.</small></p></section>");
    }
}

pub fn thresholds(b: &mut String, outcomes: &[Outcome]) {
    if outcomes.is_empty() {
        return;
    }
    b.push_str(
        "<h2>Thresholds</h2><section id=\"thresholds\"><table class=\"thresholds\"><thead><tr>\
         <th>threshold</th><th>observed</th><th>result</th></tr></thead><tbody>",
    );
    for o in outcomes {
        let (class, word) = if o.passed {
            ("pass", "✓ pass")
        } else {
            ("fail", "✗ fail")
        };
        let _ = write!(
            b,
            "<tr class=\"{class}\"><td>{}{}{}</td><td>{}</td><td class=\"{class}\">{word}</td></tr>",
            esc(&o.source),
            if o.abort_on_fail {
                " <small>(abortOnFail)</small>"
            } else {
                ""
            },
            if o.default {
                " <small>(default)</small>"
            } else {
                ""
            },
            esc(&o.observed_text)
        );
    }
    b.push_str("</tbody></table></section>");
}
