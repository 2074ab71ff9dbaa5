//! What every chart shares: the colours and dash patterns, the chart's
//! size and margins, pixel formatting, and escaping.

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

pub(super) const W: f64 = 760.0;
pub(super) const H: f64 = 300.0;
pub(super) const LEFT: f64 = 70.0;
pub(super) const RIGHT: f64 = 36.0;
pub(super) const TOP: f64 = 36.0;
pub(super) const BOTTOM: f64 = 48.0;

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

pub(super) fn px(x: f64) -> String {
    format!("{x:.1}")
}
