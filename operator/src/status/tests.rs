//! The status from merged results: figures, verdicts, conditions, bounds.

use super::*;
use barrage_runner::{
    histogram::record,
    snapshot::{RequestStats, Snapshot},
};

fn runner_snapshot(index: u64, names: usize, per_name: u64) -> Snapshot {
    let mut s = Snapshot::empty(10_000_000);
    s.runners = 1;
    s.finished = 1;
    s.started_us = Some(1_000_000 + index * 7);
    s.until_us = Some(11_000_000);
    s.runner_starts_us = vec![1_000_000 + index * 7];
    for n in 0..names {
        let mut r = RequestStats::default();
        for i in 0..per_name {
            record(&mut r.latency, 1_000 + (i * 37 + index) % 50_000);
        }
        *r.statuses.entry(200).or_default() += per_name;
        s.requests
            .insert(format!("request-with-a-long-name-{n:03}"), r);
    }
    s
}

#[test]
fn status_holds_the_merged_figures() {
    let mut snaps: Vec<_> = (0..3).map(|i| runner_snapshot(i, 2, 1000)).collect();
    // Resends on kept-alive connections the server closed, per runner.
    for (i, s) in snaps.iter_mut().enumerate() {
        s.requests.values_mut().next().unwrap().retries = i as u64 + 1;
    }
    let merged = Snapshot::merged(&snaps);
    let mut st = LoadTestStatus::default();
    apply_results(&mut st, &merged, &Subjects::default());
    assert_eq!(st.requests, 6000);
    assert_eq!(st.retries, 6);
    assert_eq!(st.rps, 600.0);
    assert_eq!(st.error_rate.as_deref(), Some("0.00%"));
    assert_eq!(st.start_skew_ms, Some(0.014));
    assert_eq!(st.runners_finished, 3);
    let p95 = merged.stats(None).unwrap().latency.value_at_quantile(0.95) as f64 / 1000.0;
    assert_eq!(st.latency_ms.as_ref().unwrap().p95, round(p95, 3));
    assert_eq!(st.by_request.len(), 2);
}

/// Failure texts come from runners: a hostile one sends a megabyte and
/// a thousand of them, and the status stays small enough to be written.
#[test]
fn a_runners_failure_text_is_bounded_in_the_status() {
    let mut bad = runner_snapshot(1, 1, 10);
    bad.failures = (0..1000)
        .map(|i| format!("runner {i}: {}", "x".repeat(1 << 20)))
        .collect();
    let why = engine_failure(&bad).unwrap();
    assert!(
        why.len() < 2000 && why.ends_with("and 995 more"),
        "{}",
        why.len()
    );
    let mut st = LoadTestStatus::default();
    finish_as(
        &mut st,
        Phase::Failed,
        REASON_ENGINE_FAILED,
        "y".repeat(1 << 20),
        Some(1),
        Timestamp::now(),
    );
    assert_eq!(
        st.message.as_ref().map(|m| m.chars().count()),
        Some(MAX_MESSAGE)
    );
    assert!(serde_json::to_string(&st).unwrap().len() < 8 * 1024);
}

#[test]
fn a_runners_engine_failure_fails_the_test_with_its_reason() {
    let ok = runner_snapshot(0, 1, 10);
    assert_eq!(engine_failure(&Snapshot::merged([&ok, &ok])), None);
    let mut bad = runner_snapshot(1, 1, 10);
    bad.failures = vec!["runner 1: a virtual user panicked: boom".into()];
    let bad = Snapshot::from_json(&bad.to_json()).unwrap();
    let merged = Snapshot::merged([&ok, &bad]);
    let why = engine_failure(&merged).unwrap();
    assert_eq!(
        why,
        "runner engine failed: runner 1: a virtual user panicked: boom"
    );
    // What it measured is still in the status.
    let mut st = LoadTestStatus::default();
    apply_results(&mut st, &merged, &Subjects::default());
    assert_eq!(st.requests, 20);
    let phase = final_phase(&[], false, true);
    finish_as(
        &mut st,
        phase,
        REASON_ENGINE_FAILED,
        why,
        Some(1),
        Timestamp::now(),
    );
    assert_eq!(st.phase, Phase::Failed);
    assert_eq!(st.verdict.as_deref(), Some("Failed"));
    let passed = st
        .conditions
        .iter()
        .find(|c| c.type_ == COND_PASSED)
        .unwrap();
    assert_eq!(
        (passed.status.as_str(), passed.reason.as_str()),
        ("False", REASON_ENGINE_FAILED)
    );
    assert!(passed.message.contains("panicked: boom"));
}

