//! The Provisioning phase: run the setup Job and learn how many records it
//! published, or wait for an earlier LoadTest's records (`spec.dataFrom`).

use std::time::Duration;

use k8s_openapi::api::{batch::v1::Job, core::v1::Secret};
use kube::{ResourceExt, runtime::events::EventType};

use super::{
    context::{Context, enter, in_phase, now},
    next::{Next, fail},
};
use crate::{
    crd::{LoadTest, LoadTestStatus, Phase, RecordsStatus},
    error::Result,
    observe::{self, SetupFailure},
    pods, progress, setup,
    status::{COND_PROVISIONED, set_condition},
};

const SETUP_TIMEOUT: Duration = Duration::from_secs(600);
/// Beyond the Job's own margin (`setup::JOB_MARGIN`), so that the Job's
/// deadline and the setup's own message come before the operator gives up.
const OPERATOR_MARGIN: Duration = Duration::from_secs(90);

pub fn setup_timeout(lt: &LoadTest) -> Duration {
    lt.spec.timeouts.setup.map_or(SETUP_TIMEOUT, |d| d.0)
}

/// In Pending: what the setup pod needs, so that it may write its records
/// Secret and nothing else (RBAC cannot limit `create` by name, so the
/// operator creates the Secret empty).
pub async fn prepare(lt: &LoadTest, ctx: &Context) -> Result<()> {
    if lt.spec.setup.is_some() {
        ctx.create_if_absent(lt, &setup::records_secret(lt)).await?;
        ctx.create_if_absent(lt, &setup::service_account(lt))
            .await?;
        ctx.create_if_absent(lt, &setup::role(lt)).await?;
        ctx.create_if_absent(lt, &setup::role_binding(lt)).await?;
    }
    Ok(())
}

pub async fn step(lt: &LoadTest, ctx: &Context, mut st: LoadTestStatus) -> Result<Next> {
    let generation = lt.metadata.generation;
    if let Some(from) = &lt.spec.data_from {
        return reuse(lt, ctx, st, &from.load_test).await;
    }
    let limit = setup_timeout(lt);
    let Some(job) = setup::job(lt, &ctx.config.runner, limit) else {
        // The spec changed under a running test (the change is otherwise
        // ignored); without its setup there is nothing to wait for.
        let msg = "spec.setup was removed while provisioning; re-create the LoadTest".to_string();
        return Ok(fail(st, generation, msg, COND_PROVISIONED, "SpecChanged"));
    };
    ctx.create_if_absent(lt, &job).await?;
    let job: Job = ctx.ns_api::<Job>(lt).get(&pods::setup_name(lt)).await?;
    // The Job's pods say why better than the Job does (the setup's own
    // message: counts and first errors), and show a stuck image at once.
    // Newest first: with retries, the latest attempt speaks.
    let mut pods = ctx.setup_pods(lt, job.metadata.uid.as_deref());
    pods.sort_by_key(|p| std::cmp::Reverse(p.creation_timestamp()));
    let pod_failure = pods.iter().find_map(observe::setup_pod_failure);
    progress::provisioning(&mut st, lt, &ctx.ns_api(lt), pods.first(), now()).await;
    let state = match (observe::job_state(&job), pod_failure) {
        (observe::JobState::Succeeded, _) => observe::JobState::Succeeded,
        (_, Some(f)) if is_final(&job, &f) => observe::JobState::Failed(f.to_string()),
        (observe::JobState::Failed(generic), other) => {
            observe::JobState::Failed(other.map_or(generic, |f| f.to_string()))
        }
        (running, _) => running,
    };
    let waited = limit + OPERATOR_MARGIN;
    let mut n = match state {
        observe::JobState::Succeeded => provisioned(lt, ctx, st).await?,
        observe::JobState::Failed(why) => fail(
            st,
            generation,
            format!("setup job failed: {why}"),
            COND_PROVISIONED,
            "JobFailed",
        ),
        observe::JobState::Running if in_phase(&st) > waited => fail(
            st,
            generation,
            format!(
                "the setup job did not finish within spec.timeouts.setup ({}) and {} for its pod to start and publish",
                barrage_runner::duration::format_duration(limit),
                barrage_runner::duration::format_duration(OPERATOR_MARGIN)
            ),
            COND_PROVISIONED,
            "Timeout",
        ),
        observe::JobState::Running => Next::new(st, Some(Duration::from_secs(2))),
    };
    n.requeue = n.requeue.or(Some(Duration::from_secs(1)));
    Ok(n)
}

/// The Job succeeded: read the count the publisher left on the Secret.
async fn provisioned(lt: &LoadTest, ctx: &Context, mut st: LoadTestStatus) -> Result<Next> {
    let name = pods::records_name(&lt.name_any());
    let secret: Secret = ctx.ns_api::<Secret>(lt).get(&name).await?;
    let count = setup::published_count(&secret);
    if let Some(count) = count {
        st.records = Some(RecordsStatus {
            secret: name,
            count,
            distinct_used: None,
        });
    }
    let msg = match count {
        Some(c) => format!("the setup job published {c} records"),
        None => "the setup job finished (no records)".into(),
    };
    set_condition(
        &mut st.conditions,
        COND_PROVISIONED,
        true,
        "JobSucceeded",
        &msg,
        lt.metadata.generation,
        now(),
    );
    enter(&mut st, Phase::Starting);
    Ok(Next::new(st, Some(Duration::from_secs(1))).event(EventType::Normal, "Provisioned", msg))
}

