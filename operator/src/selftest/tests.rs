use super::*;

fn status(phase: Phase, verdict: Option<&str>, requests: u64) -> LoadTestStatus {
    LoadTestStatus {
        phase,
        verdict: verdict.map(str::to_string),
        requests,
        ..Default::default()
    }
}

#[test]
fn the_loadtest_is_one_runner_of_planned_gets_at_the_target() {
    let lt = loadtest("rel-selftest", "http://198.18.1.7:8080").unwrap();
    assert_eq!(lt.metadata.generate_name.as_deref(), Some("rel-selftest-"));
    assert_eq!(lt.metadata.name, None);
    let spec = serde_json::to_value(&lt.spec).unwrap();
    assert_eq!(spec["runners"], 1);
    assert_eq!(spec["target"]["baseUrl"], "http://198.18.1.7:8080");
    assert_eq!(spec["load"]["iterations"], ITERATIONS);
    assert_eq!(spec["requests"][0]["path"], "/");
    // The spec passes the operator's own validation (else the test would
    // fail on the operator, not on the install).
    assert!(crate::validate::validate_all("rel-selftest-abcde", &lt.spec).is_empty());
}

#[test]
fn only_a_terminal_phase_is_finished() {
    let mut lt = loadtest("x", "http://127.0.0.1:8080").unwrap();
    assert!(!finished(None));
    assert!(!finished(Some(&lt)));
    lt.status = Some(status(Phase::Running, None, 10));
    assert!(!finished(Some(&lt)));
    for phase in [Phase::Succeeded, Phase::Failed, Phase::Aborted] {
        lt.status = Some(status(phase, None, 0));
        assert!(finished(Some(&lt)), "{phase:?}");
    }
}

#[test]
fn only_a_passed_run_with_every_request_counted_passes() {
    assert_eq!(
        judge(&status(Phase::Succeeded, Some("Passed"), ITERATIONS)),
        Ok(())
    );
    assert_eq!(
        judge(&status(Phase::Succeeded, Some("Failed"), ITERATIONS)),
        Err("verdict is Failed, not Passed".into())
    );
    assert_eq!(
        judge(&status(Phase::Failed, None, 0)),
        Err("phase is Failed, not Succeeded".into())
    );
    assert_eq!(
        judge(&status(Phase::Succeeded, Some("Passed"), ITERATIONS - 1)),
        Err(format!(
            "{} requests counted, {ITERATIONS} planned",
            ITERATIONS - 1
        ))
    );
}

#[test]
fn the_summary_names_phase_verdict_and_figures() {
    let mut st = status(Phase::Succeeded, Some("Passed"), 200);
    st.error_rate = Some("0.00%".into());
    st.rps = 97.5;
    assert_eq!(
        summary("rel-selftest-abcde", &st),
        "LoadTest rel-selftest-abcde: phase Succeeded, verdict Passed, requests 200, errors 0, error rate 0.00%, rps 97.5, p95 -"
    );
    st.phase = Phase::Failed;
    st.verdict = None;
    st.message = Some("runner pod failed".into());
    assert!(summary("x", &st).ends_with(
        "verdict none, requests 200, errors 0, error rate 0.00%, rps 97.5, p95 -: runner pod failed"
    ));
}
