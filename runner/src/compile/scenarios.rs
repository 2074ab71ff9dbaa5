//! The plan's scenarios: the one unnamed scenario of a plan with top-level
//! `requests`, or its named `scenarios`, each with its own load (or a
//! weighted share of the top-level one), mix, per-user journeys, start
//! time and data selection. The rules a schema cannot express are checked
//! here, each error naming its field.

use std::time::Duration;

use super::{
    DataPlan, LoadPlan, ScenarioPlan, Slot,
    entries::{
        Names, StepCtx, WEIGHT_UNIT, compile_mix, compile_user_journey, journey_var_names,
        weight_units,
    },
    load::{compile_load, peak_users, stand_in_load, weighted_load},
    steps::check_name,
};
use crate::{
    error::{Error, Errors, Result},
    limits,
    plan::{
        DataSpec, Executor, JourneySpec, Load, Plan, RequestSpec, ScenarioSpec, Select, StepSpec,
    },
    template::Scope,
};

/// Every scenario of a plan, compiled, and the names their steps and
/// journeys took (with each one's scenario).
pub(super) struct Scenarios {
    pub scenarios: Vec<ScenarioPlan>,
    pub names: Names,
    pub scenario_names: Vec<String>,
    pub metric_scenario: Vec<Option<usize>>,
    pub journey_scenario: Vec<Option<usize>>,
}

/// What compiling one scenario's steps needs besides the scenario.
pub(super) struct Common<'a> {
    pub slot: Slot,
    pub data: Option<&'a DataPlan>,
    /// Steps are compiled in this scope, with the scenario's user variables.
    pub ctx: StepCtx<'a>,
    pub f: &'a dyn Fn(&str) -> String,
}

