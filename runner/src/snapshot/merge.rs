//! The caller's side of incremental pulls: many runners' replies
//! (`SnapshotDelta`) added into one merged snapshot, exactly as merging
//! their whole cumulative snapshots would give.
//!
//! What is kept: the merged sums (one counts array per request name, one
//! series) and, per runner, only its cursor and head (start, end, whether
//! it finished: a few words). No runner's histograms are kept, so 1,000
//! runners cost what one merged snapshot costs; a runner that stops
//! answering keeps what it reported. The merged series holds the newest
//! intervals (still changing) decoded, to add into, and packs the others.
//!
//! Per-scenario figures and journeys' passes are summed the same way as
//! per-request ones, each in sums of their own.
//!
//! A reply based on another state than the runner's cursor here (the agent
//! did not know the cursor) cannot be added: the caller calls `reset` and
//! pulls every runner from 0 (`Applied::Rebase`).

use std::collections::BTreeMap;

use super::{
    Interval, JourneyStats, Packed, RequestStats, Snapshot,
    delta::{Head, JourneyDelta, SnapshotDelta, StatsDelta},
    sparse::{self, Dense, Scratch, Sparse},
};

/// What adding a reply did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Added,
    /// Not based on this runner's cursor here: nothing was added.
    Rebase,
}

struct Runner {
    cursor: u64,
    finished: bool,
    started_us: Option<u64>,
    until_us: Option<u64>,
}

enum Slot {
    Packed(Interval),
    /// Still changing.
    Open {
        requests: u64,
        errors: u64,
        counts: Counts,
        touched: bool,
    },
}

/// An open interval's buckets: a counts array for the newest few (every
/// runner adds into them each round, bucket by bucket), the (index, count)
/// pairs for older ones (a recovery round opens the whole series at once:
/// a few KB each instead of up to 190).
enum Counts {
    Dense(Dense),
    Sparse(Sparse),
}

impl Counts {
    fn add(&mut self, s: &Sparse) {
        match self {
            Counts::Dense(d) => d.add(s),
            Counts::Sparse(c) => c.add(s),
        }
    }

    fn pack(&self) -> Packed {
        match self {
            Counts::Dense(d) => Packed::pack(&d.to_latency()),
            Counts::Sparse(c) => Packed::pack(&c.to_latency()),
        }
    }
}

/// How many of the newest intervals may stay open after a round: the one
/// in progress and the one just closed, with a runner or two behind.
const OPEN: u64 = 2;

#[derive(Default)]
pub struct Merge {
    runners: BTreeMap<u32, Runner>,
    /// The additive figures, records and failures; no intervals (`series`)
    /// and no latencies (`latency`).
    totals: Option<Snapshot>,
    /// Each request name's latency sum.
    latency: BTreeMap<String, Dense>,
    /// Each named scenario's latency sum.
    scenario_latency: BTreeMap<String, Dense>,
    /// Each journey's duration sum.
    journey_duration: BTreeMap<String, Dense>,
    series: BTreeMap<u64, Slot>,
    /// The highest interval index the plan can produce: a runner sending
    /// others is refused (the series is bounded by the plan, not by runners).
    max_index: Option<u64>,
    /// The most request names the plan can have: a runner sending others is
    /// refused too (the sums would grow with every round otherwise). Bounds
    /// the scenarios' and the journeys' names as well (a plan has no more
    /// of either than request names).
    max_names: Option<usize>,
    /// The highest interval index seen.
    newest: u64,
    scratch: Scratch,
}

/// Failures kept at most (one a runner is what runners send).
const MAX_FAILURES: usize = 1_000;

impl Merge {
    /// `max_index`: the highest interval index a runner may send.
    pub fn new(max_index: Option<u64>) -> Merge {
        Merge {
            max_index,
            ..Merge::default()
        }
    }

    /// Refuses replies that would take the request names past `n`.
    pub fn with_max_names(mut self, n: usize) -> Merge {
        self.max_names = Some(n);
        self
    }

    /// The cursor to pull `runner` with (0: nothing of it is here).
    pub fn cursor(&self, runner: u32) -> u64 {
        self.runners.get(&runner).map_or(0, |r| r.cursor)
    }

    /// Whether `runner`'s results are here (it answered since the start or
    /// the last `reset`).
    pub fn has(&self, runner: u32) -> bool {
        self.runners.contains_key(&runner)
    }

    /// Whether `runner` reported that its load started.
    pub fn started(&self, runner: u32) -> bool {
        self.runners
            .get(&runner)
            .is_some_and(|r| r.started_us.is_some())
    }

    /// Drops everything, to pull every runner again from 0.
    pub fn reset(&mut self) {
        let (max_index, max_names) = (self.max_index, self.max_names);
        *self = Merge::new(max_index);
        self.max_names = max_names;
    }

