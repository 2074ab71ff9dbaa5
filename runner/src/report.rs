//! What a finished (or running) test amounts to: a summary computed from a
//! merged snapshot, the threshold outcomes, and the JSON report that carries
//! both plus the merged histograms themselves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    snapshot::{JourneyStats, RequestStats, Snapshot, Users},
    thresholds::{Metric, Observations, Outcome, Scope, Series},
};

/// Latency figures in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Latencies {
    /// The fastest.
    pub min: f64,
    /// The mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The slowest.
    pub max: f64,
}

impl Latencies {
    pub fn of(r: &RequestStats) -> Latencies {
        Latencies::of_histogram(&r.latency)
    }

    pub fn of_histogram(h: &crate::histogram::Latency) -> Latencies {
        if h.is_empty() {
            return Latencies::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latencies {
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestSummary {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub rps: f64,
    pub latency_ms: Latencies,
    pub statuses: BTreeMap<u16, u64>,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Requests sent again on a new connection after a kept-alive one
    /// closed under them (idempotent methods only; see the README's Errors).
    #[serde(default)]
    pub retries: u64,
    /// Failed body checks by label (together they are `errorsByKind.check`);
    /// per request only: a label names a check of that request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, u64>,
}

/// One journey's whole passes (not requests: its steps' requests are
/// counted under their own names).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JourneySummary {
    pub passes: u64,
    /// Passes that stopped at a failed step.
    pub failed: u64,
    /// Passes per second.
    pub rate: f64,
    /// A pass's duration, first step's start to last step's end.
    pub duration_ms: Latencies,
}

/// Connection setup times in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SetupMs {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl SetupMs {
    fn of(h: &crate::histogram::Latency) -> Option<SetupMs> {
        let ms = |us: u64| us as f64 / 1000.0;
        (!h.is_empty()).then(|| SetupMs {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        })
    }
}

/// Connections made, and how long their setup took, apart from request
/// latency (which includes the setup for a request that waited for it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSummary {
    pub opened: u64,
    /// The TCP connect.
    pub connect_ms: SetupMs,
    /// The TLS handshake after it (https targets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshake_ms: Option<SetupMs>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub duration_secs: f64,
    pub runners: u32,
    pub start_skew_ms: Option<f64>,
    pub dropped: u64,
    pub distinct_records: u64,
    pub total: RequestSummary,
    pub requests: BTreeMap<String, RequestSummary>,
    /// Per named scenario: every request of its metrics (none for a plan
    /// without named scenarios: `total` is its scenario).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scenarios: BTreeMap<String, RequestSummary>,
    /// Per journey: its whole passes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub journeys: BTreeMap<String, JourneySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionSummary>,
    /// What the figures must be read with, e.g. an unverified target, or
    /// virtual users retired after their onStart kept failing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Virtual users of scenarios with an onStart.
    #[serde(default, skip_serializing_if = "Users::is_empty")]
    pub users: Users,
}

/// The warning of a run in which `retired` virtual users gave up.
pub fn retired_warning(retired: u64) -> String {
    format!(
        "{retired} virtual user(s) retired after their onStart failed {} times in a row: the load ran with fewer users than planned",
        crate::compile::ON_START_ATTEMPTS
    )
}

impl Summary {
    pub fn of(s: &Snapshot) -> Summary {
        let secs = s.elapsed_secs();
        let one = |r: &RequestStats| {
            let requests = r.count();
            let errors = r.error_count();
            RequestSummary {
                requests,
                errors,
                error_rate: if requests > 0 {
                    errors as f64 / requests as f64
                } else {
                    0.0
                },
                rps: if secs > 0.0 {
                    requests as f64 / secs
                } else {
                    0.0
                },
                latency_ms: Latencies::of(r),
                statuses: r.statuses.clone(),
                errors_by_kind: r
                    .errors
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), *v))
                    .collect(),
                bytes_sent: r.bytes_sent,
                bytes_received: r.bytes_received,
                retries: r.retries,
                checks: r.checks.clone(),
            }
        };
        Summary {
            duration_secs: secs,
            runners: s.runners,
            start_skew_ms: s.start_skew_us().map(|us| us as f64 / 1000.0),
            dropped: s.dropped,
            distinct_records: s.distinct_records(),
            total: RequestSummary {
                checks: BTreeMap::new(),
                ..one(&s.stats(None).unwrap_or_default())
            },
            requests: s
                .requests
                .iter()
                .map(|(n, r)| (n.clone(), one(r)))
                .collect(),
            scenarios: s
                .scenarios
                .iter()
                .map(|(n, r)| (n.clone(), one(r)))
                .collect(),
            journeys: s
                .journeys
                .iter()
                .map(|(n, j)| {
                    let summary = JourneySummary {
                        passes: j.passes(),
                        failed: j.failed,
                        rate: s.per_sec(j.passes()),
                        duration_ms: Latencies::of_histogram(&j.duration),
                    };
                    (n.clone(), summary)
                })
                .collect(),
            connections: SetupMs::of(&s.connections.connect).map(|connect_ms| ConnectionSummary {
                opened: s.connections.opened(),
                connect_ms,
                tls_handshake_ms: SetupMs::of(&s.connections.tls_handshake),
            }),
            warnings: {
                let mut w = s.warnings.clone();
                if s.users.retired > 0 {
                    w.push(retired_warning(s.users.retired));
                }
                w
            },
            users: s.users,
        }
    }
}

