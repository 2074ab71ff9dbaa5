//! The reconciler: converts the object, runs the step of its phase, then
//! writes the status once (server-side apply), publishes the step's events
//! and says when to look again.

use std::{sync::Arc, time::Duration};

use kube::{
    Resource, ResourceExt,
    api::DynamicObject,
    runtime::{controller::Action, events::EventType},
};
use tracing::{Instrument, info_span, warn};

use super::{
    context::{Context, now},
    finishing,
    next::{Next, terminal},
    pending, provisioning, running, starting, tearing_down,
};
use crate::{
    crd::{LoadTest, LoadTestStatus, Phase, loadtest_resource},
    error::{Error, Result},
    status::{self, COND_PROVISIONED, COND_SPEC_CHANGED, COND_VALIDATED, set_condition},
};

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

pub async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let span = info_span!("reconcile", namespace = %ns, name = %name);
    let started = std::time::Instant::now();
    let result = async {
        if obj.meta().deletion_timestamp.is_some() {
            // Owner references let the garbage collector remove the runners.
            ctx.forget(&obj.uid().unwrap_or_default());
            ctx.metrics.forget(&ns, &name);
            return Ok(Action::await_change());
        }
        let lt = match typed(&obj) {
            Ok(lt) => lt,
            Err((field, message)) => return reject(&obj, &ctx, field, message).await,
        };
        ctx.remember(&ns, &name, &obj.uid().unwrap_or_default());
        ctx.pods_ready(&lt).await?;
        let before = lt.status.clone().unwrap_or_default();
        let next = step(&lt, &ctx, before.clone()).await?;
        if next.status != before && Some(&next.status) != next.written.as_ref() {
            ctx.write_status(&lt, &next.status).await?;
        }
        ctx.metrics.observe(&ns, &name, &next.status);
        let reference = lt.object_ref(&());
        for (t, reason, note) in next.events {
            ctx.publish(&reference, t, reason, note).await;
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

pub fn error_policy(lt: Arc<DynamicObject>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(err.category());
    warn!(name = %lt.name_any(), category = err.category(), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(3))
}

/// A LoadTest that does not convert ends Failed, with the field named in its
/// status and an event; it is not retried until it changes.
async fn reject(
    obj: &DynamicObject,
    ctx: &Context,
    field: String,
    message: String,
) -> Result<Action> {
    let st: LoadTestStatus = obj
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let Some((st, msg)) = rejected(st, obj.metadata.generation, &field, &message) else {
        return Ok(Action::await_change());
    };
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    crate::cluster::apply_status(&ctx.client, &loadtest_resource(), &ns, &name, &st).await?;
    let reference = obj.object_ref(&loadtest_resource());
    ctx.publish(&reference, EventType::Warning, "InvalidSpec", msg)
        .await;
    Ok(Action::await_change())
}

/// The status of a LoadTest whose spec does not convert, and the message;
/// None when the status already says so.
fn rejected(
    mut st: LoadTestStatus,
    generation: Option<i64>,
    field: &str,
    message: &str,
) -> Option<(LoadTestStatus, String)> {
    let msg = format!("invalid spec: {field}: {message}");
    if st.phase == Phase::Failed && st.message.as_deref() == Some(msg.as_str()) {
        return None;
    }
    status::invalid_spec(&mut st, &msg, generation, now());
    Some((st, msg))
}

/// One step of the lifecycle: the step of the current phase, after noting a
/// spec that changed under a started test (which keeps its generation).
async fn step(lt: &LoadTest, ctx: &Context, st: LoadTestStatus) -> Result<Next> {
    let generation = lt.metadata.generation;
    let (st, mut events) = spec_change(st, generation);
    let mut n = match st.phase {
        Phase::Pending => pending::step(lt, ctx, st).await?,
        Phase::Provisioning => {
            let st0 = st.clone();
            match provisioning::step(lt, ctx, st).await {
                Err(e) => terminal(st0, generation, e, COND_PROVISIONED)?,
                n => n?,
            }
        }
        Phase::Starting => starting::step(lt, ctx, st).await?,
        Phase::Running => running::step(lt, ctx, st).await?,
        Phase::TearingDown => tearing_down::step(lt, ctx, st).await?,
        Phase::Succeeded | Phase::Failed | Phase::Aborted => {
            finishing::cleanup(lt, ctx).await?;
            Next::new(st, None)
        }
    };
    events.append(&mut n.events);
    n.events = events;
    crate::progress::settle(&mut n.status);
    Ok(n)
}

/// A spec rejected as invalid starts over once the user changes it; a spec
/// changed after the test started is noted (once per generation) and
/// otherwise ignored.
fn spec_change(
    mut st: LoadTestStatus,
    generation: Option<i64>,
) -> (LoadTestStatus, Vec<(EventType, &'static str, String)>) {
    if st.phase == Phase::Failed
        && status::condition(&st.conditions, COND_VALIDATED).is_some_and(|c| c.status == "False")
        && st.observed_generation != generation
    {
        st = LoadTestStatus::default();
    }
    let mut events = Vec::new();
    if st.phase != Phase::Pending
        && st.observed_generation.is_some()
        && st.observed_generation != generation
    {
        let already = status::condition(&st.conditions, COND_SPEC_CHANGED)
            .is_some_and(|c| c.observed_generation == generation);
        if !already {
            let msg = format!(
                "the spec changed to generation {} after the test started; the test keeps running generation {}",
                generation.unwrap_or(0),
                st.observed_generation.unwrap_or(0)
            );
            set_condition(
                &mut st.conditions,
                COND_SPEC_CHANGED,
                true,
                "SpecChangedDuringRun",
                &msg,
                generation,
                now(),
            );
            events.push((EventType::Warning, "SpecChangeIgnored", msg));
        }
    }
    (st, events)
}

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

    #[test]
    fn a_rejected_spec_is_written_once() {
        let (st, msg) = rejected(LoadTestStatus::default(), Some(2), "spec.x", "bad").unwrap();
        assert_eq!(st.phase, Phase::Failed);
        assert_eq!(msg, "invalid spec: spec.x: bad");
        assert!(rejected(st, Some(2), "spec.x", "bad").is_none());
    }
}
