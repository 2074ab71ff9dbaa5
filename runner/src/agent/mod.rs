//! `barrage-runner agent`: what every runner pod runs. It compiles its slot
//! of the plan at startup, then waits for the operator, which talks to it
//! over HTTPS by pod IP (plain HTTP without `--tls-cert`, for local use):
//! start all runners at one wall-clock instant, pull what changed in its
//! results since the last acknowledged pull (or the whole cumulative
//! snapshot), stop, shut down (see `api` for the routes).
//!
//! The agent never exits on its own while it may still hold unread results,
//! except `linger` after the load finished (a forgotten pod must not run
//! forever) and on SIGTERM (the pod is being deleted anyway).
//!
//! With a certificate (the LoadTest's, from its Secret) the agent speaks TLS
//! only and requires the client to present that same certificate
//! (`tls::pinned`): only the operator, which holds the key, can complete a
//! handshake; the bearer token is still required on every call.

mod api;
pub mod probe;
mod schedule;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use hyper::{
    rt::{Read, Write},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{oneshot, watch},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;

/// The reply to `GET /snapshot?since=CURSOR` and its parts.
pub use crate::snapshot::delta::{Head, SnapshotDelta, StatsDelta};
pub use api::{
    AgentStatus, ApiError, HEALTHZ, SHUTDOWN, SNAPSHOT, START, STATUS, STOP, StartRequest,
    snapshot_since,
};
pub use schedule::AgentState;

use crate::{
    compile::{Slot, compile},
    engine::{Runner, Stop},
    error::{Error, Result},
    planfile,
};
use schedule::{Schedule, StartOutcome, StopOutcome};

/// The port the operator expects agents on.
pub const DEFAULT_PORT: u16 = 9090;

/// How long, on the way out, the load gets to finish its in-flight work, and
/// the server its in-flight replies: the pod must go within a few seconds.
const EXIT_WAIT: Duration = Duration::from_secs(3);
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// A client that sends no complete request head in this time is cut off.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The same for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate and key the agent serves with and requires from its
/// client (the LoadTest Secret's `tls.crt` and `tls.key`).
pub struct AgentTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct AgentOptions {
    pub plan: PathBuf,
    pub listen: String,
    pub token_file: PathBuf,
    pub slot: Slot,
    /// Exit this long after the load finished, even without `/shutdown`.
    pub linger: Duration,
    /// Where startup errors also go, if the file exists (Kubernetes shows its
    /// content as the container's termination message).
    pub termination_log: Option<PathBuf>,
    /// TLS with a pinned certificate; plain HTTP without.
    pub tls: Option<AgentTls>,
}

/// Runs the agent until `/shutdown`, SIGTERM/Ctrl-C, or `linger` after the
/// load finished. Startup errors (bad plan, bad token file, port in use) are
/// returned before anything listens.
pub async fn run(opts: AgentOptions) -> Result<()> {
    let (runner, token, tls, listener) = match prepare(&opts).await {
        Ok(ready) => ready,
        Err(e) => {
            if let Some(path) = &opts.termination_log {
                write_termination_log(path, &e);
            }
            return Err(e);
        }
    };
    let secure = tls.is_some();
    let handle = serve(listener, runner, token, tls)?;
    if !secure {
        tracing::warn!(
            "serving plain HTTP (no --tls-cert): the token and results cross the network in the clear"
        );
    }
    tracing::info!(
        addr = %handle.addr(),
        index = opts.slot.index,
        count = opts.slot.count,
        tls = secure,
        "agent ready"
    );
    let reason = tokio::select! {
        () = handle.shutdown_requested() => "shutdown requested",
        () = async {
            handle.load_finished().await;
            tokio::time::sleep(opts.linger).await;
        } => "linger elapsed after the load finished",
        () = crate::signal::terminate() => "terminated",
    };
    tracing::info!(reason, "agent exiting");
    // The pod is going: in-flight requests get a second, not the whole
    // graceful stop, so they are counted (as `interrupted`) before it exits.
    handle.agent.runner.interrupt();
    handle.stop_load();
    if tokio::time::timeout(EXIT_WAIT, handle.load_finished())
        .await
        .is_err()
    {
        tracing::warn!("load still finishing {EXIT_WAIT:?} after stop; exiting anyway");
    }
    handle.close().await;
    Ok(())
}

type Prepared = (
    Arc<Runner>,
    String,
    Option<Arc<rustls::ServerConfig>>,
    TcpListener,
);

async fn prepare(opts: &AgentOptions) -> Result<Prepared> {
    let Slot { index, count } = opts.slot;
    if count == 0 || index >= count {
        return Err(Error::invalid(
            "--runner-index",
            format!("{index} is not below --runner-count {count}"),
        ));
    }
    let loaded = planfile::load_file(&opts.plan)?;
    let compiled = compile(&loaded.plan, opts.slot, &loaded.base_dir, loaded.prefix)?;
    let token = read_token(&opts.token_file)?;
    let tls = match &opts.tls {
        Some(t) => Some(
            crate::tls::pinned::Identity::read(&t.cert, &t.key)
                .and_then(|id| id.server_config())
                .map_err(|m| Error::invalid("--tls-cert/--tls-key", m))?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(&opts.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: opts.listen.clone(),
            source,
        })?;
    Ok((Runner::new(Arc::new(compiled)), token, tls, listener))
}

fn read_token(path: &std::path::Path) -> Result<String> {
    // A token is short; a mounted Secret is never this large.
    let text = crate::input::read_text(path, 64 << 10, "--token-file")?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Error::invalid(
            "--token-file",
            format!("{} is empty", path.display()),
        ));
    }
    Ok(token.to_string())
}

