//! One step of a LoadTest's lifecycle per reconcile:
//! Pending → (Provisioning) → Starting → Running → Succeeded | Failed | Aborted.
//! Each step reads the cluster, decides with pure functions, and returns the
//! new status, the events to publish and when to look again.

use std::{collections::BTreeMap, time::Duration};

use barrage_runner::thresholds::{self, Threshold};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    runtime::events::EventType,
};
use tracing::info;

use crate::{
    agents::{RunnerRef, for_all},
    controller::{Context, MANAGER, Next, enter, in_phase, now, set_condition},
    crd::{Cleanup, LoadTest, LoadTestStatus, Phase},
    downsample,
    error::{Error, Result},
    netpol, observe, pods, provisioning,
    results::{Pull, Results},
    status::{
        self, COND_PROVISIONED, COND_RUNNERS_READY, COND_SPEC_CHANGED, COND_STARTED, COND_VALIDATED,
    },
    validate::validate,
};

const START_TIMEOUT: Duration = Duration::from_secs(300);
const RUN_GRACE: Duration = Duration::from_secs(300);
const COLLECT_INTERVAL: Duration = Duration::from_secs(2);
/// A ConfigMap holds at most 1 MiB; keep the report well inside it.
const MAX_REPORT: usize = 900 * 1024;

pub(crate) fn next(status: LoadTestStatus, requeue: Option<Duration>) -> Next {
    Next {
        status,
        events: Vec::new(),
        requeue,
    }
}

pub async fn step(lt: &LoadTest, ctx: &Context, mut st: LoadTestStatus) -> Result<Next> {
    let generation = lt.metadata.generation;
    // A spec rejected as invalid is tried again once the user changes it.
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
    let mut n = match st.phase {
        Phase::Pending => pending(lt, ctx, st).await?,
        Phase::Provisioning => {
            let st0 = st.clone();
            match provisioning::step(lt, ctx, st).await {
                Err(e) => terminal(st0, generation, e, COND_PROVISIONED)?,
                n => n?,
            }
        }
        Phase::Starting => starting(lt, ctx, st).await?,
        Phase::Running => running(lt, ctx, st).await?,
        Phase::Succeeded | Phase::Failed | Phase::Aborted => {
            cleanup(lt, ctx).await?;
            next(st, None)
        }
    };
    events.append(&mut n.events);
    n.events = events;
    Ok(n)
}

async fn pending(lt: &LoadTest, ctx: &Context, mut st: LoadTestStatus) -> Result<Next> {
    let generation = lt.metadata.generation;
    st.observed_generation = generation;
    if let Err(e) = validate(&lt.name_any(), &lt.spec) {
        let msg = format!("invalid spec: {e}");
        status::failed(
            &mut st,
            COND_VALIDATED,
            "InvalidSpec",
            &msg,
            generation,
            now(),
        );
        let mut n = next(st, None);
        n.events.push((EventType::Warning, "InvalidSpec", msg));
        return Ok(n);
    }
    let token = random_token();
    let created = async {
        ctx.create_if_absent(lt, &pods::token_secret(lt, &token))
            .await?;
        ctx.create_if_absent(lt, &pods::plan_config_map(lt)).await
    };
    if let Err(e) = created.await {
        return terminal(st, generation, e, COND_VALIDATED);
    }
    set_condition(
        &mut st.conditions,
        COND_VALIDATED,
        true,
        "Valid",
        "the spec is valid",
        generation,
        now(),
    );
    set_condition(
        &mut st.conditions,
        status::COND_COMPLETE,
        false,
        "InProgress",
        "the test has not finished",
        generation,
        now(),
    );
    st.runners = Some(status::runners_text(0, lt.spec.runners));
    if let Err(e) = provisioning::prepare(lt, ctx).await {
        return terminal(st, generation, e, COND_PROVISIONED);
    }
    let phase = if lt.spec.setup.is_some() || lt.spec.data_from.is_some() {
        Phase::Provisioning
    } else {
        Phase::Starting
    };
    enter(&mut st, phase);
    let mut n = next(st, Some(Duration::from_secs(1)));
    n.events.push((
        EventType::Normal,
        "Validated",
        format!("{} runner(s); next: {phase:?}", lt.spec.runners),
    ));
    Ok(n)
}

/// An error that waiting will not mend (a name taken by an object this
/// LoadTest does not own, a request the API server refuses as invalid or
/// forbidden) fails the test with the reason; any other error is returned,
/// and the reconcile is retried.
fn terminal(st: LoadTestStatus, generation: Option<i64>, e: Error, cond: &str) -> Result<Next> {
    let refused = |code: u16| matches!(code, 400 | 403 | 422);
    match e {
        Error::Conflict(msg) => Ok(fail(st, generation, msg, cond, "NameTaken")),
        Error::Kube(kube::Error::Api(s)) if refused(s.code) => Ok(fail(
            st,
            generation,
            format!(
                "the API server refused a request ({} {}): {}",
                s.code, s.reason, s.message
            ),
            cond,
            "Refused",
        )),
        other => Err(other),
    }
}

