//! The cumulative results of one runner, or of many merged: what a runner
//! serves to the operator, what `--out` writes, and what thresholds read.
//!
//! Everything in here merges exactly: histograms add, counts add, time windows
//! widen. Percentiles are only ever read from merged histograms, never
//! averaged across runners.
//!
//! Collected incrementally: a runner answers a pull with what changed since
//! the state its caller acknowledged (`delta`, `cursor`), and the caller adds
//! those replies into one merged snapshot (`merge`), reading their
//! histograms straight into the sums (`sparse`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::histogram::{self, Latency};

pub mod connections;
pub mod cursor;
pub mod delta;
pub mod merge;
#[cfg(test)]
mod sim;
pub mod sparse;

pub use connections::Connections;
pub use cursor::Cursors;
pub use delta::SnapshotDelta;
pub use merge::{Applied, Merge};

/// Bumped when the wire form changes incompatibly; readers refuse other versions.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// The TCP connection could not be made.
    Connect,
    /// The target's host name did not resolve (no such name, or no
    /// answer): like `connect`, the target never saw the request.
    Dns,
    /// No complete response within the request's timeout.
    Timeout,
    /// A response came, with a status the request does not expect.
    Status,
    /// A capture found nothing where the step said to look.
    Capture,
    /// The connection broke or the response was not valid HTTP.
    Http,
    /// A body kept for a capture was longer than the request's `maxBody`.
    /// Named as in the summary and the docs (`as_str`), on the wire too.
    #[serde(rename = "body_too_large")]
    BodyTooLarge,
    /// A body check of `expect.body` failed (which one is counted in
    /// `RequestStats::checks`).
    Check,
    /// Still in flight when the run ended (its graceful stop ran out, or
    /// Ctrl-C): the target may have seen it, so it counts, as an error.
    Interrupted,
    /// TLS: the target's certificate does not chain to a trusted CA.
    #[serde(rename = "tls_unknown_ca")]
    TlsUnknownCa,
    /// TLS: the certificate does not name the host (or `serverName`).
    #[serde(rename = "tls_name_mismatch")]
    TlsNameMismatch,
    /// TLS: the certificate has expired or is not valid yet.
    #[serde(rename = "tls_expired")]
    TlsExpired,
    /// TLS: the target refused the handshake with an alert (say, mutual
    /// TLS without a client certificate, or no common version).
    #[serde(rename = "tls_refused")]
    TlsRefused,
    /// Any other TLS failure.
    Tls,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::Connect,
        ErrorKind::Dns,
        ErrorKind::Timeout,
        ErrorKind::Status,
        ErrorKind::Capture,
        ErrorKind::Http,
        ErrorKind::BodyTooLarge,
        ErrorKind::Check,
        ErrorKind::Interrupted,
        ErrorKind::TlsUnknownCa,
        ErrorKind::TlsNameMismatch,
        ErrorKind::TlsExpired,
        ErrorKind::TlsRefused,
        ErrorKind::Tls,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Dns => "dns",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status => "status",
            ErrorKind::Capture => "capture",
            ErrorKind::Http => "http",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::Check => "check",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::TlsUnknownCa => "tls_unknown_ca",
            ErrorKind::TlsNameMismatch => "tls_name_mismatch",
            ErrorKind::TlsExpired => "tls_expired",
            ErrorKind::TlsRefused => "tls_refused",
            ErrorKind::Tls => "tls",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestStats {
    /// Latency of every attempt (including failed ones, up to the moment the
    /// failure was known), in microseconds.
    #[serde(with = "histogram::b64")]
    pub latency: Latency,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Requests sent a second time because a kept-alive connection closed
    /// under them: each resend is one more request the target may have seen.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
    /// Failed body checks by label (`contains "ok"`, `json /id present`):
    /// together they are the `check` errors. Bounded by the plan's checks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, u64>,
    /// Unix time in microseconds of the first request's start and the last one's end.
    pub first_start_us: u64,
    pub last_end_us: u64,
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats {
            latency: histogram::new_latency(),
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            bytes_sent: 0,
            bytes_received: 0,
            retries: 0,
            checks: BTreeMap::new(),
            first_start_us: u64::MAX,
            last_end_us: 0,
        }
    }
}

