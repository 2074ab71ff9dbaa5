//! The `LoadTest` custom resource (barrage.dev/v1alpha1). Its spec is the
//! runner's plan, unchanged, plus what only a cluster needs: how many runners,
//! how their pods look, provisioning, timeouts and cleanup.

use std::collections::BTreeMap;

pub use barrage_runner::manifest::output::{BasicAuth, RemoteWrite, RemoteWriteTls, SecretKey};
use barrage_runner::{
    duration::HumanDuration,
    plan::{Plan, SetupSpec},
    report::Latencies,
    thresholds::Outcome,
};
use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, LocalObjectReference, ResourceRequirements, SecurityContext,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A load test: the plan (target, load, requests, data, thresholds, as
/// for `barrage-runner run`) and how the cluster runs it (runners, their
/// pods, setup, timeouts, cleanup, outputs).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "barrage.dev",
    version = "v1alpha1",
    kind = "LoadTest",
    namespaced,
    shortname = "lt",
    status = "LoadTestStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Runners","type":"string","jsonPath":".status.runners"}"#,
    printcolumn = r#"{"name":"RPS","type":"number","jsonPath":".status.rps"}"#,
    printcolumn = r#"{"name":"P95(ms)","type":"number","jsonPath":".status.latencyMs.p95"}"#,
    printcolumn = r#"{"name":"Errors","type":"string","jsonPath":".status.errorRate"}"#,
    printcolumn = r#"{"name":"Verdict","type":"string","jsonPath":".status.verdict"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LoadTestSpec {
    /// The test plan: target, load, requests, data, thresholds (as for
    /// `barrage-runner run`).
    #[serde(flatten)]
    pub plan: Plan,
    /// How many runner pods share the load. Default 1.
    #[serde(default = "one")]
    pub runners: u32,
    /// The runner pods: image, resources, scheduling, environment, labels.
    #[serde(default)]
    pub runner: RunnerPod,
    /// A provisioning Job that runs once before the runners start; the
    /// records it writes become the runners' data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<Setup>,
    /// Take the records of an earlier LoadTest instead of provisioning (as
    /// when re-running a test against the same server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_from: Option<DataFrom>,
    /// How long each stage may take before the test fails.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// What happens to runner pods once the results are collected.
    #[serde(default)]
    pub cleanup: Cleanup,
    /// How often the operator pulls results from the runners. Default 2s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collect_interval: Option<HumanDuration>,
    /// Where the run's series go while it runs (Prometheus remote write).
    /// Unset: the operator's cluster-wide default, if the chart sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,
}

fn one() -> u32 {
    1
}

/// The runner pods' settings; each is passed to every runner pod as is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnerPod {
    /// Default: the operator's configured runner image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Always, IfNotPresent or Never. Default IfNotPresent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// CPU and memory for each runner pod, as a container's `resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the runner pods must run on, as a pod's `nodeSelector`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the runner pods tolerate, as a pod's `tolerations`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Where the runner pods may run, as a pod's `affinity` (e.g. spread
    /// them over nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Environment for `{{ env.NAME }}` templates and the runner itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Environment from ConfigMaps and Secrets, as a container's `envFrom`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// The runner pods' service account. Default: the namespace's `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Secrets for pulling the runner image from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Extra labels on the runner pods (besides the operator's own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on the runner pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Provisioning, run once as a Job before the runners start: either the
/// built-in steps (`users`, `steps`, ...: `barrage-runner setup`) or a custom
/// `image` that writes JSON lines to the file named by
/// `$BARRAGE_RECORDS_FILE`. Either way the records are published to the
/// Secret `NAME-records` and mounted into every runner.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Setup {
    /// A custom setup image (instead of the built-in steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The custom `image`'s entrypoint, instead of the image's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments to the custom `image`'s entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment of the setup container, as a container's `env`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Retries of the Job's pod before the test fails. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// For the setup container. Default: the runner pods' resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The custom `image`'s container securityContext, replacing the default:
    /// the Pod Security "restricted" profile (runAsNonRoot, no privilege
    /// escalation, all capabilities dropped, seccomp RuntimeDefault). Set it
    /// only for an image that cannot run so (e.g. one that must run as root),
    /// in a namespace that admits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// The built-in steps.
    #[serde(flatten)]
    pub builtin: SetupSpec,
}

