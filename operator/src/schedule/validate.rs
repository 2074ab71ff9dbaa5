//! From the object the watch delivers to a checked ScheduledLoadTest: the
//! conversion to our types (naming the field that does not fit), then what
//! the schema cannot check: the schedule, the time zone, the template's
//! LoadTest spec (the runner's own plan compiler), name lengths.

use barrage_runner::manifest::{ScheduledView, validate_scheduled};
use kube::api::DynamicObject;

use super::crd::ScheduledLoadTest;
use crate::error::{Error, Result};

/// The ScheduledLoadTest in `obj`, or the field that does not fit its type.
/// Untyped watch, typed here, for the reason `controller::typed` gives.
pub fn typed(obj: &DynamicObject) -> Result<ScheduledLoadTest> {
    let v = serde_json::to_value(obj).map_err(|e| Error::Other(e.to_string()))?;
    serde_path_to_error::deserialize::<_, ScheduledLoadTest>(v.clone()).map_err(|e| {
        // The plan is flattened into the template's spec, which hides the
        // path inside it; the runner's plan reader names the field.
        let template =
            serde_json::json!({"kind": "LoadTest", "spec": v["spec"]["template"]["spec"]});
        let path = e.path().to_string();
        if path.starts_with("spec.template.spec")
            && let Err(barrage_runner::Error::Invalid { field, message }) =
                barrage_runner::planfile::from_str(&template.to_string(), Default::default())
        {
            return Error::Invalid {
                field: in_template(&field),
                message,
            };
        }
        Error::Invalid {
            field: path,
            message: e.into_inner().to_string(),
        }
    })
}

pub use barrage_runner::manifest::schedule::{Checked, MAX_NAME, in_template};

/// The plain view of a typed ScheduledLoadTest the runner's checks read.
fn view(slt: &ScheduledLoadTest) -> Result<ScheduledView> {
    let v = serde_json::to_value(&slt.spec).map_err(|e| Error::Other(e.to_string()))?;
    serde_json::from_value(v).map_err(|e| Error::Other(format!("spec view: {e}")))
}

fn checked(slt: &ScheduledLoadTest) -> std::result::Result<Checked, Vec<Error>> {
    let name = slt.metadata.name.as_deref().unwrap_or_default();
    let v = view(slt).map_err(|e| vec![e])?;
    validate_scheduled(name, &v).map_err(|e| e.into_iter().map(Error::from).collect())
}

/// Every error in a ScheduledLoadTest (schedule, time zone, deadline and its
/// template as a LoadTest, fields named `spec.template.spec.…`); empty when
/// valid. The checks are the runner crate's (`barrage_runner::manifest`),
/// shared with `barrage-runner validate`. See `crate::validate::validate_all`.
pub fn validate_all(slt: &ScheduledLoadTest) -> Vec<Error> {
    checked(slt).err().unwrap_or_default()
}

/// The checked schedule, or the first of [`validate_all`]'s errors.
pub fn validate(slt: &ScheduledLoadTest) -> Result<Checked> {
    checked(slt).map_err(|e| {
        e.into_iter()
            .next()
            .unwrap_or_else(|| Error::Other("no error collected".into()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;
    use std::time::Duration;

    fn obj(spec: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "barrage.dev/v1alpha1", "kind": "ScheduledLoadTest",
            "metadata": {"name": "nightly", "namespace": "n"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn spec() -> serde_json::Value {
        serde_json::json!({
            "schedule": "*/5 * * * *",
            "timeZone": "Europe/Berlin",
            "template": {"spec": {
                "target": {"baseUrl": "http://10.0.0.1"},
                "load": {"users": 1, "duration": "10s"},
                "requests": [{"name": "a", "path": "/"}]
            }}
        })
    }

    fn field_of(r: Result<impl std::fmt::Debug>) -> (String, String) {
        match r {
            Err(Error::Invalid { field, message }) => (field, message),
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    fn check(spec: serde_json::Value) -> Result<Checked> {
        validate(&typed(&obj(spec))?)
    }

    #[test]
    fn a_good_spec_passes_with_defaults() {
        let slt = typed(&obj(spec())).unwrap();
        assert_eq!(slt.spec.successful_runs_history_limit, 3);
        assert_eq!(slt.spec.failed_runs_history_limit, 1);
        assert!(!slt.spec.suspend);
        assert_eq!(
            slt.spec.concurrency_policy,
            super::super::crd::ConcurrencyPolicy::Allow
        );
        let c = validate(&slt).unwrap();
        assert_eq!(c.tz.iana_name(), Some("Europe/Berlin"));
        assert_eq!(c.deadline, None);
        let mut s = spec();
        s.as_object_mut().unwrap().remove("timeZone");
        assert_eq!(
            check(s).unwrap().tz,
            TimeZone::UTC,
            "the default zone is UTC"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let with = |path: &[&str], v: serde_json::Value| {
            let mut s = spec();
            let mut cur = &mut s;
            for p in &path[..path.len() - 1] {
                cur = &mut cur[*p];
            }
            cur[path[path.len() - 1]] = v;
            s
        };
        let (f, m) = field_of(check(with(&["schedule"], "0 9 * * mond".into())));
        assert_eq!(f, "spec.schedule");
        assert!(m.contains("field 5 (day of week) at column 9"), "{m}");
        let (f, m) = field_of(check(with(&["timeZone"], "Europe/Berlinn".into())));
        assert_eq!(f, "spec.timeZone");
        assert!(m.contains("Europe/Berlinn"), "{m}");
        let (f, _) = field_of(check(with(&["startingDeadlineSeconds"], (-5).into())));
        assert_eq!(f, "spec.startingDeadlineSeconds");
        let (f, _) = field_of(check(with(&["concurrencyPolicy"], "Sometimes".into())));
        assert_eq!(f, "spec.concurrencyPolicy");
        let (f, _) = field_of(check(with(&["template", "spec", "runners"], 0.into())));
        assert_eq!(f, "spec.template.spec.runners");
        let (f, m) = field_of(check(with(
            &["template", "spec", "load", "duration"],
            "10 parsecs".into(),
        )));
        assert_eq!(f, "spec.template.spec.load.duration");
        assert!(m.contains("unknown unit"), "{m}");
        let (f, _) = field_of(check(with(
            &["template", "spec", "requests"],
            serde_json::json!([{"name": "a", "path": "x"}]),
        )));
        assert_eq!(f, "spec.template.spec.requests[0].path");
        let mut long = obj(spec());
        long.metadata.name = Some("x".repeat(64));
        let (f, _) = field_of(validate(&typed(&long).unwrap()));
        assert_eq!(f, "metadata.name");
        // The longest name that fits still gives runs that fit.
        long.metadata.name = Some("x".repeat(63));
        validate(&typed(&long).unwrap()).unwrap();
    }

    #[test]
    fn the_example_manifest_is_valid() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/scheduled-soak.yaml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        let slt = typed(&serde_json::from_value(v).unwrap()).unwrap();
        let c = validate(&slt).unwrap();
        assert_eq!(c.tz.iana_name(), Some("Europe/Berlin"));
        assert_eq!(c.deadline, Some(Duration::from_secs(600)));
        assert_eq!(
            slt.spec.concurrency_policy,
            super::super::crd::ConcurrencyPolicy::Forbid
        );
    }
}
