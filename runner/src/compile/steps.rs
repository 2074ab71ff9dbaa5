//! One request step: its metric name (unique within its journey), the
//! journey's variables and captures, method, path and query (literal text
//! percent-encoded, templates kept), headers, body or form, expected
//! statuses, timeouts and body limits. Body checks are `checks`'; a
//! journey's pauses and repeat blocks `journey`'s; entries of a mix and a
//! user's journeys `entries`'.

use std::{collections::HashSet, time::Duration};

use hyper::{Method, header::HeaderName};
use percent_encoding::utf8_percent_encode;

use super::{CaptureFrom, Step, TargetInfo, checks::compile_checks, compile_header};
use crate::{
    NOT_UNRESERVED,
    error::{Error, Result},
    limits,
    plan::HttpView,
    template::{Scope, Template},
};

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
