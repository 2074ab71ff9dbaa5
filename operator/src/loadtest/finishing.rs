//! The end of a run: the final results from every runner that can still
//! answer, the verdict and the report ConfigMap (`finalize`); then, once the
//! verdict is written, the runners' cleanup (`cleanup`).

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::events::EventType,
};

use super::{
    context::{Context, now, runner_ref},
    next::Next,
    output,
    rules::parse_thresholds,
};
use crate::{
    agents::{RunnerRef, for_all},
    cluster::MANAGER,
    crd::{Cleanup, LoadTest, Phase},
    downsample,
    error::Result,
    pods,
    results::{Pull, Results},
    status,
};

/// A ConfigMap holds at most 1 MiB; keep the report well inside it.
const MAX_REPORT: usize = 900 * 1024;

/// Final results (with the per-interval series) from every runner that can
/// still answer, the last known from those that cannot, the verdict and
/// the report ConfigMap. The runners stay until the verdict is written
/// (`cleanup` runs in the next reconcile): should that write fail, the
/// retry can still ask them.
pub async fn finalize(
    lt: &LoadTest,
    ctx: &Context,
    mut n: Next,
    results: &mut Results,
    pull: &Pull<'_>,
    failure: Option<String>,
) -> Result<Next> {
    let generation = lt.metadata.generation;
    let fin = results.finish(pull).await;
    // A refused final reply leaves that runner's last live figures, which
    // miss its last requests: the run must not pass on them; nor on results
    // that miss a runner altogether.
    let failure = failure.or(fin.refused).or(fin.incomplete);
    let merged = fin.merged;
    let abort = results.abort().map(str::to_string);
    let engine = status::engine_failure(&merged);
    let reason = (abort.is_none() && failure.is_none() && engine.is_some())
        .then_some(status::REASON_ENGINE_FAILED);
    let failure = failure.or(engine);
    // Thresholds judge the full-resolution series; only the ConfigMap's
    // copy is downsampled to fit.
    let (report, json) = downsample::final_report(
        &parse_thresholds(lt),
        merged,
        abort.clone().or(failure.clone()),
        MAX_REPORT,
    );
    let outcomes = report.thresholds.clone();
    let cm: ConfigMap = pods::report_config_map(lt, json);
    ctx.ns_api::<ConfigMap>(lt)
        .patch(
            &pods::report_name(lt),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&cm),
        )
        .await?;
    // The final push once the report is written: a verdict retried after a
    // failed patch (with figures that may have become complete) must not
    // find its last push already made with the earlier ones.
    let refused = output::finish(lt, ctx, &mut n.status, &report.snapshot).await;
    n = output::with_event(n, refused);

    let st = &mut n.status;
    st.report = Some(pods::report_name(lt));
    let (phase, msg) = status::judged(
        st,
        &report.snapshot,
        outcomes,
        abort.as_deref(),
        failure.as_deref(),
    );
    let reason = reason.map_or_else(|| format!("{phase:?}"), str::to_string);
    if lt.spec.plan.teardown.is_some() {
        // The runners' results are final; the final phase waits for the
        // teardown (`tearing_down`), whose outcome is reported apart.
        status::judged_before_teardown(st, phase, &reason, &msg, generation, now());
        n.requeue = Some(Duration::from_secs(1));
        return Ok(n.event(EventType::Normal, "TearingDown", msg));
    }
    status::finish_as(st, phase, &reason, msg.clone(), generation, now());
    let (type_, event) = if phase == Phase::Succeeded {
        (EventType::Normal, "Succeeded")
    } else {
        (EventType::Warning, "Failed")
    };
    // The cleanup comes in the next reconcile, once the verdict is written.
    n.requeue = Some(Duration::from_secs(1));
    Ok(n.event(type_, event, msg))
}

/// After the verdict is written: delete the runner pods, or (cleanup: Keep)
/// let their agents exit so the pods end Completed with their logs; and
/// forget what memory held for the run.
pub async fn cleanup(lt: &LoadTest, ctx: &Context) -> Result<()> {
    let found = ctx.runner_pods(lt);
    match lt.spec.cleanup {
        Cleanup::Delete => {
            let api = ctx.ns_api::<Pod>(lt);
            for p in found.values() {
                if p.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                match api.delete(&p.name_any(), &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Cleanup::Keep => {
            let refs: Vec<RunnerRef> = found
                .iter()
                .filter(|(_, p)| {
                    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                })
                .filter_map(|(&index, p)| runner_ref(index, p))
                .collect();
            if !refs.is_empty() {
                let ch = ctx.channel(lt).await?;
                for_all(&refs, |r| {
                    let ch = ch.clone();
                    async move { ch.agents.shutdown(&r, &ch.token).await }
                })
                .await;
            }
        }
    }
    ctx.forget(&lt.uid().unwrap_or_default());
    Ok(())
}
