//! One collection round for 500 runners (or RUNNERS), three ways, each
//! ending in the LoadTest status built and serialized:
//! - before: what a round did until incremental pulls, decode every
//!   runner's whole cumulative snapshot JSON and merge them all (4 request
//!   names, 20,000 samples each, no series);
//! - steady: what a round does now in a running test, add every runner's
//!   reply to `GET /snapshot?since=` into the store's merged snapshot: 2 s
//!   of results at 20,000 samples per name per minute (667 per name), and
//!   the series' changes (the 10 s interval that closed during the round as
//!   a difference, and the new one whole: the heavier of the rounds);
//! - recovery: the first round after an operator restart, every runner's
//!   results from 0 (a minute of them, with their series).
//!
//! Prints the time and the peak memory of each, the resident memory across
//! 20 steady rounds (flat), and, as a reference measured in the same run,
//! the cost of only parsing the "before" JSON (no histogram decoding), so
//! ratios can be compared across noisy machines.
//!
//! cargo bench -p barrage-operator --bench collect [-- RUNNERS]

mod support;

use std::time::{Duration, Instant};

use barrage_operator::{crd::LoadTestStatus, status};
use barrage_runner::{
    histogram::record,
    snapshot::{Applied, ErrorKind, Merge, RequestStats, Snapshot, SnapshotDelta, delta::Base},
};
use support::{Sim, median, reset_hwm, vm_hwm_kb, vm_rss_kb};

const NAMES: [&str; 4] = [
    "get-schema",
    "check-compatibility",
    "register",
    "slow-report",
];

/// A realistic runner snapshot: 4 request names, 20,000 samples each spread
/// from 200 µs to ~2 s, a few statuses and errors.
fn runner_json(index: u64) -> String {
    let mut s = Snapshot::empty(10_000_000);
    s.runners = 1;
    s.started_us = Some(1_700_000_000_000_000 + index * 11);
    s.until_us = Some(1_700_000_060_000_000);
    s.runner_starts_us = vec![1_700_000_000_000_000 + index * 11];
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ index;
    for name in NAMES {
        let mut r = RequestStats::default();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            record(
                &mut r.latency,
                200 + (x % 2000) * (x % 1000) / 1000 + (x % 7) * (x % 3) * 100_000,
            );
        }
        r.statuses.insert(200, 19_900);
        r.statuses.insert(503, 100);
        r.errors.insert(ErrorKind::Status, 100);
        r.bytes_sent = 3_000_000;
        r.bytes_received = 9_000_000;
        r.first_start_us = s.started_us.unwrap();
        r.last_end_us = s.until_us.unwrap();
        s.requests.insert(name.into(), r);
    }
    s.to_json()
}

fn round(jsons: &[String]) -> (LoadTestStatus, usize) {
    let mut merged = Snapshot::empty(0);
    for j in jsons {
        merged.merge(&Snapshot::from_json(j).expect("valid snapshot"));
    }
    let mut st = LoadTestStatus::default();
    status::apply_results(&mut st, &merged, &Default::default());
    let size = serde_json::to_vec(&st).unwrap().len();
    (st, size)
}

fn reference(jsons: &[String]) -> usize {
    jsons
        .iter()
        .map(|j| {
            serde_json::from_str::<serde_json::Value>(j)
                .unwrap()
                .as_object()
                .unwrap()
                .len()
        })
        .sum()
}

/// One runner's replies: the one that primes a store (from 0, at 58.5 s),
/// a steady one (58.5 s to 60.5 s, based on the primed state and keeping
/// its cursor, so it can be added round after round), and the recovery one
/// (from 0, at 60.5 s).
fn replies(index: u64) -> [String; 3] {
    let mut sim = Sim::new(4, 10_000_000, 20_000, index);
    sim.advance_to(58_500_000);
    let base = sim.snapshot(true);
    let prime = SnapshotDelta::between(None, &base, 0, 1).unwrap();
    sim.advance_to(60_500_000);
    let cur = sim.snapshot(true);
    let steady = SnapshotDelta::between(Some(&Base::of(&base, None)), &cur, 1, 1).unwrap();
    let recovery = SnapshotDelta::between(None, &cur, 0, 1).unwrap();
    [prime.to_json(), steady.to_json(), recovery.to_json()]
}

fn status_of(merged: &Snapshot) -> (LoadTestStatus, usize) {
    let mut st = LoadTestStatus::default();
    status::apply_results(&mut st, merged, &Default::default());
    let size = serde_json::to_vec(&st).unwrap().len();
    (st, size)
}

