//! A journey's steps by shape: a request (a name and HTTP fields), a pause
//! (`sleep` alone) or a repeat block (`repeat`, `interval`, `steps` of
//! requests and pauses). A field that does not belong to the shape is an
//! error naming it, so a pause with a path is not silently a pause.
//!
//! Variables flow through a repeat block as through any steps: a step sees
//! what the steps before it captured, so in a later round it sees the
//! previous round's captures (until its own round captures them again), and
//! the steps after the block see the last round's.

use super::{Repeat, StepKind, steps::StepCx, steps::check_name};
use crate::{
    error::{Error, Result},
    limits,
    plan::{HttpView, RepeatedStep, StepSpec},
    wait::Wait,
};

/// A journey's `steps` (field `{rf}.steps`), compiled in order.
pub(super) fn compile_journey(
    steps: &[StepSpec],
    rf: &str,
    cx: &mut StepCx<'_, '_>,
) -> Result<Vec<StepKind>> {
    let mut out = Vec::new();
    for (j, s) in steps.iter().enumerate() {
        let sf = format!("{rf}.steps[{j}]");
        let http = s.http();
        let step = if let Some(w) = s.sleep {
            for (set, field) in [
                (s.repeat.is_some(), "repeat"),
                (s.interval.is_some(), "interval"),
                (!s.steps.is_empty(), "steps"),
            ] {
                if set {
                    return Err(Error::invalid(
                        format!("{sf}.{field}"),
                        "is not for a pause: a `sleep` step has nothing else",
                    ));
                }
            }
            pause(&sf, &s.name, &http, w)?
        } else if let Some(count) = s.repeat {
            if let Some(field) = http_field(&http) {
                return Err(Error::invalid(
                    format!("{sf}.{field}"),
                    "is not for a repeat block: put the request in its `steps`",
                ));
            }
            if !s.name.is_empty() {
                check_name(&s.name, &format!("{sf}.name"))?;
            }
            if s.steps.is_empty() {
                return Err(Error::invalid(
                    format!("{sf}.steps"),
                    "is empty: list the requests (and pauses) to repeat",
                ));
            }
            // The requests one pass may send, and the memory and time a
            // pass holds a user for, are bounded by the plan.
            let per_pass = u64::from(count.max) * s.steps.len() as u64;
            if per_pass > limits::MAX_REPEAT_STEPS {
                return Err(Error::invalid(
                    format!("{sf}.repeat"),
                    format!(
                        "{count} rounds of {} steps is more than the limit of {} steps per pass",
                        s.steps.len(),
                        limits::MAX_REPEAT_STEPS
                    ),
                ));
            }
            let interval = s.interval.unwrap_or(Wait::ZERO);
            limits::at_most(interval.max(), limits::MAX_WAIT)
                .map_err(|m| Error::invalid(format!("{sf}.interval"), m))?;
            let mut inner = Vec::new();
            for (k, r) in s.steps.iter().enumerate() {
                inner.push(repeated(r, &format!("{sf}.steps[{k}]"), cx)?);
            }
            StepKind::Repeat(Repeat {
                min: count.min,
                max: count.max,
                interval,
                steps: inner,
            })
        } else {
            for (set, field) in [
                (s.interval.is_some(), "interval"),
                (!s.steps.is_empty(), "steps"),
            ] {
                if set {
                    return Err(Error::invalid(
                        format!("{sf}.{field}"),
                        "is only for a repeat block: add `repeat` (a count such as 10 or 10..20)",
                    ));
                }
            }
            StepKind::Request(cx.request(&sf, &s.name, &http)?)
        };
        out.push(step);
    }
    if StepKind::requests(&out).is_empty() {
        return Err(Error::invalid(
            format!("{rf}.steps"),
            "has no request: a journey needs at least one step with a path",
        ));
    }
    Ok(out)
}

/// A step inside a repeat block: a request or a pause.
fn repeated(r: &RepeatedStep, sf: &str, cx: &mut StepCx<'_, '_>) -> Result<StepKind> {
    let http = r.http();
    match r.sleep {
        Some(w) => pause(sf, &r.name, &http, w),
        None => Ok(StepKind::Request(cx.request(sf, &r.name, &http)?)),
    }
}

/// A pause step: `sleep` and nothing else.
fn pause(sf: &str, name: &str, http: &HttpView<'_>, w: Wait) -> Result<StepKind> {
    if !name.is_empty() {
        return Err(Error::invalid(
            format!("{sf}.name"),
            "is not for a pause: a `sleep` step has no name (and no metric)",
        ));
    }
    if let Some(field) = http_field(http) {
        return Err(Error::invalid(
            format!("{sf}.{field}"),
            "is not for a pause: a `sleep` step has nothing else",
        ));
    }
    limits::at_most(w.max(), limits::MAX_WAIT)
        .map_err(|m| Error::invalid(format!("{sf}.sleep"), m))?;
    Ok(StepKind::Sleep(w))
}

/// The first HTTP field that is set, by its name in the plan.
fn http_field(h: &HttpView<'_>) -> Option<&'static str> {
    [
        (h.method.is_some(), "method"),
        (h.path.is_some(), "path"),
        (!h.query.is_empty(), "query"),
        (!h.headers.is_empty(), "headers"),
        (h.body.is_some(), "body"),
        (!h.form.is_empty(), "form"),
        (h.expect.is_some(), "expect"),
        (h.timeout.is_some(), "timeout"),
        (h.follow_redirects.is_some(), "followRedirects"),
        (h.max_body.is_some(), "maxBody"),
        (!h.capture.is_empty(), "capture"),
    ]
    .into_iter()
    .find_map(|(set, name)| set.then_some(name))
}

#[cfg(test)]
mod tests;
