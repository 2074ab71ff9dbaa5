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
mod path;
mod sha256;

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
    sync::{oneshot, watch},
    task::JoinHandle,
};

pub use config::{AuthSpec, RouteSpec, ServeConfig, StallSpec};
pub use hyper::Method;
pub use latency::Latency;
pub use path::PathPattern;

/// The PKCE S256 code challenge for `verifier`: base64url without padding of
/// its SHA-256, as `/auth/authorize` expects (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    auth::s256_challenge(verifier)
}

use crate::error::{Error, Result};
use handler::Shared;

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
    shutdown: impl Future<Output = ()> + Send,
) {
    let shared = Arc::new(Shared::new(&config, Instant::now()));
    run(listener, shared, shutdown).await;
}

async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .max_buf_size(MAX_BUF_SIZE)
        // Idle keep-alive connections must not be cut (hyper's 30 s default
        // needs a timer anyway): a memory test parks thousands of them.
        .header_read_timeout(None);
    let builder = Arc::new(builder);
    // Each connection holds a receiver; `closed()` tells when all are gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, shared.clone(), builder.clone(), stop_rx.clone()));
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("connections still busy {DRAIN_TIMEOUT:?} after shutdown; leaving them");
    }
}

async fn connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    builder: Arc<http1::Builder>,
    mut stop: watch::Receiver<bool>,
) {
    // Small responses must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { shared.handle(req).await }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        biased;
        _ = &mut conn => {}
        _ = stop.changed() => {
            // Finish the request in progress, close idle connections now.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
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
    let task = tokio::spawn(run(listener, shared.clone(), async {
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
pub async fn run_cli(listen: &str, config: Option<&Path>) -> Result<()> {
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
    run(listener, shared, crate::signal::terminate()).await;
    tracing::info!("target server stopped");
    Ok(())
}
