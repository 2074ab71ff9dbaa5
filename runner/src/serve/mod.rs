//! `barrage-runner serve`: a built-in HTTP/1.1 and HTTP/2 target for demos,
//! tests and benchmarks, in cleartext (h2c by prior knowledge) or over TLS
//! (ALPN; optionally requiring client certificates, see `tls`).
//! Routes answer with a configured status, body and headers after an injected
//! latency (fixed or a distribution such as "10%:50ms"), optionally with an
//! error rate and a stall window, so tests can compare measured percentiles
//! with what was injected and demonstrate coordinated omission.
//!
//! It is also a throughput-benchmark target and a "10,000 slow keep-alive
//! connections" target, hence: one small task per connection, hyper buffers
//! kept at their minimum, responses prebuilt (see `handler`). The accept
//! loop and the per-connection task are in `accept`.

mod accept;
mod auth;
mod config;
mod fine_sleep;
mod handler;
mod latency;
mod limits;
mod path;
mod spread;
mod tls;

use std::{
    collections::BTreeMap,
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use config::{AuthSpec, RouteSpec, ServeConfig, StallSpec};
pub use hyper::Method;
pub use latency::Latency;
pub use limits::ServeLimits;
pub use path::PathPattern;
pub use tls::{HttpVersions, TlsOptions, WrittenFiles, self_signed_names, write_self_signed};

/// The PKCE S256 code challenge for `verifier`: base64url without padding of
/// its SHA-256, as `/auth/authorize` expects (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    auth::s256_challenge(verifier)
}

use crate::error::{Error, Result};
use accept::Builders;
use handler::Shared;

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
    let builders = Arc::new(Builders::new(HttpVersions::Both));
    accept::run(listener, shared, builders, None, limits, shutdown).await;
}

/// How a port is served besides its routes: connection limits, TLS (None:
/// cleartext) and the HTTP versions it speaks.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    pub limits: ServeLimits,
    pub tls: Option<TlsOptions>,
    pub http: HttpVersions,
}

/// `serve` with TLS and a choice of HTTP versions. Fails, before serving
/// anything, if the TLS options do not make a usable server config.
pub async fn serve_with(
    listener: TcpListener,
    config: Arc<ServeConfig>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let shared = Shared::new(&config, Instant::now());
    serve_shared(listener, shared, options, shutdown).await
}

async fn serve_shared(
    listener: TcpListener,
    shared: Shared,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let tls = options
        .tls
        .as_ref()
        .map(|t| t.acceptor(options.http))
        .transpose()?;
    let builders = Arc::new(Builders::new(options.http));
    let shared = Arc::new(shared);
    accept::run(listener, shared, builders, tls, options.limits, shutdown).await;
    Ok(())
}

/// A server on 127.0.0.1 with an OS-chosen port, running on the current
/// tokio runtime. Dropping it stops accepting and closes connections once
/// their in-flight requests finish.
pub struct LocalServer {
    addr: SocketAddr,
    tls: bool,
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
    spawn_local_opts(
        config,
        ServeOptions {
            limits,
            ..ServeOptions::default()
        },
    )
    .await
}

/// `spawn_local` over TLS (HTTP/1.1 and HTTP/2 by ALPN), e.g. with
/// `TlsOptions::from_self_signed(&tls::server::self_signed(..)?)`.
pub async fn spawn_local_tls(config: ServeConfig, tls: TlsOptions) -> Result<LocalServer> {
    spawn_local_opts(
        config,
        ServeOptions {
            tls: Some(tls),
            ..ServeOptions::default()
        },
    )
    .await
}

/// `spawn_local_tls` with a fresh `tls::server::self_signed` set for
/// 127.0.0.1 and localhost, returned for clients: `ca_pem` to trust, and the
/// client pair, which `require_client_cert` makes mandatory (any certificate
/// signed by that CA passes).
pub async fn spawn_local_self_signed(
    config: ServeConfig,
    require_client_cert: bool,
) -> Result<(LocalServer, crate::tls::server::SelfSigned)> {
    let made = crate::tls::server::self_signed(&["127.0.0.1".into(), "localhost".into()])
        .map_err(Error::Other)?;
    let mut tls = TlsOptions::from_self_signed(&made)?;
    if require_client_cert {
        tls = tls.require_client_cert_pem(&made.ca_pem)?;
    }
    Ok((spawn_local_tls(config, tls).await?, made))
}

/// `spawn_local` with any options.
pub async fn spawn_local_opts(config: ServeConfig, options: ServeOptions) -> Result<LocalServer> {
    config.validate()?;
    let tls = options
        .tls
        .as_ref()
        .map(|t| t.acceptor(options.http))
        .transpose()?;
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
    let builders = Arc::new(Builders::new(options.http));
    let task = tokio::spawn(accept::run(
        listener,
        shared.clone(),
        builders,
        tls.clone(),
        options.limits,
        async {
            let _ = stopped.await;
        },
    ));
    Ok(LocalServer {
        addr: local,
        tls: tls.is_some(),
        shared,
        stop: Some(stop),
        task: Some(task),
    })
}

