//! Requests and journeys as entries of steps: unique metric names (across
//! the plan's scenarios), a journey's
//! variables and captures, method, path and query (literal text
//! percent-encoded, templates kept), headers, body or form, expected
//! statuses, timeouts and body limits. A journey's pauses and repeat blocks
//! are `journey`'s, body checks `checks`'.

use std::{collections::HashSet, time::Duration};

use hyper::{Method, header::HeaderName};
use percent_encoding::utf8_percent_encode;

use super::{
    CaptureFrom, Entry, Step, StepKind, TargetInfo, checks::compile_checks, compile_header,
    journey::compile_journey,
};
use crate::{
    NOT_UNRESERVED,
    error::{Error, Result},
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
) -> Result<(Vec<Entry>, Vec<u64>)> {
    if requests.is_empty() {
        return Err(Error::invalid(field, "is empty: list at least one request"));
    }
    let mut entries = Vec::new();
    let mut cumulative_weights = Vec::new();
    let mut total_weight = 0u64;
    for (i, r) in requests.iter().enumerate() {
        let rf = format!("{field}[{i}]");
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
                    &rf,
                    "has both `steps` and request fields (method, path, body, form, followRedirects, maxBody, capture): put them in the steps",
                ));
            }
            Body::Steps(&r.steps)
        };
        let name = format!("{qualifier}{}", r.name);
        let journey = (!r.steps.is_empty()).then_some(name.as_str());
        let mut entry = compile_entry(&rf, &name, journey, &r.vars, body, ctx, acc)?;
        if let Some(w) = r.think_time {
            limits::at_most(w.max(), limits::MAX_WAIT)
                .map_err(|m| Error::invalid(format!("{rf}.thinkTime"), m))?;
        }
        entry.think_time = r.think_time;
        let weight = weight_units(r.weight, &format!("{rf}.weight"))?;
        total_weight += weight;
        cumulative_weights.push(total_weight);
        entries.push(entry);
    }
    if total_weight == 0 {
        return Err(Error::invalid(
            field,
            "every weight is 0: at least one request needs a positive weight",
        ));
    }
    Ok((entries, cumulative_weights))
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

/// What compiling one request step needs: the metric names so far (and the
/// set that keeps them unique), the journey's variables, and the plan's
/// target, headers, timeout and scope.
pub(super) struct StepCx<'a, 's> {
    /// The journey's name (its steps' metrics are `JOURNEY/STEP`); None for
    /// a single request, whose metric is its own name.
    pub journey: Option<&'a str>,
    pub names: &'a mut Vec<String>,
    pub seen: &'a mut HashSet<String>,
    pub vars: &'a mut Vec<String>,
    pub target: &'a TargetInfo,
    pub common_headers: &'a [(HeaderName, Template)],
    pub default_timeout: Duration,
    pub scope: &'a Scope<'s>,
}

impl StepCx<'_, '_> {
    /// One request (field `sf`) named `name`: its metric is added to `names`.
    pub fn request(&mut self, sf: &str, name: &str, http: &HttpView<'_>) -> Result<Step> {
        let metric_name = match self.journey {
            None => name.to_string(),
            Some(j) => {
                check_name(name, &format!("{sf}.name"))?;
                let m = format!("{j}/{name}");
                if !self.seen.insert(m.clone()) {
                    return Err(Error::invalid(
                        format!("{sf}.name"),
                        format!("{name:?} is used twice in this journey"),
                    ));
                }
                m
            }
        };
        self.names.push(metric_name);
        // A step sees what earlier steps captured, not its own captures.
        let earlier = self.vars.clone();
        compile_step(
            sf,
            self.names.len() - 1,
            http,
            self.target,
            self.common_headers,
            self.default_timeout,
            &Scope {
                vars: &earlier,
                ..*self.scope
            },
            self.vars,
        )
    }
}

