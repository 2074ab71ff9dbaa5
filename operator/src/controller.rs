//! The LoadTest controller: a thin reconciler that observes the cluster,
//! calls the pure builders (`pods`, `status`, `observe`) and applies what
//! they return. Each phase has its own step (`phases`); this file holds the
//! shared context, the status write and the controller's wiring.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::{
        batch::v1::Job,
        core::v1::{Pod, Secret},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        watcher,
    },
};
use tokio::sync::Mutex;
use tracing::{Instrument, info_span, warn};

use crate::{
    agents::Agents,
    crd::{LoadTest, LoadTestStatus, Phase},
    error::{Error, Result},
    pods, status,
};

pub const MANAGER: &str = "barrage-operator";

pub struct Config {
    /// Runner pod settings for LoadTests that set none.
    pub runner: pods::RunnerDefaults,
    pub agent_port: u16,
    /// How far ahead of "now" the common start instant is set: enough for
    /// every runner to receive it.
    pub start_lead: Duration,
    /// Who may reach the runners' agent port: with it, each LoadTest gets a
    /// NetworkPolicy admitting only these pods; without it (an operator
    /// outside the cluster, whose traffic no pod selector matches), none.
    pub network_policy: Option<crate::netpol::OperatorPeer>,
}

/// What the operator remembers about a running test between reconciles
/// besides its results (`results::Stores`).
#[derive(Default)]
pub struct RunMemory {
    pub token: Option<String>,
}

pub struct Context {
    pub client: Client,
    pub agents: Agents,
    pub config: Config,
    pub recorder: Recorder,
    pub runs: Mutex<HashMap<String, RunMemory>>,
    /// Each running LoadTest's results, with its own lock.
    pub results: crate::results::Stores,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// What a phase step decided.
pub struct Next {
    pub status: LoadTestStatus,
    pub events: Vec<(EventType, &'static str, String)>,
    pub requeue: Option<Duration>,
}

impl Context {
    pub async fn write_status(&self, lt: &LoadTest, st: &LoadTestStatus) -> Result<()> {
        self.write_status_of(&lt.namespace().unwrap_or_default(), &lt.name_any(), st)
            .await
    }

    pub async fn write_status_of(
        &self,
        namespace: &str,
        name: &str,
        st: &LoadTestStatus,
    ) -> Result<()> {
        apply_status(&self.client, &api_resource(), namespace, name, st).await
    }

    pub async fn event(&self, lt: &LoadTest, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &lt.object_ref(&())).await {
            warn!(error = %e, reason, "could not publish event");
        }
    }

    pub fn ns_api<K>(&self, lt: &LoadTest) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &lt.namespace().unwrap_or_default())
    }

    /// Creates `obj` unless this LoadTest already owns one of that name
    /// (objects we own never change after creation, and a second token
    /// would lock the runners out). A name held by anything else is not
    /// adopted: its owner might be a LoadTest of the same name on its way
    /// out (wait for the garbage collector), or anything at all (taking it
    /// over would hand a setup pod rights on someone else's Secret).
    pub async fn create_if_absent<K>(&self, lt: &LoadTest, obj: &K) -> Result<()>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        self.create_or_find_owned(lt, obj).await.map(|_| ())
    }

    /// Like `create_if_absent`, but an existing object this LoadTest owns
    /// is brought up to `obj` by server-side apply (the operator's flags,
    /// e.g. its pod labels, may have changed since it was created).
    pub async fn apply_owned<K>(&self, lt: &LoadTest, obj: &K) -> Result<()>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        if !self.create_or_find_owned(lt, obj).await? {
            let name = obj.meta().name.clone().unwrap_or_default();
            self.ns_api::<K>(lt)
                .patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(obj),
                )
                .await?;
        }
        Ok(())
    }

    /// Creates `obj`; true when it was created, false when this LoadTest
    /// already owns one of that name, an error when anything else holds it.
    async fn create_or_find_owned<K>(&self, lt: &LoadTest, obj: &K) -> Result<bool>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api = self.ns_api::<K>(lt);
        match api.create(&PostParams::default(), obj).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let name = obj.meta().name.clone().unwrap_or_default();
                let existing = api.get_metadata(&name).await?;
                taken_by(lt, &existing.metadata, &format!("{} {name}", K::kind(&())))?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The agents' token: from memory, else from the LoadTest's Secret.
    pub async fn token(&self, lt: &LoadTest) -> Result<String> {
        let uid = lt.uid().unwrap_or_default();
        if let Some(t) = self
            .runs
            .lock()
            .await
            .get(&uid)
            .and_then(|m| m.token.clone())
        {
            return Ok(t);
        }
        let secret = self.ns_api::<Secret>(lt).get(&pods::token_name(lt)).await?;
        let token = secret
            .data
            .as_ref()
            .and_then(|d| d.get("token"))
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
            .ok_or_else(|| Error::Other(format!("secret {} has no token", pods::token_name(lt))))?;
        self.runs.lock().await.entry(uid).or_default().token = Some(token.clone());
        Ok(token)
    }
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

