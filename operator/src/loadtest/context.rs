//! What every phase is handed: the operator's settings, and a small facade
//! over the cluster (owned objects, events, the runner pods as the watch last
//! saw them) and over the runners (each LoadTest's channel to its agents,
//! and the results they reported). Phases call this and the pure builders; nothing
//! here calls back into a phase.

use std::{collections::BTreeMap, collections::HashMap, sync::Arc, time::Duration};

use k8s_openapi::{
    api::core::v1::{Pod, Secret},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::{
        events::{Event, EventType, Recorder},
        reflector::Store,
    },
};
use tracing::warn;

use crate::{
    agents::{Agents, Channel, RunnerRef},
    cluster::{self, MANAGER},
    crd::{LoadTest, LoadTestStatus, Phase},
    error::{Error, Result},
    metrics::Metrics,
    netpol, observe, pods,
    remote_write::{ClusterDefault, Pushers},
    results::Stores,
};

/// A namespaced object the operator reads, creates or applies as a
/// LoadTest's own.
pub trait Namespaced:
    Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::Serialize
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Namespaced for K where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

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
    pub network_policy: Option<netpol::OperatorPeer>,
    /// Where LoadTests that name no receiver push their series (`--remote-write`).
    pub remote_write: Option<ClusterDefault>,
}

pub struct Context {
    pub client: Client,
    pub config: Config,
    pub recorder: Recorder,
    /// The pods the operator owns, one reflector store per watched scope
    /// (a namespace, or `None` for the whole cluster), fed by the same watch
    /// that wakes the controller: a reconcile reads its runners from memory
    /// instead of listing them.
    pub pods: Vec<(Option<String>, Store<Pod>)>,
    /// How long a reconcile waits for its namespace's pod store to be
    /// filled by the watch's first list before it fails and is retried.
    pub pods_wait: Duration,
    /// Each running LoadTest's results and live judgement, by uid, each
    /// with its own lock.
    pub results: Stores,
    /// Each running LoadTest's remote-write pusher, by uid.
    pub pushers: Pushers,
    /// Each LoadTest's channel to its agents (its pinned client and its
    /// token), by uid, once read from its Secret.
    channels: std::sync::Mutex<HashMap<String, Channel>>,
    /// The uid of each LoadTest reconciled, by namespace and name: a
    /// LoadTest deleted without a finalizer is never reconciled again, and
    /// this is how its memory is found and dropped (`forget_gone`).
    uids: std::sync::Mutex<HashMap<(String, String), String>>,
    pub metrics: Arc<Metrics>,
}

impl Context {
    pub fn new(
        client: Client,
        config: Config,
        recorder: Recorder,
        pods: Vec<(Option<String>, Store<Pod>)>,
        metrics: Arc<Metrics>,
    ) -> Context {
        Context {
            client,
            config,
            recorder,
            pods,
            pods_wait: Duration::from_secs(30),
            results: Stores::default(),
            pushers: Pushers::default(),
            channels: Default::default(),
            uids: Default::default(),
            metrics,
        }
    }

    pub async fn write_status(&self, lt: &LoadTest, st: &LoadTestStatus) -> Result<()> {
        let (ns, name) = (lt.namespace().unwrap_or_default(), lt.name_any());
        cluster::apply_status(
            &self.client,
            &crate::crd::loadtest_resource(),
            &ns,
            &name,
            st,
        )
        .await
    }

