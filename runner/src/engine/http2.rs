//! HTTP/2 for the engine (`target.http: "2"`): each runner keeps a small pool
//! of connections and every request is one stream on one of them.
//!
//! Framing, HPACK and flow control are the `h2` crate's (hyper's own HTTP/2
//! implementation), driven directly rather than through hyper's client: a
//! stream is then recorded exactly like an HTTP/1.1 exchange (`send` returns
//! the same `client::Response`), with no client pool or per-request boxing
//! in between.
//!
//! Connections are made lazily, on the first request that picks a slot, and
//! replaced on the next use once they fail or the server sends GOAWAY. A
//! closed-model user keeps one slot (user i takes slot i mod `connections`;
//! the open model's iteration n takes slot n mod `connections`), so N users
//! share the connections evenly, and the users that one read of responses
//! wakes all send their next requests on that same connection, which its
//! driver then writes together. At a constant level of one scenario, a
//! connection's users and its driver run as one task, the driver polled
//! after the users it woke (see `host`), on an executor pinned to one
//! thread (see `pinned`); elsewhere (ramps, several
//! scenarios, the open model) the driver has a task of its own, polled once
//! per burst of wake-ups (see `batch`). A connection whose server
//! allows fewer concurrent streams than are asked for queues the rest inside
//! `h2` until a stream ends (SETTINGS_MAX_CONCURRENT_STREAMS is respected,
//! never exceeded).
//!
//! Requests arrive serialized as HTTP/1.1 (see `request`): redirects and
//! sizes all work on those bytes already. Here the head is parsed back with
//! `httparse` into the `http::Request` that `h2` encodes; Host becomes
//! `:authority` and the headers HTTP/2 forbids (connection, keep-alive,
//! transfer-encoding, upgrade, ...) are dropped. Measured (release, a GET
//! with four headers): parsing and building take about 0.9 µs, building the
//! same `http::Request` from its parts about 0.65 µs; the `http::Request`
//! is needed either way, and the 0.25 µs difference did not justify a second
//! way of building every request. The request is built in place rather than
//! through `http`'s builders, and a Host equal to the target's authority
//! reuses it parsed once (`Pool::known`). Each connection also keeps the
//! last request it built with its bytes (`Slot::build`): the next request
//! with the same bytes, as every request of a step without templates is,
//! is a copy of it, not parsed again.
//!
//! What a hostile server can make us hold is bounded by our settings, not by
//! what it sends: headers (`MAX_HEADER_LIST`), window sizes (so unread data
//! per connection), no server push; a body is kept only when a capture needs
//! it and only up to `maxBody`, otherwise it is counted and released at once.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use h2::{
    Reason, SendStream,
    client::{Builder, ResponseFuture, SendRequest},
};
use hyper::{
    HeaderMap, Method, Request, Uri,
    header::{HeaderName, HeaderValue},
    http::uri::{self, Authority, PathAndQuery, Scheme},
};
use tokio::task::AbortHandle;

use self::batch::Batched;
pub(super) use self::host::{Driver, host};
use super::{
    Recorder, Resent, client,
    client::{Response, Want},
    resolve::Resolver,
};
use crate::{
    snapshot::ErrorKind,
    tls::client::{ALPN_H2, TlsTarget},
};

/// The largest response header block we accept (SETTINGS_MAX_HEADER_LIST_SIZE,
/// as HPACK counts it: names, values and 32 bytes per field). The same order
/// as HTTP/1.1's 64 KiB head limit.
pub const MAX_HEADER_LIST: u32 = 64 * 1024;
/// Per-stream receive window: how much of one response body a server may
/// send before we have read it.
const STREAM_WINDOW: u32 = 1024 * 1024;
/// Per-connection receive window: all unread body bytes on one connection.
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// Attempts to find a usable connection before a request is written (a
/// connection that turned out closed or going away sends nothing).
const MAX_UNSENT: u32 = 3;
/// Headers in a request we send (the plan's, rendered).
const MAX_REQUEST_HEADERS: usize = 256;
/// Requests up to this size (head and body) are kept per connection, built,
/// for the next request with the same bytes (see `Slot::build`): what that
/// holds is bounded by the plan's requests and the connections.
const BUILT_MAX: usize = 4 * 1024;
/// Streams one connection opens before it is replaced: client stream ids
/// are the odd numbers below 2^31, about 1.07 billion of them, which a long
/// test at a high rate on few connections does reach. Well before that, the
/// next request takes a new connection and the old one ends with its last
/// stream.
const STREAM_BUDGET: u32 = 1_000_000_000;

