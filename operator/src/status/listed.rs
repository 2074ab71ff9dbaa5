//! Which request names, scenarios and journeys the status lists, so that
//! it stays small (the API server refuses large objects, and every status
//! write carries it) whatever the plan has: per table the `MAX_NAMES`
//! busiest (most requests, or passes; ties by name, so the choice does not
//! change from one write to the next with equal counts), then the ones a
//! threshold names, at most `MAX_SUBJECTS` more, so that a threshold's
//! subject is always shown; the rest are counted as omitted.

use std::collections::{BTreeMap, BTreeSet};

use barrage_runner::thresholds::{Scope, Threshold};

/// Names listed in each table of the status (the busiest); the report has all.
pub const MAX_NAMES: usize = 20;
/// Names a threshold names, listed besides the busiest, at most.
pub const MAX_SUBJECTS: usize = 20;

/// What the thresholds name, by kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subjects {
    pub requests: BTreeSet<String>,
    pub scenarios: BTreeSet<String>,
    pub journeys: BTreeSet<String>,
}

impl Subjects {
    pub fn of<'a>(thresholds: impl IntoIterator<Item = &'a Threshold>) -> Subjects {
        let mut s = Subjects::default();
        for t in thresholds {
            match &t.scope {
                Some(Scope::Request(n)) => s.requests.insert(n.clone()),
                Some(Scope::Scenario(n)) => s.scenarios.insert(n.clone()),
                Some(Scope::Journey(n)) => s.journeys.insert(n.clone()),
                None => false,
            };
        }
        s
    }

    /// The subjects of thresholds known only by their source (outcomes).
    pub fn of_sources<'a>(sources: impl IntoIterator<Item = &'a str>) -> Subjects {
        let parsed: Vec<Threshold> = sources
            .into_iter()
            .filter_map(|s| Threshold::parse(s).ok())
            .collect();
        Subjects::of(&parsed)
    }
}