#[test]
fn status_stays_under_64kb_whatever_the_runners_and_names() {
    let snaps: Vec<_> = (0..40).map(|i| runner_snapshot(i, 60, 20)).collect();
    let merged = Snapshot::merged(&snaps);
    let mut st = LoadTestStatus::default();
    apply_results(&mut st, &merged, &Subjects::default());
    let now = Timestamp::now();
    for c in [COND_VALIDATED, COND_RUNNERS_READY, COND_STARTED] {
        set_condition(
            &mut st.conditions,
            c,
            true,
            "Ok",
            &"m".repeat(2000),
            Some(1),
            now,
        );
    }
    finish(&mut st, Phase::Succeeded, "done".into(), Some(1), now);
    assert_eq!(st.by_request.len(), MAX_NAMES);
    let size = serde_json::to_vec(&st).unwrap().len();
    assert!(size < 64 * 1024, "status is {size} bytes");
}

#[test]
fn conditions_keep_their_transition_time_until_status_changes() {
    let mut conds = Vec::new();
    let t0 = Timestamp::from_second(1_000).unwrap();
    let t1 = Timestamp::from_second(2_000).unwrap();
    set_condition(&mut conds, COND_COMPLETE, false, "Running", "", Some(1), t0);
    set_condition(
        &mut conds,
        COND_COMPLETE,
        false,
        "Running",
        "still",
        Some(1),
        t1,
    );
    assert_eq!(conds[0].last_transition_time.0, t0);
    set_condition(
        &mut conds,
        COND_COMPLETE,
        true,
        "Succeeded",
        "",
        Some(1),
        t1,
    );
    assert_eq!(conds[0].last_transition_time.0, t1);
    assert_eq!(conds.len(), 1);
}

#[test]
fn a_spec_without_thresholds_fails_on_the_default_and_says_so() {
    use barrage_runner::{plan::Plan, report::Report, thresholds};
    // Every request failed: 10 requests, 10 errors.
    let mut merged = runner_snapshot(0, 1, 10);
    for s in merged.requests.values_mut() {
        s.errors
            .insert(barrage_runner::snapshot::ErrorKind::TlsRefused, s.count());
    }
    let judge = |plan: &Plan| {
        let list: Vec<_> = thresholds::plan_sources(plan.thresholds.as_deref())
            .into_iter()
            .map(|(s, d)| {
                let mut t: thresholds::Threshold = s.parse().unwrap();
                t.is_default = d;
                t
            })
            .collect();
        let report = Report::new(merged.clone(), thresholds::evaluate(&list, &merged), None);
        let mut st = LoadTestStatus::default();
        let (phase, msg) = judged(&mut st, &merged, report.thresholds, None, None);
        (st, phase, msg)
    };
    let (st, phase, msg) = judge(&Plan::default());
    assert_eq!(phase, Phase::Failed, "{msg}");
    assert_eq!(st.thresholds.len(), 1);
    assert!(st.thresholds[0].default && !st.thresholds[0].passed);
    assert_eq!(st.thresholds[0].source, "error_rate < 1%");
    assert!(msg.contains("error_rate < 1% (default)"), "{msg}");
    // The message and the status say what the errors were.
    assert!(msg.ends_with("; errors: tls_refused 10"), "{msg}");
    assert_eq!(st.error_kinds.get("tls_refused"), Some(&10));
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["thresholds"][0]["default"], true, "{json}");

    let (st, phase, _) = judge(&Plan {
        thresholds: Some(vec![]),
        ..Plan::default()
    });
    assert_eq!(phase, Phase::Succeeded);
    assert!(st.thresholds.is_empty());
}

