//! Plots as inline SVG, drawn by our own code: the HTML report must open on a
//! machine with no network (no chart library from a CDN) and without
//! JavaScript. Two kinds: line charts (time series, the percentile spectrum)
//! and horizontal bar charts (status codes).
//!
//! Every string that reaches the SVG goes through [`esc`]: series names are
//! request names, which are user input.

use std::fmt::Write as _;

/// The Okabe–Ito palette: tells colours apart under the common forms of
/// colour blindness. Series also differ by dash pattern, so colour is never
/// the only cue.
pub const PALETTE: [&str; 7] = [
    "#0072B2", // blue
    "#E69F00", // orange
    "#D55E00", // vermillion
    "#009E73", // bluish green
    "#CC79A7", // reddish purple
    "#56B4E9", // sky blue
    "#000000", // black
];
pub const DASHES: [&str; 4] = ["", "7 4", "2 3", "9 3 2 3"];

const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;
/// Beyond this many points, markers are left out (the line stays): a soak
/// test's thousands of intervals would only draw a smear of circles.
const MAX_MARKERS: usize = 400;

/// Escapes text for HTML and SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How a value maps onto an axis, as a fraction 0..=1 of its length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    Linear {
        lo: f64,
        hi: f64,
    },
    /// Percentiles on a "nines" axis: 90% is one nine, 99% two, 99.9%
    /// three. The tail, where latency problems live, gets as much room as
    /// the body.
    Nines {
        max: f64,
    },
}

/// The number of nines of a percentile: -log10(1 - p/100); 99.9 -> 3.
pub fn nines(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(1e-12);
    -rest.log10()
}

/// The percentile with `n` nines: 2 -> 99.
pub fn percentile_of_nines(n: f64) -> f64 {
    100.0 * (1.0 - 10f64.powf(-n))
}

impl Scale {
    pub fn frac(&self, v: f64) -> f64 {
        let f = match *self {
            Scale::Linear { lo, hi } if hi > lo => (v - lo) / (hi - lo),
            Scale::Linear { .. } => 0.0,
            Scale::Nines { max } if max > 0.0 => nines(v) / max,
            Scale::Nines { .. } => 0.0,
        };
        f.clamp(0.0, 1.0)
    }
}

/// Round tick steps (1, 2 or 5 times a power of ten) from 0 up to at least
/// `max`, about `count` of them. The axis then ends on the last tick.
pub fn nice_ticks(max: f64, count: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / count.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let n = (max / step - 1e-9).ceil() as usize;
    (0..=n.max(1)).map(|i| i as f64 * step).collect()
}

/// A tick label: as many decimals as the step needs, no more.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    format!("{v:.decimals$}")
}

#[derive(Clone, Debug)]
pub struct Axis {
    /// With its unit, e.g. "latency (ms)".
    pub label: String,
    pub scale: Scale,
    pub ticks: Vec<(f64, String)>,
    /// A value with its unit, for point tooltips.
    pub fmt: fn(f64) -> String,
}

impl Axis {
    /// From 0 to a round number at or above `data_max`.
    pub fn linear(label: &str, data_max: f64, fmt: fn(f64) -> String) -> Axis {
        let ticks = nice_ticks(data_max, 5);
        let step = ticks.get(1).copied().unwrap_or(1.0);
        let hi = *ticks.last().unwrap_or(&1.0);
        Axis {
            label: label.into(),
            scale: Scale::Linear { lo: 0.0, hi },
            ticks: ticks.iter().map(|&t| (t, tick_label(t, step))).collect(),
            fmt,
        }
    }

    /// Percentiles from 0 to `max_nines` nines (5: 99.999%).
    pub fn nines(label: &str, max_nines: u32) -> Axis {
        let ticks = (0..=max_nines)
            .map(|n| {
                let p = percentile_of_nines(n as f64);
                let text = match n {
                    0 => "0%".to_string(),
                    n => format!("{:.*}%", n.saturating_sub(2) as usize, p),
                };
                (p, text)
            })
            .collect();
        Axis {
            label: label.into(),
            scale: Scale::Nines {
                max: max_nines as f64,
            },
            ticks,
            fmt: |p| format!("p{}", trim_float(p)),
        }
    }
}

