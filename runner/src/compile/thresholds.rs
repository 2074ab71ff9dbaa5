//! The plan's thresholds, parsed against its length and report interval,
//! and each `for ...` checked to name a request, a named scenario or a
//! journey the plan has.

use crate::{
    error::{Error, Errors},
    plan::Plan,
    thresholds::{Limits, Scope, Threshold, plan_sources},
};

/// What a threshold's `for ...` may name.
pub struct Subjects<'a> {
    pub requests: &'a [String],
    pub scenarios: &'a [String],
    pub journeys: &'a [String],
}

impl Subjects<'_> {
    /// Why `scope` names nothing of the plan, if it does not.
    fn unknown(&self, scope: &Scope) -> Option<String> {
        let (what, known) = match scope {
            Scope::Request(_) => ("request", self.requests),
            Scope::Scenario(_) => ("scenario", self.scenarios),
            Scope::Journey(_) => ("journey", self.journeys),
        };
        let name = scope.name();
        if known.iter().any(|k| k == name) {
            return None;
        }
        Some(if known.is_empty() {
            format!("no {what} is named {name:?}: the plan has no {what}s")
        } else {
            format!("no {what} is named {name:?} (names: {})", known.join(", "))
        })
    }
}

/// Each threshold, checked on its own; a failed one is left out with its
/// error in `errs`. `subjects` None: the plan's names are not all known (a
/// scenario failed), so a `for NAME` is not checked against them.
pub fn compile_thresholds(
    plan: &Plan,
    limits: &Limits,
    subjects: Option<&Subjects<'_>>,
    f: &dyn Fn(&str) -> String,
    errs: &mut Errors,
) -> Vec<Threshold> {
    let mut thresholds = Vec::new();
    let sources = plan_sources(plan.thresholds.as_deref());
    for (i, (t, is_default)) in sources.into_iter().enumerate() {
        let tf = f(&format!("thresholds[{i}]"));
        let mut th = match Threshold::parse_for_plan(t, limits) {
            Ok(th) => th,
            Err(e) => {
                errs.push(Error::invalid(&tf, format!("{e} in {t:?}")));
                continue;
            }
        };
        th.is_default = is_default;
        if let Some(why) = th
            .scope
            .as_ref()
            .and_then(|s| subjects.and_then(|subjects| subjects.unknown(s)))
        {
            errs.push(Error::invalid(&tf, why));
            continue;
        }
        thresholds.push(th);
    }
    thresholds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scope_is_checked_against_its_own_names() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (requests, scenarios, journeys) = (
            names(&["browse/home", "buy/pay"]),
            names(&["browse", "buy"]),
            names(&["buy/checkout"]),
        );
        let s = Subjects {
            requests: &requests,
            scenarios: &scenarios,
            journeys: &journeys,
        };
        assert_eq!(s.unknown(&Scope::Scenario("browse".into())), None);
        assert_eq!(s.unknown(&Scope::Journey("buy/checkout".into())), None);
        assert_eq!(s.unknown(&Scope::Request("buy/pay".into())), None);
        assert_eq!(
            s.unknown(&Scope::Scenario("nope".into())).unwrap(),
            "no scenario is named \"nope\" (names: browse, buy)"
        );
        assert!(s.unknown(&Scope::Request("browse".into())).is_some());
        assert!(s.unknown(&Scope::Journey("buy".into())).is_some());
    }
}
