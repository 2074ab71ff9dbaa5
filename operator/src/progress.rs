//! `status.progress`: how far the current stage is, for people (`kubectl
//! get -o yaml`, `kubectl barrage watch`).
//!
//! - Provisioning (`setup`, users): the last progress line of the setup
//!   pod's log (`barrage_runner::progress`; the built-in setup prints one
//!   every 2 s, a custom image may), read at most every [`REFRESH`] and
//!   only its tail ([`LOG_TAIL_LINES`], [`LOG_LIMIT_BYTES`]). The total is
//!   the line's, else `spec.setup.users`.
//! - Starting (`start`, runners): runners ready of `spec.runners`.
//! - Running (`run`): for a plan that ends by its iterations alone,
//!   iterations done of planned (from the merged figures); else seconds
//!   elapsed of the plan's length.
//!
//! Progress always describes the current phase: the next phase replaces
//! it and it is cleared when the test leaves Running ([`settle`]); the
//! final figures say the rest. The rate and estimate are [`advance`]d from
//! what the status held before (its counts, rate and `observedAt`), so
//! they survive an operator restart, and the status changes only when
//! what it shows changes: it is written with the rest of the status, once
//! per reconcile, at most every [`REFRESH`] while provisioning.

use std::time::Duration;

use barrage_runner::{
    plan::{Load, Plan},
    progress::{self as counts, Progress},
};
use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::api::{Api, LogParams};

use crate::crd::{LoadTest, LoadTestStatus, Phase, ProgressStatus};

/// The least time between two reads of the setup pod's log, and between two
/// updates when the counts did not move.
pub const REFRESH: Duration = Duration::from_secs(5);
/// How much of the setup pod's log is read: its last lines, and of them at
/// most this many bytes (a log is what a container chose to print). The
/// byte bound cuts the window's end, where the newest lines are, so it is
/// wide enough for 50 long lines (a custom image printing JSON).
pub const LOG_TAIL_LINES: i64 = 50;
pub const LOG_LIMIT_BYTES: i64 = 256 * 1024;
/// A log read that takes longer is given up (a kubelet that hangs must not
/// hold the LoadTest's reconcile).
const LOG_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The setup Job's container that runs the setup (`crate::setup`).
const SETUP_CONTAINER: &str = "setup";

/// The new progress from the status's previous one (`prev`), the counts
/// now and the time: the rate over the recent past (see
/// `barrage_runner::progress::rate`) and the time left at it. `prev` is
/// kept as it is while nothing it shows would change, so an unchanged
/// stage writes no status.
pub fn advance(prev: Option<&ProgressStatus>, p: Progress, now: Timestamp) -> ProgressStatus {
    let since = prev.and_then(|q| {
        let same = q.stage == p.stage && q.unit == p.unit && q.total == p.total;
        let at: Timestamp = q.observed_at.as_deref()?.parse().ok()?;
        let secs = now.duration_since(at).as_secs_f64();
        (same && p.done >= q.done && secs >= 0.0).then_some((q, secs))
    });
    let (per_second, remaining) = if p.unit == "seconds" {
        (None, p.total.map(|t| t.saturating_sub(p.done)))
    } else {
        let per_second = match since {
            Some((q, secs)) => counts::rate(q.per_second, p.done - q.done, secs),
            None => None,
        };
        (
            per_second,
            counts::remaining_secs(p.total, p.done, per_second),
        )
    };
    let next = ProgressStatus {
        text: counts::text(&p, per_second, remaining),
        stage: p.stage,
        unit: p.unit,
        done: p.done,
        failed: p.failed,
        total: p.total,
        // Two decimals: a rate that wobbles in the fifth does not rewrite
        // the status.
        per_second: per_second.map(|r| (r * 100.0).round() / 100.0),
        remaining_seconds: remaining,
        observed_at: Some(now.to_string()),
    };
    match since {
        Some((q, secs)) if still(q, &next, secs) => q.clone(),
        _ => next,
    }
}

/// Whether `prev` may stand for `next`, `secs` later: it shows the same,
/// or the counts did not move and it is younger than [`REFRESH`].
fn still(prev: &ProgressStatus, next: &ProgressStatus, secs: f64) -> bool {
    let counts = |p: &ProgressStatus| (p.done, p.failed, p.total);
    counts(prev) == counts(next) && (prev.text == next.text || secs < REFRESH.as_secs_f64())
}

/// Drops progress that is not the current phase's (see the module docs).
pub fn settle(st: &mut LoadTestStatus) {
    let stage = match st.phase {
        Phase::Provisioning => "setup",
        Phase::Starting => "start",
        Phase::Running => "run",
        _ => "",
    };
    if st.progress.as_ref().is_some_and(|p| p.stage != stage) {
        st.progress = None;
    }
}

/// Starting: `ready` runners of `total`.
pub fn starting(st: &mut LoadTestStatus, ready: u32, total: u32, now: Timestamp) {
    let p = Progress {
        stage: "start".into(),
        unit: "runners".into(),
        done: ready as u64,
        failed: 0,
        total: Some(total as u64),
    };
    st.progress = Some(advance(st.progress.as_ref(), p, now));
}

