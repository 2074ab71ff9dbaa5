//! Rounds against fake agents on loopback (127.0.0.N, one port) that answer
//! from real recorders with the runner's own cursors.

use std::{
    sync::Mutex as StdMutex,
    time::{Duration, Instant},
};

use barrage_runner::{
    engine::{Recorder, Sample},
    snapshot::{Cursors, ErrorKind},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;

struct Fake {
    rec: Recorder,
    cursors: Cursors,
    /// Answers the next pull, then hangs up without sending it.
    lose_next: bool,
    /// Sends this instead of the reply, once.
    garbage: Option<String>,
    x: u64,
}

type Shared = Arc<StdMutex<Fake>>;

impl Fake {
    fn load(&mut self, n: usize) {
        let t0 = Instant::now();
        for i in 0..n {
            let x = &mut self.x;
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            let x = *x;
            let latency = Duration::from_micros(1 + x % (1 << (x % 20)));
            self.rec.record(
                i,
                &Sample {
                    metric: (x % 3) as usize,
                    start: t0,
                    end: t0 + latency,
                    latency,
                    status: Some([200, 503][(x % 2) as usize]),
                    error: x.is_multiple_of(2).then_some(ErrorKind::Status),
                    sent: 100,
                    received: x % 1000,
                    retries: 0,
                    check: None,
                },
            );
        }
    }
}

async fn serve(listener: TcpListener, fake: Shared) {
    while let Ok((mut s, _)) = listener.accept().await {
        let fake = fake.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let since: u64 = head
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.split("since=").nth(1))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let body = {
                let mut f = fake.lock().unwrap();
                let f = &mut *f;
                let rec = &f.rec;
                let reply = f
                    .cursors
                    .reply(since, |first| rec.snapshot_from(Some(first)));
                if std::mem::take(&mut f.lose_next) {
                    return;
                }
                f.garbage.take().unwrap_or_else(|| reply.to_json())
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(body.as_bytes()).await;
        });
    }
}

/// `n` fake agents on 127.0.0.1.. with one port.
async fn fleet(n: u32) -> (Agents, Vec<RunnerRef>, Vec<Shared>) {
    let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = first.local_addr().unwrap().port();
    let mut listeners = vec![first];
    for i in 1..n {
        listeners.push(
            TcpListener::bind(format!("127.0.0.{}:{port}", i + 1))
                .await
                .unwrap(),
        );
    }
    let mut refs = Vec::new();
    let mut fakes = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let rec = Recorder::new(
            vec!["a".into(), "b".into(), "c".into()],
            Duration::from_secs(1),
        );
        rec.mark_started(Instant::now());
        let fake = Arc::new(StdMutex::new(Fake {
            rec,
            cursors: Cursors::new(),
            lose_next: false,
            garbage: None,
            x: 77 + i as u64,
        }));
        tokio::spawn(serve(l, fake.clone()));
        refs.push(RunnerRef {
            index: i as u32,
            name: format!("t-runner-{i}"),
            ip: format!("127.0.0.{}", i + 1),
        });
        fakes.push(fake);
    }
    (Agents::new(port), refs, fakes)
}

fn pull<'a>(agents: &'a Agents, refs: &'a [RunnerRef], total: u32) -> Pull<'a> {
    Pull {
        agents,
        refs,
        token: "t",
        limit: 4 << 20,
        total,
        thresholds: &[],
        elapsed_us: 0,
    }
}

fn store() -> Results {
    Results {
        merge: Merge::new(Some(1000)),
        live: Live::default(),
        abort: None,
    }
}

/// What merging every runner's whole cumulative snapshot gives.
fn full(fakes: &[Shared]) -> String {
    let snaps: Vec<Snapshot> = fakes
        .iter()
        .map(|f| f.lock().unwrap().rec.snapshot(true))
        .collect();
    Snapshot::merged(&snaps).to_json()
}

fn each(fakes: &[Shared], f: impl Fn(&mut Fake)) {
    fakes.iter().for_each(|x| f(&mut x.lock().unwrap()));
}

