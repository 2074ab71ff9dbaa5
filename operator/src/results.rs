//! The results of running LoadTests: one store per LoadTest (by uid), each
//! behind its own lock, holding what its runners reported, decoded and
//! merged as the replies come in. One test's round never waits on another's.
//!
//! The API the LoadTest phases use:
//! - [`Stores::of`]`(uid, max_interval, max_names)` finds or creates a
//!   LoadTest's store (`Arc<tokio::sync::Mutex<Results>>`; the map is locked
//!   only for that, never across an await or a decode); [`Stores::forget`]
//!   drops it when the test ends or the LoadTest is deleted.
//! - [`Results::round`]`(&Pull)`: one collection round. Pulls every runner
//!   what changed since its cursor (`GET /snapshot?since=`), adds the
//!   replies up, judges the `abortOnFail` thresholds, and returns a
//!   [`Round`]: whether every runner answered, a reply refused for its size
//!   or content (the test fails on it), the runners that have not reported
//!   a start, the merged snapshot (`None` while the results are being
//!   rebuilt: the status then keeps its last figures) and a new abort.
//! - [`Results::finish`]`(&Pull)`: the final pull; the merged snapshot with
//!   its series, and why it is incomplete if it is.
//! - [`Results::abort`]: why the runners were told to stop, if they were.
//!
//! What is kept per LoadTest: one merged snapshot (a histogram per request
//! name and the series, packed), and per runner its cursor and head (see
//! `barrage_runner::snapshot::merge`). A reply based on another state than
//! the cursor held here (another operator pulled the runner, or its agent
//! lost the cursor) cannot be added: the store is reset and every runner is
//! pulled from 0 in the same round. Losing the store (an operator restart)
//! loses nothing measured: the runners keep cumulative results, and the
//! first round pulls everything from 0.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use barrage_runner::{
    snapshot::{Applied, Merge, Snapshot, SnapshotDelta},
    thresholds::{Threshold, live::Live},
};
use futures::StreamExt;
use tokio::sync::Mutex;

use crate::{
    agents::{self, Agents, RunnerRef},
    error::Error,
};

/// Every running LoadTest's results, by uid.
#[derive(Default)]
pub struct Stores(std::sync::Mutex<HashMap<String, Arc<Mutex<Results>>>>);

impl Stores {
    /// The store of the LoadTest `uid`, created empty on first use.
    /// `max_interval` and `max_names`: the highest interval index and the
    /// most request names its plan can produce (replies beyond are refused).
    pub fn of(&self, uid: &str, max_interval: u64, max_names: usize) -> Arc<Mutex<Results>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(uid.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Results {
                    merge: Merge::new(Some(max_interval)).with_max_names(max_names),
                    live: Live::default(),
                    abort: None,
                }))
            })
            .clone()
    }

    /// Whether a store of the LoadTest `uid` is held.
    pub fn holds(&self, uid: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(uid)
    }

    pub fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }
}

/// One LoadTest's results.
pub struct Results {
    merge: Merge,
    live: Live,
    abort: Option<String>,
}

/// What a round pulls, and from whom.
pub struct Pull<'a> {
    pub agents: &'a Agents,
    /// The runners that can be reached (pods with an IP).
    pub refs: &'a [RunnerRef],
    pub token: &'a str,
    /// The most a reply may take (`agents::snapshot_limit`).
    pub limit: usize,
    /// How many runners the test has.
    pub total: u32,
    pub thresholds: &'a [Threshold],
    /// How long the run has lasted, µs.
    pub elapsed_us: u64,
}

/// What a round found.
#[derive(Debug, Default)]
pub struct Round {
    /// Every one of the test's runners answered.
    pub all_answered: bool,
    /// The first reply refused for its size or content: the failure to report.
    pub refused: Option<String>,
    /// Reachable runners that have not reported a start.
    pub unstarted: Vec<RunnerRef>,
    /// Every runner's results merged; `None` while some runner's are missing
    /// since the store was (re)built.
    pub merged: Option<Snapshot>,
    /// The live judgement's reason to stop the runners, the round it fails.
    pub abort: Option<String>,
}

