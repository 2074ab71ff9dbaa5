//! A merged, cumulative snapshot as remote-write series at one instant.
//!
//! Every series carries the caller's labels and its own (`request`,
//! `scenario`, `status_class`, `kind`, `quantile`), sorted by name as the
//! protocol requires (`__name__` first among lower-case names). Counters
//! are the snapshot's totals since the run's start, so the last sample of a
//! run equals its summary exactly; a counter's first sample is preceded by a
//! 0 at the previous push (the run's start for the first), so `increase()`
//! over a whole run is its total.
//!
//! Cardinality is bounded: at most [`MAX_REQUESTS`] request names get series
//! of their own, the first to appear (the busiest first among those that
//! appear in the same push); every later name is added into one
//! [`OTHER`] series per scenario. A name never moves between the two, so
//! every counter only grows.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Labels, native,
    proto::{Label, Sample, TimeSeries},
};
use crate::snapshot::{RequestStats, Snapshot};

/// Request names with series of their own; the rest go to [`OTHER`].
pub const MAX_REQUESTS: usize = 50;
/// The `request` label of the names beyond [`MAX_REQUESTS`].
pub const OTHER: &str = "(other)";
/// The quantiles of the fallback (`HistogramMode::Quantiles`).
pub const QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

pub const REQUESTS: &str = "barrage_requests_total";
pub const ERRORS: &str = "barrage_errors_total";
pub const DURATION: &str = "barrage_request_duration_seconds";
pub const DROPPED: &str = "barrage_dropped_total";
pub const RUNNERS: &str = "barrage_runners_active";

/// The series of one push, with latency both ways: the pusher sends the
/// native histograms or the quantile series, as the receiver takes them.
#[derive(Debug, Default)]
pub struct Built {
    pub common: Vec<TimeSeries>,
    pub native: Vec<TimeSeries>,
    pub quantiles: Vec<TimeSeries>,
}

/// What the run's earlier pushes had: the request names with series of
/// their own, the counters already sent, the last push's instant. Bounded
/// by the cardinality bound.
#[derive(Debug, Default)]
pub struct Names {
    own: BTreeSet<String>,
    counters: BTreeSet<Vec<Label>>,
    last_ms: Option<i64>,
    /// The first push continues earlier ones: its counters get no 0.
    continuing: bool,
}

impl Names {
    pub fn new(continuing: bool) -> Names {
        Names {
            continuing,
            ..Names::default()
        }
    }

    /// Gives names seen for the first time a series of their own while
    /// fewer than [`MAX_REQUESTS`] have one, the busiest first.
    fn admit(&mut self, s: &Snapshot) {
        if self.own.len() >= MAX_REQUESTS {
            return;
        }
        let mut new: Vec<(&String, u64)> = s
            .requests
            .iter()
            .filter(|(n, _)| !self.own.contains(*n))
            .map(|(n, r)| (n, r.count()))
            .collect();
        new.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (n, _) in new.into_iter().take(MAX_REQUESTS - self.own.len()) {
            self.own.insert(n.clone());
        }
    }

    /// A counter that appears for the first time starts from 0 at the
    /// previous push (at the run's start for the first push): without it
    /// `rate()` and `increase()` would miss everything it counted before
    /// its first sample (the first errors of a kind, the first push).
    fn start_counters(&mut self, out: &mut Built, started_ms: Option<i64>, at_ms: i64) {
        let from = if std::mem::take(&mut self.continuing) {
            None
        } else {
            self.last_ms.or(started_ms).filter(|t| *t < at_ms)
        };
        self.last_ms = Some(at_ms);
        let counter = |ts: &TimeSeries| {
            let name = ts
                .labels
                .iter()
                .find(|l| l.name == "__name__")
                .map_or("", |l| l.value.as_str());
            [REQUESTS, ERRORS, DROPPED].contains(&name)
                || !ts.histograms.is_empty()
                || name.ends_with("_sum")
                || name.ends_with("_count")
        };
        for ts in out
            .common
            .iter_mut()
            .chain(&mut out.native)
            .chain(&mut out.quantiles)
        {
            if !counter(ts) || !self.counters.insert(ts.labels.clone()) {
                continue;
            }
            let Some(t) = from else { continue };
            if let Some(h) = ts.histograms.first() {
                let empty = native::from_latency(&crate::histogram::new_latency(), t);
                ts.histograms.insert(
                    0,
                    super::proto::Histogram {
                        schema: h.schema,
                        ..empty
                    },
                );
            } else {
                ts.samples.insert(
                    0,
                    Sample {
                        value: 0.0,
                        timestamp: t,
                    },
                );
            }
        }
    }
}

