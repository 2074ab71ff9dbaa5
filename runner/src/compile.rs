//! Turns a `Plan` into the ready-to-run form for one runner slot, checking
//! everything the schema cannot: durations, weights, URLs, templates, data and
//! thresholds. Every error names the field. Nothing here touches the network,
//! so a bad plan fails before any load is sent.

use std::{collections::HashSet, path::Path, sync::Arc, time::Duration};

use hyper::{
    Method,
    header::{HeaderName, HeaderValue},
};

use crate::{
    data::Records,
    error::{Error, Result},
    limits,
    plan::{Executor, HttpView, Plan, Select, Stage},
    template::{Scope, Template},
    thresholds::{Limits, Threshold},
};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_GRACEFUL_STOP: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1000;
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_MIXED_REPEAT: f64 = 0.8;

/// Which share of the plan this runner produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub index: u32,
    pub count: u32,
}

impl Slot {
    pub const SOLO: Slot = Slot { index: 0, count: 1 };

    /// This runner's share of an integer total: the first `total % count`
    /// runners get one more, so the shares add up to exactly `total`.
    pub fn share(&self, total: u64) -> u64 {
        let n = self.count as u64;
        total / n + u64::from((self.index as u64) < total % n)
    }
}

#[derive(Debug)]
pub struct Compiled {
    pub slot: Slot,
    pub target: TargetInfo,
    pub scenarios: Vec<Scenario>,
    /// Cumulative weights, for picking a scenario with one random draw.
    pub cumulative_weights: Vec<u64>,
    /// Metric names, one per step (a single request is a one-step scenario).
    pub names: Vec<String>,
    pub load: LoadPlan,
    pub data: Option<DataPlan>,
    pub thresholds: Vec<Threshold>,
    pub interval: Duration,
}

#[derive(Debug)]
pub struct TargetInfo {
    /// host:port to connect to.
    pub authority: String,
    pub host_header: HeaderValue,
    /// Path prefix from the base URL, without a trailing slash.
    pub prefix: String,
}

#[derive(Debug)]
pub struct LoadPlan {
    pub executor: Executor,
    /// The whole plan's level over time (users or requests per second). Each
    /// runner derives its share while running: users from the rounded total
    /// at each instant, arrivals by taking every `count`-th one; so N runners
    /// together produce exactly the plan's load.
    pub profile: Profile,
    /// This runner's share of the plan's iterations.
    pub iterations: Option<u64>,
    pub max_in_flight: u32,
    pub think_time: Duration,
    pub pacing: Duration,
    pub graceful_stop: Duration,
}

/// A level over time: piecewise linear, starting from `start`.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub start: f64,
    /// (duration, target at its end). Empty with `None` length = no time limit.
    pub stages: Vec<(Duration, f64)>,
}

impl Profile {
    pub fn total(&self) -> Option<Duration> {
        if self.stages.is_empty() {
            None
        } else {
            Some(self.stages.iter().map(|s| s.0).sum())
        }
    }

    /// The level at `t` from the start; the last target after the end.
    pub fn at(&self, t: Duration) -> f64 {
        let mut from = self.start;
        let mut elapsed = Duration::ZERO;
        for &(d, to) in &self.stages {
            if t < elapsed + d {
                let f = (t - elapsed).as_secs_f64() / d.as_secs_f64();
                return from + (to - from) * f;
            }
            elapsed += d;
            from = to;
        }
        from
    }
}

#[derive(Debug)]
pub struct DataPlan {
    pub records: Arc<Records>,
    pub select: Select,
    pub repeat: f64,
    pub on_exhausted: crate::plan::OnExhausted,
}

#[derive(Debug)]
pub struct Scenario {
    pub steps: Vec<Step>,
    pub uses_record: bool,
    /// The journey's variables by slot: its `vars` first, then its captures.
    pub var_names: Vec<String>,
    /// `vars` rendered into their slots when an iteration starts.
    pub presets: Vec<(usize, Template)>,
}

