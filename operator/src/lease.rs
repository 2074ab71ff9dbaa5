//! Leader election with a coordination.k8s.io/v1 Lease, so that with two
//! replicas only one reconciles. A replica that cannot renew its lease in
//! time exits rather than risk reconciling beside the new leader; Kubernetes
//! restarts it as a standby.
//!
//! In a cluster the leader also labels its own pod `barrage.dev/leader:
//! "true"` ([`Leadership::label_pod`]), and the chart's metrics Service
//! selects that label, so Prometheus scrapes the one replica whose per-test
//! gauges are filled. A replica removes the label from its pod when it
//! starts, before it serves anything (a container restarted in the same pod
//! after losing the lease must not keep it), and when it steps down.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use tracing::{info, warn};

pub const LEASE_SECONDS: i32 = 15;
/// The label the leader puts on its own pod; the metrics Service selects it.
pub const LEADER_LABEL: &str = "barrage.dev/leader";
/// The field manager of that label.
const LABEL_MANAGER: &str = "barrage-operator-leader";
const RETRY: Duration = Duration::from_secs(2);
const RENEW: Duration = Duration::from_secs(4);
/// Give up well before another replica may take over (LEASE_SECONDS).
const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// Whether `lease` may be taken by `me` at `now`: free, ours, or expired.
pub fn can_take(lease: &Lease, me: &str, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return true };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(h) if h == me => true,
        Some(_) => {
            let renewed = spec.renew_time.as_ref().map(|t| t.0);
            let dur = SignedDuration::from_secs(
                spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS) as i64,
            );
            renewed.is_none_or(|r| r + dur < now)
        }
    }
}

fn claimed(mut lease: Lease, me: &str, now: Timestamp) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(me) {
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.holder_identity = Some(me.to_string());
    spec.lease_duration_seconds = Some(LEASE_SECONDS);
    spec.renew_time = Some(MicroTime(now));
    lease
}

/// Tries once to take or renew the lease. Writes carry the resourceVersion
/// read, so two replicas racing cannot both win.
async fn try_take(api: &Api<Lease>, name: &str, me: &str) -> kube::Result<bool> {
    let now = Timestamp::now();
    match api.get_opt(name).await? {
        None => {
            let fresh = Lease {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..Default::default()
                },
                spec: None,
            };
            match api
                .create(&PostParams::default(), &claimed(fresh, me, now))
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(lease) if can_take(&lease, me, now) => match api
            .replace(name, &PostParams::default(), &claimed(lease, me, now))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        },
        Some(_) => Ok(false),
    }
}

/// One replica's part in the election: the Lease it competes for and, in a
/// cluster, the pod it labels while it leads.
#[derive(Clone)]
pub struct Leadership {
    client: Client,
    namespace: String,
    lease: String,
    identity: String,
    /// The pod to label (POD_NAME); None outside a cluster or when not asked.
    pod: Option<String>,
    /// True once this replica stepped down. The renewer holds the lock for a
    /// whole renewal and stops when it finds it set, so a renewal can neither
    /// race the release (a 409 leaves the lease held until it expires) nor
    /// follow it (re-taking the free lease while the process drains).
    stepped_down: Arc<tokio::sync::Mutex<bool>>,
}

impl Leadership {
    pub fn new(
        client: Client,
        namespace: &str,
        lease: &str,
        identity: &str,
        pod: Option<&str>,
    ) -> Leadership {
        Leadership {
            client,
            namespace: namespace.into(),
            lease: lease.into(),
            identity: identity.into(),
            pod: pod.map(str::to_string),
            stepped_down: Arc::default(),
        }
    }

    /// Sets (`leader`) or removes the leader label on this replica's pod, by
    /// a JSON merge patch of that one label (removing an absent label is no
    /// error). Nothing without a pod.
    pub async fn label_pod(&self, leader: bool) -> kube::Result<()> {
        let Some(pod) = &self.pod else { return Ok(()) };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let value = if leader { json!("true") } else { json!(null) };
        let patch = json!({"metadata": {"labels": {LEADER_LABEL: value}}});
        let params = PatchParams {
            field_manager: Some(LABEL_MANAGER.into()),
            ..Default::default()
        };
        api.patch(pod, &params, &Patch::Merge(&patch)).await?;
        Ok(())
    }

    /// At startup, before serving anything: no stale leader label on this
    /// pod. The caller warns if it fails (and goes on: a missing right must
    /// not become a crash loop; a fresh pod has no such label anyway).
    pub async fn clear_label(&self) -> kube::Result<()> {
        self.label_pod(false).await
    }

