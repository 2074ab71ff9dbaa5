//! A small HTTP/1.1 client driven directly in the virtual user's own task.
//!
//! Each virtual user (closed model) or pooled slot (open model) owns one
//! keep-alive connection, the way wrk and k6 use theirs: no shared pool to
//! contend on, no per-connection task, no channels. A request arrives already
//! serialized (see `request`) and goes out with one write; the response is
//! parsed with `httparse` from a read buffer that starts small, grows only as
//! far as a response needs and is shrunk back afterwards, so thousands of
//! idle users cost little.
//!
//! Any error leaves the connection in an unknown state: it is marked closed
//! and the caller makes a new one for the next request.

use std::io;

use bytes::Bytes;

mod parse;
mod stream;
use parse::{parse_chunk_size, parse_head};
pub use stream::{Stream, dial};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Read buffer a connection starts with (and returns to after a large
/// response): enough for a typical response head and a small body.
const INITIAL_BUF: usize = 1024;
/// A buffer that grew beyond this is replaced by a fresh `INITIAL_BUF` one
/// once its response is done.
const SHRINK_ABOVE: usize = 4 * 1024;
/// The smallest read worth a system call.
const MIN_READ: usize = 512;
/// The largest single read, for bodies that are long.
const MAX_READ: usize = 64 * 1024;
/// Status line and headers together (hyper's default limit was 400 KB
/// of buffer; 64 KB of head is far beyond any sane response).
const MAX_HEAD: usize = 64 * 1024;
/// Headers in one response (hyper's default is 100).
const MAX_HEADERS: usize = 100;
/// A chunk-size line, or all trailers together.
const MAX_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 64 * 1024;
/// Interim (1xx) responses before the real one: a server that sends them
/// without end is broken, not slow.
const MAX_INTERIM: usize = 16;
/// The default cap on a kept body (`maxBody`).
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

pub struct Conn<S = Stream> {
    stream: S,
    /// Received bytes not yet consumed are `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// At least one response was read in full on this connection: if the
    /// server closes it before answering the next request, that is a stale
    /// keep-alive connection, not a failed request.
    reused: bool,
    /// Not reusable: the server said so, the body ran to the end of the
    /// connection, or an exchange did not complete.
    closed: bool,
    /// Body bytes of the response being read (without chunk framing).
    body_len: u64,
}

/// What the caller needs from a response beyond its status.
#[derive(Clone, Copy, Debug, Default)]
pub struct Want {
    /// The request was a HEAD: the response has no body, whatever its
    /// headers say.
    pub head: bool,
    /// Keep the body (a JSON capture reads it).
    pub body: bool,
    /// Keep the headers (a header capture reads them).
    pub headers: bool,
    /// The most body bytes kept when `body`: a longer body fails the
    /// exchange (`Error::BodyTooLarge`) instead of growing without bound.
    pub max_body: usize,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// (name, value) as received; empty unless `Want::headers`.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Kept only when `Want::body`.
    pub body: Option<Bytes>,
    /// Bytes on the wire: status line, headers and body (chunk framing and
    /// interim 1xx responses included).
    pub received: u64,
    /// The body's length (decoded from chunks), counted whether kept or not.
    pub body_len: u64,
}

impl Response {
    /// The first value of header `name` (any case), when it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| {
                v.iter()
                    .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
                    .then(|| std::str::from_utf8(v).ok())
                    .flatten()
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reused keep-alive connection was closed by the server before any
    /// byte of the response: the request may be retried on a new connection.
    #[error("the server closed the idle connection: {0}")]
    Stale(io::Error),
    #[error("{0}")]
    Io(io::Error),
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    /// A body to keep (for a capture) is longer than `Want::max_body`.
    #[error("the response body is longer than {0} bytes")]
    BodyTooLarge(usize),
}

impl Error {
    pub fn is_stale(&self) -> bool {
        matches!(self, Error::Stale(_))
    }
}

/// How the body of a response ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

#[derive(Debug)]
struct Head {
    /// Bytes of status line and headers, the blank line included.
    len: usize,
    status: u16,
    framing: Framing,
    keep_alive: bool,
    headers: Vec<(String, Vec<u8>)>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::with_capacity(INITIAL_BUF),
            pos: 0,
            reused: false,
            closed: false,
            body_len: 0,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether an idle kept-alive connection can take a request: false (and
    /// the connection marked closed) when the server has already closed it,
    /// or sent something unasked, so that the caller makes a new connection
    /// before writing rather than sending a request into a closed socket.
    ///
    /// One non-blocking poll. On a tokio `TcpStream` it costs no system call
    /// in the usual case: the last read of the previous response drained the
    /// socket and cleared tokio's cached readiness, so the poll returns
    /// `Pending` at once; only when the reactor has seen the socket become
    /// readable (the server's FIN, or stray bytes) does it read.
    ///
    /// Over TLS the same holds one layer down: rustls reads records only when
    /// the socket is readable. Records that carry no data (a TLS 1.3
    /// NewSessionTicket sent after the handshake, a key update) are
    /// processed and the poll is still `Pending`, so a good connection stays
    /// ready; application bytes, a close_notify or a TCP close make it
    /// `Ready` and the connection is not used.
    pub fn ready(&mut self) -> bool {
        if self.closed {
            return false;
        }
        if !self.reused {
            return true;
        }
        debug_assert!(
            self.avail().is_empty(),
            "a reusable connection has no leftovers"
        );
        if self.buf.capacity() - self.buf.len() < MIN_READ {
            self.buf.reserve(MIN_READ);
        }
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let spare = self.buf.spare_capacity_mut();
        let mut rb = tokio::io::ReadBuf::uninit(spare);
        match std::pin::Pin::new(&mut self.stream).poll_read(&mut cx, &mut rb) {
            std::task::Poll::Pending => true,
            // End of stream, bytes nobody asked for (such as a 408 before
            // an idle close), or an error: not usable. Nothing was sent.
            std::task::Poll::Ready(_) => {
                self.closed = true;
                false
            }
        }
    }

    /// Writes one serialized request and reads its whole response (counting
    /// the body, and keeping what `want` asks for), so the connection can be
    /// reused. After an error, or a response that ends the connection,
    /// `is_closed` is true.
    pub async fn send(&mut self, req: &[u8], want: Want) -> Result<Response, Error> {
        // Until the exchange completes the connection is in an unknown state;
        // a cancelled (timed-out) exchange leaves it so.
        self.closed = true;
        // A TLS stream may keep records it could not write yet until
        // flushed; on TCP the flush is a no-op without a system call.
        let written = match self.stream.write_all(req).await {
            Ok(()) => self.stream.flush().await,
            e => e,
        };
        if let Err(e) = written {
            return Err(if self.reused && is_reset(&e) {
                Error::Stale(e)
            } else {
                Error::Io(e)
            });
        }
        let mut received = 0u64;
        let mut interim = 0;
        let head = loop {
            let head = self.read_head(want, received == 0).await?;
            received += head.len as u64;
            self.consume(head.len);
            // Interim responses (100 Continue, 103 Early Hints) precede the
            // real one; 101 would switch protocols, which we never ask for.
            if (100..200).contains(&head.status) && head.status != 101 {
                interim += 1;
                if interim > MAX_INTERIM {
                    return Err(Error::Malformed("too many interim (1xx) responses"));
                }
                continue;
            }
            break head;
        };
        self.body_len = 0;
        let mut kept = want.body.then(|| Kept {
            bytes: Vec::new(),
            max: want.max_body,
        });
        let framing = if want.head || head.status < 200 || head.status == 204 || head.status == 304
        {
            Framing::Empty
        } else {
            head.framing
        };
        match framing {
            Framing::Empty => {}
            Framing::Length(n) => received += self.read_length(n, &mut kept).await?,
            Framing::Chunked => received += self.read_chunked(&mut kept).await?,
            Framing::Close => received += self.read_to_close(&mut kept).await?,
        }
        // Bytes beyond the response: the server is out of step with us.
        let reusable = head.keep_alive
            && framing != Framing::Close
            && head.status != 101
            && self.pos == self.buf.len();
        self.closed = !reusable;
        self.reused = true;
        self.reset_buf();
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body: kept.map(|k| Bytes::from(k.bytes)),
            received,
            body_len: self.body_len,
        })
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        debug_assert!(self.pos <= self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// After a response: an empty buffer, back to its small size if a large
    /// response made it grow.
    fn reset_buf(&mut self) {
        if self.pos == self.buf.len() && self.buf.capacity() > SHRINK_ABOVE {
            self.buf = Vec::with_capacity(INITIAL_BUF);
            self.pos = 0;
        }
    }

    /// Reads more bytes after the unconsumed ones, with room for at least
    /// `hint` (within MIN_READ..=MAX_READ); 0 at the end of the stream.
    async fn fill(&mut self, hint: usize) -> io::Result<usize> {
        let want = hint.clamp(MIN_READ, MAX_READ);
        if self.buf.capacity() - self.buf.len() < want && self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// Reads until a complete response head is buffered, and parses it.
    /// `first` is true while nothing of this response has arrived yet.
    async fn read_head(&mut self, want: Want, first: bool) -> Result<Head, Error> {
        loop {
            if !self.avail().is_empty()
                && let Some(head) = parse_head(self.avail(), want.headers)?
            {
                return Ok(head);
            }
            if self.avail().len() >= MAX_HEAD {
                return Err(Error::Malformed("response head too large"));
            }
            // Double the buffer when a partial head fills it.
            let hint = self.avail().len().max(MIN_READ);
            // Only a reused connection can be stale.
            let nothing_yet = first && self.reused && self.avail().is_empty();
            let stale = |e: io::Error| {
                if nothing_yet && is_reset(&e) {
                    Error::Stale(e)
                } else {
                    Error::Io(e)
                }
            };
            match self.fill(hint).await {
                Ok(0) => return Err(stale(io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => {}
                Err(e) => return Err(stale(e)),
            }
        }
    }

    /// Reads (and counts) a body of exactly `n` bytes.
    async fn read_length(&mut self, n: u64, kept: &mut Option<Kept>) -> Result<u64, Error> {
        if let Some(k) = kept.as_mut() {
            // Known to be too long: fail before reading any of it.
            k.check(n)?;
            // What the server announces is not trusted with more than 1 MiB
            // ahead of the bytes themselves.
            k.bytes.reserve(n.min(1 << 20) as usize);
        }
        let mut rem = n;
        while rem > 0 {
            if self.avail().is_empty() {
                let hint = usize::try_from(rem).unwrap_or(MAX_READ);
                if self.fill(hint).await.map_err(Error::Io)? == 0 {
                    return Err(eof());
                }
            }
            let take = self
                .avail()
                .len()
                .min(usize::try_from(rem).unwrap_or(usize::MAX));
            if let Some(k) = kept.as_mut() {
                k.extend(&self.avail()[..take])?;
            }
            self.consume(take);
            rem -= take as u64;
        }
        self.body_len += n;
        Ok(n)
    }

    /// Reads a body up to the end of the stream.
    async fn read_to_close(&mut self, kept: &mut Option<Kept>) -> Result<u64, Error> {
        let mut total = 0u64;
        loop {
            let n = self.avail().len();
            if let Some(k) = kept.as_mut() {
                k.extend(self.avail())?;
            }
            self.consume(n);
            total += n as u64;
            self.body_len += n as u64;
            if self.fill(16 * 1024).await.map_err(Error::Io)? == 0 {
                return Ok(total);
            }
        }
    }

    /// Reads a `Transfer-Encoding: chunked` body and its trailers; returns
    /// the bytes on the wire.
    async fn read_chunked(&mut self, kept: &mut Option<Kept>) -> Result<u64, Error> {
        let mut total = 0u64;
        loop {
            let line = self.read_line(MAX_LINE, "chunk-size line too long").await?;
            total += line as u64;
            let size = parse_chunk_size(&self.avail()[..line])?;
            self.consume(line);
            if size == 0 {
                break;
            }
            total += self.read_length(size, kept).await?;
            // The CRLF after the data.
            while self.avail().len() < 2 {
                if self.fill(MIN_READ).await.map_err(Error::Io)? == 0 {
                    return Err(eof());
                }
            }
            if &self.avail()[..2] != b"\r\n" {
                return Err(Error::Malformed("chunk data not followed by CRLF"));
            }
            self.consume(2);
            total += 2;
        }
        // Trailer fields, up to an empty line, all together within
        // MAX_TRAILERS (read_line never returns a line longer than asked).
        let mut trailers = 0usize;
        loop {
            let left = MAX_TRAILERS.saturating_sub(trailers);
            if left == 0 {
                return Err(Error::Malformed("trailers too long"));
            }
            let line = self.read_line(left, "trailers too long").await?;
            let empty = line <= 2
                && self.avail()[..line]
                    .iter()
                    .all(|&b| b == b'\r' || b == b'\n');
            self.consume(line);
            total += line as u64;
            trailers += line;
            if empty {
                return Ok(total);
            }
        }
    }

    /// Buffers a whole line of at most `max` bytes; returns its length with
    /// the line feed. A longer line is the error `too_long`, even when a
    /// single read brought it in whole.
    async fn read_line(&mut self, max: usize, too_long: &'static str) -> Result<usize, Error> {
        let mut searched = 0;
        loop {
            let avail = self.avail();
            let window = &avail[searched..avail.len().min(max)];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                return Ok(searched + i + 1);
            }
            searched += window.len();
            if searched >= max {
                return Err(Error::Malformed(too_long));
            }
            if self.fill(MIN_READ).await.map_err(Error::Io)? == 0 {
                return Err(eof());
            }
        }
    }
}

/// A body being kept, and its cap.
struct Kept {
    bytes: Vec<u8>,
    max: usize,
}

impl Kept {
    /// Fails when `more` bytes would take the body past its cap.
    fn check(&self, more: u64) -> Result<(), Error> {
        if (self.bytes.len() as u64).saturating_add(more) > self.max as u64 {
            Err(Error::BodyTooLarge(self.max))
        } else {
            Ok(())
        }
    }

    fn extend(&mut self, b: &[u8]) -> Result<(), Error> {
        self.check(b.len() as u64)?;
        self.bytes.extend_from_slice(b);
        Ok(())
    }
}

fn eof() -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed before the response ended",
    ))
}

/// What a server closing a connection looks like to the client.
fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tls_tests;
