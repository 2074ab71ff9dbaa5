//! Windowed thresholds: rules over time slices of the run, judged on the
//! per-interval histograms (`Snapshot::intervals`, one per `reportInterval`).
//!
//! ```text
//! error_rate[each 5m] < 1%                     every full 5-minute window
//! p(95)[last 10m] <= 1.2 * p(95)[first 10m]    end of the run vs its start
//! rps[each 1m] >= 100
//! p(99)[from 10m to 20m] < 300ms
//! p(95)[each 5m] < 2 * p(95)                   no window much worse than the whole test
//! ```
//!
//! How windows are cut. The series has one interval per `reportInterval`
//! (width w) counted from the start of the load; a run that lasted T has
//! `floor(T / w)` whole intervals, and only whole intervals belong to
//! windows (an interval cut short by the end of the run, such as the
//! responses that arrive during the graceful stop, still counts in the
//! whole-test figures but in no window). With n whole intervals and a
//! window of k intervals:
//! - `first D`: intervals `0..k`.
//! - `last D`: intervals `n-k..n`.
//! - `from A to B`: intervals `A/w..B/w`.
//! - `each D`: `0..k`, `k..2k`, ... every full window; a partial trailing
//!   window (the run's whole intervals not a multiple of k) is not judged.
//!
//! A window's figures come from merging its intervals' histograms and
//! counts exactly (percentiles are never averaged): `p(N)`, `med`, `avg`,
//! `min`, `max` of the merged histogram, `error_rate` = errors / requests,
//! `rps` = requests / D, `requests` and `errors` the window's counts.
//! `dropped` has no window (it is not kept per interval), and the series
//! holds all requests together, so a window cannot take `for NAME`.
//!
//! Judging at the end ([`evaluate`]). A window the run did not cover (a run
//! shorter than `first 10m`, no full `each` window) is "no data" and fails,
//! like a threshold on a request that never ran. A window without requests
//! has no latency or error rate and fails too (a soak test that sent nothing
//! for five minutes is not healthy). For `each`, the outcome names the worst
//! failing window (or, when all pass, the worst window) and how many failed.
//!
//! Judging live ([`evaluate_live`], `abortOnFail`). Only figures that can no
//! longer change are judged: windows that ended at least [`LIVE_MARGIN_US`]
//! ago (so every runner has closed them). `each` windows are judged as they
//! complete, `first` and `from ... to` once they have ended; `last` and the
//! whole test (either side) are only known at the end, so such thresholds
//! are only judged then. A window without requests is not a live failure.
//! Live pulls normally leave the series out; [`series_due`] tells a caller
//! when a window has ended so that one pull carries it.
//!
//! The syntax (`[each 5m]`, a baseline's `1.2 * p(95)[first 10m]`) is
//! parsed in `parse`.

use std::time::Duration;

use super::{Metric, Observations, Op, Outcome, Scope, Threshold};
use crate::{
    duration::format_duration,
    histogram::{self, Latency},
    snapshot::Interval,
};

/// How long after a window's end it is judged live: runners close their
/// intervals on their own clocks, a little after the instant.
pub const LIVE_MARGIN_US: u64 = 1_000_000;

/// A time slice of the run, from the start of the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    First(Duration),
    Last(Duration),
    Each(Duration),
    /// `from A to B`.
    Range(Duration, Duration),
}

/// The right side `K * METRIC[WINDOW]` (K is `Threshold::value`).
#[derive(Clone, Debug, PartialEq)]
pub struct Baseline {
    pub metric: Metric,
    /// `None`: the whole test.
    pub window: Option<Window>,
}

/// What a plan fixes that windows must agree with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The plan's `reportInterval`: the width of one interval.
    pub interval: Duration,
    /// Whether `reportInterval` was left at its default (for the message).
    pub interval_is_default: bool,
    /// The planned length of the load, when the plan fixes one.
    pub length: Option<Duration>,
}

/// The per-interval series as windowed thresholds read it.
#[derive(Clone, Copy, Debug)]
pub struct Series<'a> {
    /// The width of one interval, µs.
    pub interval_us: u64,
    /// How long the run has lasted (so far), µs.
    pub elapsed_us: u64,
    /// Sorted by index; a missing index had no requests.
    pub intervals: &'a [Interval],
}

impl Window {
    /// The length of one window.
    pub fn length(&self) -> Duration {
        match *self {
            Window::First(d) | Window::Last(d) | Window::Each(d) => d,
            Window::Range(a, b) => b.saturating_sub(a),
        }
    }

