//! Thresholds: the pass/fail rules of a load test.
//!
//! Users write them as strings in the plan (`"p(95) < 10ms for get-schema"`).
//! They are parsed into [`Threshold`] when the plan loads, so nothing is parsed
//! during the run. [`evaluate`] checks them against the merged results at the
//! end (the process exits non-zero when one fails), and [`evaluate_live`]
//! checks the `abortOnFail` ones while the test runs.
//!
//! Grammar (keywords are case-sensitive, whitespace around tokens is free):
//!
//! ```text
//! threshold := METRIC[WINDOW]? OP RIGHT [for NAME] [abortOnFail]
//! METRIC    := p(N) | med | avg | min | max       latency; 0 < N <= 100, med = p(50)
//!            | error_rate                         fraction of requests that failed
//!            | rps                                requests per second
//!            | requests | errors | dropped        counts
//! OP        := < | <= | > | >= | == | !=
//! RIGHT     := VALUE | [K *] METRIC[WINDOW]?      a limit, or K times another figure
//! VALUE     := 10ms | 1.5s | 250us | 2m           latency (units us, ms, s, m; also µs, h)
//!            | 1% | 0.01                          error_rate, within 0..=100% / 0..=1
//!            | 1000 | 1000/s                      rps
//!            | 10000                              counts, whole and non-negative
//! WINDOW    := [first D] | [last D] | [each D]    a time window of the run (see `window`)
//!            | [from D to D]
//! NAME      := [A-Za-z0-9._/-]+                   the request name; absent = all requests
//! ```
//!
//! Decisions beyond the bare grammar:
//! - The value is one token: `10 ms` is an error (with a hint), as is a bare
//!   `300` for a latency (is that seconds or milliseconds?).
//! - `for NAME` and `abortOnFail` may come in either order, each at most once;
//!   the canonical form ([`Threshold`]'s `Display`) puts `for` first.
//! - `dropped ... for NAME` is rejected: dropped sends never started, so they
//!   belong to no request name.
//! - `==` and `!=` compare exactly. That is what counts need (`dropped == 0`);
//!   on latencies and rates they are allowed but rarely useful.
//! - A threshold without a window reads the whole test, exactly as before
//!   windows existed. Windows, the right-hand `K * METRIC[WINDOW]` and how
//!   they are judged (at the end and live) are described in [`window`].

use std::{fmt, str::FromStr};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

pub mod live;
pub mod window;

pub use window::{Baseline, Limits, Series, Window, live_horizon_us, series_due};

/// One parsed threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// The string as the user wrote it (trimmed); reports show this.
    pub source: String,
    pub metric: Metric,
    pub op: Op,
    /// The limit, normalised: latency in microseconds, `error_rate` as a
    /// fraction in 0..=1, `rps` per second, counts as whole numbers. With a
    /// `baseline` it is the factor K of `K * METRIC[WINDOW]` instead.
    pub value: f64,
    /// The request name (`for NAME`); `None` means all requests together.
    pub scope: Option<String>,
    /// Evaluate live during the run and abort the test when it fails.
    pub abort_on_fail: bool,
    /// `METRIC[WINDOW]`: judged on a time window of the per-interval series
    /// instead of the whole test.
    pub window: Option<Window>,
    /// The right side `K * METRIC[WINDOW]`: the limit is K times that figure.
    pub baseline: Option<Baseline>,
    /// Not written by the user: the [`DEFAULT`] of a plan without `thresholds`.
    pub is_default: bool,
}

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

/// What a threshold measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// Latency percentile, 0 < N <= 100 (`med` is `Percentile(50.0)`).
    Percentile(f64),
    /// Mean latency.
    Avg,
    /// Lowest latency.
    Min,
    /// Highest latency.
    Max,
    /// Fraction of requests that failed, 0..=1.
    ErrorRate,
    /// Requests per second.
    Rps,
    /// Number of requests.
    Requests,
    /// Number of failed requests.
    Errors,
    /// Number of open-model sends that could not start (never scoped).
    Dropped,
}

/// The comparison a threshold requires to hold: `observed OP value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A threshold that does not parse. `column` is 1-based and counts
/// characters; the caller prefixes the field path (`thresholds[2]: ...`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

/// What the evaluator needs from the results; the merged snapshot implements
/// it elsewhere.
pub trait Observations {
    /// The current value of `metric` for requests named `scope` (all requests
    /// when `None`), in the same units as [`Threshold::value`]. `None` means
    /// no data, e.g. no request of that name has completed. A NaN is treated
    /// like `None`.
    fn observe(&self, metric: &Metric, scope: Option<&str>) -> Option<f64>;

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
    pub passed: bool,
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

/// Parses the plan's threshold list; an error names the entry and quotes it,
/// e.g. `thresholds[2]: column 7: expected ..., found "=<" in "p(95) =< 10ms"`.
/// Windows are not checked against a plan here; the plan's compiler does
/// that with [`Threshold::parse_for_plan`].
pub fn parse_all<S: AsRef<str>>(field: &str, items: &[S]) -> crate::Result<Vec<Threshold>> {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.as_ref();
            Threshold::parse(s)
                .map_err(|e| Error::invalid(format!("{field}[{i}]"), format!("{e} in {s:?}")))
        })
        .collect()
}

