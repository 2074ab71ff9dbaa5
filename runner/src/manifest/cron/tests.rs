//! Tests of `cron`: parse errors naming the field and column, the syntax
//! (steps, ranges, lists, names, macros, Sunday as 0 or 7, the day-of-month
//! or day-of-week rule), rare dates, time zones, and the daylight saving
//! rule (a skipped time once after the gap, a repeated time once).

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn tz(name: &str) -> TimeZone {
    time_zone(name).unwrap()
}

/// The next `n` firings strictly after `from`.
fn firings(expr: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
    let c = parse(expr).unwrap();
    let z = tz(zone);
    let mut t = ts(from);
    let mut out = Vec::new();
    for _ in 0..n {
        t = c.next_after(&z, t).unwrap();
        out.push(t.to_string());
    }
    out
}

fn err(expr: &str) -> CronError {
    parse(expr).unwrap_err()
}

#[test]
fn errors_name_the_field_and_column() {
    let e = err("60 * * * *");
    assert_eq!((e.field, e.column), (Some((1, "minute")), 1));
    assert!(e.message.contains("60 is outside 0-59"), "{e}");
    let e = err("0 25 * * *");
    assert_eq!((e.field, e.column), (Some((2, "hour")), 3));
    let e = err("0 0 1-x * *");
    assert_eq!((e.field, e.column), (Some((3, "day of month")), 7));
    let e = err("0 0 * foo *");
    assert_eq!((e.field, e.column), (Some((4, "month")), 7));
    assert!(e.message.contains("jan"), "names listed: {e}");
    let e = err("0 0 * * 1/0");
    assert_eq!((e.field, e.column), (Some((5, "day of week")), 11));
    assert!(e.message.contains("step of 0"), "{e}");
    let e = err("0 0 * * 8");
    assert_eq!(e.field, Some((5, "day of week")));
    let e = err("5-1 * * * *");
    assert!(e.message.contains("backwards"), "{e}");
    let e = err("1,,2 * * * *");
    assert_eq!((e.field, e.column), (Some((1, "minute")), 3));
    let e = err("  0 0 0 * *");
    assert_eq!((e.field, e.column), (Some((3, "day of month")), 7));
    assert!(
        e.to_string()
            .starts_with("field 3 (day of month) at column 7: 0 is outside 1-31"),
        "{e}"
    );
    let e = err("* * * *");
    assert_eq!(e.field, None);
    assert!(e.message.contains("4 fields"), "{e}");
    assert!(err("* * * * * *").message.contains("6 fields"));
    assert!(err("@every 5m").message.contains("unknown macro"));
    assert!(
        err("TZ=Europe/Berlin 0 0 * * *")
            .message
            .contains("spec.timeZone")
    );
    assert!(
        err("CRON_TZ=UTC 0 0 * * *")
            .message
            .contains("spec.timeZone")
    );
    assert!(err("*/x * * * *").message.contains("not a number"));
}

#[test]
fn steps_ranges_lists_and_names() {
    assert_eq!(
        firings("*/15 * * * *", "UTC", "2026-01-05T10:07:00Z", 3),
        [
            "2026-01-05T10:15:00Z",
            "2026-01-05T10:30:00Z",
            "2026-01-05T10:45:00Z"
        ]
    );
    // N/step runs from N to the maximum.
    assert_eq!(
        firings("5/20 * * * *", "UTC", "2026-01-05T10:00:00Z", 4),
        [
            "2026-01-05T10:05:00Z",
            "2026-01-05T10:25:00Z",
            "2026-01-05T10:45:00Z",
            "2026-01-05T11:05:00Z"
        ]
    );
    assert_eq!(
        firings("0-10/5,58 3 * * *", "UTC", "2026-01-05T02:00:00Z", 5),
        [
            "2026-01-05T03:00:00Z",
            "2026-01-05T03:05:00Z",
            "2026-01-05T03:10:00Z",
            "2026-01-05T03:58:00Z",
            "2026-01-06T03:00:00Z"
        ]
    );
    // 2026-01-10 is a Saturday: weekdays resume on Monday the 12th.
    assert_eq!(
        firings("0 9 * * MON-fri", "UTC", "2026-01-09T10:00:00Z", 2),
        ["2026-01-12T09:00:00Z", "2026-01-13T09:00:00Z"]
    );
    assert_eq!(
        firings("0 0 1 jan,JUL *", "UTC", "2026-01-05T00:00:00Z", 2),
        ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"]
    );
    // A strictly later instant: a firing at `from` itself is not "next".
    assert_eq!(
        firings("30 10 * * *", "UTC", "2026-01-05T10:30:00Z", 1),
        ["2026-01-06T10:30:00Z"]
    );
    assert_eq!(
        firings("30 10 * * *", "UTC", "2026-01-05T10:29:59.9Z", 1),
        ["2026-01-05T10:30:00Z"]
    );
}