/// The LoadTest in `obj`, or the field that does not fit its type.
///
/// The controller watches untyped objects and converts each one here: with a
/// typed watcher, one manifest that passes the CRD schema but not our types
/// would fail the whole list and stall every LoadTest.
pub fn typed(obj: &DynamicObject) -> std::result::Result<LoadTest, (String, String)> {
    let v = serde_json::to_value(obj).map_err(|e| (String::new(), e.to_string()))?;
    serde_path_to_error::deserialize::<_, LoadTest>(v.clone()).map_err(|e| {
        // The plan is flattened into the spec, which hides the path inside it;
        // the runner's plan reader names the field (e.g. spec.load.duration).
        match barrage_runner::planfile::from_str(&v.to_string(), Default::default()) {
            Err(barrage_runner::Error::Invalid { field, message }) => (field, message),
            _ => (e.path().to_string(), e.into_inner().to_string()),
        }
    })
}

/// A LoadTest that does not convert ends Failed, with the field named in its
/// status and an event; it is not retried until it changes.
async fn reject(
    obj: &DynamicObject,
    ctx: &Context,
    field: String,
    message: String,
) -> Result<Action> {
    let msg = format!("invalid spec: {field}: {message}");
    let mut st: LoadTestStatus = obj
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    if st.phase == Phase::Failed && st.message.as_deref() == Some(msg.as_str()) {
        return Ok(Action::await_change());
    }
    let generation = obj.metadata.generation;
    st.observed_generation = generation;
    status::failed(
        &mut st,
        status::COND_VALIDATED,
        "InvalidSpec",
        &msg,
        generation,
        now(),
    );
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    ctx.write_status_of(&ns, &name, &st).await?;
    let ev = Event {
        type_: EventType::Warning,
        reason: "InvalidSpec".into(),
        note: Some(msg.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx
        .recorder
        .publish(&ev, &obj.object_ref(&api_resource()))
        .await
    {
        warn!(error = %e, "could not publish event");
    }
    Ok(Action::await_change())
}

pub fn api_resource() -> ApiResource {
    ApiResource::erase::<LoadTest>(&())
}

async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let span = info_span!("reconcile", namespace = %ns, name = %name);
    let started = std::time::Instant::now();
    let result = async {
        if obj.meta().deletion_timestamp.is_some() {
            // Owner references let the garbage collector remove the runners.
            ctx.runs.lock().await.remove(&obj.uid().unwrap_or_default());
            ctx.results.forget(&obj.uid().unwrap_or_default());
            ctx.metrics.forget(&ns, &name);
            return Ok(Action::await_change());
        }
        let lt = match typed(&obj) {
            Ok(lt) => lt,
            Err((field, message)) => return reject(&obj, &ctx, field, message).await,
        };
        let before = lt.status.clone().unwrap_or_default();
        let next = crate::phases::step(&lt, &ctx, before.clone()).await?;
        if next.status != before {
            ctx.write_status(&lt, &next.status).await?;
        }
        ctx.metrics.observe(&ns, &name, &next.status);
        for (t, reason, note) in next.events {
            ctx.event(&lt, t, reason, note).await;
        }
        Ok(next
            .requeue
            .map_or_else(Action::await_change, Action::requeue))
    }
    .instrument(span)
    .await;
    ctx.metrics.reconciled(started.elapsed().as_secs_f64());
    result
}

fn error_policy(lt: Arc<DynamicObject>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(err.category());
    warn!(name = %lt.name_any(), category = err.category(), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(3))
}

/// Runs one controller per watched namespace (all namespaces when the list
/// is empty: then one cluster-wide controller) until a shutdown signal.
pub async fn run(
    client: Client,
    config: Config,
    namespaces: Vec<String>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let reporter = Reporter {
        controller: MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        agents: Agents::new(config.agent_port),
        client: client.clone(),
        config,
        runs: Mutex::new(HashMap::new()),
        results: Default::default(),
        metrics,
    });
    per_scope(namespaces, |ns| controller(client.clone(), ctx.clone(), ns)).await;
}

/// Runs `f` for each watched namespace, or once cluster-wide (`None`) when
/// the list is empty, all at once until each returns.
pub async fn per_scope<F, Fut>(namespaces: Vec<String>, f: F)
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    futures::future::join_all(scopes.into_iter().map(f)).await;
}