/// The end of a test.
pub struct Final {
    /// What every runner reported, merged, with the series.
    pub merged: Snapshot,
    pub refused: Option<String>,
    /// Set when some runner's results are not all here (none since the
    /// store was built): the run must not pass on them.
    pub incomplete: Option<String>,
}

impl Results {
    pub async fn round(&mut self, p: &Pull<'_>) -> Round {
        let (complete, mut round) = self.collect(p).await;
        if complete {
            // Windows are judged on a series every runner sent this round.
            let due = round.all_answered && self.live.series_due(p.thresholds, p.elapsed_us);
            let merged = self.merge.snapshot(due);
            if self.abort.is_none()
                && let Some(why) = self.live.judge(p.thresholds, &merged, due)
            {
                self.abort = Some(why.clone());
                round.abort = Some(why);
            }
            round.merged = Some(merged);
        }
        round
    }

    pub async fn finish(&mut self, p: &Pull<'_>) -> Final {
        let (complete, round) = self.collect(p).await;
        let missing: Vec<String> = (0..p.total)
            .filter(|&i| !self.merge.has(i))
            .map(|i| i.to_string())
            .collect();
        Final {
            merged: self.merge.snapshot(true),
            refused: round.refused,
            incomplete: (!complete).then(|| {
                format!(
                    "no results from runner(s) {} since the operator's results were (re)built; their requests are not counted",
                    missing.join(", ")
                )
            }),
        }
    }

    pub fn abort(&self) -> Option<&str> {
        self.abort.as_deref()
    }

    /// Pulls and merges; on a reply that asks to rebuild, resets and pulls
    /// everyone from 0 once more. True when every runner's results are here.
    async fn collect(&mut self, p: &Pull<'_>) -> (bool, Round) {
        let mut round = Round::default();
        let mut answered = self.pull_all(p, &mut round).await;
        if answered.is_none() {
            self.merge.reset();
            answered = self.pull_all(p, &mut round).await;
        }
        let rebuilt = answered.is_some();
        if !rebuilt {
            // Still not based on our state (two operators pulling at once):
            // the next round starts from 0.
            self.merge.reset();
        }
        self.merge.settle();
        let answered = answered.unwrap_or(0);
        round.all_answered = answered == p.total as usize && p.refs.len() == p.total as usize;
        round.unstarted = p
            .refs
            .iter()
            .filter(|r| !self.merge.started(r.index))
            .cloned()
            .collect();
        let complete = rebuilt && (0..p.total).all(|i| self.merge.has(i));
        (complete, round)
    }

    /// One pull of every reachable runner, each reply added as it comes in
    /// (a round holds one reply at a time besides the sums). `None` when a
    /// reply was not based on the cursor held here; else how many answered.
    async fn pull_all(&mut self, p: &Pull<'_>, round: &mut Round) -> Option<usize> {
        let cursors: BTreeMap<u32, u64> = p
            .refs
            .iter()
            .map(|r| (r.index, self.merge.cursor(r.index)))
            .collect();
        let cursors = &cursors;
        let mut replies = agents::each(p.refs, |r| async move {
            let since = cursors.get(&r.index).copied().unwrap_or(0);
            p.agents.pull(&r, p.token, since, p.limit).await
        });
        let (mut answered, mut rebase) = (0, false);
        while let Some((r, res)) = replies.next().await {
            let body = match res {
                Ok(body) => body,
                // A runner that sends more than its plan can produce is
                // broken (or not ours): the test fails rather than reading on.
                Err(e @ Error::ReplyTooLarge { .. }) => {
                    round.refused.get_or_insert(e.to_string());
                    continue;
                }
                // Unreachable for now: it keeps what it reported.
                Err(_) => continue,
            };
            let added =
                SnapshotDelta::from_slice(&body).and_then(|d| self.merge.apply(r.index, &d));
            match added {
                Ok(Applied::Added) => answered += 1,
                Ok(Applied::Rebase) => rebase = true,
                Err(e) => {
                    round
                        .refused
                        .get_or_insert(format!("{} sent results that cannot be read: {e}", r.name));
                }
            }
        }
        (!rebase).then_some(answered)
    }
}

#[cfg(test)]
mod tests;
