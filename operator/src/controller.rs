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
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams, PostParams},
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
    collect::Agents,
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
}

/// What the operator remembers about a running test between reconciles.
/// Losing it (a restart) loses nothing measured: runners keep cumulative
/// results and are asked again.
#[derive(Default)]
pub struct RunMemory {
    pub token: Option<String>,
    /// Each runner's latest snapshot (JSON), so a runner that dies keeps
    /// what it reported.
    pub last: std::collections::BTreeMap<u32, String>,
    /// Why the runners were told to stop early, if they were.
    pub abort: Option<String>,
}

pub struct Context {
    pub client: Client,
    pub agents: Agents,
    pub config: Config,
    pub recorder: Recorder,
    pub runs: Mutex<HashMap<String, RunMemory>>,
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
        let api: Api<LoadTest> =
            Api::namespaced(self.client.clone(), &lt.namespace().unwrap_or_default());
        let patch = serde_json::json!({
            "apiVersion": "barrage.dev/v1alpha1",
            "kind": "LoadTest",
            "status": st,
        });
        api.patch_status(
            &lt.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok(())
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

    /// Creates `obj` unless it exists (objects we own never change after
    /// creation, and a second token would lock the runners out).
    pub async fn create_if_absent<K>(&self, lt: &LoadTest, obj: &K) -> Result<()>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        match self
            .ns_api::<K>(lt)
            .create(&PostParams::default(), obj)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
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

async fn reconcile(lt: Arc<LoadTest>, ctx: Arc<Context>) -> Result<Action> {
    let (ns, name) = (lt.namespace().unwrap_or_default(), lt.name_any());
    let span = info_span!("reconcile", namespace = %ns, name = %name);
    let started = std::time::Instant::now();
    let result = async {
        if lt.meta().deletion_timestamp.is_some() {
            // Owner references let the garbage collector remove the runners.
            ctx.runs.lock().await.remove(&lt.uid().unwrap_or_default());
            ctx.metrics.forget(&ns, &name);
            return Ok(Action::await_change());
        }
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

fn error_policy(lt: Arc<LoadTest>, err: &Error, ctx: Arc<Context>) -> Action {
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
        metrics,
    });
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    futures::future::join_all(
        scopes
            .into_iter()
            .map(|ns| controller(client.clone(), ctx.clone(), ns)),
    )
    .await;
}

async fn controller(client: Client, ctx: Arc<Context>, namespace: Option<String>) {
    let (lts, pods_api, jobs): (Api<LoadTest>, Api<Pod>, Api<Job>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        pods::MANAGED_BY.0,
        pods::MANAGED_BY.1
    ));
    Controller::new(lts, watcher::Config::default())
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