    /// Waits until this replica holds the lease, then labels its pod.
    async fn take(&self) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
        loop {
            match try_take(&api, &self.lease, &self.identity).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "lease: cannot read or write"),
            }
            tokio::time::sleep(RETRY).await;
        }
        info!(lease = %self.lease, identity = %self.identity, "became the leader");
        // Without the label the metrics Service has no endpoint: keep trying,
        // leading meanwhile (reconciling does not depend on it).
        while let Err(e) = self.label_pod(true).await {
            warn!(error = %e, label = LEADER_LABEL, "cannot label this pod as the leader; retrying");
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Waits until this replica holds the lease and its pod is labelled, then
    /// keeps renewing the lease in the background; exits the process if
    /// renewal fails for too long.
    pub async fn acquire(&self) {
        self.take().await;
        let (api, name, me, stepped_down): (Api<Lease>, _, _, _) = (
            Api::namespaced(self.client.clone(), &self.namespace),
            self.lease.clone(),
            self.identity.clone(),
            self.stepped_down.clone(),
        );
        tokio::spawn(async move {
            let mut last_ok = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(RENEW).await;
                let down = stepped_down.lock().await;
                if *down {
                    return;
                }
                match try_take(&api, &name, &me).await {
                    Ok(true) => last_ok = tokio::time::Instant::now(),
                    Ok(false) => {
                        warn!("lease: another replica holds it now; exiting");
                        std::process::exit(1);
                    }
                    Err(e) => warn!(error = %e, "lease: renewal failed"),
                }
                if last_ok.elapsed() > RENEW_DEADLINE {
                    warn!("lease: not renewed in time; exiting so that two leaders never overlap");
                    std::process::exit(1);
                }
            }
        });
    }

    /// Steps down on a graceful shutdown: the label first (the Service stops
    /// routing here), then the lease, so that a standby takes over at once
    /// instead of waiting for it to expire.
    pub async fn release(&self) {
        // Waits for a renewal in flight; none starts after this.
        let mut down = self.stepped_down.lock().await;
        *down = true;
        if let Err(e) = self.label_pod(false).await {
            warn!(error = %e, "could not remove the leader label; it goes with the pod");
        }
        release(
            self.client.clone(),
            &self.namespace,
            &self.lease,
            &self.identity,
        )
        .await;
    }
}