/// 99.900 -> "99.9", 50 -> "50".
pub fn trim_float(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub colour: &'static str,
    pub dash: &'static str,
    /// In data units; `None` breaks the line (no data there).
    pub points: Vec<Option<(f64, f64)>>,
}

impl Series {
    pub fn new(name: &str, index: usize, points: Vec<Option<(f64, f64)>>) -> Series {
        Series {
            name: name.into(),
            colour: PALETTE[index % PALETTE.len()],
            dash: DASHES[index % DASHES.len()],
            points,
        }
    }
}

pub struct LineChart {
    /// Unique on the page: prefixes element ids.
    pub id: String,
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
}

fn px(x: f64) -> String {
    format!("{x:.1}")
}

/// Writes the frame of a chart: title, grid, ticks and axis labels. The
/// plot starts at `top` (below the title and legend rows); `h` is the whole
/// chart's height.
#[allow(clippy::too_many_arguments)]
fn frame(
    out: &mut String,
    id: &str,
    title: &str,
    x: &Axis,
    y: &Axis,
    plot_w: f64,
    top: f64,
    h: f64,
) {
    let plot_h = h - top - BOTTOM;
    let _ = write!(
        out,
        r#"<text class="title" x="{}" y="18">{}</text>"#,
        px(LEFT),
        esc(title)
    );
    let _ = write!(out, r#"<g class="grid" id="{}-grid">"#, esc(id));
    for (v, text) in &y.ticks {
        let py = top + plot_h * (1.0 - y.scale.frac(*v));
        let _ = write!(
            out,
            r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}"/><text class="tick" x="{}" y="{}" text-anchor="end">{}</text>"#,
            px(LEFT),
            px(LEFT + plot_w),
            px(LEFT - 6.0),
            px(py + 4.0),
            esc(text),
            y = px(py)
        );
    }
    for (v, text) in &x.ticks {
        let pxx = LEFT + plot_w * x.scale.frac(*v);
        let _ = write!(
            out,
            r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}"/><text class="tick" x="{x}" y="{}" text-anchor="middle">{}</text>"#,
            px(top),
            px(top + plot_h + 4.0),
            px(top + plot_h + 17.0),
            esc(text),
            x = px(pxx)
        );
    }
    out.push_str("</g>");
    let _ = write!(
        out,
        r#"<rect class="frame" x="{}" y="{}" width="{}" height="{}"/>"#,
        px(LEFT),
        px(top),
        px(plot_w),
        px(plot_h)
    );
    let _ = write!(
        out,
        r#"<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>"#,
        px(LEFT + plot_w / 2.0),
        px(h - 8.0),
        esc(&x.label)
    );
    let _ = write!(
        out,
        r#"<text class="axis" transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        px(top + plot_h / 2.0),
        esc(&y.label)
    );
}