impl Threshold {
    /// Parses a threshold on its own: windows are checked for sense (not
    /// empty, `from` before `to`) but not against a plan.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Self::parse_with(s, None)
    }

    /// Parses a threshold of a plan: windows must also be whole multiples of
    /// the plan's `reportInterval` and fit in the test's length.
    pub fn parse_for_plan(s: &str, limits: &Limits) -> Result<Self, ParseError> {
        Self::parse_with(s, Some(limits))
    }

    fn parse_with(s: &str, limits: Option<&Limits>) -> Result<Self, ParseError> {
        let mut p = Parser {
            src: s,
            pos: 0,
            limits,
        };
        p.skip_ws();
        if p.at_end() {
            return p.error(p.pos, "empty threshold; write e.g. \"p(95) < 250ms\"");
        }
        let metric = p.metric()?;
        p.skip_ws();
        let window = p.window_opt(metric)?;
        p.skip_ws();
        let op = p.op()?;
        p.skip_ws();
        let (value, baseline) = p.right(metric, window)?;
        let windowed = window.is_some() || baseline.as_ref().is_some_and(|b| b.window.is_some());
        let (scope, abort_on_fail) = p.clauses(metric, windowed)?;
        Ok(Threshold {
            source: s.trim().to_string(),
            metric,
            op,
            value,
            scope,
            abort_on_fail,
            window,
            baseline,
            is_default: false,
        })
    }

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

    fn observe(&self, obs: &dyn Observations) -> Option<f64> {
        obs.observe(&self.metric, self.scope.as_deref())
            .filter(|v| !v.is_nan())
    }

    fn outcome(&self, observed: Option<f64>, passed: bool) -> Outcome {
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

impl FromStr for Threshold {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Threshold::parse(s)
    }
}

/// The canonical form, which parses back to the same metric, op, value,
/// scope and flag: `p(95) < 10ms for get-schema abortOnFail`.
impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.metric)?;
        if let Some(w) = &self.window {
            write!(f, "[{w}]")?;
        }
        write!(f, " {} ", self.op)?;
        match &self.baseline {
            None => f.write_str(&self.metric.format_value(self.value))?,
            Some(b) => {
                if self.value != 1.0 {
                    write!(f, "{} * ", self.value)?;
                }
                write!(f, "{}", b.metric)?;
                if let Some(w) = &b.window {
                    write!(f, "[{w}]")?;
                }
            }
        }
        if let Some(name) = &self.scope {
            write!(f, " for {name}")?;
        }
        if self.abort_on_fail {
            f.write_str(" abortOnFail")?;
        }
        Ok(())
    }
}

/// Serialized as the string the user wrote (so it parses back equal), or the
/// canonical form for a threshold built in code without a source.
impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.source.is_empty() {
            s.collect_str(self)
        } else {
            s.serialize_str(&self.source)
        }
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Threshold::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Threshold {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Threshold".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A pass/fail rule: METRIC OP VALUE [for NAME] [abortOnFail], e.g. \
                \"p(95) < 10ms for get-schema\", \"error_rate < 1%\", \"rps > 1000\", \"dropped == 0\". \
                Metrics: p(N), med, avg, min, max, error_rate, rps, requests, errors, dropped. \
                Over time windows: \"error_rate[each 5m] < 1%\", \"p(95)[last 10m] <= 1.2 * p(95)[first 10m]\" \
                (windows: first D, last D, each D, from D to D; multiples of reportInterval)."
        })
    }
    fn inline_schema() -> bool {
        true
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

/// How a metric's values are written and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Latency,
    Fraction,
    Rate,
    Count,
}

impl Metric {
    pub fn is_latency(&self) -> bool {
        self.kind() == Kind::Latency
    }

    pub fn is_count(&self) -> bool {
        self.kind() == Kind::Count
    }

    fn kind(&self) -> Kind {
        match self {
            Metric::Percentile(_) | Metric::Avg | Metric::Min | Metric::Max => Kind::Latency,
            Metric::ErrorRate => Kind::Fraction,
            Metric::Rps => Kind::Rate,
            Metric::Requests | Metric::Errors | Metric::Dropped => Kind::Count,
        }
    }

    /// A value (in [`Threshold::value`] units) as threshold syntax that parses
    /// back to exactly the same `f64`: "10ms", "1.5s", "1%", "1000", "0".
    pub fn format_value(&self, v: f64) -> String {
        match self.kind() {
            Kind::Latency => format_latency(v),
            Kind::Fraction => {
                let pct = (v * 100.0).to_string();
                let exact = pct.parse::<f64>().is_ok_and(|p| p / 100.0 == v);
                if exact && decimals(&pct) <= 4 {
                    format!("{pct}%")
                } else {
                    v.to_string()
                }
            }
            Kind::Rate | Kind::Count => v.to_string(),
        }
    }

    /// An observed value for people: latency "850us", "12.3ms", "1.20s",
    /// "2.5m"; error_rate "0.52%"; rps "1234.5/s"; counts "42".
    pub fn format_observed(&self, v: f64) -> String {
        match self.kind() {
            Kind::Latency if v < 1e3 => format!("{v:.0}us"),
            Kind::Latency if v < 1e6 => format!("{:.1}ms", v / 1e3),
            Kind::Latency if v < 6e7 => format!("{:.2}s", v / 1e6),
            Kind::Latency => format!("{:.1}m", v / 6e7),
            Kind::Fraction => format!("{:.2}%", v * 100.0),
            Kind::Rate => format!("{v:.1}/s"),
            Kind::Count => format!("{v:.0}"),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Percentile(n) => write!(f, "p({n})"),
            Metric::Avg => f.write_str("avg"),
            Metric::Min => f.write_str("min"),
            Metric::Max => f.write_str("max"),
            Metric::ErrorRate => f.write_str("error_rate"),
            Metric::Rps => f.write_str("rps"),
            Metric::Requests => f.write_str("requests"),
            Metric::Errors => f.write_str("errors"),
            Metric::Dropped => f.write_str("dropped"),
        }
    }
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

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

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// Latency in microseconds as the largest unit that shows it exactly with
/// few decimals ("1.5s", "250ms"), else in microseconds (always exact).
fn format_latency(us: f64) -> String {
    if us == 0.0 {
        return "0ms".into();
    }
    for (unit, factor) in [("m", 6e7), ("s", 1e6), ("ms", 1e3)] {
        let n = us / factor;
        let text = n.to_string();
        if n >= 1.0 && decimals(&text) <= 3 && text.parse::<f64>().is_ok_and(|n| n * factor == us) {
            return format!("{text}{unit}");
        }
    }
    format!("{us}us")
}

/// Microseconds per latency unit; the units of `crate::duration`.
fn latency_unit(unit: &str) -> Option<f64> {
    Some(match unit {
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 6e7,
        "h" => 3.6e9,
        _ => return None,
    })
}

fn decimals(number: &str) -> usize {
    number.split_once('.').map_or(0, |(_, d)| d.len())
}

const METRICS_HELP: &str = "p(N), med, avg, min, max, error_rate, rps, requests, errors, dropped";
const OPS_HELP: &str = "<, <=, >, >=, ==, !=";
const METRIC_NAMES: [&str; 9] = [
    "med",
    "avg",
    "min",
    "max",
    "error_rate",
    "rps",
    "requests",
    "errors",
    "dropped",
];

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')
}