    /// Adds `runner`'s reply. A reply that does not decode (or names an
    /// interval the plan cannot have) is refused whole: nothing of it is added.
    pub fn apply(&mut self, runner: u32, d: &SnapshotDelta) -> Result<Applied, crate::Error> {
        if d.base != self.cursor(runner) {
            return Ok(Applied::Rebase);
        }
        let bad = |what: String, e: String| crate::Error::Snapshot(format!("{what}: {e}"));
        if let Some(max) = self.max_names {
            let t = self.totals.as_ref();
            let checks = [
                (
                    "requests",
                    "request",
                    t.map(|t| names_of(&t.requests)),
                    names_of(&d.requests),
                ),
                (
                    "scenarios",
                    "scenario",
                    t.map(|t| names_of(&t.scenarios)),
                    names_of(&d.scenarios),
                ),
                (
                    "journeys",
                    "journey",
                    t.map(|t| names_of(&t.journeys)),
                    names_of(&d.journeys),
                ),
            ];
            for (field, what, known, sent) in checks {
                let known = known.unwrap_or_default();
                let new = sent
                    .iter()
                    .filter(|n| known.binary_search(n).is_err())
                    .count();
                if known.len() + new > max {
                    return Err(bad(
                        field.into(),
                        format!("more {what} names than the plan's {max} (its request names)"),
                    ));
                }
            }
        }
        // Read everything before adding anything.
        let mut names = Vec::with_capacity(d.requests.len());
        for (name, r) in &d.requests {
            let s = sparse::read(&r.latency.0, &mut self.scratch)
                .map_err(|e| bad(format!("request {name:?}"), e))?;
            names.push(s);
        }
        let mut scenarios = Vec::with_capacity(d.scenarios.len());
        for (name, r) in &d.scenarios {
            let s = sparse::read(&r.latency.0, &mut self.scratch)
                .map_err(|e| bad(format!("scenario {name:?}"), e))?;
            scenarios.push(s);
        }
        let mut journeys = Vec::with_capacity(d.journeys.len());
        for (name, j) in &d.journeys {
            let s = sparse::read(&j.duration.0, &mut self.scratch)
                .map_err(|e| bad(format!("journey {name:?}"), e))?;
            journeys.push(s);
        }
        let connections = d
            .connections
            .as_ref()
            .map(|c| c.read().map_err(|e| bad("connections".into(), e)))
            .transpose()?;
        let mut intervals = Vec::with_capacity(d.intervals.len());
        for iv in &d.intervals {
            if self.max_index.is_some_and(|m| iv.index > m) {
                return Err(bad(
                    format!("interval {}", iv.index),
                    format!(
                        "beyond the plan's last interval ({})",
                        self.max_index.unwrap_or(0)
                    ),
                ));
            }
            let s = sparse::read(&iv.latency.0, &mut self.scratch)
                .map_err(|e| bad(format!("interval {}", iv.index), e))?;
            intervals.push(s);
        }
        let totals = self
            .totals
            .get_or_insert_with(|| Snapshot::empty(d.head.interval_us));
        for ((name, r), s) in d.requests.iter().zip(&names) {
            add_stats(totals.requests.entry(name.clone()).or_default(), r);
            add_sum(&mut self.latency, name, s);
        }
        for ((name, r), s) in d.scenarios.iter().zip(&scenarios) {
            add_stats(totals.scenarios.entry(name.clone()).or_default(), r);
            add_sum(&mut self.scenario_latency, name, s);
        }
        for ((name, j), s) in d.journeys.iter().zip(&journeys) {
            add_journey(totals.journeys.entry(name.clone()).or_default(), j);
            add_sum(&mut self.journey_duration, name, s);
        }
        if let Some(c) = &connections {
            totals.connections.merge(c);
        }
        totals.dropped = totals.dropped.saturating_add(d.dropped);
        totals.data_exhausted = totals.data_exhausted.saturating_add(d.data_exhausted);
        totals.users.add(&d.users);
        add_head(totals, &d.head);
        if let Some(last) = d.intervals.last() {
            self.newest = self.newest.max(last.index);
        }
        for (iv, s) in d.intervals.iter().zip(intervals) {
            self.add_interval(iv, &s);
        }
        self.runners.insert(
            runner,
            Runner {
                cursor: d.cursor,
                finished: d.head.finished,
                started_us: d.head.started_us,
                until_us: d.head.until_us,
            },
        );
        Ok(Applied::Added)
    }

    fn add_interval(&mut self, iv: &Interval, s: &Sparse) {
        let dense = iv.index + OPEN >= self.newest;
        let open = |counts: Sparse| {
            if dense {
                let mut d = Dense::default();
                d.add(&counts);
                Counts::Dense(d)
            } else {
                Counts::Sparse(counts)
            }
        };
        let slot = match self.series.entry(iv.index) {
            std::collections::btree_map::Entry::Vacant(v) => v.insert(Slot::Open {
                requests: 0,
                errors: 0,
                counts: open(Sparse::default()),
                touched: true,
            }),
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
        };
        if let Slot::Packed(p) = slot {
            // Checked when it was packed here (or read from a reply).
            let counts = sparse::read(&p.latency.0, &mut self.scratch).unwrap_or_default();
            *slot = Slot::Open {
                requests: p.requests,
                errors: p.errors,
                counts: open(counts),
                touched: true,
            };
        }
        if let Slot::Open {
            requests,
            errors,
            counts,
            touched,
        } = slot
        {
            *requests = requests.saturating_add(iv.requests);
            *errors = errors.saturating_add(iv.errors);
            counts.add(s);
            *touched = true;
        }
    }

