//! Named scenarios (k6's `scenarios`, Locust's user classes), the journeys a
//! virtual user runs once at its start and end, and the teardown after the
//! load.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DataSpec, Load, RequestSpec, StepSpec};
use crate::duration::HumanDuration;

/// One named scenario: its own executor and level (or a weighted share of
/// the top-level `load`), its own mix, per-user journeys and data selection.
/// All scenarios of a test start at the same instant (plus their
/// `startTime`) and run in parallel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScenarioSpec {
    /// Locust-style user types: this scenario's share of the top-level
    /// `load` (its users, or its rate, and its duration or stages), split
    /// by weight among the weighted scenarios (fractions allowed: 10, 1,
    /// 0.5). Its own `load` may then set only thinkTime and pacing.
    /// Without a weight the scenario's own `load` says everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// The scenario's executor and level (as the top-level `load`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<Load>,
    /// The scenario's weighted mix of requests and journeys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestSpec>,
    /// Run once by each virtual user when it starts (log in, fetch a
    /// token; closed model only); its vars and captures are
    /// `{{ user.NAME }}` for the user's whole life. A failed onStart is
    /// counted, then retried after the think time, at most 3 attempts in a
    /// row; then the user is retired for the rest of the test (counted in
    /// the results' users, and warned about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_start: Option<JourneySpec>,
    /// Run once by each virtual user when it ends (log out): at the end of
    /// the test (within the graceful stop), or when a ramp down parks it
    /// (brought back, it starts again with a fresh onStart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_stop: Option<JourneySpec>,
    /// When the scenario starts, from the test's start. Default 0s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<HumanDuration>,
    /// How this scenario picks from the test's records (`select`, `repeat`,
    /// `onExhausted`; the records themselves are the top-level `data`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataSpec>,
}

/// A sequence of steps with its own variables: a virtual user's `onStart`
/// or `onStop`, or a teardown.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JourneySpec {
    /// Rendered once before the steps, for `{{ vars.NAME }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// The journey's steps, in order: requests (which may capture values
    /// for later steps), pauses (`sleep`) and `repeat` blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepSpec>,
}

/// Steps run once after the load ends (in a cluster as a Job, locally
/// inline), with the test's records available: for example to delete the
/// users that the setup created.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeardownSpec {
    /// Rendered once per run of the steps, for `{{ vars.NAME }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// The teardown's steps, in order, as a journey's (e.g. a DELETE of each
    /// user the setup created).
    pub steps: Vec<StepSpec>,
    /// Run the steps once for every record (`{{ record.FIELD }}`) instead
    /// of once in all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_record: bool,
    /// How many runs of the steps go at once with `perRecord`. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// A failed teardown fails the test too. Default false: its outcome is
    /// reported apart and the load's verdict stands.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fails_test: bool,
}