/// A failed container ends the setup unless the Job will retry its pod; a
/// stuck image that retrying cannot mend ends it at once.
fn is_final(job: &Job, f: &SetupFailure) -> bool {
    if !f.exited {
        return f.hopeless;
    }
    let retries = job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(0);
    let failed = job.status.as_ref().and_then(|s| s.failed).unwrap_or(0);
    failed > retries
}

/// `spec.dataFrom`: wait (up to `timeouts.setup`) for the earlier
/// LoadTest's records, then use them.
async fn reuse(lt: &LoadTest, ctx: &Context, mut st: LoadTestStatus, source: &str) -> Result<Next> {
    let generation = lt.metadata.generation;
    let limit = setup_timeout(lt);
    let name = pods::records_name(source);
    let waiting = match ctx.ns_api::<Secret>(lt).get_opt(&name).await? {
        Some(secret) => match setup::published_count(&secret) {
            Some(count) => {
                st.records = Some(RecordsStatus {
                    secret: name,
                    count,
                    distinct_used: None,
                });
                let msg = format!("reusing {count} records of LoadTest {source}");
                set_condition(
                    &mut st.conditions,
                    COND_PROVISIONED,
                    true,
                    "RecordsReused",
                    &msg,
                    generation,
                    now(),
                );
                enter(&mut st, Phase::Starting);
                let n = Next::new(st, Some(Duration::from_secs(1)));
                return Ok(n.event(EventType::Normal, "Provisioned", msg));
            }
            None => format!("LoadTest {source} has not published its records yet"),
        },
        None => format!("LoadTest {source} has no records Secret {name} yet"),
    };
    let source_lt = ctx.ns_api::<LoadTest>(lt).get_opt(source).await?;
    if let Some(msg) = hopeless(source, source_lt.as_ref(), &waiting) {
        return Ok(fail(st, generation, msg, COND_PROVISIONED, "NoRecords"));
    }
    if in_phase(&st) > limit {
        let msg = format!(
            "{waiting} after spec.timeouts.setup ({})",
            barrage_runner::duration::format_duration(limit)
        );
        return Ok(fail(st, generation, msg, COND_PROVISIONED, "Timeout"));
    }
    st.message = Some(format!("waiting: {waiting}"));
    Ok(Next::new(st, Some(Duration::from_secs(2))))
}

/// Why waiting for `source`'s records is pointless, if it is: it does not
/// exist, it reuses records itself, or it got past provisioning without any.
fn hopeless(source: &str, lt: Option<&LoadTest>, waiting: &str) -> Option<String> {
    let f = "spec.dataFrom.loadTest";
    let Some(lt) = lt else {
        return Some(format!(
            "{f}: LoadTest {source:?} does not exist in this namespace"
        ));
    };
    if let Some(from) = &lt.spec.data_from {
        return Some(format!(
            "{f}: LoadTest {source:?} reuses the records of {:?} itself; point dataFrom at {:?}",
            from.load_test, from.load_test
        ));
    }
    if lt.spec.setup.is_none() {
        return Some(format!(
            "{f}: LoadTest {source:?} has no setup, so it has no records"
        ));
    }
    let past = lt.status.as_ref().is_some_and(|s| {
        s.phase.is_terminal()
            || matches!(
                s.phase,
                Phase::Starting | Phase::Running | Phase::TearingDown
            )
    });
    past.then(|| format!("{f}: LoadTest {source:?} has no records ({waiting})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::tests::lt;

    const SPEC: &str = "target: {baseUrl: 'http://10.0.0.1:8080'}\nload: {users: 1, duration: 1s}\nrequests: [{name: a, path: /}]";

    #[test]
    fn waiting_for_records_ends_when_it_cannot_succeed() {
        let w = "not yet";
        assert!(
            hopeless("seed", None, w)
                .unwrap()
                .contains("does not exist")
        );
        let chained = lt(&format!("{SPEC}\ndataFrom: {{loadTest: first}}"));
        let m = hopeless("seed", Some(&chained), w).unwrap();
        assert!(m.contains("point dataFrom at \"first\""), "{m}");
        assert!(
            hopeless("seed", Some(&lt(SPEC)), w)
                .unwrap()
                .contains("has no setup")
        );
        let mut seeding = lt(&format!("{SPEC}\nsetup: {{image: seed:1}}"));
        assert_eq!(hopeless("seed", Some(&seeding), w), None);
        seeding.status = Some(LoadTestStatus {
            phase: Phase::Provisioning,
            ..Default::default()
        });
        assert_eq!(hopeless("seed", Some(&seeding), w), None);
        seeding.status.as_mut().unwrap().phase = Phase::Succeeded;
        assert!(
            hopeless("seed", Some(&seeding), w)
                .unwrap()
                .contains("has no records (not yet)")
        );
    }

    #[test]
    fn a_failed_attempt_is_final_once_the_retries_are_spent() {
        let job = |limit: i32, failed: i32| -> Job {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "j"},
                "spec": {"backoffLimit": limit, "template": {}},
                "status": {"failed": failed}
            }))
            .unwrap()
        };
        let exited = SetupFailure {
            container: "setup".into(),
            exited: true,
            hopeless: true,
            message: "exit 1".into(),
        };
        assert!(is_final(&job(0, 1), &exited));
        assert!(!is_final(&job(2, 1), &exited));
        assert!(is_final(&job(2, 3), &exited));
        let pulling = SetupFailure {
            exited: false,
            hopeless: false,
            ..exited.clone()
        };
        assert!(!is_final(&job(0, 0), &pulling));
        let backoff = SetupFailure {
            hopeless: true,
            ..pulling
        };
        assert!(is_final(&job(3, 0), &backoff));
    }
}
