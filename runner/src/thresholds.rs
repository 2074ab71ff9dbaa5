//! Thresholds: the pass/fail rules of a load test.
//!
//! Users write them as strings in the plan (`"p(95) < 10ms for get-schema"`).
//! They are parsed into [`Threshold`] when the plan loads, so nothing is parsed
//! during the run. [`evaluate()`] checks them against the merged results at the
//! end (the process exits non-zero when one fails), and [`evaluate_live`]
//! checks the `abortOnFail` ones while the test runs.
//!
//! Grammar (keywords are case-sensitive, whitespace around tokens is free):
//!
//! ```text
//! threshold := METRIC[WINDOW]? OP RIGHT [for SCOPE] [abortOnFail]
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
//! SCOPE     := NAME                               one request name; absent = all requests
//!            | scenario NAME                      every request of a named scenario
//!            | journey NAME                       a journey's whole passes (see below)
//! NAME      := [A-Za-z0-9._/-]+
//! ```
//!
//! Decisions beyond the bare grammar:
//! - The value is one token: `10 ms` is an error (with a hint), as is a bare
//!   `300` for a latency (is that seconds or milliseconds?).
//! - `for NAME` and `abortOnFail` may come in either order, each at most once;
//!   the canonical form ([`Threshold`]'s `Display`) puts `for` first.
//! - `dropped ... for NAME` is rejected: dropped sends never started, so they
//!   belong to no request name (nor scenario, nor journey).
//! - `for journey NAME` reads the journey's whole passes, not its requests:
//!   latencies are a pass's duration (first step's start to last step's
//!   end, pauses included), `requests` the passes, `errors` the failed
//!   passes (stopped at a failed step), `error_rate` their fraction and
//!   `rps` passes per second.
//! - `for scenario` / `for journey` followed by nothing (or `abortOnFail`)
//!   is a request named `scenario` / `journey`.
//! - The per-interval series is kept for all requests together only, so a
//!   window with `for ...` is an error.
//! - `==` and `!=` compare exactly. That is what counts need (`dropped == 0`);
//!   on latencies and rates they are allowed but rarely useful.
//! - A threshold without a window reads the whole test, exactly as before
//!   windows existed. Windows, the right-hand `K * METRIC[WINDOW]` and how
//!   they are judged (at the end and live) are described in [`window`].
//!
//! Where what lives:
//! - this file: the parsed form ([`Threshold`], [`Metric`], [`Op`],
//!   [`ParseError`]);
//! - `parse`: the syntax above ([`Threshold::parse`], [`parse_all`]), the
//!   latency units and the "did you mean" suggestion for a misspelt metric;
//! - `format`: thresholds and values back as text (the canonical form, the
//!   observed values reports show, the serde and JSON Schema string form);
//! - `evaluate`: the [`Observations`] a result set offers, [`evaluate()`],
//!   [`evaluate_live`], and which thresholds a plan is judged by
//!   ([`plan_sources`], [`DEFAULT`]);
//! - [`window`]: windows and `K * METRIC` right sides, parsed and judged.

mod evaluate;
mod format;
mod parse;

pub mod live;
pub mod window;

pub use window::{Baseline, Limits, Series, Window, live_horizon_us, series_due};

pub use evaluate::{DEFAULT, Observations, Outcome, evaluate, evaluate_live, plan_sources};
pub use parse::parse_all;
// The window grammar extends the parser and knows the metric names.
use parse::{METRIC_NAMES, Parser};

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
    /// What `for ...` selects; `None` means all requests together.
    pub scope: Option<Scope>,
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

/// What a threshold's `for` clause selects.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `for NAME`: one request name.
    Request(String),
    /// `for scenario NAME`: every request of a named scenario.
    Scenario(String),
    /// `for journey NAME`: a journey's whole passes.
    Journey(String),
}

impl Scope {
    pub fn name(&self) -> &str {
        match self {
            Scope::Request(n) | Scope::Scenario(n) | Scope::Journey(n) => n,
        }
    }
}

/// As written after `for`: `NAME`, `scenario NAME`, `journey NAME`.
impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Request(n) => f.write_str(n),
            Scope::Scenario(n) => write!(f, "scenario {n}"),
            Scope::Journey(n) => write!(f, "journey {n}"),
        }
    }
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
}
