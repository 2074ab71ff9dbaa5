//! Kubernetes manifests of Barrage (LoadTest, ScheduledLoadTest) checked
//! without a cluster: the one implementation of the operator's validation
//! beyond the CRD schema. The operator builds the plain views here from
//! its typed objects (`barrage_operator::validate`), and its admission
//! webhook answers with these errors; `barrage-runner validate` reads the
//! same views from files, so both give the same verdict and errors.
//!
//! `loadtest` checks a LoadTest spec, `schedule` a ScheduledLoadTest,
//! `output` the remote-write output (its types live here for that),
//! `refs` Secret and ConfigMap references, `cron` the schedule syntax and
//! time zones.

use serde::de::DeserializeOwned;

use crate::error::Error;

pub mod cron;
pub mod loadtest;
pub mod output;
pub mod refs;
pub mod schedule;

pub use loadtest::{LoadTestView, validate_load_test};
pub use schedule::{ScheduledView, validate_scheduled};

/// What a document is, as `validate` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A plan alone (no `kind`).
    Plan,
    LoadTest,
    ScheduledLoadTest,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Plan => "Plan",
            Kind::LoadTest => "LoadTest",
            Kind::ScheduledLoadTest => "ScheduledLoadTest",
        }
    }
}

/// The kind and name of a manifest document; an error for a `kind` that
/// is not Barrage's or a wrong `apiVersion`.
pub fn kind_of(doc: &serde_json::Value) -> Result<(Kind, Option<String>), Error> {
    let name = doc
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .map(str::to_string);
    if doc.get("kind").is_none() && doc.get("apiVersion").is_none() {
        return Ok((Kind::Plan, None));
    }
    let kind = match doc.get("kind").and_then(|k| k.as_str()) {
        Some("LoadTest") => Kind::LoadTest,
        Some("ScheduledLoadTest") => Kind::ScheduledLoadTest,
        Some(k) => {
            return Err(Error::invalid(
                "kind",
                format!("{k:?} is not LoadTest or ScheduledLoadTest"),
            ));
        }
        None => return Err(Error::invalid("kind", "is missing")),
    };
    match doc.get("apiVersion").and_then(|v| v.as_str()) {
        Some(API_VERSION) => {}
        Some(v) => {
            return Err(Error::invalid(
                "apiVersion",
                format!("{v:?} is not {API_VERSION}"),
            ));
        }
        None => return Err(Error::invalid("apiVersion", "is missing")),
    }
    Ok((kind, name))
}

/// The API version of Barrage's kinds.
pub const API_VERSION: &str = "barrage.dev/v1alpha1";

/// Every error of one LoadTest or ScheduledLoadTest manifest (already
/// parsed), as the operator's `validate_all` gives them; a spec that does
/// not fit its type gives the one field that does not.
pub fn check_manifest(kind: Kind, name: &str, doc: &serde_json::Value) -> Vec<Error> {
    let spec = doc.get("spec").cloned().unwrap_or(serde_json::Value::Null);
    if spec.is_null() {
        return vec![Error::invalid("spec", "is missing")];
    }
    match kind {
        Kind::Plan => vec![],
        Kind::LoadTest => match view::<LoadTestView>(&spec, "spec") {
            Ok(v) => validate_load_test(name, &v),
            Err(e) => vec![plan_error(&spec, "spec").unwrap_or(e)],
        },
        Kind::ScheduledLoadTest => match view::<ScheduledView>(&spec, "spec") {
            Ok(v) => match validate_scheduled(name, &v) {
                Ok(_) => vec![],
                Err(e) => e,
            },
            Err(e) => {
                let template = &spec["template"]["spec"];
                vec![plan_error(template, "spec.template.spec").unwrap_or(e)]
            }
        },
    }
}

/// The spec read into its view; the error names the field that does not fit.
fn view<T: DeserializeOwned>(spec: &serde_json::Value, at: &str) -> Result<T, Error> {
    serde_path_to_error::deserialize::<_, T>(spec.clone()).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            at.to_string()
        } else {
            format!("{at}.{path}")
        };
        Error::invalid(field, e.into_inner().to_string())
    })
}

/// The plan is flattened into the spec, which hides the path inside it;
/// the plan reader names the field (as the operator's `typed` does).
fn plan_error(spec: &serde_json::Value, at: &str) -> Option<Error> {
    let doc = serde_json::json!({"kind": "LoadTest", "spec": spec});
    match crate::planfile::from_str(&doc.to_string(), Default::default()) {
        Err(Error::Invalid { field, message }) => {
            let field = match field.strip_prefix("spec") {
                Some(rest) => format!("{at}{rest}"),
                None => field,
            };
            Some(Error::Invalid { field, message })
        }
        _ => None,
    }
}
