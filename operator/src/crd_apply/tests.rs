use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionCondition, CustomResourceDefinitionStatus,
};
use kube::CustomResourceExt;
use serde_json::json;

use super::*;
use crate::{
    crd::LoadTest,
    fixtures::{Call, Reply, Scenario},
    schedule::ScheduledLoadTest,
};

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

fn with_conditions(
    mut crd: CustomResourceDefinition,
    conds: &[(&str, &str, &str)],
) -> CustomResourceDefinition {
    crd.status = Some(CustomResourceDefinitionStatus {
        conditions: Some(
            conds
                .iter()
                .map(|(t, s, m)| CustomResourceDefinitionCondition {
                    type_: t.to_string(),
                    status: s.to_string(),
                    message: Some(m.to_string()),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    });
    crd
}

fn apply_call(name: &str) -> Call {
    Call::patch(format!("{CRDS}/{name}"))
        .query("fieldManager", FIELD_MANAGER)
        .query("force", "true")
        .includes(json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {"group": "barrage.dev"}
        }))
}

#[test]
fn the_compiled_crds_are_the_files_in_crds() {
    // What the hook applies is exactly what ships in crds/ (and the chart's copy).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap();
        let file = match name.as_str() {
            "loadtests.barrage.dev" => "loadtest.yaml",
            "scheduledloadtests.barrage.dev" => "scheduledloadtest.yaml",
            other => panic!("a CRD crds/ does not hold: {other}"),
        };
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let on_disk: CustomResourceDefinition = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            on_disk, crd,
            "crds/{file} differs from the compiled CRD: run crdgen"
        );
    }
}

#[test]
fn established_reads_the_condition_and_says_why_not() {
    let crd = LoadTest::crd();
    assert!(!established(&crd));
    assert_eq!(why_not_established(&crd), "no conditions yet");
    let clash = with_conditions(
        LoadTest::crd(),
        &[
            ("NamesAccepted", "False", "\"lt\" is already in use"),
            ("Established", "False", "not all names are accepted"),
        ],
    );
    assert!(!established(&clash));
    assert_eq!(
        why_not_established(&clash),
        "NamesAccepted=False (\"lt\" is already in use), Established=False (not all names are accepted)"
    );
    assert!(established(&with_conditions(
        LoadTest::crd(),
        &[("Established", "True", "")]
    )));
}

#[tokio::test]
async fn every_crd_is_applied_then_waited_for() {
    let ok = |crd| Reply::ok(&with_conditions(crd, &[("Established", "True", "")]));
    let (client, mut server) = Scenario::new("crds apply")
        .expect(apply_call("loadtests.barrage.dev"))
        .expect(apply_call("scheduledloadtests.barrage.dev"))
        .expect(Call::get(format!("{CRDS}/loadtests.barrage.dev")).reply(ok(LoadTest::crd())))
        // Not yet served: read again.
        .expect(
            Call::get(format!("{CRDS}/scheduledloadtests.barrage.dev"))
                .reply(Reply::ok(&ScheduledLoadTest::crd())),
        )
        .expect(
            Call::get(format!("{CRDS}/scheduledloadtests.barrage.dev"))
                .reply(ok(ScheduledLoadTest::crd())),
        )
        // Generous: the CRDs are large JSON bodies, slow in debug builds on a busy machine.
        .timeout(Duration::from_secs(60))
        .serve();
    let names = server
        .run(apply(client, Duration::from_secs(3)))
        .await
        .unwrap();
    assert_eq!(
        names,
        ["loadtests.barrage.dev", "scheduledloadtests.barrage.dev"]
    );
}

#[tokio::test]
async fn a_crd_never_established_is_an_error_naming_it() {
    let clash = with_conditions(
        ScheduledLoadTest::crd(),
        &[("NamesAccepted", "False", "slt is in use")],
    );
    let (client, mut server) = Scenario::new("crds apply, never established")
        .expect(apply_call("loadtests.barrage.dev"))
        .expect(apply_call("scheduledloadtests.barrage.dev"))
        .expect(
            Call::get(format!("{CRDS}/loadtests.barrage.dev")).reply(Reply::ok(&with_conditions(
                LoadTest::crd(),
                &[("Established", "True", "")],
            ))),
        )
        .expect(
            Call::get(format!("{CRDS}/scheduledloadtests.barrage.dev")).reply(Reply::ok(&clash)),
        )
        .timeout(Duration::from_secs(60))
        .serve();
    let err = server.run(apply(client, Duration::ZERO)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "CRD scheduledloadtests.barrage.dev is not Established after 0s: NamesAccepted=False (slt is in use)"
    );
}

#[tokio::test]
async fn a_refused_apply_is_the_api_servers_error() {
    let (client, mut server) = Scenario::new("crds apply refused")
        .expect(apply_call("loadtests.barrage.dev").reply(Reply::error(
            403,
            "Forbidden",
            "cannot patch",
        )))
        .serve();
    let err = server
        .run(apply(client, Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert_eq!(err.category(), "kube");
    assert!(err.to_string().contains("cannot patch"), "{err}");
}
