//! What keeps idle and slow clients from locking real ones out: a time limit
//! for sending a request head, one for an idle keep-alive connection, and a
//! cap on open connections at which idle connections are shed.
//!
//! hyper's own `header_read_timeout` runs from the moment a connection starts
//! waiting for a head, so it cannot tell an idle keep-alive connection (fine
//! for a while) from a slowloris one (bytes trickling in). Here the socket is
//! wrapped: while no request is in progress its reads are timed, with the
//! idle limit until the first byte of a head and the header limit from then
//! on. A request in progress (its body, the injected latency, a stall) is
//! never cut.
//!
//! On a TLS port the wrapper sits below TLS, so it times the handshake's
//! bytes like a head's (the accept loop also bounds the whole handshake by
//! the header limit). On HTTP/2 many streams share a connection and frames
//! (pings, window updates) may arrive between them, so there is no head to
//! time: only the idle limit applies, counted from the last stream's end,
//! and it is enforced by a GOAWAY from the connection task; the wrapper cuts
//! a client that ignores it `GOAWAY_GRACE` later.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// After the idle timeout an HTTP/2 connection is sent GOAWAY by its
/// connection task (so a client knows no stream was lost); `Timed` cuts one
/// that has not closed this much later.
pub(crate) const GOAWAY_GRACE: Duration = Duration::from_secs(2);

/// `serve`'s connection limits; `--header-read-timeout`, `--idle-timeout` and
/// `--max-connections` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// From a head's first byte to its end. Default 10 s.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and no byte of the next head
    /// is closed after this long (from its accept or its last response).
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// Open connections. At the cap, connections without a request in
    /// progress (idle for at least `SHED_GRACE`) are closed to make room;
    /// with none, new ones wait in the listen backlog. Running out of file
    /// descriptors first sheds the same way. Default 20,000.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 20_000,
        }
    }
}

/// A connection must have had no request in progress for this long before it
/// is shed at the cap, so a client that just connected gets to send its head.
pub(crate) const SHED_GRACE: Duration = Duration::from_millis(200);

/// One connection's request state, shared by its service (which marks
/// requests; on HTTP/2 several at once) and its socket wrapper (which times
/// the waits between them).
pub(crate) struct ConnState {
    base: Instant,
    /// Requests (HTTP/2: streams) in progress.
    in_flight: AtomicU32,
    /// Bumped by each request's start and by the end of a TLS handshake, so
    /// the socket wrapper starts a new wait even if it was not polled
    /// meanwhile.
    epoch: AtomicU64,
    /// When the connection last became free (accept, handshake or
    /// response), in µs since `base`.
    free_since_us: AtomicU64,
    /// `VERSION_*`: what the connection's requests have been.
    version: AtomicU8,
}

const VERSION_UNKNOWN: u8 = 0;
const VERSION_HTTP1: u8 = 1;
const VERSION_HTTP2: u8 = 2;

impl ConnState {
    pub(crate) fn new() -> ConnState {
        ConnState {
            base: Instant::now(),
            in_flight: AtomicU32::new(0),
            epoch: AtomicU64::new(0),
            free_since_us: AtomicU64::new(0),
            version: AtomicU8::new(VERSION_UNKNOWN),
        }
    }

