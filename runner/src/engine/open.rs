//! The open model: iterations start on a fixed timeline, whatever the server
//! does. A slow server therefore meets more concurrent requests, as real
//! traffic would, and each request's latency counts from its scheduled start:
//! time spent waiting behind a stall is measured, not hidden (no coordinated
//! omission). When `maxInFlight` requests are already running, a due
//! iteration is not sent and is counted as dropped. Nothing is sent after
//! the planned end: arrivals a runner that fell behind could not send by
//! then are counted as dropped too, all at once.

use std::{
    sync::{Arc, Mutex, atomic::Ordering},
    time::Instant,
};

use tokio::task::{JoinError, JoinSet};

use super::{Flow, Runner, client::Conn, timeline::Timeline};
use crate::limits;

/// Arrivals sent without a pause (when behind the schedule) between two
/// yields, so the timers, a stop and the other tasks get their turn.
const SEND_BATCH: u64 = 256;

/// Idle keep-alive connections, shared by the in-flight iterations.
#[derive(Default)]
struct Pool {
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    fn take(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(c) = idle.pop() {
            if !c.is_closed() {
                return Some(c);
            }
        }
        None
    }

    fn give(&self, c: Option<Conn>) {
        if let Some(c) = c.filter(|c| !c.is_closed()) {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(c);
        }
    }
}

/// Runs scenario `sc` of a test that started at `test_start`, on its own
/// timeline.
pub(super) async fn run(runner: &Arc<Runner>, sc: usize, test_start: Instant) {
    let scenario = &runner.plan.scenarios[sc];
    let load = &scenario.load;
    let stop = &runner.scenario_stops[sc];
    let start = test_start + scenario.start_time;
    let slot = runner.plan.slot;
    let mut timeline = Timeline::new(&load.profile, slot.index, slot.count);
    let mut budget = load.iterations.unwrap_or(u64::MAX);
    let pool = Arc::new(Pool::default());
    // The iterations in flight; finished ones are reaped before each send,
    // so its length is the number in flight.
    let mut tasks = JoinSet::new();
    let end = load.profile.total().and_then(|d| start.checked_add(d));
    // A plan that ends by its iterations alone stops here at the latest.
    let cap = end.or_else(|| test_start.checked_add(limits::open_ended(runner.plan.interval)));
    let mut n = 0usize;
    let mut ran_out = false;
    let mut unpaused = 0u64;
    while budget > 0 && !stop.is_set() {
        // Never past the planned end, however far behind the schedule.
        if cap.is_some_and(|e| Instant::now() >= e) {
            break;
        }
        let Some(at) = timeline.next_due().and_then(|d| start.checked_add(d)) else {
            ran_out = true;
            break;
        };
        let now = Instant::now();
        if at > now {
            unpaused = 0;
            if stop.sleep(at - now).await {
                break;
            }
        } else {
            unpaused += 1;
            if unpaused.is_multiple_of(SEND_BATCH) {
                tokio::task::yield_now().await;
            }
        }
        budget -= 1;
        while let Some(res) = tasks.try_join_next() {
            reap(runner, res);
        }
        if tasks.len() >= load.max_in_flight as usize {
            runner.recorder.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        n += 1;
        let (runner, pool) = (runner.clone(), pool.clone());
        tasks.spawn(async move {
            let mut conn = pool.take();
            if runner.iterate(sc, &mut conn, n, Some(at), &[]).await == Flow::Exhausted {
                runner.stop.trigger();
            }
            pool.give(conn);
        });
    }
    // Arrivals that were due by now (at most the planned end) but were not
    // sent, because the load fell behind or was stopped: dropped, counted
    // at once rather than stepped through one by one.
    let horizon = cap.map_or(Instant::now(), |e| e.min(Instant::now()));
    let missed = timeline.skip_due_by(horizon.saturating_duration_since(start));
    runner
        .recorder
        .dropped
        .fetch_add(missed.min(budget), Ordering::Relaxed);
    // The load lasts its planned length, as in the closed model, even when
    // the last arrival came earlier (a low rate, a ramp down to 0): so the
    // test's duration, its rps and its last report interval (which windowed
    // thresholds read) cover the whole plan.
    if ran_out && let Some(e) = end {
        stop.sleep(e.saturating_duration_since(Instant::now()))
            .await;
    }
    stop.trigger();
    // In-flight requests end by their own timeout; the graceful stop bounds
    // the wait for a plan whose timeouts are longer. Those still in flight
    // then are aborted, and each counts itself as `interrupted` as it is
    // dropped, which joining waits for.
    let finished = tokio::select! {
        _ = async {
            while let Some(res) = tasks.join_next().await {
                reap(runner, res);
            }
        } => true,
        _ = runner.grace(load.graceful_stop) => false,
    };
    if !finished {
        tasks.abort_all();
        while let Some(res) = tasks.join_next().await {
            reap(runner, res);
        }
    }
}

fn reap(runner: &Runner, res: Result<(), JoinError>) {
    if let Err(e) = res {
        runner.task_failed("a request task", e);
    }
}
