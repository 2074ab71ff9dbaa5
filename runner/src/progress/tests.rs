use super::*;

#[test]
fn a_line_reads_back_as_it_was_written() {
    for p in [
        Progress::setup(412, 3, Some(1000)),
        Progress::setup(0, 0, None),
        Progress::setup(7, 0, Some(7)),
    ] {
        let log = format!("noise\n{}\n", p.line());
        assert_eq!(parse_last(&log), Some(p));
    }
    assert_eq!(
        Progress::setup(412, 3, Some(1000)).line(),
        "barrage-progress done=412 failed=3 total=1000"
    );
}

#[test]
fn the_last_valid_whole_line_wins() {
    let log = "barrage-progress done=10 total=100\n  10/100 users\nbarrage-progress done=20 total=100\nbarrage-progress done=2x total=100\n";
    assert_eq!(parse_last(log), Some(Progress::setup(20, 0, Some(100))));
    // A tail cut by limitBytes: the cut line does not count.
    let cut = "barrage-progress done=20 total=100\nbarrage-progress done=4";
    assert_eq!(parse_last(cut), Some(Progress::setup(20, 0, Some(100))));
    assert_eq!(parse_last("barrage-progress done=4"), None);
    assert_eq!(parse_last(""), None);
    assert_eq!(parse_last("\n\n"), None);
}

#[test]
fn hostile_lines_are_refused() {
    for bad in [
        "barrage-progress",
        "barrage-progress total=5",
        "barrage-progress done=-1",
        "barrage-progress done=+1",
        "barrage-progress done=1.5",
        "barrage-progress done=",
        "barrage-progress done=1 done=2",
        "barrage-progress done=5 failed=6",
        "barrage-progress done=6 total=5",
        "barrage-progress done=99999999999999999999",
        "barrage-progress  done=1",
        "barrage-progress done=1 ",
        "barrage-progress done=1\r",
        "barrage-progress done=1 Weird=2",
        "barrage-progress done=1 junk",
        "barrage-progress done=1 note=",
        " barrage-progress done=1",
        "barrage-progressdone=1",
        "xbarrage-progress done=1",
        "barrage-progress done=١",
    ] {
        assert_eq!(parse_line(bad), None, "{bad:?}");
        assert_eq!(parse_last(&format!("{bad}\n")), None, "{bad:?}");
    }
    let long = format!("barrage-progress done=1 note={}", "x".repeat(MAX_LINE));
    assert_eq!(parse_line(&long), None);
    // Unknown well-formed words are for later versions: ignored.
    assert_eq!(
        parse_line("barrage-progress stage=setup done=1 eta_s=30"),
        Some(Progress::setup(1, 0, None))
    );
    assert_eq!(
        parse_line("barrage-progress done=9999999999999999999"),
        Some(Progress::setup(9_999_999_999_999_999_999, 0, None))
    );
}

#[test]
fn the_rate_follows_recent_progress() {
    // Nothing done yet: no rate.
    assert_eq!(rate(None, 0, 5.0), None);
    assert_eq!(rate(None, 50, 5.0), Some(10.0));
    // No time passed: the estimate stands.
    assert_eq!(rate(Some(3.0), 10, 0.0), Some(3.0));
    // A steady rate stays.
    let r = rate(Some(10.0), 50, 5.0).unwrap();
    assert!((r - 10.0).abs() < 1e-9, "{r}");
    // A stall lowers it, by about 15% over 5 s, to nearly 0 after minutes.
    let r = rate(Some(10.0), 0, 5.0).unwrap();
    assert!((8.0..9.0).contains(&r), "{r}");
    let r = rate(Some(10.0), 0, 300.0).unwrap();
    assert!(r < 0.01, "{r}");
    // A doubling shows within the window, not at once.
    let r = rate(Some(10.0), 100, 5.0).unwrap();
    assert!((11.0..13.0).contains(&r), "{r}");
}

#[test]
fn estimates_need_a_total_and_a_rate() {
    assert_eq!(remaining_secs(Some(1000), 412, Some(7.0)), Some(84));
    assert_eq!(remaining_secs(Some(1000), 1000, None), Some(0));
    assert_eq!(remaining_secs(Some(1000), 1200, None), Some(0));
    assert_eq!(remaining_secs(None, 412, Some(7.0)), None);
    assert_eq!(remaining_secs(Some(1000), 412, None), None);
    assert_eq!(remaining_secs(Some(1000), 412, Some(0.0)), None);
    assert_eq!(remaining_secs(Some(u64::MAX), 0, Some(1e-9)), None);
}

#[test]
fn text_for_people() {
    let p = Progress::setup(412, 3, Some(1000));
    assert_eq!(
        text(&p, Some(7.06), Some(84)),
        "412/1000 users (3 failed), 7.1/s, about 1m24s left"
    );
    assert_eq!(text(&Progress::setup(5, 0, None), None, None), "5 users");
    let run = Progress {
        stage: "run".into(),
        unit: "seconds".into(),
        done: 70,
        failed: 0,
        total: Some(300),
    };
    assert_eq!(
        text(&run, Some(1.0), Some(230)),
        "1m10s of 5m00s, 3m50s left"
    );
    assert_eq!(clock(7322), "2h02m");
    assert_eq!(
        bar(&p, Some(250.0), None, 10),
        "[####......]  41% 412/1000 users (3 failed), 250/s"
    );
    assert_eq!(bar(&Progress::setup(5, 0, None), None, None, 10), "5 users");
}

#[test]
fn a_meter_rates_successive_samples() {
    let mut m = Meter::default();
    let s = Duration::from_secs;
    assert_eq!(m.sample(s(0), 0), None);
    assert_eq!(m.sample(s(2), 20), Some(10.0));
    // The same instant again changes nothing.
    assert_eq!(m.sample(s(2), 25), Some(10.0));
    // A count that went back (a retried setup pod) starts over.
    assert_eq!(m.sample(s(3), 5), None);
    assert_eq!(m.sample(s(4), 10), Some(5.0));
}
