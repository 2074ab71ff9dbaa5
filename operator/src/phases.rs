//! One step of a LoadTest's lifecycle per reconcile:
//! Pending → (Provisioning) → Starting → Running → Succeeded | Failed | Aborted.
//! Each step reads the cluster, decides with pure functions, and returns the
//! new status, the events to publish and when to look again.

use std::{collections::BTreeMap, time::Duration};

use barrage_runner::{
    snapshot::Snapshot,
    thresholds::{self, Threshold},
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    runtime::events::EventType,
};
use tracing::info;

use crate::{
    collect::{RunnerRef, for_all},
    controller::{Context, MANAGER, Next, enter, in_phase, now, set_condition},
    crd::{Cleanup, LoadTest, LoadTestStatus, Phase},
    downsample,
    error::{Error, Result},
    netpol, observe, pods, provisioning,
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
            || barrage_runner::limits::open_ended(crate::collect::report_interval(&lt.spec.plan)),
            |d| d.0,
        )
    } else {
        l.stages.iter().map(|s| s.duration.0).sum()
    };
    length + lt.spec.timeouts.run_grace.map_or(RUN_GRACE, |g| g.0)
}

/// The first reply refused for its size, as the failure to report.
fn oversized_reply(results: &[(RunnerRef, Result<String>)]) -> Option<String> {
    results.iter().find_map(|(_, res)| match res {
        Err(e @ Error::ReplyTooLarge { .. }) => Some(e.to_string()),
        _ => None,
    })
}

/// The largest snapshot a runner of `lt` may send (see `collect`).
fn snapshot_limit(lt: &LoadTest) -> usize {
    crate::collect::snapshot_limit(&lt.spec.plan, run_limit(lt))
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
    // The per-interval series only when a live-judged window has settled
    // since the last judged one (once per window, not every round).
    let judged_us = ctx
        .runs
        .lock()
        .await
        .get(&uid)
        .map_or(0, |m| m.series_judged_us);
    let series = thresholds::series_due(&plan_thresholds, judged_us, unix_us().saturating_sub(at));

    // Pull every runner's cumulative results; keep the latest of each.
    let reply_limit = snapshot_limit(lt);
    let results = for_all(&refs, |r| {
        let (agents, token) = (ctx.agents.clone(), token.clone());
        async move { agents.snapshot(&r, &token, series, reply_limit).await }
    })
    .await;
    let all_answered = refs.len() == total as usize && results.iter().all(|(_, res)| res.is_ok());
    // A runner that sends more than its plan can produce is broken (or not
    // ours): the test fails rather than the operator reading on.
    let oversized = oversized_reply(&results);
    keep_latest(ctx, &uid, results).await;
    let mut unstarted = Vec::new();
    {
        let mut runs = ctx.runs.lock().await;
        let mem = runs.entry(uid.clone()).or_default();
        for r in &refs {
            let started = mem.last.get(&r.index).is_some_and(|j| has_started(j));
            if !started && unix_us() > at + 1_000_000 {
                unstarted.push(r.clone());
            }
        }
    }
    // A runner that missed the start (its call failed) gets the same instant
    // again; the agent starts at once when that instant has passed.
    for r in &unstarted {
        let _ = ctx.agents.start(r, &token, at).await;
    }
    let mut merged = merged_latest(ctx, &uid).await?;
    // Windows are judged on a series that every runner sent this round, or
    // not yet: a partial series could fail a window that did not fail.
    if series && all_answered {
        let horizon =
            thresholds::live_horizon_us(merged.interval_us, (merged.elapsed_secs() * 1e6) as u64);
        let mut runs = ctx.runs.lock().await;
        let mem = runs.entry(uid.clone()).or_default();
        mem.series_judged_us = mem.series_judged_us.max(horizon);
    } else {
        merged.intervals.clear();
    }
    status::apply_results(&mut st, &merged);
    let alive = found
        .values()
        .filter(|p| observe::pod_failure(p).is_none())
        .count() as u32;
    st.runners_ready = alive;
    st.runners = Some(status::runners_text(alive, total));

    let mut n = next(st, None);
    let abort = ctx
        .runs
        .lock()
        .await
        .get(&uid)
        .and_then(|m| m.abort.clone());
    if abort.is_none()
        && let Some(o) = thresholds::evaluate_live(&plan_thresholds, &merged)
    {
        let why = format!(
            "threshold {:?} failed (observed {})",
            o.source, o.observed_text
        );
        stop_all(ctx, &refs, &token).await;
        ctx.runs.lock().await.entry(uid.clone()).or_default().abort = Some(why.clone());
        n.status.message = Some(format!("aborting: {why}"));
        n.events.push((EventType::Warning, "Aborting", why));
    }
    let failure = first_failure(lt, &found).or(oversized);
    let limit = run_limit(lt);
    let overdue = (unix_us() > at + limit.as_micros() as u64).then_some(limit);
    // A runner whose engine failed stopped itself; the others stop too.
    let engine = status::engine_failure(&merged).is_some();
    if merged.finished >= total || failure.is_some() || overdue.is_some() || engine {
        if failure.is_some() || overdue.is_some() || engine {
            stop_all(ctx, &refs, &token).await;
        }
        let failure = failure.or(overdue.map(|l| {
            format!(
                "runners did not finish within {}",
                barrage_runner::duration::format_duration(l)
            )
        }));
        return finalize(lt, ctx, n, &refs, &token, failure, generation).await;
    }
    let every = lt.spec.collect_interval.map_or(COLLECT_INTERVAL, |d| d.0);
    n.requeue = Some(every);
    Ok(n)
}

