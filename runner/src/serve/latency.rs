//! Injected latency: a spec such as `"10%:50ms, 1ms"` (10% of requests take
//! 50 ms, the rest 1 ms), compiled once at load time into a cumulative table
//! so that a request costs one draw (spread evenly over a route's requests,
//! see `spread`) and a short scan, no parsing.
//!
//! Percentages are kept in parts per million so that "0.1%:1s" is exact and
//! the ≤ 100% check is an integer comparison (no float rounding surprises).

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::spread::{self, PPM};
use crate::duration::{format_duration, parse_duration};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// `(cumulative ppm, duration)`, in the order written; a draw `r` in
    /// `0..PPM` takes the first entry with `r < cumulative`.
    table: Vec<(u32, Duration)>,
    /// For the share not covered by the table (the bare `DURATION` entry).
    rest: Duration,
}

impl Latency {
    /// Every request takes `d`.
    pub fn fixed(d: Duration) -> Self {
        Latency {
            table: Vec::new(),
            rest: d,
        }
    }

    /// True when no request is ever delayed: the handler then skips the timer.
    pub fn is_zero(&self) -> bool {
        self.rest.is_zero() && self.table.iter().all(|(_, d)| d.is_zero())
    }

    /// The delay for request `n` of its route (counted from 0).
    pub fn sample(&self, n: u64) -> Duration {
        if self.table.is_empty() {
            // Fixed latency: no draw at all.
            return self.rest;
        }
        self.sample_with(spread::latency_ppm(n))
    }

    /// The delay for a given draw in `0..1_000_000` (deterministic, for tests).
    pub fn sample_with(&self, draw_ppm: u32) -> Duration {
        self.table
            .iter()
            .find(|(cum, _)| draw_ppm < *cum)
            .map_or(self.rest, |(_, d)| *d)
    }

    /// The injected latency's `q` quantile (0..=1), so a test can compare a
    /// measured percentile with what the server was told to do.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut shares: Vec<(Duration, u32)> = Vec::with_capacity(self.table.len() + 1);
        let mut prev = 0;
        for (cum, d) in &self.table {
            shares.push((*d, cum - prev));
            prev = *cum;
        }
        shares.push((self.rest, PPM - prev));
        shares.sort_by_key(|(d, _)| *d);
        let target = (q.clamp(0.0, 1.0) * f64::from(PPM)).ceil() as u32;
        let mut acc = 0;
        for (d, share) in &shares {
            acc += share;
            if *share > 0 && acc >= target.max(1) {
                return *d;
            }
        }
        shares.last().map_or(Duration::ZERO, |(d, _)| *d)
    }
}

impl FromStr for Latency {
    type Err = String;

    /// Comma-separated entries: `P%:DURATION` (P percent of requests take
    /// DURATION) and at most one bare `DURATION` for the remainder (default 0).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = Latency::default();
        let mut total = 0u32;
        let mut have_rest = false;
        if s.trim().is_empty() {
            return Ok(out);
        }
        for entry in s.split(',').map(str::trim) {
            if entry.is_empty() {
                return Err(format!(
                    "empty entry in {s:?} (write e.g. \"10%:50ms, 1ms\")"
                ));
            }
            match entry.split_once(':') {
                Some((pct, dur)) => {
                    let ppm = parse_percent(pct.trim())?;
                    let d = parse_duration(dur.trim())?;
                    total = total.saturating_add(ppm);
                    if total > PPM {
                        return Err(format!("percentages in {s:?} add up to more than 100%"));
                    }
                    out.table.push((total, d));
                }
                None => {
                    if have_rest {
                        return Err(format!(
                            "{s:?} has more than one bare duration (only one may cover the remainder)"
                        ));
                    }
                    have_rest = true;
                    out.rest = parse_duration(entry)?;
                }
            }
        }
        Ok(out)
    }
}

/// "10%" → 100_000 ppm. The `%` is required so "10:50ms" is not misread.
fn parse_percent(p: &str) -> Result<u32, String> {
    let num = p
        .strip_suffix('%')
        .ok_or_else(|| format!("bad percentage {p:?}: write it as e.g. \"10%\""))?;
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad percentage {p:?}: not a number"))?;
    if !(v > 0.0 && v <= 100.0) {
        return Err(format!(
            "bad percentage {p:?}: must be above 0% and at most 100%"
        ));
    }
    Ok((v * 10_000.0).round() as u32)
}