/// Thresholds read merged results: percentiles come from the merged
/// histogram, never from per-runner figures.
impl Observations for Snapshot {
    fn observe(&self, metric: &Metric, scope: Option<&Scope>) -> Option<f64> {
        let all;
        let r = match scope {
            None => {
                all = self.stats(None)?;
                &all
            }
            Some(Scope::Request(n)) => self.requests.get(n)?,
            Some(Scope::Scenario(n)) => self.scenarios.get(n)?,
            Some(Scope::Journey(n)) => return self.observe_journey(metric, self.journeys.get(n)?),
        };
        let n = r.count();
        Some(match metric {
            Metric::Requests => n as f64,
            Metric::Errors => r.error_count() as f64,
            Metric::Dropped => self.dropped as f64,
            Metric::Rps => self.per_sec(n),
            _ if n == 0 => return None,
            Metric::Percentile(p) => r.latency.value_at_quantile(p / 100.0) as f64,
            Metric::Avg => r.latency.mean(),
            Metric::Min => r.latency.min() as f64,
            Metric::Max => r.latency.max() as f64,
            Metric::ErrorRate => r.error_count() as f64 / n as f64,
        })
    }

    /// Windowed thresholds read the per-interval series, when it was
    /// collected (the final results; live pulls only when a window is due).
    fn series(&self) -> Option<Series<'_>> {
        (!self.intervals.is_empty() && self.interval_us > 0).then(|| Series {
            interval_us: self.interval_us,
            elapsed_us: (self.elapsed_secs() * 1e6).round() as u64,
            intervals: &self.intervals,
        })
    }
}

