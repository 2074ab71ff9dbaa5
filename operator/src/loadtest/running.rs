//! Running: every round pulls each runner's results, merges them into the
//! status, judges the live (abortOnFail) thresholds, re-sends the start to a
//! runner that missed it, and notices the end: all runners finished, one
//! failed or vanished, an engine failure, or the run overdue.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use kube::{ResourceExt, runtime::events::EventType};

use super::{
    context::{Context, now, runner_ref, unix_us},
    finishing,
    next::Next,
    output,
    rules::{max_interval, max_names, parse_thresholds, run_limit, snapshot_limit},
};
use crate::{
    agents::{Channel, RunnerRef, for_all},
    crd::{LoadTest, LoadTestStatus},
    error::{Error, Result},
    observe, pods, progress,
    results::Pull,
    status,
};

const COLLECT_INTERVAL: Duration = Duration::from_secs(2);

pub async fn step(lt: &LoadTest, ctx: &Context, mut st: LoadTestStatus) -> Result<Next> {
    let total = lt.spec.runners;
    let uid = lt.uid().unwrap_or_default();
    let at = st
        .start_at_us
        .ok_or_else(|| Error::Other("running without a start instant".into()))?;
    let ch = ctx.channel(lt).await?;
    let found = ctx.runner_pods(lt);
    let refs: Vec<RunnerRef> = found
        .iter()
        .filter_map(|(&index, p)| runner_ref(index, p))
        .collect();
    let plan_thresholds = parse_thresholds(lt);
    // This test's own results, held for the round: another test's round
    // never waits on it.
    let store = ctx.results.of(&uid, max_interval(lt), max_names(lt));
    let mut results = store.lock().await;
    let pull = Pull {
        agents: &ch.agents,
        refs: &refs,
        token: &ch.token,
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
            let _ = ch.agents.start(r, &ch.token, at).await;
        }
    }
    // While the results are being rebuilt the status keeps its last figures.
    let mut refused = None;
    if let Some(merged) = &round.merged {
        status::apply_results(&mut st, merged, &status::Subjects::of(&plan_thresholds));
        refused = output::offer(lt, ctx, &mut st, merged).await;
    }
    progress::running(&mut st, lt, now());
    let alive = found
        .values()
        .filter(|p| observe::pod_failure(p).is_none())
        .count() as u32;
    st.runners_ready = alive;
    st.runners = Some(status::runners_text(alive, total));

    let mut n = output::with_event(Next::new(st, None), refused);
    if let Some(why) = round.abort {
        stop_all(&ch, &refs).await;
        n.status.message = Some(format!("aborting: {why}"));
        n = n.event(EventType::Warning, "Aborting", why);
    }
    // A runner that sends more than its plan can produce, or what does not
    // read, is broken (or not ours): the test fails rather than reading on.
    let failure = first_failure(lt, &found).or(round.refused);
    let limit = run_limit(lt);
    let overdue = (unix_us() > at + limit.as_micros() as u64).then_some(limit);
    let merged = round.merged.as_ref();
    let finished = merged.is_some_and(|m| m.finished >= total);
    // A runner whose engine failed stopped itself; the others stop too.
    let engine = merged.is_some_and(|m| status::engine_failure(m).is_some());
    if finished || failure.is_some() || overdue.is_some() || engine {
        if failure.is_some() || overdue.is_some() || engine {
            stop_all(&ch, &refs).await;
        }
        let failure = failure.or(overdue.map(|l| {
            format!(
                "runners did not finish within {}",
                barrage_runner::duration::format_duration(l)
            )
        }));
        return finishing::finalize(lt, ctx, n, &mut results, &pull, failure).await;
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

pub async fn stop_all(ch: &Channel, refs: &[RunnerRef]) {
    for_all(refs, |r| {
        let ch = ch.clone();
        async move { ch.agents.stop(&r, &ch.token).await }
    })
    .await;
}