/// The connections of one runner.
pub struct Pool {
    authority: String,
    /// The run's name cache (shared with its HTTP/1.1 connections).
    resolver: Arc<Resolver>,
    /// `authority` as a request's `:authority` (None if it does not parse
    /// as one: each request's Host is then parsed, and fails, on its own).
    known: Option<Authority>,
    /// An https target's TLS (ALPN offers h2); none for h2c.
    tls: Option<TlsTarget>,
    scheme: Scheme,
    slots: Box<[Slot]>,
    /// `STREAM_BUDGET`, smaller in tests.
    stream_budget: u32,
}

#[derive(Default)]
struct Slot {
    live: Mutex<Option<Live>>,
    /// Held while this slot connects: the users that find it empty meanwhile
    /// wait for that connection instead of each making their own.
    connecting: tokio::sync::Mutex<()>,
    /// Drivers of this slot's connections (the current one, and old ones
    /// still finishing their streams), aborted with the pool.
    drivers: Mutex<Vec<AbortHandle>>,
    /// The last request built for this slot (see `Slot::build`).
    built: Mutex<Option<Built>>,
}

/// A request as sent (`wire`, serialized as HTTP/1.1) and the h2 request
/// made from it.
struct Built {
    wire: Box<[u8]>,
    head: Request<()>,
    body: Bytes,
}

#[derive(Clone)]
struct Live {
    send: SendRequest<Bytes>,
    /// Set when the connection's driver ends (closed, failed, done).
    dead: Arc<AtomicBool>,
    /// Streams opened on it so far.
    opened: u32,
}

/// A stream just opened (or not) on a connection, named by its `dead` flag
/// (to `forget` that connection if it turned out unusable).
type Opened = (
    Arc<AtomicBool>,
    Result<(ResponseFuture, SendStream<Bytes>), Failed>,
);

impl Live {
    /// Opens a stream for `head` (h2 queues it if the server's concurrency
    /// limit is reached).
    ///
    /// The slot's one `SendRequest` serves every user, rather than a clone
    /// per request: a clone and its drop each take h2's connection lock.
    /// `SendRequest` refuses a second stream while its last one waits for
    /// the server's concurrency limit (`poll_ready` is then pending); a
    /// fresh clone, which has no stream of its own waiting, takes it then,
    /// so streams over the limit queue inside h2 as before, at most one per
    /// user or in-flight iteration.
    fn open(&mut self, head: Request<()>, end: bool) -> Opened {
        // Nothing waits on this poll: a pending one is answered at once by
        // the clone below, never by a wake-up.
        let ready = self
            .send
            .poll_ready(&mut Context::from_waker(Waker::noop()));
        let opened = match ready {
            Poll::Ready(Ok(())) => self.send.send_request(head, end),
            // The connection is gone: nothing was sent.
            Poll::Ready(Err(_)) => return (self.dead.clone(), Err(Failed::Unsent)),
            Poll::Pending => self.send.clone().send_request(head, end),
        };
        let opened = opened.map_err(|e| {
            // The connection is closed or going away; anything else is this
            // request's own fault, and another connection would not take it
            // either.
            if e.is_io() || e.is_go_away() {
                Failed::Unsent
            } else {
                Failed::Other
            }
        });
        (self.dead.clone(), opened)
    }
}

impl Slot {
    /// The h2 request for `req`: a copy of the last one built for this slot
    /// when the bytes are the same (a step without templates: nearly every
    /// request, which then skips parsing its head again), else made from
    /// them and, if small, kept for next time. `None`: not sendable (see
    /// `to_h2`).
    ///
    /// The kept request has an authority of its own, not a clone of the
    /// pool's: each copy's reference count is then touched by the one
    /// thread that runs this slot's users (see `pinned`), rather than
    /// bounced between the cores with every request.
    fn build(
        &self,
        req: &[u8],
        scheme: &Scheme,
        known: Option<&Authority>,
    ) -> Option<(Request<()>, Bytes)> {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = built.as_ref()
            && *b.wire == *req
        {
            return Some((b.head.clone(), b.body.clone()));
        }
        let (head, body) = to_h2(req, scheme, known)?;
        if req.len() <= BUILT_MAX {
            let mut kept = head.clone();
            let mut uri = kept.uri().clone().into_parts();
            uri.authority = uri
                .authority
                .and_then(|a| Authority::try_from(a.as_str()).ok());
            if let Ok(uri) = Uri::from_parts(uri) {
                *kept.uri_mut() = uri;
            }
            *built = Some(Built {
                wire: req.into(),
                head: kept,
                body: body.clone(),
            });
        }
        Some((head, body))
    }

