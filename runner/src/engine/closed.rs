//! The closed model: virtual users, each sending its next iteration when the
//! previous one is done (plus think time or pacing). The number of users
//! follows the scenario's profile; this runner runs its share of the rounded
//! total (of a weighted scenario: its part of it, `LoadPlan::users_at`), so N
//! runners together run exactly the scenario's users. A user's onStart and
//! onStop are in `users`.
//!
//! Each user is a task of its own, except over HTTP/2 at a constant level,
//! where the users of one connection share one task (see `together`), run
//! on an executor pinned to one thread (see `http2::pinned`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio::{
    sync::Notify,
    task::{AbortHandle, JoinError, JoinSet},
};

use super::{
    Flow, Runner, http2,
    users::{Gone, Life},
};
use crate::{limits, plan::HttpVersion};

/// How often the user count is adjusted during a ramp.
const RAMP_TICK: Duration = Duration::from_millis(50);

/// Users started between two looks at `stop`: a plan with very many users
/// must not hold its thread (and a Ctrl-C) until all are spawned.
const SPAWN_BATCH: u32 = 256;

struct Shared {
    /// Users with an id below this run; the others wait.
    desired: AtomicU32,
    changed: Notify,
    /// Iterations left for this runner (u64::MAX: no limit).
    budget: AtomicU64,
}

/// Runs scenario `sc` of a test that started at `test_start`.
pub(super) async fn run(runner: &Arc<Runner>, sc: usize, test_start: Instant) {
    let scenario = &runner.plan.scenarios[sc];
    let load = &scenario.load;
    let stop = &runner.scenario_stops[sc];
    let start = test_start + scenario.start_time;
    let slot = runner.plan.slot;
    let share = |t: Duration| slot.share(load.users_at(t)) as u32;
    let shared = Arc::new(Shared {
        desired: AtomicU32::new(share(Duration::ZERO)),
        changed: Notify::new(),
        budget: AtomicU64::new(load.iterations.unwrap_or(u64::MAX)),
    });
    let mut users = JoinSet::new();
    // Users with an id below this exist; a ramp down parks, never ends, them.
    let mut spawned = 0u32;
    // The hosted HTTP/2 groups, on their pinned executors (see `together`).
    let mut pinned = Vec::new();
    let timed = load.profile.total();
    // A plan that ends by its iterations alone still ends by this at the
    // latest (from the test's start), so what it keeps per interval stays
    // bounded (either length is at most `limits::MAX_LENGTH`).
    let end = timed.map_or_else(
        || test_start + limits::open_ended(runner.plan.interval),
        |d| start + d,
    );
    // A constant level needs no ticks: sleep until the end (or a stop).
    let constant = load
        .profile
        .stages
        .iter()
        .all(|s| s.1 == load.profile.start);
    // HTTP/2 at a constant level: the users of one connection share a task
    // (see `together`); a ramp spawns and parks users one by one. Not with
    // `http: auto`, which may settle on HTTP/1.1 by ALPN: its users, each
    // on its own connection, would all run in a few tasks.
    let connections = match &runner.h2 {
        Some(pool) if constant && runner.plan.http.version == HttpVersion::Http2 => {
            pool.connections()
        }
        _ => 0,
    };
    'load: loop {
        let now = Instant::now();
        let want = share(now - start);
        shared.desired.store(want, Ordering::SeqCst);
        shared.changed.notify_waiters();
        if connections > 0 && spawned == 0 {
            pinned = together(runner, sc, &shared, want, connections, &mut users);
            spawned = want;
        }
        while spawned < want {
            users.spawn(user(runner.clone(), sc, shared.clone(), spawned));
            spawned += 1;
            if spawned.is_multiple_of(SPAWN_BATCH) {
                tokio::task::yield_now().await;
                if stop.is_set() {
                    break 'load;
                }
            }
        }
        if now >= end {
            break;
        }
        let next = if constant { end } else { now + RAMP_TICK };
        // Users leave when the iterations run out, once their last one is
        // done: then (or, for a plan that ends by its iterations alone, with
        // no user at all) the load is over.
        let no_more = timed.is_none() || shared.budget.load(Ordering::SeqCst) == 0;
        if no_more && users.is_empty() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = stop.wait() => break,
            // Users end early only when the iterations run out, when they
            // are retired (their onStart kept failing), or by a panic, which
            // must fail the run now rather than at its end.
            Some(res) = users.join_next(), if !users.is_empty() => reap(runner, res),
        }
    }
    stop.trigger();
    shared.changed.notify_waiters();
    let finished = tokio::select! {
        _ = async {
            while let Some(res) = users.join_next().await {
                reap(runner, res);
            }
        } => true,
        _ = runner.grace(load.graceful_stop) => false,
    };
    if !finished {
        // Each aborted user's request in flight counts itself as
        // `interrupted` when dropped; joining waits for that. A group on a
        // pinned executor is aborted there, and its task here ends once the
        // group has been dropped (aborting this one would not wait); with
        // pinned groups, every task here is one.
        for p in &pinned {
            p.abort();
        }
        if pinned.is_empty() {
            users.abort_all();
        }
        while let Some(res) = users.join_next().await {
            reap(runner, res);
        }
    }
}

