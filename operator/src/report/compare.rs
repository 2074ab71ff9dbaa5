//! `kubectl barrage compare A B`: two runs side by side, total and per
//! request, with the changes beyond a noise threshold marked better or
//! worse in the direction that matters for each figure (latency and errors
//! up is worse, throughput down is worse).

use std::fmt::Write as _;

use super::{
    Run,
    figures::{self, Figures},
    html, ms,
    svg::esc,
};

/// Which way a figure is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// Informative only (the request count follows from the plan).
    Neither,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Better,
    Worse,
    /// Within the noise threshold.
    Same,
    /// Beyond the threshold, but neither better nor worse.
    Changed,
    /// One side has no value.
    Unknown,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub label: &'static str,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// (b - a) / a in percent; `None` when a is 0 (or a side is missing).
    pub delta_pct: Option<f64>,
    pub change: Change,
    fmt: fn(f64) -> String,
}

impl Row {
    pub fn text(&self, side: Option<f64>) -> String {
        side.map_or_else(|| "–".into(), self.fmt)
    }

    pub fn delta_text(&self) -> String {
        match (self.delta_pct, self.a, self.b) {
            (Some(d), _, _) => format!("{d:+.1}%"),
            (None, Some(a), Some(b)) if a == 0.0 && b > 0.0 => "new".into(),
            _ => "–".into(),
        }
    }
}

/// Judges one figure. A change from 0 to something has no percentage: it
/// is judged by direction alone (0 errors -> some errors is worse).
pub fn judge(
    a: Option<f64>,
    b: Option<f64>,
    better: Better,
    threshold_pct: f64,
) -> (Option<f64>, Change) {
    let (Some(a), Some(b)) = (a, b) else {
        return (None, Change::Unknown);
    };
    let delta = if a != 0.0 {
        Some((b - a) / a.abs() * 100.0)
    } else if b == 0.0 {
        Some(0.0)
    } else {
        None
    };
    let beyond = delta.is_none_or(|d| d.abs() > threshold_pct);
    let change = match (beyond, better) {
        (false, _) => Change::Same,
        (true, Better::Neither) => Change::Changed,
        (true, Better::Higher) if b > a => Change::Better,
        (true, Better::Lower) if b < a => Change::Better,
        (true, _) => Change::Worse,
    };
    (delta, change)
}