/// Adds every runner's reply to the store's merge, as `results::Results`
/// does, and builds the status.
fn incremental(merge: &mut Merge, replies: &[String]) -> (LoadTestStatus, usize) {
    for (i, r) in replies.iter().enumerate() {
        let d = SnapshotDelta::from_slice(r.as_bytes()).expect("valid reply");
        let added = merge.apply(i as u32, &d).expect("valid reply");
        assert_eq!(added, Applied::Added);
    }
    merge.settle();
    status_of(&merge.snapshot(false))
}

/// Runs `f` 5 times: the median time and the largest peak memory above
/// what was resident before.
fn measure<T>(mut f: impl FnMut() -> T) -> (Duration, u64, T) {
    let (mut times, mut peak_kb, mut last) = (Vec::new(), 0, None);
    for _ in 0..5 {
        reset_hwm();
        let base = vm_hwm_kb();
        let t = Instant::now();
        let out = std::hint::black_box(f());
        times.push(t.elapsed());
        peak_kb = peak_kb.max(vm_hwm_kb().saturating_sub(base));
        last = Some(out);
    }
    (median(times), peak_kb, last.unwrap())
}

fn main() {
    let runners: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500);
    let jsons: Vec<String> = (0..runners).map(runner_json).collect();
    let bytes: usize = jsons.iter().map(String::len).sum();
    println!(
        "collect bench: {runners} runners; before: {} KB of JSON ({} B each)",
        bytes / 1024,
        bytes / runners as usize
    );
    let (mut prime, mut steady, mut recovery) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runners {
        let [p, s, r] = replies(i);
        prime.push(p);
        steady.push(s);
        recovery.push(r);
    }
    let avg = |v: &[String]| v.iter().map(String::len).sum::<usize>() / v.len();
    println!(
        "replies: steady {} B each, recovery (from 0, 1 minute) {} B each",
        avg(&steady),
        avg(&recovery)
    );

    let refs: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(reference(&jsons));
            t.elapsed()
        })
        .collect();
    let r = median(refs);
    let (before, before_kb, (st, status_size)) = measure(|| round(&jsons));
    assert_eq!(st.requests, runners * 80_000);

    let max_index = Some(1_000);
    let (recovered, recovery_kb, (st_r, _)) = measure(|| {
        let mut merge = Merge::new(max_index);
        incremental(&mut merge, &recovery)
    });
    let mut merge = Merge::new(max_index);
    incremental(&mut merge, &prime);
    let (steady_t, steady_kb, (st_s, steady_size)) = measure(|| incremental(&mut merge, &steady));
    let rss0 = vm_rss_kb();
    for _ in 0..20 {
        std::hint::black_box(incremental(&mut merge, &steady));
    }
    let rss20 = vm_rss_kb();
    // 60.5 s at 20,000 a minute, 4 names: the recovered counts are whole.
    assert_eq!(st_r.requests, runners * 4 * 20_166);
    assert!(st_s.requests > st_r.requests);

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let ratio = |d: Duration| d.as_secs_f64() / r.as_secs_f64();
    println!("reference (JSON parse only):  {:>8.1} ms", ms(r));
    for (what, t, kb) in [
        ("before (full decode + merge)", before, before_kb),
        ("steady (2 s of deltas)      ", steady_t, steady_kb),
        ("recovery (all from 0)       ", recovered, recovery_kb),
    ] {
        println!(
            "{what}: {:>8.1} ms   ratio to reference {:>6.2}   peak {:>7.1} MB",
            ms(t),
            ratio(t),
            kb as f64 / 1024.0
        );
    }
    println!(
        "resident memory over 20 more steady rounds: {:.1} MB -> {:.1} MB",
        rss0 as f64 / 1024.0,
        rss20 as f64 / 1024.0
    );
    println!(
        "status size: {} bytes before, {} steady (p95 {} ms, {} req)",
        status_size,
        steady_size,
        st.latency_ms.as_ref().map_or(0.0, |l| l.p95),
        st.requests
    );
    let ok =
        steady_t < Duration::from_millis(50) && rss20 < rss0 + 16 * 1024 && steady_size < 64 * 1024;
    println!(
        "goal (steady < 50 ms, memory flat, status < 64 KB): {}",
        if ok { "PASS" } else { "FAIL" }
    );
}
