//! Parsing a window (`[each 5m]`, `[first 10m]`, `[from 10m to 20m]`) and
//! a windowed threshold's baseline (`1.2 * p(95)[first 10m]`): the syntax
//! half of windowed thresholds, split from their judging (`window.rs`).

use std::time::Duration;

use super::{Baseline, Window};
use crate::{
    duration::{format_duration, parse_duration},
    thresholds::{Kind, Metric, ParseError, Parser},
};

impl<'a> Parser<'a> {
    /// An optional `[WINDOW]` after a metric.
    pub(in crate::thresholds) fn window_opt(
        &mut self,
        metric: Metric,
    ) -> Result<Option<Window>, ParseError> {
        if self.peek() != Some('[') {
            return Ok(None);
        }
        let at = self.pos;
        if metric == Metric::Dropped {
            return self.error(
                at,
                "dropped is not kept per interval, so it takes no window; write e.g. \"dropped == 0\" for the whole test",
            );
        }
        self.pos += 1;
        self.skip_ws();
        let kw_at = self.pos;
        let window = match self.take_while(|c| c.is_ascii_alphabetic()) {
            "first" => Window::First(self.window_length()?),
            "last" => Window::Last(self.window_length()?),
            "each" => Window::Each(self.window_length()?),
            "from" => {
                self.skip_ws();
                let (a_at, a) = (self.pos, self.duration_token()?);
                self.skip_ws();
                let to_at = self.pos;
                if self.take_while(|c| c.is_ascii_alphabetic()) != "to" {
                    return self.error(
                        to_at,
                        format!(
                            "expected \"to\" after \"from {}\", as in [from 10m to 20m], found {}",
                            format_duration(a),
                            self.found(to_at)
                        ),
                    );
                }
                self.skip_ws();
                let (b_at, b) = (self.pos, self.duration_token()?);
                if b <= a {
                    return self.error(
                        b_at,
                        format!(
                            "the window must end after it starts: \"to {}\" is not after \"from {}\"",
                            format_duration(b),
                            format_duration(a)
                        ),
                    );
                }
                self.check_multiple(a_at, a)?;
                self.check_multiple(b_at, b)?;
                if let Some(len) = self.limits.and_then(|l| l.length)
                    && b > len
                {
                    return self.error(
                        b_at,
                        format!(
                            "the window ends at {}, after the end of the test ({}, from load.duration or load.stages)",
                            format_duration(b),
                            format_duration(len)
                        ),
                    );
                }
                Window::Range(a, b)
            }
            word => {
                let what = if word.is_empty() {
                    self.found(kw_at)
                } else {
                    format!("{word:?}")
                };
                let hint = ["first", "last", "each", "from"]
                    .into_iter()
                    .find(|k| word.eq_ignore_ascii_case(k))
                    .map(|k| format!(" (keywords are case-sensitive: write \"{k}\")"))
                    .unwrap_or_default();
                return self.error(
                    kw_at,
                    format!(
                        "expected first, last, each or from inside \"[ ]\", as in p(95)[last 10m] or error_rate[each 5m], found {what}{hint}"
                    ),
                );
            }
        };
        self.skip_ws();
        if !self.eat(']') {
            return self.error(
                self.pos,
                format!(
                    "expected \"]\" to close the window, found {}",
                    self.found(self.pos)
                ),
            );
        }
        Ok(Some(window))
    }

    /// The D of `first D`, `last D`, `each D`: more than 0, a multiple of
    /// the interval, within the test.
    fn window_length(&mut self) -> Result<Duration, ParseError> {
        self.skip_ws();
        let at = self.pos;
        let d = self.duration_token()?;
        if d.is_zero() {
            return self.error(at, "a window must be longer than 0");
        }
        self.check_multiple(at, d)?;
        if let Some(len) = self.limits.and_then(|l| l.length)
            && d > len
        {
            return self.error(
                at,
                format!(
                    "the window ({}) is longer than the test ({}, from load.duration or load.stages)",
                    format_duration(d),
                    format_duration(len)
                ),
            );
        }
        Ok(d)
    }

    /// One duration token such as `10m`, `90s` or `1h30m`.
    fn duration_token(&mut self) -> Result<Duration, ParseError> {
        let at = self.pos;
        let token = self.take_while(|c| c.is_alphanumeric() || c == '.');
        if token.is_empty() {
            return self.error(
                at,
                format!(
                    "expected a duration such as 5m or 30s, found {}",
                    self.found(at)
                ),
            );
        }
        match parse_duration(token) {
            Ok(d) => Ok(d),
            Err(e) => self.error(at, e),
        }
    }

