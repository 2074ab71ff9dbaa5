//! A scenario's entries: its weighted mix of requests and journeys (unique
//! metric names across the plan's scenarios, fractional weights as integer
//! units) and a virtual user's onStart and onStop journeys. Each request is
//! compiled by `steps`, a journey's pauses and repeat blocks by `journey`.

use std::{collections::HashSet, time::Duration};

use hyper::header::HeaderName;

use super::{
    Entry, StepKind, TargetInfo,
    journey::compile_journey,
    steps::{StepCx, check_name},
};
use crate::{
    error::{Error, Errors, Result},
    limits,
    plan::{HttpView, JourneySpec, RequestSpec, StepSpec},
    template::{Scope, Template},
};

/// Where a plan's entries are compiled into: the metric name of every step
/// (its index is the step's `metric`), the journeys' names, and every name
/// taken so far, so that names stay unique across the plan's scenarios.
#[derive(Default)]
pub(super) struct Names {
    pub names: Vec<String>,
    /// The journeys' names (entries with steps, onStart, onStop), by
    /// `Entry::journey`.
    pub journeys: Vec<String>,
    seen: HashSet<String>,
}

/// What every step of a scenario is compiled with.
pub(super) struct StepCtx<'a> {
    pub target: &'a TargetInfo,
    pub common_headers: &'a [(HeaderName, Template)],
    pub default_timeout: Duration,
    /// The plan's scope (records, environment, runner) with the scenario's
    /// user variables and no journey variables yet: presets see no
    /// variables, and each step sees those of the steps before it.
    pub scope: Scope<'a>,
}

/// A scenario's weighted mix: one entry per request, and cumulative
/// weights for picking one with one random draw. `field` is the mix's
/// field (`requests`, `scenarios.S.requests`); `qualifier` prefixes the
/// metric and journey names (`""` or `"S/"`).
pub(super) fn compile_mix(
    requests: &[RequestSpec],
    field: &str,
    qualifier: &str,
    ctx: &StepCtx<'_>,
    acc: &mut Names,
    errs: &mut Errors,
) -> Option<(Vec<Entry>, Vec<u64>)> {
    if requests.is_empty() {
        errs.push(Error::invalid(field, "is empty: list at least one request"));
        return None;
    }
    let mut entries = Vec::new();
    let mut cumulative_weights = Vec::new();
    let mut total_weight = 0u64;
    let mut weights_ok = true;
    // Each request on its own: one request's mistake does not hide the next's.
    for (i, r) in requests.iter().enumerate() {
        let rf = format!("{field}[{i}]");
        let entry = errs.take(compile_request(r, &rf, qualifier, ctx, acc));
        let weight = errs.take(weight_units(r.weight, &format!("{rf}.weight")));
        weights_ok &= weight.is_some();
        total_weight += weight.unwrap_or(0);
        if let Some(entry) = entry {
            cumulative_weights.push(total_weight);
            entries.push(entry);
        }
    }
    if weights_ok && total_weight == 0 {
        errs.push(Error::invalid(
            field,
            "every weight is 0: at least one request needs a positive weight",
        ));
    }
    (entries.len() == requests.len() && weights_ok).then_some((entries, cumulative_weights))
}

/// One request of a mix (a single request or a journey), without its weight.
fn compile_request(
    r: &RequestSpec,
    rf: &str,
    qualifier: &str,
    ctx: &StepCtx<'_>,
    acc: &mut Names,
) -> Result<Entry> {
    check_name(&r.name, &format!("{rf}.name"))?;
    let body = if r.steps.is_empty() {
        Body::Request(r.http())
    } else {
        let h = r.http();
        if h.method.is_some()
            || h.path.is_some()
            || h.body.is_some()
            || !h.form.is_empty()
            || h.follow_redirects.is_some()
            || h.max_body.is_some()
            || !h.capture.is_empty()
        {
            return Err(Error::invalid(
                rf,
                "has both `steps` and request fields (method, path, body, form, followRedirects, maxBody, capture): put them in the steps",
            ));
        }
        Body::Steps(&r.steps)
    };
    let name = format!("{qualifier}{}", r.name);
    let journey = (!r.steps.is_empty()).then_some(name.as_str());
    let mut entry = compile_entry(rf, &name, journey, &r.vars, body, ctx, acc)?;
    if let Some(w) = r.think_time {
        limits::at_most(w.max(), limits::MAX_WAIT)
            .map_err(|m| Error::invalid(format!("{rf}.thinkTime"), m))?;
    }
    entry.think_time = r.think_time;
    Ok(entry)
}

