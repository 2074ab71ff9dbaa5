//! What a LoadTest references in its namespace (target TLS material,
//! remote-write credentials, an earlier LoadTest's records). The reconciler
//! refuses a test whose references are missing when it starts; at admission
//! they are only warned about: a GitOps sync applies the Secret and the
//! LoadTest together, in no particular order, and refusing the LoadTest
//! would fail a sync that is about to be right.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use crate::{
    crd::{LoadTest, LoadTestSpec},
    target_tls::{self, Source},
};

/// One object (and key) a spec names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    pub field: String,
    pub namespace: String,
    pub kind: Kind,
    pub name: String,
    pub key: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Secret,
    ConfigMap,
    LoadTest,
}

impl Lookup {
    /// The warning for a missing reference (names only, never a value).
    pub fn warning(&self) -> String {
        let what = match (&self.kind, &self.key) {
            (Kind::LoadTest, _) => format!("LoadTest {:?}", self.name),
            (k, Some(key)) => format!("{k:?} {:?} with key {key:?}", self.name),
            (k, None) => format!("{k:?} {:?}", self.name),
        };
        format!(
            "{}: {what} is not in namespace {} (yet); the test fails when it starts if it is still missing",
            self.field, self.namespace
        )
    }
}

/// The lookups for `spec` in `namespace`; `prefix` is where the spec is
/// (`spec`, or `spec.template.spec` in a ScheduledLoadTest).
pub fn of_spec(spec: &LoadTestSpec, namespace: &str, prefix: &str) -> Vec<Lookup> {
    let mut out = Vec::new();
    let mut add = |field: String, kind, name: &str, key: Option<&str>| {
        out.push(Lookup {
            field,
            namespace: namespace.to_string(),
            kind,
            name: name.to_string(),
            key: key.map(str::to_string),
        })
    };
    if let Some(tls) = &spec.plan.target.tls {
        for r in target_tls::refs(tls) {
            let field = r.part.field().replacen("spec", prefix, 1);
            match r.source {
                Source::Secret(n) => add(field, Kind::Secret, n, Some(r.key)),
                Source::ConfigMap(n) => add(field, Kind::ConfigMap, n, Some(r.key)),
            }
        }
    }
    if let Some(rw) = spec
        .output
        .as_ref()
        .and_then(|o| o.prometheus_remote_write.as_ref())
        .filter(|rw| !rw.disabled)
    {
        let f = |s: &str| format!("{prefix}.output.prometheusRemoteWrite.{s}");
        if let Some(b) = &rw.basic_auth {
            let p = &b.password_from;
            add(
                f("basicAuth.passwordFrom"),
                Kind::Secret,
                &p.secret,
                Some(&p.key),
            );
        }
        if let Some(t) = &rw.bearer_token_from {
            add(f("bearerTokenFrom"), Kind::Secret, &t.secret, Some(&t.key));
        }
        if let Some(tls) = &rw.tls {
            for (name, v) in [
                ("caFrom", &tls.ca_from),
                ("certFrom", &tls.cert_from),
                ("keyFrom", &tls.key_from),
            ] {
                let Some(v) = v else { continue };
                match (&v.secret, &v.config_map) {
                    (Some(s), _) => add(f(&format!("tls.{name}")), Kind::Secret, s, Some(&v.key)),
                    (None, Some(c)) => {
                        add(f(&format!("tls.{name}")), Kind::ConfigMap, c, Some(&v.key))
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(from) = &spec.data_from {
        add(
            format!("{prefix}.dataFrom.loadTest"),
            Kind::LoadTest,
            &from.load_test,
            None,
        );
    }
    out
}

/// The whole lookup may take this long; the API server waits for the
/// webhook's answer (timeoutSeconds), and a warning is not worth a refusal.
const LOOKUP_BUDGET: Duration = Duration::from_millis(1500);

/// Those of `lookups` the cluster does not have. An API error (no right to
/// read, a timeout) is no evidence of absence: no warning then.
pub async fn missing(client: &Client, lookups: &[Lookup]) -> Vec<Lookup> {
    let check = async {
        let mut out = Vec::new();
        for l in lookups {
            if let Some(false) = present(client, l).await {
                out.push(l.clone());
            }
        }
        out
    };
    tokio::time::timeout(LOOKUP_BUDGET, check)
        .await
        .unwrap_or_default()
}

/// Whether the object (and key) is there; None when the API did not say.
async fn present(client: &Client, l: &Lookup) -> Option<bool> {
    let has = |keys: Vec<String>| l.key.as_ref().is_none_or(|k| keys.contains(k));
    match l.kind {
        Kind::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), &l.namespace);
            let s = api.get_opt(&l.name).await.ok()?;
            // The keys only; the values are dropped unread.
            Some(s.is_some_and(|s| has(s.data.unwrap_or_default().into_keys().collect())))
        }
        Kind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &l.namespace);
            let c = api.get_opt(&l.name).await.ok()?;
            Some(c.is_some_and(|c| {
                let mut keys: Vec<String> = c.data.unwrap_or_default().into_keys().collect();
                keys.extend(c.binary_data.unwrap_or_default().into_keys());
                has(keys)
            }))
        }
        Kind::LoadTest => {
            let api: Api<LoadTest> = Api::namespaced(client.clone(), &l.namespace);
            Some(api.get_metadata_opt(&l.name).await.ok()?.is_some())
        }
    }
}
