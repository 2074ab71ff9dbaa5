//! The CLI's progress display (`barrage-runner setup`): a bar redrawn in
//! place on a terminal, plain lines when piped, and the machine-readable
//! progress lines the operator reads from a setup pod's log.
//!
//! Rates, so that neither a terminal nor a log floods:
//! - the bar is redrawn at every sample (the caller samples 4 times a
//!   second);
//! - a plain line is printed each time another 5% of the total is done, at
//!   most one a second, and at least one every 30 s while nothing moves;
//! - a progress line each time the count moved, at most one every 2 s, and
//!   at least one every 30 s.
//!
//! The last sample ([`Show::finish`]) prints all of them once more.

use std::{io::Write, time::Duration};

use super::{Meter, Progress, bar, remaining_secs, text};

/// Cells of the bar.
const BAR_WIDTH: usize = 24;

/// When the next line is due: once `step` more units are done and `min`
/// has passed, or once `max` has passed.
#[derive(Clone, Debug)]
struct Pace {
    min: Duration,
    max: Duration,
    step: u64,
    last: Option<(Duration, u64)>,
}

impl Pace {
    fn due(&mut self, at: Duration, done: u64) -> bool {
        let due = match self.last {
            None => true,
            Some((t, d)) => {
                let gap = at.saturating_sub(t);
                gap >= self.max || (gap >= self.min && done >= d.saturating_add(self.step))
            }
        };
        if due {
            self.last = Some((at, done));
        }
        due
    }
}

/// Where progress goes: people's view on `human` (a bar when `bar`, else
/// plain lines), progress lines on `machine`. Either may be absent.
pub struct Show<H: Write, M: Write> {
    human: Option<H>,
    bar: bool,
    machine: Option<M>,
    meter: Meter,
    human_pace: Pace,
    machine_pace: Pace,
}

impl<H: Write, M: Write> Show<H, M> {
    /// `total` sets the plain lines' step (5% of it).
    pub fn new(human: Option<H>, bar: bool, machine: Option<M>, total: Option<u64>) -> Self {
        let step = total.map_or(1, |t| (t / 20).max(1));
        Show {
            human,
            bar,
            machine,
            meter: Meter::default(),
            human_pace: Pace {
                min: Duration::from_secs(1),
                max: Duration::from_secs(30),
                step,
                last: None,
            },
            machine_pace: Pace {
                min: Duration::from_secs(2),
                max: Duration::from_secs(30),
                step: 1,
                last: None,
            },
        }
    }

    /// A sample of the count at `at` (time since the stage began).
    pub fn update(&mut self, at: Duration, p: &Progress) {
        self.emit(at, p, false);
    }

    /// The final count: every output shows it, and the bar's line ends.
    pub fn finish(&mut self, at: Duration, p: &Progress) {
        self.emit(at, p, true);
    }

    fn emit(&mut self, at: Duration, p: &Progress, last: bool) {
        let per_second = self.meter.sample(at, p.done);
        let remaining = remaining_secs(p.total, p.done, per_second);
        // Output is best effort: a closed pipe must not stop the setup.
        if let Some(h) = &mut self.human {
            if self.bar {
                let _ = write!(
                    h,
                    "\r  {}\x1b[K{}",
                    bar(p, per_second, remaining, BAR_WIDTH),
                    if last { "\n" } else { "" }
                );
            } else if self.human_pace.due(at, p.done) || last {
                let _ = writeln!(h, "  {}", text(p, per_second, remaining));
            }
            let _ = h.flush();
        }
        if let Some(m) = &mut self.machine
            && (self.machine_pace.due(at, p.done) || last)
        {
            let _ = writeln!(m, "{}", p.line());
            let _ = m.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(done: u64, failed: u64) -> Progress {
        Progress::setup(done, failed, Some(100))
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn piped_lines_come_every_five_percent_at_most_once_a_second() {
        let mut show = Show::new(Some(Vec::new()), false, Some(Vec::new()), Some(100));
        // 0.25 s samples, one user more each time: 5% takes 1.25 s.
        for i in 0..=40u64 {
            show.update(secs(i as f64 * 0.25), &p(i, 0));
        }
        show.finish(secs(10.5), &p(100, 2));
        let human = String::from_utf8(show.human.take().unwrap()).unwrap();
        let lines: Vec<&str> = human.lines().collect();
        // t=0 (0 done), then every 5 users: 5, 10, ... 40 (1.25 s apart),
        // and the final line.
        assert_eq!(lines.len(), 1 + 8 + 1, "{human}");
        assert_eq!(lines[0], "  0/100 users");
        assert!(lines[1].starts_with("  5/100 users, 4.0/s"), "{}", lines[1]);
        assert!(
            lines[9].starts_with("  100/100 users (2 failed)"),
            "{human}"
        );
        assert!(!human.contains('\r') && !human.contains('\x1b'));
        let machine = String::from_utf8(show.machine.take().unwrap()).unwrap();
        let m: Vec<&str> = machine.lines().collect();
        // Every 2 s over 10 s of samples (0, 2, 4, 6, 8, 10), and the last.
        assert_eq!(m.len(), 6 + 1, "{machine}");
        assert_eq!(m[0], "barrage-progress done=0 total=100");
        assert_eq!(m[1], "barrage-progress done=8 total=100");
        assert_eq!(m[6], "barrage-progress done=100 failed=2 total=100");
        assert_eq!(super::super::parse_last(&machine), Some(p(100, 2)));
    }

    #[test]
    fn a_stall_still_prints_every_thirty_seconds() {
        let mut show = Show::new(Some(Vec::new()), false, Some(Vec::new()), Some(100));
        for i in 0..=240u64 {
            show.update(secs(i as f64 * 0.25), &p(3, 0));
        }
        let human = String::from_utf8(show.human.take().unwrap()).unwrap();
        // t = 0, 30 and 60 s.
        assert_eq!(human.lines().count(), 3, "{human}");
        let machine = String::from_utf8(show.machine.take().unwrap()).unwrap();
        assert_eq!(machine.lines().count(), 3, "{machine}");
    }

    #[test]
    fn a_terminal_gets_one_bar_redrawn_in_place() {
        let mut show: Show<Vec<u8>, Vec<u8>> = Show::new(Some(Vec::new()), true, None, Some(100));
        show.update(secs(0.0), &p(0, 0));
        show.update(secs(1.0), &p(50, 1));
        show.finish(secs(2.0), &p(100, 1));
        let out = String::from_utf8(show.human.take().unwrap()).unwrap();
        assert_eq!(out.matches('\r').count(), 3);
        assert_eq!(out.matches('\n').count(), 1);
        assert!(
            out.ends_with("100/100 users (1 failed), 50/s\x1b[K\n"),
            "{out:?}"
        );
        assert!(
            out.contains("]  50% 50/100 users (1 failed), 50/s, about 1s left"),
            "{out:?}"
        );
    }
}