    /// Opens a stream for `head` on the slot's connection, counted as opened
    /// on it; `head` back if the slot has no connection that can take it
    /// (boxed: that is the rare path, to connect).
    fn open(&self, budget: u32, head: Request<()>, end: bool) -> Result<Opened, Box<Request<()>>> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match live.as_mut() {
            Some(l) if !l.dead.load(Ordering::Acquire) && l.opened < budget => {
                l.opened += 1;
                Ok(l.open(head, end))
            }
            _ => Err(Box::new(head)),
        }
    }

    /// The slot's connection if it can take another stream, counted as
    /// opened on it.
    fn current(&self, budget: u32) -> Option<Live> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let l = live.as_mut()?;
        if l.dead.load(Ordering::Acquire) || l.opened >= budget {
            return None;
        }
        l.opened += 1;
        Some(l.clone())
    }

    /// Runs `driver` in a task of its own, aborted with the pool.
    fn spawn(&self, driver: Driver) {
        let driver = tokio::spawn(driver);
        let mut drivers = self.drivers.lock().unwrap_or_else(|e| e.into_inner());
        drivers.retain(|d| !d.is_finished());
        drivers.push(driver.abort_handle());
    }

    /// Drops the connection whose `dead` flag is `bad` from the slot, unless
    /// it was replaced already.
    fn forget(&self, bad: &Arc<AtomicBool>) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.as_ref().is_some_and(|l| Arc::ptr_eq(&l.dead, bad)) {
            *live = None;
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for s in self.slots.iter() {
            for d in s
                .drivers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
            {
                d.abort();
            }
        }
    }
}

impl Pool {
    /// A pool of `connections` (at least 1) connections to `authority`,
    /// none made yet: over TLS when `tls` is given (h2 by ALPN), else
    /// cleartext (h2c, prior knowledge).
    pub fn new(
        authority: &str,
        connections: u32,
        tls: Option<TlsTarget>,
        resolver: Arc<Resolver>,
    ) -> Pool {
        Pool {
            authority: authority.to_string(),
            resolver,
            known: Authority::try_from(authority).ok(),
            scheme: if tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            tls,
            slots: (0..connections.max(1)).map(|_| Slot::default()).collect(),
            stream_budget: STREAM_BUDGET,
        }
    }

    /// How many connections the pool keeps (user i uses connection
    /// i mod this).
    pub fn connections(&self) -> usize {
        self.slots.len()
    }

    /// Takes the drivers of connection `i` that a hosting task still had
    /// when its users were done (see `host`): each gets a task of its own.
    pub fn adopt(&self, i: usize, drivers: Vec<Driver>) {
        for d in drivers {
            self.slots[i % self.slots.len()].spawn(d);
        }
    }