impl Snapshot {
    /// A journey's figure: its passes stand for requests (latency is a
    /// pass's duration, errors the failed passes, rps passes per second).
    fn observe_journey(&self, metric: &Metric, j: &JourneyStats) -> Option<f64> {
        let n = j.passes();
        let h = &j.duration;
        Some(match metric {
            Metric::Requests => n as f64,
            Metric::Errors => j.failed as f64,
            Metric::Dropped => self.dropped as f64,
            Metric::Rps => self.per_sec(n),
            _ if n == 0 => return None,
            Metric::Percentile(p) => h.value_at_quantile(p / 100.0) as f64,
            Metric::Avg => h.mean(),
            Metric::Min => h.min() as f64,
            Metric::Max => h.max() as f64,
            Metric::ErrorRate => j.failed as f64 / n as f64,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub version: u32,
    pub passed: bool,
    /// Why the test stopped early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<String>,
    pub summary: Summary,
    pub thresholds: Vec<Outcome>,
    /// The merged results, histograms included, for later analysis.
    pub snapshot: Snapshot,
    /// Set when a long run's per-interval series was merged into wider
    /// intervals to fit where the report is kept: the width the runners
    /// recorded, in µs (`snapshot.intervalUs` is the width kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_interval_us: Option<u64>,
}

impl Report {
    pub fn new(snapshot: Snapshot, thresholds: Vec<Outcome>, aborted: Option<String>) -> Report {
        // A run whose engine failed is no verdict, whatever it measured.
        let passed = aborted.is_none()
            && snapshot.failures.is_empty()
            && thresholds.iter().all(|t| t.passed);
        Report {
            version: crate::snapshot::FORMAT_VERSION,
            passed,
            aborted,
            summary: Summary::of(&snapshot),
            thresholds,
            snapshot,
            recorded_interval_us: None,
        }
    }

    /// The small JSON object a pod leaves as its termination message.
    pub fn brief(&self) -> serde_json::Value {
        let t = &self.summary.total;
        let mut brief = serde_json::json!({
            "passed": self.passed,
            "requests": t.requests,
            "errors": t.errors,
            "rps": (t.rps * 10.0).round() / 10.0,
            "p95Ms": t.latency_ms.p95,
            "p99Ms": t.latency_ms.p99,
            "dropped": self.summary.dropped,
            "aborted": self.aborted,
            "failures": self.snapshot.failures,
        });
        // Only when there is something to say, so it stays small.
        if let Some(c) = &self.summary.connections {
            brief["connections"] = serde_json::to_value(c).expect("figures serialize");
        }
        if !self.summary.warnings.is_empty() {
            brief["warnings"] = serde_json::json!(self.summary.warnings);
        }
        if !self.summary.users.is_empty() {
            brief["users"] = serde_json::to_value(self.summary.users).expect("counts serialize");
        }
        brief
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        histogram::record,
        snapshot::ErrorKind,
        thresholds::{Threshold, evaluate},
    };

    /// 10 s of a two-scenario run built by hand: browse/home (100 requests
    /// of 10-19 ms, 5 failed), buy/pay (50 of 200 ms); the checkout
    /// journey's 40 passes of 1-1.39 s, 4 of them failed.
    fn two_scenarios() -> Snapshot {
        let stats = |n: u64, base: u64, failed: u64| {
            let mut r = RequestStats::default();
            (0..n).for_each(|i| record(&mut r.latency, base + (i % 10) * 1_000));
            r.statuses.insert(200, n - failed);
            if failed > 0 {
                r.errors.insert(ErrorKind::Status, failed);
            }
            r
        };
        let mut s = Snapshot::empty(1_000_000);
        s.runners = 1;
        s.started_us = Some(0);
        s.until_us = Some(10_000_000);
        s.requests
            .insert("browse/home".into(), stats(100, 10_000, 5));
        s.requests.insert("buy/pay".into(), stats(50, 200_000, 0));
        s.scenarios.insert("browse".into(), stats(100, 10_000, 5));
        s.scenarios.insert("buy".into(), stats(50, 200_000, 0));
        let mut j = crate::snapshot::JourneyStats::default();
        (0..40).for_each(|i| j.record(1_000_000 + i * 10_000, !i.is_multiple_of(10), 0, 1));
        s.journeys.insert("buy/checkout".into(), j);
        Snapshot::from_json(&s.to_json()).unwrap()
    }

    #[test]
    fn the_summary_has_a_row_per_scenario_and_per_journey() {
        let s = Summary::of(&two_scenarios());
        // Journey passes are not requests.
        assert_eq!(s.total.requests, 150);
        let browse = &s.scenarios["browse"];
        assert_eq!((browse.requests, browse.errors), (100, 5));
        assert_eq!(browse.rps, 10.0);
        assert!(
            (browse.latency_ms.p95 - 19.0).abs() < 0.1,
            "{:?}",
            browse.latency_ms
        );
        let j = &s.journeys["buy/checkout"];
        assert_eq!((j.passes, j.failed), (40, 4));
        assert_eq!(j.rate, 4.0);
        assert!(
            (j.duration_ms.p50 - 1_190.0).abs() < 2.0,
            "{:?}",
            j.duration_ms
        );
        // In the JSON summary, and back.
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["journeys"]["buy/checkout"]["failed"], 4);
        assert_eq!(json["scenarios"]["buy"]["requests"], 50);
        let back: Summary = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        // A plan without them has neither key.
        let mut plain = two_scenarios();
        plain.scenarios.clear();
        plain.journeys.clear();
        let json = serde_json::to_string(&Summary::of(&plain)).unwrap();
        assert!(
            !json.contains("scenarios") && !json.contains("journeys"),
            "{json}"
        );
    }

    #[test]
    fn the_text_summary_shows_the_tables() {
        let snap = two_scenarios();
        let report = Report::new(snap, Vec::new(), None);
        let out = crate::text::summary(&report, "t");
        let line = |start: &str| {
            out.lines()
                .find(|l| l.trim_start().starts_with(start))
                .unwrap_or_else(|| panic!("no {start:?} in {out}"))
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert!(
            out.contains("scenario (ms)") && out.contains("journey (whole, ms)"),
            "{out}"
        );
        let browse = line("browse ");
        assert_eq!(browse[1..4], ["100", "10.0", "5.00%"]);
        let checkout = line("buy/checkout");
        assert_eq!(checkout[1..3], ["40", "4"]);
    }

    #[test]
    fn thresholds_read_scenarios_and_journeys() {
        let snap = two_scenarios();
        let judge = |s: &str| {
            let t = Threshold::parse(s).unwrap();
            evaluate(std::slice::from_ref(&t), &snap).remove(0)
        };
        for (s, passed, observed) in [
            ("p(95) < 25ms for scenario browse", true, 19_000.0),
            ("p(95) < 150ms for scenario buy", false, 209_000.0),
            ("error_rate < 1% for scenario browse", false, 0.05),
            ("error_rate < 1% for scenario buy", true, 0.0),
            ("rps > 4 for scenario buy", true, 5.0),
            ("requests == 100 for scenario browse", true, 100.0),
            ("p(99) < 2s for journey buy/checkout", true, 1_390_000.0),
            ("min > 1s for journey buy/checkout", false, 1_000_000.0),
            ("error_rate <= 10% for journey buy/checkout", true, 0.1),
            ("errors == 4 for journey buy/checkout", true, 4.0),
            ("requests == 40 for journey buy/checkout", true, 40.0),
            ("rps == 4 for journey buy/checkout", true, 4.0),
            // All requests: the passes are not among them.
            ("requests == 150", true, 150.0),
        ] {
            let o = judge(s);
            assert_eq!(o.passed, passed, "{s}: {o}");
            let got = o.observed.unwrap();
            assert!((got - observed).abs() <= observed * 0.002, "{s}: {got}");
        }
        // Names the results do not hold: no data, failed.
        for s in [
            "p(95) < 1s for scenario nope",
            "p(95) < 1s for journey browse",
        ] {
            let o = judge(s);
            assert!(!o.passed && o.observed.is_none(), "{s}: {o}");
        }
    }
}
