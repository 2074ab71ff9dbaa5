//! Five-field cron expressions (minute hour day-of-month month day-of-week)
//! and the instants they name in an IANA time zone.
//!
//! Syntax as in Vixie cron and Kubernetes CronJob: lists (`1,15`), ranges
//! (`1-5`), steps (`*/10`, `0-30/5`, `5/15` = `5-max/15`), `*` and `?`,
//! month and weekday names (`jan`, `mon-fri`, any case), Sunday as 0 or 7,
//! and the macros `@yearly` `@annually` `@monthly` `@weekly` `@daily`
//! `@midnight` `@hourly`. Day of month and day of week: when both are
//! restricted, a day matches if either does (Vixie's OR rule); when one is
//! `*`, only the other counts. `*/2` is a restriction (as in CronJob).
//!
//! Daylight saving time (our rule: each local time at most once, none
//! lost): a local time that a spring-forward skips fires once, at the first
//! instant after the gap; a local time that a fall-back repeats fires once,
//! at its first occurrence. (Vixie cron also fires wildcard-hour schedules
//! in the repeated hour; we do not.)

use std::fmt;

use jiff::{
    Timestamp,
    civil::{Date, DateTime, date},
    tz::{AmbiguousOffset, TimeZone},
};

/// A parsed expression: one bit per allowed value of each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// The day-of-month or day-of-week field is unrestricted (`*`).
    days_star: bool,
    weekdays_star: bool,
}

/// Where an expression is wrong: the field (1-5 and its name), the column
/// (1-based character offset in the expression) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError {
    pub field: Option<(usize, &'static str)>,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some((n, name)) => write!(
                f,
                "field {n} ({name}) at column {}: {}",
                self.column, self.message
            ),
            None => write!(f, "at column {}: {}", self.column, self.message),
        }
    }
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
    },
    // 7 is Sunday too; folded onto 0 after parsing.
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
    },
];

const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// How far ahead `next_after` looks. The rarest date an expression can name
/// is 29 February, 8 years apart across 2100; beyond that it names none.
const HORIZON_YEARS: i16 = 10;

impl std::str::FromStr for Cron {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Cron, CronError> {
        parse(s)
    }
}

pub fn parse(expr: &str) -> Result<Cron, CronError> {
    let trimmed = expr.trim();
    let lead = expr.len() - expr.trim_start().len();
    if trimmed.starts_with('@') {
        let word = trimmed.to_ascii_lowercase();
        let Some((_, body)) = MACROS.iter().find(|(m, _)| *m == word) else {
            return Err(CronError {
                field: None,
                column: lead + 1,
                message: format!(
                    "unknown macro {trimmed:?}; one of {}",
                    MACROS.map(|m| m.0).join(", ")
                ),
            });
        };
        return parse(body);
    }
    if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
        return Err(CronError {
            field: None,
            column: lead + 1,
            message: "a time zone prefix is not allowed here; set spec.timeZone".into(),
        });
    }
    // Fields with their byte offsets, for error columns.
    let mut parts = Vec::new();
    let mut start = None;
    for (i, c) in expr.char_indices().chain([(expr.len(), ' ')]) {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                parts.push((s, &expr[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if parts.len() != 5 {
        return Err(CronError {
            field: None,
            column: lead + 1,
            message: format!(
                "{} fields; a schedule has 5 (minute hour day-of-month month day-of-week) or is a macro such as @daily",
                parts.len()
            ),
        });
    }
    let mut bits = [0u64; 5];
    let mut stars = [false; 5];
    for (i, (offset, text)) in parts.into_iter().enumerate() {
        let (b, star) = parse_field(&FIELDS[i], text).map_err(|(col, message)| CronError {
            field: Some((i + 1, FIELDS[i].name)),
            column: offset + col + 1,
            message,
        })?;
        bits[i] = b;
        stars[i] = star;
    }
    // Sunday as 7 is Sunday as 0.
    let weekdays = ((bits[4] | (bits[4] >> 7)) & 0x7f) as u8;
    Ok(Cron {
        minutes: bits[0],
        hours: bits[1] as u32,
        days: bits[2] as u32,
        months: bits[3] as u16,
        weekdays,
        days_star: stars[2],
        weekdays_star: stars[4],
    })
}

/// One field: its bits and whether it is a bare `*`. Errors carry the
/// 0-based column within the field.
fn parse_field(f: &Field, text: &str) -> Result<(u64, bool), (usize, String)> {
    let mut bits = 0u64;
    let mut star = false;
    let mut col = 0;
    for item in text.split(',') {
        let (b, s) = parse_item(f, item).map_err(|(c, m)| (col + c, m))?;
        bits |= b;
        star |= s;
        col += item.len() + 1;
    }
    Ok((bits, star))
}

fn parse_item(f: &Field, item: &str) -> Result<(u64, bool), (usize, String)> {
    if item.is_empty() {
        return Err((0, "empty list item".into()));
    }
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => {
            let at = r.len() + 1;
            let n: u32 = s
                .parse()
                .map_err(|_| (at, format!("step {s:?} is not a number")))?;
            if n == 0 {
                return Err((at, "a step of 0 never advances".into()));
            }
            (r, Some(n))
        }
        None => (item, None),
    };
    let (lo, hi, star) = if range == "*" || range == "?" {
        (f.min, f.max, step.is_none_or(|s| s == 1))
    } else if let Some((a, b)) = range.split_once('-') {
        let lo = value(f, a).map_err(|m| (0, m))?;
        let hi = value(f, b).map_err(|m| (a.len() + 1, m))?;
        if lo > hi {
            return Err((0, format!("range {range:?} runs backwards")));
        }
        (lo, hi, false)
    } else {
        let v = value(f, range).map_err(|m| (0, m))?;
        // `N/step` means from N to the maximum.
        (v, if step.is_some() { f.max } else { v }, false)
    };
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    let mut v = lo;
    while v <= hi {
        bits |= 1 << v;
        v += step;
    }
    Ok((bits, star))
}

fn value(f: &Field, s: &str) -> Result<u32, String> {
    if let Some(i) = f.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + f.min);
    }
    let v: u32 = s.parse().map_err(|_| {
        if f.names.is_empty() {
            format!("{s:?} is not a number")
        } else {
            format!("{s:?} is not a number or a name ({})", f.names.join(", "))
        }
    })?;
    if v < f.min || v > f.max {
        return Err(format!("{v} is outside {}-{}", f.min, f.max));
    }
    Ok(v)
}

