//! A closed-model virtual user's life: its scenario's `onStart` once when
//! it starts, whose vars and captures it keeps as `{{ user.NAME }}` for
//! every later request, and its `onStop` once when it ends (at the end of
//! the test, within the graceful stop, or when a ramp down parks it; an
//! unparked user starts again with a fresh onStart).
//!
//! The onStart failure rule: the failed step is counted as any request is;
//! the user waits its think time and tries onStart again, at most
//! `ON_START_ATTEMPTS` times in a row, then it is retired for the rest of
//! the test. The snapshot's `users` counts users started, onStart failures
//! and users retired, and a run with retired users says so in its warnings.

use std::sync::atomic::Ordering;

use super::{Runner, client::Conn};
use crate::compile::ON_START_ATTEMPTS;

/// Why a user is gone for good.
pub(super) enum Gone {
    /// Its onStart failed `ON_START_ATTEMPTS` times in a row.
    Retired,
    /// `unique` data ran out: the test stops.
    Exhausted,
}

pub(super) struct Life<'a> {
    runner: &'a Runner,
    sc: usize,
    shard: usize,
    /// The user's variables while it is started (empty without onStart).
    vars: Option<Vec<Option<String>>>,
    /// onStart failures in a row.
    failures: u32,
}

impl<'a> Life<'a> {
    pub fn new(runner: &'a Runner, sc: usize, shard: usize) -> Life<'a> {
        Life {
            runner,
            sc,
            shard,
            vars: None,
            failures: 0,
        }
    }

    /// Starts the user if it is not started: runs onStart. `Ok(false)`:
    /// onStart failed and the user waited its think time (or the scenario
    /// stopped); the caller tries again.
    pub async fn start(&mut self, conn: &mut Option<Conn>) -> Result<bool, Gone> {
        if self.vars.is_some() {
            return Ok(true);
        }
        let scenario = &self.runner.plan.scenarios[self.sc];
        let Some(entry) = &scenario.on_start else {
            self.vars = Some(Vec::new());
            return Ok(true);
        };
        let users = &self.runner.recorder.users;
        let outcome = self
            .runner
            .pass(
                self.sc,
                entry,
                conn,
                self.shard,
                None,
                &[],
                &self.runner.scenario_stops[self.sc],
            )
            .await;
        match outcome {
            Err(_) => Err(Gone::Exhausted),
            Ok((_, Ok(vars))) => {
                users.started.fetch_add(1, Ordering::Relaxed);
                self.failures = 0;
                self.vars = Some(vars);
                Ok(true)
            }
            Ok((_, Err(_))) => {
                let stop = &self.runner.scenario_stops[self.sc];
                // Cut off by the end of the test: counted as interrupted,
                // not held against the user.
                if stop.is_set() {
                    return Ok(false);
                }
                users.on_start_failures.fetch_add(1, Ordering::Relaxed);
                self.failures += 1;
                if self.failures >= ON_START_ATTEMPTS {
                    users.retired.fetch_add(1, Ordering::Relaxed);
                    return Err(Gone::Retired);
                }
                stop.sleep(scenario.load.think_time.sample()).await;
                Ok(false)
            }
        }
    }

    /// The user's variables, for `user.NAME`.
    pub fn vars(&self) -> &[Option<String>] {
        self.vars.as_deref().unwrap_or(&[])
    }

    /// Ends the user if it is started: runs onStop with its variables.
    pub async fn end(&mut self, conn: &mut Option<Conn>) {
        let Some(vars) = self.vars.take() else {
            return;
        };
        if let Some(entry) = &self.runner.plan.scenarios[self.sc].on_stop {
            // Its requests count like any; a failure ends nothing more. It
            // usually runs once the scenario has ended, so its pauses and
            // repeat rounds are cut only by an interrupt (Ctrl-C, a pod
            // going away); the graceful stop bounds it otherwise.
            let _ = self
                .runner
                .pass(
                    self.sc,
                    entry,
                    conn,
                    self.shard,
                    None,
                    &vars,
                    &self.runner.interrupted,
                )
                .await;
        }
    }
}
