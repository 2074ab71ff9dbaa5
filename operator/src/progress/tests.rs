use super::*;

fn at(s: &str) -> Timestamp {
    format!("2026-01-05T03:{s}Z").parse().unwrap()
}

fn users(done: u64, failed: u64) -> Progress {
    Progress::setup(done, failed, Some(1000))
}

#[test]
fn the_rate_and_estimate_come_from_the_previous_status() {
    // The first look has no rate yet.
    let first = advance(None, users(100, 0), at("00:00"));
    assert_eq!(first.per_second, None);
    assert_eq!(first.remaining_seconds, None);
    assert_eq!(first.text, "100/1000 users");
    assert_eq!(first.observed_at.as_deref(), Some("2026-01-05T03:00:00Z"));
    // 50 more in 5 s: 10/s, 850 left, 85 s.
    let second = advance(Some(&first), users(150, 2), at("00:05"));
    assert_eq!(second.per_second, Some(10.0));
    assert_eq!(second.remaining_seconds, Some(85));
    assert_eq!(
        second.text,
        "150/1000 users (2 failed), 10/s, about 1m25s left"
    );
    // A stall lowers the rate and lengthens the estimate, once REFRESH passed.
    let early = advance(Some(&second), users(150, 2), at("00:07"));
    assert_eq!(
        early, second,
        "nothing moved within REFRESH: the status stands"
    );
    let stalled = advance(Some(&second), users(150, 2), at("00:35"));
    assert!(stalled.per_second.unwrap() < 4.0, "{stalled:?}");
    assert!(stalled.remaining_seconds.unwrap() > 200, "{stalled:?}");
    // Done: nothing left.
    let done = advance(Some(&stalled), users(1000, 2), at("01:00"));
    assert_eq!(done.remaining_seconds, Some(0));
    assert!(
        done.text.starts_with("1000/1000 users (2 failed), "),
        "{}",
        done.text
    );
}

#[test]
fn a_new_stage_or_a_count_that_went_back_starts_over() {
    let setup = advance(None, users(100, 0), at("00:00"));
    let setup = advance(Some(&setup), users(200, 0), at("00:10"));
    assert_eq!(setup.per_second, Some(10.0));
    // A retried setup pod counts from 0 again.
    let again = advance(Some(&setup), users(10, 0), at("00:20"));
    assert_eq!(again.per_second, None);
    // Another stage's progress is no base for a rate.
    let start = Progress {
        stage: "start".into(),
        unit: "runners".into(),
        done: 1,
        failed: 0,
        total: Some(3),
    };
    let s = advance(Some(&setup), start, at("00:30"));
    assert_eq!((s.stage.as_str(), s.per_second), ("start", None));
    assert_eq!(s.text, "1/3 runners");
    // A previous status without a time (or a bad one) is no base either.
    let mut odd = setup.clone();
    odd.observed_at = Some("yesterday".into());
    assert_eq!(
        advance(Some(&odd), users(300, 0), at("00:40")).per_second,
        None
    );
}

#[test]
fn the_run_shows_seconds_of_its_length_or_iterations_of_plan() {
    let timed = crate::pods::tests::lt(
        "target: {baseUrl: 'http://x'}\nload: {users: 1, duration: 5m}\nrequests: [{name: a, path: /}]",
    );
    let start = at("00:00");
    let mut st = LoadTestStatus {
        phase: Phase::Running,
        start_at_us: Some(start.as_microsecond() as u64),
        ..Default::default()
    };
    running(&mut st, &timed, at("01:10"));
    let p = st.progress.clone().unwrap();
    assert_eq!(
        (p.unit.as_str(), p.done, p.total),
        ("seconds", 70, Some(300))
    );
    assert_eq!(p.remaining_seconds, Some(230));
    assert_eq!(p.text, "1m10s of 5m00s, 3m50s left");
    // Past the planned end (stopping, reporting): held at the length.
    running(&mut st, &timed, at("05:40"));
    assert_eq!(st.progress.as_ref().unwrap().done, 300);

    let counted = crate::pods::tests::lt(
        "target: {baseUrl: 'http://x'}\nload: {users: 2, iterations: 40}\nrequests:\n- {name: a, path: /}\n- {name: j, steps: [{name: s1, path: /1}, {name: s2, path: /2}]}",
    );
    let mut st = LoadTestStatus {
        phase: Phase::Running,
        start_at_us: Some(start.as_microsecond() as u64),
        ..Default::default()
    };
    st.by_request.insert(
        "a".into(),
        crate::crd::RequestStatus {
            requests: 7,
            ..Default::default()
        },
    );
    // Journey steps count requests; the journey's passes count iterations.
    st.by_request.insert(
        "j/s1".into(),
        crate::crd::RequestStatus {
            requests: 5,
            ..Default::default()
        },
    );
    st.by_journey.insert(
        "j".into(),
        crate::crd::JourneyStatus {
            passes: 3,
            ..Default::default()
        },
    );
    running(&mut st, &counted, at("00:10"));
    let p = st.progress.clone().unwrap();
    assert_eq!(
        (p.unit.as_str(), p.done, p.total),
        ("iterations", 10, Some(40))
    );
    // Without its figures yet: seconds, of no known length.
    st.by_journey.clear();
    st.progress = None;
    running(&mut st, &counted, at("00:10"));
    let p = st.progress.unwrap();
    assert_eq!((p.unit.as_str(), p.done, p.total), ("seconds", 10, None));
}

#[test]
fn starting_counts_ready_runners_and_settle_keeps_the_phases_own() {
    let mut st = LoadTestStatus {
        phase: Phase::Starting,
        ..Default::default()
    };
    starting(&mut st, 2, 3, at("00:00"));
    assert_eq!(st.progress.as_ref().unwrap().text, "2/3 runners");
    settle(&mut st);
    assert!(st.progress.is_some());
    st.phase = Phase::Running;
    settle(&mut st);
    assert_eq!(st.progress, None, "the start's progress ends with it");
    st.progress = Some(advance(None, users(1, 0), at("00:00")));
    st.phase = Phase::Succeeded;
    settle(&mut st);
    assert_eq!(st.progress, None);
}

#[test]
fn the_setup_total_is_the_plans_for_the_builtin_setup_only() {
    let base = "target: {baseUrl: 'http://x'}\nload: {users: 1, duration: 1s}\nrequests: [{name: a, path: /}]\n";
    let builtin = crate::pods::tests::lt(&format!(
        "{base}setup: {{users: 250, steps: [{{name: r, path: /r}}]}}"
    ));
    assert_eq!(setup_total(&builtin), Some(250));
    let custom = crate::pods::tests::lt(&format!("{base}setup: {{image: 'seed:1'}}"));
    assert_eq!(setup_total(&custom), None);
    assert_eq!(setup_total(&crate::pods::tests::lt(base)), None);
}
