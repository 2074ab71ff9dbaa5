//! The agent's side of incremental pulls: which states of its results a
//! caller may build on.
//!
//! The agent keeps the states it last answered (cursor c1; the last two, so
//! that two callers during a leader handover do not undo each other's) and
//! the state acknowledged before that (c0). A pull `since=c1` acknowledges c1
//! (the caller added that reply) and gets what changed since c1; a pull
//! `since=c0` means the reply c1 was lost (or timed out) and gets what
//! changed since c0 again. `since=0`, or a cursor the agent does not know
//! (another caller's, or one from before the agent restarted), gets
//! everything from the start with `base: 0`, and a caller that sent a
//! cursor must then rebuild rather than add. So a caller only ever adds a
//! reply based on the state it holds, and every sample reaches it once.
//!
//! Memory: three states besides the recorder's, each the per-name figures
//! with their histograms in wire form (`delta::Base`: a few KB a name, not
//! the 16 to 190 KB of a histogram) and only the last interval (the one that
//! may still have been in progress): the series is never copied here.

use std::collections::VecDeque;

use super::{
    Snapshot,
    delta::{Base, SnapshotDelta},
};

/// Answered states kept until acknowledged (or replaced by newer ones).
const ANSWERED: usize = 2;

struct State {
    cursor: u64,
    base: Base,
}

pub struct Cursors {
    acked: Option<State>,
    answered: VecDeque<State>,
    next: u64,
}

impl Default for Cursors {
    fn default() -> Self {
        Cursors::new()
    }
}

impl Cursors {
    pub fn new() -> Cursors {
        Cursors {
            acked: None,
            answered: VecDeque::new(),
            // Random, so that a restarted agent does not take a cursor of
            // its previous life for one of its own.
            next: fastrand::u64(1..1 << 62),
        }
    }

    /// The reply to a pull `since` (0: from the start). `take(first)` gives
    /// the runner's current results with the intervals from index `first` on.
    pub fn reply(&mut self, since: u64, take: impl Fn(u64) -> Snapshot) -> SnapshotDelta {
        if let Some(i) = self
            .answered
            .iter()
            .position(|a| since != 0 && a.cursor == since)
        {
            self.acked = self.answered.remove(i);
        }
        let base = self
            .acked
            .as_ref()
            .filter(|a| since != 0 && a.cursor == since);
        let first = base.map_or(0, |b| b.base.first_interval());
        let cursor = self.next;
        self.next += 1;
        let mut cur = take(first);
        let delta = base
            .and_then(|b| SnapshotDelta::between(Some(&b.base), &cur, since, cursor))
            .unwrap_or_else(|| {
                if first > 0 {
                    cur = take(0);
                }
                SnapshotDelta::between(None, &cur, 0, cursor)
                    .expect("a snapshot always follows from nothing")
            });
        let prev = self.answered.back().or(self.acked.as_ref());
        let base = Base::of(&cur, prev.map(|s| &s.base));
        if self.answered.len() == ANSWERED {
            self.answered.pop_front();
        }
        self.answered.push_back(State { cursor, base });
        delta
    }
}

#[cfg(test)]
mod tests;
