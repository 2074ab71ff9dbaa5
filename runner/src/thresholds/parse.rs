//! The threshold syntax of the module doc of [`super`]: a hand-written
//! recursive-descent [`Parser`] (which [`super::window`] extends with
//! windows and `K * METRIC` right sides), the latency units, and the "did
//! you mean" suggestion for a misspelt metric.

use std::str::FromStr;

use super::{Kind, Limits, Metric, Op, ParseError, Scope, Threshold};
use crate::error::Error;

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

    pub(super) fn parse_with(s: &str, limits: Option<&Limits>) -> Result<Self, ParseError> {
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
}

impl FromStr for Threshold {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Threshold::parse(s)
    }
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

const METRICS_HELP: &str = "p(N), med, avg, min, max, error_rate, rps, requests, errors, dropped";
const OPS_HELP: &str = "<, <=, >, >=, ==, !=";
pub(super) const METRIC_NAMES: [&str; 9] = [
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
pub(super) struct Parser<'a> {
    pub(super) src: &'a str,
    pub(super) pos: usize,
    pub(super) limits: Option<&'a Limits>,
}

impl<'a> Parser<'a> {
    pub(super) fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos == self.src.len()
    }

    pub(super) fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    pub(super) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    pub(super) fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let n = rest.find(|c: char| !f(c)).unwrap_or(rest.len());
        self.pos += n;
        &rest[..n]
    }

    pub(super) fn error<T>(&self, at: usize, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            column: self.src[..at].chars().count() + 1,
            message: message.into(),
        })
    }

    /// The token at byte `at`, quoted, for "found ..." in messages: a run of
    /// operator characters, a single parenthesis, or a run of anything else
    /// up to whitespace, an operator or a parenthesis.
    pub(super) fn found(&self, at: usize) -> String {
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

    pub(super) fn metric(&mut self) -> Result<Metric, ParseError> {
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

    pub(super) fn value(&mut self, metric: Metric) -> Result<f64, ParseError> {
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
    ) -> Result<(Option<Scope>, bool), ParseError> {
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
                        return self.error(at, "\"for\" given twice; a threshold applies to one request name, scenario or journey (or, without \"for\", to all requests)");
                    }
                    if metric == Metric::Dropped {
                        return self.error(
                            at,
                            "dropped counts sends that could not start, which belong to no request name, scenario or journey; remove \"for NAME\"",
                        );
                    }
                    if windowed {
                        return self.error(
                            at,
                            "a window reads the per-interval series, which is kept for all requests together, not per request name, scenario or journey; remove \"for NAME\" (or the window)",
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
                    scope = Some(self.scope_of(name)?);
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

impl Parser<'_> {
    /// After `for NAME`: `scenario X` and `journey X` select a scenario or a
    /// journey; a lone `scenario` (or `journey`) is a request of that name.
    fn scope_of(&mut self, word: &str) -> Result<Scope, ParseError> {
        let kind: fn(String) -> Scope = match word {
            "scenario" => Scope::Scenario,
            "journey" => Scope::Journey,
            _ => return Ok(Scope::Request(word.to_string())),
        };
        let before = self.pos;
        self.skip_ws();
        let name_at = self.pos;
        let name = self.take_while(is_name_char);
        if name_at == before || name.is_empty() || name == "abortOnFail" {
            self.pos = before;
            return Ok(Scope::Request(word.to_string()));
        }
        Ok(kind(name.to_string()))
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
        .map(|name| (strsim::levenshtein(&lower, name), name))
        .filter(|&(d, name)| d <= if name.len() <= 4 { 1 } else { 2 })
        .min_by_key(|&(d, _)| d)
        .map(|(_, name)| name.to_string())
}

#[cfg(test)]
mod tests;
