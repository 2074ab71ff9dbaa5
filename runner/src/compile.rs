//! Turns a `Plan` into the ready-to-run form for one runner slot, checking
//! everything the schema cannot: durations, weights, URLs, templates, data and
//! thresholds. Every error names the field. Nothing here touches the network,
//! so a bad plan fails before any load is sent.
//!
//! Where what lives: this file has the compiled types, [`compile`] and its
//! variants, and the order of the checks; `target` checks the base URL (port,
//! credentials kept out of messages), builds its TLS config (files read
//! here, once) and compiles headers; `steps` compiles
//! each request or journey into steps (path and query encoding, forms,
//! captures); `journey` a journey's pauses and repeat blocks; `checks`
//! the body checks of `expect.body`; `scenarios` the unnamed scenario or the
//! named ones (their rules, weights, per-user journeys and data selection);
//! `load` compiles the load model (level over time, a weighted scenario's
//! split, this runner's share of the iterations, stages) and the report
//! interval; `http` the HTTP version and HTTP/2's connections per runner.

use std::{path::Path, sync::Arc, time::Duration};

use hyper::{
    Method,
    header::{HeaderName, HeaderValue},
};

use crate::{
    data::Records,
    error::{Error, Result},
    plan::{Executor, HttpVersion, Plan, Select},
    template::Template,
    thresholds::Threshold,
    wait::Wait,
};

mod checks;
mod collect;
mod entries;
mod http;
mod journey;
mod load;
mod scenarios;
mod steps;
mod target;
mod thresholds;

pub use collect::named_record_fields;
use collect::{compile_collect, with_blank_record};
use http::compile_http;
use load::compile_interval;
pub use load::{DEFAULT_POINTS, Split, default_interval, largest_remainder, report_interval};
use scenarios::{Common, Scenarios, check_repeat, compile_scenarios};
pub use scenarios::{max_journeys, max_names, plan_length, planned_length};
use target::{compile_header, compile_target, compile_tls};
use thresholds::{Subjects, compile_thresholds};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_GRACEFUL_STOP: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1000;
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
    pub http: HttpPlan,
    /// The scenarios that run in parallel: the named ones, in the order of
    /// `scenario_names`, or the one unnamed scenario of a plan with
    /// top-level `requests`.
    pub scenarios: Vec<ScenarioPlan>,
    /// Metric names, one per step (a single request is a one-step entry).
    pub names: Vec<String>,
    /// The named scenarios (`plan.scenarios`), in order; empty for a plan
    /// whose only scenario is the unnamed top-level one.
    pub scenario_names: Vec<String>,
    /// Each metric's scenario (an index into `scenario_names`), by metric;
    /// None in a plan without named scenarios.
    pub metric_scenario: Vec<Option<usize>>,
    /// The journeys (entries with steps), whose whole duration is recorded
    /// as a metric of its own (`Recorder::record_journey`), by
    /// `Entry::journey`. Named like their steps' prefix ("checkout", or
    /// "SCENARIO/checkout" in a named scenario; a user's "onStart" and
    /// "onStop", or "SCENARIO/onStart").
    pub journeys: Vec<String>,
    /// Each journey's scenario, as `metric_scenario`.
    pub journey_scenario: Vec<Option<usize>>,
    /// The test's records and the top-level selection (each scenario has
    /// its own selection in `ScenarioPlan::data`).
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
    /// The base URL is https:// (then `tls` is set).
    pub https: bool,
    /// The URL's host, as written (without a port; an IPv6 one in brackets).
    pub host: String,
    /// The run's TLS client config, for an https:// target.
    pub tls: Option<crate::tls::client::TlsTarget>,
}

/// One scenario, ready to run: its mix, its load, when it starts, what its
/// virtual users do when they start and end, and how it picks records.
#[derive(Debug)]
pub struct ScenarioPlan {
    /// None for the unnamed scenario of a plan with top-level `requests`.
    pub name: Option<String>,
    /// The weighted mix.
    pub entries: Vec<Entry>,
    /// Cumulative weights, for picking an entry with one random draw.
    pub cumulative_weights: Vec<u64>,
    pub load: LoadPlan,
    /// From the test's start (`startTime`).
    pub start_time: Duration,
    /// Run once by each virtual user when it starts (closed model only).
    pub on_start: Option<Entry>,
    /// Run once by each virtual user when it ends.
    pub on_stop: Option<Entry>,
    /// How this scenario picks from the test's records.
    pub data: Option<DataPlan>,
    /// The user's variables (`user.NAME`): onStart's vars, then its
    /// captures, in the slots of `on_start`'s `var_names`.
    pub user_vars: Vec<String>,
}

/// How many times a virtual user tries its `onStart` before it is retired
/// for the rest of the test (see README "Virtual users with state").
pub const ON_START_ATTEMPTS: u32 = 3;

