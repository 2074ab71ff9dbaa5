//! Line charts (time series, the percentile spectrum): the frame with its
//! grid and ticks, the series with gaps and markers, and the legend's
//! layout.

use std::fmt::Write as _;

use super::{
    canvas::{BOTTOM, DASHES, H, LEFT, PALETTE, RIGHT, TOP, W, esc, px},
    scale::Axis,
};

/// Beyond this many points, markers are left out (the line stays): a soak
/// test's thousands of intervals would only draw a smear of circles.
const MAX_MARKERS: usize = 400;

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
pub(super) fn text_w(s: &str, px_per_char: f64) -> f64 {
    s.chars().count() as f64 * px_per_char
}

/// Where each legend entry goes: (x, baseline y, series). One row right of
/// the title when it fits; otherwise rows of their own under the title,
/// which push the plot down by the returned height.
pub(super) fn legend_layout<'a>(
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