/// Spawns users `0..users` of scenario `sc` grouped by their HTTP/2
/// connection (user i uses connection i mod `connections`), each group one
/// task that polls its users' futures: a read of responses on a connection
/// then wakes one task, which runs every user it answered and so queues
/// their next requests together, instead of one task per user, each
/// scheduled (and perhaps stolen by another worker) on its own.
///
/// With one scenario the group also hosts its connection's driver (see
/// `http2::host`). With several, the connection is shared with the other
/// scenarios' users, whose streams must not end when this scenario's users
/// are aborted at its end, so the driver keeps its own task.
///
/// A group ends when all its users have; aborting it drops them all, which
/// counts their requests in flight as interrupted, as for users with a task
/// each.
///
/// A hosting group runs on a pinned executor (see `http2::pinned`); its task
/// in `tasks` only awaits it. The groups' abort handles are returned: abort
/// them before `tasks`, so that joining `tasks` waits for their drop.
fn together(
    runner: &Arc<Runner>,
    sc: usize,
    shared: &Arc<Shared>,
    users: u32,
    connections: usize,
    tasks: &mut JoinSet<()>,
) -> Vec<AbortHandle> {
    let sets: Vec<FuturesUnordered<_>> = (0..connections.min(users as usize))
        .map(|_| FuturesUnordered::new())
        .collect();
    for id in 0..users {
        sets[id as usize % connections].push(user(runner.clone(), sc, shared.clone(), id));
    }
    let hosted = runner.plan.scenarios.len() == 1;
    let mut pinned = Vec::new();
    for (i, mut set) in sets.into_iter().enumerate() {
        if hosted {
            let runner = runner.clone();
            let group = http2::pinned::spawn(http2::host(set, move |left| {
                if let Some(pool) = &runner.h2 {
                    pool.adopt(i, left);
                }
            }));
            pinned.push(group.abort_handle());
            tasks.spawn(group);
        } else {
            tasks.spawn(async move { while set.next().await.is_some() {} });
        }
    }
    pinned
}

fn reap(runner: &Runner, res: Result<(), JoinError>) {
    if let Err(e) = res {
        runner.task_failed("a virtual user", e);
    }
}

/// One virtual user of scenario `sc`: its onStart when it starts (see
/// `Life`), its iterations, its onStop when it ends or is parked by a ramp
/// down (unparked, it starts again with a fresh onStart).
async fn user(runner: Arc<Runner>, sc: usize, shared: Arc<Shared>, id: u32) {
    let load = &runner.plan.scenarios[sc].load;
    let stop = &runner.scenario_stops[sc];
    let mut conn = None;
    let shard = id as usize;
    let mut life = Life::new(&runner, sc, shard);
    while !stop.is_set() && shared.budget.load(Ordering::SeqCst) > 0 {
        if id >= shared.desired.load(Ordering::SeqCst) {
            // Ramped down below this user: it ends, and parks until the
            // count changes.
            let n = shared.changed.notified();
            if id >= shared.desired.load(Ordering::SeqCst) && !stop.is_set() {
                life.end(&mut conn).await;
                conn = None;
                n.await;
            }
            continue;
        }
        // The iteration is claimed before the user starts, so that a plan
        // with fewer iterations than users does not log in users that then
        // have nothing to do; a user that does not start gives it back.
        if shared
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .is_err()
        {
            break;
        }
        let started = life.start(&mut conn).await;
        if !matches!(started, Ok(true)) {
            shared.budget.fetch_add(1, Ordering::SeqCst);
        }
        match started {
            Ok(true) => {}
            // Not started: it waited its think time, try again.
            Ok(false) => continue,
            Err(Gone::Retired) => break,
            Err(Gone::Exhausted) => {
                runner.stop.trigger();
                break;
            }
        }
        let began = Instant::now();
        let think = match runner
            .iterate(sc, &mut conn, shard, None, life.vars())
            .await
        {
            Flow::Exhausted => {
                runner.stop.trigger();
                break;
            }
            Flow::Continue(think) => think.unwrap_or(load.think_time),
        };
        let pause = think
            .sample()
            .max(load.pacing.sample().saturating_sub(began.elapsed()));
        if stop.sleep(pause).await {
            break;
        }
    }
    life.end(&mut conn).await;
}