fn is_op_char(c: char) -> bool {
    matches!(c, '<' | '>' | '=' | '!')
}

/// A hand-written recursive-descent parser over the threshold string;
/// `pos` is a byte offset, errors convert it to a 1-based character column.
/// With `limits`, windows are also checked against the plan.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
    limits: Option<&'a Limits>,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos == self.src.len()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let n = rest.find(|c: char| !f(c)).unwrap_or(rest.len());
        self.pos += n;
        &rest[..n]
    }

    fn error<T>(&self, at: usize, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            column: self.src[..at].chars().count() + 1,
            message: message.into(),
        })
    }

    /// The token at byte `at`, quoted, for "found ..." in messages: a run of
    /// operator characters, a single parenthesis, or a run of anything else
    /// up to whitespace, an operator or a parenthesis.
    fn found(&self, at: usize) -> String {
        let rest = &self.src[at..];
        let Some(first) = rest.chars().next() else {
            return "the end of the threshold".into();
        };
        let len = if matches!(first, '(' | ')') {
            1
        } else {
            let op = is_op_char(first);
            rest.find(|c: char| c.is_whitespace() || matches!(c, '(' | ')') || is_op_char(c) != op)
                .unwrap_or(rest.len())
        };
        let token = &rest[..len];
        if token.chars().count() > 20 {
            format!("{:?}…", token.chars().take(20).collect::<String>())
        } else {
            format!("{token:?}")
        }
    }

    fn metric(&mut self) -> Result<Metric, ParseError> {
        let at = self.pos;
        let word = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        Ok(match word {
            "p" => return self.percentile(),
            "med" => Metric::Percentile(50.0),
            "avg" => Metric::Avg,
            "min" => Metric::Min,
            "max" => Metric::Max,
            "error_rate" => Metric::ErrorRate,
            "rps" => Metric::Rps,
            "requests" => Metric::Requests,
            "errors" => Metric::Errors,
            "dropped" => Metric::Dropped,
            "" => {
                return self.error(
                    at,
                    format!(
                        "expected a metric ({METRICS_HELP}), found {}",
                        self.found(at)
                    ),
                );
            }
            other => {
                let hint = suggest_metric(other)
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                return self.error(
                    at,
                    format!("unknown metric {other:?}{hint}; expected one of {METRICS_HELP}"),
                );
            }
        })
    }

    /// After the `p`: `( N )`.
    fn percentile(&mut self) -> Result<Metric, ParseError> {
        self.skip_ws();
        if !self.eat('(') {
            return self.error(
                self.pos,
                format!(
                    "expected \"(\" after \"p\", as in p(95), found {}",
                    self.found(self.pos)
                ),
            );
        }
        self.skip_ws();
        let at = self.pos;
        let n = self.number("a percentile between 0 and 100, as in p(95) or p(99.9)")?;
        if !(n > 0.0 && n <= 100.0) {
            let text = &self.src[at..self.pos];
            return self.error(
                at,
                format!("a percentile must be greater than 0 and at most 100, found {text}"),
            );
        }
        self.skip_ws();
        if !self.eat(')') {
            return self.error(
                self.pos,
                format!(
                    "expected \")\" to close \"p(\", found {}",
                    self.found(self.pos)
                ),
            );
        }
        Ok(Metric::Percentile(n))
    }

    fn op(&mut self) -> Result<Op, ParseError> {
        let at = self.pos;
        Ok(match self.take_while(is_op_char) {
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            _ => {
                return self.error(
                    at,
                    format!(
                        "expected a comparison operator ({OPS_HELP}), found {}",
                        self.found(at)
                    ),
                );
            }
        })
    }

    /// An unsigned decimal number (digits and one optional dot).
    fn number(&mut self, expected: &str) -> Result<f64, ParseError> {
        let at = self.pos;
        let text = self.take_while(|c| c.is_ascii_digit() || c == '.');
        if text.is_empty() {
            return self.error(at, format!("expected {expected}, found {}", self.found(at)));
        }
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            Ok(_) => self.error(at, format!("{text} is too large")),
            Err(_) => self.error(at, format!("{text:?} is not a number")),
        }
    }

    fn value(&mut self, metric: Metric) -> Result<f64, ParseError> {
        let at = self.pos;
        let kind = metric.kind();
        let value = match kind {
            Kind::Latency => {
                let n = self.number("a duration such as 10ms or 1.5s")?;
                let number = &self.src[at..self.pos];
                let unit_at = self.pos;
                let factor = match self.take_while(char::is_alphabetic) {
                    "" => {
                        let next = self.rest().trim_start();
                        let word = &next[..next
                            .find(|c: char| !c.is_alphabetic())
                            .unwrap_or(next.len())];
                        let spaced = next.len() < self.rest().len() && latency_unit(word).is_some();
                        let hint = if spaced {
                            "; write the unit right after the number"
                        } else {
                            ""
                        };
                        return self.error(
                            at,
                            format!(
                                "missing unit after {number}: a latency needs one, e.g. \"{number}ms\" \
                                 (units: us, ms, s, m){hint}"
                            ),
                        );
                    }
                    unit => match latency_unit(unit) {
                        Some(factor) => factor,
                        None => {
                            return self.error(
                                unit_at,
                                format!("unknown unit {unit:?}; use us, ms, s or m"),
                            );
                        }
                    },
                };
                if self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
                    return self.error(self.pos, "write a latency as one number and one unit, e.g. \"90s\" rather than \"1m30s\"");
                }
                n * factor
            }
            Kind::Fraction => {
                let n = self.number("a percentage such as 1% or a fraction such as 0.01")?;
                let number = &self.src[at..self.pos];
                if self.eat('%') {
                    if n > 100.0 {
                        return self.error(
                            at,
                            format!("error_rate must be between 0% and 100%, found {number}%"),
                        );
                    }
                    n / 100.0
                } else if n > 1.0 {
                    return self.error(
                        at,
                        format!("error_rate must be a fraction between 0 and 1, found {number} (for a percentage write \"{number}%\")"),
                    );
                } else {
                    n
                }
            }
            Kind::Rate => {
                let n = self.number("a number of requests per second such as 1000")?;
                if self.rest().starts_with("/s") {
                    self.pos += 2;
                }
                n
            }
            Kind::Count => {
                let n = self.number("a whole number such as 10000")?;
                let number = &self.src[at..self.pos];
                if number.contains('.') {
                    return self.error(
                        at,
                        format!("{metric} is a count: expected a whole number, found {number}"),
                    );
                }
                n
            }
        };
        if let Some(c) = self.peek()
            && !c.is_whitespace()
        {
            let hint = match kind {
                Kind::Latency => {
                    "write a latency as a number and a unit, e.g. \"10ms\"".to_string()
                }
                Kind::Fraction => {
                    "write error_rate as a percentage (\"1%\") or a fraction (\"0.01\")".to_string()
                }
                Kind::Rate => "write rps as a plain number, e.g. \"1000\"".to_string(),
                Kind::Count => format!("write {metric} as a whole number, e.g. \"10000\""),
            };
            return self.error(
                self.pos,
                format!(
                    "unexpected {} after the value; {hint}",
                    self.found(self.pos)
                ),
            );
        }
        Ok(value)
    }

    /// `[for NAME] [abortOnFail]`, in either order, each at most once.
    /// `windowed`: a side has a window, which reads the series of all
    /// requests together, so `for` is refused.
    fn clauses(
        &mut self,
        metric: Metric,
        windowed: bool,
    ) -> Result<(Option<String>, bool), ParseError> {
        let (mut scope, mut abort_on_fail) = (None, false);
        loop {
            self.skip_ws();
            if self.at_end() {
                return Ok((scope, abort_on_fail));
            }
            let at = self.pos;
            match self.take_while(is_name_char) {
                "for" => {
                    if scope.is_some() {
                        return self.error(at, "\"for\" given twice; a threshold applies to one request name (or, without \"for\", to all)");
                    }
                    if metric == Metric::Dropped {
                        return self.error(
                            at,
                            "dropped counts sends that could not start, which belong to no request name; remove \"for NAME\"",
                        );
                    }
                    if windowed {
                        return self.error(
                            at,
                            "a window reads the per-interval series, which is kept for all requests together, not per request name; remove \"for NAME\" (or the window)",
                        );
                    }
                    self.skip_ws();
                    let name_at = self.pos;
                    let name = self.take_while(is_name_char);
                    if name.is_empty() || name == "abortOnFail" {
                        return self.error(
                            name_at,
                            format!(
                                "expected a request name after \"for\" (letters, digits, . _ / -), found {}",
                                self.found(name_at)
                            ),
                        );
                    }
                    scope = Some(name.to_string());
                }
                "abortOnFail" => {
                    if abort_on_fail {
                        return self.error(at, "\"abortOnFail\" given twice");
                    }
                    abort_on_fail = true;
                }
                word => {
                    let what = if word.is_empty() {
                        self.found(at)
                    } else {
                        format!("{word:?}")
                    };
                    let hint = ["for", "abortOnFail"]
                        .into_iter()
                        .find(|k| word.eq_ignore_ascii_case(k))
                        .map(|k| format!(" (keywords are case-sensitive: write \"{k}\")"))
                        .unwrap_or_default();
                    return self.error(
                        at,
                        format!("unexpected {what}{hint}; expected \"for NAME\", \"abortOnFail\" or the end of the threshold"),
                    );
                }
            }
        }
    }
}

