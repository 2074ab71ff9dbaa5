//! `kubectl barrage`: a LoadTest's results for people. `report` prints the
//! summary of one run (or writes it as a self-contained HTML page with
//! plots), `compare` sets two runs side by side.
//!
//! `fetch` is the only part that talks to Kubernetes; it yields a [`Run`],
//! and everything else is a pure function of it.

pub mod compare;
pub mod fetch;
pub mod figures;
pub mod html;
pub mod series;
pub mod svg;
pub mod text;

use barrage_runner::{report::Report, snapshot::FORMAT_VERSION};

use crate::crd::{LoadTestStatus, Phase};

/// One LoadTest as the plugin sees it: its status and, once finished, its
/// full report.
#[derive(Clone, Debug)]
pub struct Run {
    pub namespace: String,
    pub name: String,
    /// `spec.runners`.
    pub runners: u32,
    /// `None` until the operator has written one.
    pub status: Option<LoadTestStatus>,
    pub report: ReportState,
}

#[derive(Clone, Debug)]
pub enum ReportState {
    Loaded(Box<Report>),
    /// The test has not finished: there is no report yet.
    NotYet,
    /// Finished, but the status names no report (it ended before any results).
    None,
    /// The status names a ConfigMap that is not there.
    Missing {
        config_map: String,
    },
    /// The ConfigMap is there but could not be read or parsed.
    Unreadable {
        config_map: String,
        reason: String,
    },
}

impl Run {
    pub fn title(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn phase(&self) -> Option<Phase> {
        self.status.as_ref().map(|s| s.phase)
    }

    pub fn finished(&self) -> bool {
        self.phase().is_some_and(Phase::is_terminal)
    }

    pub fn loaded(&self) -> Option<&Report> {
        match &self.report {
            ReportState::Loaded(r) => Some(r),
            _ => None,
        }
    }

    /// "Passed" or "Failed" once decided: the status's, else the report's.
    pub fn verdict(&self) -> Option<String> {
        self.status
            .as_ref()
            .and_then(|s| s.verdict.clone())
            .or_else(|| {
                self.loaded()
                    .map(|r| if r.passed { "Passed" } else { "Failed" }.to_string())
            })
    }

    /// What a reader must know about what is (not) shown, one sentence each.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        match &self.status {
            None => notes.push(
                "no status yet: the operator has not picked this LoadTest up (is it running and watching this namespace?)"
                    .to_string(),
            ),
            Some(st) if !st.phase.is_terminal() => notes.push(format!(
                "not finished yet (phase {:?}): the figures are those known so far, from the status; the full report comes when the test ends",
                st.phase
            )),
            Some(_) => {}
        }
        match &self.report {
            ReportState::Loaded(r) => {
                if r.snapshot.intervals.is_empty() {
                    notes.push(
                        "the report has no per-interval series (the operator drops it when even one interval would not fit the ConfigMap): no plots over time"
                            .to_string(),
                    );
                } else if let Some(rec) = r.recorded_interval_us {
                    notes.push(format!(
                        "the series over time was recorded in {} intervals and merged into {} ones to fit the ConfigMap",
                        duration(rec as f64 / 1e6),
                        duration(r.snapshot.interval_us as f64 / 1e6)
                    ));
                }
            }
            ReportState::NotYet => {}
            ReportState::None => notes.push(
                "the test ended without a report (no results were collected): showing the status only"
                    .to_string(),
            ),
            ReportState::Missing { config_map } => notes.push(format!(
                "the report ConfigMap {config_map} is missing: showing the status summary only"
            )),
            ReportState::Unreadable { config_map, reason } => notes.push(format!(
                "the report in ConfigMap {config_map} is unreadable ({reason}): showing the status summary only"
            )),
        }
        notes
    }
}

/// Parses the `report.json` the operator writes, refusing other format
/// versions with a clear message rather than a field error.
pub fn parse_report(json: &str) -> Result<Report, String> {
    #[derive(serde::Deserialize)]
    struct Version {
        version: u32,
    }
    let v: Version = serde_json::from_str(json).map_err(|e| format!("not a report: {e}"))?;
    if v.version != FORMAT_VERSION {
        return Err(format!(
            "report format version {} is not {FORMAT_VERSION} (a different Barrage version wrote it)",
            v.version
        ));
    }
    serde_json::from_str(json).map_err(|e| format!("not a report: {e}"))
}