/// Every scenario, each checked on its own (and within one, its load,
/// onStart, each request and onStop): errors go to `errs`, a failed
/// scenario is left out, a failed load is replaced by a stand-in so the
/// scenario's requests are still checked.
pub(super) fn compile_scenarios(plan: &Plan, c: &Common<'_>, errs: &mut Errors) -> Scenarios {
    let f = c.f;
    let mut out = Scenarios {
        scenarios: Vec::new(),
        names: Names::default(),
        scenario_names: Vec::new(),
        metric_scenario: Vec::new(),
        journey_scenario: Vec::new(),
    };
    if plan.scenarios.is_empty() {
        let load = errs
            .take(compile_load(&plan.load, c.slot, f))
            .unwrap_or_else(|| stand_in_load(&plan.load, c.slot));
        let s = compile_one(
            None,
            UserSpec {
                requests: &plan.requests,
                on_start: plan.on_start.as_ref(),
                on_stop: plan.on_stop.as_ref(),
            },
            load,
            Duration::ZERO,
            c.data.cloned(),
            c,
            &mut out.names,
            errs,
        );
        out.metric_scenario = vec![None; out.names.names.len()];
        out.journey_scenario = vec![None; out.names.journeys.len()];
        out.scenarios.extend(s);
        return out;
    }
    for (field, set) in [
        ("requests", !plan.requests.is_empty()),
        ("onStart", plan.on_start.is_some()),
        ("onStop", plan.on_stop.is_some()),
    ] {
        if set {
            errs.push(Error::invalid(
                f(field),
                "belongs to the unnamed scenario: with `scenarios`, give each scenario its own",
            ));
        }
    }
    if plan.scenarios.len() > limits::MAX_SCENARIOS {
        errs.push(Error::invalid(
            f("scenarios"),
            format!(
                "{} scenarios are more than the limit of {}",
                plan.scenarios.len(),
                limits::MAX_SCENARIOS
            ),
        ));
        return out;
    }
    // The weighted scenarios share the top-level load. A bad weight counts
    // as 1 for the others' checks (its error is reported).
    let mut weights = Vec::new();
    let mut weights_ok = true;
    for (name, s) in &plan.scenarios {
        if let Some(w) = s.weight {
            let units = errs.take(weight_units(
                Some(w),
                &f(&format!("scenarios.{name}.weight")),
            ));
            weights_ok &= units.is_some();
            weights.push(units.unwrap_or(WEIGHT_UNIT as u64));
        }
    }
    let base = if weights.is_empty() {
        if plan.load != Load::default() {
            errs.push(Error::invalid(
                f("load"),
                "no scenario has a `weight` to share it: give each scenario its own load",
            ));
        }
        None
    } else {
        if weights_ok && weights.iter().all(|&w| w == 0) {
            errs.push(Error::invalid(
                f("scenarios"),
                "every weight is 0: at least one scenario needs a positive weight",
            ));
        }
        Some(shared_load(&plan.load, c.slot, f, errs))
    };
    let mut weighted = 0;
    let mut too_many_users = false;
    for (i, (name, s)) in plan.scenarios.iter().enumerate() {
        let sf = |n: &str| f(&format!("scenarios.{name}.{n}"));
        errs.take(check_name(name, &f(&format!("scenarios.{name}"))));
        let load = match (&base, s.weight) {
            (Some(base), Some(_)) => {
                errs.take(check_weighted_load(s.load.as_ref(), base.executor, &sf));
                let l = weighted_load(
                    base,
                    &plan.load,
                    s.load.as_ref(),
                    &weights,
                    weighted,
                    c.slot,
                );
                let peak = peak_users(&l.profile, l.split.as_ref());
                if l.executor == Executor::Concurrency && peak == 0 && weights[weighted] > 0 {
                    errs.push(Error::invalid(
                        sf("weight"),
                        format!(
                            "gives the scenario none of the {} users at any time: give it a larger weight or the load more users",
                            peak_users(&l.profile, None)
                        ),
                    ));
                }
                weighted += 1;
                l
            }
            _ => match s.load.as_ref() {
                None => {
                    errs.push(Error::invalid(
                        sf("load"),
                        "is missing: give the scenario its own load, or a weight to share the top-level one",
                    ));
                    stand_in_load(&Load::default(), c.slot)
                }
                Some(own) => errs
                    .take(compile_load(own, c.slot, &sf))
                    .unwrap_or_else(|| stand_in_load(own, c.slot)),
            },
        };
        let start_time = s.start_time.map_or(Duration::ZERO, |d| d.0);
        errs.take(
            limits::at_most(
                start_time + load.profile.total().unwrap_or_default(),
                limits::MAX_LENGTH,
            )
            .map_err(|m| {
                Error::invalid(sf("startTime"), format!("with the scenario's length {m}"))
            }),
        );
        // A scenario whose own selection failed is checked with the top-level one.
        let data = errs
            .take(scenario_data(s, c.data, &sf))
            .unwrap_or_else(|| c.data.cloned());
        let first_metric = out.names.names.len();
        let first_journey = out.names.journeys.len();
        let Some(scenario) = compile_one(
            Some(name),
            UserSpec {
                requests: &s.requests,
                on_start: s.on_start.as_ref(),
                on_stop: s.on_stop.as_ref(),
            },
            load,
            start_time,
            data,
            c,
            &mut out.names,
            errs,
        ) else {
            continue;
        };
        out.scenarios.push(scenario);
        out.scenario_names.push(name.clone());
        // All scenarios' users together stay within what one plan may run.
        let users: u64 = out
            .scenarios
            .iter()
            .filter(|s| s.load.executor == Executor::Concurrency)
            .map(|s| peak_users(&s.load.profile, s.load.split.as_ref()))
            .sum();
        if users as f64 > limits::MAX_USERS && !too_many_users {
            too_many_users = true;
            errs.push(Error::invalid(
                f("scenarios"),
                format!(
                    "{users} users together are more than the limit of {}",
                    limits::MAX_USERS
                ),
            ));
        }
        out.metric_scenario
            .extend((first_metric..out.names.names.len()).map(|_| Some(i)));
        out.journey_scenario
            .extend((first_journey..out.names.journeys.len()).map(|_| Some(i)));
    }
    out
}