/// Gives the lease up, if `me` holds it.
async fn release(client: Client, namespace: &str, name: &str, me: &str) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let Ok(Some(mut lease)) = api.get_opt(name).await else {
        return;
    };
    let Some(spec) = lease
        .spec
        .as_mut()
        .filter(|s| s.holder_identity.as_deref() == Some(me))
    else {
        return;
    };
    spec.holder_identity = None;
    spec.renew_time = None;
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => info!(lease = name, "released the leader lease"),
        Err(e) => warn!(error = %e, "could not release the lease; it will expire"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{Call, Reply, Scenario, collection, object};
    use kube::core::ApiResource;
    use serde_json::Value;

    fn paths() -> (String, String, String) {
        let leases = ApiResource::erase::<Lease>(&());
        let pods = ApiResource::erase::<Pod>(&());
        (
            object(&leases, "ops", "barrage-operator"),
            collection(&leases, "ops"),
            object(&pods, "ops", "op-1"),
        )
    }

    /// The pod as the API server returns it once the label is removed.
    fn unlabelled() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("op-1".into()),
                namespace: Some("ops".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_new_leader_labels_its_own_pod() {
        let (lease, leases, pod) = paths();
        let (client, mut server) = Scenario::new("a new leader labels its pod")
            .expect(Call::get(&lease).reply(Reply::not_found("barrage-operator")))
            .expect(Call::post(&leases).includes(json!({
                "metadata": {"name": "barrage-operator"},
                "spec": {"holderIdentity": "op-1"}
            })))
            .expect(
                Call::patch(&pod)
                    .query("fieldManager", LABEL_MANAGER)
                    .includes(json!({"metadata": {"labels": {LEADER_LABEL: "true"}}})),
            )
            .serve();
        let me = Leadership::new(client, "ops", "barrage-operator", "op-1", Some("op-1"));
        server.run(me.take()).await;
    }

    #[tokio::test]
    async fn a_refused_label_is_retried_while_leading() {
        let (lease, leases, pod) = paths();
        let (client, mut server) = Scenario::new("the label is retried")
            .expect(Call::get(&lease).reply(Reply::not_found("barrage-operator")))
            .expect(Call::post(&leases))
            .expect(Call::patch(&pod).reply(Reply::error(403, "Forbidden", "no patch")))
            .expect(
                Call::patch(&pod).includes(json!({"metadata": {"labels": {LEADER_LABEL: "true"}}})),
            )
            .serve();
        let me = Leadership::new(client, "ops", "barrage-operator", "op-1", Some("op-1"));
        server.run(me.take()).await;
    }

    #[tokio::test]
    async fn startup_removes_a_stale_leader_label() {
        let (_, _, pod) = paths();
        let (client, mut server) = Scenario::new("startup removes the label")
            .expect(
                Call::patch(&pod)
                    .query("fieldManager", LABEL_MANAGER)
                    .body("a merge patch setting the leader label to null", |b| {
                        b["metadata"]["labels"].get(LEADER_LABEL) == Some(&Value::Null)
                    })
                    .reply(Reply::ok(&unlabelled())),
            )
            .serve();
        let me = Leadership::new(client, "ops", "barrage-operator", "op-1", Some("op-1"));
        server.run(me.clear_label()).await.unwrap();
    }

    #[tokio::test]
    async fn stepping_down_removes_the_label_then_frees_the_lease() {
        let (lease, _, pod) = paths();
        let held = Lease {
            metadata: ObjectMeta {
                name: Some("barrage-operator".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("op-1".into()),
                ..Default::default()
            }),
        };
        let (client, mut server) = Scenario::new("stepping down")
            .expect(
                Call::patch(&pod)
                    .body("removing the label", |b| {
                        b["metadata"]["labels"].get(LEADER_LABEL) == Some(&Value::Null)
                    })
                    .reply(Reply::ok(&unlabelled())),
            )
            .expect(Call::get(&lease).reply(Reply::ok(&held)))
            .expect(Call::put(&lease).body("a lease without holder", |b| {
                b["spec"].get("holderIdentity").is_none_or(Value::is_null)
            }))
            .serve();
        let me = Leadership::new(client, "ops", "barrage-operator", "op-1", Some("op-1"));
        server.run(me.release()).await;
    }

    /// The e2e failover took 21 s: after the release, the renewer (every 4 s)
    /// found the lease free and took it again while the process drained the
    /// webhook for 5 s, so the standby waited for it to expire.
    #[tokio::test(start_paused = true)]
    async fn no_renewal_after_stepping_down() {
        let (path, leases, _) = paths();
        let mut held = lease(Some("op-1"), 0);
        held.metadata.name = Some("barrage-operator".into());
        let (client, mut server) = Scenario::new("renewals stop at the release")
            .timeout(Duration::from_secs(120))
            .expect(Call::get(&path).reply(Reply::not_found("barrage-operator")))
            .expect(Call::post(&leases))
            // One renewal 4 s later.
            .expect(Call::get(&path).reply(Reply::ok(&held)))
            .expect(
                Call::put(&path).body("renewed by op-1", |b| b["spec"]["holderIdentity"] == "op-1"),
            )
            // The release at 5 s; then nothing, though the lease is free.
            .expect(Call::get(&path).reply(Reply::ok(&held)))
            .expect(Call::put(&path).body("a lease without holder", |b| {
                b["spec"].get("holderIdentity").is_none_or(Value::is_null)
            }))
            .serve();
        let me = Leadership::new(client, "ops", "barrage-operator", "op-1", None);
        server
            .run(async {
                me.acquire().await;
                tokio::time::sleep(Duration::from_secs(5)).await;
                me.release().await;
                // Past the next renewal (8 s), before a renewer that failed it
                // would exit the process (last success + RENEW_DEADLINE).
                tokio::time::sleep(Duration::from_secs(6)).await;
            })
            .await;
        assert_eq!(server.seen().len(), 6, "{:?}", server.seen());
    }

    #[tokio::test]
    async fn without_a_pod_nothing_is_labelled() {
        let (client, mut server) = Scenario::new("no pod, no call").serve();
        let me = Leadership::new(client, "ops", "barrage-operator", "op-1", None);
        server.run(me.clear_label()).await.unwrap();
    }

    fn lease(holder: Option<&str>, renewed_secs_ago: i64) -> Lease {
        let now = Timestamp::now();
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(LEASE_SECONDS),
                renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_secs_ago))),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_held_lease_is_taken_only_once_expired() {
        let now = Timestamp::now();
        assert!(!can_take(&lease(Some("b"), 3), "a", now));
        assert!(can_take(&lease(Some("b"), 60), "a", now));
        assert!(can_take(&lease(Some("a"), 3), "a", now));
        assert!(can_take(&lease(None, 3), "a", now));
    }

    #[test]
    fn claiming_counts_transitions_only_on_a_new_holder() {
        let now = Timestamp::now();
        let l = claimed(lease(Some("b"), 60), "a", now);
        let s = l.spec.as_ref().unwrap();
        assert_eq!(
            (s.holder_identity.as_deref(), s.lease_transitions),
            (Some("a"), Some(1))
        );
        let again = claimed(l, "a", now);
        assert_eq!(again.spec.unwrap().lease_transitions, Some(1));
    }
}
