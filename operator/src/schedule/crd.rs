//! The `ScheduledLoadTest` custom resource (barrage.dev/v1alpha1): a
//! LoadTest template run on a cron schedule, modelled on CronJob. Its status
//! keeps a short history of the runs' results, so a trend across nights
//! shows in `kubectl get slt` without the old LoadTests.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crd::LoadTestSpec;

/// A LoadTest run on a schedule: each due time creates a run from
/// `template`, as a CronJob creates Jobs.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "barrage.dev",
    version = "v1alpha1",
    kind = "ScheduledLoadTest",
    namespaced,
    shortname = "slt",
    status = "ScheduledLoadTestStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"TZ","type":"string","jsonPath":".spec.timeZone","priority":1}"#,
    printcolumn = r#"{"name":"Suspend","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Active","type":"integer","jsonPath":".status.activeCount"}"#,
    printcolumn = r#"{"name":"Last Schedule","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"Last Verdict","type":"string","jsonPath":".status.lastVerdict"}"#,
    printcolumn = r#"{"name":"P95(ms) Recent","type":"string","jsonPath":".status.recentP95"}"#,
    printcolumn = r#"{"name":"RPS Recent","type":"string","jsonPath":".status.recentRps","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledLoadTestSpec {
    /// When to run, as a 5-field cron expression (minute hour day-of-month
    /// month day-of-week) or a macro such as @daily.
    pub schedule: String,
    /// The IANA time zone the schedule is read in, e.g. Europe/Berlin.
    /// Default UTC (not the operator's zone, unlike CronJob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Stops new runs; runs already started continue. Default false.
    #[serde(default)]
    pub suspend: bool,
    /// What to do when a run is due while an earlier one is still active.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// A run that could not start within this many seconds of its scheduled
    /// time is skipped. Default: no deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,
    /// Finished runs with phase Succeeded kept as LoadTests. Default 3.
    #[serde(default = "three")]
    pub successful_runs_history_limit: u32,
    /// Finished runs with phase Failed or Aborted kept as LoadTests. Default 1.
    #[serde(default = "one")]
    pub failed_runs_history_limit: u32,
    /// The LoadTest each run creates.
    pub template: LoadTestTemplate,
}

fn three() -> u32 {
    3
}
fn one() -> u32 {
    1
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Runs may overlap.
    #[default]
    Allow,
    /// A run due while another is active is skipped (and recorded as such).
    Forbid,
    /// The active runs are deleted and the new one started.
    Replace,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadTestTemplate {
    #[serde(default)]
    pub metadata: TemplateMeta,
    pub spec: LoadTestSpec,
}

/// Labels and annotations copied onto every run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMeta {
    /// Labels copied onto every run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations copied onto every run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What the schedule has done: its runs, the latest results, what was skipped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledLoadTestStatus {
    /// The generation of the spec this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The scheduled time of the latest run created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the latest Succeeded run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// The latest scheduled time that was skipped (Forbid, or past the
    /// starting deadline), and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_skipped_time: Option<Time>,
    /// Why the latest skipped time was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_skipped_reason: Option<String>,
    /// Scheduled times skipped so far.
    #[serde(default)]
    pub skipped_runs: u64,
    /// The next time a run is due (while not suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// The runs that have not finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<RunRef>,
    /// How many runs are active.
    #[serde(default)]
    pub active_count: u32,
    /// The latest runs, newest first (at most 10); kept
    /// after the history limits delete their LoadTests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RunRecord>,
    /// The verdict of the latest finished run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verdict: Option<String>,
    /// p95 latency (ms) of the latest finished runs, newest first, a failed
    /// verdict marked with "!", e.g. "41.2 39.8 88.0!".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_p95: Option<String>,
    /// req/s of the latest finished runs, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_rps: Option<String>,
    /// The standard conditions (e.g. `Ready`, `Invalid`), with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A reference to a run (a LoadTest in the same namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRef {
    /// The run's LoadTest name.
    pub name: String,
    /// The run's LoadTest UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// One run as the history keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// The run's LoadTest name.
    pub name: String,
    /// The time the run was scheduled for.
    pub scheduled_time: Time,
    /// The LoadTest's phase, or Deleted / Replaced once it is gone before
    /// finishing.
    pub phase: String,
    /// The run's verdict (Passed, Failed ...), once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// Requests per second over the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rps: Option<f64>,
    /// 95th percentile latency, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    /// The share of failed requests, e.g. "0.52%".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<String>,
    /// When the run finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}
