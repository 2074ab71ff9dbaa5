//! The load engine: one `Runner` produces one slot's share of a plan and
//! keeps its results. Every scenario of the plan runs its own executor, all
//! from one start instant (plus each one's `startTime`). The closed and
//! open models differ only in when iterations start (`closed`, `open`); a
//! closed-model user's life (its onStart and onStop) is in `users`; what an
//! iteration does is here, and its steps (requests, pauses, repeat blocks)
//! run in `journey`.
//! Requests go out over HTTP/1.1 on each user's own connection (`client`), or
//! with `target.http: "2"` as streams on the runner's shared HTTP/2
//! connections (`http2`).

mod client;
mod closed;
mod http2;
mod journey;
mod open;
mod pending;
mod recorder;
mod redirect;
mod request;
pub mod resolve;
#[cfg(test)]
mod tests;
pub mod timeline;
mod users;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

pub use client::DEFAULT_MAX_BODY;
pub use recorder::{Recorder, Sample, Views};

use crate::{
    compile::{Compiled, Entry, MAX_REDIRECTS, StepKind},
    data::{Pick, Selector},
    plan::{Executor, HttpVersion},
    snapshot::{ErrorKind, Snapshot},
    template::{Pkce, RenderCtx},
    wait::Wait,
};

use client::Conn;
use journey::{Outcome, Pass};
use pending::Outstanding;
use request::Prepared;

/// A one-way stop signal that any number of tasks can wait on.
#[derive(Default)]
pub struct Stop {
    flag: AtomicBool,
    notify: Notify,
}

impl Stop {
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub async fn wait(&self) {
        loop {
            // Created before the check, so a trigger in between is not missed.
            let n = self.notify.notified();
            if self.is_set() {
                return;
            }
            n.await;
        }
    }

    /// Sleeps for `d` unless stopped first; true when stopped.
    pub async fn sleep(&self, d: Duration) -> bool {
        if d.is_zero() {
            return self.is_set();
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_set(),
            _ = self.wait() => true,
        }
    }
}

pub struct Runner {
    pub plan: Arc<Compiled>,
    pub recorder: Recorder,
    /// Every request step's serialized form, ready to fill in, by metric.
    prepared: Vec<Option<Prepared>>,
    /// Each scenario's pick from the records.
    selectors: Vec<Option<Selector>>,
    /// Each scenario's end: its own planned end, or the runner's `stop`.
    scenario_stops: Vec<Stop>,
    seq: AtomicU64,
    /// When kept (provisioning), every iteration's variables or failure.
    journal: Option<Mutex<Vec<Finished>>>,
    /// Ends the load: set at the planned end, on abort, or when data runs out.
    pub stop: Stop,
    /// Set with `stop` on Ctrl-C or when a runner pod must go: in-flight
    /// requests get `INTERRUPT_GRACE` instead of the whole graceful stop.
    interrupted: Stop,
    /// Requests that may still record (see `pending`).
    outstanding: Outstanding,
    /// The first failure of the engine itself (a task that panicked).
    failure: Mutex<Option<String>>,
    /// The run's name cache: every new connection dials through it.
    resolver: Arc<resolve::Resolver>,
    /// HTTP/2's shared connections (`target.http: "2"`); None for HTTP/1.1,
    /// where each user or in-flight iteration has its own connection.
    h2: Option<http2::Pool>,
    /// The TLS of HTTP/1.1 connections: the target's, offering http/1.1 only.
    h1_tls: Option<crate::tls::client::TlsTarget>,
    /// "auto" over TLS: whether the server chose h2 when first asked.
    auto_h2: tokio::sync::OnceCell<bool>,
    /// Tests only: the iteration (by `seq`) whose request panics mid-flight.
    #[cfg(test)]
    panic_at: AtomicU64,
}

/// How long in-flight requests may still finish after an interrupt; those
/// that do not are counted as `interrupted`.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(1);

/// How long a run that lost its load task to a panic waits for the requests
/// that task left behind to be counted (they are aborted, so it is quick).
const ABANDONED_WAIT: Duration = Duration::from_secs(2);

/// How one iteration ended, for provisioning: its variables (the journey's
/// `vars` and captures, by slot) or the step that failed.
#[derive(Debug)]
pub struct Finished {
    pub seq: u64,
    pub result: Result<Vec<Option<String>>, Failure>,
}

#[derive(Clone, Debug)]
pub struct Failure {
    /// The metric name of the step, e.g. `setup/token`.
    pub step: String,
    pub error: ErrorKind,
    pub status: Option<u16>,
    /// The step's expected statuses (empty: any 2xx or 3xx).
    pub expected: Vec<u16>,
    /// With `ErrorKind::Check`: the label of the body check that failed.
    pub check: Option<Arc<str>>,
}

/// What an iteration tells its executor.
#[derive(PartialEq, Eq)]
enum Flow {
    /// Done; with the entry's own think time, if it has one.
    Continue(Option<Wait>),
    /// `unique` data is used up: the runner stops.
    Exhausted,
}

/// A pass found `unique` data used up (and counted it).
struct Exhausted;

