//! Where one runner's measurements go while the load runs.
//!
//! Memory is bounded by the plan: there is one `RequestStats` per request
//! name (plus one for all of them together), whatever the node's core count;
//! a name seen only a few times keeps its few samples instead (see `Name`).
//! Recording must still be cheap and must not make virtual users queue on one
//! lock, so a sample first goes into one of a constant number of small shard
//! buffers (a user always uses the same shard); a full buffer is flushed into
//! the per-name store in one go, so the store's lock is taken once per
//! `BATCH` samples. Snapshots and interval closes flush every buffer first,
//! so nothing recorded is left out. Per-interval latency is derived by
//! subtracting the previous cumulative histogram from the current one, so the
//! hot path records each sample once.
//!
//! Besides the request names, two views over the same requests (`Views`):
//! per named scenario, every request of its metrics added up once more
//! (only in a plan with named scenarios: a plan without them keeps no
//! extra histogram, its totals are its scenario), and per journey its
//! whole passes (duration, failed passes), buffered in the same shards.
//! A pass is never a request: totals, intervals and rates are the
//! requests' alone.

use std::{
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    compile::Compiled,
    histogram::{self, Latency},
    snapshot::{Connections, ErrorKind, Interval, JourneyStats, Packed, RequestStats, Snapshot},
};

/// Shard buffers: a constant, so memory does not grow with the core count;
/// enough that users on different threads rarely pick the same one.
const SHARDS: usize = 32;
/// Samples a shard buffers before flushing them into the store.
const BATCH: usize = 64;
/// Samples a name keeps as they are before they go into a histogram:
/// 128 x ~80 bytes is less than the 16 KB an empty histogram starts with.
const FEW: usize = 128;

/// One finished attempt.
#[derive(Clone)]
pub struct Sample {
    pub metric: usize,
    pub start: Instant,
    pub end: Instant,
    /// From the intended start in the open model, from the real start otherwise.
    pub latency: Duration,
    pub status: Option<u16>,
    pub error: Option<ErrorKind>,
    pub sent: u64,
    pub received: u64,
    /// Times the request was sent again after a stale keep-alive connection.
    pub retries: u32,
    /// The label of the body check that failed (with `ErrorKind::Check`).
    pub check: Option<Arc<str>>,
}

/// One whole pass through a journey.
#[derive(Clone)]
struct Pass {
    journey: usize,
    start: Instant,
    end: Instant,
    ok: bool,
}

/// What a user records into between flushes.
#[derive(Default)]
struct Shard {
    samples: Vec<Sample>,
    passes: Vec<Pass>,
}

/// What the recorder adds up besides request names, from `Compiled`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Views {
    /// The named scenarios; empty for a plan without them.
    pub scenarios: Vec<String>,
    /// Each metric's scenario (an index into `scenarios`), by metric.
    pub metric_scenario: Vec<Option<usize>>,
    /// The journeys' names, by `record_journey`'s index.
    pub journeys: Vec<String>,
}

impl Views {
    pub fn of(plan: &Compiled) -> Views {
        Views {
            scenarios: plan.scenario_names.clone(),
            metric_scenario: plan.metric_scenario.clone(),
            journeys: plan.journeys.clone(),
        }
    }
}

struct Intervals {
    closed: Vec<Interval>,
    prev: Latency,
    prev_requests: u64,
    prev_errors: u64,
}

/// One request name's results. A histogram costs 16 KB to ~190 KB of
/// counters however few samples it holds, and in a plan with many names at a
/// low rate most names see a handful: those keep their samples (a few KB),
/// turned into a histogram when a snapshot needs one. Past `FEW` samples
/// they go into a `RequestStats` for good. Either way the snapshot is the
/// same: the samples are added exactly as they would have been.
enum Name {
    Few(Vec<Sample>),
    Many(RequestStats),
}

/// The cumulative results: one entry per request name, and all together;
/// one per named scenario and per journey.
struct Store {
    per_name: Vec<Name>,
    total: RequestStats,
    per_scenario: Vec<Name>,
    /// Made at a journey's first pass.
    journeys: Vec<Option<JourneyStats>>,
}