    /// Lets every connection go: each closes (GOAWAY) once its streams are
    /// done; a later request would make a new one.
    pub fn close(&self) {
        for s in self.slots.iter() {
            s.live.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }

    /// Slot `i`'s connection, made now if it has none (or a dead one): the
    /// slow path of `Slot::open`, its future boxed so that every request's
    /// does not carry a connect's and a TLS handshake's state.
    async fn get(&self, i: usize, recorder: Option<&Recorder>) -> Result<Live, ErrorKind> {
        let slot = &self.slots[i];
        if let Some(l) = slot.current(self.stream_budget) {
            return Ok(l);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(l) = slot.current(self.stream_budget) {
            return Ok(l);
        }
        let (stream, setup) =
            client::dial(&self.resolver, &self.authority, self.tls.as_ref()).await?;
        if let Some(r) = recorder {
            r.record_connection(setup.connect, setup.handshake);
        }
        // Over TLS the server must have chosen h2 by ALPN. One that offers
        // only HTTP/1.1 refuses the handshake (`tls_refused`); one that
        // ignores ALPN fails each request as `http`. "auto" takes either.
        if self.tls.is_some() && stream.alpn() != Some(ALPN_H2) {
            return Err(ErrorKind::Http);
        }
        let live = handshake(stream, slot).await?;
        *slot.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(live.clone());
        Ok(live)
    }
}

/// Starts HTTP/2 on a connected stream (TCP, or TLS once ALPN chose h2),
/// its driver a task of its own that `slot` can abort.
async fn handshake<S>(stream: S, slot: &Slot) -> Result<Live, ErrorKind>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = builder()
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    let dead = Arc::new(AtomicBool::new(false));
    let ended = Ended(dead.clone());
    // Its error reaches each stream on it; nothing more to do here. Hosted
    // by the users' task, the driver is polled after them (see `host`);
    // in a task of its own, once per burst of wake-ups (see `batch`).
    if host::hosting() {
        let driver: Driver = Box::pin(async move {
            let _ended = ended;
            let _ = conn.await;
        });
        if let Err(driver) = host::hand(driver) {
            slot.spawn(driver);
        }
    } else {
        slot.spawn(Box::pin(async move {
            let _ended = ended;
            let _ = Batched::new(conn).await;
        }));
    }
    Ok(Live {
        send,
        dead,
        opened: 1,
    })
}

/// Marks a connection dead when its driver ends, or is dropped unfinished
/// (aborted, or with the task that hosted it).
struct Ended(Arc<AtomicBool>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Our side's settings: the limits that bound what a server can make us hold.
fn builder() -> Builder {
    let mut b = Builder::new();
    b.enable_push(false)
        // No stream may be opened by the server (push is off anyway).
        .max_concurrent_streams(0)
        .max_header_list_size(MAX_HEADER_LIST)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(16 * 1024);
    b
}

/// How one attempt on a connection failed.
enum Failed {
    /// Nothing was written: the connection was closed or going away.
    Unsent,
    /// The server said it did not process the stream (REFUSED_STREAM, or a
    /// graceful GOAWAY whose last stream is below it): safe to send again.
    Unprocessed,
    BodyTooLarge,
    Other,
}

/// One request as a stream on `user`'s connection of the pool (the slot
/// `user % connections`).
///
/// A stream the server refused unprocessed (RFC 9113, 8.7) is sent once
/// more, on a fresh connection if its own is going away, and counted in
/// `resent` like an HTTP/1.1 stale keep-alive resend. Any other failure of
/// a sent stream (a reset, a GOAWAY with an error, the connection lost) is
/// `http`: it may have been processed, and is never sent twice.
pub(super) async fn send(
    pool: &Pool,
    recorder: Option<&Recorder>,
    user: usize,
    req: &[u8],
    want: Want,
    resent: &mut Resent<'_>,
) -> Result<Response, ErrorKind> {
    let i = user % pool.slots.len();
    let mut unsent = 0;
    let mut retried = false;
    loop {
        // Taken again for a second attempt (h2 consumes the request).
        let (head, body) = pool.slots[i]
            .build(req, &pool.scheme, pool.known.as_ref())
            .ok_or(ErrorKind::Http)?;
        let end = body.is_empty();
        let (conn, opened) = match pool.slots[i].open(pool.stream_budget, head, end) {
            Ok(o) => o,
            Err(head) => Box::pin(pool.get(i, recorder)).await?.open(*head, end),
        };
        match attempt(opened, body, want).await {
            Ok(res) => return Ok(res),
            Err(Failed::Unsent) if unsent < MAX_UNSENT => {
                unsent += 1;
                pool.slots[i].forget(&conn);
            }
            Err(Failed::Unprocessed) if !retried => {
                retried = true;
                *resent.attempts += 1;
                *resent.bytes += req.len() as u64;
            }
            Err(Failed::BodyTooLarge) => return Err(ErrorKind::BodyTooLarge),
            Err(_) => return Err(ErrorKind::Http),
        }
    }
}

async fn attempt(
    opened: Result<(ResponseFuture, SendStream<Bytes>), Failed>,
    body: Bytes,
    want: Want,
) -> Result<Response, Failed> {
    let (response, mut stream) = opened?;
    if !body.is_empty() {
        // Buffered by h2 and sent as the server's window allows; a server
        // that never opens it holds the request until its timeout.
        stream.send_data(body, true).map_err(|e| classify(&e))?;
    }
    let res = response.await.map_err(|e| classify(&e))?;
    let (parts, mut recv) = res.into_parts();
    let mut received = head_size(&parts);
    let headers = if want.headers {
        parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect()
    } else {
        Vec::new()
    };
    let mut kept: Option<Vec<u8>> = want.body.then(Vec::new);
    let mut body_len = 0u64;
    while let Some(chunk) = recv.data().await {
        // The head came: the server processed the stream, whatever a reset
        // or GOAWAY now claims, so it is never sent again.
        let chunk = chunk.map_err(|_| Failed::Other)?;
        received += chunk.len() as u64;
        body_len += chunk.len() as u64;
        // Released as soon as read, so the window reopens for the rest.
        let _ = recv.flow_control().release_capacity(chunk.len());
        if let Some(k) = kept.as_mut() {
            if k.len() + chunk.len() > want.max_body {
                return Err(Failed::BodyTooLarge);
            }
            k.extend_from_slice(&chunk);
        }
    }
    Ok(Response {
        status: parts.status.as_u16(),
        headers,
        body: kept.map(Bytes::from),
        received,
        body_len,
    })
}

fn classify(e: &h2::Error) -> Failed {
    let refused = e.is_reset() && e.is_remote() && e.reason() == Some(Reason::REFUSED_STREAM);
    // h2 reports a remote GOAWAY with NO_ERROR only to the streams above its
    // last stream id (a GOAWAY with an error code reaches every stream, sent
    // or not, so it cannot be told apart and is not resent).
    let above_last = e.is_go_away() && e.is_remote() && e.reason() == Some(Reason::NO_ERROR);
    if refused || above_last {
        Failed::Unprocessed
    } else {
        Failed::Other
    }
}

/// Received bytes for a response head: HPACK's compressed size is not
/// visible, so the head counts as it would in HTTP/1.1 (`HTTP/1.1 200 \r\n`,
/// `name: value\r\n` per field, the blank line), an upper bound of what
/// came over the wire for it. Bodies count exactly (DATA payloads).
fn head_size(parts: &hyper::http::response::Parts) -> u64 {
    let fields: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    (14 + fields + 2) as u64
}

/// Headers that are HTTP/1.1 connection management, which HTTP/2 forbids
/// (RFC 9113, 8.2.2); `host` becomes `:authority`.
fn connection_specific(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" | "host"
    )
}

/// The HTTP/2 request (head and body) for a serialized HTTP/1.1 one; `None`
/// when it cannot be sent as HTTP/2 (then counted as `http`, like a request
/// whose template rendered something unsendable).
///
/// `known` is the target's own authority, parsed once: the Host of nearly
/// every request, reused rather than parsed again.
fn to_h2(req: &[u8], scheme: &Scheme, known: Option<&Authority>) -> Option<(Request<()>, Bytes)> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    let httparse::Status::Complete(len) = parsed.parse(req).ok()? else {
        return None;
    };
    let mut authority = None;
    // Not sized by the parsed headers: Host, often the only one, does not go
    // in, and an empty map costs no allocation.
    let mut headers = HeaderMap::new();
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if name == hyper::header::HOST {
            authority.get_or_insert(h.value);
            continue;
        }
        if connection_specific(&name) {
            continue;
        }
        // `te` is allowed only as "trailers".
        if name == hyper::header::TE && !h.value.eq_ignore_ascii_case(b"trailers") {
            continue;
        }
        headers.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let authority = match (authority?, known) {
        (a, Some(k)) if a == k.as_str().as_bytes() => k.clone(),
        (a, _) => Authority::try_from(a).ok()?,
    };
    let mut uri = uri::Parts::default();
    uri.scheme = Some(scheme.clone());
    uri.authority = Some(authority);
    uri.path_and_query = Some(PathAndQuery::try_from(parsed.path?).ok()?);
    let mut head = Request::new(());
    *head.method_mut() = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    *head.uri_mut() = Uri::from_parts(uri).ok()?;
    *head.headers_mut() = headers;
    Some((head, Bytes::copy_from_slice(&req[len..])))
}

mod batch;
mod host;
pub(super) mod pinned;
#[cfg(test)]
mod tests;