/// Best effort: only into an existing, writable file (never created, so
/// running outside a pod leaves no stray file).
fn write_termination_log(path: &std::path::Path, e: &Error) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
    {
        let _ = writeln!(f, "{e}");
    }
}

/// What the HTTP handlers share: the runner and its start/stop state.
struct Agent {
    runner: Arc<Runner>,
    token: String,
    schedule: Mutex<Schedule>,
    /// The states incremental pulls build on.
    cursors: Mutex<crate::snapshot::Cursors>,
    /// Wakes a scheduled start that `/stop` cancelled.
    cancel: Stop,
    /// Set once the load is over (or will never run).
    finished: Stop,
    /// Set by `/shutdown`.
    shutdown: Stop,
}

impl Agent {
    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_us(&self) -> u64 {
        // The recorder's mapping, so finishedUs and startedUs compare exactly.
        self.runner.recorder.unix_us(Instant::now())
    }

    fn status(&self) -> AgentStatus {
        let s = self.schedule().clone();
        let rec = &self.runner.recorder;
        AgentStatus {
            state: s.state,
            index: self.runner.plan.slot.index,
            count: self.runner.plan.slot.count,
            start_at_us: s.start_at_us,
            started_us: rec.started().map(|t| rec.unix_us(t)),
            finished_us: s.finished_us,
        }
    }

    fn start_at(self: &Arc<Self>, at_us: u64) -> (StartOutcome, AgentStatus) {
        let outcome = self.schedule().request_start(at_us);
        match outcome {
            StartOutcome::Scheduled => {
                tracing::info!(at_us, "load start scheduled");
                tokio::spawn(self.clone().launch(at_us));
            }
            StartOutcome::AlreadyScheduled => {}
            StartOutcome::Conflict => tracing::warn!(at_us, "refused a second, different start"),
        }
        (outcome, self.status())
    }

    /// Waits for the start instant, then runs the load to its end.
    async fn launch(self: Arc<Self>, at_us: u64) {
        tokio::select! {
            () = schedule::sleep_until_unix(at_us, &self.runner.recorder) => {}
            () = self.cancel.wait() => return,
        }
        if !self.schedule().begin() {
            return; // stopped just as the instant came
        }
        let runner = self.runner.clone();
        // Its own task, so a panic in the engine still ends in `finished`
        // rather than a runner that claims to be running forever.
        if let Err(e) = tokio::spawn(async move { runner.run().await }).await {
            // Its snapshots say so (`failures`), so the operator fails the
            // test instead of judging what the broken run measured.
            self.runner.fail(format!("the load task failed: {e}"));
            self.runner.recorder.mark_ended(Instant::now());
        }
        let now = self.now_us();
        self.schedule().finish(now);
        self.finished.trigger();
        tracing::info!("load finished");
    }

    fn stop_load(&self) {
        let now = self.now_us();
        let mut s = self.schedule();
        match s.request_stop(now) {
            StopOutcome::Cancelled => {
                // Snapshots then say finished (with no requests), like a
                // runner whose load ended.
                self.runner.recorder.mark_ended(Instant::now());
                self.runner.stop.trigger();
                self.cancel.trigger();
                self.finished.trigger();
                tracing::info!("start cancelled by stop");
            }
            StopOutcome::Stopping => {
                self.runner.stop.trigger();
                tracing::info!("load stopping");
            }
            StopOutcome::Finished => {}
        }
    }
}