/// A likely intended metric for an unknown word: `p95` → `p(95)`, common
/// synonyms, case mistakes and small typos.
fn suggest_metric(word: &str) -> Option<String> {
    let lower = word.to_ascii_lowercase();
    if let Some(n) = lower.strip_prefix('p')
        && !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return Some(format!("p({n})"));
    }
    let alias = match lower.as_str() {
        "p" => Some("p(N)"),
        "mean" | "average" => Some("avg"),
        "median" => Some("med"),
        "minimum" => Some("min"),
        "maximum" => Some("max"),
        "qps" | "throughput" => Some("rps"),
        "count" | "total" => Some("requests"),
        "failures" | "failed" => Some("errors"),
        _ => None,
    };
    if let Some(alias) = alias {
        return Some(alias.to_string());
    }
    METRIC_NAMES
        .into_iter()
        .map(|name| (edit_distance(&lower, name), name))
        .filter(|&(d, name)| d <= if name.len() <= 4 { 1 } else { 2 })
        .min_by_key(|&(d, _)| d)
        .map(|(_, name)| name.to_string())
}

/// Levenshtein distance; the words are short.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            row.push(substitute.min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default joins any plan whose own thresholds do not bound the
    /// errors of all requests; `[]` means none at all.
    #[test]
    fn the_default_joins_plans_that_do_not_bound_errors() {
        let sources = |l: Option<&[&str]>| {
            let owned: Option<Vec<String>> = l.map(|l| l.iter().map(|s| s.to_string()).collect());
            plan_sources(owned.as_deref())
                .into_iter()
                .map(|(s, d)| (s.to_string(), d))
                .collect::<Vec<_>>()
        };
        let with_default = |own: &[&str]| {
            let mut v: Vec<_> = own.iter().map(|s| (s.to_string(), false)).collect();
            v.push((DEFAULT.to_string(), true));
            v
        };
        assert_eq!(sources(None), with_default(&[]));
        assert_eq!(sources(Some(&[])), vec![]);
        for own in [
            &["p(95) < 10ms"][..],
            &["error_rate < 5% for a"],
            &["error_rate > 1%"],
            &["rps > 100", "p(99) < 1s"],
        ] {
            assert_eq!(sources(Some(own)), with_default(own), "{own:?}");
        }
        for own in [
            &["p(95) < 10ms", "error_rate < 5%"][..],
            &["errors == 0"],
            &["errors <= 3"],
            &["error_rate[each 1m] < 2%"],
        ] {
            let mine: Vec<_> = own.iter().map(|s| (s.to_string(), false)).collect();
            assert_eq!(sources(Some(own)), mine, "{own:?}");
        }
    }

    fn th(s: &str) -> Threshold {
        s.parse()
            .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn err(s: &str) -> ParseError {
        match s.parse::<Threshold>() {
            Ok(t) => panic!("{s:?} should not parse, got {t:?}"),
            Err(e) => e,
        }
    }

    /// Asserts the error's column and that its message contains `needle`.
    fn assert_err(s: &str, column: usize, needle: &str) {
        let e = err(s);
        assert_eq!(e.column, column, "column for {s:?}: {e}");
        assert!(
            e.message.contains(needle),
            "message for {s:?} should contain {needle:?}: {e}"
        );
    }

    struct Fake(Vec<(Metric, Option<&'static str>, f64)>);

    impl Observations for Fake {
        fn observe(&self, metric: &Metric, scope: Option<&str>) -> Option<f64> {
            self.0
                .iter()
                .find(|(m, s, _)| m == metric && *s == scope)
                .map(|&(_, _, v)| v)
        }
    }

    #[test]
    fn parses_the_examples_from_the_plan() {
        let t = th("p(95) < 10ms for get-schema");
        assert_eq!(
            t,
            Threshold {
                source: "p(95) < 10ms for get-schema".into(),
                metric: Metric::Percentile(95.0),
                op: Op::Lt,
                value: 10_000.0,
                scope: Some("get-schema".into()),
                abort_on_fail: false,
                window: None,
                baseline: None,
                is_default: false,
            }
        );
        let t = th("p(99.9) <= 1.5s abortOnFail");
        assert_eq!(
            (t.metric, t.op, t.value, t.scope, t.abort_on_fail),
            (Metric::Percentile(99.9), Op::Le, 1_500_000.0, None, true)
        );
        let t = th("error_rate < 1%");
        assert_eq!((t.metric, t.op, t.value), (Metric::ErrorRate, Op::Lt, 0.01));
        let t = th("rps > 1000");
        assert_eq!((t.metric, t.op, t.value), (Metric::Rps, Op::Gt, 1000.0));
        let t = th("avg < 20ms for register");
        assert_eq!(
            (t.metric, t.value, t.scope.as_deref()),
            (Metric::Avg, 20_000.0, Some("register"))
        );
        let t = th("max < 2s");
        assert_eq!((t.metric, t.value), (Metric::Max, 2_000_000.0));
        let t = th("requests >= 10000");
        assert_eq!(
            (t.metric, t.op, t.value),
            (Metric::Requests, Op::Ge, 10_000.0)
        );
        let t = th("dropped == 0");
        assert_eq!((t.metric, t.op, t.value), (Metric::Dropped, Op::Eq, 0.0));
    }

    #[test]
    fn parses_every_metric() {
        let cases = [
            ("p(95) < 1ms", Metric::Percentile(95.0)),
            ("p(99.99) < 1ms", Metric::Percentile(99.99)),
            ("p(100) < 1ms", Metric::Percentile(100.0)),
            ("p(0.1) < 1ms", Metric::Percentile(0.1)),
            ("med < 1ms", Metric::Percentile(50.0)),
            ("avg < 1ms", Metric::Avg),
            ("min < 1ms", Metric::Min),
            ("max < 1ms", Metric::Max),
            ("error_rate < 0.5", Metric::ErrorRate),
            ("rps > 1", Metric::Rps),
            ("requests > 1", Metric::Requests),
            ("errors < 1", Metric::Errors),
            ("dropped < 1", Metric::Dropped),
        ];
        for (s, metric) in cases {
            assert_eq!(th(s).metric, metric, "{s}");
        }
    }

    #[test]
    fn parses_every_op() {
        let cases = [
            ("<", Op::Lt),
            ("<=", Op::Le),
            (">", Op::Gt),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
        ];
        for (sym, op) in cases {
            assert_eq!(th(&format!("errors {sym} 3")).op, op, "{sym}");
            assert_eq!(op.to_string(), sym);
        }
    }

    #[test]
    fn parses_every_value_form() {
        let latency = [
            ("250us", 250.0),
            ("250µs", 250.0),
            ("10ms", 10_000.0),
            ("0.5ms", 500.0),
            ("1.5s", 1_500_000.0),
            ("2m", 120_000_000.0),
            ("1h", 3_600_000_000.0),
            ("0ms", 0.0),
        ];
        for (v, us) in latency {
            assert_eq!(th(&format!("p(90) < {v}")).value, us, "{v}");
        }
        let rates = [
            ("1%", 0.01),
            ("0.5%", 0.005),
            ("100%", 1.0),
            ("0%", 0.0),
            ("0.01", 0.01),
            ("1", 1.0),
            ("0", 0.0),
        ];
        for (v, fraction) in rates {
            assert_eq!(th(&format!("error_rate <= {v}")).value, fraction, "{v}");
        }
        assert_eq!(th("rps >= 1234.5").value, 1234.5);
        assert_eq!(th("rps >= 1000/s").value, 1000.0);
        assert_eq!(th("requests == 123456789").value, 123_456_789.0);
        assert_eq!(th("errors != 0").value, 0.0);
    }

    #[test]
    fn whitespace_is_free_around_tokens_and_clauses_come_in_either_order() {
        let canonical = th("p(95) < 10ms for get-schema abortOnFail");
        for s in [
            "p(95)<10ms for get-schema abortOnFail",
            "  p( 95 ) <\t10ms   for   get-schema   abortOnFail  ",
            "p (95) < 10ms abortOnFail for get-schema",
        ] {
            let t = th(s);
            assert_eq!(t.source, s.trim());
            assert_eq!(
                Threshold {
                    source: canonical.source.clone(),
                    ..t
                },
                canonical,
                "{s}"
            );
        }
        assert_eq!(th("rps>1000").value, 1000.0);
        assert_eq!(th("error_rate<1%").value, 0.01);
    }

    #[test]
    fn names_take_the_documented_characters() {
        assert_eq!(
            th("avg < 1s for api/v1.users_get-2").scope.as_deref(),
            Some("api/v1.users_get-2")
        );
    }

    #[test]
    fn display_is_canonical() {
        let cases = [
            ("p(95)<10ms for get-schema", "p(95) < 10ms for get-schema"),
            ("med < 1500ms", "p(50) < 1.5s"),
            ("p(99.9) <= 1.5s abortOnFail", "p(99.9) <= 1.5s abortOnFail"),
            ("max < 90s", "max < 1.5m"),
            ("min > 250us", "min > 250us"),
            ("max < 1.2345s", "max < 1234.5ms"),
            ("avg < 0.0005s", "avg < 500us"),
            ("avg < 0ms", "avg < 0ms"),
            ("error_rate < 0.01", "error_rate < 1%"),
            ("error_rate < 0.5%", "error_rate < 0.5%"),
            ("rps > 1000/s", "rps > 1000"),
            ("requests >= 10000", "requests >= 10000"),
            ("dropped == 0", "dropped == 0"),
            (
                "errors != 3 abortOnFail for x",
                "errors != 3 for x abortOnFail",
            ),
        ];
        for (input, canonical) in cases {
            assert_eq!(th(input).to_string(), canonical, "{input}");
        }
    }

    #[test]
    fn display_round_trips() {
        let inputs = [
            "p(95) < 10ms for get-schema",
            "p(99.9) <= 1.5s abortOnFail",
            "med >= 0.1ms",
            "avg < 0.3ms",
            "avg < 1.234567s",
            "max != 7.000001s",
            "min == 0.000001s",
            "p(33.333) > 333.3333ms",
            "error_rate < 0.003",
            "error_rate < 0.0033333",
            "error_rate < 33.3333%",
            "error_rate > 0.1%",
            "rps > 0.3",
            "requests >= 9007199254740993",
            "dropped == 0",
        ];
        for input in inputs {
            let t = th(input);
            let canonical = t.to_string();
            let back = th(&canonical);
            assert_eq!(
                back,
                Threshold {
                    source: canonical.clone(),
                    ..t
                },
                "{input} -> {canonical}"
            );
            assert_eq!(back.to_string(), canonical);
        }
        // Every formatted value parses back to the same f64, exactly.
        for i in 0..2000u32 {
            let v = f64::from(i) * 0.37 + f64::from(i % 7) / 3.0;
            let latency = th(&format!("avg < {}", Metric::Avg.format_value(v)));
            assert_eq!(latency.value, v, "latency {v}");
            let fraction = v / 1000.0;
            if fraction <= 1.0 {
                let rate = th(&format!(
                    "error_rate < {}",
                    Metric::ErrorRate.format_value(fraction)
                ));
                assert_eq!(rate.value, fraction, "error_rate {fraction}");
            }
        }
    }

    #[test]
    fn parse_error_display_and_error_trait() {
        let e = err("p(95) =< 10ms");
        assert_eq!(
            e.to_string(),
            "column 7: expected a comparison operator (<, <=, >, >=, ==, !=), found \"=<\""
        );
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert!(boxed.to_string().starts_with("column 7: "));
    }

    #[test]
    fn errors_name_the_column_and_what_was_expected() {
        // Missing or wrong operator.
        assert_err(
            "p(95) 10ms",
            7,
            "expected a comparison operator (<, <=, >, >=, ==, !=), found \"10ms\"",
        );
        assert_err(
            "p(95)",
            6,
            "expected a comparison operator (<, <=, >, >=, ==, !=), found the end of the threshold",
        );
        assert_err("rps = 1000", 5, "found \"=\"");
        assert_err("rps <> 1000", 5, "found \"<>\"");
        // Bad percentiles.
        assert_err("p(0) < 1ms", 3, "greater than 0 and at most 100, found 0");
        assert_err(
            "p(101) < 1ms",
            3,
            "greater than 0 and at most 100, found 101",
        );
        assert_err(
            "p(abc) < 1ms",
            3,
            "expected a percentile between 0 and 100, as in p(95) or p(99.9), found \"abc\"",
        );
        assert_err("p( -5) < 1ms", 4, "expected a percentile");
        assert_err("p(1.2.3) < 1ms", 3, "\"1.2.3\" is not a number");
        assert_err("p95 < 1ms", 1, "did you mean \"p(95)\"");
        assert_err("p < 1ms", 3, "expected \"(\" after \"p\"");
        assert_err(
            "p(95 < 1ms",
            6,
            "expected \")\" to close \"p(\", found \"<\"",
        );
        // Values.
        assert_err("p(99) < 300", 9, "missing unit after 300");
        assert_err(
            "p(99) < 300 for x",
            9,
            "e.g. \"300ms\" (units: us, ms, s, m)",
        );
        assert!(!err("p(99) < 300 for x").message.contains("right after"));
        assert_err("p(99) < 300 ms", 9, "write the unit right after the number");
        assert_err("avg < 10sec", 9, "unknown unit \"sec\"");
        assert_err("avg < 1m30s", 9, "one number and one unit");
        assert_err(
            "avg < fast",
            7,
            "expected a duration such as 10ms or 1.5s, found \"fast\"",
        );
        assert_err("avg <", 6, "found the end of the threshold");
        assert_err("error_rate < 120%", 14, "between 0% and 100%, found 120%");
        assert_err(
            "error_rate < 5",
            14,
            "fraction between 0 and 1, found 5 (for a percentage write \"5%\")",
        );
        assert_err("error_rate < 1ms", 15, "unexpected \"ms\" after the value");
        assert_err(
            "error_rate < -1%",
            14,
            "expected a percentage such as 1% or a fraction such as 0.01, found \"-1%\"",
        );
        assert_err(
            "requests > 1.5",
            12,
            "requests is a count: expected a whole number, found 1.5",
        );
        assert_err("rps > 1k", 8, "write rps as a plain number");
        // Trailing garbage and clauses.
        assert_err(
            "rps > 1000 please",
            12,
            "unexpected \"please\"; expected \"for NAME\", \"abortOnFail\" or the end",
        );
        assert_err("p(95) < 10ms for get-schema)", 28, "unexpected \")\"");
        assert_err(
            "p(95) < 10ms abortonfail",
            14,
            "keywords are case-sensitive: write \"abortOnFail\"",
        );
        assert_err("p(95) < 10ms FOR x", 14, "write \"for\"");
        assert_err(
            "p(95) < 10ms for",
            17,
            "expected a request name after \"for\"",
        );
        assert_err(
            "p(95) < 10ms for abortOnFail",
            18,
            "expected a request name",
        );
        assert_err("p(95) < 10ms for a for b", 20, "\"for\" given twice");
        assert_err(
            "rps > 1 abortOnFail abortOnFail",
            21,
            "\"abortOnFail\" given twice",
        );
        assert_err("dropped == 0 for x", 14, "remove \"for NAME\"");
        // Metrics.
        assert_err("", 1, "empty threshold");
        assert_err("   ", 4, "empty threshold");
        assert_err("< 10ms", 1, "expected a metric (p(N), med, avg");
        assert_err(
            "latency < 10ms",
            1,
            "unknown metric \"latency\"; expected one of p(N), med, avg, min, max, error_rate, rps, requests, errors, dropped",
        );
        assert_err("errorrate < 1%", 1, "did you mean \"error_rate\"");
        assert_err("mean < 1s", 1, "did you mean \"avg\"");
        assert_err("AVG < 1s", 1, "did you mean \"avg\"");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        // "µs" is 3 bytes; the error after it is at character column 13.
        assert_err("avg < 250µs !", 13, "unexpected \"!\"");
    }

    #[test]
    fn suggestions_stay_quiet_for_unrelated_words() {
        assert!(!err("latency < 1s").message.contains("did you mean"));
        assert!(!err("foo < 1s").message.contains("did you mean"));
        assert_eq!(suggest_metric("dropd").as_deref(), Some("dropped"));
        assert_eq!(suggest_metric("P99.9").as_deref(), Some("p(99.9)"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn evaluate_checks_each_op() {
        let cases = [
            ("<", 9.0, true),
            ("<", 10.0, false),
            ("<=", 10.0, true),
            ("<=", 11.0, false),
            (">", 11.0, true),
            (">", 10.0, false),
            (">=", 10.0, true),
            (">=", 9.0, false),
            ("==", 10.0, true),
            ("==", 9.0, false),
            ("!=", 9.0, true),
            ("!=", 10.0, false),
        ];
        for (op, observed, passed) in cases {
            let count = th(&format!("requests {op} 10"));
            let obs = Fake(vec![(Metric::Requests, None, observed)]);
            let outcome = &evaluate(std::slice::from_ref(&count), &obs)[0];
            assert_eq!(outcome.passed, passed, "requests {op} 10 with {observed}");
            assert_eq!(outcome.observed, Some(observed));

            let latency = th(&format!("p(95) {op} 10ms for api"));
            let obs = Fake(vec![(
                Metric::Percentile(95.0),
                Some("api"),
                observed * 1000.0,
            )]);
            assert_eq!(
                latency.evaluate(&obs).passed,
                passed,
                "p(95) {op} 10ms with {observed}ms"
            );
        }
    }

    #[test]
    fn evaluate_reports_in_order_with_readable_observations() {
        let thresholds: Vec<Threshold> = [
            "p(95) < 10ms for get-schema",
            "error_rate < 1%",
            "rps > 1000",
            "max < 2s",
            "errors == 0",
        ]
        .into_iter()
        .map(th)
        .collect();
        let obs = Fake(vec![
            (Metric::Percentile(95.0), Some("get-schema"), 12_345.0),
            (Metric::ErrorRate, None, 0.0052),
            (Metric::Rps, None, 1234.5),
            (Metric::Max, None, 1_200_000.0),
            (Metric::Errors, None, 3.0),
        ]);
        let outcomes = evaluate(&thresholds, &obs);
        let summary: Vec<(&str, bool, &str)> = outcomes
            .iter()
            .map(|o| (o.source.as_str(), o.passed, o.observed_text.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("p(95) < 10ms for get-schema", false, "12.3ms"),
                ("error_rate < 1%", true, "0.52%"),
                ("rps > 1000", true, "1234.5/s"),
                ("max < 2s", true, "1.20s"),
                ("errors == 0", false, "3"),
            ]
        );
        assert_eq!(
            outcomes[0].to_string(),
            "p(95) < 10ms for get-schema: FAILED (observed 12.3ms)"
        );
        assert_eq!(
            outcomes[1].to_string(),
            "error_rate < 1%: passed (observed 0.52%)"
        );
    }

    #[test]
    fn observed_formatting() {
        assert_eq!(Metric::Avg.format_observed(850.0), "850us");
        assert_eq!(Metric::Avg.format_observed(12_345.0), "12.3ms");
        assert_eq!(Metric::Avg.format_observed(1_200_000.0), "1.20s");
        assert_eq!(Metric::Avg.format_observed(150_000_000.0), "2.5m");
        assert_eq!(Metric::ErrorRate.format_observed(0.0052), "0.52%");
        assert_eq!(Metric::Rps.format_observed(1234.49), "1234.5/s");
        assert_eq!(Metric::Dropped.format_observed(42.0), "42");
    }

    #[test]
    fn no_data_fails_except_unscoped_counts() {
        let thresholds: Vec<Threshold> = [
            "p(95) < 10ms for never-ran",
            "avg < 1s",
            "error_rate < 1%",
            "rps >= 0",
            "dropped == 0",
            "errors < 1",
            "requests == 0",
            "requests >= 1",
            "errors == 0 for never-ran",
        ]
        .into_iter()
        .map(th)
        .collect();
        let outcomes = evaluate(&thresholds, &Fake(vec![]));
        let summary: Vec<(bool, Option<f64>, &str)> = outcomes
            .iter()
            .map(|o| (o.passed, o.observed, o.observed_text.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (false, None, "no data"),
                (false, None, "no data"),
                (false, None, "no data"),
                (false, None, "no data"),
                (true, Some(0.0), "0"),
                (true, Some(0.0), "0"),
                (true, Some(0.0), "0"),
                (false, Some(0.0), "0"),
                (false, None, "no data"),
            ]
        );
    }

    #[test]
    fn nan_counts_as_no_data() {
        let obs = Fake(vec![(Metric::Avg, None, f64::NAN)]);
        let outcome = th("avg != 1ms").evaluate(&obs);
        assert_eq!((outcome.passed, outcome.observed), (false, None));
        assert_eq!(evaluate_live(&[th("avg != 1ms abortOnFail")], &obs), None);
    }

    #[test]
    fn evaluate_live_only_considers_abort_on_fail() {
        let thresholds: Vec<Threshold> = [
            "p(99) < 100ms",
            "error_rate < 1% abortOnFail",
            "p(95) < 10ms for missing abortOnFail",
            "max < 1s abortOnFail",
            "rps > 1000 abortOnFail",
        ]
        .into_iter()
        .map(th)
        .collect();
        let healthy = Fake(vec![
            (Metric::Percentile(99.0), None, 500_000.0), // fails, but not abortOnFail
            (Metric::ErrorRate, None, 0.001),
            (Metric::Max, None, 900_000.0),
            (Metric::Rps, None, 2000.0),
        ]);
        assert_eq!(evaluate_live(&thresholds, &healthy), None);

        let failing = Fake(vec![
            (Metric::ErrorRate, None, 0.001),
            (Metric::Max, None, 1_500_000.0),
            (Metric::Rps, None, 10.0),
        ]);
        let outcome = evaluate_live(&thresholds, &failing).expect("max < 1s fails first");
        assert_eq!(
            outcome,
            Outcome {
                source: "max < 1s abortOnFail".into(),
                observed: Some(1_500_000.0),
                observed_text: "1.50s".into(),
                passed: false,
                abort_on_fail: true,
                default: false,
            }
        );
    }

    #[test]
    fn evaluate_live_aborts_on_counts_only_when_final() {
        let obs = Fake(vec![
            (Metric::Requests, None, 50.0),
            (Metric::Errors, None, 10.0),
            (Metric::Dropped, None, 1.0),
        ]);
        let live = |s: &str| evaluate_live(&[th(s)], &obs).map(|o| o.observed);
        // Upper bounds exceeded: counts only grow, so this is final.
        assert_eq!(live("errors < 10 abortOnFail"), Some(Some(10.0)));
        assert_eq!(live("errors <= 9 abortOnFail"), Some(Some(10.0)));
        assert_eq!(live("dropped == 0 abortOnFail"), Some(Some(1.0)));
        // Not reached yet: decided at the end.
        assert_eq!(live("requests >= 10000 abortOnFail"), None);
        assert_eq!(live("requests > 10000 abortOnFail"), None);
        assert_eq!(live("requests == 100 abortOnFail"), None);
        assert_eq!(live("errors != 10 abortOnFail"), None);
        // The same thresholds do fail at the end.
        assert!(!th("requests >= 10000 abortOnFail").evaluate(&obs).passed);
        // Live, no data is not a failure; at the end it is.
        assert_eq!(live("errors < 1 for nothing abortOnFail"), None);
        assert_eq!(live("avg < 1ms abortOnFail"), None);
    }

    #[test]
    fn outcome_serializes_camel_case() {
        let outcome = th("p(95) < 10ms abortOnFail").evaluate(&Fake(vec![(
            Metric::Percentile(95.0),
            None,
            8_000.0,
        )]));
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "source": "p(95) < 10ms abortOnFail",
                "observed": 8000.0,
                "observedText": "8.0ms",
                "passed": true,
                "abortOnFail": true,
            })
        );
        let back: Outcome = serde_json::from_value(json).unwrap();
        assert_eq!(back, outcome);
    }

    #[test]
    fn threshold_serde_is_the_string_form() {
        let list: Vec<Threshold> =
            serde_json::from_str(r#"["p(95)<10ms for a", "dropped == 0"]"#).unwrap();
        assert_eq!(list[0].scope.as_deref(), Some("a"));
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"["p(95)<10ms for a","dropped == 0"]"#
        );
        let built = Threshold {
            source: String::new(),
            ..list[1].clone()
        };
        assert_eq!(serde_json::to_string(&built).unwrap(), r#""dropped == 0""#);
        let e = serde_json::from_str::<Threshold>(r#""rps >> 1""#).unwrap_err();
        assert!(
            e.to_string()
                .contains("column 5: expected a comparison operator"),
            "{e}"
        );
    }

    #[test]
    fn parse_all_names_the_entry() {
        let ok = parse_all("spec.thresholds", &["rps > 1", "dropped == 0"]).unwrap();
        assert_eq!(ok.len(), 2);
        let e = parse_all(
            "spec.thresholds",
            &["rps > 1", "dropped == 0", "p(95) =< 10ms"],
        )
        .unwrap_err();
        assert_eq!(e.category(), "invalid");
        assert_eq!(
            e.to_string(),
            "spec.thresholds[2]: column 7: expected a comparison operator (<, <=, >, >=, ==, !=), found \"=<\" in \"p(95) =< 10ms\""
        );
    }
}
