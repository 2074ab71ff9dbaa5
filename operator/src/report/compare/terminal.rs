//! The comparison for the terminal, in colour when asked.

use std::fmt::Write as _;

use super::diff::{Change, Comparison, marker};

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
