//! The recorder against a reference built from the same samples: exact
//! snapshots and intervals, concurrency, memory, scenarios and journeys.

use std::{sync::Arc, thread};

use super::*;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}")).collect()
}

/// A deterministic spread of samples: latencies from 1 µs to ~1 s,
/// statuses, errors and bytes, over `names` names.
fn samples(rec: &Recorder, count: usize, names: usize, seed: u64) -> Vec<Sample> {
    let base = rec.base.0;
    let mut x = seed | 1;
    (0..count)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let start = base + Duration::from_micros(x % 5_000_000);
            let latency = Duration::from_micros(1 + x % (1 << (x % 20)));
            Sample {
                metric: i % names,
                start,
                end: start + latency,
                latency,
                status: (!x.is_multiple_of(7)).then_some([200, 201, 404, 500][(x % 4) as usize]),
                error: x
                    .is_multiple_of(5)
                    .then_some(ErrorKind::ALL[(x / 5 % 5) as usize]),
                sent: x % 1000,
                received: x % 10_000,
                retries: (x % 3) as u32,
                check: x
                    .is_multiple_of(11)
                    .then(|| Arc::from(["contains \"ok\"", "json /id present"][(x % 2) as usize])),
            }
        })
        .collect()
}

/// What the recorder must report for these samples: built directly,
/// one RequestStats per name, without shards or buffers.
fn reference(rec: &Recorder, samples: &[Sample], names: usize) -> Vec<RequestStats> {
    let mut out: Vec<RequestStats> = (0..names).map(|_| RequestStats::default()).collect();
    for s in samples {
        add(
            &mut out[s.metric],
            s,
            rec.unix_us(s.start),
            rec.unix_us(s.end),
        );
    }
    out
}

#[test]
fn snapshot_equals_a_reference_built_from_the_same_samples() {
    let rec = Recorder::new(names(8), Duration::from_secs(1));
    // Not a multiple of BATCH: some samples are still in shard buffers.
    // r0..r6 see thousands (histograms), r7 a few (kept as samples).
    let mut all = samples(&rec, 10_007, 7, 42);
    all.extend(
        samples(&rec, 50, 1, 9)
            .into_iter()
            .map(|s| Sample { metric: 7, ..s }),
    );
    for (i, s) in all.iter().enumerate() {
        rec.record(i * 31 % 100, s);
    }
    let want = reference(&rec, &all, 8);
    let snap = rec.snapshot(true);
    assert_eq!(snap.total_requests(), 10_057);
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&snap.requests[&format!("r{i}")], w, "r{i}");
    }
    // The in-progress interval holds everything, exactly.
    assert_eq!(snap.intervals.len(), 1);
    let mut pooled = histogram::new_latency();
    want.iter().for_each(|r| pooled.add(&r.latency).unwrap());
    assert_eq!(snap.intervals[0].latency.unpack().unwrap(), pooled);
    assert_eq!(snap.intervals[0].requests, 10_057);
    let errors: u64 = want.iter().map(RequestStats::error_count).sum();
    assert_eq!(snap.intervals[0].errors, errors);
}

#[test]
fn closed_intervals_hold_every_sample_once_even_if_still_buffered() {
    let rec = Recorder::new(names(3), Duration::from_secs(1));
    let all = samples(&rec, 300, 3, 7);
    // Fewer than BATCH per shard each time: nothing would be flushed by
    // recording alone.
    for (chunk, part) in all.chunks(100).enumerate() {
        for s in part {
            rec.record(chunk, s);
        }
        rec.close_interval();
    }
    let snap = rec.snapshot(true);
    let per_interval: Vec<u64> = snap.intervals.iter().map(|i| i.requests).collect();
    assert_eq!(per_interval, [100, 100, 100]);
    let mut third = histogram::new_latency();
    all[200..]
        .iter()
        .for_each(|s| histogram::record(&mut third, s.latency.as_micros() as u64));
    assert_eq!(snap.intervals[2].latency.unpack().unwrap(), third);
}

#[test]
fn concurrent_recording_and_snapshots_lose_nothing() {
    let rec = Arc::new(Recorder::new(names(5), Duration::from_secs(1)));
    let per_thread = 5_000;
    let all: Vec<Vec<Sample>> = (0..4)
        .map(|t| samples(&rec, per_thread, 5, 100 + t))
        .collect();
    thread::scope(|scope| {
        for (t, mine) in all.iter().enumerate() {
            let rec = &rec;
            scope.spawn(move || {
                for (i, s) in mine.iter().enumerate() {
                    rec.record(t * 1000 + i % 3, s);
                }
            });
        }
        // Snapshots and interval closes while the threads record.
        for _ in 0..20 {
            assert!(rec.snapshot(false).total_requests() <= 4 * per_thread as u64);
            rec.close_interval();
        }
    });
    let flat: Vec<Sample> = all.into_iter().flatten().collect();
    let want = reference(&rec, &flat, 5);
    let snap = rec.snapshot(true);
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&snap.requests[&format!("r{i}")], w, "r{i}");
    }
    let by_interval: u64 = snap.intervals.iter().map(|i| i.requests).sum();
    assert_eq!(by_interval, 4 * per_thread as u64);
}

