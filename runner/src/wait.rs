//! Waits as users write them: think time, pacing, a journey's `sleep` step
//! and a repeat block's `interval`. A fixed duration ("500ms"), a uniform
//! range ("1s..3s", as Locust's `between`) or an exponential distribution
//! with a mean ("exponential(2s)", arrivals of a Poisson process, as a
//! think time that models independent users).
//!
//! One string form in plans, manifests and the CRD schema (type string, so
//! the schema stays structural), like `HumanDuration`.

use std::{fmt, str::FromStr, time::Duration};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::{format_duration, parse_duration};

/// An exponential draw is cut at this many means: the chance of a longer
/// one is e^-20 (about 2 in a billion), and a wait is then bounded by the
/// plan, not by the luck of a random draw.
const EXPONENTIAL_CAP: f64 = 20.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wait {
    Fixed(Duration),
    /// Uniform between the two, both included (`lo <= hi`).
    Uniform(Duration, Duration),
    /// Exponential with this mean (cut at `EXPONENTIAL_CAP` means).
    Exponential(Duration),
}

impl Default for Wait {
    fn default() -> Self {
        Wait::Fixed(Duration::ZERO)
    }
}

impl Wait {
    pub const ZERO: Wait = Wait::Fixed(Duration::ZERO);

    /// One draw.
    pub fn sample(&self) -> Duration {
        match *self {
            Wait::Fixed(d) => d,
            Wait::Uniform(lo, hi) => {
                let span = (hi - lo).as_nanos() as u64;
                lo + Duration::from_nanos(fastrand::u64(0..=span))
            }
            Wait::Exponential(mean) => {
                // 1 - u is in (0, 1], so the logarithm is finite.
                let u = 1.0 - fastrand::f64();
                let k = (-u.ln()).min(EXPONENTIAL_CAP);
                mean.mul_f64(k)
            }
        }
    }

    /// The longest a draw can be.
    pub fn max(&self) -> Duration {
        match *self {
            Wait::Fixed(d) => d,
            Wait::Uniform(_, hi) => hi,
            Wait::Exponential(mean) => mean.mul_f64(EXPONENTIAL_CAP),
        }
    }

    /// The mean of the draws (for pacing and estimates).
    pub fn mean(&self) -> Duration {
        match *self {
            Wait::Fixed(d) => d,
            Wait::Uniform(lo, hi) => (lo + hi) / 2,
            Wait::Exponential(mean) => mean,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.max().is_zero()
    }
}

/// Parses "500ms", "1s..3s" or "exponential(2s)".
pub fn parse_wait(s: &str) -> Result<Wait, String> {
    let t = s.trim();
    if let Some(inner) = t
        .strip_prefix("exponential(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let mean = parse_duration(inner).map_err(|e| format!("bad wait {s:?}: {e}"))?;
        if mean.is_zero() {
            return Err(format!("bad wait {s:?}: the mean must be above 0"));
        }
        return Ok(Wait::Exponential(mean));
    }
    if let Some((lo, hi)) = t.split_once("..") {
        let lo = parse_duration(lo).map_err(|e| format!("bad wait {s:?}: {e}"))?;
        let hi = parse_duration(hi).map_err(|e| format!("bad wait {s:?}: {e}"))?;
        if lo > hi {
            return Err(format!(
                "bad wait {s:?}: the range must go from the shorter to the longer"
            ));
        }
        return Ok(Wait::Uniform(lo, hi));
    }
    parse_duration(t)
        .map(Wait::Fixed)
        .map_err(|e| format!("{e} (a wait is a duration such as \"500ms\", a range such as \"1s..3s\", or \"exponential(2s)\" for a mean)"))
}

impl FromStr for Wait {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_wait(s)
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Wait::Fixed(d) => f.write_str(&format_duration(d)),
            Wait::Uniform(lo, hi) => write!(f, "{}..{}", format_duration(lo), format_duration(hi)),
            Wait::Exponential(m) => write!(f, "exponential({})", format_duration(m)),
        }
    }
}

impl From<Duration> for Wait {
    fn from(d: Duration) -> Self {
        Wait::Fixed(d)
    }
}

impl Serialize for Wait {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Wait {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Wait {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Wait".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A wait: a duration (500ms), a uniform range (1s..3s) or exponential(MEAN) such as exponential(2s)."
        })
    }
    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_the_three_forms_and_prints_them_back() {
        for (src, want) in [
            ("250ms", Wait::Fixed(ms(250))),
            ("1s..3s", Wait::Uniform(ms(1000), ms(3000))),
            (" 100ms .. 1s ", Wait::Uniform(ms(100), ms(1000))),
            ("exponential(2s)", Wait::Exponential(ms(2000))),
        ] {
            let w = parse_wait(src).unwrap();
            assert_eq!(w, want, "{src}");
            assert_eq!(parse_wait(&w.to_string()).unwrap(), w);
        }
    }

    #[test]
    fn refuses_what_it_cannot_mean() {
        for bad in [
            "",
            "3s..1s",
            "1s..",
            "exponential(0s)",
            "exponential(x)",
            "10",
            "poisson(1s)",
        ] {
            let e = parse_wait(bad).unwrap_err();
            assert!(e.contains("wait") || e.contains("duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn draws_stay_in_range_and_spread() {
        let w = Wait::Uniform(ms(10), ms(20));
        let draws: Vec<_> = (0..2000).map(|_| w.sample()).collect();
        assert!(draws.iter().all(|d| (ms(10)..=ms(20)).contains(d)));
        assert!(draws.iter().any(|d| *d < ms(12)) && draws.iter().any(|d| *d > ms(18)));
        let e = Wait::Exponential(ms(10));
        let n = 20_000;
        let sum: Duration = (0..n).map(|_| e.sample()).sum();
        let mean = sum.as_secs_f64() / n as f64;
        // The mean of 20,000 draws is within 5% of 10ms with overwhelming odds.
        assert!((0.0095..0.0105).contains(&mean), "mean {mean}");
        assert!((0..n).all(|_| e.sample() <= e.max()));
        assert_eq!(Wait::Fixed(ms(7)).sample(), ms(7));
    }

    #[test]
    fn reads_from_yaml() {
        let w: Wait = serde_yaml_ng::from_str("1s..2s").unwrap();
        assert_eq!(w, Wait::Uniform(ms(1000), ms(2000)));
        assert!(serde_yaml_ng::from_str::<Wait>("2s..1s").is_err());
    }
}
