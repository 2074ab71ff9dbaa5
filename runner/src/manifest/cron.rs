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
mod tests;