/// The series of `s` at `at_ms` (unix milliseconds).
pub fn build(
    s: &Snapshot,
    at_ms: i64,
    active_runners: u32,
    labels: &Labels,
    names: &mut Names,
) -> Built {
    names.admit(s);
    // (scenario, request label) -> the requests' results added up.
    let mut groups: BTreeMap<(Option<&str>, &str), RequestStats> = BTreeMap::new();
    for (name, r) in &s.requests {
        let scenario = name
            .split_once('/')
            .map(|(sc, _)| sc)
            .filter(|sc| s.scenarios.contains_key(*sc));
        let request = if names.own.contains(name) {
            name.as_str()
        } else {
            OTHER
        };
        groups.entry((scenario, request)).or_default().merge(r);
    }
    let base = Base { labels, at_ms };
    let mut out = Built::default();
    for ((scenario, request), r) in &groups {
        let own = |extra: Option<(&'static str, &str)>| -> Vec<(&'static str, String)> {
            let mut l = vec![("request", request.to_string())];
            if let Some(sc) = scenario {
                l.push(("scenario", sc.to_string()));
            }
            l.extend(extra.map(|(k, v)| (k, v.to_string())));
            l
        };
        for (class, n) in status_classes(r) {
            out.common
                .push(base.sample(REQUESTS, own(Some(("status_class", class))), n as f64));
        }
        for (kind, n) in &r.errors {
            out.common
                .push(base.sample(ERRORS, own(Some(("kind", kind.as_str()))), *n as f64));
        }
        let mut h = base.series(DURATION, own(None));
        h.histograms.push(native::from_latency(&r.latency, at_ms));
        out.native.push(h);
        for q in QUANTILES {
            let v = if r.count() == 0 {
                0.0
            } else {
                r.latency.value_at_quantile(q) as f64 / 1e6
            };
            out.quantiles
                .push(base.sample(DURATION, own(Some(("quantile", &q.to_string()))), v));
        }
        let sum = r.latency.mean() * r.count() as f64 / 1e6;
        out.quantiles
            .push(base.sample(&format!("{DURATION}_sum"), own(None), sum));
        out.quantiles
            .push(base.sample(&format!("{DURATION}_count"), own(None), r.count() as f64));
    }
    out.common
        .push(base.sample(DROPPED, Vec::new(), s.dropped as f64));
    out.common
        .push(base.sample(RUNNERS, Vec::new(), f64::from(active_runners)));
    let started_ms = s.started_us.map(|us| (us / 1000) as i64);
    names.start_counters(&mut out, started_ms, at_ms);
    out
}

/// Requests by the class of their response (`2xx`), and `none` for those
/// that got none (connect errors, timeouts, interrupted): they add up to
/// the request count.
fn status_classes(r: &RequestStats) -> Vec<(&'static str, u64)> {
    const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    let mut by = [0u64; 5];
    let mut other = 0;
    for (code, n) in &r.statuses {
        match code / 100 {
            c @ 1..=5 => by[usize::from(c) - 1] += n,
            _ => other += n,
        }
    }
    let answered: u64 = r.statuses.values().sum();
    let mut out: Vec<_> = CLASSES
        .into_iter()
        .zip(by)
        .filter(|(_, n)| *n > 0)
        .collect();
    if other > 0 {
        out.push(("other", other));
    }
    let none = r.count().saturating_sub(answered);
    if none > 0 {
        out.push(("none", none));
    }
    out
}

struct Base<'a> {
    labels: &'a Labels,
    at_ms: i64,
}

impl Base<'_> {
    fn series(&self, name: &str, own: Vec<(&'static str, String)>) -> TimeSeries {
        let mut labels: Vec<Label> = self
            .labels
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .chain(own)
            .chain([("__name__", name.to_string())])
            // An empty value is no label at all to Prometheus.
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, value)| Label {
                name: name.to_string(),
                value,
            })
            .collect();
        // Sorted by name; a caller's label that a series' own label names
        // too gives way to it.
        labels.reverse();
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        labels.dedup_by(|a, b| a.name == b.name);
        TimeSeries {
            labels,
            samples: Vec::new(),
            histograms: Vec::new(),
        }
    }

    fn sample(&self, name: &str, own: Vec<(&'static str, String)>, value: f64) -> TimeSeries {
        let mut s = self.series(name, own);
        s.samples.push(Sample {
            value,
            timestamp: self.at_ms,
        });
        s
    }
}
