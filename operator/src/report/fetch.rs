//! Reads a LoadTest and its report ConfigMap, as kubectl would: the
//! kubeconfig from KUBECONFIG (or ~/.kube/config, or in-cluster), its current
//! context (or `--context`), and that context's namespace unless `-n` says
//! another.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client, Config, ResourceExt,
    config::{KubeConfigOptions, Kubeconfig},
};

use super::{ReportState, Run, parse_report};
use crate::{
    crd::LoadTest,
    error::{Error, Result},
};

/// A client and the namespace to use when none is given.
pub async fn connect(context: Option<&str>) -> Result<(Client, String)> {
    let config = match context {
        None => Config::infer()
            .await
            .map_err(|e| Error::Other(format!("no Kubernetes configuration: {e}")))?,
        Some(ctx) => {
            let opts = KubeConfigOptions {
                context: Some(ctx.to_string()),
                ..Default::default()
            };
            Config::from_custom_kubeconfig(Kubeconfig::read().map_err(kubeconfig)?, &opts)
                .await
                .map_err(kubeconfig)?
        }
    };
    let ns = config.default_namespace.clone();
    let client = Client::try_from(config)?;
    Ok((client, ns))
}

fn kubeconfig(e: kube::config::KubeconfigError) -> Error {
    Error::Other(format!("kubeconfig: {e}"))
}

/// The LoadTest `ns/name` and, once it has finished, its report. Only a
/// missing LoadTest (or an API failure reading it) is an error: a missing or
/// broken report is a state of the run, shown to the reader.
pub async fn run(client: &Client, ns: &str, name: &str) -> Result<Run> {
    let lts: Api<LoadTest> = Api::namespaced(client.clone(), ns);
    let lt = lts
        .get_opt(name)
        .await
        .map_err(|e| api_error(e, ns, name))?;
    let Some(lt) = lt else {
        return Err(Error::Other(format!(
            "LoadTest {name} not found in namespace {ns} (kubectl get loadtests -n {ns} lists them)"
        )));
    };
    let status = lt.status.clone();
    let finished = status.as_ref().is_some_and(|s| s.phase.is_terminal());
    let report = match status.as_ref().and_then(|s| s.report.clone()) {
        None if finished => ReportState::None,
        None => ReportState::NotYet,
        Some(cm) => {
            let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
            match cms.get_opt(&cm).await {
                Ok(None) => ReportState::Missing { config_map: cm },
                Ok(Some(c)) => from_config_map(cm, &c),
                Err(e) => ReportState::Unreadable {
                    config_map: cm,
                    reason: e.to_string(),
                },
            }
        }
    };
    Ok(Run {
        namespace: ns.to_string(),
        name: lt.name_any(),
        runners: lt.spec.runners,
        status,
        report,
    })
}

fn from_config_map(name: String, cm: &ConfigMap) -> ReportState {
    match cm.data.as_ref().and_then(|d| d.get("report.json")) {
        None => ReportState::Unreadable {
            config_map: name,
            reason: "it has no report.json key".into(),
        },
        Some(json) => match parse_report(json) {
            Ok(r) => ReportState::Loaded(Box::new(r)),
            Err(reason) => ReportState::Unreadable {
                config_map: name,
                reason,
            },
        },
    }
}

/// A refusal says who may not read what; other errors pass through.
fn api_error(e: kube::Error, ns: &str, name: &str) -> Error {
    match &e {
        kube::Error::Api(s) if s.code == 403 => Error::Other(format!(
            "not allowed to read LoadTest {name} in namespace {ns}: {}",
            s.message
        )),
        _ => Error::Kube(e),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn config_map_contents_become_report_states() {
        let cm = |data: Option<(&str, String)>| ConfigMap {
            data: data.map(|(k, v)| BTreeMap::from([(k.to_string(), v)])),
            ..Default::default()
        };
        let good =
            serde_json::to_string(super::super::testdata::typical("a").loaded().unwrap()).unwrap();
        assert!(matches!(
            from_config_map("x".into(), &cm(Some(("report.json", good)))),
            ReportState::Loaded(_)
        ));
        match from_config_map("x".into(), &cm(None)) {
            ReportState::Unreadable { reason, .. } => assert!(reason.contains("no report.json")),
            other => panic!("{other:?}"),
        }
        match from_config_map(
            "x".into(),
            &cm(Some(("report.json", "{\"version\":1".into()))),
        ) {
            ReportState::Unreadable { config_map, reason } => {
                assert_eq!(config_map, "x");
                assert!(reason.contains("not a report"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