/// Where a LoadTest takes its records from, when not from its own setup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataFrom {
    /// An earlier LoadTest in the same namespace whose setup published
    /// records; they stay as long as that LoadTest exists.
    pub load_test: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// For the provisioning Job to finish. Default 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<HumanDuration>,
    /// For every runner pod to be ready. Default 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<HumanDuration>,
    /// Beyond the plan's own length before the runners are stopped. Default 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_grace: Option<HumanDuration>,
    /// For the teardown Job (`spec.teardown`) to finish. Default 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown: Option<HumanDuration>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Cleanup {
    /// Delete the runner pods once the results are collected.
    #[default]
    Delete,
    /// Let them exit and keep them (with their logs) until the LoadTest is deleted.
    Keep,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    #[default]
    Pending,
    Provisioning,
    Starting,
    Running,
    /// The load's results are final (its verdict is in the `Passed`
    /// condition); the teardown Job runs. The final phase comes after it.
    TearingDown,
    Succeeded,
    Failed,
    Aborted,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Aborted)
    }
}

/// What `kubectl get lt` and `kubectl wait` read. Kept small whatever the
/// number of runners: the full merged report lives in a ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadTestStatus {
    /// Pending, Provisioning, Starting, Running, Collecting, then Succeeded
    /// or Failed.
    #[serde(default)]
    pub phase: Phase,
    /// Why the test is in its phase, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the current phase began (RFC 3339), for the phase timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_since: Option<String>,
    /// The spec generation this run uses; later changes are not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// "ready/total" runners, for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runners: Option<String>,
    /// Runner pods ready to start.
    #[serde(default)]
    pub runners_ready: u32,
    /// Runner pods whose results are collected.
    #[serde(default)]
    pub runners_finished: u32,
    /// The start instant given to every runner (unix microseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at_us: Option<u64>,
    /// Spread between the first and the last runner's real start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_skew_ms: Option<f64>,
    /// When the load started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the load ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Requests sent, over all runners.
    #[serde(default)]
    pub requests: u64,
    /// Requests that failed (a transport error, an unexpected status or a
    /// failed body check).
    #[serde(default)]
    pub errors: u64,
    /// Arrivals not sent because `maxInFlight` requests were in flight
    /// (open model).
    #[serde(default)]
    pub dropped: u64,
    /// Idempotent requests sent a second time because a kept-alive
    /// connection closed under them: each one more request the target may
    /// have seen (requests + retries is every request it may have seen).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
    /// Requests per second over the run.
    #[serde(default)]
    pub rps: f64,
    /// Errors as a percentage with two decimals, e.g. "0.25%".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<String>,
    /// Latency over all requests, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Latencies>,
    /// Per request name: the 20 (`status::MAX_NAMES`) with the most
    /// requests (ties by name), plus those a threshold names (at most 20
    /// more); `omitted` counts the others, the report has all.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_request: BTreeMap<String, RequestStatus>,
    /// Per named scenario: every request of its metrics. Listed as
    /// `byRequest` is (the 20 busiest, plus those thresholds name, at most
    /// 20 more), so the status stays small for any number of scenarios;
    /// `omitted.scenarios` counts the others, the report has all.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_scenario: BTreeMap<String, RequestStatus>,
    /// Per journey: its whole passes (first step's start to last step's
    /// end), not requests. Listed as `byScenario` is, by passes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_journey: BTreeMap<String, JourneyStatus>,
    /// How many request names, scenarios and journeys the status leaves
    /// out (the report ConfigMap has them); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted: Option<OmittedStatus>,
    /// Errors by kind (`connect`, `timeout`, `status`, `tls_unknown_ca`,
    /// `tls_refused`, ...): what went wrong, not only how often.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_kinds: BTreeMap<String, u64>,
    /// Connections the runners opened and how long setting them up took,
    /// apart from request latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionsStatus>,
    /// Virtual users of scenarios with an `onStart`: started, onStart
    /// failures, and users retired after failing it 3 times in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<UsersStatus>,
    /// What the results must be read with (an unverified target, retired
    /// users): at most 8, each at most 256 characters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Each threshold's outcome, in the plan's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Outcome>,
    /// Passed or Failed, once decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The records the runners use, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<RecordsStatus>,
    /// The ConfigMap holding the full report (merged histograms, intervals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// How `spec.teardown` went, once it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown: Option<TeardownStatus>,
    /// How far the current stage is (provisioning, starting, running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressStatus>,
    /// What the outputs (`spec.output`) delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputStatus>,
    /// The standard conditions (e.g. `Ready`, `Invalid`), with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// `status.teardown`: the teardown Job's outcome. Its requests are not in