impl RequestStats {
    pub fn count(&self) -> u64 {
        self.latency.len()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn merge(&mut self, o: &RequestStats) {
        self.latency
            .add(&o.latency)
            .expect("auto-resizing histograms always add");
        for (k, v) in &o.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &o.errors {
            *self.errors.entry(*k).or_default() += v;
        }
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.retries += o.retries;
        for (k, v) in &o.checks {
            *self.checks.entry(k.clone()).or_default() += v;
        }
        self.first_start_us = self.first_start_us.min(o.first_start_us);
        self.last_end_us = self.last_end_us.max(o.last_end_us);
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One journey's whole passes: how long each took from its first step's
/// start to its last step's end (pauses included), and how many stopped at
/// a failed step. A view over requests already counted in `requests`: a
/// pass is never a request and never counts in the requests' totals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JourneyStats {
    /// Duration of every pass, in microseconds; its count is the passes.
    #[serde(with = "histogram::b64")]
    pub duration: Latency,
    /// Passes that stopped at a failed step.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u64,
    /// Unix time in microseconds of the first pass's start and the last one's end.
    pub first_start_us: u64,
    pub last_end_us: u64,
}

impl Default for JourneyStats {
    fn default() -> Self {
        JourneyStats {
            duration: histogram::new_latency(),
            failed: 0,
            first_start_us: u64::MAX,
            last_end_us: 0,
        }
    }
}

impl JourneyStats {
    pub fn passes(&self) -> u64 {
        self.duration.len()
    }

    pub fn merge(&mut self, o: &JourneyStats) {
        self.duration
            .add(&o.duration)
            .expect("auto-resizing histograms always add");
        self.failed += o.failed;
        self.first_start_us = self.first_start_us.min(o.first_start_us);
        self.last_end_us = self.last_end_us.max(o.last_end_us);
    }

    /// Records one pass of `duration_us`, from `start_us` to `end_us`.
    pub fn record(&mut self, duration_us: u64, ok: bool, start_us: u64, end_us: u64) {
        histogram::record(&mut self.duration, duration_us);
        self.failed += u64::from(!ok);
        self.first_start_us = self.first_start_us.min(start_us);
        self.last_end_us = self.last_end_us.max(end_us);
    }
}

/// Latency and counts of one time slice of the test (all requests together).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interval {
    /// Position from the test's start, in units of `Snapshot::interval_us`.
    pub index: u64,
    pub requests: u64,
    pub errors: u64,
    pub latency: Packed,
}

impl Interval {
    /// Adds another interval: the same slice of time from another runner,
    /// or (downsampling a long series) the next slice. Exact: counts add,
    /// histograms add.
    pub fn absorb(&mut self, o: &Interval) {
        self.requests += o.requests;
        self.errors += o.errors;
        // Both were checked when decoded (from_json) or packed here.
        if let (Ok(mut a), Ok(b)) = (self.latency.unpack(), o.latency.unpack()) {
            a.add(&b).expect("auto-resizing histograms always add");
            self.latency = Packed::pack(&a);
        }
    }
}

/// A latency histogram kept in its wire form (V2 + DEFLATE, base64: a few
/// KB instead of ~190 KB of counters), because a long soak test holds
/// thousands of interval histograms. Decoded only when read or merged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Packed(String);

impl Packed {
    pub fn pack(h: &Latency) -> Packed {
        Packed(histogram::encode(h))
    }

    /// Plain V2 without DEFLATE, for the small differences an incremental
    /// pull sends (see `delta`).
    pub fn plain(h: &Latency) -> Packed {
        Packed(histogram::encode_plain(h))
    }

    pub fn unpack(&self) -> Result<Latency, String> {
        histogram::decode(&self.0)
    }

