//! Test support: a runner's recorder fed with a deterministic spread of
//! samples, to take the cumulative snapshots an agent would serve. Its
//! metrics belong to two named scenarios, and it records passes through
//! two journeys, so that those travel and merge with the rest.

use std::time::{Duration, Instant};

use super::{ErrorKind, Snapshot};
use crate::engine::{Recorder, Sample, Views};

pub struct Sim {
    pub rec: Recorder,
    names: usize,
    x: u64,
    t0: Instant,
}

impl Sim {
    pub fn new(names: usize, seed: u64) -> Sim {
        let views = Views {
            scenarios: vec!["browse".into(), "buy".into()],
            metric_scenario: (0..names).map(|i| Some(i % 2)).collect(),
            journeys: vec!["browse/list".into(), "buy/checkout".into()],
        };
        let rec = Recorder::with_views(
            (0..names).map(|i| format!("r{i}")).collect(),
            Duration::from_secs(1),
            views,
        );
        let t0 = Instant::now();
        rec.mark_started(t0);
        Sim {
            rec,
            names,
            x: seed | 1,
            t0,
        }
    }

    /// Records `n` samples: latencies from 1 µs to ~1 s, statuses, errors.
    pub fn load(&mut self, n: usize) {
        for i in 0..n {
            let x = &mut self.x;
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            let x = *x;
            let start = self.t0 + Duration::from_micros(x % 5_000_000);
            let latency = Duration::from_micros(1 + x % (1 << (x % 20)));
            let s = Sample {
                metric: (x as usize / 3) % self.names,
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
                    .then(|| ["contains \"ok\"", "regex ^\\{"][(x % 2) as usize].into()),
            };
            self.rec.record(i % 7, &s);
            if x.is_multiple_of(4) {
                let pass = latency * (1 + (x % 5) as u32);
                self.rec.record_journey(
                    i % 5,
                    (x / 4 % 2) as usize,
                    start,
                    start + pass,
                    !x.is_multiple_of(3),
                );
            }
            if x.is_multiple_of(10) {
                let handshake = x
                    .is_multiple_of(20)
                    .then(|| Duration::from_micros(x % 50_000));
                self.rec
                    .record_connection(Duration::from_micros(x % 3_000), handshake);
            }
        }
    }

    /// Closes the interval in progress.
    pub fn close(&self) {
        self.rec.close_interval();
    }

    pub fn finish(&self) {
        self.rec.mark_ended(Instant::now());
    }

    /// The runner's results with the intervals from `first` on.
    pub fn snap(&self, first: u64) -> Snapshot {
        self.rec.snapshot_from(Some(first))
    }

    /// Everything, as `GET /snapshot` serves it.
    pub fn full(&self) -> Snapshot {
        self.snap(0)
    }
}
