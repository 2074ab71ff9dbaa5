//! Starting: the runner pods are created (behind their NetworkPolicy), and
//! once every one is ready, all are given one start instant.

use std::time::Duration;

use kube::{ResourceExt, runtime::events::EventType};
use tracing::info;

use super::{
    context::{Context, enter, in_phase, now, runner_ref, unix_us},
    next::{Next, fail, terminal},
};
use crate::{
    agents::{RunnerRef, for_all},
    crd::{LoadTest, LoadTestStatus, Phase},
    error::{Error, Result},
    netpol, observe, pods, progress,
    status::{self, COND_RUNNERS_READY, COND_STARTED, set_condition},
};

const START_TIMEOUT: Duration = Duration::from_secs(300);

pub async fn step(lt: &LoadTest, ctx: &Context, mut st: LoadTestStatus) -> Result<Next> {
    let generation = lt.metadata.generation;
    let total = lt.spec.runners;
    let found = ctx.runner_pods(lt);
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
            let pod = pods::runner_pod(lt, i, &ctx.config.runner);
            match ctx.create_if_absent(lt, &pod).await {
                Ok(()) => {}
                // A full quota, an API server busy or restarting, an earlier
                // runner of this name still terminating: waiting may mend
                // it, within the start timeout below, which then says why.
                Err(e) if may_pass(&e) => {
                    st.message = Some(format!("waiting: {e}"));
                    break;
                }
                Err(e) => return terminal(st, generation, e, COND_RUNNERS_READY),
            }
        }
        // The watch brings the new pods and wakes this reconcile.
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
    progress::starting(&mut st, ready.len() as u32, total, now());
    if ready.len() < total as usize {
        let limit = lt.spec.timeouts.start.map_or(START_TIMEOUT, |d| d.0);
        if in_phase(&st) > limit {
            let waiting: Vec<String> = (0..total)
                .filter_map(|i| match found.get(&i) {
                    None => Some(format!("{}: not created yet", pods::runner_name(lt, i))),
                    Some(p) if !observe::is_ready(p) => {
                        Some(format!("{}: {}", p.name_any(), observe::pending_reason(p)))
                    }
                    Some(_) => None,
                })
                .take(3)
                .collect();
            let mut msg = format!(
                "{} of {total} runners ready after {}; waiting: {}",
                ready.len(),
                barrage_runner::duration::format_duration(limit),
                waiting.join("; ")
            );
            if let Some(why) = st.message.take().filter(|m| m.starts_with("waiting: ")) {
                msg = format!("{msg} (last error: {})", &why["waiting: ".len()..]);
            }
            return Ok(fail(st, generation, msg, COND_RUNNERS_READY, "Timeout"));
        }
        return Ok(Next::new(st, Some(Duration::from_secs(1))));
    }
    let at = unix_us() + ctx.config.start_lead.as_micros() as u64;
    started(&mut st, at, total, generation);
    progress::settle(&mut st);
    // The one status write a phase makes itself: the start instant is
    // stored BEFORE any runner hears it, so that an operator restarted
    // mid-way repeats the same instant (which the agents accept) and never
    // starts a second time. The reconciler's own write follows only if the
    // status changes again.
    ctx.write_status(lt, &st).await?;
    let ch = ctx.channel(lt).await?;
    let results = for_all(&ready, |r| {
        let ch = ch.clone();
        async move { ch.agents.start(&r, &ch.token, at).await }
    })
    .await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(r, res)| res.as_ref().err().map(|e| format!("{}: {e}", r.name)))
        .collect();
    info!(runners = total, at, failed = failed.len(), "start sent");
    let note = format!(
        "{total} runners start at {}",
        st.started_at.clone().unwrap_or_default()
    );
    let mut n = Next::new(st.clone(), Some(Duration::from_secs(1)));
    n.written = Some(st);
    n = n.event(EventType::Normal, "Started", note);
    if !failed.is_empty() {
        n = n.event(
            EventType::Warning,
            "StartRetry",
            format!("start not yet confirmed by: {}", failed.join(", ")),
        );
    }
    Ok(n)
}

/// Whether creating a runner pod may succeed if tried again: not for a name
/// held by a stranger, nor for a pod the API server refuses as invalid or
/// forbids (Pod Security, a quota that wants limits), but for a quota that
/// is full for now and for any error that is not a refusal.
fn may_pass(e: &Error) -> bool {
    match e {
        Error::Conflict(_) => false,
        Error::Kube(kube::Error::Api(s)) => match s.code {
            400 | 422 => false,
            403 => s.message.contains("exceeded quota"),
            _ => true,
        },
        _ => true,
    }
}

/// Every runner is ready: the status of a test that starts at `at_us`.
fn started(st: &mut LoadTestStatus, at_us: u64, total: u32, generation: Option<i64>) {
    if st
        .message
        .as_deref()
        .is_some_and(|m| m.starts_with("waiting: "))
    {
        st.message = None;
    }
    st.start_at_us = Some(at_us);
    st.started_at = Some(
        k8s_openapi::jiff::Timestamp::from_microsecond(at_us as i64)
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
    enter(st, Phase::Running);
}
