//! Checks a LoadTest spec beyond what the CRD schema can: the same plan
//! compilation a runner does (templates, thresholds, durations, weights),
//! plus the cluster-only fields. Runs before anything is created, and in
//! the admission webhook.
//!
//! The checks themselves live in the runner crate
//! (`barrage_runner::manifest`), over a plain view of the spec that is
//! built here from the typed one, so `barrage-runner validate` gives the
//! very same answer without a cluster.

use barrage_runner::manifest::{LoadTestView, validate_load_test};

use crate::{
    crd::LoadTestSpec,
    error::{Error, Result},
};

pub use barrage_runner::manifest::loadtest::{MAX_NAME, MAX_RUNNERS};

/// The plain view of a typed spec the runner's checks read: the same
/// JSON, read back.
pub fn view(spec: &LoadTestSpec) -> Result<LoadTestView> {
    let v = serde_json::to_value(spec).map_err(|e| Error::Other(e.to_string()))?;
    serde_json::from_value(v).map_err(|e| Error::Other(format!("spec view: {e}")))
}

/// Every error in a LoadTest spec, each naming its field (`Error::Invalid`),
/// in field order, each once, at most 100 (a last `(more)` says how many
/// more); empty when the spec is valid. What the admission webhook
/// answers and `barrage-runner validate` prints: a pull request sees all of
/// its mistakes at once, not one per push.
pub fn validate_all(name: &str, spec: &LoadTestSpec) -> Vec<Error> {
    match view(spec) {
        Ok(v) => validate_load_test(name, &v)
            .into_iter()
            .map(Error::from)
            .collect(),
        Err(e) => vec![e],
    }
}

/// The first of [`validate_all`]'s errors, for the reconciler.
pub fn validate(name: &str, spec: &LoadTestSpec) -> Result<()> {
    match validate_all(name, spec).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod corpus;