impl Runner {
    pub fn new(plan: Arc<Compiled>) -> Arc<Runner> {
        Self::build(plan, false)
    }

    /// A runner that also keeps how every iteration ended (see `journal`).
    pub fn with_journal(plan: Arc<Compiled>) -> Arc<Runner> {
        Self::build(plan, true)
    }

    /// Takes the iterations' outcomes kept so far.
    pub fn take_journal(&self) -> Vec<Finished> {
        self.journal.as_ref().map_or_else(Vec::new, |j| {
            std::mem::take(&mut *j.lock().unwrap_or_else(|e| e.into_inner()))
        })
    }

    /// Iterations in the journal so far, and how many of them failed:
    /// provisioning's progress, sampled a few times a second.
    pub fn journal_counts(&self) -> (u64, u64) {
        self.journal.as_ref().map_or((0, 0), |j| {
            let j = j.lock().unwrap_or_else(|e| e.into_inner());
            let failed = j.iter().filter(|f| f.result.is_err()).count();
            (j.len() as u64, failed as u64)
        })
    }

    fn build(plan: Arc<Compiled>, journal: bool) -> Arc<Runner> {
        let mut prepared: Vec<Option<Prepared>> = plan.names.iter().map(|_| None).collect();
        for s in &plan.scenarios {
            let entries = s.entries.iter().chain(&s.on_start).chain(&s.on_stop);
            for st in entries.flat_map(|e| StepKind::requests(&e.steps)) {
                prepared[st.metric] = Some(Prepared::new(st, &plan.target));
            }
        }
        let selectors = plan
            .scenarios
            .iter()
            .map(|s| {
                s.data.as_ref().map(|d| {
                    Selector::new(
                        d.select,
                        d.repeat,
                        d.on_exhausted,
                        d.records.rows.len(),
                        plan.slot.index,
                        plan.slot.count,
                    )
                })
            })
            .collect();
        // Over cleartext "auto" is HTTP/1.1: there is no ALPN to ask with.
        // Over TLS it may become HTTP/2 (`Runner::send` asks the server once).
        let tls = plan.target.tls.clone();
        let resolver = Arc::new(resolve::Resolver::default());
        let h2 = match plan.http.version {
            HttpVersion::Http2 => true,
            HttpVersion::Auto => tls.is_some(),
            HttpVersion::Http1 => false,
        }
        .then(|| {
            http2::Pool::new(
                &plan.target.authority,
                plan.http.connections,
                tls,
                resolver.clone(),
            )
        });
        // HTTP/1.1 connections offer only http/1.1: once "auto" has chosen
        // it, a server behind the same address that would take h2 must not
        // get HTTP/1.1 bytes in an h2 session.
        let h1_tls = plan.target.tls.as_ref().map(|t| {
            let mut config = (*t.config).clone();
            config.alpn_protocols = vec![crate::tls::client::ALPN_HTTP1.to_vec()];
            crate::tls::client::TlsTarget {
                config: Arc::new(config),
                ..t.clone()
            }
        });
        Arc::new(Runner {
            resolver,
            h2,
            h1_tls,
            auto_h2: tokio::sync::OnceCell::new(),
            recorder: Recorder::with_views(plan.names.clone(), plan.interval, Views::of(&plan)),
            prepared,
            selectors,
            scenario_stops: plan.scenarios.iter().map(|_| Stop::default()).collect(),
            seq: AtomicU64::new(0),
            journal: journal.then(Mutex::default),
            stop: Stop::default(),
            interrupted: Stop::default(),
            outstanding: Outstanding::default(),
            failure: Mutex::default(),
            #[cfg(test)]
            panic_at: AtomicU64::new(u64::MAX),
            plan,
        })
    }

    /// Runs the load from now until its planned end (or `stop`), then lets
    /// in-flight work finish within the graceful stop; what is still in
    /// flight after it is counted as `interrupted`. When this returns, every
    /// request sent is counted and nothing records any more. A task that
    /// panicked fails the run (see `failure`) and stops it.
    pub async fn run(self: &Arc<Self>) {
        let start = Instant::now();
        self.recorder.mark_started(start);
        let ticker = {
            let me = self.clone();
            tokio::spawn(async move {
                let mut next = start + me.plan.interval;
                loop {
                    tokio::time::sleep_until(next.into()).await;
                    me.recorder.close_interval();
                    next += me.plan.interval;
                }
            })
        };
        // The runner's stop ends every scenario.
        let stops = {
            let me = self.clone();
            tokio::spawn(async move {
                me.stop.wait().await;
                for s in &me.scenario_stops {
                    s.trigger();
                }
            })
        };
        // Each scenario in its own task, so that a panic in an executor
        // fails this run instead of unwinding through the caller. The load
        // ends when every scenario has.
        let mut load = tokio::task::JoinSet::new();
        for sc in 0..self.plan.scenarios.len() {
            let me = self.clone();
            load.spawn(async move { me.run_scenario(sc, start).await });
        }
        let mut lost = false;
        while let Some(res) = load.join_next().await {
            if let Err(e) = res {
                lost |= e.is_panic();
                self.task_failed("the load task", e);
            }
        }
        self.stop.trigger();
        if lost {
            // Its requests were aborted with it; each counts itself as it
            // is dropped, which the runtime does right after the abort.
            let counted = tokio::time::timeout(ABANDONED_WAIT, self.outstanding.drained());
            if counted.await.is_err() {
                self.fail("requests of the failed load task were still not counted".into());
            }
        }
        stops.abort();
        // Every request is counted by now: the HTTP/2 connections close
        // (HTTP/1.1 ones went with their users), rather than stay open for
        // as long as the runner's results are kept.
        if let Some(pool) = &self.h2 {
            pool.close();
        }
        ticker.abort();
        if let Err(e) = ticker.await
            && e.is_panic()
        {
            self.task_failed("the report interval ticker", e);
        }
        self.recorder.mark_ended(Instant::now());
    }

