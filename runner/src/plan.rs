//! The test plan: what to send, how hard, with what data, and what counts as
//! a pass. The operator embeds `Plan` in the LoadTest spec, so these types
//! carry serde + schemars derives and nothing cluster-specific.
//!
//! Validation that the schema cannot express (durations, weights, template
//! variables, thresholds) lives in `compile`, which turns a `Plan` into the
//! ready-to-run form before any load is sent.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{duration::HumanDuration, wait::Wait};

mod requests;
mod scenarios;

pub use requests::{
    BodyCheck, Capture, Expect, HttpView, JsonCheck, RepeatCount, RepeatedStep, RequestSpec,
    StepSpec,
};
pub use scenarios::{JourneySpec, ScenarioSpec, TeardownSpec};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    /// The system under test: its base URL, headers every request sends,
    /// the default timeout, HTTP version and TLS.
    pub target: Target,
    /// The load of the plan's one unnamed scenario; with `scenarios`, what
    /// the weighted scenarios share (users or rate, duration or stages).
    #[serde(default)]
    pub load: Load,
    /// The weighted mix of requests (or user journeys) each iteration of the
    /// unnamed scenario picks from. Empty when `scenarios` are given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestSpec>,
    /// The unnamed scenario's journey run once by each virtual user when it
    /// starts (closed model only); its vars and captures are
    /// `{{ user.NAME }}` from then on. A failed onStart is counted, then
    /// retried after the think time, at most 3 attempts in a row; then the
    /// user is retired for the rest of the test (counted, and warned about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_start: Option<JourneySpec>,
    /// The unnamed scenario's journey run once by each virtual user when it
    /// ends: at the end of the test (within the graceful stop), or when a
    /// ramp down parks it (brought back, it starts again with onStart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_stop: Option<JourneySpec>,
    /// Named scenarios, run in parallel, each with its own load and mix
    /// (instead of the top-level `requests`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scenarios: BTreeMap<String, ScenarioSpec>,
    /// The test's records (users, accounts ...) and how each iteration picks
    /// one, for `{{ record.FIELD }}` templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataSpec>,
    /// Pass/fail rules such as "p(95) < 10ms for get-schema", "error_rate < 1%".
    /// Absent: the default "error_rate < 1%", so a run whose requests all
    /// failed never passes; `[]`: no thresholds at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<String>>,
    /// Width of the per-interval histograms kept for latency over time.
    /// Absent: chosen by the test's planned length (1s for a 10s test, at
    /// most 300 intervals up to 50m, 10s beyond; docs/report.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_interval: Option<HumanDuration>,
    /// Steps run once after the load ends (delete what the setup made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown: Option<TeardownSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// Scheme, host and port (and optionally a path prefix), e.g. http://10.0.0.5:8080.
    pub base_url: String,
    /// Headers sent with every request; values may use {{ }} templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Default per-request timeout (a request may override it). Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// How an https:// target is trusted and who the runner is to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TargetTls>,
    /// The HTTP version: "1.1" (default), "2" (ALPN over TLS, prior
    /// knowledge (h2c) over cleartext) or "auto" (ALPN offers both over TLS;
    /// HTTP/1.1 over cleartext).
    #[serde(default, skip_serializing_if = "HttpVersion::is_default")]
    pub http: HttpVersion,
    /// HTTP/2 only: connections per runner that the users' streams are
    /// spread over. Default: one per 100 users (or in-flight requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
}

/// `target.http`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub enum HttpVersion {
    #[default]
    #[serde(rename = "1.1")]
    Http1,
    #[serde(rename = "2")]
    Http2,
    #[serde(rename = "auto")]
    Auto,
}

impl HttpVersion {
    pub fn is_default(&self) -> bool {
        *self == HttpVersion::Http1
    }
}

/// YAML reads an unquoted `http: 1.1` or `http: 2` as a number: both are
/// taken as the version they spell, so a plan need not quote them.
impl<'de> Deserialize<'de> for HttpVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::Number(n) => n.to_string(),
        };
        match text.as_str() {
            "1.1" => Ok(HttpVersion::Http1),
            "2" | "2.0" => Ok(HttpVersion::Http2),
            "auto" => Ok(HttpVersion::Auto),
            other => Err(serde::de::Error::custom(format!(
                "unknown HTTP version {other:?}: expected \"1.1\", \"2\" or \"auto\""
            ))),
        }
    }
}

