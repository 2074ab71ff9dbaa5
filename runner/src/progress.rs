//! How far a long stage is (provisioning users, starting runners, the run
//! itself), in one shape for the status, `kubectl barrage watch` and the
//! CLI's progress bar.
//!
//! FOUNDATION (session 15): the `progress` work fills in the line format
//! (what `barrage-runner setup` prints and the operator reads from the setup
//! pod's log) and the rate/estimate arithmetic.

use serde::{Deserialize, Serialize};

/// Progress of one stage. `done` counts finished units (failed ones too).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// `setup`, `start` or `run`.
    pub stage: String,
    /// `users`, `runners`, `seconds` or `iterations`.
    pub unit: String,
    pub done: u64,
    /// Of `done`, how many failed (setup users).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u64,
    /// How many there are in all, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