#[tokio::test]
async fn rounds_of_deltas_merge_to_exactly_the_runners_full_snapshots() {
    let (agents, refs, fakes) = fleet(3).await;
    let mut results = store();
    for step in 0..8 {
        each(&fakes, |f| {
            f.load(100 + step * 13);
            if step % 2 == 1 {
                f.rec.close_interval();
            }
        });
        // A lost reply (asked again next round with the same cursor), and a
        // runner out of reach for a round (only its own pull is missing).
        if step == 2 {
            fakes[1].lock().unwrap().lose_next = true;
        }
        let reachable = if step == 5 { &refs[..2] } else { &refs[..] };
        let round = results.round(&pull(&agents, reachable, 3)).await;
        assert_eq!(round.all_answered, step != 2 && step != 5, "step {step}");
        assert!(round.refused.is_none());
        let merged = round.merged.expect("every runner's results are here");
        assert_eq!(merged.runners, 3);
    }
    each(&fakes, |f| f.rec.mark_ended(Instant::now()));
    let fin = results.finish(&pull(&agents, &refs, 3)).await;
    assert!(fin.incomplete.is_none() && fin.refused.is_none());
    assert_eq!(fin.merged.to_json(), full(&fakes));
    assert!(fin.merged.intervals.len() >= 4);
}

#[tokio::test]
async fn a_reply_that_asks_to_rebuild_rebuilds_in_the_same_round() {
    let (agents, refs, fakes) = fleet(2).await;
    let mut results = store();
    for _ in 0..3 {
        each(&fakes, |f| {
            f.load(80);
            f.rec.close_interval();
        });
        results.round(&pull(&agents, &refs, 2)).await;
    }
    // Runner 1's agent no longer knows our cursor (another operator pulled
    // it, or it is a new agent for the same slot).
    fakes[1].lock().unwrap().cursors = Cursors::new();
    each(&fakes, |f| f.load(33));
    let round = results.round(&pull(&agents, &refs, 2)).await;
    let merged = round.merged.expect("rebuilt from 0 within the round");
    assert_eq!(merged.runners, 2);
    each(&fakes, |f| f.rec.mark_ended(Instant::now()));
    let fin = results.finish(&pull(&agents, &refs, 2)).await;
    assert_eq!(fin.merged.to_json(), full(&fakes));
}

#[tokio::test]
async fn a_fresh_store_is_incomplete_until_every_runner_answered() {
    let (agents, refs, fakes) = fleet(2).await;
    each(&fakes, |f| f.load(50));
    // An operator restarted while runner 1 is out of reach: no figures
    // rather than half of them.
    let mut results = store();
    let round = results.round(&pull(&agents, &refs[..1], 2)).await;
    assert!(round.merged.is_none() && !round.all_answered);
    let fin = results.finish(&pull(&agents, &refs[..1], 2)).await;
    let why = fin.incomplete.unwrap();
    assert!(why.contains("runner(s) 1"), "{why}");
    let round = results.round(&pull(&agents, &refs, 2)).await;
    assert!(round.merged.is_some());
}

#[tokio::test]
async fn a_reply_that_does_not_decode_is_refused_naming_the_runner() {
    let (agents, refs, fakes) = fleet(2).await;
    let mut results = store();
    each(&fakes, |f| f.load(50));
    results.round(&pull(&agents, &refs, 2)).await;
    fakes[1].lock().unwrap().garbage = Some("{\"version\": 1, \"nope\": true}".into());
    let round = results.round(&pull(&agents, &refs, 2)).await;
    let why = round.refused.unwrap();
    assert!(
        why.starts_with("t-runner-1 sent results that cannot be read"),
        "{why}"
    );
    // Too large for the limit: refused too.
    let mut small = pull(&agents, &refs, 2);
    small.limit = 10;
    let round = results.round(&small).await;
    assert!(round.refused.unwrap().contains("10-byte limit"));
}

#[tokio::test]
async fn each_loadtest_has_its_own_store_and_lock() {
    let stores = Stores::default();
    let a = stores.of("a", 10, 3);
    assert!(Arc::ptr_eq(&a, &stores.of("a", 10, 3)));
    let held = a.lock().await;
    // Another LoadTest's round does not wait on this one's.
    let b = stores.of("b", 10, 3);
    assert!(b.try_lock().is_ok());
    drop(held);
    stores.forget("a");
    assert!(!Arc::ptr_eq(&a, &stores.of("a", 10, 3)));
}

#[tokio::test]
async fn a_failing_abort_on_fail_threshold_aborts_once() {
    let (agents, refs, fakes) = fleet(2).await;
    let mut results = store();
    let thresholds: Vec<Threshold> = vec!["error_rate < 1% abortOnFail".parse().unwrap()];
    let mut p = pull(&agents, &refs, 2);
    p.thresholds = &thresholds;
    each(&fakes, |f| f.load(200));
    let why = results
        .round(&p)
        .await
        .abort
        .expect("half the requests failed");
    assert!(
        why.starts_with("threshold \"error_rate < 1% abortOnFail\" failed (observed "),
        "{why}"
    );
    assert_eq!(results.abort(), Some(why.as_str()));
    each(&fakes, |f| f.load(10));
    assert_eq!(results.round(&p).await.abort, None, "said once");
}
