use super::*;
use crate::snapshot::{Bitmap, Cursors, sim::Sim};

/// Runners, each with its agent-side cursors, pulled in rounds through the
/// wire form.
struct Fleet {
    sims: Vec<Sim>,
    agents: Vec<Cursors>,
}

impl Fleet {
    fn new(n: usize) -> Fleet {
        Fleet {
            sims: (0..n).map(|i| Sim::new(5, 100 + i as u64)).collect(),
            agents: (0..n).map(|_| Cursors::new()).collect(),
        }
    }

    fn pull(&mut self, i: usize, since: u64) -> SnapshotDelta {
        let sim = &self.sims[i];
        let d = self.agents[i].reply(since, |first| sim.snap(first));
        SnapshotDelta::from_slice(d.to_json().as_bytes()).unwrap()
    }

    /// One round; runners in `skip` do not answer.
    fn round(&mut self, m: &mut Merge, skip: &[usize]) {
        for i in (0..self.sims.len()).filter(|i| !skip.contains(i)) {
            let d = self.pull(i, m.cursor(i as u32));
            assert_eq!(m.apply(i as u32, &d).unwrap(), Applied::Added);
        }
        m.settle();
    }

    /// What merging every runner's whole cumulative snapshot gives.
    fn full(&self) -> Snapshot {
        let fulls: Vec<Snapshot> = self.sims.iter().map(Sim::full).collect();
        Snapshot::merged(&fulls)
    }
}

#[test]
fn deltas_from_many_runners_merge_to_exactly_the_merge_of_their_snapshots() {
    let mut fleet = Fleet::new(4);
    let mut m = Merge::new(Some(100));
    for step in 0..15usize {
        for (i, sim) in fleet.sims.iter_mut().enumerate() {
            sim.load(50 + 37 * ((step + i) % 5));
            // Runners close their intervals a little apart.
            if (step + i) % 3 == 0 {
                sim.close();
            }
        }
        // Runner 3 misses some rounds; its later replies carry the rest.
        let skip: &[usize] = if step % 4 == 1 { &[3] } else { &[] };
        fleet.round(&mut m, skip);
    }
    fleet.sims.iter().for_each(Sim::finish);
    fleet.round(&mut m, &[]);
    let want = fleet.full();
    let got = m.snapshot(true);
    assert_eq!(got.to_json(), want.to_json());
    assert!(got.intervals.len() >= 5, "{}", got.intervals.len());
    // Connection setup times came in pieces too, and add up exactly.
    assert!(got.connections.opened() > 0);
    assert_eq!(got.connections, want.connections);
    assert_eq!(got.total_requests(), want.total_requests());
    assert_eq!(got.finished, 4);
    // Scenarios and journeys came in pieces too: each scenario exactly
    // the requests of its metrics, the passes apart from the requests.
    assert_eq!(got.scenarios.keys().collect::<Vec<_>>(), ["browse", "buy"]);
    let by_scenario: u64 = got.scenarios.values().map(|r| r.count()).sum();
    assert_eq!(by_scenario, got.total_requests());
    let browse: u64 = ["r0", "r2", "r4"]
        .iter()
        .map(|n| got.requests[*n].count())
        .sum();
    assert_eq!(got.scenarios["browse"].count(), browse);
    assert_eq!(got.journeys.len(), 2);
    assert!(
        got.journeys
            .values()
            .all(|j| j.passes() > 0 && j.failed > 0)
    );
    assert_eq!(got.journeys, want.journeys);
}

#[test]
fn a_runner_that_stops_answering_keeps_what_it_reported() {
    let mut fleet = Fleet::new(2);
    let mut m = Merge::new(None);
    fleet.sims[0].load(400);
    fleet.sims[1].load(300);
    fleet.round(&mut m, &[]);
    let reported = fleet.sims[1].full();
    // Runner 1 dies; runner 0 goes on.
    fleet.sims[0].load(100);
    fleet.round(&mut m, &[1]);
    fleet.round(&mut m, &[1]);
    let got = m.snapshot(false);
    assert_eq!(
        got.total_requests(),
        fleet.sims[0].full().total_requests() + reported.total_requests()
    );
    assert_eq!(got.runners, 2);
    assert!(m.has(1) && m.started(1));
}

#[test]
fn a_rebase_round_rebuilds_exactly_from_zero() {
    let mut fleet = Fleet::new(3);
    let mut m = Merge::new(None);
    for _ in 0..4 {
        fleet.sims.iter_mut().for_each(|s| {
            s.load(120);
            s.close();
        });
        fleet.round(&mut m, &[]);
    }
    // Runner 2's agent forgot the cursor (another caller's pull replaced it).
    fleet.agents[2] = Cursors::new();
    fleet.sims[2].load(30);
    let d = fleet.pull(2, m.cursor(2));
    assert_eq!(m.apply(2, &d).unwrap(), Applied::Rebase);
    m.reset();
    assert!(!m.has(0) && m.cursor(0) == 0);
    fleet.sims.iter().for_each(Sim::finish);
    fleet.round(&mut m, &[]);
    assert_eq!(m.snapshot(true).to_json(), fleet.full().to_json());
}

