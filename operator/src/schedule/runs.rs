//! Pure builders between the ScheduledLoadTest and its runs: the LoadTest a
//! scheduled time creates, and a listed LoadTest read back as a `Run`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{
    ResourceExt,
    api::{ApiResource, DynamicObject},
};

use super::{crd::ScheduledLoadTest, history::Run, policy};
use crate::crd::LoadTestStatus;

/// On every run: the name of its ScheduledLoadTest (how runs are listed).
pub const LABEL_SLT: &str = "barrage.dev/scheduledloadtest";
/// On every run: the scheduled time it is for (RFC 3339, UTC).
pub const ANN_SCHEDULED: &str = "barrage.dev/scheduled-at";

pub fn loadtest_resource() -> ApiResource {
    crate::crd::loadtest_resource()
}

pub fn slt_resource() -> ApiResource {
    ApiResource::erase::<ScheduledLoadTest>(&())
}

/// The LoadTest for scheduled time `at`: the template's labels and
/// annotations plus ours, the ScheduledLoadTest as controlling owner, and
/// the template's spec as written (`raw_spec`, the object's own JSON, so
/// nothing is lost or reformatted by a round trip through our types).
pub fn run_object(
    slt: &ScheduledLoadTest,
    raw_spec: &serde_json::Value,
    at: Timestamp,
) -> DynamicObject {
    let name = policy::run_name(&slt.name_any(), at);
    let meta = &slt.spec.template.metadata;
    let mut labels: BTreeMap<String, String> = meta.labels.clone();
    labels.insert(LABEL_SLT.into(), slt.name_any());
    labels.insert(
        crate::pods::MANAGED_BY.0.into(),
        crate::pods::MANAGED_BY.1.into(),
    );
    let mut annotations = meta.annotations.clone();
    annotations.insert(ANN_SCHEDULED.into(), super::history::time(at).0.to_string());
    let owner = OwnerReference {
        api_version: "barrage.dev/v1alpha1".into(),
        kind: "ScheduledLoadTest".into(),
        name: slt.name_any(),
        uid: slt.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let mut obj = DynamicObject::new(&name, &loadtest_resource())
        .within(&slt.namespace().unwrap_or_default());
    obj.metadata = ObjectMeta {
        labels: Some(labels),
        annotations: Some(annotations),
        owner_references: Some(vec![owner]),
        ..obj.metadata
    };
    obj.data = serde_json::json!({ "spec": raw_spec });
    obj
}

/// Whether `obj` is controlled by the ScheduledLoadTest with `uid`.
pub fn is_run_of(obj: &DynamicObject, uid: &str) -> bool {
    obj.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// A listed LoadTest as a run. Its status is read leniently: a run whose
/// status does not fit our type still counts (as Pending, unfinished).
pub fn run_of(obj: &DynamicObject) -> Run {
    let name = obj.name_any();
    let scheduled = obj
        .annotations()
        .get(ANN_SCHEDULED)
        .and_then(|s| s.parse::<Timestamp>().ok())
        .or_else(|| policy::scheduled_of(&name))
        .or_else(|| obj.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or_default();
    let status: LoadTestStatus = obj
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    Run {
        name,
        uid: obj.uid(),
        scheduled,
        status,
        deleting: obj.metadata.deletion_timestamp.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{LoadTest, Phase};

    const SLT: &str = r#"{
        "apiVersion": "barrage.dev/v1alpha1", "kind": "ScheduledLoadTest",
        "metadata": {"name": "nightly", "namespace": "perf", "uid": "slt-uid"},
        "spec": {
            "schedule": "0 3 * * *",
            "template": {
                "metadata": {"labels": {"team": "checkout"}, "annotations": {"note": "soak"}},
                "spec": {"target": {"baseUrl": "http://10.0.0.1"}, "load": {"users": 2, "duration": "70s"},
                         "requests": [{"name": "a", "path": "/"}], "runners": 2}
            }
        }
    }"#;

    fn slt() -> (ScheduledLoadTest, serde_json::Value) {
        let v: serde_json::Value = serde_json::from_str(SLT).unwrap();
        (serde_json::from_value(v.clone()).unwrap(), v)
    }

    #[test]
    fn a_run_is_the_template_owned_and_labelled() {
        let (slt, v) = slt();
        let at: Timestamp = "2026-01-05T03:00:00Z".parse().unwrap();
        let raw = &v["spec"]["template"]["spec"];
        let run = run_object(&slt, raw, at);
        assert_eq!(run.name_any(), policy::run_name("nightly", at));
        assert_eq!(run.namespace().as_deref(), Some("perf"));
        assert_eq!(run.types.as_ref().unwrap().kind, "LoadTest");
        let labels = run.labels();
        assert_eq!(labels.get("team").map(String::as_str), Some("checkout"));
        assert_eq!(labels.get(LABEL_SLT).map(String::as_str), Some("nightly"));
        assert_eq!(
            run.annotations().get(ANN_SCHEDULED).map(String::as_str),
            Some("2026-01-05T03:00:00Z")
        );
        assert_eq!(
            run.annotations().get("note").map(String::as_str),
            Some("soak")
        );
        let owner = &run.owner_references()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str(),
                owner.controller
            ),
            ("ScheduledLoadTest", "nightly", "slt-uid", Some(true))
        );
        // The spec exactly as written in the template.
        assert_eq!(&run.data["spec"], raw);
        // And it reads back as a LoadTest.
        let lt: LoadTest = serde_json::from_value(serde_json::to_value(&run).unwrap()).unwrap();
        assert_eq!(lt.spec, slt.spec.template.spec);
        assert!(is_run_of(&run, "slt-uid"));
        assert!(!is_run_of(&run, "other"));
    }

    #[test]
    fn a_listed_run_reads_back() {
        let (slt, v) = slt();
        let at: Timestamp = "2026-01-05T03:00:00Z".parse().unwrap();
        let mut obj = run_object(&slt, &v["spec"]["template"]["spec"], at);
        obj.data["status"] =
            serde_json::json!({"phase": "Succeeded", "rps": 19.9, "verdict": "Passed"});
        let r = run_of(&obj);
        assert_eq!(r.scheduled, at);
        assert_eq!(r.status.phase, Phase::Succeeded);
        assert_eq!(r.status.rps, 19.9);
        assert!(!r.is_active());
        // A status that does not fit still lists the run, as unfinished; the
        // scheduled time then comes from the name.
        obj.data["status"] = serde_json::json!({"phase": "Exploded"});
        obj.metadata.annotations = None;
        let r = run_of(&obj);
        assert_eq!((r.status.phase, r.scheduled), (Phase::Pending, at));
        assert!(r.is_active());
        obj.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at));
        assert!(!run_of(&obj).is_active());
    }
}