pub(crate) fn fail(
    mut st: LoadTestStatus,
    generation: Option<i64>,
    msg: String,
    cond: &str,
    reason: &str,
) -> Next {
    status::failed(&mut st, cond, reason, &msg, generation, now());
    let mut n = next(st, None);
    n.events.push((EventType::Warning, "Failed", msg));
    n
}

async fn runner_pods(lt: &LoadTest, ctx: &Context) -> Result<BTreeMap<u32, Pod>> {
    let list = ctx
        .ns_api::<Pod>(lt)
        .list(&ListParams::default().labels(&pods::runner_selector(lt)))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|p| {
            let i = p.labels().get(pods::LABEL_INDEX)?.parse().ok()?;
            Some((i, p))
        })
        .collect())
}

/// How to reach a runner pod's agent, once it has an IP.
fn runner_ref(index: u32, p: &Pod) -> Option<RunnerRef> {
    Some(RunnerRef {
        index,
        name: p.name_any(),
        ip: observe::pod_ip(p)?,
    })
}

fn first_failure(lt: &LoadTest, pods: &BTreeMap<u32, Pod>) -> Option<String> {
    (0..lt.spec.runners).find_map(|i| match pods.get(&i) {
        None => Some(format!("{} is gone", pods::runner_name(lt, i))),
        Some(p) => observe::pod_failure(p).map(|why| format!("{}: {why}", p.name_any())),
    })
}

async fn starting(lt: &LoadTest, ctx: &Context, mut st: LoadTestStatus) -> Result<Next> {
    let generation = lt.metadata.generation;
    let total = lt.spec.runners;
    let mut found = runner_pods(lt, ctx).await?;
    if found.len() < total as usize {
        // The fence goes up before any runner exists, so no agent port is
        // ever open to more than the operator.
        if let Some(peer) = &ctx.config.network_policy {
            let np = netpol::runner_policy(lt, peer);
            if let Err(e) = ctx.apply_owned(lt, &np).await {
                return terminal(st, generation, e, COND_RUNNERS_READY);
            }
        }
        for i in (0..total).filter(|i| !found.contains_key(i)) {
            ctx.create_if_absent(lt, &pods::runner_pod(lt, i, &ctx.config.runner))
                .await?;
        }
        found = runner_pods(lt, ctx).await?;
    }
    if let Some(why) = (0..total).find_map(|i| {
        found
            .get(&i)
            .and_then(|p| observe::pod_failure(p).map(|w| format!("{}: {w}", p.name_any())))
    }) {
        return Ok(fail(
            st,
            generation,
            format!("runner failed before the start: {why}"),
            COND_RUNNERS_READY,
            "RunnerFailed",
        ));
    }
    let ready: Vec<RunnerRef> = found
        .iter()
        .filter(|(_, p)| observe::is_ready(p))
        .filter_map(|(&index, p)| runner_ref(index, p))
        .collect();
    st.runners_ready = ready.len() as u32;
    st.runners = Some(status::runners_text(ready.len() as u32, total));
    if ready.len() < total as usize {
        let limit = lt.spec.timeouts.start.map_or(START_TIMEOUT, |d| d.0);
        if in_phase(&st) > limit {
            let waiting: Vec<String> = found
                .values()
                .filter(|p| !observe::is_ready(p))
                .take(3)
                .map(|p| format!("{}: {}", p.name_any(), observe::pending_reason(p)))
                .collect();
            let msg = format!(
                "{} of {total} runners ready after {}; waiting: {}",
                ready.len(),
                barrage_runner::duration::format_duration(limit),
                waiting.join("; ")
            );
            return Ok(fail(st, generation, msg, COND_RUNNERS_READY, "Timeout"));
        }
        return Ok(next(st, Some(Duration::from_secs(1))));
    }
    // Every runner is ready: fix one start instant and record it BEFORE
    // telling anyone, so that an operator restarted mid-way repeats the same
    // instant (which the agents accept) and never starts a second time.
    let at = unix_us() + ctx.config.start_lead.as_micros() as u64;
    st.start_at_us = Some(at);
    st.started_at = Some(
        k8s_openapi::jiff::Timestamp::from_microsecond(at as i64)
            .map(|t| t.to_string())
            .unwrap_or_default(),
    );
    set_condition(
        &mut st.conditions,
        COND_RUNNERS_READY,
        true,
        "AllReady",
        &format!("{total} runners ready"),
        generation,
        now(),
    );
    set_condition(
        &mut st.conditions,
        COND_STARTED,
        true,
        "StartSent",
        "every runner was given the same start instant",
        generation,
        now(),
    );
    enter(&mut st, Phase::Running);
    ctx.write_status(lt, &st).await?;
    let token = ctx.token(lt).await?;
    let results = for_all(&ready, |r| {
        let (agents, token) = (ctx.agents.clone(), token.clone());
        async move { agents.start(&r, &token, at).await }
    })
    .await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(r, res)| res.as_ref().err().map(|e| format!("{}: {e}", r.name)))
        .collect();
    info!(runners = total, at, failed = failed.len(), "start sent");
    let mut n = next(st, Some(Duration::from_secs(1)));
    n.events.push((
        EventType::Normal,
        "Started",
        format!(
            "{total} runners start at {}",
            n.status.started_at.clone().unwrap_or_default()
        ),
    ));
    if !failed.is_empty() {
        n.events.push((
            EventType::Warning,
            "StartRetry",
            format!("start not yet confirmed by: {}", failed.join(", ")),
        ));
    }
    Ok(n)
}