    fn request_started(&self, version: hyper::Version) {
        if self.version.load(Ordering::Relaxed) == VERSION_UNKNOWN {
            let v = if version == hyper::Version::HTTP_2 {
                VERSION_HTTP2
            } else {
                VERSION_HTTP1
            };
            self.version.store(v, Ordering::Relaxed);
        }
        self.epoch.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Marks a request started until the guard is dropped: when its
    /// response is ready, or when hyper drops it unanswered (an HTTP/2
    /// stream the client reset), so no request stays in flight forever.
    pub(crate) fn request(self: &Arc<Self>, version: hyper::Version) -> InFlight {
        self.request_started(version);
        InFlight(self.clone())
    }

    fn request_done(&self) {
        // Stored before the count drops, so whoever sees the connection free
        // sees this time; the latest of concurrent streams' ends wins.
        self.free_since_us
            .fetch_max(self.now_us(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// A TLS handshake finished: the wait for the first request starts now.
    pub(crate) fn restart_wait(&self) {
        self.free_since_us
            .fetch_max(self.now_us(), Ordering::Release);
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection speaks HTTP/2 (known from ALPN before any request).
    pub(crate) fn set_multiplexed(&self) {
        self.version.store(VERSION_HTTP2, Ordering::Relaxed);
    }

    pub(crate) fn is_multiplexed(&self) -> bool {
        self.version.load(Ordering::Relaxed) == VERSION_HTTP2
    }

    pub(crate) fn is_http1(&self) -> bool {
        self.version.load(Ordering::Relaxed) == VERSION_HTTP1
    }

    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    /// None while a request is in progress.
    pub(crate) fn free_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let us = self.free_since_us.load(Ordering::Acquire);
        Some(self.base + Duration::from_micros(us))
    }

    /// Whether the connection may be closed to make room: no request in
    /// progress, and none for `SHED_GRACE`.
    pub(crate) fn sheddable(&self, now: Instant) -> bool {
        self.free_since()
            .is_some_and(|since| now.saturating_duration_since(since) >= SHED_GRACE)
    }
}

/// One request in progress on its connection; see `ConnState::request`.
pub(crate) struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// When a connection with no request in progress, free since `free_since`,
/// whose next head began at `head_started` (if it did), is cut.
pub(crate) fn wait_deadline(
    limits: &ServeLimits,
    free_since: Instant,
    head_started: Option<Instant>,
) -> Instant {
    match head_started {
        Some(h) => h + limits.header_read_timeout,
        None => free_since + limits.idle_timeout,
    }
}

/// The socket, with reads between requests timed by `wait_deadline`.
pub(crate) struct Timed<S> {
    inner: S,
    state: Arc<ConnState>,
    limits: ServeLimits,
    /// `ConnState::epoch` when last looked at: a change starts a new wait.
    seen_epoch: u64,
    head_started: Option<Instant>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Timed<S> {
    pub(crate) fn new(inner: S, state: Arc<ConnState>, limits: ServeLimits) -> Self {
        Timed {
            inner,
            state,
            limits,
            seen_epoch: 0,
            head_started: None,
            timer: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let epoch = this.state.epoch.load(Ordering::Relaxed);
        if epoch != this.seen_epoch {
            this.seen_epoch = epoch;
            this.head_started = None;
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(free_since) = this.state.free_since() else {
            // A request is in progress: its body may take as long as it takes.
            return polled;
        };
        // HTTP/2 has no head to wait for between requests (pings, window
        // updates and settings may arrive any time): only the idle limit,
        // past the GOAWAY the connection task sends at that limit.
        let multiplexed = this.state.is_multiplexed();
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                if !multiplexed {
                    this.head_started.get_or_insert_with(Instant::now);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let deadline = if multiplexed {
                    free_since + this.limits.idle_timeout + GOAWAY_GRACE
                } else {
                    wait_deadline(&this.limits, free_since, this.head_started)
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
                if timer.deadline() != deadline.into() {
                    timer.as_mut().reset(deadline.into());
                }
                match timer.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        let what = if this.head_started.is_some() {
                            "request head not complete within the header read timeout"
                        } else {
                            "connection idle past the idle timeout"
                        };
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
                    }
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_limit_until_a_head_begins_then_the_header_limit() {
        let limits = ServeLimits {
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
            max_connections: 10,
        };
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(wait_deadline(&limits, t0, None), t0 + s(30));
        // A head that began late still gets its full header time...
        assert_eq!(wait_deadline(&limits, t0, Some(t0 + s(29))), t0 + s(31));
        // ...and one that began at once only that.
        assert_eq!(wait_deadline(&limits, t0, Some(t0)), t0 + s(2));
    }

    #[test]
    fn only_connections_free_for_the_grace_period_are_shed() {
        let c = ConnState::new();
        let now = Instant::now();
        assert!(!c.sheddable(now), "just accepted");
        assert!(c.sheddable(now + SHED_GRACE));
        c.request_started(hyper::Version::HTTP_2);
        c.request_started(hyper::Version::HTTP_2);
        assert!(!c.sheddable(now + SHED_GRACE * 10), "busy");
        c.request_done();
        assert!(
            !c.sheddable(now + SHED_GRACE * 10),
            "one of two streams still busy"
        );
        c.request_done();
        assert!(!c.sheddable(Instant::now()));
        assert!(c.sheddable(Instant::now() + SHED_GRACE));
    }
}