/// The agent serving on a listener, in a spawned task. Dropping it stops
/// accepting; `close` also waits for open connections to finish.
pub struct AgentHandle {
    addr: SocketAddr,
    agent: Arc<Agent>,
    close: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Serves the agent API for `runner` on `listener` over plain HTTP (must be
/// called inside a tokio runtime). The load does not start until `/start`.
pub fn serve_agent(
    listener: TcpListener,
    runner: Arc<Runner>,
    token: String,
) -> Result<AgentHandle> {
    serve(listener, runner, token, None)
}

/// Like `serve_agent`, over TLS only with `tls` (`pinned::Identity::
/// server_config`: the client must present the pinned certificate).
pub fn serve_agent_tls(
    listener: TcpListener,
    runner: Arc<Runner>,
    token: String,
    tls: Arc<rustls::ServerConfig>,
) -> Result<AgentHandle> {
    serve(listener, runner, token, Some(tls))
}

fn serve(
    listener: TcpListener,
    runner: Arc<Runner>,
    token: String,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<AgentHandle> {
    // An empty token would accept "Authorization: Bearer ".
    if token.is_empty() {
        return Err(Error::invalid("token", "must not be empty"));
    }
    let addr = listener.local_addr().map_err(|source| Error::Listen {
        addr: "(agent listener)".into(),
        source,
    })?;
    let agent = Arc::new(Agent {
        runner,
        token,
        schedule: Mutex::new(Schedule::default()),
        cursors: Mutex::new(crate::snapshot::Cursors::new()),
        cancel: Stop::default(),
        finished: Stop::default(),
        shutdown: Stop::default(),
    });
    let (close, closed) = oneshot::channel();
    let tls = tls.map(TlsAcceptor::from);
    let task = tokio::spawn(accept_loop(listener, agent.clone(), tls, closed));
    Ok(AgentHandle {
        addr,
        agent,
        close: Some(close),
        task: Some(task),
    })
}

impl AgentHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The same as `GET /status`.
    pub fn status(&self) -> AgentStatus {
        self.agent.status()
    }

    /// Resolves once `POST /shutdown` was received.
    pub async fn shutdown_requested(&self) {
        self.agent.shutdown.wait().await;
    }

    /// Resolves once the load has finished or was cancelled before starting.
    pub async fn load_finished(&self) {
        self.agent.finished.wait().await;
    }

    /// The same as `POST /stop`.
    pub fn stop_load(&self) {
        self.agent.stop_load();
    }

    /// Stops accepting and waits (briefly) for open connections to finish
    /// their in-flight request, e.g. the reply to `/shutdown`.
    pub async fn close(mut self) {
        if let Some(close) = self.close.take() {
            let _ = close.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        if let Some(close) = self.close.take() {
            let _ = close.send(());
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    agent: Arc<Agent>,
    tls: Option<TlsAcceptor>,
    mut closed: oneshot::Receiver<()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let builder = Arc::new(builder);
    // Each connection holds a receiver; `closed()` tells when all are gone.
    let (drain_tx, drain_rx) = watch::channel(false);
    loop {
        tokio::select! {
            biased;
            _ = &mut closed => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (agent, builder, drain, tls) =
                        (agent.clone(), builder.clone(), drain_rx.clone(), tls.clone());
                    tokio::spawn(async move {
                        let _ = stream.set_nodelay(true);
                        match tls {
                            None => connection(TokioIo::new(stream), agent, builder, drain).await,
                            Some(tls) => {
                                if let Some(s) = handshake(&tls, stream, peer).await {
                                    connection(TokioIo::new(s), agent, builder, drain).await;
                                }
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    drop(listener);
    drop(drain_rx);
    let _ = drain_tx.send(true);
    let _ = tokio::time::timeout(DRAIN_WAIT, drain_tx.closed()).await;
}

/// The TLS handshake of one connection, in its own task (a slow client
/// holds up no other) and bounded in time. A refused one is logged with its
/// reason; a bare connect-and-close (the kubelet's TCP readiness probe) only
/// at debug level.
async fn handshake(
    tls: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(%peer, "connection closed before the TLS handshake");
            None
        }
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake refused");
            None
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            None
        }
    }
}

async fn connection<I>(
    io: I,
    agent: Arc<Agent>,
    builder: Arc<http1::Builder>,
    mut drain: watch::Receiver<bool>,
) where
    I: Read + Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req| api::handle(agent.clone(), req));
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        biased;
        _ = &mut conn => {}
        _ = drain.changed() => {
            // Finish the request in progress, close idle connections now.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