/// A virtual user's `onStart` or `onStop` as a journey named `name`
/// (`onStart`, `S/onStart`): its steps' metrics are `name/STEP`.
pub(super) fn compile_user_journey(
    j: &JourneySpec,
    field: &str,
    name: &str,
    ctx: &StepCtx<'_>,
    acc: &mut Names,
) -> Result<Entry> {
    if j.steps.is_empty() {
        return Err(Error::invalid(
            format!("{field}.steps"),
            "is empty: list the requests the user makes",
        ));
    }
    compile_entry(
        field,
        name,
        Some(name),
        &j.vars,
        Body::Steps(&j.steps),
        ctx,
        acc,
    )
}

/// What an entry sends: one request, or a journey's steps.
enum Body<'a> {
    Request(HttpView<'a>),
    Steps(&'a [StepSpec]),
}

/// One entry: a single request named `name` (`journey` None), or the
/// journey `journey` whose steps are named `JOURNEY/STEP`.
fn compile_entry(
    rf: &str,
    name: &str,
    journey: Option<&str>,
    presets_in: &std::collections::BTreeMap<String, String>,
    body: Body<'_>,
    ctx: &StepCtx<'_>,
    acc: &mut Names,
) -> Result<Entry> {
    let scope = &ctx.scope;
    let name_field = if journey.is_some() && !rf.ends_with(']') {
        rf.to_string()
    } else {
        format!("{rf}.name")
    };
    if !acc.seen.insert(name.to_string()) {
        return Err(Error::invalid(
            name_field,
            format!("{name:?} is used twice; names must be unique"),
        ));
    }
    let mut vars: Vec<String> = Vec::new();
    let mut presets = Vec::new();
    for (vname, src) in presets_in {
        let vf = format!("{rf}.vars.{vname}");
        check_name(vname, &vf)?;
        // Presets see records and generators, not each other: they are
        // rendered together, before any step.
        let t = Template::compile(src, scope).map_err(|m| Error::invalid(&vf, m))?;
        presets.push((vars.len(), t));
        vars.push(vname.clone());
    }
    let mut cx = StepCx {
        journey,
        names: &mut acc.names,
        seen: &mut acc.seen,
        vars: &mut vars,
        target: ctx.target,
        common_headers: ctx.common_headers,
        default_timeout: ctx.default_timeout,
        scope,
    };
    let steps = match body {
        Body::Request(http) => vec![StepKind::Request(cx.request(rf, name, &http)?)],
        Body::Steps(steps) => compile_journey(steps, rf, &mut cx)?,
    };
    let uses_record = presets.iter().any(|(_, t)| t.uses_record())
        || StepKind::requests(&steps).iter().any(|s| {
            s.path.uses_record()
                || s.body.as_ref().is_some_and(Template::uses_record)
                || s.headers.iter().any(|(_, t)| t.uses_record())
        });
    let journey = journey.map(|j| {
        acc.journeys.push(j.to_string());
        acc.journeys.len() - 1
    });
    Ok(Entry {
        steps,
        journey,
        uses_record,
        var_names: vars,
        presets,
        think_time: None,
    })
}

/// Weights in the mix are kept as integers of `WEIGHT_UNIT` per 1, so that
/// fractional weights (0.5, 0.05) pick with one integer draw.
pub(super) const WEIGHT_UNIT: f64 = 1_000_000.0;

/// The largest weight: keeps the sum of a mix's weights far below u64::MAX.
const MAX_WEIGHT: f64 = 1_000_000.0;

/// A weight (default 1) in `WEIGHT_UNIT`s, checked: finite, not negative, at
/// most `MAX_WEIGHT`, and either 0 or at least one unit.
pub(super) fn weight_units(w: Option<f64>, field: &str) -> Result<u64> {
    let w = w.unwrap_or(1.0);
    if !w.is_finite() || !(0.0..=MAX_WEIGHT).contains(&w) {
        return Err(Error::invalid(
            field,
            format!("{w} is not a weight between 0 and {MAX_WEIGHT}"),
        ));
    }
    let units = (w * WEIGHT_UNIT).round() as u64;
    if units == 0 && w > 0.0 {
        return Err(Error::invalid(
            field,
            format!("{w} is below the smallest weight, {}", 1.0 / WEIGHT_UNIT),
        ));
    }
    Ok(units)
}

/// The variables a journey makes (its `vars`, then every capture of its
/// steps, those in repeat blocks too), read from the spec alone.
pub(super) fn journey_var_names(j: &JourneySpec) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if k == "capture"
                        && let serde_json::Value::Object(c) = v
                    {
                        out.extend(
                            c.keys()
                                .filter(|k| !out.contains(k))
                                .cloned()
                                .collect::<Vec<_>>(),
                        );
                    } else {
                        walk(v, out);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out: Vec<String> = j.vars.keys().cloned().collect();
    walk(&serde_json::json!(j.steps), &mut out);
    out
}
