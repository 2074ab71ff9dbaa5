//! What both controllers ask of the API server beyond plain gets: the status
//! write (server-side apply, one per reconcile), the rule for names held by
//! someone else, and running one controller per watched namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
};

use crate::error::{Error, Result};

/// The field manager of every server-side apply the operator makes.
pub const MANAGER: &str = "barrage-operator";

/// Server-side apply of a whole status, with apiVersion and kind. Untyped:
/// the apiserver returns the object, which may be one that does not fit
/// our types (see `loadtest::typed`).
pub async fn apply_status(
    client: &Client,
    ar: &ApiResource,
    namespace: &str,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
    let patch = serde_json::json!({
        "apiVersion": ar.api_version,
        "kind": ar.kind,
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Ok when the object `existing` (called `what` in errors) is controlled by
/// the owner whose uid is `owner_uid`; otherwise why it may not be used.
/// A name held by anything else is not adopted: its owner might be an owner
/// of the same kind and name on its way out (then wait for the garbage
/// collector), or anything at all (taking it over would, e.g., hand a setup
/// pod rights on someone else's Secret).
pub fn taken_by(
    owner_kind: &str,
    owner_name: &str,
    owner_uid: Option<&str>,
    existing: &ObjectMeta,
    what: &str,
) -> Result<()> {
    let owner = existing
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    match owner {
        Some(o) if Some(o.uid.as_str()) == owner_uid => Ok(()),
        Some(o) if o.kind == owner_kind && o.name == owner_name => Err(Error::Other(format!(
            "{what} still belongs to an earlier {owner_kind} of this name; waiting for it to be deleted"
        ))),
        Some(o) => Err(Error::Conflict(format!(
            "{what} exists and belongs to {} {}; rename the {owner_kind} or delete it",
            o.kind, o.name
        ))),
        None => Err(Error::Conflict(format!(
            "{what} exists and does not belong to this {owner_kind}; rename the {owner_kind} or delete it"
        ))),
    }
}

/// The scopes a controller runs in: each watched namespace, or the whole
/// cluster (`None`) when the list is empty.
pub fn scopes(namespaces: Vec<String>) -> Vec<Option<String>> {
    if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    }
}

/// Runs `f` for each scope (`scopes`), all at once until each returns.
pub async fn per_scope<F, Fut>(namespaces: Vec<String>, f: F)
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    futures::future::join_all(scopes(namespaces).into_iter().map(f)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::tests::lt;
    use kube::ResourceExt;

    #[test]
    fn a_name_is_adopted_only_from_its_own_owner() {
        let t = lt(
            "target: {baseUrl: 'http://10.0.0.1'}\nload: {users: 1, duration: 1s}\nrequests: [{name: a, path: /}]",
        );
        let (name, uid) = (t.name_any(), t.uid());
        let taken =
            |meta: &ObjectMeta, what: &str| taken_by("LoadTest", &name, uid.as_deref(), meta, what);
        let mut meta = crate::pods::owned_meta(&t, "smoke-records".into(), "records");
        taken(&meta, "Secret smoke-records").unwrap();
        // The same name's previous LoadTest, still being collected: wait.
        meta.owner_references.as_mut().unwrap()[0].uid = "old-uid".into();
        assert!(matches!(taken(&meta, "Secret x"), Err(Error::Other(_))));
        // Someone else's: refuse, naming the owner.
        meta.owner_references.as_mut().unwrap()[0].name = "billing".into();
        match taken(&meta, "Secret smoke-records") {
            Err(Error::Conflict(m)) => assert!(m.contains("belongs to LoadTest billing"), "{m}"),
            other => panic!("{other:?}"),
        }
        meta.owner_references = None;
        assert!(matches!(taken(&meta, "Secret x"), Err(Error::Conflict(_))));
    }
}