/// Server-side apply of a whole status, with apiVersion and kind. Untyped:
/// the apiserver returns the object, which may be one that does not fit
/// our types (see `typed`).
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

async fn controller(client: Client, ctx: Arc<Context>, namespace: Option<String>) {
    let ar = api_resource();
    let (lts, pods_api, jobs): (Api<DynamicObject>, Api<Pod>, Api<Job>) = match &namespace {
        Some(ns) => (
            Api::namespaced_with(client.clone(), ns, &ar),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all_with(client.clone(), &ar),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        pods::MANAGED_BY.0,
        pods::MANAGED_BY.1
    ));
    Controller::new_with(lts, watcher::Config::default(), ar)
        .owns(pods_api, owned.clone())
        .owns(jobs, owned)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile loop");
            }
        })
        .await;
}

/// Marks the phase change time.
pub fn enter(st: &mut LoadTestStatus, phase: Phase) {
    if st.phase != phase {
        st.phase = phase;
        st.phase_since = Some(now().to_string());
    }
}

/// How long the current phase has lasted.
pub fn in_phase(st: &LoadTestStatus) -> Duration {
    st.phase_since
        .as_deref()
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map_or(Duration::ZERO, |t| {
            Duration::try_from(now().duration_since(t)).unwrap_or(Duration::ZERO)
        })
}

pub use status::{finish, set_condition};

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(load: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "barrage.dev/v1alpha1", "kind": "LoadTest",
            "metadata": {"name": "t", "namespace": "n"},
            "spec": {"target": {"baseUrl": "http://10.0.0.1"}, "load": serde_json::from_str::<serde_json::Value>(load).unwrap(), "requests": [{"name": "a", "path": "/"}]}
        }))
        .unwrap()
    }

    #[test]
    fn objects_that_do_not_fit_the_types_name_the_field() {
        assert!(typed(&obj(r#"{"users": 1, "duration": "1s"}"#)).is_ok());
        let (field, msg) = typed(&obj(r#"{"users": 1, "duration": "10 parsecs"}"#)).unwrap_err();
        assert_eq!(field, "spec.load.duration");
        assert!(msg.contains("unknown unit"), "{msg}");
        let (field, _) = typed(&obj(
            r#"{"users": 1, "duration": "1s", "maxInFlight": 5000000000}"#,
        ))
        .unwrap_err();
        assert_eq!(field, "spec.load.maxInFlight");
    }
}

/// Ok when `lt` controls the existing object `what`; otherwise why not.
pub fn taken_by(lt: &LoadTest, existing: &ObjectMeta, what: &str) -> Result<()> {
    let owner = existing
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    match owner {
        Some(o) if Some(&o.uid) == lt.metadata.uid.as_ref() => Ok(()),
        Some(o) if o.kind == "LoadTest" && o.name == lt.name_any() => Err(Error::Other(format!(
            "{what} still belongs to an earlier LoadTest of this name; waiting for it to be deleted"
        ))),
        Some(o) => Err(Error::Conflict(format!(
            "{what} exists and belongs to {} {}; rename the LoadTest or delete it",
            o.kind, o.name
        ))),
        None => Err(Error::Conflict(format!(
            "{what} exists and does not belong to this LoadTest; rename the LoadTest or delete it"
        ))),
    }
}

#[cfg(test)]
mod taken_tests {
    use super::*;
    use crate::pods::tests::lt;

    #[test]
    fn a_name_is_adopted_only_from_this_loadtest() {
        let t = lt(
            "target: {baseUrl: 'http://10.0.0.1'}\nload: {users: 1, duration: 1s}\nrequests: [{name: a, path: /}]",
        );
        let mut meta = crate::pods::owned_meta(&t, "smoke-records".into(), "records");
        taken_by(&t, &meta, "Secret smoke-records").unwrap();
        // The same name's previous LoadTest, still being collected: wait.
        meta.owner_references.as_mut().unwrap()[0].uid = "old-uid".into();
        assert!(matches!(
            taken_by(&t, &meta, "Secret x"),
            Err(Error::Other(_))
        ));
        // Someone else's: refuse, naming the owner.
        meta.owner_references.as_mut().unwrap()[0].name = "billing".into();
        match taken_by(&t, &meta, "Secret smoke-records") {
            Err(Error::Conflict(m)) => assert!(m.contains("belongs to LoadTest billing"), "{m}"),
            other => panic!("{other:?}"),
        }
        meta.owner_references = None;
        assert!(matches!(
            taken_by(&t, &meta, "Secret x"),
            Err(Error::Conflict(_))
        ));
    }
}
