//! What one iteration does: the entry picked by weight, its pass (the
//! record, the vars, the steps, the journey's duration) and each request's
//! exchange (redirects, checks, captures) on the user's own HTTP/1.1
//! connection or a stream of the shared HTTP/2 pool. Split from the runner's
//! lifecycle (`mod.rs`) so each reads in one sitting.

use std::{sync::atomic::Ordering, time::Instant};

use super::{
    Exhausted, Failure, Finished, Flow, Runner, Sample, Stop, client, http2, journey, redirect,
    request,
};
use crate::{
    compile::{Entry, MAX_REDIRECTS},
    data::Pick,
    plan::HttpVersion,
    snapshot::ErrorKind,
    template::{Pkce, RenderCtx},
};
use client::Conn;
use journey::{Outcome, Pass};

impl Runner {
    /// One pass through an entry of scenario `sc` picked by weight: a
    /// single request or a whole journey, as the virtual user whose
    /// variables are `user`. `intended` is the open model's scheduled
    /// start, from which the first request's latency is measured.
    pub(super) async fn iterate(
        &self,
        sc: usize,
        conn: &mut Option<Conn>,
        shard: usize,
        intended: Option<Instant>,
        user: &[Option<String>],
    ) -> Flow {
        let scenario = &self.plan.scenarios[sc];
        let r = fastrand::u64(
            ..*scenario
                .cumulative_weights
                .last()
                .expect("at least one request"),
        );
        let entry = &scenario.entries[scenario.cumulative_weights.partition_point(|&c| c <= r)];
        let stop = &self.scenario_stops[sc];
        let Ok((seq, result)) = self
            .pass(sc, entry, conn, shard, intended, user, stop)
            .await
        else {
            return Flow::Exhausted;
        };
        // A pass cut short is not in the journal: provisioning counts it
        // as unfinished.
        let result = match result {
            Ok(vars) => Some(Ok(vars)),
            Err(f) => f.map(Err),
        };
        if let (Some(sink), Some(result)) = (&self.journal, result) {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Finished { seq, result });
        }
        Flow::Continue(entry.think_time)
    }

    /// One pass through `entry` of scenario `sc` (an entry of its mix, or
    /// a user's onStart or onStop): picks its record, renders its vars,
    /// runs its steps and, for a journey, records the whole pass. Returns
    /// the pass's sequence number and its variables (vars and captures), or
    /// the step that failed (None: `stop` cut the pass short). `stop` ends
    /// its pauses and repeat rounds: the scenario's end, or for an onStop
    /// only an interrupt.
    // The pass's inputs are each a different kind of thing (which entry,
    // whose connection and variables, which stop); a struct for them would
    // only move the list.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn pass(
        &self,
        sc: usize,
        entry: &Entry,
        conn: &mut Option<Conn>,
        shard: usize,
        intended: Option<Instant>,
        user: &[Option<String>],
        stop: &Stop,
    ) -> Result<(u64, PassResult), Exhausted> {
        let plan = &self.plan;
        let record = match (&self.selectors[sc], &plan.scenarios[sc].data) {
            (Some(sel), Some(d)) if entry.uses_record => match sel.pick() {
                Pick::Row(i) => Some(d.records.rows[i].as_slice()),
                Pick::Exhausted => {
                    self.recorder.data_exhausted.fetch_add(1, Ordering::Relaxed);
                    return Err(Exhausted);
                }
            },
            _ => None,
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) * plan.slot.count as u64
            + plan.slot.index as u64;
        // Made on first use, then the same for every step of the iteration.
        let pkce = Pkce::default();
        let mut pass = Pass {
            record,
            user,
            seq,
            pkce: &pkce,
            vars: vec![None; entry.var_names.len()],
            intended,
            stop,
        };
        for (slot, t) in &entry.presets {
            let v = t.render(&RenderCtx {
                record,
                vars: &pass.vars,
                user,
                seq,
                pkce: &pkce,
            });
            pass.vars[*slot] = Some(v);
        }
        let began = intended.unwrap_or_else(Instant::now);
        let outcome = self.run_steps(&entry.steps, conn, shard, &mut pass).await;
        // A pass that its scenario's end cut short is neither a journey's
        // duration nor a provisioned record (provisioning counts it as
        // unfinished); every request it sent is counted all the same.
        let result = match outcome {
            Outcome::Stopped => return Ok((seq, Err(None))),
            Outcome::Done => Ok(pass.vars),
            Outcome::Failed(f) => Err(Some(f)),
        };
        if let Some(j) = entry.journey {
            self.recorder
                .record_journey(shard, j, began, Instant::now(), result.is_ok());
        }
        Ok((seq, result))
    }

    /// Sends on `conn` (connecting first if needed), following redirects if
    /// the step says so, and fills in the sample; false when the journey
    /// should not go on. The timeout covers the whole redirect chain.
    pub(super) async fn exchange(
        &self,
        conn: &mut Option<Conn>,
        shard: usize,
        step: &crate::compile::Step,
        req: request::Outgoing,
        sample: &mut Sample,
        vars: &mut [Option<String>],
    ) -> bool {
        let want = request::want(step);
        let mut extra_sent = 0u64;
        // Attempts resent on a fresh connection, and their bytes, go straight
        // into the sample: counted even when the chain then times out or the
        // request is interrupted (the sample is the pending guard's).
        let mut resent = Resent {
            attempts: &mut sample.retries,
            bytes: &mut sample.sent,
        };
        let chain = async {
            let mut res = self
                .send(conn, shard, req.as_bytes(), want, &mut resent)
                .await?;
            if step.follow_redirects {
                let mut received = res.received;
                let mut prev: Option<Vec<u8>> = None;
                for _ in 0..MAX_REDIRECTS {
                    let from = prev.as_deref().unwrap_or(req.as_bytes());
                    let Some(next) = redirect::next_request(from, &res, &self.plan.target) else {
                        break;
                    };
                    extra_sent += next.len() as u64;
                    res = self.send(conn, shard, &next, want, &mut resent).await?;
                    received += res.received;
                    prev = Some(next);
                }
                res.received = received;
            }
            Ok(res)
        };
        let result = tokio::time::timeout(step.timeout, chain).await;
        sample.sent += extra_sent;
        // A connection that cannot be reused (closed by the server, or left
        // mid-exchange by an error or the timeout) is not kept.
        if conn.as_ref().is_some_and(Conn::is_closed) {
            *conn = None;
        }
        match result {
            Err(_) => {
                sample.error = Some(ErrorKind::Timeout);
                false
            }
            Ok(Err(kind)) => {
                sample.error = Some(kind);
                false
            }
            Ok(Ok(res)) => {
                sample.status = Some(res.status);
                sample.received = res.received;
                if !request::status_ok(step, res.status) {
                    sample.error = Some(ErrorKind::Status);
                    false
                } else if let Some(c) = request::failed_check(step, &res) {
                    sample.error = Some(ErrorKind::Check);
                    sample.check = Some(c.label.clone());
                    false
                } else if !request::capture(step, &res, vars) {
                    sample.error = Some(ErrorKind::Capture);
                    false
                } else {
                    true
                }
            }
        }
    }
}

