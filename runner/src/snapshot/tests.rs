//! Merging whole snapshots: pooled percentiles, order independence,
//! record bitmaps, failures, error kinds, format versions.

use super::*;
use crate::histogram::{new_latency, record};

/// One runner's snapshot holding `samples` (µs) for request "r", sent
/// through the wire form as the operator would receive it.
fn runner(samples: &[u64], start_us: u64) -> Snapshot {
    let mut r = RequestStats::default();
    for &v in samples {
        record(&mut r.latency, v);
    }
    *r.statuses.entry(200).or_default() += samples.len() as u64;
    r.first_start_us = start_us;
    r.last_end_us = start_us + 10_000_000;
    let mut s = Snapshot::empty(1_000_000);
    s.runners = 1;
    s.started_us = Some(start_us);
    s.until_us = Some(start_us + 10_000_000);
    s.runner_starts_us = vec![start_us];
    s.requests.insert("r".into(), r);
    Snapshot::from_json(&s.to_json()).unwrap()
}

#[test]
fn merged_percentiles_are_the_pooled_ones_not_the_mean_of_runners() {
    // A fast runner (9,000 samples around 1-10 ms) and a slow one (1,000
    // samples around 200-300 ms), as when one runner sits on a bad node.
    let fast: Vec<u64> = (0..9000).map(|i| 1_000 + (i % 9000)).collect();
    let slow: Vec<u64> = (0..1000).map(|i| 200_000 + i * 100).collect();
    let (a, b) = (runner(&fast, 1_000), runner(&slow, 1_050));
    let merged = Snapshot::merged([&a, &b]);

    let p95 = |s: &Snapshot| s.requests["r"].latency.value_at_quantile(0.95);
    let mut pooled = new_latency();
    fast.iter()
        .chain(&slow)
        .for_each(|&v| record(&mut pooled, v));

    let mean_of_p95s = (p95(&a) + p95(&b)) / 2;
    assert_eq!(p95(&merged), pooled.value_at_quantile(0.95));
    assert_ne!(p95(&merged), mean_of_p95s);
    // The pooled p95 sits inside the slow runner's range; the average of
    // the two runners' p95s is nowhere near it.
    assert!(p95(&merged) >= 200_000, "{}", p95(&merged));
    assert!(mean_of_p95s < 160_000, "{mean_of_p95s}");
    assert_eq!(merged.total_requests(), 10_000);
    assert_eq!(merged.requests["r"].statuses[&200], 10_000);
    assert_eq!(merged.runners, 2);
    assert_eq!(merged.start_skew_us(), Some(50));
}

#[test]
fn merging_is_order_independent_and_intervals_align_by_index() {
    let mut a = runner(&[1_000, 2_000], 0);
    let mut b = runner(&[3_000], 0);
    let iv = |index, v: u64| {
        let mut latency = new_latency();
        record(&mut latency, v);
        Interval {
            index,
            requests: 1,
            errors: 0,
            latency: Packed::pack(&latency),
        }
    };
    a.intervals = vec![iv(0, 1_000), iv(1, 2_000)];
    b.intervals = vec![iv(1, 3_000)];
    let ab = Snapshot::merged([&a, &b]);
    let ba = Snapshot::merged([&b, &a]);
    assert_eq!(ab.requests, ba.requests);
    assert_eq!(ab.intervals, ba.intervals);
    assert_eq!(ab.intervals.len(), 2);
    assert_eq!(ab.intervals[1].requests, 2);
    let merged = ab.intervals[1].latency.unpack().unwrap();
    assert_eq!(merged.len(), 2);
    assert_eq!(merged.max(), b.intervals[0].latency.unpack().unwrap().max());
}

#[test]
fn record_bitmaps_union_instead_of_adding() {
    let mut a = Snapshot::empty(0);
    a.records_used = Some(Bitmap(vec![0b1011]));
    let mut b = Snapshot::empty(0);
    b.records_used = Some(Bitmap(vec![0b0110, 1]));
    let b = Snapshot::from_json(&b.to_json()).unwrap();
    let m = Snapshot::merged([&a, &b]);
    assert_eq!(m.distinct_records(), 5);
}

#[test]
fn failures_survive_the_wire_and_merge_as_a_set() {
    let mut a = runner(&[1_000], 0);
    a.failures = vec!["runner 1: a virtual user panicked: boom".into()];
    let a = Snapshot::from_json(&a.to_json()).unwrap();
    let b = runner(&[2_000], 0);
    let mut c = runner(&[3_000], 0);
    c.failures = vec!["runner 0: the load task panicked: oops".into()];
    let abc = Snapshot::merged([&a, &b, &c]);
    let cba = Snapshot::merged([&c, &b, &a]);
    assert_eq!(abc.failures, cba.failures);
    assert_eq!(
        abc.failures,
        [
            "runner 0: the load task panicked: oops",
            "runner 1: a virtual user panicked: boom"
        ]
    );
    assert_eq!(Snapshot::merged([&abc, &a]).failures.len(), 2);
    // A snapshot without failures leaves the field out of its wire form,
    // and one from before the field existed still reads.
    assert!(!b.to_json().contains("failures"));
    assert!(Snapshot::merged([&b]).failures.is_empty());
}

#[test]
fn interrupted_is_a_kind_of_its_own() {
    assert!(ErrorKind::ALL.contains(&ErrorKind::Interrupted));
    assert_eq!(ErrorKind::Interrupted.as_str(), "interrupted");
    assert_eq!(
        serde_json::to_string(&ErrorKind::Interrupted).unwrap(),
        "\"interrupted\""
    );
}

#[test]
fn other_format_versions_are_refused() {
    let mut s = Snapshot::empty(0);
    s.version = FORMAT_VERSION + 1;
    let e = Snapshot::from_json(&s.to_json()).unwrap_err().to_string();
    assert!(e.contains("format version"), "{e}");
}

#[test]
fn snapshots_and_replies_without_scenarios_or_journeys_still_read() {
    // As a runner from before the fields sends them: no keys at all.
    let old = runner(&[1_000, 2_000], 0);
    let json = old.to_json();
    assert!(!json.contains("scenarios") && !json.contains("journeys"));
    let back = Snapshot::from_json(&json).unwrap();
    assert!(back.scenarios.is_empty() && back.journeys.is_empty());
    let d = SnapshotDelta::between(None, &back, 0, 1).unwrap();
    let json = d.to_json();
    assert!(!json.contains("scenarios") && !json.contains("journeys"));
    let mut m = Merge::new(None);
    m.apply(0, &SnapshotDelta::from_slice(json.as_bytes()).unwrap())
        .unwrap();
    assert_eq!(m.snapshot(false).total_requests(), 2);
    // A journey's passes merge by adding, its window widens.
    let mut a = old.clone();
    let mut j = JourneyStats::default();
    j.record(5_000, false, 10, 20);
    a.journeys.insert("j".into(), j);
    let mut b = old.clone();
    let mut j = JourneyStats::default();
    j.record(7_000, true, 5, 15);
    j.record(9_000, true, 6, 30);
    b.journeys.insert("j".into(), j);
    let b = Snapshot::from_json(&b.to_json()).unwrap();
    let m = Snapshot::merged([&a, &b]);
    let j = &m.journeys["j"];
    assert_eq!((j.passes(), j.failed), (3, 1));
    assert_eq!((j.first_start_us, j.last_end_us), (5, 30));
    assert_eq!(m.total_requests(), 4, "passes are not requests");
}
