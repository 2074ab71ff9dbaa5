//! The accept loop and one task per connection: the TLS handshake (on a TLS
//! port), then HTTP/1.1 or HTTP/2 by ALPN or by the connection's first bytes
//! (hyper-util's auto builder), with the same handler for both: an HTTP/2
//! stream is one request.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
};
use tokio_rustls::TlsAcceptor;

use super::{
    handler::Shared,
    limits::{ConnState, SHED_GRACE, ServeLimits, Timed},
    tls::HttpVersions,
};
use crate::tls::server::{ALPN_H2, ALPN_HTTP11};

/// How long `serve` waits, after shutdown, for in-flight requests to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// hyper's minimum (8 KiB): the read buffer never grows past it, so 10,000
/// idle keep-alive connections cost little more than their two 8 KiB buffers.
/// Request heads over 8 KiB get 431, fine for a test target. HTTP/2 header
/// lists are held to the same size.
const MAX_BUF_SIZE: usize = 8 * 1024;

/// Streams one HTTP/2 connection may have open at once; more are refused
/// with REFUSED_STREAM (which a client may retry: nothing was processed).
pub(crate) const MAX_CONCURRENT_STREAMS: u32 = 256;

/// One builder per way a connection's HTTP version is settled: by its first
/// bytes, or by ALPN (or the port's only version).
pub(crate) struct Builders {
    sniff: auto::Builder<TokioExecutor>,
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
    versions: HttpVersions,
}

impl Builders {
    pub(crate) fn new(versions: HttpVersions) -> Builders {
        let make = || {
            let mut b = auto::Builder::new(TokioExecutor::new());
            b.http1()
                .keep_alive(true)
                .max_buf_size(MAX_BUF_SIZE)
                // The header and idle limits are `limits::Timed`'s: hyper's
                // would also count a keep-alive connection's idle time as
                // header time.
                .header_read_timeout(None);
            b.http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                .max_header_list_size(MAX_BUF_SIZE as u32);
            b
        };
        Builders {
            sniff: make(),
            h1: make().http1_only(),
            h2: make().http2_only(),
            versions,
        }
    }

    /// The builder for a connection whose TLS handshake chose `alpn` (None
    /// on cleartext or without ALPN).
    fn pick(&self, alpn: Option<&[u8]>) -> &auto::Builder<TokioExecutor> {
        match (alpn, self.versions) {
            (Some(ALPN_H2), _) | (_, HttpVersions::Http2Only) => &self.h2,
            (Some(ALPN_HTTP11), _) | (_, HttpVersions::Http1Only) => &self.h1,
            _ => &self.sniff,
        }
    }
}

/// What each connection task needs besides its socket.
#[derive(Clone)]
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) builders: Arc<Builders>,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) limits: ServeLimits,
    /// Changes when the server is stopping.
    stop: watch::Receiver<bool>,
    /// Bumped when room is needed: connections that `sheddable()` close.
    shed: watch::Receiver<u64>,
}

/// Serves on `listener` until `shutdown` completes, then lets in-flight
/// requests finish (for up to `DRAIN_TIMEOUT`) and returns.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    builders: Arc<Builders>,
    tls: Option<TlsAcceptor>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    // Each connection holds a receiver; `closed()` tells when all are gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (shed_tx, shed_rx) = watch::channel(0u64);
    let ctx = ConnCtx {
        shared,
        builders,
        tls,
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

async fn connection(stream: TcpStream, _slot: OwnedSemaphorePermit, mut ctx: ConnCtx) {
    // Small responses must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let state = Arc::new(ConnState::new());
    // Timed below TLS: it sees every byte the client sends, record by record.
    let io = Timed::new(stream, state.clone(), ctx.limits);
    let Some(acceptor) = ctx.tls.clone() else {
        let builders = ctx.builders.clone();
        return serve_http(io, builders.pick(None), state, ctx).await;
    };
    // The whole handshake must fit in the header read timeout, counted from
    // the accept: a client that connects and never finishes is closed.
    let handshake = tokio::time::timeout(ctx.limits.header_read_timeout, acceptor.accept(io));
    let mut handshake = std::pin::pin!(handshake);
    let tls = loop {
        tokio::select! {
            biased;
            done = &mut handshake => match done {
                Ok(Ok(tls)) => break tls,
                // Refused (e.g. no client certificate), broken or too slow:
                // rustls has sent its alert; nothing to log per connection.
                Ok(Err(_)) | Err(_) => return,
            },
            _ = ctx.stop.changed() => return,
            Ok(()) = ctx.shed.changed() => {
                if state.sheddable(Instant::now()) {
                    return;
                }
            }
        }
    };
    // Waiting for the first request starts now, not at the accept.
    state.restart_wait();
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() == Some(ALPN_H2) {
        state.set_multiplexed();
    }
    let builders = ctx.builders.clone();
    serve_http(tls, builders.pick(alpn.as_deref()), state, ctx).await
}

async fn serve_http<I>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    state: Arc<ConnState>,
    ctx: ConnCtx,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ConnCtx {
        shared,
        limits,
        mut stop,
        mut shed,
        ..
    } = ctx;
    let service = {
        let state = state.clone();
        service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let in_flight = state.request(req.version());
            let shared = shared.clone();
            async move {
                let resp = shared.handle(req).await;
                drop(in_flight);
                resp
            }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    // Only HTTP/2 connections use it: HTTP/1.1's idle limit is `Timed`'s.
    let idle = tokio::time::sleep(limits.idle_timeout);
    let mut idle = std::pin::pin!(idle);
    let mut goaway_sent = false;
    loop {
        tokio::select! {
            biased;
            _ = &mut conn => return,
            _ = stop.changed() => {
                // Finish the requests in progress, close idle connections now.
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
            () = &mut idle, if !goaway_sent && !state.is_http1() => {
                let now = Instant::now();
                match state.free_since() {
                    Some(since) if state.is_multiplexed() && now >= since + limits.idle_timeout => {
                        conn.as_mut().graceful_shutdown();
                        goaway_sent = true;
                    }
                    Some(since) if now < since + limits.idle_timeout => {
                        idle.as_mut().reset((since + limits.idle_timeout).into());
                    }
                    _ => idle.as_mut().reset((now + limits.idle_timeout).into()),
                }
            }
        }
    }
}
