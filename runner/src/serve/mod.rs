//! `barrage-runner serve`: a built-in HTTP/1.1 target for demos and tests.
//! Routes answer with a configured status, body and headers after an injected
//! latency (fixed or a distribution such as "10%:50ms"), optionally with an
//! error rate and a stall window, so tests can compare measured percentiles
//! with what was injected and demonstrate coordinated omission.
//!
//! It is also a throughput-benchmark target and a "10,000 slow keep-alive
//! connections" target, hence: one small task per connection, hyper buffers
//! kept at their minimum, responses prebuilt (see `handler`).

mod auth;
mod config;
mod fine_sleep;
mod handler;
mod latency;
mod limits;
mod path;

use std::{
    collections::BTreeMap,
    future::Future,
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch},
    task::JoinHandle,
};

pub use config::{AuthSpec, RouteSpec, ServeConfig, StallSpec};
pub use hyper::Method;
pub use latency::Latency;
pub use limits::ServeLimits;
pub use path::PathPattern;

/// The PKCE S256 code challenge for `verifier`: base64url without padding of
/// its SHA-256, as `/auth/authorize` expects (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    auth::s256_challenge(verifier)
}

use crate::error::{Error, Result};
use handler::Shared;
use limits::{ConnState, SHED_GRACE, Timed};

/// How long `serve` waits, after shutdown, for in-flight requests to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// hyper's minimum (8 KiB): the read buffer never grows past it, so 10,000
/// idle keep-alive connections cost little more than their two 8 KiB buffers.
/// Request heads over 8 KiB get 431, fine for a test target.
const MAX_BUF_SIZE: usize = 8 * 1024;

/// Serves `config` on `listener` until `shutdown` completes, then lets
/// in-flight requests finish (for up to 10 s) and returns. Stall windows are
/// measured from the call. `config` should have passed `validate()`.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServeConfig>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let shared = Arc::new(Shared::new(&config, Instant::now()));
    run(listener, shared, limits, shutdown).await;
}

/// What each connection task needs besides its socket.
#[derive(Clone)]
struct ConnCtx {
    shared: Arc<Shared>,
    builder: Arc<http1::Builder>,
    limits: ServeLimits,
    /// Changes when the server is stopping.
    stop: watch::Receiver<bool>,
    /// Bumped when room is needed: connections that `sheddable()` close.
    shed: watch::Receiver<u64>,
}

async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .max_buf_size(MAX_BUF_SIZE)
        // The header and idle limits are `limits::Timed`'s: hyper's would
        // also count a keep-alive connection's idle time as header time.
        .header_read_timeout(None);
    // Each connection holds a receiver; `closed()` tells when all are gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (shed_tx, shed_rx) = watch::channel(0u64);
    let ctx = ConnCtx {
        shared,
        builder: Arc::new(builder),
        limits,
        stop: stop_rx,
        shed: shed_rx,
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let shed = || shed_tx.send_modify(|n| *n = n.wrapping_add(1));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // At the cap: make room, and until a slot frees up leave new
                // connections in the backlog; shed again each grace period
                // (connections become sheddable over time).
                shed();
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    () = tokio::time::sleep(SHED_GRACE) => continue,
                }
            }
        };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, slot, ctx.clone()));
                }
                Err(e) => {
                    // Typically EMFILE (more connections than descriptors):
                    // make room like at the cap, and back off instead of
                    // spinning.
                    tracing::warn!(error = %e, "accept failed");
                    shed();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    drop(listener);
    drop(ctx);
    let _ = stop_tx.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("connections still busy {DRAIN_TIMEOUT:?} after shutdown; leaving them");
    }
}

async fn connection(stream: TcpStream, _slot: OwnedSemaphorePermit, ctx: ConnCtx) {
    let ConnCtx {
        shared,
        builder,
        limits,
        mut stop,
        mut shed,
    } = ctx;
    // Small responses must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let state = Arc::new(ConnState::new());
    let service = {
        let state = state.clone();
        service_fn(move |req| {
            state.request_started();
            let shared = shared.clone();
            let state = state.clone();
            async move {
                let resp = shared.handle(req).await;
                state.request_done();
                resp
            }
        })
    };
    let io = Timed::new(stream, state.clone(), limits);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    loop {
        tokio::select! {
            biased;
            _ = &mut conn => return,
            _ = stop.changed() => {
                // Finish the request in progress, close idle connections now.
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
                return;
            }
            Ok(()) = shed.changed() => {
                if state.sheddable(Instant::now()) {
                    // Dropping the connection closes the socket.
                    return;
                }
            }
        }
    }
}

