//! Compiling a plan while going on past its failed parts, so that every
//! error is found in one pass (what `barrage-runner validate` and the
//! operator's admission answer list); [`super::compile`] and its variants
//! report the first of them.

use std::{path::Path, sync::Arc};

use super::{
    Common, Compiled, DEFAULT_MIXED_REPEAT, DEFAULT_TIMEOUT, DataPlan, LoadPlan, Scenarios, Slot,
    Subjects, check_repeat, compile_header, compile_http, compile_interval, compile_scenarios,
    compile_target, compile_thresholds, compile_tls,
    entries::{self, StepCtx},
    report_interval,
};
use crate::{
    data::Records,
    error::{Error, Errors},
    limits,
    plan::Plan,
    template::Scope,
    thresholds::Limits,
};

/// The plan as it will run over records a setup will make: with data
/// (default policy if the plan names none) of one blank record with `fields`.
pub(super) fn with_blank_record(plan: &Plan, fields: Vec<String>) -> (Plan, Arc<Records>) {
    let mut plan = plan.clone();
    plan.data.get_or_insert_with(Default::default);
    let rows = vec![vec![String::new(); fields.len()]];
    (plan, Arc::new(Records { fields, rows }))
}

/// Every `{{ record.FIELD }}` the plan's templates name, in order, once.
pub fn named_record_fields(plan: &Plan) -> Vec<String> {
    let text = serde_json::to_string(plan).expect("plans serialize");
    let mut out: Vec<String> = Vec::new();
    for (i, _) in text.match_indices("record.") {
        // Only inside a template: the nearest "{{" before is after any "}}".
        let before = &text[..i];
        let open = before.rfind("{{");
        if open.is_none_or(|o| before.rfind("}}").is_some_and(|c| c > o)) {
            continue;
        }
        let name: String = text[i + "record.".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
            .collect();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Compiles the plan, going on past a failed part: the target, the data,
/// each header, each scenario (each request in it), the HTTP settings,
/// the report interval and each threshold are checked independently.
/// Where a later part needs an earlier one that failed, it is checked
/// against a stand-in (a placeholder target; records with every field
/// the plan names), or its dependent check is skipped (a threshold's
/// `for NAME` when a scenario failed), so one mistake is reported once.
pub(super) fn compile_collect(
    plan: &Plan,
    slot: Slot,
    base_dir: &Path,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
    given: Option<Arc<Records>>,
) -> Result<Compiled, Vec<Error>> {
    let f = |name: &str| format!("{prefix}{name}");
    if slot.count > limits::MAX_RUNNERS {
        return Err(vec![Error::invalid(
            "runner",
            format!(
                "runner count {} is more than the limit of {}",
                slot.count,
                limits::MAX_RUNNERS
            ),
        )]);
    }
    if slot.count == 0 || slot.index >= slot.count {
        return Err(vec![Error::invalid(
            "runner",
            format!(
                "runner index {} is not below runner count {}",
                slot.index, slot.count
            ),
        )]);
    }
    let mut errs = Errors::new();
    let mut target = errs
        .take(
            compile_target(&plan.target.base_url)
                .map_err(|m| Error::invalid(f("target.baseUrl"), m)),
        )
        .unwrap_or_else(|| {
            compile_target(PLACEHOLDER_TARGET).expect("the placeholder target is valid")
        });
    errs.take(compile_tls(&plan.target, &mut target, base_dir, prefix));
    let data = match &plan.data {
        None => None,
        Some(d) => {
            let records = match (given, &d.file) {
                (Some(r), _) => Ok(r),
                (None, Some(file)) => {
                    Records::load(&base_dir.join(file), &f("data.file")).map(Arc::new)
                }
                (None, None) => Err(Error::invalid(
                    f("data.file"),
                    "is missing: name a records file (in a cluster, records come from spec.setup or spec.dataFrom)",
                )),
            };
            // Without its records, the plan is still checked as if they
            // had every field it names.
            let records = errs
                .take(records)
                .unwrap_or_else(|| with_blank_record(plan, named_record_fields(plan)).1);
            let repeat = errs
                .take(check_repeat(d, &f("data.repeat")))
                .unwrap_or(DEFAULT_MIXED_REPEAT);
            Some(DataPlan {
                records,
                select: d.select,
                repeat,
                on_exhausted: d.on_exhausted,
            })
        }
    };
    // The plan's scope: records, environment and runner. A journey's steps
    // add the variables captured before them (see `steps`).
    let scope = Scope {
        record_fields: data.as_ref().map(|d| d.records.fields.as_slice()),
        vars: &[],
        user: &[],
        env,
        runner_index: slot.index,
        runner_count: slot.count,
    };

    let mut common_headers = Vec::new();
    for (k, v) in &plan.target.headers {
        let field = f(&format!("target.headers.{k}"));
        if let Some(h) = errs.take(compile_header(k, v, &scope, &field)) {
            common_headers.push(h);
        }
    }
    let default_timeout = plan.target.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
    errs.take(
        limits::duration(default_timeout, limits::MAX_WAIT)
            .map_err(|m| Error::invalid(f("target.timeout"), m)),
    );

    let before = errs.len();
    let Scenarios {
        scenarios,
        names,
        scenario_names,
        metric_scenario,
        journey_scenario,
    } = compile_scenarios(
        plan,
        &Common {
            slot,
            data: data.as_ref(),
            ctx: StepCtx {
                target: &target,
                common_headers: &common_headers,
                default_timeout,
                scope,
            },
            f: &f,
        },
        &mut errs,
    );
    let scenarios_ok = errs.len() == before;
    let entries::Names {
        names, journeys, ..
    } = names;
    let loads: Vec<&LoadPlan> = scenarios.iter().map(|s| &s.load).collect();
    let http = errs.take(compile_http(plan, &loads, slot.count, &f));
    // The longest a timed scenario runs, from the test's start: its
    // intervals must fit. A failed scenario's length is read from the plan.
    let (timed_end, length) = if scenarios_ok {
        let timed_end = scenarios
            .iter()
            .filter_map(|s| Some(s.start_time + s.load.profile.total()?))
            .max();
        let length = scenarios
            .iter()
            .all(|s| s.load.profile.total().is_some())
            .then_some(timed_end)
            .flatten();
        (timed_end, length)
    } else {
        let length = super::planned_length(plan);
        (length, length)
    };
    let interval = errs.take(compile_interval(plan, timed_end, &f));
    // Windowed thresholds are made of whole intervals within the test.
    let limits = Limits {
        interval: interval.unwrap_or_else(|| report_interval(plan)),
        interval_is_default: plan.report_interval.is_none(),
        length,
    };
    // A `for NAME` is checked only against a plan whose names all compiled.
    let subjects = scenarios_ok.then_some(Subjects {
        requests: &names,
        scenarios: &scenario_names,
        journeys: &journeys,
    });
    let thresholds = compile_thresholds(plan, &limits, subjects.as_ref(), &f, &mut errs);
    match (http, interval) {
        (Some(http), Some(interval)) if errs.is_empty() => Ok(Compiled {
            slot,
            target,
            http,
            scenarios,
            scenario_names,
            metric_scenario,
            journey_scenario,
            journeys,
            names,
            data,
            thresholds,
            interval,
        }),
        _ => Err(errs.into_vec()),
    }
}

/// The target the rest of a plan is checked against when its own base URL
/// is invalid.
const PLACEHOLDER_TARGET: &str = "http://placeholder.invalid";

#[cfg(test)]
mod tests {
    use super::super::{compile_all_with_env, compile_with_env};
    use crate::{compile::Slot, plan::Plan};
    use std::path::Path;

    fn all(yaml: &str) -> Vec<String> {
        let plan: Plan = serde_yaml_ng::from_str(yaml).unwrap();
        match compile_all_with_env(&plan, Slot::SOLO, Path::new("."), "spec.", &|_| None) {
            Ok(_) => vec![],
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn fields(yaml: &str) -> Vec<String> {
        all(yaml)
            .into_iter()
            .map(|e| e.split(": ").next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn errors_in_independent_parts_are_all_reported_in_field_order() {
        let yaml = "target: {baseUrl: 'ftp://x', headers: {h: '{{ nope }}'}}\n\
            load: {users: 1, duration: 0s}\n\
            requests: [{name: a, path: /}, {name: b, path: x}, {name: c, path: '/{{ vars.q }}'}]\n\
            thresholds: ['p(95) < 10ms', 'p(95) < ten', 'error_rate < 1%']";
        assert_eq!(
            fields(yaml),
            [
                "spec.target.baseUrl",
                "spec.target.headers.h",
                "spec.load.duration",
                "spec.requests[1].path",
                "spec.requests[2].path",
                "spec.thresholds[1]",
            ]
        );
        // The first-error compile reports the first of them.
        let plan: Plan = serde_yaml_ng::from_str(yaml).unwrap();
        let first = compile_with_env(&plan, Slot::SOLO, Path::new("."), "spec.", &|_| None)
            .unwrap_err()
            .to_string();
        assert_eq!(first, all(yaml)[0]);
    }

    #[test]
    fn a_failed_part_is_not_reported_again_where_it_is_used() {
        // A failed onStart still makes its variables; a failed data file
        // still lets record fields be named; a failed request's name still
        // counts for thresholds (they are not checked against names then).
        let yaml = "target: {baseUrl: 'http://x'}\n\
            load: {users: 1, duration: 1s}\n\
            data: {file: /nonexistent/records.csv}\n\
            onStart: {vars: {id: '{{ nope }}'}, steps: [{name: s, path: /, capture: {tok: {json: /t}}}]}\n\
            requests: [{name: a, path: '/{{ user.id }}/{{ user.tok }}/{{ record.email }}'}, {name: b, path: x}]\n\
            thresholds: ['p(95) < 10ms for a']";
        assert_eq!(
            fields(yaml),
            [
                "spec.data.file",
                "spec.onStart.vars.id",
                "spec.requests[1].path"
            ]
        );
    }

    #[test]
    fn each_scenario_and_each_request_is_checked() {
        let yaml = "target: {baseUrl: 'http://x'}\n\
            scenarios:\n  \
              a: {load: {users: 0, duration: 1s}, requests: [{name: r, path: x}]}\n  \
              b: {load: {users: 1, duration: 1s}, requests: [{name: r, path: y}, {name: s, path: /, weight: -1}]}\n\
            thresholds: ['p(95) < 10ms for scenario nope']";
        assert_eq!(
            fields(yaml),
            [
                "spec.scenarios.a.load.users",
                "spec.scenarios.a.requests[0].path",
                "spec.scenarios.b.requests[0].path",
                "spec.scenarios.b.requests[1].weight",
            ]
        );
    }

    #[test]
    fn a_plan_of_many_bad_requests_gives_a_bounded_answer() {
        let requests: Vec<String> = (0..300)
            .map(|i| format!("{{name: r{i}, path: x}}"))
            .collect();
        let yaml = format!(
            "target: {{baseUrl: 'http://x'}}\nload: {{users: 1, duration: 1s}}\nrequests: [{}]",
            requests.join(", ")
        );
        let errors = all(&yaml);
        assert_eq!(errors.len(), crate::Errors::MAX + 1);
        assert_eq!(errors[crate::Errors::MAX], "(more): and 200 more errors");
    }
}
