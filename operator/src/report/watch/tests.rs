use barrage_runner::{report::Latencies, thresholds::Outcome};

use super::*;
use crate::crd::ProgressStatus;

fn at(s: &str) -> Timestamp {
    format!("2026-01-05T03:{s}Z").parse().unwrap()
}

fn lt(status: Option<LoadTestStatus>) -> LoadTest {
    let mut lt = crate::pods::tests::lt(
        "runners: 3\ntarget: {baseUrl: 'http://x'}\nload: {users: 1, duration: 5m}\nrequests: [{name: a, path: /}]\nthresholds: ['p(95) < 50ms', 'error_rate < 1%']",
    );
    lt.status = status;
    lt
}

fn running(elapsed_left: (u64, u64)) -> LoadTestStatus {
    LoadTestStatus {
        phase: Phase::Running,
        started_at: Some("2026-01-05T03:00:00Z".into()),
        runners_ready: 3,
        requests: 21_000,
        errors: 3,
        error_rate: Some("0.01%".into()),
        rps: 2999.62,
        latency_ms: Some(Latencies {
            p95: 41.27,
            ..Default::default()
        }),
        progress: Some(ProgressStatus {
            stage: "run".into(),
            unit: "seconds".into(),
            done: elapsed_left.0,
            total: Some(300),
            remaining_seconds: Some(elapsed_left.1),
            text: format!("{}s of 5m00s", elapsed_left.0),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn outcome(source: &str, passed: bool, observed: &str) -> Outcome {
    Outcome {
        source: source.into(),
        observed: None,
        observed_text: observed.into(),
        passed,
        abort_on_fail: false,
        default: false,
    }
}

#[test]
fn the_exit_status_is_the_verdicts() {
    let st = |phase, verdict: Option<&str>| LoadTestStatus {
        phase,
        verdict: verdict.map(String::from),
        ..Default::default()
    };
    assert_eq!(exit_code(&st(Phase::Running, None)), None);
    assert_eq!(exit_code(&st(Phase::TearingDown, Some("Passed"))), None);
    assert_eq!(exit_code(&st(Phase::Succeeded, Some("Passed"))), Some(0));
    assert_eq!(exit_code(&st(Phase::Failed, Some("Failed"))), Some(99));
    assert_eq!(exit_code(&st(Phase::Aborted, Some("Failed"))), Some(99));
    // A teardown with failsTest fails a test whose load passed.
    assert_eq!(exit_code(&st(Phase::Succeeded, Some("Failed"))), Some(99));
    // Ended before any judgement (a failed setup, a runner that crashed).
    assert_eq!(exit_code(&st(Phase::Failed, None)), Some(EXIT_ERROR));
}

#[test]
fn the_view_shows_phase_clock_runners_figures_progress_and_thresholds() {
    let v = view(&lt(Some(running((70, 230)))), "ns/t", at("01:10")).join("\n");
    for want in [
        "loadtest ..... ns/t",
        "phase ........ Running · 1m10s elapsed, 3m50s left",
        "progress ..... run 70s of 5m00s",
        "runners ...... 3/3 ready · 0 finished",
        "throughput ... 2999.6 req/s · 21000 requests",
        "latency p95 .. 41.3 ms",
        "errors ....... 3 (0.01%)",
        "    · p(95) < 50ms: judged at the end",
        "    · error_rate < 1%: judged at the end",
    ] {
        assert!(v.contains(want), "{want:?} not in\n{v}");
    }
    // Judged: each threshold's outcome; the clock stops at the end.
    let mut st = running((300, 0));
    st.phase = Phase::Failed;
    st.verdict = Some("Failed".into());
    st.finished_at = Some("2026-01-05T03:05:02Z".into());
    st.thresholds = vec![
        outcome("p(95) < 50ms", true, "41.3ms"),
        outcome("error_rate < 1%", false, "2.5%"),
    ];
    let v = view(&lt(Some(st)), "ns/t", at("09:00")).join("\n");
    assert!(v.contains("Failed · 5m02s elapsed · verdict Failed"), "{v}");
    assert!(v.contains("✓ p(95) < 50ms: observed 41.3ms"), "{v}");
    assert!(v.contains("✗ error_rate < 1%: observed 2.5%"), "{v}");
    // Provisioning: the setup's progress, no figures yet.
    let st = LoadTestStatus {
        phase: Phase::Provisioning,
        phase_since: Some("2026-01-05T02:59:40Z".into()),
        progress: Some(ProgressStatus {
            stage: "setup".into(),
            unit: "users".into(),
            text: "412/1000 users (3 failed), 7.1/s, about 1m23s left".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let v = view(&lt(Some(st)), "ns/t", at("00:00")).join("\n");
    assert!(
        v.contains("progress ..... setup 412/1000 users (3 failed), 7.1/s, about 1m23s left"),
        "{v}"
    );
    assert!(
        v.contains("phase ........ Provisioning · 20s in this phase"),
        "{v}"
    );
    assert!(!v.contains("throughput"), "{v}");
    // A message over several lines stays one row.
    let st = LoadTestStatus {
        phase: Phase::Failed,
        message: Some("setup failed:\nuser 1\x1b[31m".into()),
        ..Default::default()
    };
    let v = view(&lt(Some(st)), "ns/t", at("00:00"));
    assert!(
        v.contains(&"  message ...... setup failed: user 1 [31m".to_string()),
        "{v:?}"
    );
    let v = view(&lt(None), "ns/t", at("00:00")).join("\n");
    assert!(v.contains("no status yet"), "{v}");
}

#[test]
fn piped_lines_come_per_change_at_a_bounded_rate() {
    let mut s = Screen::new(Vec::new(), false);
    let t = lt(Some(running((10, 290))));
    s.show(&t, "ns/t", at("00:10"));
    // The same state again: no line.
    s.show(&t, "ns/t", at("00:10"));
    // A change 2 s later waits (pending) until LINE_EVERY has passed.
    let t2 = lt(Some(running((12, 288))));
    s.show(&t2, "ns/t", at("00:12"));
    assert!(s.pending() && s.wants_tick());
    s.show(&t2, "ns/t", at("00:15"));
    assert!(!s.pending());
    // A new phase is printed at once.
    let mut done = running((300, 0));
    done.phase = Phase::Succeeded;
    done.verdict = Some("Passed".into());
    done.finished_at = Some("2026-01-05T03:05:00Z".into());
    s.show(&lt(Some(done)), "ns/t", at("00:16"));
    let out = String::from_utf8(s.into_inner()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        lines[0],
        "2026-01-05T03:00:10Z Running · 10s elapsed, 4m50s left · runners 3/3 · 2999.6 req/s · p95 41.3 ms · errors 3 (0.01%) · run 10s of 5m00s"
    );
    assert!(
        lines[1].starts_with("2026-01-05T03:00:15Z Running · 15s elapsed, 4m48s left"),
        "{out}"
    );
    assert!(
        lines[2].contains("Succeeded · 5m00s elapsed") && lines[2].ends_with("verdict Passed"),
        "{out}"
    );
    assert!(!out.contains('\x1b'));
}

#[test]
fn a_terminal_gets_the_view_redrawn_in_place() {
    let mut s = Screen::new(Vec::new(), true);
    let t = lt(Some(running((10, 290))));
    s.show(&t, "ns/t", at("00:10"));
    s.show(&t, "ns/t", at("00:11"));
    let rows = view(&t, "ns/t", at("00:11")).len();
    let out = String::from_utf8(s.into_inner()).unwrap();
    // The second draw moves up over the first and clears below.
    assert_eq!(
        out.matches(&format!("\x1b[{rows}A\r\x1b[J")).count(),
        1,
        "{out:?}"
    );
    let last_row = view(&t, "ns/t", at("00:11")).last().unwrap().clone();
    assert!(out.ends_with(&format!("{last_row}\n\x1b[?7h")), "{out:?}");
    assert!(out.contains("11s elapsed"));
    // Each draw turns line wrap off and on again.
    assert_eq!(out.matches("\x1b[?7l").count(), 2);
    assert!(out.ends_with("\x1b[?7h"), "{out:?}");
}