impl Runner {
    /// One request: a stream on the HTTP/2 pool (on the connection that
    /// `shard`, the user, keeps), or on this user's own HTTP/1.1 connection.
    async fn send(
        &self,
        conn: &mut Option<Conn>,
        shard: usize,
        req: &[u8],
        want: client::Want,
        resent: &mut Resent<'_>,
    ) -> Result<client::Response, ErrorKind> {
        let pool = match &self.h2 {
            Some(pool) if self.plan.http.version == HttpVersion::Auto => {
                let h2 = self.auto_h2.get_or_try_init(|| self.ask_alpn()).await?;
                h2.then_some(pool)
            }
            other => other.as_ref(),
        };
        match pool {
            Some(pool) => http2::send(pool, Some(&self.recorder), shard, req, want, resent).await,
            None => send(self, conn, req, want, resent).await,
        }
    }

    /// "auto" over TLS: one connection offering both protocols, made before
    /// the runner's first request, decides for the whole run (HTTP/1.1
    /// connections belong to users, HTTP/2 ones are shared: the two do not
    /// mix). It sends nothing and is closed at once; it is counted among the
    /// connections opened. A failure fails the request that asked, and the
    /// next one asks again.
    async fn ask_alpn(&self) -> Result<bool, ErrorKind> {
        let stream = self.dial(self.plan.target.tls.as_ref()).await?;
        Ok(stream.alpn() == Some(crate::tls::client::ALPN_H2))
    }
}

/// How a pass ended: its variables, or the step that failed (None when
/// the end of its scenario cut it short at a pause or between rounds).
pub(super) type PassResult = Result<Vec<Option<String>>, Option<Failure>>;

/// Where requests sent again on a new connection after a stale keep-alive
/// one are counted: the request's own sample.
pub(super) struct Resent<'a> {
    pub(super) attempts: &'a mut u32,
    pub(super) bytes: &'a mut u64,
}

/// One request on `conn`, connecting first if needed (`Runner::connect`).
///
/// A kept-alive connection that the server closed while it sat idle is
/// noticed before writing (`Conn::ready`) and replaced, with nothing sent.
/// One that the server closes after the request was written and before any
/// byte of the answer (`Error::Stale`) may have processed it: an idempotent
/// request (RFC 9110, 9.2.2) is sent once more on a fresh connection and
/// the resend counted in `resent`; any other (POST, PATCH) is never resent
/// behind the user's back, and fails as `http`.
///
/// A request that had to connect first includes the connect (and TLS
/// handshake) in its latency, as the user would wait for it (as k6 and wrk
/// count it); the setup times are also recorded on their own. A failed
/// connect or handshake fails the request (`connect`, `tls_*`), once.
async fn send(
    runner: &Runner,
    conn: &mut Option<Conn>,
    req: &[u8],
    want: client::Want,
    resent: &mut Resent<'_>,
) -> Result<client::Response, ErrorKind> {
    let mut retried = false;
    loop {
        if !conn.as_mut().is_some_and(Conn::ready) {
            *conn = None;
            *conn = Some(runner.connect().await?);
        }
        let c = conn.as_mut().expect("connected above");
        match c.send(req, want).await {
            Ok(res) => return Ok(res),
            Err(e) if e.is_stale() && !retried && request::idempotent(req) => {
                retried = true;
                *resent.attempts += 1;
                *resent.bytes += req.len() as u64;
            }
            Err(client::Error::BodyTooLarge(_)) => return Err(ErrorKind::BodyTooLarge),
            // A TLS failure after the handshake (say, a TLS 1.3 server that
            // rejects the client certificate once it has read it).
            Err(client::Error::Io(e)) => {
                return Err(crate::tls::client::classify(&e).unwrap_or(ErrorKind::Http));
            }
            Err(_) => return Err(ErrorKind::Http),
        }
    }
}
