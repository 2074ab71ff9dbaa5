//! The reply to an incremental pull (`GET /snapshot?since=CURSOR`): what
//! changed in one runner's results since a state its caller acknowledged.
//! `cursor` keeps those states on the agent's side, `merge` adds replies up
//! on the caller's.
//!
//! A reply has two parts:
//! - the head, sent whole every time because it does not add up: whether
//!   the runner finished, its start and "counted until", its interval width,
//!   the records bitmap (merged by OR) and its failures (merged as a set);
//! - the additive part as a difference from the acknowledged state: per
//!   request name the latency histogram minus the acknowledged one
//!   (HdrHistogram `subtract`: same bucket layout, exact), statuses, errors,
//!   bytes, retries and failed checks by label; dropped and dataExhausted; and the intervals from the
//!   acknowledged one in progress on (that one as a difference, newer ones
//!   whole). Intervals that the caller already has whole are never sent again,
//!   so a long run's pulls stay as small as a short run's.
//!
//! Per-scenario figures (`scenarios`) travel exactly as per-request ones,
//! and journeys (`journeys`: whole-pass durations and failed passes) the
//! same way: a difference from the acknowledged state, a name whose count
//! did not change left out.
//!
//! Differences are sent as plain V2 histograms (no DEFLATE: a difference of
//! one round is small, and the caller reads it without inflating), and so
//! are the few new whole intervals of a steady pull; a reply from the start
//! (or after a long gap) sends whole intervals as the recorder packed them.
//! Both are standard HdrHistogram V2, base64.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    Bitmap, ErrorKind, FORMAT_VERSION, Interval, JourneyStats, Packed, RequestStats, Snapshot,
    Users,
    connections::{ConnectionsBase, ConnectionsDelta},
};

/// The body of `GET /snapshot?since=CURSOR`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotDelta {
    pub version: u32,
    /// The state this reply adds to: the `since` asked for, or 0 when it
    /// holds everything from the start (`since` was 0, or a cursor the agent
    /// no longer knows: then the caller must rebuild, not add).
    pub base: u64,
    /// This reply's state: sent as `since` next time, it acknowledges it.
    pub cursor: u64,
    pub head: Head,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, StatsDelta>,
    /// Per named scenario, as `requests`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scenarios: BTreeMap<String, StatsDelta>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub journeys: BTreeMap<String, JourneyDelta>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data_exhausted: u64,
    /// Sorted by index: the acknowledged interval in progress as a
    /// difference (if it changed), every newer one whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<Interval>,
    /// Connections made since the acknowledged state (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionsDelta>,
    /// Virtual users' counts since the acknowledged state.
    #[serde(default, skip_serializing_if = "Users::is_empty")]
    pub users: Users,
}

/// What does not add up, sent whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    pub finished: bool,
    pub started_us: Option<u64>,
    pub until_us: Option<u64>,
    pub interval_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_used: Option<Bitmap>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One request name's results since the acknowledged state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsDelta {
    pub latency: Packed,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statuses: BTreeMap<u16, u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<ErrorKind, u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_sent: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_received: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, u64>,
    /// Not differences: the current first start and last end (they merge
    /// by min and max, so sending them again changes nothing).
    pub first_start_us: u64,
    pub last_end_us: u64,
}

/// One journey's passes since the acknowledged state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JourneyDelta {
    pub duration: Packed,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u64,
    /// Not differences, as in `StatsDelta`.
    pub first_start_us: u64,
    pub last_end_us: u64,
}

/// New whole intervals a reply re-encodes plain at most.
const PLAIN_WHOLE: usize = 4;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The state a reply was built from, as the agent keeps it until it is
/// acknowledged: the figures a later reply is the difference from, with
/// each histogram in its plain wire form (a few hundred bytes to a few KB,
/// where the histogram itself takes 16 to 190 KB) and only the last
/// interval. So a runner's extra states cost little, however many names.
#[derive(Clone, Debug, Default)]
pub struct Base {
    requests: BTreeMap<String, BaseStats>,
    scenarios: BTreeMap<String, BaseStats>,
    journeys: BTreeMap<String, BaseJourney>,
    dropped: u64,
    data_exhausted: u64,
    last: Option<Interval>,
    connections: Option<ConnectionsBase>,
    users: Users,
}

#[derive(Clone, Debug)]
struct BaseStats {
    count: u64,
    latency: Packed,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<ErrorKind, u64>,
    bytes_sent: u64,
    bytes_received: u64,
    retries: u64,
    checks: BTreeMap<String, u64>,
}

#[derive(Clone, Debug)]
struct BaseJourney {
    count: u64,
    duration: Packed,
    failed: u64,
}

