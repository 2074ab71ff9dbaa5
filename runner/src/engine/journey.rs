//! One pass through a list of compiled steps: requests in order, pauses,
//! and repeat blocks (a number of rounds drawn per pass, `interval` between
//! rounds). `Runner::iterate` runs an entry of the mix with it; a virtual
//! user's onStart and onStop run the same way.
//!
//! A failed request ends the pass there (the later steps would use what it
//! did not give). The end of the run ends a pass at its next pause or
//! repeat round, without starting new requests; a request already under
//! way finishes (or is interrupted) as any other.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::{Failure, Runner, Sample, Stop, client::Conn, pending::Pending, request::Prepared};
use crate::{
    compile::{Repeat, Step, StepKind},
    snapshot::ErrorKind,
    template::{Pkce, RenderCtx},
};

/// What a pass renders its templates from, and the variables it fills.
pub struct Pass<'a> {
    pub record: Option<&'a [String]>,
    /// The virtual user's own variables (`user.NAME`).
    pub user: &'a [Option<String>],
    pub seq: u64,
    pub pkce: &'a Pkce,
    /// The journey's variables by slot: presets, then captures.
    pub vars: Vec<Option<String>>,
    /// The open model's intended start: the first request's latency counts
    /// from it. Taken by that request.
    pub intended: Option<Instant>,
    /// The end of the pass's scenario (or of the whole run): pauses and
    /// repeat rounds end there.
    pub stop: &'a Stop,
}

/// How a pass ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every step ran.
    Done,
    /// A request failed, and the pass stopped there.
    Failed(Failure),
    /// The run stopped during a pause or between rounds of a repeat block:
    /// the pass is incomplete, though every request it sent is counted.
    Stopped,
}

impl Outcome {
    fn is_done(&self) -> bool {
        matches!(self, Outcome::Done)
    }
}

impl Runner {
    /// Runs `steps` in order for one pass; see `Outcome`.
    pub(super) async fn run_steps(
        &self,
        steps: &[StepKind],
        conn: &mut Option<Conn>,
        shard: usize,
        pass: &mut Pass<'_>,
    ) -> Outcome {
        for step in steps {
            let out = match step {
                StepKind::Repeat(r) => self.repeat(r, conn, shard, pass).await,
                other => self.run_one(other, conn, shard, pass).await,
            };
            if !out.is_done() {
                return out;
            }
        }
        Outcome::Done
    }

    /// A repeat block: its rounds, drawn now, with `interval` between them
    /// (none after the last). Stopped at a round's start or before any of
    /// its requests once the run has stopped.
    async fn repeat(
        &self,
        r: &Repeat,
        conn: &mut Option<Conn>,
        shard: usize,
        pass: &mut Pass<'_>,
    ) -> Outcome {
        let rounds = fastrand::u32(r.min..=r.max);
        for round in 0..rounds {
            if round > 0 && pass.stop.sleep(r.interval.sample()).await {
                return Outcome::Stopped;
            }
            for step in &r.steps {
                if pass.stop.is_set() {
                    return Outcome::Stopped;
                }
                let out = self.run_one(step, conn, shard, pass).await;
                if !out.is_done() {
                    return out;
                }
            }
        }
        Outcome::Done
    }

    /// A request or a pause.
    async fn run_one(
        &self,
        step: &StepKind,
        conn: &mut Option<Conn>,
        shard: usize,
        pass: &mut Pass<'_>,
    ) -> Outcome {
        match step {
            StepKind::Request(s) => self.request(s, conn, shard, pass).await,
            StepKind::Sleep(w) => {
                if pass.stop.sleep(w.sample()).await {
                    Outcome::Stopped
                } else {
                    Outcome::Done
                }
            }
            // Never: a repeat block holds requests and pauses only (the
            // plan's types have no deeper nesting).
            StepKind::Repeat(_) => Outcome::Done,
        }
    }

    /// One request, counted however it ends (see `Pending`).
    async fn request(
        &self,
        step: &Step,
        conn: &mut Option<Conn>,
        shard: usize,
        pass: &mut Pass<'_>,
    ) -> Outcome {
        let ctx = RenderCtx {
            record: pass.record,
            vars: &pass.vars,
            user: pass.user,
            seq: pass.seq,
            pkce: pass.pkce,
        };
        // Prepared once per runner; a step the runner did not prepare (none
        // today) is prepared now rather than not sent.
        let built = match self.prepared.get(step.metric).and_then(Option::as_ref) {
            Some(p) => p.build(step, &ctx),
            None => Prepared::new(step, &self.plan.target).build(step, &ctx),
        };
        let start = Instant::now();
        let from = pass.intended.take().unwrap_or(start);
        let sample = Sample {
            metric: step.metric,
            start,
            end: start,
            latency: Duration::ZERO,
            status: None,
            error: None,
            sent: 0,
            received: 0,
            retries: 0,
            check: None,
        };
        // Counted from here however this future ends: finished, or
        // dropped mid-exchange (then as `interrupted`).
        let mut pending = Pending::new(&self.recorder, &self.outstanding, shard, from, sample);
        #[cfg(test)]
        if pass.seq == self.panic_at.load(std::sync::atomic::Ordering::SeqCst) {
            panic!("injected panic at iteration {}", pass.seq);
        }
        let ok = match built {
            // A template rendered into something unsendable: the plan's
            // fault, counted against the request rather than lost.
            Err(_) => {
                pending.sample().error = Some(ErrorKind::Http);
                false
            }
            Ok((req, sent)) => {
                pending.sample().sent = sent;
                self.exchange(conn, shard, step, req, pending.sample(), &mut pass.vars)
                    .await
            }
        };
        let check: Option<Arc<str>> = pending.sample().check.clone();
        let (error, status) = pending.finish();
        if ok {
            return Outcome::Done;
        }
        Outcome::Failed(Failure {
            step: self.plan.names[step.metric].clone(),
            error: error.unwrap_or(ErrorKind::Http),
            status,
            expected: step.expect.clone(),
            check,
        })
    }
}