    /// With a plan: `d` must be a whole number of `reportInterval`s, since
    /// windows are made of whole intervals.
    fn check_multiple(&self, at: usize, d: Duration) -> Result<(), ParseError> {
        let Some(l) = self.limits else {
            return Ok(());
        };
        let (us, w) = (d.as_micros(), l.interval.as_micros().max(1));
        if us.is_multiple_of(w) {
            return Ok(());
        }
        let fmt = |us: u128| format_duration(Duration::from_micros(us as u64));
        let (lo, hi) = (us / w * w, (us / w + 1) * w);
        let nearest = if lo == 0 {
            fmt(hi)
        } else {
            format!("{} or {}", fmt(lo), fmt(hi))
        };
        let divisor = gcd(us, w);
        let default = if l.interval_is_default {
            ", the default for the test's length"
        } else {
            ""
        };
        self.error(
            at,
            format!(
                "{} is not a whole number of reportInterval ({}{default}): windows are made of whole intervals; use {nearest}, or set reportInterval to {} (or another width that divides {})",
                fmt(us),
                fmt(w),
                fmt(divisor),
                fmt(us)
            ),
        )
    }

    /// The right side: a value, or `[K *] METRIC[WINDOW]`.
    pub(in crate::thresholds) fn right(
        &mut self,
        metric: Metric,
        window: Option<Window>,
    ) -> Result<(f64, Option<Baseline>), ParseError> {
        let at = self.pos;
        let k_text = self.take_while(|c| c.is_ascii_digit() || c == '.');
        if !k_text.is_empty() {
            self.skip_ws();
            if self.eat('*') {
                let Some(k) = k_text
                    .parse::<f64>()
                    .ok()
                    .filter(|k| k.is_finite() && *k > 0.0)
                else {
                    return self.error(
                        at,
                        format!("the factor before \"*\" must be a number greater than 0, found {k_text:?}"),
                    );
                };
                self.skip_ws();
                if !self.at_metric() {
                    return self.error(
                        self.pos,
                        format!(
                            "expected a metric after \"*\", as in 1.2 * p(95)[first 10m], found {} (a fixed limit is written without \"*\")",
                            self.found(self.pos)
                        ),
                    );
                }
                return Ok((k, Some(self.baseline(metric, window)?)));
            }
        }
        self.pos = at;
        if self.at_metric() {
            return Ok((1.0, Some(self.baseline(metric, window)?)));
        }
        Ok((self.value(metric)?, None))
    }

    /// Whether a metric name starts here (values never start with a letter).
    fn at_metric(&self) -> bool {
        let rest = self.rest();
        let word = &rest[..rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len())];
        crate::thresholds::METRIC_NAMES.contains(&word)
            || (word == "p" && rest[1..].trim_start().starts_with('('))
    }

    /// `METRIC[WINDOW]` on the right, comparable with the left `metric`.
    fn baseline(&mut self, metric: Metric, window: Option<Window>) -> Result<Baseline, ParseError> {
        let at = self.pos;
        let other = self.metric()?;
        if other.kind() != metric.kind() {
            return self.error(
                at,
                format!(
                    "cannot compare {metric} ({}) with {other} ({}); both sides must measure the same kind",
                    metric.kind().describe(),
                    other.kind().describe()
                ),
            );
        }
        self.skip_ws();
        let w_at = self.pos;
        let other_window = self.window_opt(other)?;
        if let Some(Window::Each(_)) = other_window {
            return self.error(
                w_at,
                "the right side is one figure: use first, last or from ... to (\"each\" belongs on the left, as in p(95)[each 5m] < 1.5 * p(95)[first 10m])",
            );
        }
        if metric.is_count() {
            let (l, r) = (
                window.as_ref().map(Window::length),
                other_window.as_ref().map(Window::length),
            );
            if l.is_none() || l != r {
                return self.error(
                    at,
                    format!(
                        "{metric} is a count, which only compares between windows of the same length; compare rps (per second) instead"
                    ),
                );
            }
        }
        Ok(Baseline {
            metric: other,
            window: other_window,
        })
    }
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Latency => "a latency",
            Kind::Fraction => "a fraction",
            Kind::Rate => "a rate",
            Kind::Count => "a count",
        }
    }
}

fn gcd(a: u128, b: u128) -> u128 {
    if b == 0 { a } else { gcd(b, a % b) }
}
