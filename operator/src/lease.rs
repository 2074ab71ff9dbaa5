//! Leader election with a coordination.k8s.io/v1 Lease, so that with two
//! replicas only one reconciles. A replica that cannot renew its lease in
//! time exits rather than risk reconciling beside the new leader; Kubernetes
//! restarts it as a standby.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{Api, Client, api::PostParams};
use tracing::{info, warn};

pub const LEASE_SECONDS: i32 = 15;
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

/// Waits until this replica holds the lease, then keeps renewing it in the
/// background; exits the process if renewal fails for too long.
pub async fn acquire(client: Client, namespace: &str, name: &str, me: &str) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    loop {
        match try_take(&api, name, me).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => warn!(error = %e, "lease: cannot read or write"),
        }
        tokio::time::sleep(RETRY).await;
    }
    info!(lease = name, identity = me, "became the leader");
    let (name, me) = (name.to_string(), me.to_string());
    tokio::spawn(async move {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW).await;
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

/// Gives the lease up on a graceful shutdown, so that a standby takes over
/// at once instead of waiting for it to expire.
pub async fn release(client: Client, namespace: &str, name: &str, me: &str) {
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
