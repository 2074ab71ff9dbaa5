//! Running: every round pulls each runner's results, merges them into the
//! status, judges the live (abortOnFail) thresholds, re-sends the start to a
//! runner that missed it, and notices the end: all runners finished, one
//! failed or vanished, an engine failure, or the run overdue.

use std::{collections::BTreeMap, time::Duration};

use barrage_runner::thresholds;
use k8s_openapi::api::core::v1::Pod;
use kube::{ResourceExt, runtime::events::EventType};

use super::{
    context::{Context, runner_ref, unix_us},
    finishing,
    next::Next,
    rules::{oversized_reply, parse_thresholds, run_limit, snapshot_limit},
};
use crate::{
    collect::{RunnerRef, for_all},
    crd::{LoadTest, LoadTestStatus},
    error::{Error, Result},
    observe, pods, status,
};

const COLLECT_INTERVAL: Duration = Duration::from_secs(2);

pub async fn step(lt: &LoadTest, ctx: &Context, mut st: LoadTestStatus) -> Result<Next> {
    let total = lt.spec.runners;
    let uid = lt.uid().unwrap_or_default();
    let at = st
        .start_at_us
        .ok_or_else(|| Error::Other("running without a start instant".into()))?;
    let token = ctx.token(lt).await?;
    let found = ctx.runner_pods(lt);
    let refs: Vec<RunnerRef> = found
        .iter()
        .filter_map(|(&index, p)| runner_ref(index, p))
        .collect();
    let plan_thresholds = parse_thresholds(lt);
    // This test's own memory, held for the round: another test's round
    // never waits on it.
    let run = ctx.runs.of(&uid);
    let mut mem = run.lock().await;
    // The per-interval series only when a live-judged window has settled
    // since the last judged one (once per window, not every round).
    let series = thresholds::series_due(
        &plan_thresholds,
        mem.series_judged_us,
        unix_us().saturating_sub(at),
    );

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
    mem.keep_latest(results.into_iter().map(|(r, res)| (r.index, res)).collect());
    let unstarted: Vec<&RunnerRef> = refs
        .iter()
        .filter(|r| !mem.has_started(r.index) && unix_us() > at + 1_000_000)
        .collect();
    // A runner that missed the start (its call failed) gets the same instant
    // again; the agent starts at once when that instant has passed.
    for r in unstarted {
        let _ = ctx.agents.start(r, &token, at).await;
    }
    let mut merged = mem.merged()?;
    // Windows are judged on a series that every runner sent this round, or
    // not yet: a partial series could fail a window that did not fail.
    if series && all_answered {
        let horizon =
            thresholds::live_horizon_us(merged.interval_us, (merged.elapsed_secs() * 1e6) as u64);
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

    let mut n = Next::new(st, None);
    if mem.abort.is_none()
        && let Some(o) = thresholds::evaluate_live(&plan_thresholds, &merged)
    {
        let why = format!(
            "threshold {:?} failed (observed {})",
            o.source, o.observed_text
        );
        stop_all(ctx, &refs, &token).await;
        mem.abort = Some(why.clone());
        n.status.message = Some(format!("aborting: {why}"));
        n = n.event(EventType::Warning, "Aborting", why);
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
        drop(mem);
        return finishing::finalize(lt, ctx, n, &refs, &token, failure).await;
    }
    let every = lt.spec.collect_interval.map_or(COLLECT_INTERVAL, |d| d.0);
    n.requeue = Some(every);
    Ok(n)
}

fn first_failure(lt: &LoadTest, pods: &BTreeMap<u32, Pod>) -> Option<String> {
    (0..lt.spec.runners).find_map(|i| match pods.get(&i) {
        None => Some(format!("{} is gone", pods::runner_name(lt, i))),
        Some(p) => observe::pod_failure(p).map(|why| format!("{}: {why}", p.name_any())),
    })
}

pub async fn stop_all(ctx: &Context, refs: &[RunnerRef], token: &str) {
    for_all(refs, |r| {
        let (agents, token) = (ctx.agents.clone(), token.to_string());
        async move { agents.stop(&r, &token).await }
    })
    .await;
}