#[derive(Debug)]
pub struct Step {
    /// Index into `Compiled::names`.
    pub metric: usize,
    pub method: Method,
    /// Prefix, path and query string, as one template.
    pub path: Template,
    pub headers: Vec<(HeaderName, Template)>,
    pub body: Option<Template>,
    /// Empty = any 2xx or 3xx.
    pub expect: Vec<u16>,
    pub timeout: Duration,
    pub captures: Vec<(usize, CaptureFrom)>,
    /// Follow redirects to the target's host (at most `MAX_REDIRECTS`).
    pub follow_redirects: bool,
    /// The most body bytes kept for a capture (`maxBody`).
    pub max_body: usize,
}

/// Redirects followed at most, for a step with `followRedirects: true`.
pub const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone)]
pub enum CaptureFrom {
    Json(String),
    Header(HeaderName),
    /// Over the body: the first group, else the whole match.
    Regex(regex::bytes::Regex),
    /// A query parameter of the Location header, decoded.
    LocationQuery(String),
}

impl PartialEq for CaptureFrom {
    fn eq(&self, other: &Self) -> bool {
        use CaptureFrom::*;
        match (self, other) {
            (Json(a), Json(b)) | (LocationQuery(a), LocationQuery(b)) => a == b,
            (Header(a), Header(b)) => a == b,
            (Regex(a), Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Step {
    pub fn needs_body(&self) -> bool {
        self.captures
            .iter()
            .any(|(_, c)| matches!(c, CaptureFrom::Json(_) | CaptureFrom::Regex(_)))
    }

    /// Whether judging the response reads its headers.
    pub fn needs_headers(&self) -> bool {
        self.follow_redirects
            || self
                .captures
                .iter()
                .any(|(_, c)| matches!(c, CaptureFrom::Header(_) | CaptureFrom::LocationQuery(_)))
    }
}

/// Compiles `plan` for `slot`. `prefix` is prepended to field names in errors
/// (`spec.` when the plan came from a LoadTest). `base_dir` resolves `data.file`.
pub fn compile(plan: &Plan, slot: Slot, base_dir: &Path, prefix: &str) -> Result<Compiled> {
    compile_with_env(plan, slot, base_dir, prefix, &|k| std::env::var(k).ok())
}

pub fn compile_with_env(
    plan: &Plan,
    slot: Slot,
    base_dir: &Path,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Compiled> {
    compile_inner(plan, slot, base_dir, prefix, env, None)
}

/// `compile`, reusing records another slot's compile already loaded (the
/// `data` of `other`), so N in-process runners hold one copy of the data
/// file, not N.
pub fn compile_sharing(
    plan: &Plan,
    slot: Slot,
    base_dir: &Path,
    prefix: &str,
    other: Option<&Compiled>,
) -> Result<Compiled> {
    let records = other
        .and_then(|c| c.data.as_ref())
        .map(|d| d.records.clone());
    compile_inner(
        plan,
        slot,
        base_dir,
        prefix,
        &|k| std::env::var(k).ok(),
        records,
    )
}

/// Compiles a plan whose records do not exist yet (a setup will make them)
/// as it will run: with data (default policy if the plan names none) of one
/// blank record with these `fields`, so `record.FIELD` templates are checked.
pub fn compile_with_fields(
    plan: &Plan,
    slot: Slot,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
    fields: Vec<String>,
) -> Result<Compiled> {
    let mut plan = plan.clone();
    plan.data.get_or_insert_with(Default::default);
    let rows = vec![vec![String::new(); fields.len()]];
    let records = Records { fields, rows };
    compile_inner(
        &plan,
        slot,
        Path::new(""),
        prefix,
        env,
        Some(Arc::new(records)),
    )
}

fn compile_inner(
    plan: &Plan,
    slot: Slot,
    base_dir: &Path,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
    given: Option<Arc<Records>>,
) -> Result<Compiled> {
    let f = |name: &str| format!("{prefix}{name}");
    if slot.count > limits::MAX_RUNNERS {
        return Err(Error::invalid(
            "runner",
            format!(
                "runner count {} is more than the limit of {}",
                slot.count,
                limits::MAX_RUNNERS
            ),
        ));
    }
    if slot.count == 0 || slot.index >= slot.count {
        return Err(Error::invalid(
            "runner",
            format!(
                "runner index {} is not below runner count {}",
                slot.index, slot.count
            ),
        ));
    }
    let target = compile_target(&plan.target.base_url)
        .map_err(|m| Error::invalid(f("target.baseUrl"), m))?;
    let data = match &plan.data {
        None => None,
        Some(d) => {
            let records = match (given, &d.file) {
                (Some(r), _) => r,
                (None, Some(file)) => {
                    Arc::new(Records::load(&base_dir.join(file), &f("data.file"))?)
                }
                (None, None) => {
                    return Err(Error::invalid(
                        f("data.file"),
                        "is missing: name a records file (in a cluster, records come from spec.setup or spec.dataFrom)",
                    ));
                }
            };
            if d.repeat.is_some() && d.select != Select::Mixed {
                return Err(Error::invalid(
                    f("data.repeat"),
                    "only applies to select: mixed",
                ));
            }
            let repeat = d.repeat.unwrap_or(DEFAULT_MIXED_REPEAT);
            if !(0.0..=1.0).contains(&repeat) {
                return Err(Error::invalid(
                    f("data.repeat"),
                    format!("{repeat} is not a fraction between 0 and 1"),
                ));
            }
            Some(DataPlan {
                records,
                select: d.select,
                repeat,
                on_exhausted: d.on_exhausted,
            })
        }
    };
    let fields = data.as_ref().map(|d| d.records.fields.as_slice());
    // A macro rather than a closure: each use borrows a different `vars`.
    macro_rules! scope {
        ($vars:expr) => {
            Scope {
                record_fields: fields,
                vars: $vars,
                env,
                runner_index: slot.index,
                runner_count: slot.count,
            }
        };
    }

    let mut common_headers = Vec::new();
    for (k, v) in &plan.target.headers {
        let field = f(&format!("target.headers.{k}"));
        common_headers.push(compile_header(k, v, &scope!(&[]), &field)?);
    }
    let default_timeout = plan.target.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
    limits::duration(default_timeout, limits::MAX_WAIT)
        .map_err(|m| Error::invalid(f("target.timeout"), m))?;

    if plan.requests.is_empty() {
        return Err(Error::invalid(
            f("requests"),
            "is empty: list at least one request",
        ));
    }
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    let mut scenarios = Vec::new();
    let mut cumulative_weights = Vec::new();
    let mut total_weight = 0u64;
    for (i, r) in plan.requests.iter().enumerate() {
        let rf = f(&format!("requests[{i}]"));
        let mut steps_in = Vec::new();
        if r.steps.is_empty() {
            steps_in.push((rf.clone(), r.name.as_str(), r.http()));
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
            for (j, s) in r.steps.iter().enumerate() {
                steps_in.push((format!("{rf}.steps[{j}]"), s.name.as_str(), s.http()));
            }
        }
        check_name(&r.name, &format!("{rf}.name"))?;
        if !seen.insert(r.name.clone()) {
            return Err(Error::invalid(
                format!("{rf}.name"),
                format!("{:?} is used twice; names must be unique", r.name),
            ));
        }
        let mut vars: Vec<String> = Vec::new();
        let mut presets = Vec::new();
        for (name, src) in &r.vars {
            let vf = format!("{rf}.vars.{name}");
            check_name(name, &vf)?;
            // Presets see records and generators, not each other: they are
            // rendered together, before any step.
            let t = Template::compile(src, &scope!(&[])).map_err(|m| Error::invalid(&vf, m))?;
            presets.push((vars.len(), t));
            vars.push(name.clone());
        }
        let mut steps = Vec::new();
        for (sf, name, http) in steps_in {
            let metric_name = if r.steps.is_empty() {
                name.to_string()
            } else {
                format!("{}/{}", r.name, name)
            };
            if !r.steps.is_empty() {
                check_name(name, &format!("{sf}.name"))?;
                if !seen.insert(metric_name.clone()) {
                    return Err(Error::invalid(
                        format!("{sf}.name"),
                        format!("{name:?} is used twice in this journey"),
                    ));
                }
            }
            names.push(metric_name);
            // A step sees what earlier steps captured, not its own captures.
            let earlier = vars.clone();
            let step = compile_step(
                &sf,
                names.len() - 1,
                &http,
                &target,
                &common_headers,
                default_timeout,
                &scope!(&earlier),
                &mut vars,
            )?;
            steps.push(step);
        }
        let uses_record = presets.iter().any(|(_, t)| t.uses_record())
            || steps.iter().any(|s| {
                s.path.uses_record()
                    || s.body.as_ref().is_some_and(Template::uses_record)
                    || s.headers.iter().any(|(_, t)| t.uses_record())
            });
        let weight = r.weight.unwrap_or(1) as u64;
        total_weight += weight;
        cumulative_weights.push(total_weight);
        scenarios.push(Scenario {
            steps,
            uses_record,
            var_names: vars,
            presets,
        });
    }
    if total_weight == 0 {
        return Err(Error::invalid(
            f("requests"),
            "every weight is 0: at least one request needs a positive weight",
        ));
    }

    let load = compile_load(plan, slot, &f)?;
    let interval = plan.report_interval.map_or(DEFAULT_INTERVAL, |d| d.0);
    if interval < Duration::from_millis(100) {
        return Err(Error::invalid(
            f("reportInterval"),
            "must be at least 100ms",
        ));
    }
    limits::at_most(interval, limits::MAX_WAIT)
        .map_err(|m| Error::invalid(f("reportInterval"), m))?;
    // Every runner keeps one histogram per interval of the test.
    if let Some(length) = load.profile.total() {
        let n = length.as_micros().div_ceil(interval.as_micros()) as u64;
        if n > limits::MAX_INTERVALS {
            return Err(Error::invalid(
                f("reportInterval"),
                format!(
                    "{} makes {n} intervals of a {} test, more than the limit of {}: make it longer",
                    crate::duration::format_duration(interval),
                    crate::duration::format_duration(length),
                    limits::MAX_INTERVALS
                ),
            ));
        }
    }
    // Windowed thresholds are made of whole intervals within the test.
    let limits = Limits {
        interval,
        interval_is_default: plan.report_interval.is_none(),
        length: load.profile.total(),
    };
    let mut thresholds = Vec::new();
    let sources = crate::thresholds::plan_sources(plan.thresholds.as_deref());
    for (i, (t, is_default)) in sources.into_iter().enumerate() {
        let tf = f(&format!("thresholds[{i}]"));
        let mut th = Threshold::parse_for_plan(t, &limits)
            .map_err(|e| Error::invalid(&tf, format!("{e} in {t:?}")))?;
        th.is_default = is_default;
        if let Some(s) = th.scope.as_ref().filter(|s| !names.contains(s)) {
            return Err(Error::invalid(
                &tf,
                format!("no request is named {s:?} (names: {})", names.join(", ")),
            ));
        }
        thresholds.push(th);
    }
    Ok(Compiled {
        slot,
        target,
        scenarios,
        cumulative_weights,
        names,
        load,
        data,
        thresholds,
        interval,
    })
}

fn check_name(name: &str, field: &str) -> Result<()> {
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

fn compile_target(base: &str) -> std::result::Result<TargetInfo, String> {
    // Messages quote the URL without its userinfo: it may hold a password.
    let shown = redact_userinfo(base);
    let uri: hyper::Uri = base
        .parse()
        .map_err(|e| format!("{shown:?} is not a valid URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{shown:?}: https targets are not supported yet; use http"
            ));
        }
        _ => return Err(format!("{shown:?} must start with http://")),
    }
    let auth = uri.authority().map_or("", |a| a.as_str());
    if auth.contains('@') {
        return Err(format!(
            "{shown:?} has credentials in it (user:password@), which would be sent as part of the Host header: \
             give them as a header instead, e.g. target.headers.authorization: \"Basic {{{{ env.CREDENTIALS }}}}\""
        ));
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{shown:?} has no host"))?;
    if uri.query().is_some() {
        return Err(format!(
            "{shown:?} must not have a query; put it in the requests"
        ));
    }
    let port = port_of(auth).map_err(|m| format!("{shown:?}: {m}"))?;
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let host_header = HeaderValue::from_str(auth).map_err(|e| e.to_string())?;
    let prefix = uri.path().trim_end_matches('/').to_string();
    Ok(TargetInfo {
        authority,
        host_header,
        prefix,
    })
}

/// The port of an authority (`host`, `host:port`, `[v6]:port`): 80 when it
/// has none; an empty, 0 or out-of-range port is an error (a port that does
/// not fit in 16 bits must not become port 80).
fn port_of(authority: &str) -> std::result::Result<u16, String> {
    let after_host = match authority.rfind(']') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let Some((_, port)) = after_host.rsplit_once(':') else {
        return Ok(80);
    };
    match port.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(format!(
            "port {port:?} is not a port number from 1 to 65535"
        )),
    }
}

/// `base` with anything between `://` and the authority's last `@` replaced,
/// so an error never repeats a password.
fn redact_userinfo(base: &str) -> String {
    // Up to the last `@` anywhere after the scheme: a password may hold `/`,
    // `?` or `#`, which would otherwise end the authority early and leave
    // the secret in the message. Hiding a path's `@` too costs nothing.
    let start = base.find("://").map_or(0, |i| i + 3);
    match base[start..].rfind('@') {
        Some(at) => format!("{}***{}", &base[..start], &base[start + at..]),
        None => base.to_string(),
    }
}

fn compile_header(
    k: &str,
    v: &str,
    scope: &Scope<'_>,
    field: &str,
) -> Result<(HeaderName, Template)> {
    let name = HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| Error::invalid(field, format!("{k:?} is not a valid header name")))?;
    let t = Template::compile(v, scope).map_err(|e| Error::invalid(field, e))?;
    if let Some(s) = t.as_static() {
        HeaderValue::from_str(s)
            .map_err(|_| Error::invalid(field, "is not a valid header value"))?;
    }
    Ok((name, t))
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
        full.push_str(&crate::urlcode::encode(k));
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
    Ok(Step {
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

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

fn encode_query_keep_templates(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        out.push_str(&crate::urlcode::encode(&rest[..open]));
        let end = rest[open..].find("}}").map_or(rest.len(), |e| open + e + 2);
        out.push_str(&rest[open..end]);
        rest = &rest[end..];
    }
    out.push_str(&crate::urlcode::encode(rest));
    out
}

fn compile_load(plan: &Plan, slot: Slot, f: &dyn Fn(&str) -> String) -> Result<LoadPlan> {
    let l = &plan.load;
    let concurrency = l.executor == Executor::Concurrency;
    let level_field = if concurrency {
        "load.users"
    } else {
        "load.rate"
    };
    if concurrency && l.rate.is_some() {
        return Err(Error::invalid(
            f("load.rate"),
            "only applies to executor: arrival-rate (use load.users)",
        ));
    }
    if !concurrency && l.users.is_some() {
        return Err(Error::invalid(
            f("load.users"),
            "only applies to executor: concurrency (use load.rate)",
        ));
    }
    if !concurrency && (l.think_time.is_some() || l.pacing.is_some()) {
        return Err(Error::invalid(
            f(if l.think_time.is_some() {
                "load.thinkTime"
            } else {
                "load.pacing"
            }),
            "only applies to executor: concurrency",
        ));
    }
    let level = if concurrency {
        l.users.map(f64::from)
    } else {
        l.rate
    };
    let profile = if !l.stages.is_empty() {
        if l.duration.is_some() {
            return Err(Error::invalid(
                f("load.duration"),
                "give either stages or duration, not both",
            ));
        }
        if level.is_some() {
            return Err(Error::invalid(
                f(level_field),
                "give either stages or a constant level, not both",
            ));
        }
        check_stages(&l.stages, concurrency, f)?;
        Profile {
            start: 0.0,
            stages: l.stages.iter().map(|s| (s.duration.0, s.target)).collect(),
        }
    } else {
        let level = level
            .ok_or_else(|| Error::invalid(f(level_field), "is missing (or give load.stages)"))?;
        limits::level(level, concurrency, false).map_err(|m| Error::invalid(f(level_field), m))?;
        match l.duration {
            Some(d) => {
                limits::duration(d.0, limits::MAX_LENGTH)
                    .map_err(|m| Error::invalid(f("load.duration"), m))?;
                Profile {
                    start: level,
                    stages: vec![(d.0, level)],
                }
            }
            None if l.iterations.is_some() => Profile {
                start: level,
                stages: vec![],
            },
            None => {
                return Err(Error::invalid(
                    f("load"),
                    "has no end: give duration, stages or iterations",
                ));
            }
        }
    };
    if l.iterations == Some(0) {
        return Err(Error::invalid(f("load.iterations"), "must be more than 0"));
    }
    if let Some(n) = l.iterations {
        limits::count(n, limits::MAX_ITERATIONS)
            .map_err(|m| Error::invalid(f("load.iterations"), m))?;
        // An open model without an end in time ends when its arrivals do.
        if !concurrency && profile.total().is_none() {
            let secs = n as f64 / profile.start;
            if secs > limits::MAX_LENGTH.as_secs_f64() {
                return Err(Error::invalid(
                    f("load.iterations"),
                    format!(
                        "{n} at {} per second take longer than the limit of {}: give a duration or a higher rate",
                        profile.start,
                        crate::duration::format_duration(limits::MAX_LENGTH)
                    ),
                ));
            }
        }
    }
    let max_in_flight = l.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    if max_in_flight == 0 {
        return Err(Error::invalid(f("load.maxInFlight"), "must be more than 0"));
    }
    limits::count(max_in_flight, limits::MAX_IN_FLIGHT)
        .map_err(|m| Error::invalid(f("load.maxInFlight"), m))?;
    for (field, d) in [
        ("load.thinkTime", l.think_time),
        ("load.pacing", l.pacing),
        ("load.gracefulStop", l.graceful_stop),
    ] {
        if let Some(d) = d {
            limits::at_most(d.0, limits::MAX_WAIT).map_err(|m| Error::invalid(f(field), m))?;
        }
    }
    let iterations = l
        .iterations
        .map(|n| iteration_share(n, concurrency, &profile, slot));
    Ok(LoadPlan {
        executor: l.executor,
        profile,
        iterations,
        max_in_flight: (max_in_flight / slot.count).max(1),
        think_time: l.think_time.map_or(Duration::ZERO, |d| d.0),
        pacing: l.pacing.map_or(Duration::ZERO, |d| d.0),
        graceful_stop: l.graceful_stop.map_or(DEFAULT_GRACEFUL_STOP, |d| d.0),
    })
}

/// This runner's share of the plan's iterations. Arrivals are dealt out one
/// by one, so an even split is exact. Users are whole, so in the closed model
/// a runner may have none (2 users over 3 runners): there the iterations
/// follow each runner's peak users, so none are stranded on a runner that
/// never runs a user.
fn iteration_share(total: u64, concurrency: bool, profile: &Profile, slot: Slot) -> u64 {
    if !concurrency {
        return slot.share(total);
    }
    let peak = profile
        .stages
        .iter()
        .map(|s| s.1)
        .fold(profile.start, f64::max)
        .round() as u64;
    let users: Vec<u64> = (0..slot.count)
        .map(|i| {
            Slot {
                index: i,
                count: slot.count,
            }
            .share(peak)
        })
        .collect();
    let sum: u64 = users.iter().sum();
    if sum == 0 {
        return slot.share(total);
    }
    // Largest remainder: floors first, then the leftover one by one to the
    // runners with users, in index order (deterministic on every runner).
    let floor = |u: u64| (total as u128 * u as u128 / sum as u128) as u64;
    let leftover = total - users.iter().map(|&u| floor(u)).sum::<u64>();
    let rank = users[..slot.index as usize]
        .iter()
        .filter(|&&u| u > 0)
        .count() as u64;
    let mine = users[slot.index as usize];
    floor(mine) + u64::from(mine > 0 && rank < leftover)
}

fn check_stages(stages: &[Stage], concurrency: bool, f: &dyn Fn(&str) -> String) -> Result<()> {
    for (i, s) in stages.iter().enumerate() {
        limits::duration(s.duration.0, limits::MAX_LENGTH)
            .map_err(|m| Error::invalid(f(&format!("load.stages[{i}].duration")), m))?;
        limits::level(s.target, concurrency, true)
            .map_err(|m| Error::invalid(f(&format!("load.stages[{i}].target")), m))?;
    }
    let total: Duration = stages.iter().map(|s| s.duration.0).sum();
    limits::at_most(total, limits::MAX_LENGTH)
        .map_err(|m| Error::invalid(f("load.stages"), format!("together {m}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(total: u64, users: f64, count: u32) -> Vec<u64> {
        let p = Profile {
            start: users,
            stages: vec![(Duration::from_secs(1), users)],
        };
        (0..count)
            .map(|index| iteration_share(total, true, &p, Slot { index, count }))
            .collect()
    }

    #[test]
    fn iterations_follow_the_users_so_none_are_stranded() {
        assert_eq!(shares(300, 2.0, 3), [150, 150, 0]);
        assert_eq!(shares(7, 1.0, 3), [7, 0, 0]);
        assert_eq!(shares(1001, 7.0, 3), [429, 286, 286]);
        for (total, users, count) in [(1001, 7.0, 3), (5, 3.0, 4), (99, 10.0, 7)] {
            assert_eq!(shares(total, users, count).iter().sum::<u64>(), total);
        }
    }

    fn compile_yaml(yaml: &str) -> Result<Compiled> {
        let plan: Plan = serde_yaml_ng::from_str(yaml).unwrap();
        compile_with_env(&plan, Slot::SOLO, Path::new("."), "", &|_| None)
    }

    fn err(yaml: &str) -> String {
        compile_yaml(yaml).unwrap_err().to_string()
    }

    const HEAD: &str = "target: {baseUrl: 'http://127.0.0.1:1'}\nload: {users: 1, iterations: 1}\n";

    #[test]
    fn max_body_is_a_size_per_request_or_step() {
        let c = compile_yaml(&format!(
            "{HEAD}requests: [{{name: a, path: /}}, {{name: b, path: /, maxBody: 4MiB}}, {{name: j, steps: [{{name: s, path: /, maxBody: '512'}}]}}]"
        ))
        .unwrap();
        let max = |i: usize| c.scenarios[i].steps[0].max_body;
        assert_eq!(
            [max(0), max(1), max(2)],
            [crate::engine::DEFAULT_MAX_BODY, 4 << 20, 512]
        );
        let e = err(&format!(
            "{HEAD}requests: [{{name: j, steps: [{{name: s, path: /, maxBody: 0KiB}}]}}]"
        ));
        assert!(
            e.contains("requests[0].steps[0].maxBody") && e.contains("more than 0"),
            "{e}"
        );
        let e = err(&format!(
            "{HEAD}requests: [{{name: j, maxBody: 1MiB, steps: [{{name: s, path: /}}]}}]"
        ));
        assert!(e.contains("requests[0]") && e.contains("maxBody"), "{e}");
        let e = err(&format!(
            "{HEAD}requests: [{{name: a, path: /, maxBody: 257MiB}}]"
        ));
        assert!(
            e.contains("requests[0].maxBody") && e.contains("limit of 256 MiB"),
            "{e}"
        );
        let plan: Result<Plan, _> = serde_yaml_ng::from_str(&format!(
            "{HEAD}requests: [{{name: a, path: /, maxBody: 4MB/s}}]"
        ));
        assert!(plan.unwrap_err().to_string().contains("unknown unit"));
    }

    #[test]
    fn base_url_ports_are_checked_and_credentials_never_shown() {
        assert_eq!(port_of("h"), Ok(80));
        assert_eq!(port_of("h:8080"), Ok(8080));
        assert_eq!(port_of("[::1]:9"), Ok(9));
        assert_eq!(port_of("[::1]"), Ok(80));
        for bad in ["h:", "h:0", "h:65536", "h:99999", "[::1]:x"] {
            assert!(port_of(bad).is_err(), "{bad}");
        }
        assert_eq!(redact_userinfo("http://u:pw@h/p"), "http://***@h/p");
        assert_eq!(redact_userinfo("u:pw@h"), "***@h");
        for url in [
            "http://u:pw@h",
            "http://u:p/pw@h",
            "http://u:p?pw@h:8080/x",
            "http://u:p#pw@h",
            "http://u:pw@h:99999",
            "http://u:pw@ho st/",
            "ftp://u:pw@h",
        ] {
            let e = compile_target(url)
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"));
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn captures_take_exactly_one_source() {
        let ok = compile_yaml(&format!(
            "{HEAD}requests: [{{name: a, path: /, capture: {{c: {{locationQuery: code}}, t: {{regex: 'id=(\\d+)'}}}}}}]"
        ))
        .unwrap();
        let step = &ok.scenarios[0].steps[0];
        assert_eq!(
            step.captures[0].1,
            CaptureFrom::LocationQuery("code".into())
        );
        assert!(matches!(&step.captures[1].1, CaptureFrom::Regex(r) if r.as_str() == "id=(\\d+)"));
        assert!(step.needs_body() && step.needs_headers() && !step.follow_redirects);
        let e = err(&format!(
            "{HEAD}requests: [{{name: j, steps: [{{name: s, path: /, capture: {{c: {{json: /a, regex: x}}}}}}]}}]"
        ));
        assert!(
            e.contains("requests[0].steps[0].capture.c") && e.contains("exactly one"),
            "{e}"
        );
        let e = err(&format!(
            "{HEAD}requests: [{{name: a, path: /, capture: {{c: {{}}}}}}]"
        ));
        assert!(
            e.contains("requests[0].capture.c") && e.contains("exactly one"),
            "{e}"
        );
        let e = err(&format!(
            "{HEAD}requests: [{{name: a, path: /, capture: {{c: {{regex: '(a'}}}}}}]"
        ));
        assert!(e.contains("requests[0].capture.c.regex"), "{e}");
        let e = err(&format!(
            "{HEAD}requests: [{{name: a, path: /, capture: {{c: {{locationQuery: ''}}}}}}]"
        ));
        assert!(e.contains("requests[0].capture.c.locationQuery"), "{e}");
    }

    #[test]
    fn forms_set_their_content_type_and_exclude_a_body() {
        let c = compile_yaml(
            "target: {baseUrl: 'http://127.0.0.1:1', headers: {content-type: application/json}}\nload: {users: 1, iterations: 1}\nrequests:\n- {name: a, method: POST, path: /, form: {k: 'v {{seq}}'}, followRedirects: true}\n- {name: b, method: POST, path: /, form: {k: v}, headers: {Content-Type: text/x-mine}}",
        )
        .unwrap();
        let a = &c.scenarios[0].steps[0];
        assert!(a.follow_redirects);
        let ct: Vec<_> = a
            .headers
            .iter()
            .filter(|(n, _)| n == hyper::header::CONTENT_TYPE)
            .map(|(_, t)| t.as_static().unwrap())
            .collect();
        assert_eq!(ct, [FORM_CONTENT_TYPE]);
        let b = &c.scenarios[1].steps[0];
        assert_eq!(b.body.as_ref().unwrap().as_static(), Some("k=v"));
        let ct: Vec<_> = b
            .headers
            .iter()
            .filter(|(n, _)| n == hyper::header::CONTENT_TYPE)
            .map(|(_, t)| t.as_static().unwrap())
            .collect();
        assert_eq!(ct, ["text/x-mine"]);

        let e = err(&format!(
            "{HEAD}requests: [{{name: j, steps: [{{name: s, method: POST, path: /, body: x, form: {{k: v}}}}]}}]"
        ));
        assert!(
            e.contains("requests[0].steps[0].form") && e.contains("not both"),
            "{e}"
        );
        let e = err(&format!(
            "{HEAD}requests: [{{name: a, path: /, form: {{k: '{{{{ nope }}}}'}}}}]"
        ));
        assert!(e.contains("requests[0].form.k"), "{e}");
        let e = err(&format!(
            "{HEAD}requests: [{{name: j, followRedirects: true, steps: [{{name: s, path: /}}]}}]"
        ));
        assert!(e.contains("has both `steps`"), "{e}");
    }
}
