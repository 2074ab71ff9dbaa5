//! One collection round for 500 runners: decode each runner's snapshot JSON,
//! merge them all, build the LoadTest status and serialize it. Prints the
//! time and the peak memory of the round, and, as a reference measured in the
//! same run, the cost of only parsing the same JSON (no histogram decoding),
//! so the ratio can be compared across noisy machines.
//!
//! cargo bench -p barrage-operator --bench collect [-- RUNNERS]

use std::time::{Duration, Instant};

use barrage_operator::{crd::LoadTestStatus, status};
use barrage_runner::{
    histogram::record,
    snapshot::{ErrorKind, RequestStats, Snapshot},
};

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

fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn reset_hwm() {
    // Writing 5 to clear_refs resets the peak-RSS mark (Linux).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn round(jsons: &[String]) -> (LoadTestStatus, usize) {
    let mut merged = Snapshot::empty(0);
    for j in jsons {
        merged.merge(&Snapshot::from_json(j).expect("valid snapshot"));
    }
    let mut st = LoadTestStatus::default();
    status::apply_results(&mut st, &merged);
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runners: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500);
    let jsons: Vec<String> = (0..runners).map(runner_json).collect();
    let bytes: usize = jsons.iter().map(String::len).sum();
    println!(
        "collect bench: {runners} runner snapshots, {} KB of JSON ({} B each)",
        bytes / 1024,
        bytes / runners as usize
    );

    let (mut times, mut refs) = (Vec::new(), Vec::new());
    let mut peak_kb = 0;
    let mut last = None;
    for _ in 0..5 {
        let t = Instant::now();
        std::hint::black_box(reference(&jsons));
        refs.push(t.elapsed());

        let base = vm_hwm_kb();
        reset_hwm();
        let base_now = vm_hwm_kb();
        let t = Instant::now();
        let out = std::hint::black_box(round(&jsons));
        times.push(t.elapsed());
        peak_kb = peak_kb.max(vm_hwm_kb().saturating_sub(base_now.min(base)));
        last = Some(out);
    }
    let (st, status_size) = last.unwrap();
    assert_eq!(st.requests, runners * 80_000);
    let (t, r) = (median(times), median(refs));
    println!(
        "reference (JSON parse only): {:>8.1} ms",
        r.as_secs_f64() * 1e3
    );
    println!(
        "collection round:            {:>8.1} ms   ratio to reference {:.2}",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() / r.as_secs_f64()
    );
    println!(
        "peak memory of a round:      {:>8.1} MB above the inputs",
        peak_kb as f64 / 1024.0
    );
    println!(
        "status size:                 {:>8} bytes (p95 {} ms, {} req)",
        status_size,
        st.latency_ms.as_ref().map_or(0.0, |l| l.p95),
        st.requests
    );
    let ok = t < Duration::from_millis(200) && peak_kb < 100 * 1024 && status_size < 64 * 1024;
    println!(
        "goal (< 200 ms, < 100 MB, status < 64 KB): {}",
        if ok { "PASS" } else { "FAIL" }
    );
}
