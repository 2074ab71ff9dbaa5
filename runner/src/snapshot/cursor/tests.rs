use super::*;
use crate::snapshot::{Applied, Merge, sim::Sim};

/// One pull through the wire form, as the operator receives it.
fn pull(agent: &mut Cursors, sim: &Sim, since: u64) -> SnapshotDelta {
    let d = agent.reply(since, |first| sim.snap(first));
    SnapshotDelta::from_slice(d.to_json().as_bytes()).unwrap()
}

/// Pulls and adds, as a caller that got the reply.
fn round(agent: &mut Cursors, sim: &Sim, m: &mut Merge) -> SnapshotDelta {
    let d = pull(agent, sim, m.cursor(0));
    assert_eq!(m.apply(0, &d).unwrap(), Applied::Added);
    m.settle();
    d
}

/// The merged result equals the runner's full cumulative snapshot, series
/// included, byte for byte.
fn assert_exact(m: &Merge, sim: &Sim) {
    let full = Snapshot::merged([&sim.full()]);
    assert_eq!(m.snapshot(true).to_json(), full.to_json());
}

#[test]
fn a_lost_reply_is_asked_again_with_the_same_cursor() {
    let (mut agent, mut sim, mut m) = (Cursors::new(), Sim::new(4, 1), Merge::new(None));
    sim.load(500);
    round(&mut agent, &sim, &mut m);
    sim.load(300);
    sim.close();
    sim.load(200);
    // Answered, never received: the caller still holds the state before it.
    let lost = pull(&mut agent, &sim, m.cursor(0));
    assert_ne!(lost.cursor, m.cursor(0));
    sim.load(100);
    let again = round(&mut agent, &sim, &mut m);
    assert_eq!(again.base, lost.base, "based on the state the caller holds");
    // The lost one's samples arrive once, in the retry.
    let n: u64 = again
        .requests
        .values()
        .map(|r| r.statuses.values().sum::<u64>())
        .sum();
    assert!(n > 0);
    // Two lost in a row, then an interval closes between pulls.
    sim.load(50);
    pull(&mut agent, &sim, m.cursor(0));
    pull(&mut agent, &sim, m.cursor(0));
    sim.close();
    sim.load(70);
    round(&mut agent, &sim, &mut m);
    sim.finish();
    round(&mut agent, &sim, &mut m);
    assert_exact(&m, &sim);
}

#[test]
fn a_caller_with_no_memory_recovers_everything_from_zero() {
    let (mut agent, mut sim, mut m) = (Cursors::new(), Sim::new(3, 2), Merge::new(None));
    for _ in 0..5 {
        sim.load(200);
        sim.close();
        round(&mut agent, &sim, &mut m);
    }
    sim.load(99);
    // A restarted operator: empty memory, cursor 0.
    let mut fresh = Merge::new(None);
    let d = round(&mut agent, &sim, &mut fresh);
    assert_eq!(d.base, 0);
    assert_eq!(
        d.intervals.len(),
        6,
        "the whole series, in progress included"
    );
    // The old caller is not disturbed by it.
    sim.load(10);
    round(&mut agent, &sim, &mut m);
    sim.finish();
    round(&mut agent, &sim, &mut fresh);
    assert_exact(&fresh, &sim);
}

#[test]
fn an_unknown_cursor_gets_everything_and_says_so() {
    let (mut agent, mut sim) = (Cursors::new(), Sim::new(2, 3));
    sim.load(100);
    let mut m = Merge::new(None);
    round(&mut agent, &sim, &mut m);
    sim.load(100);
    // A cursor this agent never gave (another life's, another caller's).
    let d = pull(&mut agent, &sim, 77);
    assert_eq!(d.base, 0);
    // A caller that holds a state must rebuild rather than add it.
    assert_eq!(m.apply(0, &d).unwrap(), Applied::Rebase);
    m.reset();
    assert_eq!(m.apply(0, &d).unwrap(), Applied::Added);
    sim.finish();
    round(&mut agent, &sim, &mut m);
    assert_exact(&m, &sim);
}

#[test]
fn a_finished_runner_sends_its_end_and_then_nothing_new() {
    let (mut agent, mut sim, mut m) = (Cursors::new(), Sim::new(2, 4), Merge::new(None));
    sim.load(300);
    round(&mut agent, &sim, &mut m);
    sim.load(10);
    sim.finish();
    let d = round(&mut agent, &sim, &mut m);
    assert!(d.head.finished);
    let d = round(&mut agent, &sim, &mut m);
    assert!(d.head.finished);
    assert!(d.requests.is_empty() && d.intervals.is_empty(), "{d:?}");
    assert_eq!(m.snapshot(false).finished, 1);
    assert_exact(&m, &sim);
}

/// Two callers pulling the same runner (a leader handover): each adds only
/// replies based on its own state, or rebuilds.
#[test]
fn two_callers_never_add_a_reply_not_based_on_their_state() {
    let (mut agent, mut sim) = (Cursors::new(), Sim::new(3, 5));
    let (mut a, mut b) = (Merge::new(None), Merge::new(None));
    for i in 0..12 {
        sim.load(97);
        if i % 3 == 0 {
            sim.close();
        }
        for m in [&mut a, &mut b] {
            let d = pull(&mut agent, &sim, m.cursor(0));
            if m.apply(0, &d).unwrap() == Applied::Rebase {
                m.reset();
                let d = pull(&mut agent, &sim, 0);
                assert_eq!(m.apply(0, &d).unwrap(), Applied::Added);
            }
            m.settle();
        }
    }
    sim.finish();
    for m in [&mut a, &mut b] {
        loop {
            let d = pull(&mut agent, &sim, m.cursor(0));
            match m.apply(0, &d).unwrap() {
                Applied::Added => break,
                Applied::Rebase => m.reset(),
            }
        }
        m.settle();
        assert_exact(m, &sim);
    }
}

#[test]
fn the_agent_keeps_only_the_last_interval_of_its_states() {
    let (mut agent, mut sim, mut m) = (Cursors::new(), Sim::new(2, 6), Merge::new(None));
    for _ in 0..20 {
        sim.load(20);
        sim.close();
    }
    round(&mut agent, &sim, &mut m);
    round(&mut agent, &sim, &mut m);
    for s in agent.acked.iter().chain(&agent.answered) {
        assert_eq!(s.base.first_interval(), 19);
    }
    // A steady pull carries the one interval that changed, not the series.
    sim.load(20);
    let d = round(&mut agent, &sim, &mut m);
    assert_eq!(d.intervals.len(), 1);
}

/// The agent's extra states keep histograms in wire form: a few hundred
/// samples per name cost a few KB, not the 16 KB (and up) of a histogram.
#[test]
fn the_agent_states_are_small() {
    let (mut agent, mut sim, mut m) = (Cursors::new(), Sim::new(20, 7), Merge::new(None));
    sim.load(2_000);
    round(&mut agent, &sim, &mut m);
    sim.load(2_000);
    round(&mut agent, &sim, &mut m);
    let held = crate::histogram::footprint(&sim.full().requests["r0"].latency);
    for s in agent.acked.iter().chain(&agent.answered) {
        let kept = s.base.footprint();
        assert!(
            kept < 20 * held / 4,
            "{kept} bytes for 20 names ({held} a histogram)"
        );
    }
}