#[test]
fn sunday_is_0_or_7_and_ranges_may_end_at_7() {
    let sun = parse("0 0 * * 0").unwrap();
    assert_eq!(parse("0 0 * * 7").unwrap(), sun);
    assert_eq!(parse("0 0 * * sun").unwrap(), sun);
    // 2026-01-09 is a Friday.
    assert_eq!(
        firings("0 0 * * 5-7", "UTC", "2026-01-08T12:00:00Z", 4),
        [
            "2026-01-09T00:00:00Z",
            "2026-01-10T00:00:00Z",
            "2026-01-11T00:00:00Z",
            "2026-01-16T00:00:00Z"
        ]
    );
}

#[test]
fn day_of_month_or_day_of_week_when_both_are_restricted() {
    // The 13th, and every Friday (2026-02-06 and 2026-02-13 are Fridays).
    assert_eq!(
        firings("0 0 13 * fri", "UTC", "2026-02-01T00:00:00Z", 4),
        [
            "2026-02-06T00:00:00Z",
            "2026-02-13T00:00:00Z",
            "2026-02-20T00:00:00Z",
            "2026-02-27T00:00:00Z"
        ]
    );
    assert_eq!(
        firings("0 0 13 * fri", "UTC", "2026-03-07T00:00:00Z", 2),
        ["2026-03-13T00:00:00Z", "2026-03-20T00:00:00Z"]
    );
    // One side `*`: only the other counts.
    assert_eq!(
        firings("0 0 13 * *", "UTC", "2026-02-01T00:00:00Z", 2),
        ["2026-02-13T00:00:00Z", "2026-03-13T00:00:00Z"]
    );
    assert_eq!(
        firings("0 0 * * fri", "UTC", "2026-02-01T00:00:00Z", 1),
        ["2026-02-06T00:00:00Z"]
    );
    // `*/10` restricts (CronJob): the 1st, 11th, 21st, 31st, or a Monday.
    assert_eq!(
        firings("0 0 */10 * mon", "UTC", "2026-03-01T12:00:00Z", 3),
        [
            "2026-03-02T00:00:00Z",
            "2026-03-09T00:00:00Z",
            "2026-03-11T00:00:00Z"
        ]
    );
}

#[test]
fn macros_are_their_expansions() {
    for (m, body) in MACROS {
        assert_eq!(parse(m).unwrap(), parse(body).unwrap(), "{m}");
        assert_eq!(parse(&m.to_uppercase()).unwrap(), parse(body).unwrap());
    }
    assert_eq!(
        firings("@weekly", "UTC", "2026-01-05T00:00:00Z", 1),
        ["2026-01-11T00:00:00Z"]
    );
}

#[test]
fn rare_and_impossible_dates() {
    assert_eq!(
        firings("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", 2),
        ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]
    );
    let never = parse("0 0 30 2 *").unwrap();
    assert_eq!(
        never.next_after(&TimeZone::UTC, ts("2026-01-01T00:00:00Z")),
        None
    );
    let never = parse("0 0 31 apr,jun *").unwrap();
    assert_eq!(
        never.next_after(&TimeZone::UTC, ts("2026-01-01T00:00:00Z")),
        None
    );
}

#[test]
fn time_zones_including_non_hour_offsets() {
    // Berlin: UTC+1 in winter, UTC+2 in summer.
    assert_eq!(
        firings("0 9 * * *", "Europe/Berlin", "2026-01-05T00:00:00Z", 1),
        ["2026-01-05T08:00:00Z"]
    );
    assert_eq!(
        firings("0 9 * * *", "Europe/Berlin", "2026-07-05T00:00:00Z", 1),
        ["2026-07-05T07:00:00Z"]
    );
    assert_eq!(
        firings("0 9 * * *", "America/New_York", "2026-01-05T00:00:00Z", 1),
        ["2026-01-05T14:00:00Z"]
    );
    // Kathmandu is UTC+5:45, Kolkata UTC+5:30.
    assert_eq!(
        firings("0 9 * * *", "Asia/Kathmandu", "2026-01-05T00:00:00Z", 1),
        ["2026-01-05T03:15:00Z"]
    );
    assert_eq!(
        firings("*/20 0 * * *", "Asia/Kolkata", "2026-01-05T00:00:00Z", 3),
        [
            "2026-01-05T18:30:00Z",
            "2026-01-05T18:50:00Z",
            "2026-01-05T19:10:00Z"
        ]
    );
    let e = time_zone("Mars/Olympus_Mons").unwrap_err();
    assert!(e.contains("not an IANA time zone"), "{e}");
    assert!(time_zone("UTC").is_ok() && time_zone("Etc/UTC").is_ok());
}