/// Whether a runner's snapshot says its load started. Reads one field:
/// decoding the histograms is left to the merge.
fn has_started(snapshot_json: &str) -> bool {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        started_us: Option<u64>,
    }
    serde_json::from_str::<Head>(snapshot_json).is_ok_and(|h| h.started_us.is_some())
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

/// Merges the latest snapshot of every runner, decoding one at a time so a
/// round's memory stays that of one snapshot plus the sum.
/// Keeps each runner's newest snapshot; a runner that did not answer keeps
/// the last one it gave, so nothing it measured is lost.
async fn keep_latest(ctx: &Context, uid: &str, results: Vec<(RunnerRef, Result<String>)>) {
    let mut runs = ctx.runs.lock().await;
    let mem = runs.entry(uid.to_string()).or_default();
    for (r, res) in results {
        if let Ok(json) = res {
            mem.last.insert(r.index, json);
        }
    }
}

async fn merged_latest(ctx: &Context, uid: &str) -> Result<Snapshot> {
    let runs = ctx.runs.lock().await;
    let mut merged = Snapshot::empty(0);
    if let Some(mem) = runs.get(uid) {
        for json in mem.last.values() {
            merged.merge(&Snapshot::from_json(json)?);
        }
    }
    Ok(merged)
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
    refs: &[RunnerRef],
    token: &str,
    failure: Option<String>,
    generation: Option<i64>,
) -> Result<Next> {
    let uid = lt.uid().unwrap_or_default();
    let reply_limit = snapshot_limit(lt);
    let finals = for_all(refs, |r| {
        let (agents, token) = (ctx.agents.clone(), token.to_string());
        async move { agents.snapshot(&r, &token, true, reply_limit).await }
    })
    .await;
    // A refused final reply leaves that runner's last live figures, which
    // miss its last requests: the run must not pass on them.
    let failure = failure.or_else(|| oversized_reply(&finals));
    keep_latest(ctx, &uid, finals).await;
    let merged = merged_latest(ctx, &uid).await?;
    let abort = ctx
        .runs
        .lock()
        .await
        .get(&uid)
        .and_then(|m| m.abort.clone());
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

    #[test]
    fn a_snapshot_tells_whether_its_runner_started() {
        let mut s = Snapshot::empty(0);
        assert!(!has_started(&s.to_json()));
        s.started_us = Some(5);
        assert!(has_started(&s.to_json()));
        assert!(!has_started("not json"));
    }

    #[test]
    fn only_an_oversized_reply_becomes_the_failure() {
        let r = |index| RunnerRef {
            index,
            name: format!("t-runner-{index}"),
            ip: "10.0.0.1".into(),
        };
        let unreachable = Error::Agent {
            runner: "t-runner-0".into(),
            message: "connection refused".into(),
        };
        let mut results = vec![(r(0), Err(unreachable)), (r(1), Ok("{}".to_string()))];
        // An unreachable runner keeps its last figures (it may answer later).
        assert_eq!(oversized_reply(&results), None);
        results.push((
            r(2),
            Err(Error::ReplyTooLarge {
                runner: "t-runner-2".into(),
                what: "snapshot".into(),
                limit: 4096,
                rule: crate::collect::SNAPSHOT_LIMIT_RULE,
            }),
        ));
        let why = oversized_reply(&results).unwrap();
        assert!(
            why.contains("t-runner-2") && why.contains("4096-byte limit"),
            "{why}"
        );
    }
}