    pub async fn publish(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, reference).await {
            warn!(error = %e, reason, "could not publish event");
        }
    }

    pub fn ns_api<K: Namespaced>(&self, lt: &LoadTest) -> Api<K> {
        Api::namespaced(self.client.clone(), &lt.namespace().unwrap_or_default())
    }

    /// Creates `obj` unless this LoadTest already owns one of that name
    /// (objects we own never change after creation, and a second token
    /// would lock the runners out). A name held by anything else is not
    /// adopted (`cluster::taken_by`).
    pub async fn create_if_absent<K: Namespaced>(&self, lt: &LoadTest, obj: &K) -> Result<()> {
        self.create_or_find_owned(lt, obj).await.map(|_| ())
    }

    /// Like `create_if_absent`, but an existing object this LoadTest owns
    /// is brought up to `obj` by server-side apply (the operator's flags,
    /// e.g. its pod labels, may have changed since it was created).
    pub async fn apply_owned<K: Namespaced>(&self, lt: &LoadTest, obj: &K) -> Result<()> {
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
    async fn create_or_find_owned<K: Namespaced>(&self, lt: &LoadTest, obj: &K) -> Result<bool> {
        let api = self.ns_api::<K>(lt);
        match api.create(&PostParams::default(), obj).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let name = obj.meta().name.clone().unwrap_or_default();
                let existing = api.get_metadata(&name).await?;
                let what = format!("{} {name}", K::kind(&()));
                cluster::taken_by(
                    "LoadTest",
                    &lt.name_any(),
                    lt.metadata.uid.as_deref(),
                    &existing.metadata,
                    &what,
                )?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The LoadTest's channel to its agents: from memory, else made from
    /// its Secret (the token, and the certificate and key both ends pin).
    pub async fn channel(&self, lt: &LoadTest) -> Result<Channel> {
        let uid = lt.uid().unwrap_or_default();
        if let Some(c) = self.channels().get(&uid) {
            return Ok(c.clone());
        }
        let name = pods::token_name(lt);
        let secret = self.ns_api::<Secret>(lt).get(&name).await?;
        let channel = channel_from(&secret, &name, self.config.agent_port)?;
        self.channels().insert(uid, channel.clone());
        Ok(channel)
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets what memory holds for a LoadTest that ended or is gone.
    pub fn forget(&self, uid: &str) {
        self.channels().remove(uid);
        self.results.forget(uid);
        self.pushers.forget(uid);
    }

    /// Notes which LoadTest (uid) holds a name, for `forget_gone`.
    pub fn remember(&self, namespace: &str, name: &str, uid: &str) {
        self.uid_map()
            .insert((namespace.into(), name.into()), uid.into());
    }

    /// The LoadTest of this name is gone from the watch (deleted): its run
    /// memory and its metrics go too, so that deleted tests do not
    /// accumulate in a long-lived operator.
    pub fn forget_gone(&self, namespace: &str, name: &str) {
        let uid = self.uid_map().remove(&(namespace.into(), name.into()));
        if let Some(uid) = uid {
            self.forget(&uid);
        }
        self.metrics.forget(namespace, name);
    }

    fn uid_map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        self.uids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pod store of `lt`'s scope: its namespace's, or the cluster-wide one.
    fn pod_store(&self, lt: &LoadTest) -> Option<&Store<Pod>> {
        let ns = lt.namespace();
        self.pods
            .iter()
            .find(|(scope, _)| scope.is_none() || *scope == ns)
            .map(|(_, s)| s)
    }

    /// Waits until `lt`'s pod store has its first full list, so that a
    /// runner is never taken for gone because the watch has not seen it yet
    /// (an operator that just started). Bounded: a watch that cannot list
    /// (e.g. a missing RoleBinding) fails this reconcile, which is logged
    /// and retried, and holds up no other namespace.
    pub async fn pods_ready(&self, lt: &LoadTest) -> Result<()> {
        let Some(store) = self.pod_store(lt) else {
            return Err(Error::Other(format!(
                "namespace {} is not watched",
                lt.namespace().unwrap_or_default()
            )));
        };
        match tokio::time::timeout(self.pods_wait, store.wait_until_ready()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Other(format!("the pod watch stopped: {e}"))),
            Err(_) => Err(Error::Other(format!(
                "the pod watch has not listed the pods of namespace {} after {}s; check the operator's rights there",
                lt.namespace().unwrap_or_default(),
                self.pods_wait.as_secs()
            ))),
        }
    }

    /// This LoadTest's runner pods by index, as the watch last saw them.
    /// Only pods it controls count: another object's pod that carries the
    /// same labels is not a runner.
    pub fn runner_pods(&self, lt: &LoadTest) -> BTreeMap<u32, Pod> {
        let name = lt.name_any();
        self.owned_pods(lt, lt.metadata.uid.as_deref(), |p| {
            pods::is_runner_of(p, &name)
        })
        .into_iter()
        .filter_map(|p| {
            let i = p.labels().get(pods::LABEL_INDEX)?.parse().ok()?;
            Some((i, p))
        })
        .collect()
    }

    /// The pods of this LoadTest's setup Job `job_uid`, as the watch last
    /// saw them (not those of an earlier Job of the same name).
    pub fn setup_pods(&self, lt: &LoadTest, job_uid: Option<&str>) -> Vec<Pod> {
        let name = lt.name_any();
        self.owned_pods(lt, job_uid, |p| {
            p.labels().get(pods::LABEL_TEST) == Some(&name)
        })
    }

    /// The pods in `lt`'s namespace that `owner_uid` controls and `keep`
    /// accepts, from `lt`'s pod store.
    fn owned_pods(
        &self,
        lt: &LoadTest,
        owner_uid: Option<&str>,
        keep: impl Fn(&Pod) -> bool,
    ) -> Vec<Pod> {
        let ns = lt.namespace();
        self.pod_store(lt)
            .into_iter()
            .flat_map(|s| {
                s.state_filter(|p| {
                    p.metadata.namespace == ns
                        && p.owner_references().iter().any(|o| {
                            o.controller == Some(true) && Some(o.uid.as_str()) == owner_uid
                        })
                        && keep(p)
                })
            })
            .map(|p| (*p).clone())
            .collect()
    }
}

/// The channel a LoadTest's Secret `name` describes: HTTPS pinned to its
/// `tls.crt`, or for a Secret without one (made before the agent channel
/// had TLS, whose runners serve plain HTTP) plain HTTP. Errors never quote
/// the Secret's values.
pub fn channel_from(secret: &Secret, name: &str, port: u16) -> Result<Channel> {
    let get = |key: &str| secret.data.as_ref().and_then(|d| d.get(key)).map(|b| &b.0);
    let token = get(pods::TOKEN_KEY)
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
        .ok_or_else(|| Error::Other(format!("secret {name} has no token")))?;
    let agents = match (get(pods::TLS_CERT_KEY), get(pods::TLS_KEY_KEY)) {
        (Some(cert), Some(key)) => {
            let id = barrage_runner::tls::pinned::Identity::from_pem(cert, key)
                .map_err(|m| Error::Other(format!("secret {name}: tls.crt/tls.key: {m}")))?;
            Agents::pinned(port, &id)?
        }
        (None, None) => {
            warn!(
                secret = name,
                "no agent certificate: talking to its runners over plain HTTP"
            );
            Agents::new(port)
        }
        _ => {
            return Err(Error::Other(format!(
                "secret {name} has only one of {} and {}",
                pods::TLS_CERT_KEY,
                pods::TLS_KEY_KEY
            )));
        }
    };
    Ok(Channel { agents, token })
}

/// How to reach a runner pod's agent, once it has an IP.
pub fn runner_ref(index: u32, p: &Pod) -> Option<RunnerRef> {
    Some(RunnerRef {
        index,
        name: p.name_any(),
        ip: observe::pod_ip(p)?,
    })
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

pub fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
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