pub fn line_chart(c: &LineChart) -> String {
    let plot_w = W - LEFT - RIGHT;
    let (items, legend_h) = legend_layout(&c.title, &c.series, LEFT, LEFT + plot_w);
    let (top, h) = (TOP + legend_h, H + legend_h);
    let plot_h = h - top - BOTTOM;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart line-chart" id="{id}" viewBox="0 0 {W} {h}" role="img" aria-labelledby="{id}-t" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{}</title>"#,
        esc(&c.title),
        id = esc(&c.id)
    );
    frame(&mut out, &c.id, &c.title, &c.x, &c.y, plot_w, top, h);
    let at = |x: f64, y: f64| {
        (
            LEFT + plot_w * c.x.scale.frac(x),
            top + plot_h * (1.0 - c.y.scale.frac(y)),
        )
    };
    let total: usize = c.series.iter().map(|s| s.points.len()).sum();
    for s in &c.series {
        let _ = write!(
            out,
            r#"<g class="series" data-series="{}" stroke="{}" fill="{}">"#,
            esc(&s.name),
            s.colour,
            s.colour
        );
        let dash = if s.dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{}""#, s.dash)
        };
        for run in s.points.split(Option::is_none) {
            let coords: Vec<String> = run
                .iter()
                .flatten()
                .map(|&(x, y)| {
                    let (a, b) = at(x, y);
                    format!("{},{}", px(a), px(b))
                })
                .collect();
            if !coords.is_empty() {
                let _ = write!(
                    out,
                    r#"<polyline class="line" fill="none" points="{}"{dash}/>"#,
                    coords.join(" ")
                );
            }
        }
        if total <= MAX_MARKERS {
            for &(x, y) in s.points.iter().flatten() {
                let (a, b) = at(x, y);
                let _ = write!(
                    out,
                    r#"<circle class="pt" cx="{}" cy="{}" r="2.5"><title>{}: {}, {}</title></circle>"#,
                    px(a),
                    px(b),
                    esc(&s.name),
                    esc(&(c.x.fmt)(x)),
                    esc(&(c.y.fmt)(y))
                );
            }
        }
        out.push_str("</g>");
    }
    out.push_str(r#"<g class="legend">"#);
    for (x, y, s) in items {
        let dash = if s.dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{}""#, s.dash)
        };
        let _ = write!(
            out,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2.5"{dash}/><text x="{}" y="{}">{}</text>"#,
            px(x),
            px(y - 4.0),
            px(x + 22.0),
            px(y - 4.0),
            s.colour,
            px(x + 27.0),
            px(y),
            esc(&s.name)
        );
    }
    out.push_str("</g></svg>");
    out
}

/// Rough text widths (the SVG is laid out without a browser): 12px text
/// and the 14px bold title, in DejaVu Sans-like proportions.
fn text_w(s: &str, px_per_char: f64) -> f64 {
    s.chars().count() as f64 * px_per_char
}

/// Where each legend entry goes: (x, baseline y, series). One row right of
/// the title when it fits; otherwise rows of their own under the title,
/// which push the plot down by the returned height.
fn legend_layout<'a>(
    title: &str,
    series: &'a [Series],
    left: f64,
    right: f64,
) -> (Vec<(f64, f64, &'a Series)>, f64) {
    let width = |s: &Series| 27.0 + text_w(&s.name, 7.2) + 16.0;
    let total: f64 = series.iter().map(width).sum();
    let title_end = left + text_w(title, 8.6) + 24.0;
    if title_end + total <= right {
        let mut x = right - total;
        let items = series
            .iter()
            .map(|s| {
                let at = (x, 22.0, s);
                x += width(s);
                at
            })
            .collect();
        return (items, 0.0);
    }
    let (mut x, mut row) = (left, 1.0);
    let mut items = Vec::new();
    for s in series {
        if x + width(s) > right && x > left {
            x = left;
            row += 1.0;
        }
        items.push((x, 22.0 + 18.0 * row, s));
        x += width(s);
    }
    (items, 18.0 * row)
}

#[derive(Clone, Debug)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub colour: &'static str,
    /// Hatched: a different kind of thing (a transport error, no response).
    pub hatched: bool,
    /// Shown after the bar, e.g. "1,234 (12.0%)".
    pub note: String,
}