    /// Ends a round: intervals that no reply changed this round, and all
    /// but the newest few, are packed (a run's series is kept as its wire
    /// form, about a KB an interval); the others stay open to add into.
    pub fn settle(&mut self) {
        let newest = self.newest;
        for (&index, slot) in self.series.iter_mut() {
            if let Slot::Open {
                requests,
                errors,
                counts,
                touched,
            } = slot
            {
                if *touched && index + OPEN >= newest {
                    *touched = false;
                } else {
                    *slot = Slot::Packed(Interval {
                        index,
                        requests: *requests,
                        errors: *errors,
                        latency: counts.pack(),
                    });
                }
            }
        }
    }

    /// The merged snapshot of every runner here; with `series`, also the
    /// per-interval series (a copy: only when it is judged or reported).
    pub fn snapshot(&self, series: bool) -> Snapshot {
        let mut s = self.totals.clone().unwrap_or_else(|| Snapshot::empty(0));
        for (name, r) in s.requests.iter_mut() {
            if let Some(sum) = self.latency.get(name) {
                r.latency = sum.to_latency();
            }
        }
        for (name, r) in s.scenarios.iter_mut() {
            if let Some(sum) = self.scenario_latency.get(name) {
                r.latency = sum.to_latency();
            }
        }
        for (name, j) in s.journeys.iter_mut() {
            if let Some(sum) = self.journey_duration.get(name) {
                j.duration = sum.to_latency();
            }
        }
        s.runners = self.runners.len() as u32;
        s.finished = self.runners.values().filter(|r| r.finished).count() as u32;
        s.started_us = self.runners.values().filter_map(|r| r.started_us).min();
        s.until_us = self.runners.values().filter_map(|r| r.until_us).max();
        s.runner_starts_us = self.runners.values().filter_map(|r| r.started_us).collect();
        if series {
            s.intervals = self
                .series
                .iter()
                .map(|(&index, slot)| match slot {
                    Slot::Packed(p) => p.clone(),
                    Slot::Open {
                        requests,
                        errors,
                        counts,
                        ..
                    } => Interval {
                        index,
                        requests: *requests,
                        errors: *errors,
                        latency: counts.pack(),
                    },
                })
                .collect();
        }
        s
    }
}

/// A map's names, sorted (as the map keeps them).
fn names_of<T>(m: &BTreeMap<String, T>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

/// Adds `s` into the sum named `name`, making it if it is new.
fn add_sum(sums: &mut BTreeMap<String, Dense>, name: &str, s: &Sparse) {
    match sums.get_mut(name) {
        Some(sum) => sum.add(s),
        None => {
            let mut sum = Dense::default();
            sum.add(s);
            sums.insert(name.to_string(), sum);
        }
    }
}

/// The additive figures of a journey's reply (its durations go to `add_sum`).
fn add_journey(t: &mut JourneyStats, j: &JourneyDelta) {
    t.failed = t.failed.saturating_add(j.failed);
    t.first_start_us = t.first_start_us.min(j.first_start_us);
    t.last_end_us = t.last_end_us.max(j.last_end_us);
}

fn add_stats(t: &mut RequestStats, r: &StatsDelta) {
    for (k, v) in &r.statuses {
        let e = t.statuses.entry(*k).or_default();
        *e = e.saturating_add(*v);
    }
    for (k, v) in &r.errors {
        let e = t.errors.entry(*k).or_default();
        *e = e.saturating_add(*v);
    }
    t.bytes_sent = t.bytes_sent.saturating_add(r.bytes_sent);
    t.bytes_received = t.bytes_received.saturating_add(r.bytes_received);
    t.retries = t.retries.saturating_add(r.retries);
    for (k, v) in &r.checks {
        let e = t.checks.entry(k.clone()).or_default();
        *e = e.saturating_add(*v);
    }
    t.first_start_us = t.first_start_us.min(r.first_start_us);
    t.last_end_us = t.last_end_us.max(r.last_end_us);
}

/// The parts of a head that merge into the totals; sending them again
/// changes nothing (OR, set union).
fn add_head(t: &mut Snapshot, h: &Head) {
    if t.interval_us == 0 {
        t.interval_us = h.interval_us;
    }
    match (&mut t.records_used, &h.records_used) {
        (Some(mine), Some(theirs)) => mine.or(theirs),
        (mine @ None, Some(theirs)) => *mine = Some(theirs.clone()),
        _ => {}
    }
    super::merge_set(&mut t.warnings, &h.warnings);
    if !h.failures.is_empty() && t.failures.len() < MAX_FAILURES {
        t.failures
            .extend(h.failures.iter().take(MAX_FAILURES).cloned());
        t.failures.sort();
        t.failures.dedup();
    }
}

#[cfg(test)]
mod tests;