/// How long the runners may take: the plan's length, or for a plan that
/// ends by its iterations alone the most the runners let it run
/// (`limits::open_ended`), plus the grace for stopping and reporting.
fn run_limit(lt: &LoadTest) -> Duration {
    let l = &lt.spec.plan.load;
    let length = if l.stages.is_empty() {
        l.duration.map_or_else(
            || barrage_runner::limits::open_ended(crate::agents::report_interval(&lt.spec.plan)),
            |d| d.0,
        )
    } else {
        l.stages.iter().map(|s| s.duration.0).sum()
    };
    length + lt.spec.timeouts.run_grace.map_or(RUN_GRACE, |g| g.0)
}

/// The largest snapshot a runner of `lt` may send (see `agents`).
fn snapshot_limit(lt: &LoadTest) -> usize {
    crate::agents::snapshot_limit(&lt.spec.plan, run_limit(lt))
}

/// The most request names a runner of `lt` can report: one per request,
/// and one per step of a journey (as `agents::snapshot_limit` counts them).
fn max_names(lt: &LoadTest) -> usize {
    lt.spec
        .plan
        .requests
        .iter()
        .map(|r| r.steps.len() + 1)
        .sum()
}

/// The highest interval index a runner of `lt` can report.
fn max_interval(lt: &LoadTest) -> u64 {
    let interval = crate::agents::report_interval(&lt.spec.plan).max(Duration::from_millis(100));
    (run_limit(lt).as_micros() / interval.as_micros()) as u64 + 2
}

async fn running(lt: &LoadTest, ctx: &Context, mut st: LoadTestStatus) -> Result<Next> {
    let generation = lt.metadata.generation;
    let total = lt.spec.runners;
    let uid = lt.uid().unwrap_or_default();
    let at = st
        .start_at_us
        .ok_or_else(|| Error::Other("running without a start instant".into()))?;
    let token = ctx.token(lt).await?;
    let found = runner_pods(lt, ctx).await?;
    let refs: Vec<RunnerRef> = found
        .iter()
        .filter_map(|(&index, p)| runner_ref(index, p))
        .collect();
    let plan_thresholds = parse_thresholds(lt);
    let store = ctx.results.of(&uid, max_interval(lt), max_names(lt));
    let mut results = store.lock().await;
    let pull = Pull {
        agents: &ctx.agents,
        refs: &refs,
        token: &token,
        limit: snapshot_limit(lt),
        total,
        thresholds: &plan_thresholds,
        elapsed_us: unix_us().saturating_sub(at),
    };
    let round = results.round(&pull).await;
    // A runner that missed the start (its call failed) gets the same instant
    // again; the agent starts at once when that instant has passed.
    if unix_us() > at + 1_000_000 {
        for r in &round.unstarted {
            let _ = ctx.agents.start(r, &token, at).await;
        }
    }
    // While the results are being rebuilt the status keeps its last figures.
    if let Some(merged) = &round.merged {
        status::apply_results(&mut st, merged);
    }
    let alive = found
        .values()
        .filter(|p| observe::pod_failure(p).is_none())
        .count() as u32;
    st.runners_ready = alive;
    st.runners = Some(status::runners_text(alive, total));

    let mut n = next(st, None);
    if let Some(why) = round.abort {
        stop_all(ctx, &refs, &token).await;
        n.status.message = Some(format!("aborting: {why}"));
        n.events.push((EventType::Warning, "Aborting", why));
    }
    let failure = first_failure(lt, &found).or(round.refused);
    let limit = run_limit(lt);
    let overdue = (unix_us() > at + limit.as_micros() as u64).then_some(limit);
    let merged = round.merged.as_ref();
    let finished = merged.is_some_and(|m| m.finished >= total);
    // A runner whose engine failed stopped itself; the others stop too.
    let engine = merged.is_some_and(|m| status::engine_failure(m).is_some());
    if finished || failure.is_some() || overdue.is_some() || engine {
        if failure.is_some() || overdue.is_some() || engine {
            stop_all(ctx, &refs, &token).await;
        }
        let failure = failure.or(overdue.map(|l| {
            format!(
                "runners did not finish within {}",
                barrage_runner::duration::format_duration(l)
            )
        }));
        return finalize(lt, ctx, n, &mut results, &pull, failure, generation).await;
    }
    let every = lt.spec.collect_interval.map_or(COLLECT_INTERVAL, |d| d.0);
    n.requeue = Some(every);
    Ok(n)
}