/// Running, once the round's figures are in `st`: iterations done of
/// planned, or seconds since the start of the plan's length.
pub fn running(st: &mut LoadTestStatus, lt: &LoadTest, now: Timestamp) {
    let Some(start) = st.start_at_us else { return };
    let plan = &lt.spec.plan;
    let p = match iterations(plan).zip(iterations_done(plan, st)) {
        Some((total, done)) => Progress {
            stage: "run".into(),
            unit: "iterations".into(),
            done: done.min(total),
            failed: 0,
            total: Some(total),
        },
        None => {
            let elapsed = (now.as_microsecond().max(0) as u64).saturating_sub(start) / 1_000_000;
            let total = length(plan);
            Progress {
                stage: "run".into(),
                unit: "seconds".into(),
                done: total.map_or(elapsed, |t| elapsed.min(t)),
                failed: 0,
                total,
            }
        }
    };
    st.progress = Some(advance(st.progress.as_ref(), p, now));
}

/// The plan's iterations, when they alone end it.
fn iterations(plan: &Plan) -> Option<u64> {
    let l = &plan.load;
    (plan.scenarios.is_empty() && l.duration.is_none() && l.stages.is_empty())
        .then_some(l.iterations)
        .flatten()
}

/// Iterations done: each request's count, or for a journey its passes.
/// None when a name is missing from the figures (left out as too many).
fn iterations_done(plan: &Plan, st: &LoadTestStatus) -> Option<u64> {
    plan.requests.iter().try_fold(0u64, |sum, r| {
        let n = if r.steps.is_empty() {
            st.by_request.get(&r.name)?.requests
        } else {
            st.by_journey.get(&r.name)?.passes
        };
        Some(sum + n)
    })
}

/// The plan's length in whole seconds; None when a scenario ends by its
/// iterations alone.
fn length(plan: &Plan) -> Option<u64> {
    let timed = |l: &Load| l.duration.is_some() || !l.stages.is_empty();
    let all_timed = if plan.scenarios.is_empty() {
        timed(&plan.load)
    } else {
        plan.scenarios.values().all(|s| match (&s.load, s.weight) {
            (Some(own), None) => timed(own),
            _ => timed(&plan.load),
        })
    };
    // The interval only sizes open-ended loads, which are excluded here.
    all_timed.then(|| {
        barrage_runner::compile::plan_length(plan, Duration::from_secs(1))
            .as_secs_f64()
            .ceil() as u64
    })
}

/// `spec.setup.users` for the built-in setup; a custom image says its own.
fn setup_total(lt: &LoadTest) -> Option<u64> {
    let s = lt.spec.setup.as_ref()?;
    s.image
        .is_none()
        .then_some(s.builtin.users.map(u64::from))
        .flatten()
}

/// Whether the setup's progress is due for another look at the log.
fn due(prev: Option<&ProgressStatus>, now: Timestamp) -> bool {
    let at = prev
        .filter(|p| p.stage == "setup")
        .and_then(|p| p.observed_at.as_deref()?.parse::<Timestamp>().ok());
    at.is_none_or(|at| now.duration_since(at).as_secs_f64() >= REFRESH.as_secs_f64())
}

/// Provisioning: the setup's progress from the log of `newest` (the Job's
/// latest pod), at most every [`REFRESH`]. A log that cannot be read yet
/// (the container has not started) or holds no progress line keeps the
/// counts the status had.
pub async fn provisioning(
    st: &mut LoadTestStatus,
    lt: &LoadTest,
    pods: &Api<Pod>,
    newest: Option<&Pod>,
    now: Timestamp,
) {
    let prev = st.progress.as_ref().filter(|p| p.stage == "setup");
    if prev.is_some() && !due(prev, now) {
        return;
    }
    let read = match newest.filter(|p| setup_started(p)) {
        Some(pod) => read_log(pods, pod).await,
        None => None,
    };
    let plan_total = setup_total(lt);
    let p = match read {
        Some(mut p) => {
            p.total = p.total.or(plan_total);
            p
        }
        None => match prev {
            Some(q) => Progress::setup(q.done, q.failed, q.total),
            None => Progress::setup(0, 0, plan_total),
        },
    };
    st.progress = Some(advance(prev, p, now));
}

/// Whether the pod's setup container has started (its log can be read).
fn setup_started(pod: &Pod) -> bool {
    let statuses = pod.status.as_ref().into_iter().flat_map(|s| {
        let init = s.init_container_statuses.iter().flatten();
        init.chain(s.container_statuses.iter().flatten())
    });
    statuses
        .filter(|c| c.name == SETUP_CONTAINER)
        .any(|c| c.state.as_ref().is_some_and(|s| s.waiting.is_none()))
}

async fn read_log(pods: &Api<Pod>, pod: &Pod) -> Option<Progress> {
    let params = LogParams {
        container: Some(SETUP_CONTAINER.into()),
        tail_lines: Some(LOG_TAIL_LINES),
        limit_bytes: Some(LOG_LIMIT_BYTES),
        ..Default::default()
    };
    let name = pod.metadata.name.as_deref()?;
    match tokio::time::timeout(LOG_READ_TIMEOUT, pods.logs(name, &params)).await {
        Ok(Ok(log)) => counts::parse_last(&log),
        Err(_) => {
            tracing::debug!(pod = name, "setup log not read in time");
            None
        }
        Ok(Err(e)) => {
            // Progress is for people: the setup goes on without it.
            tracing::debug!(pod = name, error = %e, "setup log not read");
            None
        }
    }
}

#[cfg(test)]
mod tests;