pub(super) fn check_name(name: &str, field: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(Error::invalid(
            field,
            format!("{name:?} must be non-empty letters, digits, '.', '_' or '-'"),
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn compile_step(
    sf: &str,
    metric: usize,
    http: &HttpView<'_>,
    target: &TargetInfo,
    common_headers: &[(HeaderName, Template)],
    default_timeout: Duration,
    scope: &Scope<'_>,
    vars: &mut Vec<String>,
) -> Result<Step> {
    let method = match http.method {
        None => Method::GET,
        Some(m) => match m.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            "HEAD" => Method::HEAD,
            "OPTIONS" => Method::OPTIONS,
            _ => {
                return Err(Error::invalid(
                    format!("{sf}.method"),
                    format!("{m:?} is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
                ));
            }
        },
    };
    let path = http
        .path
        .ok_or_else(|| Error::invalid(format!("{sf}.path"), "is missing"))?;
    if !path.starts_with('/') {
        return Err(Error::invalid(
            format!("{sf}.path"),
            format!("{path:?} must start with '/'"),
        ));
    }
    let mut full = format!("{}{path}", target.prefix);
    let mut sep = if path.contains('?') { '&' } else { '?' };
    for (k, v) in http.query {
        full.push(sep);
        sep = '&';
        full.extend(utf8_percent_encode(k, NOT_UNRESERVED));
        full.push('=');
        // Templates inside values are kept as-is; literal text is escaped.
        full.push_str(&encode_query_keep_templates(v));
    }
    let path_t =
        Template::compile(&full, scope).map_err(|e| Error::invalid(format!("{sf}.path"), e))?;
    if let Some(s) = path_t.as_static() {
        s.parse::<hyper::Uri>().map_err(|e| {
            Error::invalid(
                format!("{sf}.path"),
                format!("{s:?} is not a valid path: {e}"),
            )
        })?;
    }
    let mut headers: Vec<(HeaderName, Template)> = common_headers
        .iter()
        .filter(|(n, _)| {
            !http
                .headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case(n.as_str()))
        })
        .cloned()
        .collect();
    for (k, v) in http.headers {
        headers.push(compile_header(k, v, scope, &format!("{sf}.headers.{k}"))?);
    }
    let body = if http.form.is_empty() {
        http.body
            .map(|b| {
                Template::compile(b, scope).map_err(|e| Error::invalid(format!("{sf}.body"), e))
            })
            .transpose()?
    } else {
        if http.body.is_some() {
            return Err(Error::invalid(
                format!("{sf}.form"),
                "give either `form` or `body`, not both",
            ));
        }
        let mut pairs = Vec::new();
        for (k, v) in http.form {
            let t = Template::compile(v, scope)
                .map_err(|e| Error::invalid(format!("{sf}.form.{k}"), e))?;
            pairs.push((k.clone(), t));
        }
        // The step's own content-type stands; the target's is for other bodies.
        if !http
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
        {
            headers.retain(|(n, _)| n != hyper::header::CONTENT_TYPE);
            headers.push((
                hyper::header::CONTENT_TYPE,
                Template::compile(FORM_CONTENT_TYPE, scope).expect("a literal"),
            ));
        }
        Some(Template::form(pairs))
    };
    let expect = http.expect.map(|e| e.status.clone()).unwrap_or_default();
    if let Some(bad) = expect.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(Error::invalid(
            format!("{sf}.expect.status"),
            format!("{bad} is not an HTTP status (100-599)"),
        ));
    }
    let timeout = http.timeout.map_or(default_timeout, |d| d.0);
    limits::duration(timeout, limits::MAX_WAIT)
        .map_err(|m| Error::invalid(format!("{sf}.timeout"), m))?;
    let max_body = match http.max_body.map(|s| s.0) {
        None => crate::engine::DEFAULT_MAX_BODY,
        Some(0) => {
            return Err(Error::invalid(
                format!("{sf}.maxBody"),
                "must be more than 0",
            ));
        }
        Some(n) if n > limits::MAX_BODY => {
            return Err(Error::invalid(
                format!("{sf}.maxBody"),
                format!(
                    "{n} bytes is more than the limit of {} MiB",
                    limits::MAX_BODY >> 20
                ),
            ));
        }
        Some(n) => usize::try_from(n).map_err(|_| {
            Error::invalid(
                format!("{sf}.maxBody"),
                "is larger than this machine can hold",
            )
        })?,
    };
    let mut captures = Vec::new();
    for (name, c) in http.capture {
        let cf = format!("{sf}.capture.{name}");
        let from = match (&c.json, &c.header, &c.regex, &c.location_query) {
            (Some(p), None, None, None) => {
                if !(p.is_empty() || p.starts_with('/')) {
                    return Err(Error::invalid(
                        format!("{cf}.json"),
                        format!(
                            "{p:?} is not a JSON pointer (it starts with '/', e.g. /data/token)"
                        ),
                    ));
                }
                CaptureFrom::Json(p.clone())
            }
            (None, Some(h), None, None) => {
                CaptureFrom::Header(HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                    Error::invalid(
                        format!("{cf}.header"),
                        format!("{h:?} is not a header name"),
                    )
                })?)
            }
            (None, None, Some(re), None) => {
                CaptureFrom::Regex(regex::bytes::Regex::new(re).map_err(|e| {
                    Error::invalid(
                        format!("{cf}.regex"),
                        format!("{re:?} is not a valid regex: {e}"),
                    )
                })?)
            }
            (None, None, None, Some(q)) => {
                if q.is_empty() {
                    return Err(Error::invalid(
                        format!("{cf}.locationQuery"),
                        "is empty: name the query parameter, e.g. code",
                    ));
                }
                CaptureFrom::LocationQuery(q.clone())
            }
            _ => {
                return Err(Error::invalid(
                    cf,
                    "give exactly one of `json`, `header`, `regex` or `locationQuery`",
                ));
            }
        };
        let idx = match vars.iter().position(|v| v == name) {
            Some(i) => i,
            None => {
                vars.push(name.clone());
                vars.len() - 1
            }
        };
        captures.push((idx, from));
    }
    let checks = match http.expect.and_then(|e| e.body.as_ref()) {
        Some(b) => compile_checks(b, &format!("{sf}.expect.body"))?,
        None => Vec::new(),
    };
    // A HEAD response has no body: a check that reads one would fail every
    // time (`maxSize` alone holds trivially, and is allowed).
    if method == Method::HEAD
        && checks
            .iter()
            .any(|c| !matches!(c.test, super::CheckTest::MaxSize(_)))
    {
        return Err(Error::invalid(
            format!("{sf}.expect.body"),
            "reads the body of a HEAD request, which has none: check it on a GET",
        ));
    }
    Ok(Step {
        checks,
        metric,
        method,
        path: path_t,
        headers,
        body,
        expect,
        timeout,
        captures,
        follow_redirects: http.follow_redirects.unwrap_or(false),
        max_body,
    })
}

pub(super) const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

fn encode_query_keep_templates(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        out.extend(utf8_percent_encode(&rest[..open], NOT_UNRESERVED));
        let end = rest[open..].find("}}").map_or(rest.len(), |e| open + e + 2);
        out.push_str(&rest[open..end]);
        rest = &rest[end..];
    }
    out.extend(utf8_percent_encode(rest, NOT_UNRESERVED));
    out
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