#[test]
fn heads_merge_as_sets_and_unions() {
    let mut m = Merge::new(None);
    let mut head = |records: Vec<u64>, failures: Vec<&str>, runner: u32| {
        let d = SnapshotDelta {
            version: crate::snapshot::FORMAT_VERSION,
            base: m.cursor(runner),
            cursor: m.cursor(runner) + 1,
            head: Head {
                finished: false,
                started_us: Some(10 + u64::from(runner)),
                until_us: Some(100),
                interval_us: 1_000_000,
                records_used: Some(Bitmap(records)),
                failures: failures.into_iter().map(String::from).collect(),
                warnings: vec!["w".into()],
            },
            requests: BTreeMap::new(),
            scenarios: BTreeMap::new(),
            journeys: BTreeMap::new(),
            dropped: 1,
            data_exhausted: 0,
            intervals: Vec::new(),
            connections: None,
            users: crate::snapshot::Users {
                started: 3,
                on_start_failures: 2,
                retired: 1,
            },
        };
        m.apply(runner, &d).unwrap();
    };
    head(vec![0b1], vec![], 0);
    head(vec![0b11], vec!["runner 0: boom"], 0);
    head(vec![0b100, 1], vec!["runner 1: oops"], 1);
    head(vec![0b100, 1], vec!["runner 1: oops"], 1);
    let s = m.snapshot(false);
    assert_eq!(s.distinct_records(), 4);
    assert_eq!(s.failures, ["runner 0: boom", "runner 1: oops"]);
    assert_eq!(s.warnings, ["w"], "warnings merge as a set");
    assert_eq!(s.dropped, 4, "dropped is a difference: it adds");
    let users = (s.users.started, s.users.on_start_failures, s.users.retired);
    assert_eq!(users, (12, 8, 4), "users' counts are differences: they add");
    assert_eq!(s.runner_starts_us, [10, 11]);
    assert_eq!(s.start_skew_us(), Some(1));
}

#[test]
fn a_bad_reply_is_refused_whole() {
    let mut fleet = Fleet::new(1);
    let mut m = Merge::new(Some(3));
    fleet.sims[0].load(200);
    fleet.round(&mut m, &[]);
    let before = m.snapshot(true).to_json();
    fleet.sims[0].load(200);
    let good = fleet.pull(0, m.cursor(0));

    let mut bad = good.clone();
    let last = bad.requests.keys().next_back().unwrap().clone();
    bad.requests.get_mut(&last).unwrap().latency = Packed("AAAA".into());
    let e = m.apply(0, &bad).unwrap_err().to_string();
    assert!(e.contains(&format!("request {last:?}")), "{e}");

    // A scenario's or a journey's histogram that does not read: the same.
    let mut bad = good.clone();
    bad.scenarios.get_mut("buy").unwrap().latency = Packed("AAAA".into());
    let e = m.apply(0, &bad).unwrap_err().to_string();
    assert!(e.contains("scenario \"buy\""), "{e}");
    let mut bad = good.clone();
    bad.journeys.get_mut("buy/checkout").unwrap().duration = Packed("!".into());
    let e = m.apply(0, &bad).unwrap_err().to_string();
    assert!(e.contains("journey \"buy/checkout\""), "{e}");
    // More journey names than the plan can have.
    let mut many = fleet.pull(0, 0);
    let j = many.journeys["buy/checkout"].clone();
    for i in 0..5 {
        many.journeys.insert(format!("j{i}"), j.clone());
    }
    let mut m5 = Merge::new(Some(3)).with_max_names(5);
    let e = m5.apply(0, &many).unwrap_err().to_string();
    assert!(
        e.contains("journeys") && e.contains("more journey names"),
        "{e}"
    );

    // An interval the plan cannot have (past its length) is refused too.
    let mut far = good.clone();
    far.intervals.push(Interval {
        index: 4,
        requests: 1,
        errors: 0,
        latency: Packed::pack(&crate::histogram::new_latency()),
    });
    let e = m.apply(0, &far).unwrap_err().to_string();
    assert!(e.contains("interval 4") && e.contains("plan"), "{e}");

    // More request names than the plan has.
    let mut m3 = Merge::new(Some(3)).with_max_names(2);
    let e = m3.apply(0, &fleet.pull(0, 0)).unwrap_err().to_string();
    assert!(e.contains("more request names than the plan's 2"), "{e}");

    assert_eq!(
        m.snapshot(true).to_json(),
        before,
        "nothing of them was added"
    );
    assert_eq!(m.apply(0, &good).unwrap(), Applied::Added);
}

#[test]
fn settled_intervals_are_packed_and_reopen_exactly() {
    let mut fleet = Fleet::new(2);
    let mut m = Merge::new(None);
    for _ in 0..6 {
        fleet.sims.iter_mut().for_each(|s| {
            s.load(40);
            s.close();
        });
        fleet.round(&mut m, &[]);
    }
    let open = m
        .series
        .values()
        .filter(|s| matches!(s, Slot::Open { .. }))
        .count();
    assert!(open <= OPEN as usize + 1, "{open} open");
    // A runner far behind sends an old interval again: it is reopened.
    fleet.sims[1].load(5);
    fleet.sims.iter().for_each(Sim::finish);
    fleet.round(&mut m, &[]);
    assert_eq!(m.snapshot(true).to_json(), fleet.full().to_json());
}