/// `target.tls`: how the runner trusts an https:// target and, for mutual
/// TLS, who it is. By default the target's certificate must chain to the
/// bundled web PKI roots (runner images have no system store) and name the
/// host of `baseUrl`, as a browser would require.
///
/// Locally the files are read from paths (relative to the plan file, like
/// `data.file`). In a LoadTest the operator takes them from Secrets or
/// ConfigMaps instead (`caFrom`, `certFrom`, `keyFrom`), mounts them
/// read-only into the runner pods and fills in the paths itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetTls {
    /// A PEM bundle of CA certificates to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// What `caFile` does to the bundled web PKI roots: "add" (default: the
    /// target may chain to either) or "replace" (only these CAs are trusted).
    #[serde(default, skip_serializing_if = "CaMode::is_default")]
    pub ca_mode: CaMode,
    /// A PEM client certificate (chain) for mutual TLS; needs `keyFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// The PEM private key of `certFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// The name sent as SNI and checked against the certificate, instead of
    /// the host of `baseUrl` (for a target reached by IP, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// The lowest TLS version accepted: "1.2" (default) or "1.3".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    /// Accept any certificate. Only when spelled out; every summary and
    /// status says that the target was not verified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
    /// LoadTest only: the CA bundle from a Secret or ConfigMap key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_from: Option<ValueFrom>,
    /// LoadTest only: the client certificate from a Secret or ConfigMap key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_from: Option<ValueFrom>,
    /// LoadTest only: the client key, from a Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_from: Option<ValueFrom>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CaMode {
    #[default]
    Add,
    Replace,
}

impl CaMode {
    pub fn is_default(&self) -> bool {
        *self == CaMode::Add
    }
}

/// One key of a Secret or a ConfigMap in the LoadTest's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueFrom {
    /// The Secret's name (exactly one of `secret` and `configMap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The ConfigMap's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// The key within the Secret or ConfigMap, e.g. `ca.crt`.
    pub key: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Executor {
    /// Closed model: a number of virtual users, each sending its next request
    /// when the previous one is answered (plus think time or pacing).
    #[default]
    Concurrency,
    /// Open model: requests start on a fixed timeline whatever the server does;
    /// latency is measured from each request's intended start.
    ArrivalRate,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Load {
    /// `concurrency` (closed model: virtual users, `users`) or
    /// `arrival-rate` (open model: requests per second, `rate`). Default
    /// concurrency.
    #[serde(default)]
    pub executor: Executor,
    /// Constant number of users (concurrency), unless `stages` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u32>,
    /// Constant requests per second (arrival-rate), unless `stages` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// How long to run at the constant level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,
    /// Stop after this many iterations in total (across all runners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u64>,
    /// Linear ramps: each stage moves from the previous target to its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// Open model: at most this many requests in flight per test; sends that
    /// would exceed it are counted as dropped. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Closed model: pause after each iteration: a duration, a uniform
    /// range (1s..3s) or exponential(MEAN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think_time: Option<Wait>,
    /// Closed model: each iteration takes at least this long (start to
    /// start), drawn per iteration when a range or a distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing: Option<Wait>,
    /// How long in-flight requests may finish after the end. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_stop: Option<HumanDuration>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    pub duration: HumanDuration,
    /// Users (concurrency) or requests per second (arrival-rate) at the end of the stage.
    pub target: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Select {
    /// Go round the records in order (a warm cache).
    #[default]
    Cycle,
    /// Each iteration a record never used before (a cold start); see `onExhausted`.
    Unique,
    /// A random record each time.
    Random,
    /// `repeat` of the iterations reuse a record already used, the rest take a new one.
    Mixed,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnExhausted {
    /// Stop the test when `unique` has used every record.
    #[default]
    Stop,
    /// Start again from the first record.
    Wrap,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataSpec {
    /// A JSON array of objects, JSON lines, or CSV with a header row (by extension:
    /// .json, .jsonl/.ndjson, .csv). Relative to the plan file. Required for a
    /// local run; in a cluster the records come from `setup` or `dataFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// How an iteration picks a record: `unique` (each once), `cycle`,
    /// `random` or `mixed`. Default cycle.
    #[serde(default)]
    pub select: Select,
    /// For `mixed`: the fraction of iterations that reuse a record (e.g. 0.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<f64>,
    /// For `unique`: what happens when every record has been used.
    #[serde(default)]
    pub on_exhausted: OnExhausted,
}

/// Built-in provisioning (`barrage-runner setup`, or a LoadTest's
/// `spec.setup`): `users` runs of the `steps` journey, `concurrency` at a
/// time; each successful run's variables (its `vars` and captures) become one
/// record for the load test's data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupSpec {
    /// How many users (records) to provision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u32>,
    /// How many users are provisioned at once. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Rendered once per user before the steps, e.g. `email: "{{ email }}"`,
    /// `password: "{{ randString(16) }}"`; steps use `{{ vars.NAME }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// The requests each user makes, in order, with captures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepSpec>,
    /// The variables kept in each record. Default: every var and capture.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record: Vec<String>,
    /// The fraction of users (0 to 1) that may fail without failing the
    /// setup; they get no record. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerated_failure_ratio: Option<f64>,
}

impl SetupSpec {
    /// True when any built-in field is set (as opposed to a custom image).
    pub fn is_builtin(&self) -> bool {
        self.users.is_some()
            || self.concurrency.is_some()
            || !self.vars.is_empty()
            || !self.steps.is_empty()
            || !self.record.is_empty()
            || self.tolerated_failure_ratio.is_some()
    }
}

/// What `barrage-runner setup` reads: the target and the setup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupPlan {
    pub target: Target,
    pub setup: SetupSpec,
}