/// The top-level load the weighted scenarios share, or a stand-in when it
/// is not one (the error in `errs`).
fn shared_load(l: &Load, slot: Slot, f: &dyn Fn(&str) -> String, errs: &mut Errors) -> LoadPlan {
    if l.users.is_none() && l.rate.is_none() && l.stages.is_empty() {
        errs.push(Error::invalid(
            f("load"),
            "has no users, rate or stages for the weighted scenarios to share",
        ));
        return stand_in_load(l, slot);
    }
    let before = errs.len();
    for (field, set) in [
        ("load.thinkTime", l.think_time.is_some()),
        ("load.pacing", l.pacing.is_some()),
    ] {
        if set {
            errs.push(Error::invalid(
                f(field),
                "is each weighted scenario's own: set it in scenarios.NAME.load",
            ));
        }
    }
    if errs.len() > before {
        return stand_in_load(l, slot);
    }
    errs.take(compile_load(l, slot, f))
        .unwrap_or_else(|| stand_in_load(l, slot))
}

/// Every mix of `plan` with its users' journeys: the top-level one (empty
/// in a plan of named scenarios) and each named scenario's.
fn mixes(
    plan: &Plan,
) -> impl Iterator<Item = (&[RequestSpec], Option<&JourneySpec>, Option<&JourneySpec>)> {
    std::iter::once((
        plan.requests.as_slice(),
        plan.on_start.as_ref(),
        plan.on_stop.as_ref(),
    ))
    .chain(plan.scenarios.values().map(|s| {
        (
            s.requests.as_slice(),
            s.on_start.as_ref(),
            s.on_stop.as_ref(),
        )
    }))
}

/// The most request names a runner of `plan` can report: every request,
/// every journey, each of its steps (and those of its repeat blocks), and
/// every scenario's onStart and onStop with their steps. An upper bound,
/// read from the plan alone (the operator sizes what it accepts by it).
pub fn max_names(plan: &Plan) -> usize {
    let steps = |s: &[StepSpec]| s.iter().map(|s| 1 + s.steps.len()).sum::<usize>();
    let journey = |j: Option<&JourneySpec>| j.map_or(0, |j| 1 + steps(&j.steps));
    mixes(plan)
        .map(|(requests, on_start, on_stop)| {
            requests.iter().map(|r| 1 + steps(&r.steps)).sum::<usize>()
                + journey(on_start)
                + journey(on_stop)
        })
        .sum()
}

/// The most journeys a runner of `plan` can report: requests with steps
/// and the onStart / onStop passes, top-level and per scenario.
pub fn max_journeys(plan: &Plan) -> usize {
    mixes(plan)
        .map(|(requests, on_start, on_stop)| {
            requests.iter().filter(|r| !r.steps.is_empty()).count()
                + usize::from(on_start.is_some())
                + usize::from(on_stop.is_some())
        })
        .sum()
}

/// Every scenario's start time and the load it runs (its own, or for a
/// weighted scenario or one without its own the top-level load), read from
/// the plan alone; the one unnamed scenario of a plan without named ones.
fn scenario_loads(plan: &Plan) -> Vec<(Duration, &Load)> {
    if plan.scenarios.is_empty() {
        return vec![(Duration::ZERO, &plan.load)];
    }
    plan.scenarios
        .values()
        .map(|s| {
            let l = match (&s.load, s.weight) {
                (Some(own), None) => own,
                _ => &plan.load,
            };
            (s.start_time.map_or(Duration::ZERO, |d| d.0), l)
        })
        .collect()
}

/// How long `plan`'s load runs from the test's start, read from the plan
/// alone: the end of its latest scenario (start time plus length; a load
/// that ends by its iterations alone runs at most `limits::open_ended` of
/// the report `interval`).
pub fn plan_length(plan: &Plan, interval: Duration) -> Duration {
    let length = |l: &Load| {
        if l.stages.is_empty() {
            l.duration
                .map_or_else(|| limits::open_ended(interval), |d| d.0)
        } else {
            l.stages.iter().map(|s| s.duration.0).sum()
        }
    };
    scenario_loads(plan)
        .into_iter()
        .map(|(start, l)| start + length(l))
        .max()
        .unwrap_or_default()
}

