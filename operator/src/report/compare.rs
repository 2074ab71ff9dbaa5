//! `kubectl barrage compare A B`: two runs side by side, total and per
//! request, with the changes beyond a noise threshold marked better or
//! worse in the direction that matters for each figure (latency and errors
//! up is worse, throughput down is worse).
//!
//! `diff` judges the changes and builds the [`Comparison`]; `terminal`
//! renders it as text, `page` as an HTML page. The tests are in
//! `compare/tests.rs`.

mod diff;
mod page;
mod terminal;

pub use diff::{Better, Change, Comparison, Group, Row, ThresholdChange, compare, judge};
pub use page::render_html;
pub use terminal::render_text;

#[cfg(test)]
mod tests;