#[test]
fn the_verdict_follows_thresholds_aborts_and_failures() {
    let ok = Outcome {
        source: "a".into(),
        observed: Some(1.0),
        observed_text: "1".into(),
        passed: true,
        abort_on_fail: false,
        default: false,
    };
    let bad = Outcome {
        passed: false,
        ..ok.clone()
    };
    assert_eq!(
        final_phase(std::slice::from_ref(&ok), false, false),
        Phase::Succeeded
    );
    assert_eq!(
        final_phase(&[ok.clone(), bad.clone()], false, false),
        Phase::Failed
    );
    assert_eq!(
        final_phase(std::slice::from_ref(&ok), false, true),
        Phase::Failed
    );
    assert_eq!(final_phase(&[bad], true, false), Phase::Aborted);
}

#[test]
fn an_https_target_says_what_its_certificate_is_verified_against() {
    let target = |yaml: &str| -> Target { serde_yaml_ng::from_str(yaml).unwrap() };
    let now = Timestamp::now();
    let verified = |yaml: &str| {
        let mut st = LoadTestStatus::default();
        let warning = target_verification(&mut st, &target(yaml), Some(1), now);
        (warning, st.conditions.first().cloned())
    };
    assert_eq!(verified("baseUrl: 'http://h'"), (None, None));
    let (w, c) = verified("baseUrl: 'https://h'");
    let c = c.unwrap();
    assert_eq!(
        (w, c.status.as_str(), c.reason.as_str()),
        (None, "True", "Verified")
    );
    assert!(
        c.message.ends_with("the bundled web PKI roots"),
        "{}",
        c.message
    );
    let (_, c) =
        verified("baseUrl: 'HTTPS://h'\ntls: {caMode: replace, caFrom: {secret: ca, key: ca.crt}}");
    assert!(
        c.unwrap()
            .message
            .ends_with("the CA of spec.target.tls.caFrom only")
    );
    let (w, c) = verified("baseUrl: 'https://h'\ntls: {insecureSkipVerify: true}");
    let c = c.unwrap();
    assert_eq!(w, Some(INSECURE_TARGET));
    assert_eq!(
        (
            c.type_.as_str(),
            c.status.as_str(),
            c.reason.as_str(),
            c.message.as_str()
        ),
        (
            COND_TARGET_VERIFIED,
            "False",
            "InsecureSkipVerify",
            INSECURE_TARGET
        )
    );
}

/// Users retired after failing onStart, and the runners' warnings, reach
/// the status (bounded), not only the report: a test whose users gave up
/// never looks clean in `kubectl get`.
#[test]
fn retired_users_and_warnings_reach_the_status_bounded() {
    let mut snaps: Vec<_> = (0..2).map(|i| runner_snapshot(i, 10, 2)).collect();
    for s in &mut snaps {
        s.users.started = 3;
        s.users.on_start_failures = 6;
        s.users.retired = 2;
        s.warnings = (0..20)
            .map(|i| format!("w{i} {}", "x".repeat(500)))
            .collect();
    }
    let merged = Snapshot::merged(&snaps);
    let mut st = LoadTestStatus::default();
    apply_results(&mut st, &merged, &Subjects::default());
    let users = st.users.as_ref().expect("users in the status");
    assert_eq!(
        (users.started, users.on_start_failures, users.retired),
        (6, 12, 4)
    );
    assert_eq!(st.warnings.len(), MAX_WARNINGS);
    assert!(st.warnings.iter().all(|w| w.chars().count() <= MAX_WARNING));
    assert!(st.warnings[0].contains("retired"), "{:?}", st.warnings[0]);
    let mut clean = LoadTestStatus::default();
    apply_results(
        &mut clean,
        &Snapshot::merged(&[runner_snapshot(0, 10, 2)]),
        &Subjects::default(),
    );
    assert!(clean.users.is_none() && clean.warnings.is_empty());
}