/// Per-name figures kept compact; names whose count did not change since
/// `prev` reuse its entries instead of being encoded again.
fn base_stats(
    cur: &BTreeMap<String, RequestStats>,
    prev: Option<&BTreeMap<String, BaseStats>>,
) -> BTreeMap<String, BaseStats> {
    cur.iter()
        .map(|(name, r)| {
            let same = prev
                .and_then(|p| p.get(name))
                .filter(|b| b.count == r.count());
            let b = same.cloned().unwrap_or_else(|| BaseStats {
                count: r.count(),
                latency: Packed::plain(&r.latency),
                statuses: r.statuses.clone(),
                errors: r.errors.clone(),
                bytes_sent: r.bytes_sent,
                bytes_received: r.bytes_received,
                retries: r.retries,
                checks: r.checks.clone(),
            });
            (name.clone(), b)
        })
        .collect()
}

fn base_journeys(
    cur: &BTreeMap<String, JourneyStats>,
    prev: Option<&BTreeMap<String, BaseJourney>>,
) -> BTreeMap<String, BaseJourney> {
    cur.iter()
        .map(|(name, j)| {
            let same = prev
                .and_then(|p| p.get(name))
                .filter(|b| b.count == j.passes());
            let b = same.cloned().unwrap_or_else(|| BaseJourney {
                count: j.passes(),
                duration: Packed::plain(&j.duration),
                failed: j.failed,
            });
            (name.clone(), b)
        })
        .collect()
}

impl Base {
    /// `s` kept compact; names whose count did not change since `prev` reuse
    /// its entries instead of being encoded again.
    pub fn of(s: &Snapshot, prev: Option<&Base>) -> Base {
        Base {
            requests: base_stats(&s.requests, prev.map(|p| &p.requests)),
            scenarios: base_stats(&s.scenarios, prev.map(|p| &p.scenarios)),
            journeys: base_journeys(&s.journeys, prev.map(|p| &p.journeys)),
            dropped: s.dropped,
            data_exhausted: s.data_exhausted,
            last: s.intervals.last().cloned(),
            connections: (!s.connections.is_empty()).then(|| ConnectionsBase::of(&s.connections)),
            users: s.users,
        }
    }

    /// Bytes of histograms it keeps.
    pub fn footprint(&self) -> usize {
        let names: usize = self
            .requests
            .values()
            .chain(self.scenarios.values())
            .map(|b| b.latency.encoded_len())
            .sum();
        let journeys: usize = self
            .journeys
            .values()
            .map(|b| b.duration.encoded_len())
            .sum();
        names
            + journeys
            + self.last.as_ref().map_or(0, |iv| iv.latency.encoded_len())
            + self
                .connections
                .as_ref()
                .map_or(0, ConnectionsBase::footprint)
    }

    /// The first interval a later reply needs: the last one here (it may
    /// have been in progress).
    pub fn first_interval(&self) -> u64 {
        self.last.as_ref().map_or(0, |iv| iv.index)
    }
}

impl Head {
    pub fn of(s: &Snapshot) -> Head {
        Head {
            finished: s.finished > 0,
            started_us: s.started_us,
            until_us: s.until_us,
            interval_us: s.interval_us,
            records_used: s.records_used.clone(),
            failures: s.failures.clone(),
            warnings: s.warnings.clone(),
        }
    }
}

/// `cur - base` of counters that only grow; `None` if one shrank.
fn minus<K: Ord + Clone>(
    cur: &BTreeMap<K, u64>,
    base: &BTreeMap<K, u64>,
) -> Option<BTreeMap<K, u64>> {
    if base.keys().any(|k| !cur.contains_key(k)) {
        return None;
    }
    let mut out = BTreeMap::new();
    for (k, v) in cur {
        let d = v.checked_sub(base.get(k).copied().unwrap_or(0))?;
        if d > 0 {
            out.insert(k.clone(), d);
        }
    }
    Some(out)
}

impl StatsDelta {
    /// `cur` minus `base` (the same name, earlier); `None` if anything shrank.
    fn between(base: Option<&BaseStats>, cur: &RequestStats) -> Option<StatsDelta> {
        let mut latency = cur.latency.clone();
        let Some(b) = base else {
            return Some(StatsDelta {
                latency: Packed::plain(&latency),
                statuses: cur.statuses.clone(),
                errors: cur.errors.clone(),
                bytes_sent: cur.bytes_sent,
                bytes_received: cur.bytes_received,
                retries: cur.retries,
                checks: cur.checks.clone(),
                first_start_us: cur.first_start_us,
                last_end_us: cur.last_end_us,
            });
        };
        latency.subtract(b.latency.unpack().ok()?).ok()?;
        Some(StatsDelta {
            latency: Packed::plain(&latency),
            statuses: minus(&cur.statuses, &b.statuses)?,
            errors: minus(&cur.errors, &b.errors)?,
            bytes_sent: cur.bytes_sent.checked_sub(b.bytes_sent)?,
            bytes_received: cur.bytes_received.checked_sub(b.bytes_received)?,
            retries: cur.retries.checked_sub(b.retries)?,
            checks: minus(&cur.checks, &b.checks)?,
            first_start_us: cur.first_start_us,
            last_end_us: cur.last_end_us,
        })
    }
}

