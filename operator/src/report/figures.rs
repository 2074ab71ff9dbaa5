//! The headline figures of a run, total, per request, per scenario and per
//! journey, from its report
//! when there is one and from its status otherwise: what `compare` sets side
//! by side and what the HTML page shows when the report is missing.

use std::collections::BTreeMap;

use barrage_runner::report::{JourneySummary, RequestSummary};

use super::Run;
use crate::crd::{JourneyStatus, RequestStatus};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    pub requests: u64,
    pub errors: u64,
    /// A fraction (0.002 = 0.2%).
    pub error_rate: f64,
    pub rps: f64,
    /// Milliseconds; `None` without samples.
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// A journey's whole passes; milliseconds, `None` without passes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JourneyFigures {
    pub passes: u64,
    pub failed: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFigures {
    pub total: Figures,
    pub by_request: BTreeMap<String, Figures>,
    pub by_scenario: BTreeMap<String, Figures>,
    pub by_journey: BTreeMap<String, JourneyFigures>,
    /// From the full report (all request names, exact); else from the status
    /// (rounded, only the names it lists: see `status::listed`).
    pub from_report: bool,
}

fn rate(errors: u64, requests: u64) -> f64 {
    if requests > 0 {
        errors as f64 / requests as f64
    } else {
        0.0
    }
}

impl From<&RequestSummary> for Figures {
    fn from(r: &RequestSummary) -> Figures {
        let l = &r.latency_ms;
        let some = |v: f64| (r.requests > 0).then_some(v);
        Figures {
            requests: r.requests,
            errors: r.errors,
            error_rate: r.error_rate,
            rps: r.rps,
            p50: some(l.p50),
            p95: some(l.p95),
            p99: some(l.p99),
            max: some(l.max),
        }
    }
}

impl From<&RequestStatus> for Figures {
    fn from(r: &RequestStatus) -> Figures {
        let some = |v: f64| (r.requests > 0).then_some(v);
        Figures {
            requests: r.requests,
            errors: r.errors,
            error_rate: rate(r.errors, r.requests),
            rps: r.rps,
            p50: some(r.p50_ms),
            p95: some(r.p95_ms),
            p99: some(r.p99_ms),
            max: some(r.max_ms),
        }
    }
}

impl From<&JourneySummary> for JourneyFigures {
    fn from(j: &JourneySummary) -> JourneyFigures {
        let l = &j.duration_ms;
        let some = |v: f64| (j.passes > 0).then_some(v);
        JourneyFigures {
            passes: j.passes,
            failed: j.failed,
            p50: some(l.p50),
            p95: some(l.p95),
            p99: some(l.p99),
            max: some(l.max),
        }
    }
}

impl From<&JourneyStatus> for JourneyFigures {
    fn from(j: &JourneyStatus) -> JourneyFigures {
        let some = |v: f64| (j.passes > 0).then_some(v);
        JourneyFigures {
            passes: j.passes,
            failed: j.failed,
            p50: some(j.p50_ms),
            p95: some(j.p95_ms),
            p99: some(j.p99_ms),
            max: some(j.max_ms),
        }
    }
}

fn each<'a, A: 'a, B: From<&'a A>>(m: &'a BTreeMap<String, A>) -> BTreeMap<String, B> {
    m.iter().map(|(n, x)| (n.clone(), x.into())).collect()
}

/// `None` when there is nothing to show: no report and no status.
pub fn of(run: &Run) -> Option<RunFigures> {
    if let Some(r) = run.loaded() {
        let s = &r.summary;
        return Some(RunFigures {
            total: (&s.total).into(),
            by_request: each(&s.requests),
            by_scenario: each(&s.scenarios),
            by_journey: each(&s.journeys),
            from_report: true,
        });
    }
    let st = run.status.as_ref()?;
    let l = st.latency_ms.as_ref();
    Some(RunFigures {
        total: Figures {
            requests: st.requests,
            errors: st.errors,
            error_rate: rate(st.errors, st.requests),
            rps: st.rps,
            p50: l.map(|l| l.p50),
            p95: l.map(|l| l.p95),
            p99: l.map(|l| l.p99),
            max: l.map(|l| l.max),
        },
        by_request: each(&st.by_request),
        by_scenario: each(&st.by_scenario),
        by_journey: each(&st.by_journey),
        from_report: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ReportState, testdata};

    #[test]
    fn status_figures_agree_with_the_report_s() {
        let run = testdata::typical("a");
        let full = of(&run).unwrap();
        let mut bare = run.clone();
        bare.report = ReportState::Missing {
            config_map: "x".into(),
        };
        let brief = of(&bare).unwrap();
        assert!(full.from_report && !brief.from_report);
        assert_eq!(full.total.requests, 10_000);
        assert_eq!(brief.total.requests, full.total.requests);
        assert_eq!(brief.total.errors, 20);
        assert!((brief.total.error_rate - 0.002).abs() < 1e-12);
        assert_eq!(
            brief.by_request.keys().collect::<Vec<_>>(),
            full.by_request.keys().collect::<Vec<_>>()
        );
        let (a, b) = (&full.by_request["checkout"], &brief.by_request["checkout"]);
        assert!((a.p95.unwrap() - b.p95.unwrap()).abs() < 0.001);
        bare.status = None;
        assert_eq!(of(&bare), None);
    }
}