/// `NAME` or `NAMESPACE/NAME`; `what` names the argument in errors.
pub fn parse_ref(s: &str, default_ns: &str, what: &str) -> crate::error::Result<(String, String)> {
    let bad = |message: &str| crate::error::Error::Invalid {
        field: what.into(),
        message: format!("{s:?} {message}"),
    };
    let (ns, name) = match s.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (default_ns, s),
    };
    if name.is_empty() || ns.is_empty() {
        return Err(bad("is not NAME or NAMESPACE/NAME"));
    }
    if name.contains('/') {
        return Err(bad(
            "has more than one '/' (expected NAME or NAMESPACE/NAME)",
        ));
    }
    Ok((ns.to_string(), name.to_string()))
}

/// Milliseconds for people: 3 significant digits, at most 2 decimals.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Seconds as "1m 05s" or "12.3s".
pub fn duration(secs: f64) -> String {
    if secs >= 60.0 {
        let s = secs.round() as u64;
        if s >= 3600 {
            format!("{}h {:02}m {:02}s", s / 3600, s % 3600 / 60, s % 60)
        } else {
            format!("{}m {:02}s", s / 60, s % 60)
        }
    } else {
        format!("{secs:.1}s")
    }
}

/// Unix microseconds as RFC 3339 (UTC, whole seconds).
pub fn timestamp(us: u64) -> String {
    k8s_openapi::jiff::Timestamp::from_microsecond(us as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| format!("{us}µs"))
}

