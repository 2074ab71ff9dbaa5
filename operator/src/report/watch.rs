//! `kubectl barrage watch NAME`: follows one LoadTest to its end (`follow`
//! holds the Kubernetes side: a watch on that one object), then prints its
//! summary and exits with its verdict's status ([`exit_code`]).
//!
//! Everything here is a pure function of the LoadTest and the time: the
//! view ([`view`]: phase, elapsed and remaining time, runners, req/s, p95,
//! errors, each threshold's state, `status.progress`), its one-line form for
//! logs ([`line`]), and [`Screen`], which redraws the view in place on a
//! terminal, or prints a line per change when piped: at most one every
//! [`LINE_EVERY`], except that a new phase is printed at once.

pub mod follow;

use std::{io::Write, time::Duration};

use barrage_runner::{progress::clock, thresholds::plan_sources};
use k8s_openapi::jiff::Timestamp;

use super::{instant, ms};
use crate::crd::{LoadTest, LoadTestStatus, Phase};

/// Exit status when the verdict is Failed (as `report --fail-on-verdict`).
pub const EXIT_FAILED: u8 = 99;
/// Exit status when the test could not be judged, was deleted, the watch
/// failed or timed out.
pub const EXIT_ERROR: u8 = 1;
/// The least time between two plain lines of the same phase.
pub const LINE_EVERY: Duration = Duration::from_secs(5);

/// The exit status of a finished test: 0 Passed, 99 Failed, 1 when it
/// ended without a verdict (a setup or a runner that failed before any
/// judgement). None while it runs.
pub fn exit_code(st: &LoadTestStatus) -> Option<u8> {
    if !st.phase.is_terminal() {
        return None;
    }
    Some(match (st.phase, st.verdict.as_deref()) {
        (_, Some("Failed")) => EXIT_FAILED,
        (Phase::Succeeded, _) => 0,
        _ => EXIT_ERROR,
    })
}

/// Seconds from the start to `now` (or to the end, once finished).
fn elapsed(st: &LoadTestStatus, now: Timestamp) -> Option<u64> {
    let start: Timestamp = st.started_at.as_deref()?.parse().ok()?;
    let end = st
        .finished_at
        .as_deref()
        .and_then(|f| f.parse::<Timestamp>().ok())
        .unwrap_or(now);
    let secs = end.duration_since(start).as_secs_f64();
    Some(secs.max(0.0) as u64)
}

/// Time since the start, and what the run's progress says is left; before
/// the start, how long the phase has lasted.
fn clock_text(st: &LoadTestStatus, now: Timestamp) -> Option<String> {
    let Some(e) = elapsed(st, now) else {
        if st.phase.is_terminal() {
            return None;
        }
        let since: Timestamp = st.phase_since.as_deref()?.parse().ok()?;
        let secs = now.duration_since(since).as_secs_f64().max(0.0) as u64;
        return Some(format!("{} in this phase", clock(secs)));
    };
    let left = st
        .progress
        .as_ref()
        .filter(|p| p.stage == "run" && !st.phase.is_terminal())
        .and_then(|p| p.remaining_seconds);
    Some(match left {
        Some(l) => format!("{} elapsed, {} left", clock(e), clock(l)),
        None => format!("{} elapsed", clock(e)),
    })
}

fn errors_text(st: &LoadTestStatus) -> String {
    match &st.error_rate {
        Some(r) => format!("{} ({r})", st.errors),
        None => st.errors.to_string(),
    }
}

/// Each threshold with its state: judged (✓/✗ and the observed value) once
/// the status has outcomes, else waiting for the end.
fn thresholds(lt: &LoadTest) -> Vec<String> {
    let st = lt.status.clone().unwrap_or_default();
    if !st.thresholds.is_empty() {
        return st
            .thresholds
            .iter()
            .map(|o| {
                let mark = if o.passed { "✓" } else { "✗" };
                let default = if o.default { " (default)" } else { "" };
                format!("{mark} {}{default}: observed {}", o.source, o.observed_text)
            })
            .collect();
    }
    plan_sources(lt.spec.plan.thresholds.as_deref())
        .into_iter()
        .map(|(s, default)| {
            let default = if default { " (default)" } else { "" };
            let abort = if s.contains("abortOnFail") {
                "checked live, "
            } else {
                ""
            };
            format!("· {s}{default}: {abort}judged at the end")
        })
        .collect()
}

/// One row of the view. Control characters (a newline in a message, say)
/// become spaces: each row must stay one line for the redraw to count them.
fn row(label: &str, value: &str) -> String {
    let dots = ".".repeat(13usize.saturating_sub(label.chars().count()));
    let value: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("  {label} {dots} {value}")
}