fn assert_gap(zone: &str, local: DateTime) {
    let amb = tz(zone).to_ambiguous_timestamp(local);
    assert!(
        matches!(amb.offset(), AmbiguousOffset::Gap { .. }),
        "{local} in {zone} is not in a gap: the test would prove nothing"
    );
}

fn assert_fold(zone: &str, local: DateTime) {
    let amb = tz(zone).to_ambiguous_timestamp(local);
    assert!(
        matches!(amb.offset(), AmbiguousOffset::Fold { .. }),
        "{local} in {zone} is not in a fold: the test would prove nothing"
    );
}

#[test]
fn spring_forward_runs_a_skipped_time_once_at_the_end_of_the_gap() {
    // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    assert_gap("Europe/Berlin", local(2026, 3, 29, 2, 30));
    assert_eq!(
        firings("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    );
    // Every 15 minutes: 02:00-02:45 do not exist; one firing at 03:00.
    assert_eq!(
        firings("*/15 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z", 4),
        [
            "2026-03-29T00:45:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T01:15:00Z",
            "2026-03-29T01:30:00Z"
        ]
    );
    // New York, 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC).
    assert_gap("America/New_York", local(2026, 3, 8, 2, 30));
    assert_eq!(
        firings("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 2),
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
    );
    // Lord Howe moves by 30 minutes: 2026-10-04 02:00 +10:30 becomes 02:30 +11.
    assert_gap("Australia/Lord_Howe", local(2026, 10, 4, 2, 15));
    assert_eq!(
        firings(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-03T00:00:00Z",
            2
        ),
        [
            ts("2026-10-04T02:30:00+11:00").to_string(),
            ts("2026-10-05T02:15:00+11:00").to_string()
        ]
    );
}

#[test]
fn fall_back_runs_a_repeated_time_once() {
    // Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    assert_fold("Europe/Berlin", local(2026, 10, 25, 2, 30));
    assert_eq!(
        firings("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
    // Hourly: the repeated 02:00 does not fire again.
    assert_eq!(
        firings("0 * * * *", "Europe/Berlin", "2026-10-24T22:30:00Z", 3),
        [
            "2026-10-24T23:00:00Z",
            "2026-10-25T00:00:00Z",
            "2026-10-25T02:00:00Z"
        ]
    );
    // Asked during the second pass of the repeated hour: the next firing
    // is after it, not a repeat inside it.
    assert_eq!(
        firings("*/15 * * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 1),
        ["2026-10-25T02:00:00Z"]
    );
    // New York, 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:30 twice.
    assert_fold("America/New_York", local(2026, 11, 1, 1, 30));
    assert_eq!(
        firings("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    );
    // Lord Howe, 2026-04-05: 02:00 +11 becomes 01:30 +10:30; 01:45 twice.
    assert_fold("Australia/Lord_Howe", local(2026, 4, 5, 1, 45));
    assert_eq!(
        firings(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-04T00:00:00Z",
            2
        ),
        [
            ts("2026-04-05T01:45:00+11:00").to_string(),
            ts("2026-04-06T01:45:00+10:30").to_string()
        ]
    );
}

#[test]
fn firings_never_go_backwards_across_a_year_of_transitions() {
    for zone in ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"] {
        let c = parse("*/30 * * * *").unwrap();
        let z = tz(zone);
        let mut t = ts("2026-01-01T00:00:00Z");
        let mut n = 0;
        while t < ts("2027-01-01T00:00:00Z") {
            let next = c.next_after(&z, t).unwrap();
            assert!(next > t, "{zone}: {next} after {t}");
            // At most the longest gap (1 h) plus the interval apart.
            assert!(
                next.duration_since(t).as_secs() <= 5400,
                "{zone}: {t} -> {next}"
            );
            t = next;
            n += 1;
        }
        // 17520 half-hours a year, less the ones the fall-back repeats.
        assert!((17_510..=17_520).contains(&n), "{zone}: {n} firings");
    }
}
