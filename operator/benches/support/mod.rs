//! A simulated runner for the benches: its cumulative results at any point
//! of a run, built directly (no load, no waiting), at a steady rate per
//! request name, with the per-interval series a recorder keeps.

#![allow(dead_code)]

use barrage_runner::{
    histogram::{Latency, new_latency, record},
    snapshot::{ErrorKind, Interval, Packed, RequestStats, Snapshot},
};

pub const START_US: u64 = 1_700_000_000_000_000;

pub struct Sim {
    names: Vec<String>,
    stats: Vec<RequestStats>,
    closed: Vec<Interval>,
    open: Latency,
    open_requests: u64,
    open_errors: u64,
    interval_us: u64,
    per_name_per_min: u64,
    t_us: u64,
    x: u64,
}

impl Sim {
    pub fn new(names: usize, interval_us: u64, per_name_per_min: u64, seed: u64) -> Sim {
        Sim {
            names: (0..names).map(|i| format!("request-{i:02}")).collect(),
            stats: (0..names).map(|_| RequestStats::default()).collect(),
            closed: Vec::new(),
            open: new_latency(),
            open_requests: 0,
            open_errors: 0,
            interval_us,
            per_name_per_min,
            t_us: 0,
            x: 0x9E37_79B9_7F4A_7C15 ^ seed,
        }
    }

    fn count_at(&self, t_us: u64) -> u64 {
        (t_us as u128 * self.per_name_per_min as u128 / 60_000_000) as u64
    }

    /// Runs on to `t_us` from the start, closing intervals on the way.
    pub fn advance_to(&mut self, t_us: u64) {
        while self.t_us < t_us {
            let boundary = (self.t_us / self.interval_us + 1) * self.interval_us;
            let end = boundary.min(t_us);
            let n = self.count_at(end) - self.count_at(self.t_us);
            for name in 0..self.names.len() {
                for k in 0..n {
                    let x = &mut self.x;
                    *x ^= *x << 13;
                    *x ^= *x >> 7;
                    *x ^= *x << 17;
                    let x = *x;
                    let us = 200 + (x % 2000) * (x % 1000) / 1000 + (x % 7) * (x % 3) * 100_000;
                    let r = &mut self.stats[name];
                    record(&mut r.latency, us);
                    record(&mut self.open, us);
                    let failed = x.is_multiple_of(200);
                    *r.statuses
                        .entry(if failed { 503 } else { 200 })
                        .or_default() += 1;
                    if failed {
                        *r.errors.entry(ErrorKind::Status).or_default() += 1;
                        self.open_errors += 1;
                    }
                    r.bytes_sent += 150;
                    r.bytes_received += 450;
                    let at = START_US + self.t_us + (end - self.t_us) * k / n.max(1);
                    r.first_start_us = r.first_start_us.min(at);
                    r.last_end_us = r.last_end_us.max(at + us);
                    self.open_requests += 1;
                }
            }
            self.t_us = end;
            if end == boundary {
                self.closed.push(Interval {
                    index: self.closed.len() as u64,
                    requests: self.open_requests,
                    errors: self.open_errors,
                    latency: Packed::pack(&self.open),
                });
                self.open = new_latency();
                self.open_requests = 0;
                self.open_errors = 0;
            }
        }
    }

    /// The cumulative snapshot (as `GET /snapshot` serves it); `series`
    /// with the per-interval series, the interval in progress included.
    pub fn snapshot(&self, series: bool) -> Snapshot {
        let mut s = Snapshot::empty(self.interval_us);
        s.runners = 1;
        s.started_us = Some(START_US);
        s.until_us = Some(START_US + self.t_us);
        s.runner_starts_us = vec![START_US];
        s.requests = self
            .names
            .iter()
            .cloned()
            .zip(self.stats.iter().cloned())
            .filter(|(_, r)| r.count() > 0)
            .collect();
        if series {
            s.intervals = self.closed.clone();
            if self.open_requests > 0 {
                s.intervals.push(Interval {
                    index: self.closed.len() as u64,
                    requests: self.open_requests,
                    errors: self.open_errors,
                    latency: Packed::pack(&self.open),
                });
            }
        }
        s
    }
}

pub fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn vm_rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak-RSS mark (Linux), so the next `vm_hwm_kb` is this one's.
pub fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub fn median(mut v: Vec<std::time::Duration>) -> std::time::Duration {
    v.sort();
    v[v.len() / 2]
}