    /// Runs scenario `sc` of a test that started at `start`: from its
    /// start time to its own end (or the runner's stop).
    async fn run_scenario(self: &Arc<Self>, sc: usize, start: Instant) {
        let s = &self.plan.scenarios[sc];
        let begin = start + s.start_time;
        let stop = &self.scenario_stops[sc];
        if stop
            .sleep(begin.saturating_duration_since(Instant::now()))
            .await
        {
            return;
        }
        match s.load.executor {
            Executor::Concurrency => closed::run(self, sc, start).await,
            Executor::ArrivalRate => open::run(self, sc, start).await,
        }
    }

    /// Stops the load and cuts the wait for in-flight requests to
    /// `INTERRUPT_GRACE` (Ctrl-C, a runner pod that is going away).
    pub fn interrupt(&self) {
        self.interrupted.trigger();
        self.stop.trigger();
    }

    /// Resolves when in-flight requests have had their time after the load:
    /// the scenario's `graceful_stop`, or `INTERRUPT_GRACE` once interrupted.
    async fn grace(&self, graceful_stop: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(graceful_stop) => {}
            _ = async {
                self.interrupted.wait().await;
                tokio::time::sleep(INTERRUPT_GRACE).await;
            } => {}
        }
    }

    /// Fails the run with `why` (the first failure is kept) and stops it:
    /// results measured by a broken engine are not a verdict.
    pub fn fail(&self, why: String) {
        let slot = self.plan.slot;
        let why = if slot.count > 1 {
            format!("runner {}: {why}", slot.index)
        } else {
            why
        };
        tracing::error!(failure = %why, "the run failed");
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(why);
        self.stop.trigger();
    }

    /// Fails the run for a task that panicked; a cancelled one is not a failure.
    fn task_failed(&self, what: &str, e: tokio::task::JoinError) {
        if e.is_cancelled() {
            return;
        }
        let why = match e.try_into_panic() {
            Ok(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                format!("{what} panicked: {msg}")
            }
            Err(e) => format!("{what} failed: {e}"),
        };
        self.fail(why);
    }

    /// Why the run failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The cumulative results; `intervals` adds the per-interval series.
    pub fn snapshot_with(&self, intervals: bool) -> Snapshot {
        self.snapshot_from(intervals.then_some(0))
    }

    /// The cumulative results with the per-interval series from index
    /// `first` on (see `Recorder::snapshot_from`).
    pub fn snapshot_from(&self, first: Option<u64>) -> Snapshot {
        let mut snap = self.recorder.snapshot_from(first);
        for sel in self.selectors.iter().flatten() {
            let used = sel.used_bitmap();
            match &mut snap.records_used {
                Some(all) => all.or(&used),
                None => snap.records_used = Some(used),
            }
        }
        snap.failures = self.failure().into_iter().collect();
        snap.warnings = self.plan.warnings();
        snap
    }

    /// A new HTTP/1.1 connection to the target.
    async fn connect(&self) -> Result<Conn, ErrorKind> {
        Ok(Conn::new(self.dial(self.h1_tls.as_ref()).await?))
    }

    /// A new stream to the target (TCP, then TLS with `tls`), its setup
    /// times recorded apart from request latency.
    async fn dial(
        &self,
        tls: Option<&crate::tls::client::TlsTarget>,
    ) -> Result<client::Stream, ErrorKind> {
        let (stream, setup) =
            client::dial(&self.resolver, &self.plan.target.authority, tls).await?;
        self.recorder
            .record_connection(setup.connect, setup.handshake);
        Ok(stream)
    }

    /// Everything, the per-interval series included.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with(true)
    }

    /// One pass through an entry of scenario `sc` picked by weight: a
    /// single request or a whole journey, as the virtual user whose
    /// variables are `user`. `intended` is the open model's scheduled
    /// start, from which the first request's latency is measured.
    async fn iterate(
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
    async fn pass(
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
    async fn exchange(
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
type PassResult = Result<Vec<Option<String>>, Option<Failure>>;

/// Where requests sent again on a new connection after a stale keep-alive
/// one are counted: the request's own sample.
struct Resent<'a> {
    attempts: &'a mut u32,
    bytes: &'a mut u64,
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