/// Horizontal bars, one row each, scaled to the largest; every bar has its
/// value written beside it, so a small error count stays visible next to a
/// large success count.
pub fn bar_chart(id: &str, title: &str, x_label: &str, bars: &[Bar]) -> String {
    const ROW: f64 = 26.0;
    const LABEL_W: f64 = 110.0;
    const NOTE_W: f64 = 150.0;
    let h = TOP + ROW * bars.len().max(1) as f64 + BOTTOM;
    let plot_w = W - LABEL_W - NOTE_W;
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let ticks = nice_ticks(max, 5);
    let hi = *ticks.last().unwrap_or(&1.0);
    let step = ticks.get(1).copied().unwrap_or(1.0);
    let scale = Scale::Linear { lo: 0.0, hi };
    let mut out = String::new();
    let id = esc(id);
    let _ = write!(
        out,
        r#"<svg class="chart bar-chart" id="{id}" viewBox="0 0 {W} {h}" role="img" aria-labelledby="{id}-t" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{}</title>"#,
        esc(title)
    );
    let _ = write!(
        out,
        r#"<text class="title" x="{}" y="18">{}</text>"#,
        px(LABEL_W),
        esc(title)
    );
    // The hatch is drawn in the bar's own colour with white stripes.
    out.push_str("<defs>");
    for (i, b) in bars.iter().enumerate().filter(|(_, b)| b.hatched) {
        let _ = write!(
            out,
            r##"<pattern id="{id}-hatch-{i}" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)"><rect width="6" height="6" fill="{}"/><line x1="0" y1="0" x2="0" y2="6" stroke="#fff" stroke-width="2.5"/></pattern>"##,
            b.colour
        );
    }
    out.push_str("</defs>");
    let plot_h = ROW * bars.len().max(1) as f64;
    out.push_str(r#"<g class="grid">"#);
    for t in &ticks {
        let x = LABEL_W + plot_w * scale.frac(*t);
        let _ = write!(
            out,
            r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}"/><text class="tick" x="{x}" y="{}" text-anchor="middle">{}</text>"#,
            px(TOP - 4.0),
            px(TOP + plot_h + 4.0),
            px(TOP + plot_h + 17.0),
            tick_label(*t, step),
            x = px(x)
        );
    }
    out.push_str("</g>");
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let mut w = plot_w * scale.frac(b.value);
        if b.value > 0.0 {
            w = w.max(2.0);
        }
        let fill = if b.hatched {
            format!("url(#{id}-hatch-{i})")
        } else {
            b.colour.to_string()
        };
        let _ = write!(
            out,
            r#"<g class="bar{}" data-label="{}" data-value="{}"><text class="tick" x="{}" y="{}" text-anchor="end">{}</text><rect x="{}" y="{}" width="{}" height="{}" fill="{fill}" stroke="{}"><title>{}: {}</title></rect><text class="note" x="{}" y="{}">{}</text></g>"#,
            if b.hatched { " hatched" } else { "" },
            esc(&b.label),
            b.value,
            px(LABEL_W - 8.0),
            px(y + ROW / 2.0 + 4.0),
            esc(&b.label),
            px(LABEL_W),
            px(y + 4.0),
            px(w),
            px(ROW - 8.0),
            b.colour,
            esc(&b.label),
            esc(&b.note),
            px(LABEL_W + w + 6.0),
            px(y + ROW / 2.0 + 4.0),
            esc(&b.note)
        );
    }
    let _ = write!(
        out,
        r#"<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>"#,
        px(LABEL_W + plot_w / 2.0),
        px(h - 8.0),
        esc(x_label)
    );
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        assert_eq!(
            nice_ticks(87.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(
            nice_ticks(100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(
            nice_ticks(0.34, 5),
            vec![0.0, 0.1, 0.2, 0.30000000000000004, 0.4]
        );
        // No data: still an axis, 0..1.
        assert_eq!(nice_ticks(0.0, 5).last(), Some(&1.0));
        assert_eq!(nice_ticks(f64::NAN, 5).last(), Some(&1.0));
        let t = nice_ticks(12_345.0, 5);
        assert!(*t.last().unwrap() >= 12_345.0 && t.len() <= 7, "{t:?}");
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(2000.0, 500.0), "2000");
    }

    #[test]
    fn the_nines_scale_gives_each_nine_equal_room() {
        let s = Scale::Nines { max: 5.0 };
        assert_eq!(s.frac(0.0), 0.0);
        assert!((s.frac(90.0) - 0.2).abs() < 1e-9);
        assert!((s.frac(99.0) - 0.4).abs() < 1e-9);
        assert!((s.frac(99.9) - 0.6).abs() < 1e-9);
        assert!((s.frac(99.999) - 1.0).abs() < 1e-9);
        assert_eq!(s.frac(100.0), 1.0);
        assert!((percentile_of_nines(3.0) - 99.9).abs() < 1e-9);
        let labels: Vec<String> = Axis::nines("p", 5).ticks.into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
    }

    #[test]
    fn points_land_inside_the_plot_and_gaps_break_the_line() {
        let c = LineChart {
            id: "t".into(),
            title: "t".into(),
            x: Axis::linear("s", 10.0, |v| format!("{v}s")),
            y: Axis::linear("ms", 50.0, |v| format!("{v}ms")),
            series: vec![Series::new(
                "a",
                0,
                vec![
                    Some((0.0, 0.0)),
                    Some((10.0, 50.0)),
                    None,
                    Some((5.0, 25.0)),
                ],
            )],
        };
        let svg = line_chart(&c);
        // Two polylines (the gap splits the series), three markers.
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches(r#"class="pt""#).count(), 3);
        // (0,0) is the bottom-left corner, (10,50) the top-right one.
        let (plot_w, plot_h) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        assert!(svg.contains(&format!(
            r#"points="{},{} {},{}""#,
            px(LEFT),
            px(TOP + plot_h),
            px(LEFT + plot_w),
            px(TOP)
        )));
        assert!(svg.contains("<title>a: 10s, 50ms</title>"));
    }

    #[test]
    fn a_long_legend_wraps_under_the_title_without_overlaps() {
        let few = [Series::new("p50", 0, vec![]), Series::new("p95", 1, vec![])];
        let (items, extra) = legend_layout("Latency", &few, LEFT, W - RIGHT);
        assert_eq!(extra, 0.0);
        assert!(items.iter().all(|i| i.1 == 22.0 && i.0 > LEFT + 80.0));
        let many: Vec<Series> = (0..7)
            .map(|i| Series::new(&format!("a-rather-long-request-name-{i}"), i, vec![]))
            .collect();
        let (items, extra) = legend_layout("Latency percentile spectrum", &many, LEFT, W - RIGHT);
        assert!(extra >= 36.0, "{extra}");
        for w in items.windows(2) {
            let ((x0, y0, s0), (x1, y1, _)) = (w[0], w[1]);
            assert!(
                y1 > y0 || x1 >= x0 + 27.0 + text_w(&s0.name, 7.2),
                "{:?}",
                (x0, x1)
            );
            assert!(x1 + 27.0 + text_w(&w[1].2.name, 7.2) <= W - RIGHT + 1e-9);
        }
        // The chart grows by the legend's rows; the plot keeps its height.
        let c = LineChart {
            id: "t".into(),
            title: "Latency percentile spectrum".into(),
            x: Axis::linear("s", 1.0, |v| v.to_string()),
            y: Axis::linear("ms", 1.0, |v| v.to_string()),
            series: many,
        };
        assert!(line_chart(&c).contains(&format!("viewBox=\"0 0 {W} {}\"", H + extra)));
    }

    #[test]
    fn series_and_bar_labels_are_escaped() {
        let c = LineChart {
            id: "t".into(),
            title: "<b>".into(),
            x: Axis::linear("s", 1.0, |v| v.to_string()),
            y: Axis::linear("ms", 1.0, |v| v.to_string()),
            series: vec![Series::new("<script>x</script>", 0, vec![Some((0.5, 0.5))])],
        };
        let svg = line_chart(&c);
        assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;x&lt;/script&gt;"));
        let bars = bar_chart(
            "b",
            "codes",
            "responses",
            &[Bar {
                label: "<img src=x>".into(),
                value: 1.0,
                colour: PALETTE[0],
                hatched: true,
                note: "1".into(),
            }],
        );
        assert!(!bars.contains("<img"), "{bars}");
        assert!(bars.contains("url(#b-hatch-0)"));
    }

    #[test]
    fn bars_scale_to_the_largest_and_small_ones_stay_visible() {
        let bar = |label: &str, value: f64| Bar {
            label: label.into(),
            value,
            colour: PALETTE[0],
            hatched: false,
            note: String::new(),
        };
        let svg = bar_chart("b", "t", "n", &[bar("200", 100_000.0), bar("500", 1.0)]);
        let widths: Vec<f64> = svg
            .split(r#"<rect x="110.0" y=""#)
            .skip(1)
            .map(|s| {
                let w = s.split(r#"width=""#).nth(1).unwrap();
                w[..w.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(widths.len(), 2, "{svg}");
        assert_eq!(widths[0], 500.0); // 100,000 is the axis's end
        assert_eq!(widths[1], 2.0); // one error still shows
    }
}