fn parse_thresholds(lt: &LoadTest) -> Vec<Threshold> {
    // Validated in Pending; a threshold that stopped parsing cannot happen.
    // A spec without thresholds is judged by the runner's default.
    thresholds::plan_sources(lt.spec.plan.thresholds.as_deref())
        .into_iter()
        .filter_map(|(s, is_default)| {
            let mut t: Threshold = s.parse().ok()?;
            t.is_default = is_default;
            Some(t)
        })
        .collect()
}

async fn stop_all(ctx: &Context, refs: &[RunnerRef], token: &str) {
    for_all(refs, |r| {
        let (agents, token) = (ctx.agents.clone(), token.to_string());
        async move { agents.stop(&r, &token).await }
    })
    .await;
}

/// The end: final results (with the per-interval series) from every runner
/// that can still answer, the last known from those that cannot, the
/// verdict, the report ConfigMap, and the runners' cleanup.
async fn finalize(
    lt: &LoadTest,
    ctx: &Context,
    mut n: Next,
    results: &mut Results,
    pull: &Pull<'_>,
    failure: Option<String>,
    generation: Option<i64>,
) -> Result<Next> {
    let uid = lt.uid().unwrap_or_default();
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
    status::finish_as(st, phase, &reason, msg.clone(), generation, now());
    let type_ = if phase == Phase::Succeeded {
        EventType::Normal
    } else {
        EventType::Warning
    };
    n.events.push((
        type_,
        if phase == Phase::Succeeded {
            "Succeeded"
        } else {
            "Failed"
        },
        msg,
    ));
    n.requeue = None;
    ctx.write_status(lt, &n.status).await?;
    cleanup(lt, ctx).await?;
    ctx.runs.lock().await.remove(&uid);
    ctx.results.forget(&uid);
    Ok(n)
}

/// After the results are in: delete the runner pods, or (cleanup: Keep) let
/// their agents exit so the pods end Completed with their logs.
async fn cleanup(lt: &LoadTest, ctx: &Context) -> Result<()> {
    let found = runner_pods(lt, ctx).await?;
    match lt.spec.cleanup {
        Cleanup::Delete => {
            let api = ctx.ns_api::<Pod>(lt);
            for p in found.values() {
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
                let token = ctx.token(lt).await?;
                for_all(&refs, |r| {
                    let (agents, token) = (ctx.agents.clone(), token.clone());
                    async move { agents.shutdown(&r, &token).await }
                })
                .await;
            }
        }
    }
    Ok(())
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// 32 random bytes from the kernel, hex: the agents' bearer token.
fn random_token() -> String {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom is readable");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timed plans are given their length plus the grace; a plan that ends by
    /// its iterations alone as long as its runners let it run (20,000 report
    /// intervals), not an hour. Replies and overdue are sized by this.
    #[test]
    fn the_run_limit_covers_timed_and_iteration_only_plans() {
        let base = "target: {baseUrl: 'http://x'}\nrequests: [{name: a, path: /}]\n";
        let timed = crate::pods::tests::lt(&format!("{base}load: {{users: 1, duration: 10m}}"));
        assert_eq!(run_limit(&timed), Duration::from_secs(600) + RUN_GRACE);
        let counted = crate::pods::tests::lt(&format!("{base}load: {{users: 1, iterations: 5}}"));
        assert_eq!(
            run_limit(&counted),
            Duration::from_secs(200_000) + RUN_GRACE
        );
        let fine = crate::pods::tests::lt(&format!(
            "{base}reportInterval: 1s\nload: {{users: 1, iterations: 5}}\ntimeouts: {{runGrace: 1m}}"
        ));
        assert_eq!(run_limit(&fine), Duration::from_secs(20_000 + 60));
    }
}