/// What each name of `cur` adds to `base` (names whose count did not
/// change left out); `None` if a name went away or anything shrank.
fn stats_between(
    base: &BTreeMap<String, BaseStats>,
    cur: &BTreeMap<String, RequestStats>,
) -> Option<BTreeMap<String, StatsDelta>> {
    if base.keys().any(|n| !cur.contains_key(n)) {
        return None;
    }
    let mut out = BTreeMap::new();
    for (name, c) in cur {
        let old = base.get(name);
        if old.is_some_and(|o| o.count == c.count()) {
            // Every figure of a name changes with its count, or not at all.
            continue;
        }
        out.insert(name.clone(), StatsDelta::between(old, c)?);
    }
    Some(out)
}

/// `stats_between` for journeys.
fn journeys_between(
    base: &BTreeMap<String, BaseJourney>,
    cur: &BTreeMap<String, JourneyStats>,
) -> Option<BTreeMap<String, JourneyDelta>> {
    if base.keys().any(|n| !cur.contains_key(n)) {
        return None;
    }
    let mut out = BTreeMap::new();
    for (name, c) in cur {
        let old = base.get(name);
        if old.is_some_and(|o| o.count == c.passes()) {
            continue;
        }
        let mut duration = c.duration.clone();
        let mut failed = c.failed;
        if let Some(b) = old {
            duration.subtract(b.duration.unpack().ok()?).ok()?;
            failed = failed.checked_sub(b.failed)?;
        }
        out.insert(
            name.clone(),
            JourneyDelta {
                duration: Packed::plain(&duration),
                failed,
                first_start_us: c.first_start_us,
                last_end_us: c.last_end_us,
            },
        );
    }
    Some(out)
}

impl SnapshotDelta {
    /// What `cur` adds to `base` (`None`: everything, from the start).
    /// `base` must be an earlier state of the same runner and `cur` carry
    /// the intervals from `base.first_interval()` on (all of them without a
    /// base); `None` when they do not fit together (then answer from the
    /// start instead).
    pub fn between(
        base: Option<&Base>,
        cur: &Snapshot,
        base_cursor: u64,
        cursor: u64,
    ) -> Option<SnapshotDelta> {
        let empty = Base::default();
        let b = base.unwrap_or(&empty);
        let requests = stats_between(&b.requests, &cur.requests)?;
        let scenarios = stats_between(&b.scenarios, &cur.scenarios)?;
        let journeys = journeys_between(&b.journeys, &cur.journeys)?;
        let last = b.last.as_ref();
        if let Some(l) = last
            && !cur.intervals.iter().any(|iv| iv.index == l.index)
        {
            return None;
        }
        // A steady pull's one or two new intervals go plain too (the caller
        // reads them without inflating); a long backlog, or everything from
        // the start, keeps the recorder's packing (a third of the bytes).
        let whole = cur
            .intervals
            .iter()
            .filter(|iv| last.is_none_or(|l| iv.index > l.index))
            .count();
        let plain = base.is_some() && whole <= PLAIN_WHOLE;
        let mut intervals = Vec::new();
        for iv in &cur.intervals {
            match last {
                Some(l) if iv.index < l.index => {}
                Some(l) if iv.index == l.index => {
                    if iv.requests == l.requests {
                        continue;
                    }
                    let mut h = iv.latency.unpack().ok()?;
                    h.subtract(l.latency.unpack().ok()?).ok()?;
                    intervals.push(Interval {
                        index: iv.index,
                        requests: iv.requests.checked_sub(l.requests)?,
                        errors: iv.errors.checked_sub(l.errors)?,
                        latency: Packed::plain(&h),
                    });
                }
                _ if plain => intervals.push(Interval {
                    latency: Packed::plain(&iv.latency.unpack().ok()?),
                    ..iv.clone()
                }),
                _ => intervals.push(iv.clone()),
            }
        }
        Some(SnapshotDelta {
            version: FORMAT_VERSION,
            base: base_cursor,
            cursor,
            head: Head::of(cur),
            requests,
            scenarios,
            journeys,
            dropped: cur.dropped.checked_sub(b.dropped)?,
            data_exhausted: cur.data_exhausted.checked_sub(b.data_exhausted)?,
            intervals,
            connections: ConnectionsDelta::between(b.connections.as_ref(), &cur.connections)?,
            users: cur.users.since(&b.users)?,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("deltas always serialize")
    }

    /// Reads a reply; its histograms are checked when merged (`merge`).
    pub fn from_slice(body: &[u8]) -> Result<SnapshotDelta, crate::Error> {
        let d: SnapshotDelta =
            serde_json::from_slice(body).map_err(|e| crate::Error::Snapshot(e.to_string()))?;
        if d.version != FORMAT_VERSION {
            return Err(crate::Error::Snapshot(format!(
                "format version {} is not {FORMAT_VERSION}",
                d.version
            )));
        }
        Ok(d)
    }
}