fn rows(a: Option<&Figures>, b: Option<&Figures>, threshold_pct: f64) -> Vec<Row> {
    type Get = fn(&Figures) -> Option<f64>;
    type Spec = (&'static str, Better, Get, fn(f64) -> String);
    let specs: [Spec; 8] = [
        (
            "requests",
            Better::Neither,
            |f| Some(f.requests as f64),
            |v| format!("{v:.0}"),
        ),
        (
            "req/s",
            Better::Higher,
            |f| Some(f.rps),
            |v| format!("{v:.1}"),
        ),
        (
            "error rate",
            Better::Lower,
            |f| Some(f.error_rate),
            |v| format!("{:.2}%", v * 100.0),
        ),
        ("p50 ms", Better::Lower, |f| f.p50, ms),
        ("p95 ms", Better::Lower, |f| f.p95, ms),
        ("p99 ms", Better::Lower, |f| f.p99, ms),
        ("max ms", Better::Lower, |f| f.max, ms),
        (
            "errors",
            Better::Lower,
            |f| Some(f.errors as f64),
            |v| format!("{v:.0}"),
        ),
    ];
    specs
        .into_iter()
        .map(|(label, better, get, fmt)| {
            let (va, vb) = (a.and_then(get), b.and_then(get));
            let (delta_pct, change) = judge(va, vb, better, threshold_pct);
            Row {
                label,
                a: va,
                b: vb,
                delta_pct,
                change,
                fmt,
            }
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct Group {
    /// `None` for all requests together.
    pub name: Option<String>,
    pub rows: Vec<Row>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdChange {
    pub source: String,
    /// (passed, observed) on each side; `None` where the run has no such threshold.
    pub a: Option<(bool, String)>,
    pub b: Option<(bool, String)>,
}

impl ThresholdChange {
    pub fn verdict(&self) -> &'static str {
        match (&self.a, &self.b) {
            (Some((true, _)), Some((false, _))) => "newly failing",
            (Some((false, _)), Some((true, _))) => "now passing",
            (None, Some(_)) => "only in B",
            (Some(_), None) => "only in A",
            _ => "",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub threshold_pct: f64,
    pub groups: Vec<Group>,
    pub thresholds: Vec<ThresholdChange>,
    pub verdict_a: Option<String>,
    pub verdict_b: Option<String>,
    pub notes: Vec<String>,
}

impl Comparison {
    pub fn worse(&self) -> usize {
        self.count(Change::Worse)
    }

    pub fn better(&self) -> usize {
        self.count(Change::Better)
    }

    fn count(&self, c: Change) -> usize {
        self.groups
            .iter()
            .flat_map(|g| &g.rows)
            .filter(|r| r.change == c)
            .count()
    }
}

pub fn compare(a: &Run, b: &Run, threshold_pct: f64) -> Comparison {
    let (fa, fb) = (figures::of(a), figures::of(b));
    let mut groups = vec![Group {
        name: None,
        rows: rows(
            fa.as_ref().map(|f| &f.total),
            fb.as_ref().map(|f| &f.total),
            threshold_pct,
        ),
    }];
    let mut names: Vec<&String> = fa
        .iter()
        .chain(fb.iter())
        .flat_map(|f| f.by_request.keys())
        .collect();
    names.sort();
    names.dedup();
    // With one request name on both sides, its figures are the totals.
    if names.len() == 1 {
        names.clear();
    }
    for n in names {
        let get =
            |f: &Option<figures::RunFigures>| f.as_ref().and_then(|f| f.by_request.get(n).cloned());
        let (ra, rb) = (get(&fa), get(&fb));
        groups.push(Group {
            name: Some(n.clone()),
            rows: rows(ra.as_ref(), rb.as_ref(), threshold_pct),
        });
    }
    let outcomes = |r: &Run| {
        r.status
            .as_ref()
            .map(|s| s.thresholds.clone())
            .unwrap_or_default()
    };
    let (ta, tb) = (outcomes(a), outcomes(b));
    let sources: Vec<&String> = ta.iter().chain(&tb).map(|o| &o.source).collect();
    let mut seen = std::collections::BTreeSet::new();
    let thresholds = sources
        .into_iter()
        .filter(|s| seen.insert(s.to_string()))
        .map(|s| {
            let find = |t: &[barrage_runner::thresholds::Outcome]| {
                t.iter()
                    .find(|o| &o.source == s)
                    .map(|o| (o.passed, o.observed_text.clone()))
            };
            ThresholdChange {
                source: s.clone(),
                a: find(&ta),
                b: find(&tb),
            }
        })
        .collect();
    let mut notes = Vec::new();
    for (tag, run, f) in [("A", a, &fa), ("B", b, &fb)] {
        for n in run.notes() {
            notes.push(format!("{tag} ({}): {n}", run.title()));
        }
        if f.as_ref().is_some_and(|f| !f.from_report) {
            notes.push(format!(
                "{tag}: figures from the status (rounded; at most the 20 busiest request names)"
            ));
        }
    }
    Comparison {
        a: a.title(),
        b: b.title(),
        threshold_pct,
        groups,
        thresholds,
        verdict_a: a.verdict(),
        verdict_b: b.verdict(),
        notes,
    }
}

fn marker(c: Change) -> &'static str {
    match c {
        Change::Better => "▲ better",
        Change::Worse => "▼ worse",
        Change::Changed => "≠",
        Change::Same | Change::Unknown => "",
    }
}

/// For the terminal. `colour`: ANSI colours (when stdout is a terminal and
/// NO_COLOR is unset); the words "better"/"worse" are there either way.
pub fn render_text(c: &Comparison, colour: bool) -> String {
    let paint = |s: String, ch: Change| -> String {
        match (colour, ch) {
            (true, Change::Worse) => format!("\x1b[1;31m{s}\x1b[0m"),
            (true, Change::Better) => format!("\x1b[32m{s}\x1b[0m"),
            _ => s,
        }
    };
    let mut out = String::new();
    let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "no verdict".into());
    let _ = writeln!(
        out,
        "\n  barrage compare · noise threshold {}%",
        c.threshold_pct
    );
    let _ = writeln!(out, "  A = {} ({})", c.a, v(&c.verdict_a));
    let _ = writeln!(out, "  B = {} ({})", c.b, v(&c.verdict_b));
    for n in &c.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    for g in &c.groups {
        let title = g.name.clone().unwrap_or_else(|| "(all)".into());
        let _ = writeln!(
            out,
            "\n  {title:<24} {:>12} {:>12} {:>9}",
            "A", "B", "change"
        );
        for r in &g.rows {
            let line = format!(
                "    {:<22} {:>12} {:>12} {:>9}  {}",
                r.label,
                r.text(r.a),
                r.text(r.b),
                r.delta_text(),
                marker(r.change)
            );
            let _ = writeln!(out, "{}", paint(line.trim_end().to_string(), r.change));
        }
    }
    if !c.thresholds.is_empty() {
        let _ = writeln!(out, "\n  thresholds");
        let side = |s: &Option<(bool, String)>| match s {
            Some((p, o)) => format!("{} {o}", if *p { "✓" } else { "✗" }),
            None => "–".into(),
        };
        for t in &c.thresholds {
            let change = match t.verdict() {
                "newly failing" => Change::Worse,
                "now passing" => Change::Better,
                _ => Change::Same,
            };
            let line = format!(
                "    {:<36} {:>14}  →  {:<14} {}",
                t.source,
                side(&t.a),
                side(&t.b),
                t.verdict()
            );
            let _ = writeln!(out, "{}", paint(line.trim_end().to_string(), change));
        }
    }
    let vchange = match (c.verdict_a.as_deref(), c.verdict_b.as_deref()) {
        (Some("Passed"), Some("Failed")) => Change::Worse,
        (Some("Failed"), Some("Passed")) => Change::Better,
        _ => Change::Same,
    };
    let _ = writeln!(
        out,
        "\n  {}",
        paint(
            format!("verdict: {} → {}", v(&c.verdict_a), v(&c.verdict_b)),
            vchange
        )
    );
    let _ = writeln!(
        out,
        "  {} worse, {} better beyond {}%\n",
        c.worse(),
        c.better(),
        c.threshold_pct
    );
    out
}

fn class(c: Change) -> &'static str {
    match c {
        Change::Better => "better",
        Change::Worse => "worse",
        Change::Changed => "changed",
        Change::Same | Change::Unknown => "same",
    }
}

/// The comparison as a self-contained page; with both reports, their
/// latency spectra overlaid.
pub fn render_html(c: &Comparison, a: &Run, b: &Run) -> String {
    let mut h = String::from("<main>");
    let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "no verdict".into());
    let verdict = match (c.verdict_a.as_deref(), c.verdict_b.as_deref()) {
        (_, Some("Failed")) => Some("Failed"),
        (_, Some("Passed")) if c.worse() == 0 => Some("Passed"),
        (_, Some("Passed")) => Some("Failed"),
        _ => None,
    };
    html::banner(
        &mut h,
        verdict,
        &format!("{} vs {}", c.a, c.b),
        &format!(
            "A: {} · B: {} · {} worse, {} better beyond {}%",
            v(&c.verdict_a),
            v(&c.verdict_b),
            c.worse(),
            c.better(),
            c.threshold_pct
        ),
    );
    if !c.notes.is_empty() {
        h.push_str(r#"<section class="notes" id="notes">"#);
        for n in &c.notes {
            let _ = write!(h, "<p>{}</p>", esc(n));
        }
        h.push_str("</section>");
    }
    h.push_str(r#"<h2>Side by side</h2><section id="compare"><table class="compare"><thead><tr><th>figure</th><th>A</th><th>B</th><th>change</th></tr></thead><tbody>"#);
    for g in &c.groups {
        let _ = write!(
            h,
            "<tr class=\"group\"><th colspan=\"4\" style=\"text-align:left\">{}</th></tr>",
            esc(&g.name.clone().unwrap_or_else(|| "(all requests)".into()))
        );
        for r in &g.rows {
            let _ = write!(
                h,
                "<tr class=\"{cls}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"{cls}\">{} {}</td></tr>",
                esc(r.label),
                esc(&r.text(r.a)),
                esc(&r.text(r.b)),
                esc(&r.delta_text()),
                esc(marker(r.change)),
                cls = class(r.change)
            );
        }
    }
    h.push_str("</tbody></table></section>");
    if !c.thresholds.is_empty() {
        h.push_str(r#"<h2>Thresholds</h2><section id="thresholds"><table><thead><tr><th>threshold</th><th>A</th><th>B</th><th>change</th></tr></thead><tbody>"#);
        let side = |s: &Option<(bool, String)>| match s {
            Some((true, o)) => format!("<span class=\"pass\">✓</span> {}", esc(o)),
            Some((false, o)) => format!("<span class=\"fail\">✗</span> {}", esc(o)),
            None => "–".into(),
        };
        for t in &c.thresholds {
            let cls = match t.verdict() {
                "newly failing" => "worse",
                "now passing" => "better",
                _ => "same",
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{cls}\">{}</td></tr>",
                esc(&t.source),
                side(&t.a),
                side(&t.b),
                t.verdict()
            );
        }
        h.push_str("</tbody></table></section>");
    }
    if let (Some(ra), Some(rb)) = (a.loaded(), b.loaded()) {
        let mut lines = html::spectrum_series(ra, " (A)");
        lines.truncate(1);
        lines.extend(html::spectrum_series(rb, " (B)").into_iter().take(1));
        h.push_str(r#"<h2>Latency spectrum</h2><section class="plots" id="plots"><figure>"#);
        h.push_str(&html::spectrum_chart(
            "plot-spectrum",
            "Latency percentile spectrum, A and B",
            &lines,
        ));
        h.push_str("<figcaption>All requests of each run, from its merged histogram; the axis is logarithmic in nines.</figcaption></figure></section>");
    }
    let _ = write!(
        h,
        "<footer>Generated by kubectl-barrage {}; changes within ±{}% count as noise.</footer></main>",
        env!("CARGO_PKG_VERSION"),
        c.threshold_pct
    );
    html::page(&format!("barrage · {} vs {}", c.a, c.b), &h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::{self, outcome, report, stats};

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
}