impl LocalServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// "http://127.0.0.1:PORT" ("https://" with TLS), no trailing slash.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
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

    /// Users deleted through `DELETE /auth/me`.
    pub fn deleted_users(&self) -> u64 {
        self.shared.auth.as_ref().map_or(0, |a| a.deleted_users())
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

/// `serve`'s certificate flags.
#[derive(Clone, Debug, Default)]
pub enum CliTls {
    /// Cleartext.
    #[default]
    None,
    /// `--tls-cert FILE --tls-key FILE`.
    Files { cert: PathBuf, key: PathBuf },
    /// `--tls-self-signed DIR [--tls-name NAME]...`.
    SelfSigned { dir: PathBuf, names: Vec<String> },
}

/// `serve`'s flags besides `--listen` and `--config`.
#[derive(Clone, Debug, Default)]
pub struct CliOptions {
    pub limits: ServeLimits,
    pub http: HttpVersions,
    pub tls: CliTls,
    /// `--tls-client-ca FILE`.
    pub client_ca: Option<PathBuf>,
    /// `--tls-require-client-cert`: the self-signed CA's client certificates.
    pub require_client_cert: bool,
}

/// `barrage-runner serve --listen ADDR [--config FILE] [TLS flags]`: the
/// builtin routes unless a config file is given; runs until Ctrl-C or
/// SIGTERM. Files are read (and bad ones refused, naming the flag) before
/// the port is bound.
pub async fn run_cli(listen: &str, config: Option<&Path>, opts: CliOptions) -> Result<()> {
    let config = match config {
        Some(path) => ServeConfig::load(path)?,
        None => ServeConfig::builtin(),
    };
    if opts.require_client_cert && !matches!(opts.tls, CliTls::SelfSigned { .. }) {
        return Err(Error::invalid(
            "--tls-require-client-cert",
            "needs --tls-self-signed (or give the client CA with --tls-client-ca)",
        ));
    }
    let client_ca = match &opts.client_ca {
        Some(path) if matches!(opts.tls, CliTls::None) => {
            return Err(Error::invalid(
                "--tls-client-ca",
                format!(
                    "{} is for a TLS port: add --tls-cert/--tls-key or --tls-self-signed",
                    path.display()
                ),
            ));
        }
        Some(path) => {
            Some(crate::tls::read_certs(path).map_err(|m| Error::invalid("--tls-client-ca", m))?)
        }
        None => None,
    };
    let given = match &opts.tls {
        CliTls::Files { cert, key } => {
            let mut t = TlsOptions::from_files(cert, key)?;
            t.client_ca = client_ca.clone();
            // A key that is not the certificate's is refused before binding.
            t.acceptor(opts.http)?;
            Some(t)
        }
        _ => None,
    };
    let listener = bind(listen).await.map_err(|source| Error::Listen {
        addr: listen.into(),
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| Error::Listen {
        addr: listen.into(),
        source,
    })?;
    let tls = match (&opts.tls, given) {
        (_, Some(t)) => Some(t),
        (CliTls::SelfSigned { dir, names }, None) => {
            let names = self_signed_names(addr.ip(), names);
            let made = crate::tls::server::self_signed(&names)
                .map_err(|m| Error::invalid("--tls-name", m))?;
            let files = write_self_signed(dir, &made)?;
            tracing::info!(
                ca = %files.ca.display(),
                client_cert = %files.client_cert.display(),
                client_key = %files.client_key.display(),
                ?names,
                "self-signed certificate made; clients trust the CA file"
            );
            let mut t = TlsOptions::from_self_signed(&made)?;
            t.client_ca = client_ca;
            if opts.require_client_cert {
                t = t.require_client_cert_pem(&made.ca_pem)?;
            }
            Some(t)
        }
        _ => None,
    };
    let shared = Shared::new(&config, Instant::now());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, http = ?opts.http, routes = shared.routes.len(), "barrage target server listening");
    if let Some(t) = &tls {
        tracing::info!(
            client_certificates = if t.client_ca.is_some() {
                "required"
            } else {
                "not asked"
            },
            "TLS"
        );
    }
    for route in shared.describe_routes() {
        tracing::info!("route {route}");
    }
    let limits = opts.limits;
    tracing::info!(
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        max_connections = limits.max_connections,
        "connection limits"
    );
    let options = ServeOptions {
        limits,
        tls,
        http: opts.http,
    };
    serve_shared(listener, shared, options, crate::signal::terminate()).await?;
    tracing::info!("target server stopped");
    Ok(())
}