#[test]
fn scenarios_add_their_metrics_and_journeys_never_count_as_requests() {
    let views = Views {
        scenarios: vec!["browse".into(), "buy".into()],
        // r3 is in no scenario (it cannot be in a plan, but it must not
        // be added anywhere but its own name).
        metric_scenario: vec![Some(0), Some(1), Some(0), None],
        journeys: vec!["buy/checkout".into(), "onStart".into()],
    };
    let rec = Recorder::with_views(names(4), Duration::from_secs(1), views);
    let all = samples(&rec, 1_001, 4, 11);
    for (i, s) in all.iter().enumerate() {
        rec.record(i, s);
    }
    let t0 = rec.base.0;
    // 70 passes (more than a shard's BATCH), every third failed, plus
    // one through a journey the recorder was not given (ignored).
    for i in 0..70u64 {
        let start = t0 + Duration::from_millis(i);
        let end = start + Duration::from_millis(100 + i);
        rec.record_journey(i as usize, 0, start, end, !i.is_multiple_of(3));
    }
    rec.record_journey(0, 1, t0, t0 + Duration::from_secs(2), true);
    rec.record_journey(0, 9, t0, t0, true);
    let snap = rec.snapshot(true);

    let want = reference(&rec, &all, 4);
    let mut browse = want[0].clone();
    browse.merge(&want[2]);
    assert_eq!(snap.scenarios["browse"], browse);
    assert_eq!(snap.scenarios["buy"], want[1]);
    assert_eq!(snap.scenarios.len(), 2);
    // The passes are not requests: totals and intervals are the samples'.
    assert_eq!(snap.total_requests(), 1_001);
    assert_eq!(snap.intervals[0].requests, 1_001);
    let j = &snap.journeys["buy/checkout"];
    assert_eq!((j.passes(), j.failed), (70, 24));
    assert!((99_900..=100_000).contains(&j.duration.min()));
    assert!(j.duration.max() >= 169_000, "{}", j.duration.max());
    assert_eq!(j.first_start_us, rec.unix_us(t0));
    assert_eq!(snap.journeys["onStart"].passes(), 1);
    assert_eq!(snap.journeys.len(), 2);
}

#[test]
fn a_plan_without_named_scenarios_keeps_no_scenario_figures() {
    let views = Views {
        scenarios: Vec::new(),
        metric_scenario: vec![None; 3],
        journeys: Vec::new(),
    };
    let rec = Recorder::with_views(names(3), Duration::from_secs(1), views);
    samples(&rec, 500, 3, 5)
        .iter()
        .for_each(|s| rec.record(0, s));
    let snap = rec.snapshot(false);
    assert!(snap.scenarios.is_empty() && snap.journeys.is_empty());
    assert!(!snap.to_json().contains("scenarios"));
}

/// The regression that made a 200-name plan take a GB: one full-range
/// histogram per name in every one of (cores x 4) shards. Now a name
/// holds its few samples, or one histogram only as large as the
/// latencies it holds, whatever the core count and however many shards
/// the users record into.
#[test]
fn memory_is_bounded_by_the_names_whatever_the_cores() {
    const NAMES: usize = 200;
    let rec = Recorder::new(names(NAMES), Duration::from_secs(1));
    let empty = histogram::footprint(&histogram::new_latency());
    assert!(rec.latency_bytes() <= 2 * empty);

    // 2,700 requests (the case measured at 393 MB) from users spread over
    // many shards, latencies up to ~0.5 s, with an interval closed.
    let all = samples(&rec, 2_700, NAMES, 3);
    for (i, s) in all.iter().enumerate() {
        rec.record(i, s);
    }
    rec.close_interval();
    let snap = rec.snapshot(true);
    assert_eq!(snap.total_requests(), 2_700);

    let mut one = histogram::new_latency();
    let slowest = all.iter().map(|s| s.latency).max().unwrap();
    histogram::record(&mut one, slowest.as_micros() as u64);
    let per_histogram = histogram::footprint(&one);
    // ~14 samples per name: at most 16 kept each, and the two
    // histograms of all requests (the total and the interval base).
    let held = rec.latency_bytes();
    let bound = NAMES * 16 * std::mem::size_of::<Sample>() + 2 * per_histogram;
    assert!(
        held <= bound,
        "{held} bytes for {NAMES} names (bound {bound})"
    );
    assert!(held < 1 << 20, "{held}");

    // A busy name turns into one histogram, no larger than its latencies.
    for s in &all {
        rec.record(
            0,
            &Sample {
                metric: 0,
                ..s.clone()
            },
        );
    }
    let held = rec.latency_bytes();
    assert!(held <= bound + per_histogram, "{held}");
    assert_eq!(rec.snapshot(false).total_requests(), 5_400);
}
