//! The load engine: one `Runner` produces one slot's share of a plan and
//! keeps its results. Every scenario of the plan runs its own executor, all
//! from one start instant (plus each one's `startTime`). The closed and
//! open models differ only in when iterations start (`closed`, `open`); a
//! closed-model user's life (its onStart and onStop) is in `users`; what an
//! iteration does is in `iteration`, and its steps (requests, pauses, repeat
//! blocks) run in `journey`.
//! Requests go out over HTTP/1.1 on each user's own connection (`client`), or
//! with `target.http: "2"` as streams on the runner's shared HTTP/2
//! connections (`http2`).

mod client;
mod closed;
mod http2;
mod iteration;
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
    compile::{Compiled, StepKind},
    data::Selector,
    plan::{Executor, HttpVersion},
    snapshot::{ErrorKind, Snapshot},
    wait::Wait,
};

use client::Conn;
use iteration::Resent;
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
}