/// `target.http` and `target.connections`, checked.
#[derive(Debug)]
pub struct HttpPlan {
    pub version: HttpVersion,
    /// HTTP/2 connections this runner spreads its streams over (at least 1;
    /// unused for HTTP/1.1, where each user has its own connection).
    pub connections: u32,
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
    pub think_time: Wait,
    pub pacing: Wait,
    pub graceful_stop: Duration,
    /// A weighted scenario's part of the shared users (closed model; see
    /// `LoadPlan::users_at`). None: all of the profile's.
    pub split: Option<Split>,
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

#[derive(Clone, Debug)]
pub struct DataPlan {
    pub records: Arc<Records>,
    pub select: Select,
    pub repeat: f64,
    pub on_exhausted: crate::plan::OnExhausted,
}

/// One entry of a scenario's mix (a single request, or a journey), or a
/// virtual user's onStart or onStop journey.
#[derive(Debug)]
pub struct Entry {
    pub steps: Vec<StepKind>,
    /// For a journey, its index in `Compiled::journeys`.
    pub journey: Option<usize>,
    pub uses_record: bool,
    /// The journey's variables by slot: its `vars` first, then its captures.
    pub var_names: Vec<String>,
    /// `vars` rendered into their slots when an iteration starts.
    pub presets: Vec<(usize, Template)>,
    /// The pause after this entry instead of the scenario's think time.
    pub think_time: Option<Wait>,
}

/// One step of a journey (a single request is a journey of one `Request`).
#[derive(Debug)]
pub enum StepKind {
    Request(Step),
    /// A pause (`sleep`), cut short when the run stops.
    Sleep(Wait),
    Repeat(Repeat),
}

/// A repeat block: `steps` (requests and pauses) run a number of rounds
/// drawn from `min..=max` for each pass, with `interval` between rounds.
#[derive(Debug)]
pub struct Repeat {
    pub min: u32,
    pub max: u32,
    pub interval: Wait,
    pub steps: Vec<StepKind>,
}

impl StepKind {
    /// Every request in `steps`, those inside repeat blocks included, in order.
    pub fn requests(steps: &[StepKind]) -> Vec<&Step> {
        let mut out = Vec::new();
        fn walk<'a>(steps: &'a [StepKind], out: &mut Vec<&'a Step>) {
            for s in steps {
                match s {
                    StepKind::Request(r) => out.push(r),
                    StepKind::Sleep(_) => {}
                    StepKind::Repeat(r) => walk(&r.steps, out),
                }
            }
        }
        walk(steps, &mut out);
        out
    }
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
    /// The most body bytes kept for a capture or a body check (`maxBody`).
    pub max_body: usize,
    /// `expect.body`, in the order they are judged; the first that fails
    /// is the one counted.
    pub checks: Vec<Check>,
}

/// One body check of `expect.body`, with the label its failures are
/// counted under (bounded in length, e.g. `json /status == "ok"`).
#[derive(Clone, Debug)]
pub struct Check {
    pub label: Arc<str>,
    pub test: CheckTest,
}

#[derive(Clone, Debug)]
pub enum CheckTest {
    /// The body contains the text (an escaped regex: a fast substring search).
    Contains(regex::bytes::Regex),
    Regex(regex::bytes::Regex),
    /// The JSON body has this pointer, equal to the value when given.
    Json {
        pointer: String,
        equals: Option<String>,
    },
    /// The body is at most this many bytes (counted, not kept).
    MaxSize(u64),
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

impl Compiled {
    /// How long the load runs from the test's start: the end of its
    /// latest scenario (its start time plus its length). None when a
    /// scenario ends by its iterations alone.
    pub fn length(&self) -> Option<Duration> {
        let mut longest = Duration::ZERO;
        for s in &self.scenarios {
            longest = longest.max(s.start_time + s.load.profile.total()?);
        }
        Some(longest)
    }

    /// What the results must be read with, for the summary and the status.
    pub fn warnings(&self) -> Vec<String> {
        let insecure = self.target.tls.as_ref().is_some_and(|t| t.insecure);
        insecure
            .then(|| crate::tls::client::INSECURE_WARNING.to_string())
            .into_iter()
            .collect()
    }
}

impl Step {
    /// Whether judging the response reads its body (kept up to `max_body`);
    /// `maxSize` alone only counts it.
    pub fn needs_body(&self) -> bool {
        self.captures
            .iter()
            .any(|(_, c)| matches!(c, CaptureFrom::Json(_) | CaptureFrom::Regex(_)))
            || self
                .checks
                .iter()
                .any(|c| !matches!(c.test, CheckTest::MaxSize(_)))
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

/// `compile_with_env` over records already loaded (for a plan with `data`).
pub fn compile_with_records(
    plan: &Plan,
    slot: Slot,
    base_dir: &Path,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
    records: Arc<Records>,
) -> Result<Compiled> {
    compile_inner(plan, slot, base_dir, prefix, env, Some(records))
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
    let (plan, records) = with_blank_record(plan, fields);
    compile_inner(&plan, slot, Path::new(""), prefix, env, Some(records))
}

fn compile_inner(
    plan: &Plan,
    slot: Slot,
    base_dir: &Path,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
    given: Option<Arc<Records>>,
) -> Result<Compiled> {
    compile_collect(plan, slot, base_dir, prefix, env, given).map_err(|errors| {
        errors
            .into_iter()
            .next()
            .unwrap_or_else(|| Error::Other("no error collected".into()))
    })
}

/// [`compile_with_env`], with every error of the plan (in field order,
/// each once, at most [`Errors::MAX`]) instead of the first.
pub fn compile_all_with_env(
    plan: &Plan,
    slot: Slot,
    base_dir: &Path,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Compiled, Vec<Error>> {
    compile_collect(plan, slot, base_dir, prefix, env, None)
}

/// [`compile_with_fields`], with every error of the plan.
pub fn compile_all_with_fields(
    plan: &Plan,
    slot: Slot,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
    fields: Vec<String>,
) -> Result<Compiled, Vec<Error>> {
    let (plan, records) = with_blank_record(plan, fields);
    compile_collect(&plan, slot, Path::new(""), prefix, env, Some(records))
}

#[cfg(test)]
mod tests;
