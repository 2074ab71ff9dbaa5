//! Judging thresholds against results: the [`Observations`] a result set
//! offers, the verdict at the end ([`evaluate`]) and the live one
//! ([`evaluate_live`]); windowed thresholds are handed to [`super::window`].
//! Also which thresholds a plan is judged by ([`plan_sources`]).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Metric, Op, Scope, Series, Threshold, window};

/// The rule a plan is judged by when none of its own bounds the errors of
/// the whole run, so that a run in which every request failed never
/// passes. `thresholds: []` turns it off.
pub const DEFAULT: &str = "error_rate < 1%";

/// The thresholds a plan is judged by, with whether each is the default:
/// the plan's own list, plus [`DEFAULT`] when the plan gives none (absent,
/// not `[]`) or when none of its own bounds the errors of all requests
/// (latency thresholds alone would pass a run whose requests all failed
/// fast).
pub fn plan_sources(list: Option<&[String]>) -> Vec<(&str, bool)> {
    match list {
        None => vec![(DEFAULT, true)],
        Some(l) => {
            let mut out: Vec<(&str, bool)> = l.iter().map(|s| (s.as_str(), false)).collect();
            if !l.is_empty() && !l.iter().any(|s| bounds_errors(s)) {
                out.push((DEFAULT, true));
            }
            out
        }
    }
}

/// `error_rate` or `errors` of all requests held below a limit (over the
/// whole test or in every window).
fn bounds_errors(source: &str) -> bool {
    Threshold::parse(source).is_ok_and(|t| {
        matches!(t.metric, Metric::ErrorRate | Metric::Errors)
            && matches!(t.op, Op::Lt | Op::Le | Op::Eq)
            && t.scope.is_none()
            && t.baseline.is_none()
    })
}

/// What the evaluator needs from the results; the merged snapshot implements
/// it elsewhere.
pub trait Observations {
    /// The current value of `metric` for what `scope` selects (all requests
    /// when `None`), in the same units as [`Threshold::value`]. `None` means
    /// no data, e.g. no request of that name has completed. A NaN is treated
    /// like `None`.
    fn observe(&self, metric: &Metric, scope: Option<&Scope>) -> Option<f64>;

    /// The per-interval series that windowed thresholds read; `None` when
    /// these results carry none (live pulls usually leave it out).
    fn series(&self) -> Option<Series<'_>> {
        None
    }
}

/// The result of checking one threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The threshold as the user wrote it.
    pub source: String,
    /// The observed value in [`Threshold::value`] units; `None` = no data.
    pub observed: Option<f64>,
    /// The observed value for people: "12.3ms", "0.52%", "1234.5/s", "42",
    /// or "no data".
    pub observed_text: String,
    /// Whether the threshold held.
    pub passed: bool,
    /// Whether failing it stops the run early (`abortOnFail`).
    pub abort_on_fail: bool,
    /// The default threshold of a plan that names none; reports mark it
    /// "(default)".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
}

/// Checks every threshold against the final (merged) results, in order.
///
/// No data fails the threshold: a threshold on a request that never ran (or
/// a misspelt name) must not silently pass. The exception is the counts
/// (`requests`, `errors`, `dropped`) without `for`: over the whole test an
/// absent counter means nothing was counted, so it is observed as 0. A
/// scoped count with no data still fails, for the misspelt-name reason.
pub fn evaluate(thresholds: &[Threshold], obs: &dyn Observations) -> Vec<Outcome> {
    thresholds.iter().map(|t| t.evaluate(obs)).collect()
}

/// Checks the `abortOnFail` thresholds against live (partial) results and
/// returns the first one, in declaration order, that fails; the caller aborts
/// the test on `Some`. Other thresholds are not even observed.
///
/// While the test runs, no data is not a failure (it may come). The counts
/// only grow during a run, so a count abort only happens when the failure is
/// final: `errors < 10` fails live once errors reach 10, but `requests >=
/// 10000` never aborts live (it is decided at the end). Other metrics are
/// judged on their current value; a lower bound such as `rps > 1000
/// abortOnFail` can therefore fail during ramp-up, so the caller decides when
/// live evaluation starts.
pub fn evaluate_live(thresholds: &[Threshold], obs: &dyn Observations) -> Option<Outcome> {
    thresholds.iter().filter(|t| t.abort_on_fail).find_map(|t| {
        if t.is_windowed() {
            return window::evaluate_live(t, obs);
        }
        let observed = t.observe(obs)?;
        if t.op.holds(observed, t.value) {
            return None;
        }
        let can_recover = t.metric.is_count()
            && match t.op {
                Op::Lt | Op::Le => false,
                Op::Eq => observed < t.value,
                Op::Gt | Op::Ge | Op::Ne => true,
            };
        (!can_recover).then(|| t.outcome(Some(observed), false))
    })
}

impl Threshold {
    /// Whether this threshold needs more than one whole-test figure: a
    /// window on either side or a `K * METRIC` right side.
    pub fn is_windowed(&self) -> bool {
        self.window.is_some() || self.baseline.is_some()
    }

    /// Checks this threshold against final results (see [`evaluate`]).
    pub fn evaluate(&self, obs: &dyn Observations) -> Outcome {
        if self.is_windowed() {
            return window::evaluate(self, obs);
        }
        let observed = self
            .observe(obs)
            .or_else(|| (self.metric.is_count() && self.scope.is_none()).then_some(0.0));
        let passed = observed.is_some_and(|o| self.op.holds(o, self.value));
        self.outcome(observed, passed)
    }

    pub(super) fn observe(&self, obs: &dyn Observations) -> Option<f64> {
        obs.observe(&self.metric, self.scope.as_ref())
            .filter(|v| !v.is_nan())
    }

    pub(super) fn outcome(&self, observed: Option<f64>, passed: bool) -> Outcome {
        Outcome {
            source: self.source.clone(),
            observed,
            observed_text: observed
                .map_or_else(|| "no data".to_string(), |v| self.metric.format_observed(v)),
            passed,
            abort_on_fail: self.abort_on_fail,
            default: self.is_default,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "passed" } else { "FAILED" };
        let default = if self.default { " (default)" } else { "" };
        write!(
            f,
            "{}{default}: {verdict} (observed {})",
            self.source, self.observed_text
        )
    }
}

impl Op {
    /// Whether `observed OP limit` holds (exact comparison for == and !=).
    pub fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Op::Lt => observed < limit,
            Op::Le => observed <= limit,
            Op::Gt => observed > limit,
            Op::Ge => observed >= limit,
            Op::Eq => observed == limit,
            Op::Ne => observed != limit,
        }
    }
}

#[cfg(test)]
mod tests;