    /// Whether its figures are final once it has ended (not `last`).
    fn settles(&self) -> bool {
        !matches!(self, Window::Last(_))
    }

    /// Whether one of its windows ends in `(after_us, until_us]`.
    fn ends_between(&self, after_us: u64, until_us: u64) -> bool {
        let within = |end: Duration| {
            let end = end.as_micros() as u64;
            after_us < end && end <= until_us
        };
        match *self {
            Window::First(d) | Window::Range(_, d) => within(d),
            Window::Each(d) => {
                let d = (d.as_micros() as u64).max(1);
                until_us / d > after_us / d
            }
            Window::Last(_) => false,
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Window::First(d) => write!(f, "first {}", format_duration(d)),
            Window::Last(d) => write!(f, "last {}", format_duration(d)),
            Window::Each(d) => write!(f, "each {}", format_duration(d)),
            Window::Range(a, b) => {
                write!(f, "from {} to {}", format_duration(a), format_duration(b))
            }
        }
    }
}

impl Threshold {
    /// Whether a live round can judge it: `abortOnFail`, a window on the
    /// left, and every side's figures final once their window has ended.
    pub fn is_live_windowed(&self) -> bool {
        self.abort_on_fail
            && self.window.as_ref().is_some_and(Window::settles)
            && self
                .baseline
                .as_ref()
                .is_none_or(|b| b.window.as_ref().is_some_and(Window::settles))
    }

    fn windows(&self) -> impl Iterator<Item = &Window> {
        self.window
            .iter()
            .chain(self.baseline.iter().filter_map(|b| b.window.as_ref()))
    }
}

/// Whether a live pull `elapsed_us` into the run should carry the interval
/// series: a window that a live-judged threshold reads has ended after
/// `judged_us` (the horizon of the last series judged, see
/// [`live_horizon_us`]) and at least [`LIVE_MARGIN_US`] ago. So a soak test
/// with `error_rate[each 5m] < 1% abortOnFail` pulls the series once every
/// five minutes, not on every round.
pub fn series_due(thresholds: &[Threshold], judged_us: u64, elapsed_us: u64) -> bool {
    let until = elapsed_us.saturating_sub(LIVE_MARGIN_US);
    thresholds
        .iter()
        .filter(|t| t.is_live_windowed())
        .flat_map(Threshold::windows)
        .any(|w| w.ends_between(judged_us, until))
}

/// Up to where (µs from the start) a live series settles: the whole
/// intervals that ended at least [`LIVE_MARGIN_US`] before `elapsed_us`.
pub fn live_horizon_us(interval_us: u64, elapsed_us: u64) -> u64 {
    let w = interval_us.max(1);
    elapsed_us.saturating_sub(LIVE_MARGIN_US) / w * w
}

/// A window's merged figures.
struct Stats {
    requests: u64,
    errors: u64,
    latency: Latency,
    width_us: u64,
}

impl Series<'_> {
    /// Whole intervals that count: those that ended `margin_us` before the
    /// latest result.
    fn whole(&self, margin_us: u64) -> u64 {
        self.elapsed_us.saturating_sub(margin_us) / self.interval_us
    }

    /// Intervals `from..to` merged exactly.
    fn stats(&self, from: u64, to: u64) -> Stats {
        let mut s = Stats {
            requests: 0,
            errors: 0,
            latency: histogram::new_latency(),
            width_us: (to - from) * self.interval_us,
        };
        let start = self.intervals.partition_point(|iv| iv.index < from);
        for iv in self.intervals[start..]
            .iter()
            .take_while(|iv| iv.index < to)
        {
            s.requests += iv.requests;
            s.errors += iv.errors;
            // Every packed histogram was checked when its snapshot was decoded.
            if let Ok(h) = iv.latency.unpack() {
                s.latency
                    .add(&h)
                    .expect("auto-resizing histograms always add");
            }
        }
        s
    }

    /// The interval ranges `window` covers given `whole` whole intervals;
    /// `Err` says why it cannot be judged.
    fn ranges(&self, window: Window, whole: u64) -> Result<Vec<(u64, u64)>, String> {
        let w = self.interval_us;
        let count = |d: Duration| -> Result<u64, String> {
            let us = d.as_micros() as u64;
            if !us.is_multiple_of(w) {
                return Err(format!(
                    "{} is not a whole number of intervals of {}",
                    format_duration(d),
                    format_duration(Duration::from_micros(w))
                ));
            }
            Ok(us / w)
        };
        let covered = || {
            format!(
                "the run covered {} in whole intervals",
                format_duration(Duration::from_micros(whole * w))
            )
        };
        let (from, to) = match window {
            Window::Each(d) => {
                let k = count(d)?.max(1);
                if whole < k {
                    return Err(format!(
                        "{}, less than one window of {}",
                        covered(),
                        format_duration(d)
                    ));
                }
                return Ok((0..whole / k).map(|j| (j * k, (j + 1) * k)).collect());
            }
            Window::First(d) => (0, count(d)?),
            Window::Last(d) => {
                let k = count(d)?;
                if whole < k {
                    return Err(format!(
                        "{}, the window needs {}",
                        covered(),
                        format_duration(d)
                    ));
                }
                (whole - k, whole)
            }
            Window::Range(a, b) => (count(a)?, count(b)?),
        };
        if to > whole {
            return Err(format!("{}, the window needs {}", covered(), window));
        }
        Ok(vec![(from, to)])
    }
}