pub struct Recorder {
    names: Vec<String>,
    /// Each metric's scenario; empty without named scenarios, so that such
    /// a plan pays nothing for them.
    metric_scenario: Vec<Option<usize>>,
    scenarios: Vec<String>,
    journeys: Vec<String>,
    shards: Vec<Mutex<Shard>>,
    store: Mutex<Store>,
    /// The same moment on both clocks, to turn Instants into unix time.
    base: (Instant, u64),
    interval: Duration,
    started: OnceLock<Instant>,
    ended: OnceLock<Instant>,
    pub dropped: AtomicU64,
    pub data_exhausted: AtomicU64,
    /// Virtual users with an onStart (see `engine::users`).
    pub users: UserCounts,
    intervals: Mutex<Intervals>,
    /// Connection setup times. One lock per connection made: a keep-alive
    /// user makes one for many requests.
    connections: Mutex<Connections>,
}

/// `snapshot::Users`, as it is counted.
#[derive(Default)]
pub struct UserCounts {
    pub started: AtomicU64,
    pub on_start_failures: AtomicU64,
    pub retired: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorder {
    pub fn new(names: Vec<String>, interval: Duration) -> Recorder {
        Recorder::with_views(names, interval, Views::default())
    }

    /// A recorder that also adds up per named scenario and per journey.
    pub fn with_views(names: Vec<String>, interval: Duration, views: Views) -> Recorder {
        let metric_scenario = if views.scenarios.is_empty() {
            Vec::new()
        } else {
            views.metric_scenario
        };
        let unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Recorder {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        samples: Vec::with_capacity(BATCH),
                        passes: Vec::new(),
                    })
                })
                .collect(),
            store: Mutex::new(Store {
                per_name: names.iter().map(|_| Name::Few(Vec::new())).collect(),
                total: RequestStats::default(),
                per_scenario: views
                    .scenarios
                    .iter()
                    .map(|_| Name::Few(Vec::new()))
                    .collect(),
                journeys: views.journeys.iter().map(|_| None).collect(),
            }),
            names,
            metric_scenario,
            scenarios: views.scenarios,
            journeys: views.journeys,
            base: (Instant::now(), unix_us),
            interval,
            started: OnceLock::new(),
            ended: OnceLock::new(),
            dropped: AtomicU64::new(0),
            data_exhausted: AtomicU64::new(0),
            users: UserCounts::default(),
            intervals: Mutex::new(Intervals {
                closed: Vec::new(),
                prev: histogram::new_latency(),
                prev_requests: 0,
                prev_errors: 0,
            }),
            connections: Mutex::default(),
        }
    }

    /// A connection was made: its TCP connect took `connect`, its TLS
    /// handshake (https) `handshake`. Not part of any request's latency
    /// histogram (the request that waited for it includes it, as it saw it).
    pub fn record_connection(&self, connect: Duration, handshake: Option<Duration>) {
        let mut c = lock(&self.connections);
        histogram::record(&mut c.connect, connect.as_micros() as u64);
        if let Some(h) = handshake {
            histogram::record(&mut c.tls_handshake, h.as_micros() as u64);
        }
    }

    pub fn unix_us(&self, t: Instant) -> u64 {
        let (bi, bu) = self.base;
        if t >= bi {
            bu + (t - bi).as_micros() as u64
        } else {
            bu.saturating_sub((bi - t).as_micros() as u64)
        }
    }

    pub fn mark_started(&self, at: Instant) {
        let _ = self.started.set(at);
    }

    pub fn mark_ended(&self, at: Instant) {
        let _ = self.ended.set(at);
    }

    pub fn started(&self) -> Option<Instant> {
        self.started.get().copied()
    }

    pub fn is_finished(&self) -> bool {
        self.ended.get().is_some()
    }

    pub fn record(&self, shard: usize, s: &Sample) {
        let mut buf = lock(&self.shards[shard % SHARDS]);
        buf.samples.push(s.clone());
        if buf.samples.len() >= BATCH {
            self.drain(&mut buf);
        }
    }

    /// Records one whole pass through journey `journey` (an index into
    /// `Compiled::journeys`): from its first step's start (the open model's
    /// intended start) to its last step's end, pauses included; `ok` is
    /// false when a step failed and the journey stopped there. Not a
    /// request: it never counts in the requests' totals.
    /// A journey index the recorder was not given is ignored.
    pub fn record_journey(
        &self,
        shard: usize,
        journey: usize,
        start: Instant,
        end: Instant,
        ok: bool,
    ) {
        if journey >= self.journeys.len() {
            return;
        }
        let mut buf = lock(&self.shards[shard % SHARDS]);
        buf.passes.push(Pass {
            journey,
            start,
            end,
            ok,
        });
        if buf.passes.len() >= BATCH {
            self.drain(&mut buf);
        }
    }

    /// Moves a shard's samples and passes into the store. Lock order:
    /// shard, then store.
    fn drain(&self, buf: &mut Shard) {
        let mut store = lock(&self.store);
        let store = &mut *store;
        for s in buf.samples.drain(..) {
            self.add(&mut store.total, &s);
            if let Some(&Some(sc)) = self.metric_scenario.get(s.metric)
                && let Some(name) = store.per_scenario.get_mut(sc)
            {
                self.put(name, &s);
            }
            self.put(&mut store.per_name[s.metric], &s);
        }
        for p in buf.passes.drain(..) {
            let j = store.journeys[p.journey].get_or_insert_with(JourneyStats::default);
            j.record(
                p.end.saturating_duration_since(p.start).as_micros() as u64,
                p.ok,
                self.unix_us(p.start),
                self.unix_us(p.end),
            );
        }
    }

    /// Adds one sample to a name's (or a scenario's) results.
    fn put(&self, name: &mut Name, s: &Sample) {
        match name {
            Name::Many(r) => self.add(r, s),
            // Kept as a sample only while the name has few.
            Name::Few(few) if few.len() < FEW => few.push(s.clone()),
            Name::Few(_) => {
                let mut r = self.stats_of(name);
                self.add(&mut r, s);
                *name = Name::Many(r);
            }
        }
    }

    /// Adds one sample to a request's (or the total's) results.
    fn add(&self, r: &mut RequestStats, s: &Sample) {
        add(r, s, self.unix_us(s.start), self.unix_us(s.end));
    }

    /// A name's results as a `RequestStats`.
    fn stats_of(&self, name: &Name) -> RequestStats {
        match name {
            Name::Many(r) => r.clone(),
            Name::Few(few) => {
                let mut r = RequestStats::default();
                few.iter().for_each(|s| self.add(&mut r, s));
                r
            }
        }
    }

    /// Flushes every shard, so the store holds everything recorded so far.
    fn flush(&self) {
        for shard in &self.shards {
            let mut buf = lock(shard);
            if !buf.samples.is_empty() || !buf.passes.is_empty() {
                self.drain(&mut buf);
            }
        }
    }

    /// The interval that ends at `index + 1` intervals after the start.
    fn interval_since(iv: &Intervals, index: u64, total: &RequestStats) -> Interval {
        let mut latency = total.latency.clone();
        latency
            .subtract(&iv.prev)
            .expect("cumulative histograms only grow");
        Interval {
            index,
            requests: total.count() - iv.prev_requests,
            errors: total.error_count() - iv.prev_errors,
            latency: Packed::pack(&latency),
        }
    }

    /// Closes the current interval; called by the runner's ticker.
    pub fn close_interval(&self) {
        // Lock order: intervals, then (in flush) shards and the store.
        let mut iv = lock(&self.intervals);
        self.flush();
        let total = lock(&self.store).total.clone();
        let index = iv.closed.len() as u64;
        let done = Self::interval_since(&iv, index, &total);
        iv.closed.push(done);
        iv.prev_requests = total.count();
        iv.prev_errors = total.error_count();
        iv.prev = total.latency;
    }

    /// The cumulative results so far; with `intervals`, also the per-interval
    /// series (including the interval in progress).
    pub fn snapshot(&self, intervals: bool) -> Snapshot {
        self.snapshot_from(intervals.then_some(0))
    }

    /// The cumulative results so far, with the per-interval series from
    /// index `first` on (the interval in progress included), or none. An
    /// incremental pull asks only for the intervals its caller has not seen
    /// whole, so a long run's series is not copied on every pull.
    pub fn snapshot_from(&self, first: Option<u64>) -> Snapshot {
        let iv = first.map(|_| lock(&self.intervals));
        self.flush();
        let mut snap = Snapshot::empty(self.interval.as_micros() as u64);
        // Copies only of the names that saw requests: each histogram is as
        // large as its own range, never a full-range one per name.
        let total = {
            let store = lock(&self.store);
            snap.requests = self.stats_by_name(&self.names, &store.per_name);
            snap.scenarios = self.stats_by_name(&self.scenarios, &store.per_scenario);
            snap.journeys = self
                .journeys
                .iter()
                .zip(&store.journeys)
                .filter_map(|(n, j)| Some((n.clone(), j.clone()?)))
                .collect();
            iv.as_ref().map(|_| store.total.clone())
        };
        snap.runners = 1;
        snap.finished = u32::from(self.is_finished());
        if let Some(s) = self.started() {
            let until = self.ended.get().copied().unwrap_or_else(Instant::now);
            snap.started_us = Some(self.unix_us(s));
            snap.until_us = Some(self.unix_us(until));
            snap.runner_starts_us = vec![self.unix_us(s)];
        }
        if let (Some(iv), Some(total)) = (iv, total) {
            let first = usize::try_from(first.unwrap_or(0)).unwrap_or(usize::MAX);
            snap.intervals = iv.closed.get(first..).unwrap_or_default().to_vec();
            if total.count() > iv.prev_requests {
                snap.intervals
                    .push(Self::interval_since(&iv, iv.closed.len() as u64, &total));
            }
        }
        snap.dropped = self.dropped.load(Ordering::Relaxed);
        snap.data_exhausted = self.data_exhausted.load(Ordering::Relaxed);
        snap.users = crate::snapshot::Users {
            started: self.users.started.load(Ordering::Relaxed),
            on_start_failures: self.users.on_start_failures.load(Ordering::Relaxed),
            retired: self.users.retired.load(Ordering::Relaxed),
        };
        snap.connections = lock(&self.connections).clone();
        snap
    }

    /// The names that saw requests, with their results.
    fn stats_by_name(
        &self,
        names: &[String],
        stats: &[Name],
    ) -> std::collections::BTreeMap<String, RequestStats> {
        names
            .iter()
            .zip(stats)
            .filter(|(_, r)| !matches!(r, Name::Few(few) if few.is_empty()))
            .map(|(n, r)| (n.clone(), self.stats_of(r)))
            .filter(|(_, r)| r.count() > 0)
            .collect()
    }

    /// Bytes of latency data the recorder holds (what grows with the
    /// plan's request names), for the memory regression tests.
    #[cfg(test)]
    fn latency_bytes(&self) -> usize {
        let store = lock(&self.store);
        let per_name: usize = store
            .per_name
            .iter()
            .chain(&store.per_scenario)
            .map(|n| match n {
                Name::Few(few) => few.capacity() * std::mem::size_of::<Sample>(),
                Name::Many(r) => histogram::footprint(&r.latency),
            })
            .sum();
        let journeys: usize = store
            .journeys
            .iter()
            .flatten()
            .map(|j| histogram::footprint(&j.duration))
            .sum();
        per_name
            + journeys
            + histogram::footprint(&store.total.latency)
            + histogram::footprint(&lock(&self.intervals).prev)
    }
}

/// Adds one sample to a request's (or the total's) results.
fn add(r: &mut RequestStats, s: &Sample, start_us: u64, end_us: u64) {
    histogram::record(&mut r.latency, s.latency.as_micros() as u64);
    if let Some(code) = s.status {
        *r.statuses.entry(code).or_default() += 1;
    }
    if let Some(k) = s.error {
        *r.errors.entry(k).or_default() += 1;
    }
    r.bytes_sent += s.sent;
    r.bytes_received += s.received;
    r.retries += u64::from(s.retries);
    if let Some(label) = &s.check {
        match r.checks.get_mut(&**label) {
            Some(n) => *n += 1,
            None => {
                r.checks.insert(label.to_string(), 1);
            }
        }
    }
    r.first_start_us = r.first_start_us.min(start_us);
    r.last_end_us = r.last_end_us.max(end_us);
}

#[cfg(test)]
mod tests;
