//! The page's plots: throughput and latency over time, the latency
//! spectrum (shared with `compare`) and the status codes, built from
//! `series` and drawn by `svg`.

use std::fmt::Write as _;

use barrage_runner::report::RequestSummary;

use super::tables::thousands;
use crate::report::{
    duration, ms,
    series::{self, Timeline},
    svg::{self, Axis, Bar, LineChart, PALETTE, Series},
};

/// Spectrum lines beyond the overall one: more would be unreadable.
const MAX_SPECTRUM_REQUESTS: usize = 6;

fn figure(b: &mut String, svg: &str, caption: &str) {
    let _ = write!(
        b,
        "<figure>{svg}<figcaption>{caption}</figcaption></figure>"
    );
}

pub(super) fn plots(b: &mut String, r: &barrage_runner::report::Report) {
    match series::timeline(&r.snapshot) {
        Some(t) => {
            figure(b, &throughput_chart(&t), &format!(
                "Requests completed per second in each {} interval, over the seconds it covers (the last one ends with the run; a tail shorter than half an interval is drawn with the interval before it); errors per second dashed. A dip to zero is an interval in which nothing completed.",
                duration(t.interval_secs)
            ));
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
            "Responses by status code and failures without a response.<span class=\"swatch\" style=\"background:{}\"></span>2xx<span class=\"swatch\" style=\"background:{}\"></span>3xx<span class=\"swatch\" style=\"background:{}\"></span>4xx<span class=\"swatch\" style=\"background:{}\"></span>5xx<span class=\"swatch hatch\"></span>no response (connect, TLS, timeout, broken HTTP, interrupted) or capture failed",
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
