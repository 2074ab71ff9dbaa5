//! Thresholds and values back as text: the canonical form ([`Threshold`]'s
//! `Display`, which parses back to the same threshold), values in threshold
//! syntax ([`Metric::format_value`]), observed values for people
//! ([`Metric::format_observed`]), and the string form serde and the JSON
//! Schema use.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Kind, Metric, Op, Threshold};

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

impl Metric {
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

fn decimals(number: &str) -> usize {
    number.split_once('.').map_or(0, |(_, d)| d.len())
}

#[cfg(test)]
mod tests;