/// The view redrawn on a terminal, one row per line.
pub fn view(lt: &LoadTest, title: &str, now: Timestamp) -> Vec<String> {
    let st = lt.status.clone().unwrap_or_default();
    let mut out = vec![row("loadtest", title)];
    let mut phase = format!("{:?}", st.phase);
    if let Some(c) = clock_text(&st, now) {
        phase += &format!(" · {c}");
    }
    if let Some(v) = &st.verdict {
        phase += &format!(" · verdict {v}");
    }
    if lt.status.is_none() {
        phase = "no status yet (is the operator watching this namespace?)".into();
    }
    out.push(row("phase", &phase));
    if let Some(p) = &st.progress {
        out.push(row("progress", &format!("{} {}", p.stage, p.text)));
    }
    if let Some(m) = &st.message {
        out.push(row("message", m));
    }
    out.push(row(
        "runners",
        &format!(
            "{}/{} ready · {} finished",
            st.runners_ready, lt.spec.runners, st.runners_finished
        ),
    ));
    if st.started_at.is_some() {
        out.push(row(
            "throughput",
            &format!("{:.1} req/s · {} requests", st.rps, st.requests),
        ));
        let p95 = st
            .latency_ms
            .as_ref()
            .map_or_else(|| "-".to_string(), |l| format!("{} ms", ms(l.p95)));
        out.push(row("latency p95", &p95));
        out.push(row("errors", &errors_text(&st)));
    }
    let th = thresholds(lt);
    if !th.is_empty() {
        out.push("  thresholds".into());
        out.extend(th.into_iter().map(|t| format!("    {t}")));
    }
    out
}

/// The view as one line for logs: phase, clock, runners, figures, progress.
pub fn line(lt: &LoadTest, now: Timestamp) -> String {
    let st = lt.status.clone().unwrap_or_default();
    let mut parts = vec![format!("{:?}", st.phase)];
    if let Some(c) = clock_text(&st, now) {
        parts.push(c);
    }
    parts.push(format!("runners {}/{}", st.runners_ready, lt.spec.runners));
    if st.started_at.is_some() {
        parts.push(format!("{:.1} req/s", st.rps));
        if let Some(l) = &st.latency_ms {
            parts.push(format!("p95 {} ms", ms(l.p95)));
        }
        parts.push(format!("errors {}", errors_text(&st)));
    }
    if let Some(p) = &st.progress {
        parts.push(format!("{} {}", p.stage, p.text));
    }
    if let Some(v) = &st.verdict {
        parts.push(format!("verdict {v}"));
    }
    format!("{} {}", now_text(now), parts.join(" · "))
}

fn now_text(now: Timestamp) -> String {
    instant(&now.to_string())
}

/// Where the view goes: redrawn in place on a terminal, else plain lines.
pub struct Screen<W: Write> {
    out: W,
    terminal: bool,
    /// Rows drawn last time (terminal), to move back over them.
    drawn: usize,
    /// The last plain line's phase, time and text (without its time).
    last: Option<(Phase, Timestamp, String)>,
    /// A change not printed yet (plain lines), to print when due.
    pending: bool,
}

impl<W: Write> Screen<W> {
    pub fn new(out: W, terminal: bool) -> Self {
        Screen {
            out,
            terminal,
            drawn: 0,
            last: None,
            pending: false,
        }
    }

    /// Shows `lt` as of `now`: a redraw, or a line if one is due.
    pub fn show(&mut self, lt: &LoadTest, title: &str, now: Timestamp) {
        if self.terminal {
            let rows = view(lt, title, now);
            // Line wrap off while drawing: a row wider than the terminal is
            // cut rather than wrapped, so the rows to move back over are
            // the rows drawn.
            let mut s = String::from("\x1b[?7l");
            if self.drawn > 0 {
                s += &format!("\x1b[{}A\r\x1b[J", self.drawn);
            }
            for r in &rows {
                s += r;
                s += "\n";
            }
            s += "\x1b[?7h";
            self.drawn = rows.len();
            let _ = self.out.write_all(s.as_bytes());
            let _ = self.out.flush();
            return;
        }
        let phase = lt.status.as_ref().map_or(Phase::Pending, |s| s.phase);
        let text = line(lt, now);
        // The line without its leading time, to tell a change.
        let body = text.split_once(' ').map_or("", |(_, b)| b).to_string();
        let due = match &self.last {
            None => true,
            Some((p, _, b)) if *p != phase => b != &body,
            Some((_, _, b)) if b == &body => false,
            Some((_, at, _)) => {
                now.duration_since(*at).as_secs_f64() >= LINE_EVERY.as_secs_f64()
                    || phase.is_terminal()
            }
        };
        self.pending = !due && self.last.as_ref().is_some_and(|(_, _, b)| b != &body);
        if due {
            let _ = writeln!(self.out, "{text}");
            let _ = self.out.flush();
            self.last = Some((phase, now, body));
        }
    }

    /// Whether a change waits to be printed (plain lines): call [`show`]
    /// again when [`LINE_EVERY`] has passed.
    ///
    /// [`show`]: Screen::show
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// Whether [`show`](Screen::show) should be called on a clock tick
    /// without a change: on a terminal (the clock moves), or for a pending
    /// line.
    pub fn wants_tick(&self) -> bool {
        self.terminal || self.pending
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests;
