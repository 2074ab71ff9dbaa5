//! What the operator remembers about each running LoadTest between
//! reconciles, one entry per LoadTest with its own lock, so that one test's
//! collection round never waits on another's. Losing it (a restart) loses
//! nothing measured: runners keep cumulative results and are asked again.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use barrage_runner::snapshot::Snapshot;
use tokio::sync::Mutex;

use crate::error::Result;

#[derive(Default)]
pub struct Runs {
    by_uid: std::sync::Mutex<HashMap<String, Arc<Mutex<RunMemory>>>>,
}

impl Runs {
    /// The entry of one LoadTest (made on first use). The map is locked only
    /// to find it, never across a round.
    pub fn of(&self, uid: &str) -> Arc<Mutex<RunMemory>> {
        self.map().entry(uid.to_string()).or_default().clone()
    }

    pub fn forget(&self, uid: &str) {
        self.map().remove(uid);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<RunMemory>>>> {
        self.by_uid.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
pub struct RunMemory {
    /// Each runner's latest snapshot (JSON), so a runner that dies keeps
    /// what it reported.
    pub last: BTreeMap<u32, String>,
    /// Why the runners were told to stop early, if they were.
    pub abort: Option<String>,
    /// Up to where (µs from the start) live windowed thresholds were judged
    /// on a full series; a restart judges the settled windows again.
    pub series_judged_us: u64,
}

impl RunMemory {
    /// Keeps each runner's newest snapshot; a runner that did not answer
    /// keeps the last one it gave, so nothing it measured is lost.
    pub fn keep_latest<R>(&mut self, results: Vec<(u32, Result<String, R>)>) {
        for (index, res) in results {
            if let Ok(json) = res {
                self.last.insert(index, json);
            }
        }
    }

    /// Whether a runner's latest snapshot says its load started.
    pub fn has_started(&self, index: u32) -> bool {
        self.last.get(&index).is_some_and(|j| has_started(j))
    }

    /// Merges the latest snapshot of every runner, decoding one at a time so
    /// a round's memory stays that of one snapshot plus the sum.
    pub fn merged(&self) -> Result<Snapshot> {
        let mut merged = Snapshot::empty(0);
        for json in self.last.values() {
            merged.merge(&Snapshot::from_json(json)?);
        }
        Ok(merged)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_tells_whether_its_runner_started() {
        let mut s = Snapshot::empty(0);
        assert!(!has_started(&s.to_json()));
        s.started_us = Some(5);
        assert!(has_started(&s.to_json()));
        assert!(!has_started("not json"));
    }
}