    pub fn encoded_len(&self) -> usize {
        self.0.len()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub version: u32,
    /// How many runner snapshots this one holds.
    pub runners: u32,
    /// How many of those had finished their load when they were taken.
    pub finished: u32,
    /// Unix time in microseconds when the load started (the earliest runner)
    /// and up to when this snapshot counts (the latest runner).
    pub started_us: Option<u64>,
    pub until_us: Option<u64>,
    /// Every runner's own start, for the start skew.
    pub runner_starts_us: Vec<u64>,
    pub requests: BTreeMap<String, RequestStats>,
    /// Per named scenario: every request of its metrics added up (a view
    /// over `requests`, not more requests). Empty for a plan without named
    /// scenarios, whose totals are its one scenario.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scenarios: BTreeMap<String, RequestStats>,
    /// Per journey (`checkout`, `S/checkout`, `onStart`): its whole passes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub journeys: BTreeMap<String, JourneyStats>,
    /// Open model: arrivals not sent, because maxInFlight was reached or
    /// because they were due before the load ended but could not be sent in time.
    pub dropped: u64,
    /// Iterations that could not run because `unique` data ran out.
    pub data_exhausted: u64,
    /// Which data records were used, one bit per record: merging ORs them,
    /// so the distinct count stays exact when runners share records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_used: Option<Bitmap>,
    pub interval_us: u64,
    pub intervals: Vec<Interval>,
    /// Why runners' engines failed (a panicked task), at most one entry per
    /// runner: a run with any is failed, whatever it measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Connection setup times, apart from request latency.
    #[serde(default, skip_serializing_if = "Connections::is_empty")]
    pub connections: Connections,
    /// What the run's results must be read with (such as a target whose
    /// certificate was not verified); merged as a set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Virtual users with an onStart: started, failed, retired.
    #[serde(default, skip_serializing_if = "Users::is_empty")]
    pub users: Users,
}

/// What became of the virtual users of scenarios with an `onStart`
/// (counts add exactly across runners).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Users {
    /// Users whose onStart succeeded (a user parked by a ramp down and
    /// started again counts again).
    pub started: u64,
    /// onStart passes that failed (each retried after the think time).
    pub on_start_failures: u64,
    /// Users given up after `ON_START_ATTEMPTS` failed onStarts in a row:
    /// they ran nothing more.
    pub retired: u64,
}

impl Users {
    pub fn is_empty(&self) -> bool {
        *self == Users::default()
    }

    pub fn add(&mut self, o: &Users) {
        self.started = self.started.saturating_add(o.started);
        self.on_start_failures = self.on_start_failures.saturating_add(o.on_start_failures);
        self.retired = self.retired.saturating_add(o.retired);
    }

    /// `self - base`, None if a count shrank.
    pub fn since(&self, base: &Users) -> Option<Users> {
        Some(Users {
            started: self.started.checked_sub(base.started)?,
            on_start_failures: self.on_start_failures.checked_sub(base.on_start_failures)?,
            retired: self.retired.checked_sub(base.retired)?,
        })
    }
}

impl Snapshot {
    pub fn empty(interval_us: u64) -> Snapshot {
        Snapshot {
            version: FORMAT_VERSION,
            runners: 0,
            finished: 0,
            started_us: None,
            until_us: None,
            runner_starts_us: Vec::new(),
            requests: BTreeMap::new(),
            scenarios: BTreeMap::new(),
            journeys: BTreeMap::new(),
            dropped: 0,
            data_exhausted: 0,
            records_used: None,
            interval_us,
            intervals: Vec::new(),
            failures: Vec::new(),
            connections: Connections::default(),
            warnings: Vec::new(),
            users: Users::default(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("snapshots always serialize")
    }

    pub fn from_json(s: &str) -> Result<Snapshot, crate::Error> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version =
            serde_json::from_str(s).map_err(|e| crate::Error::Snapshot(e.to_string()))?;
        if v.version != FORMAT_VERSION {
            return Err(crate::Error::Snapshot(format!(
                "format version {} is not {FORMAT_VERSION}",
                v.version
            )));
        }
        let snap: Snapshot =
            serde_json::from_str(s).map_err(|e| crate::Error::Snapshot(e.to_string()))?;
        // Check the packed histograms now, so that a bad one is refused at the
        // door rather than failing a merge later.
        for iv in &snap.intervals {
            iv.latency
                .unpack()
                .map_err(|e| crate::Error::Snapshot(format!("interval {}: {e}", iv.index)))?;
        }
        Ok(snap)
    }

    /// Adds another snapshot (another runner's, or a merge of several).
    pub fn merge(&mut self, o: &Snapshot) {
        self.runners += o.runners;
        self.finished += o.finished;
        self.started_us = min_opt(self.started_us, o.started_us);
        self.until_us = self.until_us.max(o.until_us);
        self.runner_starts_us.extend_from_slice(&o.runner_starts_us);
        for (name, r) in &o.requests {
            self.requests.entry(name.clone()).or_default().merge(r);
        }
        for (name, r) in &o.scenarios {
            self.scenarios.entry(name.clone()).or_default().merge(r);
        }
        for (name, j) in &o.journeys {
            self.journeys.entry(name.clone()).or_default().merge(j);
        }
        self.dropped += o.dropped;
        self.data_exhausted += o.data_exhausted;
        match (&mut self.records_used, &o.records_used) {
            (Some(mine), Some(theirs)) => mine.or(theirs),
            (mine @ None, Some(theirs)) => *mine = Some(theirs.clone()),
            _ => {}
        }
        if self.interval_us == 0 {
            self.interval_us = o.interval_us;
        }
        for iv in &o.intervals {
            match self.intervals.binary_search_by_key(&iv.index, |x| x.index) {
                Ok(i) => self.intervals[i].absorb(iv),
                Err(i) => self.intervals.insert(i, iv.clone()),
            }
        }
        // A set: the same order whatever order runners are merged in.
        self.failures.extend_from_slice(&o.failures);
        self.failures.sort();
        self.failures.dedup();
        self.connections.merge(&o.connections);
        merge_set(&mut self.warnings, &o.warnings);
        self.users.add(&o.users);
    }

    pub fn merged<'a>(snaps: impl IntoIterator<Item = &'a Snapshot>) -> Snapshot {
        let mut out = Snapshot::empty(0);
        for s in snaps {
            out.merge(s);
        }
        out
    }

