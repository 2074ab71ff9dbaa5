//! `kubectl barrage`: a LoadTest's results for people. `report` prints the
//! summary of one run (or writes it as a self-contained HTML page with
//! plots), `compare` sets two runs side by side.
//!
//! `fetch` is the only part that talks to Kubernetes; it yields a [`Run`],
//! and everything else is a pure function of it: `figures` (the headline
//! figures) and `series` (the data behind the plots) read it, `text` prints
//! it, `html` renders the page (its shell, tables and charts in `html/`),
//! `svg` draws the charts (scales, line and bar charts in `svg/`), `compare`
//! diffs two runs and renders the result (`compare/`). Each keeps its tests
//! in a sibling `tests.rs`; `testdata` builds the runs they render.

pub mod compare;
pub mod fetch;
pub mod figures;
pub mod html;
pub mod series;
pub mod svg;
pub mod text;
pub mod watch;

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
pub(crate) mod testdata;
#[cfg(test)]
mod tests;
