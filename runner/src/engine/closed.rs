//! The closed model: virtual users, each sending its next iteration when the
//! previous one is done (plus think time or pacing). The number of users
//! follows the plan's profile; this runner runs its share of the rounded
//! total, so N runners together run exactly the plan's users.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use super::{Flow, Runner};

/// How often the user count is adjusted during a ramp.
const RAMP_TICK: Duration = Duration::from_millis(50);

struct Shared {
    /// Users with an id below this run; the others wait.
    desired: AtomicU32,
    changed: Notify,
    /// Iterations left for this runner (u64::MAX: no limit).
    budget: AtomicU64,
}

pub(super) async fn run(runner: &Arc<Runner>, start: Instant) {
    let load = &runner.plan.load;
    let slot = runner.plan.slot;
    let share = |t: Duration| slot.share(load.profile.at(t).round().max(0.0) as u64) as u32;
    let shared = Arc::new(Shared {
        desired: AtomicU32::new(share(Duration::ZERO)),
        changed: Notify::new(),
        budget: AtomicU64::new(load.iterations.unwrap_or(u64::MAX)),
    });
    let mut users = tokio::task::JoinSet::new();
    let end = load.profile.total().map(|d| start + d);
    loop {
        let now = Instant::now();
        let want = share(now - start);
        shared.desired.store(want, Ordering::SeqCst);
        shared.changed.notify_waiters();
        while (users.len() as u32) < want {
            let id = users.len() as u32;
            users.spawn(user(runner.clone(), shared.clone(), id));
        }
        if end.is_some_and(|e| now >= e) || shared.budget.load(Ordering::SeqCst) == 0 {
            break;
        }
        // A constant level needs no ticks: sleep until the end (or a stop).
        let next = if load
            .profile
            .stages
            .iter()
            .all(|s| s.1 == load.profile.start)
        {
            end
        } else {
            Some(now + RAMP_TICK)
        };
        let stopped = match next {
            Some(t) => runner.stop.sleep(t.saturating_duration_since(now)).await,
            None => {
                // No time limit: wait for the iterations to run out or a stop.
                tokio::select! {
                    _ = runner.stop.wait() => {}
                    _ = async { while users.join_next().await.is_some() {} } => {}
                }
                true
            }
        };
        if stopped {
            break;
        }
    }
    runner.stop.trigger();
    shared.changed.notify_waiters();
    let grace = tokio::time::timeout(load.graceful_stop, async {
        while users.join_next().await.is_some() {}
    });
    if grace.await.is_err() {
        users.abort_all();
    }
}

async fn user(runner: Arc<Runner>, shared: Arc<Shared>, id: u32) {
    let load = &runner.plan.load;
    let mut conn = None;
    let shard = id as usize;
    while !runner.stop.is_set() {
        if id >= shared.desired.load(Ordering::SeqCst) {
            // Ramped down below this user: park until the count changes.
            let n = shared.changed.notified();
            if id >= shared.desired.load(Ordering::SeqCst) && !runner.stop.is_set() {
                conn = None;
                n.await;
            }
            continue;
        }
        if shared
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .is_err()
        {
            break;
        }
        let began = Instant::now();
        if runner.iterate(&mut conn, shard, None).await == Flow::Exhausted {
            runner.stop.trigger();
            break;
        }
        let pause = load
            .think_time
            .max(load.pacing.saturating_sub(began.elapsed()));
        if runner.stop.sleep(pause).await {
            break;
        }
    }
}
