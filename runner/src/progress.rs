//! How far a long stage is (provisioning users, starting runners, the run
//! itself), in one shape for the status, `kubectl barrage watch` and the
//! CLI's progress bar.
//!
//! Pure parts only: the progress line a setup prints and the operator reads
//! back from the setup pod's log ([`Progress::line`], [`parse_last`]), the
//! rate and estimate arithmetic ([`rate`], [`remaining_secs`]) and the text
//! for people ([`text`], [`bar`]). `show` prints them for the CLI.
//!
//! # The progress line
//!
//! ```text
//! barrage-progress done=412 failed=3 total=1000
//! ```
//!
//! One line (ending in a newline) on stdout or stderr: `done` users finished
//! (failed ones too), of which `failed` failed, of `total`. `done` is
//! required; `failed` and `total` may be left out. A custom setup image may
//! print the same lines for the operator to show its progress. The reader is
//! strict, because a log is what a container chose to print: a line counts
//! only when it is whole (ends in a newline), at most [`MAX_LINE`] bytes,
//! starts with `barrage-progress ` and holds only `key=value` words, its
//! numbers plain decimal (no sign, at most 19 digits) with `failed <= done
//! <= total`; words with other keys (lowercase letters and `_`) are ignored,
//! so later versions may add some. The last valid line of the log wins.

pub mod show;

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Progress of one stage. `done` counts finished units (failed ones too).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// `setup`, `start` or `run`.
    pub stage: String,
    /// `users`, `runners`, `seconds` or `iterations`.
    pub unit: String,
    pub done: u64,
    /// Of `done`, how many failed (setup users).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u64,
    /// How many there are in all, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What every progress line starts with.
pub const LINE_PREFIX: &str = "barrage-progress";
/// The longest progress line read back, newline excluded.
pub const MAX_LINE: usize = 256;
/// How far back a rate looks: an exponentially weighted average whose
/// weight halves about every 20 s (a time constant of 30 s).
pub const RATE_WINDOW_SECS: f64 = 30.0;
/// The longest estimate given (a stalled rate would promise centuries).
const MAX_REMAINING_SECS: u64 = 100 * 24 * 3600;

impl Progress {
    /// The setup's progress: `done` users finished, `failed` of them failed.
    pub fn setup(done: u64, failed: u64, total: Option<u64>) -> Progress {
        Progress {
            stage: "setup".into(),
            unit: "users".into(),
            done,
            failed,
            total,
        }
    }

    /// The machine-readable line (see the module docs), without newline.
    pub fn line(&self) -> String {
        let mut s = format!("{LINE_PREFIX} done={}", self.done);
        if self.failed > 0 {
            s += &format!(" failed={}", self.failed);
        }
        if let Some(t) = self.total {
            s += &format!(" total={t}");
        }
        s
    }

    /// Done of total as a fraction in 0..=1, when the total is known.
    pub fn fraction(&self) -> Option<f64> {
        match self.total {
            Some(0) => Some(1.0),
            Some(t) => Some((self.done as f64 / t as f64).min(1.0)),
            None => None,
        }
    }
}

/// The last valid progress line of `log` (see the module docs), as the
/// setup's progress.
pub fn parse_last(log: &str) -> Option<Progress> {
    // Only whole lines: a tail cut by a byte limit must not read as a
    // smaller count ("done=41" of "done=412").
    let whole = match log.rfind('\n') {
        Some(end) => &log[..end],
        None => return None,
    };
    whole.rsplit('\n').find_map(parse_line)
}

/// One progress line, without its newline.
pub fn parse_line(line: &str) -> Option<Progress> {
    if line.len() > MAX_LINE {
        return None;
    }
    let mut words = line.split(' ');
    if words.next() != Some(LINE_PREFIX) {
        return None;
    }
    let (mut done, mut failed, mut total) = (None, None, None);
    for w in words {
        let (k, v) = w.split_once('=')?;
        let slot = match k {
            "done" => &mut done,
            "failed" => &mut failed,
            "total" => &mut total,
            _ if valid_key(k) && !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()) => {
                continue;
            }
            _ => return None,
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(number(v)?);
    }
    let (done, failed) = (done?, failed.unwrap_or(0));
    if failed > done || total.is_some_and(|t| done > t) {
        return None;
    }
    Some(Progress::setup(done, failed, total))
}

