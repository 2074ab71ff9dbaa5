//! The comparison itself: each figure of A and B, the change judged by the
//! direction that is better for it, per request and for the thresholds.

use crate::report::{
    Run,
    figures::{self, Figures},
    ms,
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

/// The mark of a change, in the text and the page alike.
pub(super) fn marker(c: Change) -> &'static str {
    match c {
        Change::Better => "▲ better",
        Change::Worse => "▼ worse",
        Change::Changed => "≠",
        Change::Same | Change::Unknown => "",
    }
}