    /// All requests together, or one request name.
    pub fn stats(&self, name: Option<&str>) -> Option<RequestStats> {
        match name {
            Some(n) => self.requests.get(n).cloned(),
            None => {
                let mut all = RequestStats::default();
                for r in self.requests.values() {
                    all.merge(r);
                }
                Some(all)
            }
        }
    }

    /// Requests per second of `count` requests (or passes) over the run.
    pub fn per_sec(&self, count: u64) -> f64 {
        let secs = self.elapsed_secs();
        if secs > 0.0 { count as f64 / secs } else { 0.0 }
    }

    pub fn total_requests(&self) -> u64 {
        self.requests.values().map(RequestStats::count).sum()
    }

    pub fn total_errors(&self) -> u64 {
        self.requests.values().map(RequestStats::error_count).sum()
    }

    /// Seconds the load ran (so far).
    pub fn elapsed_secs(&self) -> f64 {
        match (self.started_us, self.until_us) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e6,
            _ => 0.0,
        }
    }

    pub fn rps(&self, name: Option<&str>) -> f64 {
        let n = match name {
            Some(n) => self.requests.get(n).map_or(0, RequestStats::count),
            None => self.total_requests(),
        };
        let secs = self.elapsed_secs();
        if secs > 0.0 { n as f64 / secs } else { 0.0 }
    }

    pub fn distinct_records(&self) -> u64 {
        self.records_used.as_ref().map_or(0, Bitmap::count)
    }

    /// The spread between the first and the last runner's real start.
    pub fn start_skew_us(&self) -> Option<u64> {
        let min = self.runner_starts_us.iter().min()?;
        let max = self.runner_starts_us.iter().max()?;
        Some(max - min)
    }
}

/// Warnings kept at most: a runner sends a handful, all the same.
const MAX_WARNINGS: usize = 32;

/// Adds `more` to a sorted set of messages, up to `MAX_WARNINGS`.
pub(crate) fn merge_set(set: &mut Vec<String>, more: &[String]) {
    for m in more {
        if set.len() >= MAX_WARNINGS {
            break;
        }
        if let Err(i) = set.binary_search(m) {
            set.insert(i, m.clone());
        }
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) | (None, x) => x,
    }
}

/// A set of record indexes; on the wire, base64 of its little-endian words.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bitmap(pub Vec<u64>);

impl Bitmap {
    pub fn or(&mut self, o: &Bitmap) {
        if self.0.len() < o.0.len() {
            self.0.resize(o.0.len(), 0);
        }
        self.0.iter_mut().zip(&o.0).for_each(|(a, b)| *a |= b);
    }

    pub fn count(&self) -> u64 {
        self.0.iter().map(|w| w.count_ones() as u64).sum()
    }
}

impl Serialize for Bitmap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        let bytes: Vec<u8> = self.0.iter().flat_map(|w| w.to_le_bytes()).collect();
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for Bitmap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let s = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)?;
        if bytes.len() % 8 != 0 {
            return Err(serde::de::Error::custom(
                "record bitmap length is not a multiple of 8",
            ));
        }
        Ok(Bitmap(
            bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests;
