//! One runner with 20 request names through a long soak test, simulated
//! (its cumulative results are built directly, nothing waits): the bytes of
//! one pull and the operator's time for one round 1 minute, 10 minutes,
//! 1 hour and 2 hours into the run, at 10 s and at 1 s report intervals,
//! next to what a pull took before incremental pulls: the whole cumulative
//! snapshot with its series (the final pull, and any live pull in which a
//! windowed `abortOnFail` threshold was due) and without it (other live
//! pulls, `?intervals=false`). Rate: 600 requests per name per minute
//! (200/s a runner).
//!
//! A round: read the reply, add it to the store's merge, build the status.
//! A round in which a windowed `abortOnFail` threshold is due also copies
//! the merged series for the judgement (the last column): once a window,
//! not every round.
//!
//! cargo bench -p barrage-operator --bench soak

mod support;

use std::time::{Duration, Instant};

use barrage_operator::{crd::LoadTestStatus, status};
use barrage_runner::snapshot::{Merge, Snapshot, SnapshotDelta, delta::Base};
use support::{Sim, median};

const NAMES: usize = 20;
const PER_NAME_PER_MIN: u64 = 600;
const ROUND_US: u64 = 2_000_000;

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let times = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    median(times)
}

fn status_of(merged: &Snapshot) -> usize {
    let mut st = LoadTestStatus::default();
    status::apply_results(&mut st, merged, &Default::default());
    serde_json::to_vec(&st).unwrap().len()
}

fn main() {
    for interval_s in [10u64, 1] {
        println!(
            "\n{NAMES} names, {interval_s} s intervals, {PER_NAME_PER_MIN} req/name/min, a pull every 2 s"
        );
        println!(
            "{:>8} | {:>8} {:>12} {:>12} | {:>9} {:>12} | {:>12}",
            "run",
            "pull B",
            "old B series",
            "old B live",
            "round µs",
            "old round µs",
            "due round µs"
        );
        let mut sim = Sim::new(NAMES, interval_s * 1_000_000, PER_NAME_PER_MIN, 7);
        for (label, at_s) in [
            ("1 min", 60u64),
            ("10 min", 600),
            ("1 h", 3600),
            ("2 h", 7200),
        ] {
            let at = at_s * 1_000_000;
            sim.advance_to(at - ROUND_US);
            let base = sim.snapshot(true);
            let prime = SnapshotDelta::between(None, &base, 0, 1).unwrap();
            sim.advance_to(at);
            let cur = sim.snapshot(true);
            let steady = SnapshotDelta::between(Some(&Base::of(&base, None)), &cur, 1, 1)
                .unwrap()
                .to_json();
            let old = cur.to_json();
            let old_live = Snapshot {
                intervals: Vec::new(),
                ..cur.clone()
            }
            .to_json();

            let mut merge = Merge::new(None);
            merge.apply(0, &prime).unwrap();
            merge.settle();
            let round = time(21, || {
                let d = SnapshotDelta::from_slice(steady.as_bytes()).unwrap();
                merge.apply(0, &d).unwrap();
                merge.settle();
                status_of(&merge.snapshot(false))
            });
            let due = time(5, || {
                let d = SnapshotDelta::from_slice(steady.as_bytes()).unwrap();
                merge.apply(0, &d).unwrap();
                merge.settle();
                status_of(&merge.snapshot(true))
            });
            let old_round = time(5, || {
                let merged = Snapshot::merged([&Snapshot::from_json(&old).unwrap()]);
                status_of(&merged)
            });
            println!(
                "{label:>8} | {:>8} {:>12} {:>12} | {:>9.0} {:>12.0} | {:>12.0}",
                steady.len(),
                old.len(),
                old_live.len(),
                round.as_secs_f64() * 1e6,
                old_round.as_secs_f64() * 1e6,
                due.as_secs_f64() * 1e6,
            );
        }
    }
}