impl Cron {
    fn day_matches(&self, d: Date) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first local minute at or after `from` (taken at its minute) that
    /// the expression names, within `HORIZON_YEARS`.
    pub fn next_local(&self, from: DateTime) -> Option<DateTime> {
        let limit = from.year().saturating_add(HORIZON_YEARS);
        let mut d = from.date();
        let (mut h, mut m) = (from.hour() as u32, from.minute() as u32);
        loop {
            if d.year() > limit {
                return None;
            }
            if self.months & (1 << d.month()) == 0 {
                d = d.last_of_month().tomorrow().ok()?;
                (h, m) = (0, 0);
                continue;
            }
            if !self.day_matches(d) {
                d = d.tomorrow().ok()?;
                (h, m) = (0, 0);
                continue;
            }
            let Some(hh) = (h..24).find(|x| self.hours & (1 << x) != 0) else {
                d = d.tomorrow().ok()?;
                (h, m) = (0, 0);
                continue;
            };
            if hh != h {
                (h, m) = (hh, 0);
            }
            match (m..60).find(|x| self.minutes & (1 << x) != 0) {
                Some(mm) => return Some(d.at(h as i8, mm as i8, 0, 0)),
                None => (h, m) = (h + 1, 0),
            }
        }
    }

    /// The first instant strictly after `t` that the expression names in
    /// `tz`, or None if it names none in the next `HORIZON_YEARS` (e.g.
    /// `0 0 30 2 *`).
    pub fn next_after(&self, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
        // Local times map to instants in order (see `resolve`), and no local
        // time before t's own maps after t, so scanning from t's local
        // minute finds the first one.
        let mut local = tz.to_datetime(t);
        local = local.date().at(local.hour(), local.minute(), 0, 0);
        loop {
            let cand = self.next_local(local)?;
            let at = resolve(tz, cand);
            if at > t {
                return Some(at);
            }
            local = cand.checked_add(jiff::Span::new().minutes(1)).ok()?;
        }
    }
}

/// The instant a local time fires at: itself, the end of a spring-forward
/// gap it falls in, or the first of the two instants a fall-back repeats.
/// This keeps the order of local times, so firings never go backwards.
pub fn resolve(tz: &TimeZone, local: DateTime) -> Timestamp {
    let amb = tz.to_ambiguous_timestamp(local);
    match amb.offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local),
        // The fold's earlier instant is the one with the offset before it.
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local),
        // `local - after` lies before the transition, `local - before` after
        // it: the transition itself is the first instant after the gap.
        AmbiguousOffset::Gap { before, after } => after
            .to_timestamp(local)
            .ok()
            .and_then(|t| tz.following(t).next())
            .map(|tr| Ok(tr.timestamp()))
            .unwrap_or_else(|| before.to_timestamp(local)),
    }
    .unwrap_or(Timestamp::MAX)
}

/// A time zone by IANA name from the database compiled into the binary.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    if name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| {
        format!("{name:?} is not an IANA time zone name (such as Europe/Berlin, America/New_York or UTC)")
    })
}

/// Convenience for tests and callers with a civil date.
pub fn local(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> DateTime {
    date(y, mo, d).at(h, mi, 0, 0)
}

#[cfg(test)]
mod tests {
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
}