fn valid_key(k: &str) -> bool {
    (1..=32).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

fn number(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Units per second after `advanced` more units in `secs` seconds, given
/// the previous estimate: an exponentially weighted average over about
/// [`RATE_WINDOW_SECS`], so a stall lowers it and a burst does not swing it.
/// None until the first unit is done.
pub fn rate(prev: Option<f64>, advanced: u64, secs: f64) -> Option<f64> {
    if !(secs > 0.0 && secs.is_finite()) {
        return prev;
    }
    let now = advanced as f64 / secs;
    match prev {
        None if advanced == 0 => None,
        None => Some(now),
        Some(r) => {
            let w = 1.0 - (-secs / RATE_WINDOW_SECS).exp();
            Some(r + (now - r) * w)
        }
    }
}

/// Seconds left at `per_second` to go from `done` to `total`: 0 when done,
/// None without a total or a rate.
pub fn remaining_secs(total: Option<u64>, done: u64, per_second: Option<f64>) -> Option<u64> {
    let left = total?.saturating_sub(done);
    if left == 0 {
        return Some(0);
    }
    let r = per_second.filter(|r| *r > 0.0 && r.is_finite())?;
    let secs = (left as f64 / r).ceil();
    (secs <= MAX_REMAINING_SECS as f64).then_some(secs as u64)
}

/// Whole seconds for people: "45s", "1m23s", "2h05m".
pub fn clock(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// A rate for people: "7.1/s", "250/s".
fn per_second_text(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.1}/s")
    } else {
        format!("{r:.0}/s")
    }
}

/// One line for people, e.g. "412/1000 users (3 failed), 7.1/s, about
/// 1m23s left", or for the run "1m10s of 5m00s, 3m50s left".
pub fn text(p: &Progress, per_second: Option<f64>, remaining: Option<u64>) -> String {
    if p.unit == "seconds" {
        let mut s = clock(p.done);
        if let Some(t) = p.total {
            s += &format!(" of {}", clock(t));
        }
        if let Some(r) = remaining.filter(|r| *r > 0) {
            s += &format!(", {} left", clock(r));
        }
        return s;
    }
    let mut s = match p.total {
        Some(t) => format!("{}/{t} {}", p.done, p.unit),
        None => format!("{} {}", p.done, p.unit),
    };
    if p.failed > 0 {
        s += &format!(" ({} failed)", p.failed);
    }
    if let Some(r) = per_second {
        s += &format!(", {}", per_second_text(r));
    }
    if let Some(r) = remaining.filter(|r| *r > 0) {
        s += &format!(", about {} left", clock(r));
    }
    s
}

/// A progress bar `width` cells wide, its percentage, and [`text`]:
/// "[########............]  41% 412/1000 users, ...". Without a total, the
/// text alone.
pub fn bar(p: &Progress, per_second: Option<f64>, remaining: Option<u64>, width: usize) -> String {
    let t = text(p, per_second, remaining);
    let Some(f) = p.fraction() else {
        return t;
    };
    let full = ((f * width as f64).floor() as usize).min(width);
    format!(
        "[{}{}] {:>3.0}% {t}",
        "#".repeat(full),
        ".".repeat(width - full),
        (f * 100.0).floor()
    )
}

/// A rate kept over time for a display that samples a count (the CLI's
/// bar): [`rate`] between successive samples.
#[derive(Clone, Debug, Default)]
pub struct Meter {
    last: Option<(Duration, u64)>,
    per_second: Option<f64>,
}

impl Meter {
    /// Takes the count `done` seen at `at` (time since any fixed start);
    /// returns the rate now.
    pub fn sample(&mut self, at: Duration, done: u64) -> Option<f64> {
        if let Some((t, d)) = self.last {
            if done < d {
                // A count that went back is another attempt: start over.
                self.per_second = None;
            } else if at > t {
                self.per_second = rate(self.per_second, done - d, (at - t).as_secs_f64());
            } else {
                return self.per_second;
            }
        }
        self.last = Some((at, done));
        self.per_second
    }
}

#[cfg(test)]
mod tests;