/// the load's figures; it changes the verdict only with `failsTest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeardownStatus {
    /// Running, Succeeded or Failed.
    pub phase: String,
    /// The Job that runs it.
    pub job: String,
    /// Runs of the steps (one per record with `perRecord`), once known.
    #[serde(default)]
    pub runs: u64,
    /// Runs that failed or did not finish.
    #[serde(default)]
    pub failed: u64,
    /// The teardown's own requests and errors.
    #[serde(default)]
    pub requests: u64,
    /// Teardown runs that failed.
    #[serde(default)]
    pub errors: u64,
    /// Counts and the first failure (step, error kind, status), or why the
    /// Job could not report; never a URL, header or record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Whether a failed teardown failed the test (`teardown.failsTest`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fails_test: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionsStatus {
    /// Connections opened, over all runners.
    pub opened: u64,
    /// The TCP connect, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<SetupStatus>,
    /// The TLS handshake after it (https targets), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshake_ms: Option<SetupStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetupStatus {
    /// Median, in milliseconds.
    pub p50: f64,
    /// 95th percentile, in milliseconds.
    pub p95: f64,
    /// 99th percentile, in milliseconds.
    pub p99: f64,
    /// The longest, in milliseconds.
    pub max: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestStatus {
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Requests per second over the run.
    pub rps: f64,
    /// Median, in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile, in milliseconds.
    pub p95_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// The longest, in milliseconds.
    pub max_ms: f64,
}

/// `status.users`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsersStatus {
    /// Virtual users started.
    pub started: u64,
    /// Failed `onStart` attempts.
    pub on_start_failures: u64,
    /// Users retired after failing `onStart` every attempt.
    pub retired: u64,
}

/// One journey's whole passes; durations in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JourneyStatus {
    /// Passes through the journey, finished or not.
    pub passes: u64,
    /// Passes that stopped at a failed step.
    pub failed: u64,
    /// Median, in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile, in milliseconds.
    pub p95_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// The longest, in milliseconds.
    pub max_ms: f64,
}

/// Names left out of `byRequest`, `byScenario` and `byJourney`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OmittedStatus {
    /// Request names left out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requests: u64,
    /// Scenario names left out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scenarios: u64,
    /// Journey names left out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub journeys: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordsStatus {
    /// The Secret holding them (`NAME-records` of this or the reused LoadTest).
    pub secret: String,
    /// How many records it holds.
    #[serde(default)]
    pub count: u64,
    /// How many distinct records the runners used, counted exactly across
    /// runners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct_used: Option<u64>,
}

/// `spec.output`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// Push the run's series to a Prometheus remote-write receiver while
    /// it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_remote_write: Option<RemoteWrite>,
}

/// `status.output`: what the outputs delivered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_remote_write: Option<RemoteWriteStatus>,
}

/// Pushes accepted, samples sent, samples never delivered, the last error;
/// the URL without credentials.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteWriteStatus {
    /// The receiver, without credentials, query or fragment.
    pub url: String,
    /// Pushes the receiver accepted.
    #[serde(default)]
    pub pushes: u64,
    /// Samples sent.
    #[serde(default)]
    pub samples: u64,
    /// Samples never delivered (the receiver refused them or was
    /// unreachable past the retries).
    #[serde(default)]
    pub undelivered: u64,
    /// The last push error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `status.progress`: how far the current stage is (setup users, runners
/// ready, the run's elapsed time or iterations), updated at a bounded rate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressStatus {
    /// `setup`, `start` or `run`.
    pub stage: String,
    /// `users`, `runners`, `seconds` or `iterations`.
    pub unit: String,
    /// Units done so far.
    pub done: u64,
    /// Units that failed (e.g. setup users).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u64,
    /// Units in all, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Units per second over the recent past.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<f64>,
    /// Estimated seconds left at that rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<u64>,
    /// For people, e.g. "412/1000 users (3 failed), 7.1/s, about 1m23s left".
    pub text: String,
    /// When these counts were taken (RFC 3339): the next update's rate is
    /// measured from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The LoadTest kind for untyped access (the controllers watch and patch
/// untyped objects; see `loadtest::typed`).
pub fn loadtest_resource() -> kube::api::ApiResource {
    kube::api::ApiResource::erase::<LoadTest>(&())
}