/// An RFC 3339 instant from the status, to whole seconds like [`timestamp`]
/// (the operator writes nanoseconds); as it is when it does not parse.
pub fn instant(s: &str) -> String {
    s.parse::<k8s_openapi::jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Runs and reports built in memory, for the rendering tests.

    use std::collections::BTreeMap;

    use barrage_runner::{
        histogram::{new_latency, record},
        report::Report,
        snapshot::{ErrorKind, Interval, Packed, RequestStats, Snapshot},
        thresholds::Outcome,
    };

    use super::{ReportState, Run};
    use crate::crd::{LoadTestStatus, Phase};

    pub const START_US: u64 = 1_700_000_000_000_000;

    /// A request with `n` samples spread evenly over `lo..=hi` µs, all 200s
    /// but `errors` 503s, over 10 s.
    pub fn stats(n: u64, lo: u64, hi: u64, errors: u64) -> RequestStats {
        let mut r = RequestStats::default();
        for i in 0..n {
            record(
                &mut r.latency,
                lo + (hi - lo) * i / n.max(2).saturating_sub(1),
            );
        }
        r.statuses.insert(200, n - errors);
        if errors > 0 {
            r.statuses.insert(503, errors);
            r.errors.insert(ErrorKind::Status, errors);
        }
        r.first_start_us = START_US;
        r.last_end_us = START_US + 10_000_000;
        r
    }

    /// A finished run of 10 s with the given requests and 10 intervals.
    pub fn report(requests: Vec<(&str, RequestStats)>, thresholds: Vec<Outcome>) -> Report {
        let mut s = Snapshot::empty(1_000_000);
        s.runners = 2;
        s.finished = 2;
        s.started_us = Some(START_US);
        s.until_us = Some(START_US + 10_000_000);
        s.runner_starts_us = vec![START_US, START_US + 1_200];
        s.requests = requests
            .into_iter()
            .map(|(n, r)| (n.to_string(), r))
            .collect::<BTreeMap<_, _>>();
        let total = s.stats(None).unwrap_or_default();
        let per = total.count() / 10;
        s.intervals = (0..10)
            .map(|index| {
                let mut h = new_latency();
                for i in 0..per {
                    record(&mut h, 1_000 + index * 1_000 + i);
                }
                Interval {
                    index,
                    requests: per,
                    errors: total.error_count() / 10,
                    latency: Packed::pack(&h),
                }
            })
            .collect();
        Report::new(s, thresholds, None)
    }

    pub fn outcome(source: &str, observed: &str, passed: bool) -> Outcome {
        Outcome {
            source: source.into(),
            observed: None,
            observed_text: observed.into(),
            passed,
            abort_on_fail: false,
            default: false,
        }
    }

    /// A finished run whose status is what the operator writes for `report`.
    pub fn run(name: &str, report: Report) -> Run {
        let mut st = LoadTestStatus::default();
        crate::status::apply_results(&mut st, &report.snapshot);
        st.phase = if report.passed {
            Phase::Succeeded
        } else {
            Phase::Failed
        };
        st.verdict = Some(if report.passed { "Passed" } else { "Failed" }.into());
        st.thresholds = report.thresholds.clone();
        st.report = Some(format!("{name}-report"));
        st.started_at = Some("2023-11-14T22:13:20Z".into());
        st.finished_at = Some("2023-11-14T22:13:31.123456789Z".into());
        st.message = Some(if report.passed {
            "all thresholds passed".into()
        } else {
            "thresholds failed".into()
        });
        Run {
            namespace: "team-a".into(),
            name: name.into(),
            runners: 2,
            status: Some(st),
            report: ReportState::Loaded(Box::new(report)),
        }
    }

    /// A typical run: two requests, one with errors.
    pub fn typical(name: &str) -> Run {
        run(
            name,
            report(
                vec![
                    ("checkout", stats(2_000, 5_000, 80_000, 20)),
                    ("home", stats(8_000, 1_000, 20_000, 0)),
                ],
                vec![
                    outcome("p(95) < 100ms", "76.2ms", true),
                    outcome("error_rate < 0.1%", "0.20%", false),
                ],
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_take_the_default_namespace_or_their_own() {
        assert_eq!(
            parse_ref("a", "ns", "A").unwrap(),
            ("ns".to_string(), "a".to_string())
        );
        assert_eq!(
            parse_ref("other/b", "ns", "B").unwrap(),
            ("other".to_string(), "b".to_string())
        );
        for bad in ["", "ns/", "/b", "a/b/c"] {
            let e = parse_ref(bad, "ns", "B").unwrap_err().to_string();
            assert!(e.starts_with("B: "), "{e}");
        }
    }

    #[test]
    fn reports_of_another_format_version_are_refused_clearly() {
        let r = testdata::typical("a").loaded().unwrap().clone();
        let mut v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(parse_report(&v.to_string()).unwrap(), r);
        v["version"] = (FORMAT_VERSION + 1).into();
        let e = parse_report(&v.to_string()).unwrap_err();
        assert!(e.contains("format version"), "{e}");
        let e = parse_report("{}").unwrap_err();
        assert!(e.contains("not a report"), "{e}");
    }

    #[test]
    fn notes_say_what_is_missing() {
        let mut run = testdata::typical("a");
        assert!(run.notes().is_empty(), "{:?}", run.notes());
        run.report = ReportState::Missing {
            config_map: "a-report".into(),
        };
        assert!(run.notes()[0].contains("a-report is missing"));
        if let Some(st) = run.status.as_mut() {
            st.phase = Phase::Running;
        }
        run.report = ReportState::NotYet;
        assert!(run.notes()[0].contains("not finished yet (phase Running)"));
        run.status = None;
        assert!(run.notes()[0].contains("no status yet"));
        let mut slim = testdata::typical("b");
        if let ReportState::Loaded(r) = &mut slim.report {
            r.snapshot.intervals.clear();
        }
        assert!(slim.notes()[0].contains("no per-interval series"));
        let mut merged = testdata::typical("c");
        if let ReportState::Loaded(r) = &mut merged.report {
            r.recorded_interval_us = Some(1_000_000);
            r.snapshot.interval_us = 8_000_000;
        }
        assert_eq!(
            merged.notes(),
            [
                "the series over time was recorded in 1.0s intervals and merged into 8.0s ones to fit the ConfigMap"
            ]
        );
    }

    #[test]
    fn figures_for_people() {
        assert_eq!(ms(1234.4), "1234");
        assert_eq!(ms(12.34), "12.3");
        assert_eq!(ms(1.234), "1.23");
        assert_eq!(duration(12.34), "12.3s");
        assert_eq!(duration(65.0), "1m 05s");
        assert_eq!(duration(3725.0), "1h 02m 05s");
        assert_eq!(timestamp(testdata::START_US), "2023-11-14T22:13:20Z");
        assert_eq!(
            instant("2026-11-22T23:50:58.898149689Z"),
            "2026-11-22T23:50:58Z"
        );
        assert_eq!(instant("yesterday"), "yesterday");
    }
}