/// How long `plan`'s load is planned to run from the test's start: the
/// latest end among its scenarios (a duration, stages, or an open model's
/// iterations at its rate, the time its arrivals take). `None` when any
/// scenario's length is unknown (a closed model that ends by its
/// iterations alone): such a scenario may run as long as the default
/// interval allows it (`limits::open_ended`), and a finer default chosen
/// by its timed neighbours would cut it short. What the default report interval is
/// chosen by (`report_interval`); read from the raw plan, so it saturates
/// rather than overflows on one not yet checked.
pub fn planned_length(plan: &Plan) -> Option<Duration> {
    let length = |l: &Load| -> Option<Duration> {
        if !l.stages.is_empty() {
            return Some(
                l.stages
                    .iter()
                    .fold(Duration::ZERO, |a, s| a.saturating_add(s.duration.0)),
            );
        }
        if let Some(d) = l.duration {
            return Some(d.0);
        }
        let (n, rate) = (l.iterations?, l.rate?);
        if l.executor != Executor::ArrivalRate || rate <= 0.0 {
            return None;
        }
        Duration::try_from_secs_f64(n as f64 / rate).ok()
    };
    let loads = scenario_loads(plan);
    if loads.is_empty() {
        return None;
    }
    loads
        .into_iter()
        .map(|(start, l)| length(l).map(|d| start.saturating_add(d)))
        .try_fold(Duration::ZERO, |a, end| end.map(|e| a.max(e)))
}

/// A weighted scenario's own `load` may set only its think time and
/// pacing (and the executor, if it is the shared one's).
fn check_weighted_load(
    own: Option<&Load>,
    executor: Executor,
    sf: &dyn Fn(&str) -> String,
) -> Result<()> {
    let Some(l) = own else { return Ok(()) };
    let shared =
        "is the top-level load's for a weighted scenario (it may set only thinkTime and pacing)";
    for (field, set) in [
        ("load.users", l.users.is_some()),
        ("load.rate", l.rate.is_some()),
        ("load.duration", l.duration.is_some()),
        ("load.iterations", l.iterations.is_some()),
        ("load.stages", !l.stages.is_empty()),
        ("load.maxInFlight", l.max_in_flight.is_some()),
        ("load.gracefulStop", l.graceful_stop.is_some()),
        // The default is not told apart from an unset one: only another
        // executor spelt out is refused.
        (
            "load.executor",
            l.executor != executor && l.executor != Executor::default(),
        ),
    ] {
        if set {
            return Err(Error::invalid(sf(field), shared));
        }
    }
    if executor == Executor::ArrivalRate && (l.think_time.is_some() || l.pacing.is_some()) {
        return Err(Error::invalid(
            sf(if l.think_time.is_some() {
                "load.thinkTime"
            } else {
                "load.pacing"
            }),
            "only applies to executor: concurrency",
        ));
    }
    for (field, w) in [("load.thinkTime", l.think_time), ("load.pacing", l.pacing)] {
        if let Some(w) = w {
            limits::at_most(w.max(), limits::MAX_WAIT).map_err(|m| Error::invalid(sf(field), m))?;
        }
    }
    Ok(())
}

/// A scenario's selection from the test's records: its own `data` policy
/// (no `file`: the records are the top-level `data`'s), or the top-level one.
fn scenario_data(
    s: &ScenarioSpec,
    top: Option<&DataPlan>,
    sf: &dyn Fn(&str) -> String,
) -> Result<Option<DataPlan>> {
    let Some(d) = &s.data else {
        return Ok(top.cloned());
    };
    if d.file.is_some() {
        return Err(Error::invalid(
            sf("data.file"),
            "is the top-level data's: a scenario only chooses how it selects from those records",
        ));
    }
    let Some(top) = top else {
        return Err(Error::invalid(
            sf("data"),
            "selects from the test's records, but the plan has no top-level `data`",
        ));
    };
    let repeat = check_repeat(d, &sf("data.repeat"))?;
    Ok(Some(DataPlan {
        records: top.records.clone(),
        select: d.select,
        repeat,
        on_exhausted: d.on_exhausted,
    }))
}

