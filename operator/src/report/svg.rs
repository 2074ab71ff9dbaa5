//! Plots as inline SVG, drawn by our own code: the HTML report must open on a
//! machine with no network (no chart library from a CDN) and without
//! JavaScript. Two kinds: line charts (time series, the percentile spectrum)
//! and horizontal bar charts (status codes).
//!
//! Every string that reaches the SVG goes through [`esc`]: series names are
//! request names, which are user input.
//!
//! `canvas` holds what every chart shares (palette, dashes, geometry,
//! [`esc`]), `scale` the axes and their scales (linear, nines) and ticks,
//! `line` the line chart with its legend, `bar` the bar chart. The tests
//! are in `svg/tests.rs`.

mod bar;
mod canvas;
mod line;
mod scale;

pub use bar::{Bar, bar_chart};
pub use canvas::{DASHES, PALETTE, esc};
pub use line::{LineChart, Series, line_chart};
pub use scale::{Axis, Scale, nice_ticks, nines, percentile_of_nines, tick_label, trim_float};

#[cfg(test)]
mod tests;