/// Writes the normalized spec ("10%:50ms, 1ms"); parsing it gives the same value.
impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prev = 0;
        let mut sep = "";
        for (cum, d) in &self.table {
            let share = cum - prev;
            prev = *cum;
            if share % 10_000 == 0 {
                write!(f, "{sep}{}%:{}", share / 10_000, format_duration(*d))?;
            } else {
                write!(
                    f,
                    "{sep}{}%:{}",
                    f64::from(share) / 10_000.0,
                    format_duration(*d)
                )?;
            }
            sep = ", ";
        }
        if !self.rest.is_zero() || self.table.is_empty() {
            write!(f, "{sep}{}", format_duration(self.rest))?;
        }
        Ok(())
    }
}

impl Serialize for Latency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_shares_and_remainder() {
        let l: Latency = "10%:50ms, 1ms".parse().unwrap();
        assert_eq!(l.sample_with(0), ms(50));
        assert_eq!(l.sample_with(99_999), ms(50));
        assert_eq!(l.sample_with(100_000), ms(1));
        assert_eq!(l.sample_with(999_999), ms(1));

        let l: Latency = "5%:20ms,1%:1s".parse().unwrap();
        assert_eq!(l.sample_with(49_999), ms(20));
        assert_eq!(l.sample_with(50_000), ms(1000));
        assert_eq!(l.sample_with(59_999), ms(1000));
        assert_eq!(l.sample_with(60_000), Duration::ZERO);
    }

    #[test]
    fn fixed_empty_and_fractional() {
        assert_eq!("250ms".parse::<Latency>().unwrap(), Latency::fixed(ms(250)));
        assert!("".parse::<Latency>().unwrap().is_zero());
        assert!(!"1%:1ms".parse::<Latency>().unwrap().is_zero());
        let l: Latency = "0.5%:2s".parse().unwrap();
        assert_eq!(l.sample_with(4_999), ms(2000));
        assert_eq!(l.sample_with(5_000), Duration::ZERO);
        assert_eq!(
            "100%:3ms".parse::<Latency>().unwrap().sample_with(999_999),
            ms(3)
        );
    }

    #[test]
    fn rejects_bad_specs() {
        let err = |s: &str| s.parse::<Latency>().unwrap_err();
        assert!(
            err("60%:1ms, 50%:2ms").contains("more than 100%"),
            "{}",
            err("60%:1ms, 50%:2ms")
        );
        assert!(err("10:50ms").contains("percentage"));
        assert!(err("x%:50ms").contains("not a number"));
        assert!(err("0%:50ms").contains("above 0%"));
        assert!(err("101%:50ms").contains("at most 100%"));
        assert!(err("10%:50").contains("missing unit"));
        assert!(err("1ms, 2ms").contains("more than one bare"));
        assert!(err("10%:5ms,,1ms").contains("empty entry"));
    }

    #[test]
    fn display_round_trips() {
        for s in ["10%:50ms, 1ms", "5%:20ms", "0.5%:2s, 3ms", "250ms", "0s"] {
            let l: Latency = s.parse().unwrap();
            assert_eq!(l.to_string(), s);
            assert_eq!(l.to_string().parse::<Latency>().unwrap(), l);
        }
    }

    #[test]
    fn quantiles_follow_the_distribution() {
        let l: Latency = "10%:50ms, 1ms".parse().unwrap();
        assert_eq!(l.quantile(0.5), ms(1));
        assert_eq!(l.quantile(0.9), ms(1));
        assert_eq!(l.quantile(0.91), ms(50));
        assert_eq!(l.quantile(0.99), ms(50));
        let l: Latency = "1%:1s".parse().unwrap();
        assert_eq!(l.quantile(0.99), Duration::ZERO);
        assert_eq!(l.quantile(0.999), ms(1000));
        assert_eq!(l.quantile(0.0), Duration::ZERO);
    }

    #[test]
    fn sampling_hits_each_share() {
        let l: Latency = "50%:7ms, 3ms".parse().unwrap();
        let slow = (0..2000).filter(|&n| l.sample(n) == ms(7)).count();
        assert!((997..=1003).contains(&slow), "{slow} of 2000 took 7ms");
        let l: Latency = "5%:20ms, 1%:1s".parse().unwrap();
        let per = |d| (1000..11_000).filter(|&n| l.sample(n) == d).count();
        let (fast, slow) = (per(ms(20)), per(ms(1000)));
        assert!(
            fast.abs_diff(500) <= 3 && slow.abs_diff(100) <= 3,
            "{fast}, {slow}"
        );
        assert_eq!(Latency::fixed(ms(4)).sample(12345), ms(4));
    }
}