/// `data.repeat`: only for `mixed`, a fraction.
pub(super) fn check_repeat(d: &DataSpec, field: &str) -> Result<f64> {
    if d.repeat.is_some() && d.select != Select::Mixed {
        return Err(Error::invalid(field, "only applies to select: mixed"));
    }
    let repeat = d.repeat.unwrap_or(super::DEFAULT_MIXED_REPEAT);
    if !(0.0..=1.0).contains(&repeat) {
        return Err(Error::invalid(
            field,
            format!("{repeat} is not a fraction between 0 and 1"),
        ));
    }
    Ok(repeat)
}

/// What a scenario's virtual users do.
struct UserSpec<'a> {
    requests: &'a [RequestSpec],
    on_start: Option<&'a JourneySpec>,
    on_stop: Option<&'a JourneySpec>,
}

/// One scenario: `name` None for the unnamed one, whose fields are the
/// plan's top-level ones and whose names are unqualified. Its onStart,
/// requests and onStop are checked independently; None when any failed.
#[allow(clippy::too_many_arguments)]
fn compile_one(
    name: Option<&String>,
    spec: UserSpec<'_>,
    load: LoadPlan,
    start_time: Duration,
    data: Option<DataPlan>,
    c: &Common<'_>,
    acc: &mut Names,
    errs: &mut Errors,
) -> Option<ScenarioPlan> {
    let before = errs.len();
    let (field, qualifier) = match name {
        Some(n) => ((c.f)(&format!("scenarios.{n}.")), format!("{n}/")),
        None => ((c.f)(""), String::new()),
    };
    if load.executor == Executor::ArrivalRate {
        for (k, set) in [
            ("onStart", spec.on_start.is_some()),
            ("onStop", spec.on_stop.is_some()),
        ] {
            if set {
                errs.push(Error::invalid(
                    format!("{field}{k}"),
                    "only applies to executor: concurrency: the arrival-rate executor has no long-lived virtual users, each iteration stands alone",
                ));
            }
        }
    }
    // onStart sees no user variables (it makes them); everything after it
    // sees them as `user.NAME`. A failed onStart makes none.
    let on_start = spec.on_start.and_then(|j| {
        errs.take(compile_user_journey(
            j,
            &format!("{field}onStart"),
            &format!("{qualifier}onStart")[..],
            &c.ctx,
            acc,
        ))
    });
    let user_vars = match (&on_start, spec.on_start) {
        (Some(e), _) => e.var_names.clone(),
        // A failed onStart: the rest is checked with the names it would
        // have made, so its mistake is not reported again at each use.
        (None, Some(j)) => journey_var_names(j),
        (None, None) => Vec::new(),
    };
    let ctx = StepCtx {
        scope: Scope {
            user: &user_vars,
            ..c.ctx.scope
        },
        ..c.ctx
    };
    let mix = compile_mix(
        spec.requests,
        &format!("{field}requests"),
        &qualifier,
        &ctx,
        acc,
        errs,
    );
    let on_stop = spec.on_stop.and_then(|j| {
        errs.take(compile_user_journey(
            j,
            &format!("{field}onStop"),
            &format!("{qualifier}onStop")[..],
            &ctx,
            acc,
        ))
    });
    // A user's onStop would draw a record of its own, not the one its
    // onStart used (a logout as another account), and with `unique` data
    // use one up: what it needs from a record comes through the user.
    if on_stop.as_ref().is_some_and(|e| e.uses_record) {
        errs.push(Error::invalid(
            format!("{field}onStop"),
            "uses record.FIELD: onStop gets no record of its own; keep what it needs in onStart's vars (e.g. `id: \"{{ record.id }}\"`) and use {{ user.id }}",
        ));
    }
    let (entries, cumulative_weights) = mix?;
    if errs.len() > before {
        return None;
    }
    Some(ScenarioPlan {
        name: name.cloned(),
        entries,
        cumulative_weights,
        load,
        start_time,
        on_start,
        on_stop,
        data,
        user_vars,
    })
}

#[cfg(test)]
mod tests;
