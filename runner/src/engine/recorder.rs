//! Where one runner's measurements go while the load runs.
//!
//! Recording must be cheap and must not make virtual users queue on one lock,
//! so results are kept in a few shards, each a mutex over one `RequestStats`
//! per request name; a user always records into the same shard. Snapshots
//! merge the shards. Per-interval latency is derived by subtracting the
//! previous cumulative histogram from the current one, so the hot path records
//! each sample once.

use std::{
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    histogram::{self, Latency},
    snapshot::{ErrorKind, Interval, Packed, RequestStats, Snapshot},
};

/// One finished attempt.
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
}

struct Intervals {
    closed: Vec<Interval>,
    prev: Latency,
    prev_requests: u64,
    prev_errors: u64,
}

pub struct Recorder {
    names: Vec<String>,
    shards: Vec<Mutex<Vec<RequestStats>>>,
    /// The same moment on both clocks, to turn Instants into unix time.
    base: (Instant, u64),
    interval: Duration,
    started: OnceLock<Instant>,
    ended: OnceLock<Instant>,
    pub dropped: AtomicU64,
    pub data_exhausted: AtomicU64,
    intervals: Mutex<Intervals>,
}

impl Recorder {
    pub fn new(names: Vec<String>, interval: Duration) -> Recorder {
        let shards = std::thread::available_parallelism().map_or(4, |n| n.get() * 4);
        let unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Recorder {
            shards: (0..shards)
                .map(|_| Mutex::new(names.iter().map(|_| RequestStats::default()).collect()))
                .collect(),
            names,
            base: (Instant::now(), unix_us),
            interval,
            started: OnceLock::new(),
            ended: OnceLock::new(),
            dropped: AtomicU64::new(0),
            data_exhausted: AtomicU64::new(0),
            intervals: Mutex::new(Intervals {
                closed: Vec::new(),
                prev: histogram::new_latency(),
                prev_requests: 0,
                prev_errors: 0,
            }),
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
        let (start_us, end_us) = (self.unix_us(s.start), self.unix_us(s.end));
        let mut g = self.shards[shard % self.shards.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let r = &mut g[s.metric];
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
        r.first_start_us = r.first_start_us.min(start_us);
        r.last_end_us = r.last_end_us.max(end_us);
    }

    fn per_name(&self) -> Vec<RequestStats> {
        let mut out: Vec<RequestStats> =
            self.names.iter().map(|_| RequestStats::default()).collect();
        for shard in &self.shards {
            let g = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (acc, r) in out.iter_mut().zip(g.iter()) {
                acc.merge(r);
            }
        }
        out
    }

    fn overall(per_name: &[RequestStats]) -> RequestStats {
        let mut all = RequestStats::default();
        per_name.iter().for_each(|r| all.merge(r));
        all
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
        let total = Self::overall(&self.per_name());
        let mut iv = self.intervals.lock().unwrap_or_else(|e| e.into_inner());
        let index = iv.closed.len() as u64;
        let done = Self::interval_since(&iv, index, &total);
        iv.closed.push(done);
        iv.prev_requests = total.count();
        iv.prev_errors = total.error_count();
        iv.prev = total.latency;
    }

    /// The cumulative results so far; with `intervals`, also the per-interval
    /// series (including the interval in progress). Live collection leaves
    /// the series out: it only grows, and only the final report needs it.
    pub fn snapshot(&self, intervals: bool) -> Snapshot {
        let per_name = self.per_name();
        let total = Self::overall(&per_name);
        let mut snap = Snapshot::empty(self.interval.as_micros() as u64);
        snap.runners = 1;
        snap.finished = u32::from(self.is_finished());
        if let Some(s) = self.started() {
            let until = self.ended.get().copied().unwrap_or_else(Instant::now);
            snap.started_us = Some(self.unix_us(s));
            snap.until_us = Some(self.unix_us(until));
            snap.runner_starts_us = vec![self.unix_us(s)];
        }
        if intervals {
            let iv = self.intervals.lock().unwrap_or_else(|e| e.into_inner());
            snap.intervals = iv.closed.clone();
            if total.count() > iv.prev_requests {
                snap.intervals
                    .push(Self::interval_since(&iv, iv.closed.len() as u64, &total));
            }
        }
        snap.requests = self
            .names
            .iter()
            .cloned()
            .zip(per_name)
            .filter(|(_, r)| r.count() > 0)
            .collect();
        snap.dropped = self.dropped.load(Ordering::Relaxed);
        snap.data_exhausted = self.data_exhausted.load(Ordering::Relaxed);
        snap
    }
}
