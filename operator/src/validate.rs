//! Checks a LoadTest spec beyond what the CRD schema can: the same plan
//! compilation a runner does (templates, thresholds, durations, weights),
//! plus the cluster-only fields. Runs before anything is created.

use std::{path::Path, time::Duration};

use barrage_runner::compile::{Slot, compile_with_env};

use crate::{
    crd::LoadTestSpec,
    error::{Error, Result},
};

/// Kubernetes label values (which carry the LoadTest's name) are at most 63
/// characters; "-runner-NNN" must still fit in a pod name.
pub const MAX_NAME: usize = 52;
pub const MAX_RUNNERS: u32 = 1000;
const MIN_COLLECT: Duration = Duration::from_millis(500);

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

pub fn validate(name: &str, spec: &LoadTestSpec) -> Result<()> {
    if name.len() > MAX_NAME {
        return Err(invalid(
            "metadata.name",
            format!(
                "is {} characters; at most {MAX_NAME} for a LoadTest",
                name.len()
            ),
        ));
    }
    if spec.runners == 0 {
        return Err(invalid("spec.runners", "must be at least 1"));
    }
    if spec.runners > MAX_RUNNERS {
        return Err(invalid(
            "spec.runners",
            format!("{} is more than {MAX_RUNNERS}", spec.runners),
        ));
    }
    if spec.plan.data.is_some() {
        return Err(invalid(
            "spec.data",
            "data files are not available to runner pods yet (they come with provisioning); remove `data` or run the plan locally",
        ));
    }
    if let Some(p) = &spec.runner.image_pull_policy
        && !matches!(p.as_str(), "Always" | "IfNotPresent" | "Never")
    {
        return Err(invalid(
            "spec.runner.imagePullPolicy",
            format!("{p:?} is not Always, IfNotPresent or Never"),
        ));
    }
    if let Some(d) = spec.collect_interval
        && d.0 < MIN_COLLECT
    {
        return Err(invalid("spec.collectInterval", "must be at least 500ms"));
    }
    if let Some(s) = &spec.setup
        && s.image.trim().is_empty()
    {
        return Err(invalid("spec.setup.image", "is empty"));
    }
    // `{{ env.X }}` is resolved inside the runner pod, from its env: any name
    // is acceptable here.
    let any_env = |_: &str| Some(String::new());
    compile_with_env(
        &spec.plan,
        Slot {
            index: 0,
            count: spec.runners,
        },
        Path::new(""),
        "spec.",
        &any_env,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> LoadTestSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const OK: &str = "runners: 3\ntarget: {baseUrl: 'http://10.0.0.1:8080', headers: {k: '{{ env.KEY }}'}}\nload: {users: 6, duration: 10s}\nrequests: [{name: a, path: /}]\nthresholds: ['p(95) < 10ms']";

    #[test]
    fn a_good_spec_passes_with_env_left_to_the_pod() {
        validate("t", &spec(OK)).unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (OK.replace("runners: 3", "runners: 0"), "spec.runners"),
            (
                OK.replace("p(95) < 10ms", "p(95) < ten"),
                "spec.thresholds[0]",
            ),
            (
                OK.replace("duration: 10s", "duration: 0s"),
                "spec.load.duration",
            ),
            (OK.replace("path: /", "path: x"), "spec.requests[0].path"),
            (
                format!("{OK}\ncollectInterval: 10ms"),
                "spec.collectInterval",
            ),
            (
                format!("{OK}\nrunner: {{imagePullPolicy: Sometimes}}"),
                "spec.runner.imagePullPolicy",
            ),
            (format!("{OK}\ndata: {{file: users.json}}"), "spec.data"),
        ];
        for (yaml, field) in cases {
            match validate("t", &spec(&yaml)) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "{yaml}"),
                other => panic!("{yaml}: expected an error on {field}, got {other:?}"),
            }
        }
        match validate(&"x".repeat(60), &spec(OK)) {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "metadata.name"),
            other => panic!("{other:?}"),
        }
    }
}
