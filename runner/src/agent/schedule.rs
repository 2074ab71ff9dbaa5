//! The agent's start/stop state machine, kept free of I/O so every
//! transition is unit-tested, plus the wall-clock sleep that lines up the
//! start of every runner pod.
//!
//! The rules come from the operator's side of the protocol: it may crash and
//! replay its requests at any time, so a repeated `/start` with the same
//! instant is harmless, a different instant is refused once one is set, and
//! a stopped runner never starts afterwards.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::engine::Recorder;

/// Where a runner pod is in its one and only run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Plan compiled, waiting for `/start`.
    Ready,
    /// Start instant known, not reached yet.
    Scheduled,
    Running,
    /// The load ended (planned end, `/stop`, or cancelled before starting).
    Finished,
}

/// What a `/start` request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOutcome {
    /// First start: the caller must now launch the wait-then-run task.
    Scheduled,
    /// The same instant again (an operator retry): nothing to do.
    AlreadyScheduled,
    /// A different instant than the one accepted, or stopped before any.
    Conflict,
}

/// What a `/stop` request must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// Nothing ran and nothing will: mark the results finished and wake the
    /// waiting start task so it gives up.
    Cancelled,
    /// The load is running: trigger the runner's graceful stop.
    Stopping,
    /// Already finished: nothing to do.
    Finished,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub state: AgentState,
    pub start_at_us: Option<u64>,
    pub finished_us: Option<u64>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            state: AgentState::Ready,
            start_at_us: None,
            finished_us: None,
        }
    }
}

impl Schedule {
    pub fn request_start(&mut self, at_us: u64) -> StartOutcome {
        match (self.state, self.start_at_us) {
            (AgentState::Ready, _) => {
                self.state = AgentState::Scheduled;
                self.start_at_us = Some(at_us);
                StartOutcome::Scheduled
            }
            (_, Some(prev)) if prev == at_us => StartOutcome::AlreadyScheduled,
            _ => StartOutcome::Conflict,
        }
    }

    /// The start instant arrived; false when a stop got there first, in
    /// which case the load must not run.
    pub fn begin(&mut self) -> bool {
        if self.state == AgentState::Scheduled {
            self.state = AgentState::Running;
            true
        } else {
            false
        }
    }

    /// The runner's `run()` returned.
    pub fn finish(&mut self, now_us: u64) {
        self.state = AgentState::Finished;
        self.finished_us.get_or_insert(now_us);
    }

    pub fn request_stop(&mut self, now_us: u64) -> StopOutcome {
        match self.state {
            AgentState::Ready | AgentState::Scheduled => {
                self.finish(now_us);
                StopOutcome::Cancelled
            }
            // `finish` follows when `run()` returns, after in-flight work.
            AgentState::Running => StopOutcome::Stopping,
            AgentState::Finished => StopOutcome::Finished,
        }
    }
}

pub fn unix_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// How long from `now_us` until `at_us`; zero once it has passed.
pub fn time_until(at_us: u64, now_us: u64) -> Duration {
    Duration::from_micros(at_us.saturating_sub(now_us))
}

/// Above this remaining wait, sleep only part of the way and re-read the
/// wall clock: a long wait must follow clock adjustments (NTP) that happen
/// meanwhile, since the wall clock is what all pods share.
const COARSE_WAIT: Duration = Duration::from_millis(200);
const COARSE_MARGIN: Duration = Duration::from_millis(100);

/// How far behind the wall clock the recorder's own clock mapping may be
/// before we stop waiting for it (it maps Instants to unix time from a pair
/// taken when the runner was built; the two only drift apart over hours).
const MAX_RECORDER_LAG: Duration = Duration::from_millis(50);

/// Sleeps until the wall-clock instant `at_us` (unix µs); returns at once if
/// it has passed. tokio timers never fire early, so the load starts at or
/// within about a millisecond after `at_us`.
pub async fn sleep_until_unix(at_us: u64, recorder: &Recorder) {
    loop {
        let left = time_until(at_us, unix_now_us());
        if left > COARSE_WAIT {
            tokio::time::sleep(left - COARSE_MARGIN).await;
            continue;
        }
        // SystemTime -> Instant, read as close together as possible.
        tokio::time::sleep_until((Instant::now() + left).into()).await;
        break;
    }
    // Reports show the start through the recorder's mapping; make that agree
    // too, so a report never shows a runner starting before `atUs`.
    let lag = time_until(at_us, recorder.unix_us(Instant::now()));
    if lag > MAX_RECORDER_LAG {
        tracing::warn!(
            ?lag,
            "runner clock mapping lags the wall clock; starting by the wall clock"
        );
    } else if !lag.is_zero() {
        tokio::time::sleep(lag).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_is_accepted_once_and_repeats_are_recognised() {
        let mut s = Schedule::default();
        assert_eq!(s.request_start(1_000), StartOutcome::Scheduled);
        assert_eq!(s.state, AgentState::Scheduled);
        assert_eq!(s.request_start(1_000), StartOutcome::AlreadyScheduled);
        assert_eq!(s.request_start(2_000), StartOutcome::Conflict);
        assert_eq!(s.start_at_us, Some(1_000));
        assert!(s.begin());
        assert_eq!(s.state, AgentState::Running);
        assert_eq!(s.request_start(1_000), StartOutcome::AlreadyScheduled);
        assert_eq!(s.request_start(999), StartOutcome::Conflict);
        s.finish(5_000);
        assert_eq!(s.state, AgentState::Finished);
        assert_eq!(s.finished_us, Some(5_000));
        assert_eq!(s.request_start(1_000), StartOutcome::AlreadyScheduled);
        assert_eq!(s.request_start(3_000), StartOutcome::Conflict);
    }

    #[test]
    fn stopping_before_the_start_cancels_it_for_good() {
        let mut s = Schedule::default();
        s.request_start(1_000);
        assert_eq!(s.request_stop(500), StopOutcome::Cancelled);
        assert_eq!(s.state, AgentState::Finished);
        assert_eq!(s.finished_us, Some(500));
        // The start task wakes up later and must not run the load.
        assert!(!s.begin());
        assert_eq!(s.state, AgentState::Finished);
        assert_eq!(s.request_stop(600), StopOutcome::Finished);
        assert_eq!(s.finished_us, Some(500));
    }

    #[test]
    fn stopping_a_never_scheduled_runner_means_it_never_starts() {
        let mut s = Schedule::default();
        assert_eq!(s.request_stop(10), StopOutcome::Cancelled);
        assert_eq!(s.request_start(1_000), StartOutcome::Conflict);
        assert_eq!(s.start_at_us, None);
    }

    #[test]
    fn stopping_a_running_load_waits_for_it_to_end() {
        let mut s = Schedule::default();
        s.request_start(1_000);
        assert!(s.begin());
        assert_eq!(s.request_stop(2_000), StopOutcome::Stopping);
        assert_eq!(s.state, AgentState::Running);
        assert_eq!(s.finished_us, None);
        s.finish(2_500);
        assert_eq!(s.finished_us, Some(2_500));
    }

    #[test]
    fn time_until_saturates_once_passed() {
        assert_eq!(time_until(1_500, 1_000), Duration::from_micros(500));
        assert_eq!(time_until(1_000, 1_500), Duration::ZERO);
    }

    #[test]
    fn states_serialize_lowercase() {
        assert_eq!(
            serde_json::to_string(&AgentState::Scheduled).unwrap(),
            "\"scheduled\""
        );
        let s: AgentState = serde_json::from_str("\"finished\"").unwrap();
        assert_eq!(s, AgentState::Finished);
    }
}
