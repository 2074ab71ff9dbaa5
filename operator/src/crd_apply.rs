//! `barrage-operator crds apply`: the CRDs compiled into this binary (the
//! same text `crdgen` writes to crds/) applied server-side, then waited on
//! until the API server serves them (condition Established).
//!
//! Helm installs a chart's crds/ once and never upgrades them; the chart's
//! opt-in upgrade hook (`crds.upgradeHook`) runs this before each install and
//! upgrade, so the CRDs always match the operator that is about to run. The
//! field manager is the one docs/helm.md gives for `kubectl apply
//! --server-side`, so both ways of upgrading own the same fields; `force`
//! takes over fields another manager (Helm's first install, a client-side
//! `kubectl apply`) set, as `--force-conflicts` does.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use tracing::info;

use crate::error::{Error, Result};

/// The field manager of the CRDs, for this command and for `kubectl apply
/// --server-side --field-manager=barrage-crds`.
pub const FIELD_MANAGER: &str = "barrage-crds";

/// How often an applied CRD is read back until it is Established.
const POLL: Duration = Duration::from_millis(500);

/// Every CRD this operator serves, as `crdgen` writes them.
pub fn crds() -> Vec<CustomResourceDefinition> {
    crate::crdgen::crds()
}

/// Whether the API server serves `crd`: condition Established is True.
pub fn established(crd: &CustomResourceDefinition) -> bool {
    condition(crd, "Established").is_some_and(|(status, _)| status == "True")
}

/// Why a CRD is not served yet, from its conditions (NamesAccepted false
/// says a name clash; Established false says why not), for the error.
pub fn why_not_established(crd: &CustomResourceDefinition) -> String {
    let mut parts = Vec::new();
    for kind in ["NamesAccepted", "Established"] {
        if let Some((status, message)) = condition(crd, kind) {
            parts.push(format!(
                "{kind}={status}{}",
                message.map(|m| format!(" ({m})")).unwrap_or_default()
            ));
        }
    }
    if parts.is_empty() {
        "no conditions yet".into()
    } else {
        parts.join(", ")
    }
}

fn condition<'a>(
    crd: &'a CustomResourceDefinition,
    kind: &str,
) -> Option<(&'a str, Option<&'a str>)> {
    crd.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| {
            (
                c.status.as_str(),
                c.message.as_deref().filter(|m| !m.is_empty()),
            )
        })
}

/// Applies every CRD server-side (as [`FIELD_MANAGER`], forcing conflicts),
/// then waits up to `timeout` for each to be Established. Returns the names
/// applied.
pub async fn apply(client: Client, timeout: Duration) -> Result<Vec<String>> {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&crd)).await?;
        info!(crd = %name, "applied");
        names.push(name);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    for name in &names {
        loop {
            let crd = api.get(name).await?;
            if established(&crd) {
                info!(crd = %name, "established");
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Other(format!(
                    "CRD {name} is not Established after {}s: {}",
                    timeout.as_secs(),
                    why_not_established(&crd)
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests;
