//! Horizontal bar charts (status codes): one row a bar, its value beside
//! it, hatched for a different kind of thing.

use std::fmt::Write as _;

use super::{
    canvas::{BOTTOM, TOP, W, esc, px},
    scale::{Scale, nice_ticks, tick_label},
};

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