/// A server on 127.0.0.1 with an OS-chosen port, running on the current
/// tokio runtime. Dropping it stops accepting and closes connections once
/// their in-flight requests finish.
pub struct LocalServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Connections waiting to be accepted. `TcpListener::bind` uses 128, which
/// thousands of virtual users connecting at once overflow (each overflowed
/// SYN is retried only after a 1 s timeout); the kernel caps this at
/// `net.core.somaxconn`.
const BACKLOG: u32 = 4096;

/// Like `TcpListener::bind` (each resolved address in turn, SO_REUSEADDR),
/// with a deep listen backlog.
async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        let bound = socket.and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(a)?;
            s.listen(BACKLOG)
        });
        match bound {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

/// Binds 127.0.0.1:0 and serves `config` (validated first) in a spawned task.
pub async fn spawn_local(config: ServeConfig) -> Result<LocalServer> {
    spawn_local_with(config, ServeLimits::default()).await
}

/// `spawn_local` with other connection limits.
pub async fn spawn_local_with(config: ServeConfig, limits: ServeLimits) -> Result<LocalServer> {
    config.validate()?;
    let addr = "127.0.0.1:0";
    let listener = bind(addr).await.map_err(|source| Error::Listen {
        addr: addr.into(),
        source,
    })?;
    let local = listener.local_addr().map_err(|source| Error::Listen {
        addr: addr.into(),
        source,
    })?;
    let shared = Arc::new(Shared::new(&config, Instant::now()));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(listener, shared.clone(), limits, async {
        let _ = stopped.await;
    }));
    Ok(LocalServer {
        addr: local,
        shared,
        stop: Some(stop),
        task: Some(task),
    })
}

impl LocalServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// "http://127.0.0.1:PORT", no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// When the server started: stall windows are measured from here.
    pub fn started_at(&self) -> Instant {
        self.shared.started
    }

    /// Requests received by the route(s) whose path pattern is written
    /// exactly `pattern` (e.g. "/schemas/*"), summed over methods.
    pub fn hits(&self, pattern: &str) -> u64 {
        self.shared.hits(pattern)
    }

    /// Requests received by each route, in config order: (method or None for
    /// any, pattern, count).
    pub fn route_hits(&self) -> Vec<(Option<Method>, String, u64)> {
        self.shared.route_hits()
    }

    /// Requests answered 404 (no route) or 405 (no route for that method).
    pub fn unmatched(&self) -> u64 {
        self.shared
            .unmatched
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Distinct users whose tokens were accepted by a token-checked request
    /// (`GET /auth/me` or a `requireToken` route). 0 without `auth`.
    pub fn distinct_users(&self) -> u64 {
        self.shared.auth.as_ref().map_or(0, |a| a.distinct_users())
    }

    /// Token-checked requests per registered user, by user id (users that
    /// made none are listed with 0).
    pub fn user_requests(&self) -> BTreeMap<String, u64> {
        self.shared
            .auth
            .as_ref()
            .map(|a| a.user_requests())
            .unwrap_or_default()
    }

    /// Token checks that failed (answered 401).
    pub fn rejected(&self) -> u64 {
        self.shared.auth.as_ref().map_or(0, |a| a.rejected())
    }

    /// Users registered through `POST /auth/register`.
    pub fn registered_users(&self) -> usize {
        self.shared
            .auth
            .as_ref()
            .map_or(0, |a| a.registered_users())
    }

    /// The user id registered for `email`.
    pub fn user_id(&self, email: &str) -> Option<String> {
        self.shared.auth.as_ref().and_then(|a| a.user_id(email))
    }

    /// Access tokens issued by `POST /auth/token`.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.auth.as_ref().map_or(0, |a| a.tokens_issued())
    }

    /// Stops accepting, waits for in-flight requests (up to 10 s) and returns
    /// once every connection is closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `barrage-runner serve --listen ADDR [--config FILE]`: the builtin routes
/// unless a config file is given; runs until Ctrl-C or SIGTERM.
pub async fn run_cli(listen: &str, config: Option<&Path>, limits: ServeLimits) -> Result<()> {
    let config = match config {
        Some(path) => ServeConfig::load(path)?,
        None => ServeConfig::builtin(),
    };
    let listener = bind(listen).await.map_err(|source| Error::Listen {
        addr: listen.into(),
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| Error::Listen {
        addr: listen.into(),
        source,
    })?;
    let shared = Arc::new(Shared::new(&config, Instant::now()));
    tracing::info!(%addr, routes = shared.routes.len(), "barrage target server listening");
    for route in shared.describe_routes() {
        tracing::info!("route {route}");
    }
    tracing::info!(
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        max_connections = limits.max_connections,
        "connection limits"
    );
    run(listener, shared, limits, crate::signal::terminate()).await;
    tracing::info!("target server stopped");
    Ok(())
}