impl Metric {
    /// This metric over a window; `None` when the window has no requests
    /// (latency and error rate need some).
    fn of_window(&self, s: &Stats) -> Option<f64> {
        let n = s.requests;
        Some(match self {
            Metric::Requests => n as f64,
            Metric::Errors => s.errors as f64,
            Metric::Rps => n as f64 * 1e6 / s.width_us.max(1) as f64,
            Metric::Dropped => return None,
            Metric::ErrorRate if n == 0 => return None,
            Metric::ErrorRate => s.errors as f64 / n as f64,
            _ if s.latency.is_empty() => return None,
            Metric::Percentile(p) => s.latency.value_at_quantile(p / 100.0) as f64,
            Metric::Avg => s.latency.mean(),
            Metric::Min => s.latency.min() as f64,
            Metric::Max => s.latency.max() as f64,
        })
    }
}

fn span(series: &Series, (from, to): (u64, u64)) -> String {
    let at = |i: u64| format_duration(Duration::from_micros(i * series.interval_us));
    format!("{}-{}", at(from), at(to))
}

/// One side's figure: over the whole test, or over one window.
struct Figure {
    value: Option<f64>,
    /// `Some("10m-15m")` for a window.
    span: Option<String>,
}

/// Live or at the end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Final,
    Live,
}

impl Mode {
    fn margin_us(self) -> u64 {
        match self {
            Mode::Final => 0,
            Mode::Live => LIVE_MARGIN_US,
        }
    }
}

/// A side that reads one figure (whole test, `first`, `last`, `from ... to`).
fn figure(
    metric: Metric,
    window: Option<Window>,
    scope: Option<&Scope>,
    obs: &dyn Observations,
    mode: Mode,
) -> Result<Figure, String> {
    let Some(window) = window else {
        return Ok(Figure {
            value: obs.observe(&metric, scope).filter(|v| !v.is_nan()),
            span: None,
        });
    };
    let series = obs.series().ok_or("the results hold no interval series")?;
    let ranges = series.ranges(window, series.whole(mode.margin_us()))?;
    let range = ranges[0];
    Ok(Figure {
        value: metric.of_window(&series.stats(range.0, range.1)),
        span: Some(span(&series, range)),
    })
}

fn outcome(t: &Threshold, observed: Option<f64>, text: String, passed: bool) -> Outcome {
    Outcome {
        source: t.source.clone(),
        observed,
        observed_text: text,
        passed,
        abort_on_fail: t.abort_on_fail,
        default: t.is_default,
    }
}

/// The limit as a number and as words: "< 1%", or "<= 42.1ms (1.2 × p(95)
/// 35.1ms in 0s-10m)".
fn limit(t: &Threshold, obs: &dyn Observations, mode: Mode) -> Result<(f64, String), String> {
    let Some(b) = &t.baseline else {
        return Ok((
            t.value,
            format!("{} {}", t.op, t.metric.format_value(t.value)),
        ));
    };
    let f = figure(b.metric, b.window, t.scope.as_ref(), obs, mode)?;
    let where_ = f.span.map(|s| format!(" in {s}")).unwrap_or_default();
    let Some(v) = f.value else {
        return Err(format!("no data for {}{where_}", b.metric));
    };
    let factor = if t.value == 1.0 {
        String::new()
    } else {
        format!("{} × ", t.value)
    };
    let limit = t.value * v;
    Ok((
        limit,
        format!(
            "{} {} ({factor}{} {}{where_})",
            t.op,
            t.metric.format_observed(limit),
            b.metric,
            b.metric.format_observed(v)
        ),
    ))
}

