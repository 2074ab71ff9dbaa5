//! One pusher per running LoadTest, by uid, as `results::Stores` holds
//! their results: started by Running's first round (`start`), offered the
//! merged snapshot every round (`offer`, which never waits on the
//! receiver), finished by the verdict with the final snapshot (`finish`,
//! bounded), then held as its final status until the LoadTest's memory is
//! forgotten. The map is locked only to find or swap an entry; each
//! LoadTest's slot has its own lock, so one test's offer (which encodes its
//! series) never waits on another's. No lock is held across an await.
//!
//! What the status shows adds the pusher's delivery to the counts the
//! status held when it started (`base`): after an operator restart the
//! counts continue from the status's previous values.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use barrage_runner::{
    remote_write::{Delivery, Pusher},
    snapshot::Snapshot,
};

use crate::{crd::RemoteWriteStatus, status};

/// A last error longer than this is cut (the pusher's are already short).
pub const MAX_ERROR: usize = 512;

enum Slot {
    Pushing {
        pusher: Pusher,
        base: RemoteWriteStatus,
    },
    /// Finished, or never started (its message in `last_error`): nothing
    /// more is pushed for this LoadTest, and the status stays as it is.
    Done(RemoteWriteStatus),
}

#[derive(Default)]
pub struct Pushers(Mutex<HashMap<String, Arc<Mutex<Slot>>>>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pushers {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Mutex<Slot>>>> {
        lock(&self.0)
    }

    fn slot(&self, uid: &str) -> Option<Arc<Mutex<Slot>>> {
        self.map().get(uid).cloned()
    }

    fn put(&self, uid: &str, slot: Slot) {
        self.map()
            .insert(uid.to_string(), Arc::new(Mutex::new(slot)));
    }

    /// Whether the LoadTest `uid` has a pusher, or had one.
    pub fn holds(&self, uid: &str) -> bool {
        self.map().contains_key(uid)
    }

    /// Holds `pusher` for `uid`; `base` is what the status counted before
    /// (its `url` is the one shown).
    pub fn start(&self, uid: &str, pusher: Pusher, base: RemoteWriteStatus) {
        self.put(uid, Slot::Pushing { pusher, base });
    }

    /// Notes that `uid` pushes nothing more, showing `st`.
    pub fn done(&self, uid: &str, st: RemoteWriteStatus) {
        self.put(uid, Slot::Done(st));
    }

    /// Offers `merged` to `uid`'s pusher; the status to show, if it has
    /// or had one.
    pub fn offer(
        &self,
        uid: &str,
        merged: &Snapshot,
        at_ms: i64,
        active_runners: u32,
    ) -> Option<RemoteWriteStatus> {
        let slot = self.slot(uid)?;
        let slot = lock(&slot);
        match &*slot {
            Slot::Pushing { pusher, base } => {
                pusher.offer(merged, at_ms, active_runners);
                Some(shown(base, &pusher.delivery()))
            }
            Slot::Done(st) => Some(st.clone()),
        }
    }

    /// Pushes the final `merged` and waits at most `within` for the queue
    /// to drain; the final status, if `uid` has or had a pusher. A second
    /// call (a retried verdict) pushes nothing more.
    pub async fn finish(
        &self,
        uid: &str,
        merged: &Snapshot,
        at_ms: i64,
        within: Duration,
    ) -> Option<RemoteWriteStatus> {
        let slot = self.slot(uid)?;
        // The verdict's reconcile is this LoadTest's only one running: the
        // slot is not offered to while its pusher is taken out to finish.
        let taken = std::mem::replace(&mut *lock(&slot), Slot::Done(Default::default()));
        let st = match taken {
            Slot::Pushing { pusher, base } => {
                let d = pusher.finish(merged, at_ms, 0, within).await;
                shown(&base, &d)
            }
            Slot::Done(st) => st,
        };
        *lock(&slot) = Slot::Done(st.clone());
        Some(st)
    }

    /// Drops `uid`'s pusher (its queue with it) or its final status.
    pub fn forget(&self, uid: &str) {
        self.map().remove(uid);
    }
}

/// What the status shows: `base`'s counts plus this pusher's delivery; the
/// last error is the pusher's, or the one before it.
pub fn shown(base: &RemoteWriteStatus, d: &Delivery) -> RemoteWriteStatus {
    RemoteWriteStatus {
        url: base.url.clone(),
        pushes: base.pushes.saturating_add(d.pushes),
        samples: base.samples.saturating_add(d.samples),
        undelivered: base.undelivered.saturating_add(d.undelivered),
        last_error: d
            .last_error
            .as_deref()
            .map(|e| status::bounded(e, MAX_ERROR))
            .or_else(|| base.last_error.clone()),
    }
}

/// The counts a new pusher continues from: the status's previous ones when
/// they are for the same receiver (an operator restart), else none.
pub fn base(previous: Option<&RemoteWriteStatus>, url: String) -> RemoteWriteStatus {
    match previous {
        Some(p) if p.url == url => p.clone(),
        _ => RemoteWriteStatus {
            url,
            ..Default::default()
        },
    }
}
