//! `kubectl barrage report NAME --html FILE`: one self-contained page. Inline
//! CSS, inline SVG plots drawn by `svg`, no script, no font, no image, no
//! link: it opens the same on a laptop without network, attached to a
//! ticket, years later. Its Content-Security-Policy forbids every fetch, so
//! a browser would refuse one even if a later change slipped it in.

use std::fmt::Write as _;

use barrage_runner::{report::RequestSummary, thresholds::Outcome};

use super::{
    ReportState, Run, duration, figures, ms,
    series::{self, Timeline},
    svg::{self, Axis, Bar, LineChart, PALETTE, Series, esc},
    timestamp,
};

/// Spectrum lines beyond the overall one: more would be unreadable.
const MAX_SPECTRUM_REQUESTS: usize = 6;

pub const CSS: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1a1a1a; background: #fafafa; }
main { max-width: 1120px; margin: 0 auto; padding: 0 20px 40px; }
.banner { padding: 18px 24px; border-left: 10px solid; margin-bottom: 20px; }
.banner h1 { margin: 0; font-size: 26px; }
.banner .sub { margin-top: 4px; }
.banner.passed { background: #e3f4ec; border-color: #009E73; color: #04382a; }
.banner.failed { background: #fbe9e1; border-color: #D55E00; color: #5c1f00; }
.banner.pending { background: #ececec; border-color: #6b6b6b; color: #1a1a1a; }
h2 { font-size: 19px; margin: 28px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.notes p { background: #fff6d6; border: 1px solid #e6c200; padding: 8px 12px; margin: 8px 0; }
dl.meta { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 4px 16px; margin: 0; }
dl.meta dt { color: #555; }
dl.meta dd { margin: 0; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; background: #fff; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal; word-break: break-all; }
thead th { background: #f0f0f0; }
tr.all td { font-weight: 600; }
.pass { color: #00664a; font-weight: 600; }
.fail { color: #a33a00; font-weight: 600; }
.worse { background: #fbe0d3; color: #7a2600; font-weight: 600; }
.better { background: #d8f0e6; color: #00553d; font-weight: 600; }
.plots { display: grid; grid-template-columns: 1fr; gap: 18px; }
figure { margin: 0; background: #fff; border: 1px solid #e4e4e4; padding: 8px; }
figcaption { color: #444; font-size: 13px; padding: 2px 6px; }
svg.chart { width: 100%; height: auto; display: block; font: 12px system-ui, "DejaVu Sans", sans-serif; }
svg.chart .title { font-weight: 600; font-size: 14px; fill: #1a1a1a; }
svg.chart .grid line { stroke: #e2e2e2; }
svg.chart .frame { fill: none; stroke: #888; }
svg.chart .tick, svg.chart .note { fill: #333; }
svg.chart .axis { fill: #333; font-size: 13px; }
svg.chart .line { stroke-width: 2; stroke-linejoin: round; }
svg.chart .legend text { fill: #1a1a1a; }
.swatch { display: inline-block; width: 12px; height: 12px; vertical-align: -1px; margin: 0 4px 0 12px; border: 1px solid #555; }
.hatch { background: repeating-linear-gradient(45deg, #CC79A7 0 3px, #fff 3px 5px); }
footer { color: #666; font-size: 13px; margin-top: 30px; }
"#;

/// A complete page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        esc(title)
    )
}

pub fn banner(out: &mut String, verdict: Option<&str>, heading: &str, sub: &str) {
    let (class, word) = match verdict {
        Some("Passed") => ("passed", "PASSED"),
        Some(_) => ("failed", "FAILED"),
        None => ("pending", "NO VERDICT"),
    };
    let _ = write!(
        out,
        r#"<header class="banner {class}" id="verdict"><h1>{word} · {}</h1><div class="sub">{}</div></header>"#,
        esc(heading),
        esc(sub)
    );
}

fn thousands(n: u64) -> String {
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

fn pct(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

pub fn render(run: &Run) -> String {
    let mut b = String::from("<main>");
    let phase = run
        .phase()
        .map_or_else(|| "no status yet".to_string(), |p| format!("{p:?}"));
    let message = run
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    banner(
        &mut b,
        run.verdict().as_deref(),
        &run.title(),
        &format!(
            "LoadTest · phase {phase}{}",
            if message.is_empty() {
                String::new()
            } else {
                format!(" · {message}")
            }
        ),
    );
    let notes = run.notes();
    if !notes.is_empty() {
        b.push_str(r#"<section class="notes" id="notes">"#);
        for n in notes {
            let _ = write!(b, "<p>{}</p>", esc(&n));
        }
        b.push_str("</section>");
    }
    meta(&mut b, run);
    match &run.report {
        ReportState::Loaded(r) => {
            let s = &r.summary;
            b.push_str(r#"<h2>Summary</h2><section id="summary">"#);
            summary_table(&mut b, &s.total, r.summary.dropped, s.duration_secs);
            b.push_str("</section>");
            b.push_str(r#"<h2>Plots</h2><section class="plots" id="plots">"#);
            plots(&mut b, r);
            b.push_str("</section>");
            b.push_str(r#"<h2>Requests</h2><section id="requests">"#);
            request_table(&mut b, &s.requests, &s.total);
            b.push_str("</section>");
            thresholds(&mut b, &r.thresholds);
            if let Some(why) = &r.aborted {
                let _ = write!(b, "<p class=\"fail\">Aborted: {}</p>", esc(why));
            }
        }
        _ => {
            if let Some(f) = figures::of(run) {
                b.push_str(r#"<h2>Summary (from the status)</h2><section id="summary">"#);
                status_tables(&mut b, &f);
                b.push_str("</section>");
            }
            if let Some(st) = &run.status {
                thresholds(&mut b, &st.thresholds);
            }
        }
    }
    let _ = write!(
        b,
        "<footer>Generated by kubectl-barrage {} from LoadTest {}.</footer></main>",
        env!("CARGO_PKG_VERSION"),
        esc(&run.title())
    );
    page(&format!("barrage · {}", run.title()), &b)
}

fn meta(b: &mut String, run: &Run) {
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
        .or_else(|| st.and_then(|s| s.started_at.as_deref().map(super::instant)));
    rows.push(("Start", start.unwrap_or_else(|| "–".into())));
    let secs = report.map(|r| r.summary.duration_secs).or_else(|| {
        st.and_then(|s| match (&s.started_at, &s.finished_at) {
            (Some(a), Some(b)) => super::text::seconds_between(a, b),
            _ => None,
        })
    });
    rows.push(("Duration", secs.map_or_else(|| "–".into(), duration)));
    if let Some(f) = st.and_then(|s| s.finished_at.as_deref().map(super::instant)) {
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

fn summary_table(b: &mut String, t: &RequestSummary, dropped: u64, secs: f64) {
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

fn request_table(
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
fn status_tables(b: &mut String, f: &figures::RunFigures) {
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

fn figure(b: &mut String, svg: &str, caption: &str) {
    let _ = write!(
        b,
        "<figure>{svg}<figcaption>{caption}</figcaption></figure>"
    );
}

fn plots(b: &mut String, r: &barrage_runner::report::Report) {
    match series::timeline(&r.snapshot) {
        Some(t) => {
            figure(b, &throughput_chart(&t), "Requests completed per second in each interval; errors per second dashed. A dip to zero is an interval in which nothing completed.");
            figure(b, &latency_chart(&t), &format!(
                "Latency percentiles of the requests completed in each {} interval, from the merged interval histograms.{}",
                duration(t.interval_secs),
                if t.unreadable > 0 { format!(" {} interval histogram(s) could not be read and are left out.", t.unreadable) } else { String::new() }
            ));
        }
        None => b.push_str(
            "<p class=\"note\" id=\"no-intervals\">No per-interval series in this report (dropped when even one interval would not fit the ConfigMap): the plots over time are left out.</p>",
        ),
    }
    let spectrum = spectrum_chart(
        "plot-spectrum",
        "Latency percentile spectrum",
        &spectrum_series(r, ""),
    );
    figure(
        b,
        &spectrum,
        "Latency at each percentile, from the merged histogram of all runners. The axis is logarithmic in nines: each step to the right is ten times rarer. A line ends where its samples run out.",
    );
    figure(
        b,
        &status_chart(&r.summary.total),
        &format!(
            "Responses by status code and failures without a response.<span class=\"swatch\" style=\"background:{}\"></span>2xx<span class=\"swatch\" style=\"background:{}\"></span>3xx<span class=\"swatch\" style=\"background:{}\"></span>4xx<span class=\"swatch\" style=\"background:{}\"></span>5xx<span class=\"swatch hatch\"></span>no response (connect, timeout, broken HTTP, interrupted) or capture failed",
            code_colour(200),
            code_colour(300),
            code_colour(400),
            code_colour(500)
        ),
    );
}

fn time_axis(t: &Timeline) -> Axis {
    let end = t.slices.last().map_or(1.0, |s| s.t);
    Axis::linear("time since start (s)", end, |v| {
        format!("{}s", svg::trim_float(v))
    })
}

fn throughput_chart(t: &Timeline) -> String {
    let max = t.slices.iter().map(|s| s.rps).fold(0.0, f64::max);
    let mut series = vec![Series::new(
        "req/s",
        0,
        t.slices.iter().map(|s| Some((s.t, s.rps))).collect(),
    )];
    if t.slices.iter().any(|s| s.errors_per_sec > 0.0) {
        let mut e = Series::new(
            "errors/s",
            2,
            t.slices
                .iter()
                .map(|s| Some((s.t, s.errors_per_sec)))
                .collect(),
        );
        e.dash = svg::DASHES[1];
        series.push(e);
    }
    svg::line_chart(&LineChart {
        id: "plot-rps".into(),
        title: "Throughput over time".into(),
        x: time_axis(t),
        y: Axis::linear("requests per second", max, |v| format!("{v:.1}/s")),
        series,
    })
}

fn latency_chart(t: &Timeline) -> String {
    let max = t.slices.iter().filter_map(|s| s.p99).fold(0.0, f64::max);
    let line = |name: &str, i: usize, f: fn(&series::Slice) -> Option<f64>| {
        Series::new(
            name,
            i,
            t.slices.iter().map(|s| f(s).map(|v| (s.t, v))).collect(),
        )
    };
    svg::line_chart(&LineChart {
        id: "plot-latency".into(),
        title: "Latency percentiles over time".into(),
        x: time_axis(t),
        y: Axis::linear("latency (ms)", max, |v| format!("{} ms", ms(v))),
        series: vec![
            line("p50", 0, |s| s.p50),
            line("p95", 1, |s| s.p95),
            line("p99", 2, |s| s.p99),
        ],
    })
}

/// The overall spectrum and, with several requests, one per request (the
/// busiest first). `suffix` tells runs apart in `compare`.
pub fn spectrum_series(
    r: &barrage_runner::report::Report,
    suffix: &str,
) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out = Vec::new();
    if let Some(all) = r.snapshot.stats(None) {
        out.push((format!("all{suffix}"), series::spectrum(&all.latency, 5.0)));
    }
    if r.snapshot.requests.len() > 1 {
        let mut names: Vec<_> = r.snapshot.requests.iter().collect();
        names.sort_by(|a, b| b.1.count().cmp(&a.1.count()).then(a.0.cmp(b.0)));
        for (n, s) in names.into_iter().take(MAX_SPECTRUM_REQUESTS) {
            out.push((format!("{n}{suffix}"), series::spectrum(&s.latency, 5.0)));
        }
    }
    out
}

pub fn spectrum_chart(id: &str, title: &str, lines: &[(String, Vec<(f64, f64)>)]) -> String {
    let max = lines
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    // "all" in black and solid; the requests in the palette's other colours.
    let series = lines
        .iter()
        .enumerate()
        .map(|(i, (name, pts))| {
            let mut s = Series::new(name, i, pts.iter().map(|&p| Some(p)).collect());
            if i == 0 {
                s.colour = PALETTE[PALETTE.len() - 1];
            } else {
                s.colour = PALETTE[(i - 1) % (PALETTE.len() - 1)];
            }
            s
        })
        .collect();
    svg::line_chart(&LineChart {
        id: id.into(),
        title: title.into(),
        x: Axis::nines("percentile (log scale of nines)", 5),
        y: Axis::linear("latency (ms)", max, |v| format!("{} ms", ms(v))),
        series,
    })
}

fn code_colour(code: u16) -> &'static str {
    match code {
        0..=299 => "#009E73",
        300..=399 => "#56B4E9",
        400..=499 => "#E69F00",
        _ => "#D55E00",
    }
}

fn status_chart(t: &RequestSummary) -> String {
    let share = |n: u64| {
        if t.requests > 0 {
            format!(
                "{} ({:.1}%)",
                thousands(n),
                n as f64 * 100.0 / t.requests as f64
            )
        } else {
            thousands(n)
        }
    };
    let mut bars: Vec<Bar> = t
        .statuses
        .iter()
        .map(|(code, n)| Bar {
            label: code.to_string(),
            value: *n as f64,
            colour: code_colour(*code),
            hatched: false,
            note: share(*n),
        })
        .collect();
    // `status` errors are responses already counted under their code above.
    bars.extend(
        t.errors_by_kind
            .iter()
            .filter(|(k, _)| k.as_str() != "status")
            .map(|(k, n)| Bar {
                label: k.clone(),
                value: *n as f64,
                colour: "#CC79A7",
                hatched: true,
                note: share(*n),
            }),
    );
    if bars.is_empty() {
        bars.push(Bar {
            label: "none".into(),
            value: 0.0,
            colour: PALETTE[0],
            hatched: false,
            note: "no responses".into(),
        });
    }
    svg::bar_chart(
        "plot-status",
        "Status codes and transport errors",
        "responses",
        &bars,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
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
            html.contains("<td>Namespace</td>")
                || html.contains("<dt>Namespace</dt><dd>team-a</dd>")
        );
        assert!(html.contains("<dt>Runners</dt><dd>2 (2 finished)</dd>"));
        assert!(html.contains("<dt>Start</dt><dd>2023-11-14T22:13:20Z</dd>"));
        assert!(html.contains("<dt>Duration</dt><dd>10.0s</dd>"));
        assert!(
            html.contains(
                "<td>error_rate &lt; 0.1%</td><td>0.20%</td><td class=\"fail\">✗ fail</td>"
            )
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
}