/// Checks a windowed threshold against final results.
pub(super) fn evaluate(t: &Threshold, obs: &dyn Observations) -> Outcome {
    judge(t, obs, Mode::Final).expect("the end always gives a verdict")
}

/// Checks a windowed `abortOnFail` threshold live: `Some` only for a
/// failure that can no longer change.
pub(super) fn evaluate_live(t: &Threshold, obs: &dyn Observations) -> Option<Outcome> {
    if !t.is_live_windowed() {
        return None;
    }
    judge(t, obs, Mode::Live).filter(|o| !o.passed)
}

/// The verdict, or (live) `None` when it is not settled yet.
fn judge(t: &Threshold, obs: &dyn Observations, mode: Mode) -> Option<Outcome> {
    let no_data = |why: String| match mode {
        Mode::Live => None,
        Mode::Final => Some(outcome(t, None, format!("no data: {why}"), false)),
    };
    let (limit, limit_text) = match limit(t, obs, mode) {
        Ok(l) => l,
        Err(why) => return no_data(why),
    };
    if let Some(Window::Each(d)) = t.window {
        return judge_each(t, obs, mode, d, limit, &limit_text);
    }
    let f = match figure(t.metric, t.window, t.scope.as_ref(), obs, mode) {
        Ok(f) => f,
        Err(why) => return no_data(why),
    };
    let where_ = f.span.map(|s| format!("window {s}: ")).unwrap_or_default();
    let Some(v) = f.value else {
        return no_data(format!("{where_}no requests"));
    };
    let text = format!(
        "{where_}{} {}, limit {limit_text}",
        t.metric,
        t.metric.format_observed(v)
    );
    Some(outcome(t, Some(v), text, t.op.holds(v, limit)))
}

fn judge_each(
    t: &Threshold,
    obs: &dyn Observations,
    mode: Mode,
    d: Duration,
    limit: f64,
    limit_text: &str,
) -> Option<Outcome> {
    let no_data = |why: String| match mode {
        Mode::Live => None,
        Mode::Final => Some(outcome(t, None, format!("no data: {why}"), false)),
    };
    let Some(series) = obs.series() else {
        return no_data("the results hold no interval series".into());
    };
    let ranges = match series.ranges(Window::Each(d), series.whole(mode.margin_us())) {
        Ok(r) => r,
        Err(why) => return no_data(why),
    };
    let values: Vec<((u64, u64), Option<f64>)> = ranges
        .iter()
        .map(|&(a, b)| ((a, b), t.metric.of_window(&series.stats(a, b))))
        .collect();
    // Live, an empty window is not (yet) a failure.
    let fails = |v: Option<f64>| match v {
        Some(v) => !t.op.holds(v, limit),
        None => mode == Mode::Final,
    };
    let failed = values.iter().filter(|(_, v)| fails(*v)).count();
    // The window to show: the worst failing one (an empty one when only
    // empty ones failed), else the worst of all.
    let worse = |a: f64, b: f64| match t.op {
        Op::Lt | Op::Le => a > b,
        Op::Gt | Op::Ge => a < b,
        Op::Eq | Op::Ne => false,
    };
    let shown = values
        .iter()
        .filter(|(_, v)| failed == 0 || fails(*v))
        .reduce(|best, cur| match (best.1, cur.1) {
            (None, Some(_)) => cur,
            (Some(b), Some(c)) if worse(c, b) => cur,
            _ => best,
        });
    let total = values.len();
    // None: live, before the first window has ended.
    let &(range, value) = shown?;
    let text = value.map_or_else(
        || "no requests".to_string(),
        |v| format!("{} {}", t.metric, t.metric.format_observed(v)),
    );
    let of = format_duration(d);
    let text = if failed == 0 {
        format!(
            "worst window {}: {text}, limit {limit_text}; {total} window(s) of {of} passed",
            span(&series, range)
        )
    } else {
        format!(
            "window {}: {text}, limit {limit_text}; {failed} of {total} window(s) of {of} failed",
            span(&series, range)
        )
    };
    Some(outcome(t, value, text, failed == 0))
}

mod parse;

#[cfg(test)]
mod tests;
