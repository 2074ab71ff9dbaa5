//! The open model: iterations start on a fixed timeline, whatever the server
//! does. A slow server therefore meets more concurrent requests, as real
//! traffic would, and each request's latency counts from its scheduled start:
//! time spent waiting behind a stall is measured, not hidden (no coordinated
//! omission). When `maxInFlight` requests are already running, a due
//! iteration is not sent and is counted as dropped.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Instant,
};

use tokio::sync::Notify;

use super::{Flow, Runner, client::Conn, timeline::Timeline};

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

struct InFlight {
    count: AtomicU32,
    drained: Notify,
}

pub(super) async fn run(runner: &Arc<Runner>, start: Instant) {
    let load = &runner.plan.load;
    let slot = runner.plan.slot;
    let mut timeline = Timeline::new(&load.profile, slot.index, slot.count);
    let mut budget = load.iterations.unwrap_or(u64::MAX);
    let pool = Arc::new(Pool::default());
    let inflight = Arc::new(InFlight {
        count: AtomicU32::new(0),
        drained: Notify::new(),
    });
    let mut n = 0usize;
    let mut ran_out = false;
    while budget > 0 && !runner.stop.is_set() {
        let Some(due) = timeline.next_due() else {
            ran_out = true;
            break;
        };
        let at = start + due;
        let now = Instant::now();
        if at > now && runner.stop.sleep(at - now).await {
            break;
        }
        budget -= 1;
        if inflight.count.load(Ordering::SeqCst) >= load.max_in_flight {
            runner.recorder.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        inflight.count.fetch_add(1, Ordering::SeqCst);
        n += 1;
        let (runner, pool, inflight) = (runner.clone(), pool.clone(), inflight.clone());
        tokio::spawn(async move {
            let mut conn = pool.take();
            if runner.iterate(&mut conn, n, Some(at)).await == Flow::Exhausted {
                runner.stop.trigger();
            }
            pool.give(conn);
            if inflight.count.fetch_sub(1, Ordering::SeqCst) == 1 {
                inflight.drained.notify_waiters();
            }
        });
    }
    // The load lasts its planned length, as in the closed model, even when
    // the last arrival came earlier (a low rate, a ramp down to 0): so the
    // test's duration, its rps and its last report interval (which windowed
    // thresholds read) cover the whole plan.
    if ran_out && let Some(total) = load.profile.total() {
        let rest = (start + total).saturating_duration_since(Instant::now());
        runner.stop.sleep(rest).await;
    }
    runner.stop.trigger();
    let drain = async {
        loop {
            let n = inflight.drained.notified();
            if inflight.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            n.await;
        }
    };
    // In-flight requests end by their own timeout; the graceful stop bounds
    // the wait for a plan whose timeouts are longer.
    let _ = tokio::time::timeout(load.graceful_stop, drain).await;
}