/// The entries of `all` to list, and how many are left out: the
/// `MAX_NAMES` with the largest `size`, then those in `keep` (up to
/// `MAX_SUBJECTS`, in name order).
pub fn listed<'a, T>(
    all: &'a BTreeMap<String, T>,
    size: impl Fn(&T) -> u64,
    keep: &BTreeSet<String>,
) -> (Vec<(&'a String, &'a T)>, u64) {
    let mut by_size: Vec<_> = all.iter().collect();
    by_size.sort_by(|a, b| size(b.1).cmp(&size(a.1)).then(a.0.cmp(b.0)));
    let (busiest, rest) = by_size.split_at(by_size.len().min(MAX_NAMES));
    let mut out = busiest.to_vec();
    let mut kept: Vec<_> = rest
        .iter()
        .filter(|(n, _)| keep.contains(*n))
        .copied()
        .collect();
    kept.sort_by(|a, b| a.0.cmp(b.0));
    out.extend(kept.into_iter().take(MAX_SUBJECTS));
    let omitted = (all.len() - out.len()) as u64;
    (out, omitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_then_the_thresholds_subjects() {
        let all: BTreeMap<String, u64> =
            (0..100u64).map(|i| (format!("n{i:03}"), i % 50)).collect();
        let keep: BTreeSet<String> = ["n000", "n001", "n099", "nope"].map(String::from).into();
        let (out, omitted) = listed(&all, |n| *n, &keep);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        // 49 and 48 twice each, ... ties broken by name; n099 (49) is among them.
        assert_eq!(names[..4], ["n049", "n099", "n048", "n098"]);
        assert_eq!(names.len(), MAX_NAMES + 2);
        assert_eq!(names[MAX_NAMES..], ["n000", "n001"]);
        assert_eq!(omitted, 100 - MAX_NAMES as u64 - 2);
        // Few names: all of them, none omitted.
        let few: BTreeMap<String, u64> = [("a".to_string(), 1)].into();
        assert_eq!(listed(&few, |n| *n, &keep).1, 0);
    }

    /// 400 scenarios and 600 journeys, with 40 thresholds on the quietest
    /// ones: the status lists 20 busiest + 20 subjects of each, keeps every
    /// subject a threshold names (up to `MAX_SUBJECTS`), counts the rest,
    /// and stays under 48 KB.
    #[test]
    fn the_status_stays_bounded_with_hundreds_of_scenarios_and_journeys() {
        use barrage_runner::{
            histogram::record,
            snapshot::{JourneyStats, RequestStats, Snapshot},
            thresholds::{self, Threshold},
        };

        use crate::{crd::LoadTestStatus, status::judged};

        let mut s = Snapshot::empty(1_000_000);
        s.runners = 1;
        s.started_us = Some(0);
        s.until_us = Some(10_000_000);
        let name = |kind: &str, i: usize| format!("{kind}-with-a-rather-long-name-{i:04}");
        for i in 0..400 {
            let mut r = RequestStats::default();
            (0..=i as u64).for_each(|k| record(&mut r.latency, 1_000 + k));
            r.statuses.insert(200, i as u64 + 1);
            s.requests.insert(name("scenario", i) + "/home", r.clone());
            s.scenarios.insert(name("scenario", i), r);
        }
        for i in 0..600 {
            let mut j = JourneyStats::default();
            (0..=i as u64).for_each(|k| j.record(50_000 + k, !k.is_multiple_of(7), 0, 1));
            s.journeys.insert(name("journey", i), j);
        }
        let s = Snapshot::from_json(&s.to_json()).unwrap();
        // Thresholds on the 20 quietest scenarios and journeys.
        let sources: Vec<String> = (0..20)
            .flat_map(|i| {
                [
                    format!("p(95) < 1s for scenario {}", name("scenario", i)),
                    format!("p(99) < 2s for journey {}", name("journey", i)),
                ]
            })
            .collect();
        let plan: Vec<Threshold> = sources
            .iter()
            .map(|t| Threshold::parse(t).unwrap())
            .collect();
        let outcomes = thresholds::evaluate(&plan, &s);
        assert!(outcomes.iter().all(|o| o.passed), "{outcomes:?}");

        let mut st = LoadTestStatus::default();
        judged(&mut st, &s, outcomes, None, None);
        assert_eq!(st.by_scenario.len(), MAX_NAMES + MAX_SUBJECTS);
        assert_eq!(st.by_journey.len(), MAX_NAMES + MAX_SUBJECTS);
        for i in 0..20 {
            assert!(st.by_scenario.contains_key(&name("scenario", i)), "{i}");
            assert!(st.by_journey.contains_key(&name("journey", i)), "{i}");
        }
        // The busiest are there, with their figures.
        let top = &st.by_journey[&name("journey", 599)];
        assert_eq!((top.passes, top.failed), (600, 86));
        assert!(st.by_scenario.contains_key(&name("scenario", 399)));
        let omitted = st.omitted.clone().unwrap();
        assert_eq!(omitted.scenarios, 400 - 40);
        assert_eq!(omitted.journeys, 600 - 40);
        assert_eq!(omitted.requests, 400 - MAX_NAMES as u64);
        assert_eq!(st.thresholds.len(), 40);
        let size = serde_json::to_vec(&st).unwrap().len();
        assert!(size < 48 * 1024, "status is {size} bytes");
        // The same with twice the names: the same size, give or take.
        let mut more = s.clone();
        for i in 0..600 {
            let j = s.journeys[&name("journey", i)].clone();
            more.journeys.insert(name("journey", 1000 + i), j);
        }
        let mut st2 = LoadTestStatus::default();
        judged(&mut st2, &more, st.thresholds.clone(), None, None);
        let size2 = serde_json::to_vec(&st2).unwrap().len();
        assert!(size2 < size + 64, "{size2} vs {size}");
        assert_eq!(st2.omitted.unwrap().journeys, 1200 - 40);
    }

    #[test]
    fn subjects_come_from_the_thresholds_scopes() {
        let s = Subjects::of_sources([
            "p(95) < 1s for scenario browse",
            "p(99) < 2s for journey buy/checkout",
            "error_rate < 1% for home",
            "error_rate < 1%",
        ]);
        assert_eq!(s.scenarios, ["browse".to_string()].into());
        assert_eq!(s.journeys, ["buy/checkout".to_string()].into());
        assert_eq!(s.requests, ["home".to_string()].into());
    }
}
