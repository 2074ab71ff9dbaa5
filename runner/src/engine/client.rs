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
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

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

pub struct Conn<S = TcpStream> {
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
}

impl Error {
    pub fn is_stale(&self) -> bool {
        matches!(self, Error::Stale(_))
    }
}

pub async fn connect(authority: &str) -> io::Result<Conn> {
    // An IP literal is parsed without any resolver; a host name goes through
    // the system's.
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    Ok(Conn::new(stream))
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
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Writes one serialized request and reads its whole response (counting
    /// the body, and keeping what `want` asks for), so the connection can be
    /// reused. After an error, or a response that ends the connection,
    /// `is_closed` is true.
    pub async fn send(&mut self, req: &[u8], want: Want) -> Result<Response, Error> {
        // Until the exchange completes the connection is in an unknown state;
        // a cancelled (timed-out) exchange leaves it so.
        self.closed = true;
        if let Err(e) = self.stream.write_all(req).await {
            return Err(if self.reused && is_reset(&e) {
                Error::Stale(e)
            } else {
                Error::Io(e)
            });
        }
        let mut received = 0u64;
        let head = loop {
            let head = self.read_head(want, received == 0).await?;
            received += head.len as u64;
            self.consume(head.len);
            // Interim responses (100 Continue, 103 Early Hints) precede the
            // real one; 101 would switch protocols, which we never ask for.
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            break head;
        };
        let mut kept = want.body.then(Vec::new);
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
            body: kept.map(Bytes::from),
            received,
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
    async fn read_length(&mut self, n: u64, kept: &mut Option<Vec<u8>>) -> Result<u64, Error> {
        if let Some(k) = kept.as_mut() {
            k.reserve(n.min(1 << 20) as usize);
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
                k.extend_from_slice(&self.avail()[..take]);
            }
            self.consume(take);
            rem -= take as u64;
        }
        Ok(n)
    }

    /// Reads a body up to the end of the stream.
    async fn read_to_close(&mut self, kept: &mut Option<Vec<u8>>) -> Result<u64, Error> {
        let mut total = 0u64;
        loop {
            let n = self.avail().len();
            if let Some(k) = kept.as_mut() {
                k.extend_from_slice(self.avail());
            }
            self.consume(n);
            total += n as u64;
            if self.fill(16 * 1024).await.map_err(Error::Io)? == 0 {
                return Ok(total);
            }
        }
    }

    /// Reads a `Transfer-Encoding: chunked` body and its trailers; returns
    /// the bytes on the wire.
    async fn read_chunked(&mut self, kept: &mut Option<Vec<u8>>) -> Result<u64, Error> {
        let mut total = 0u64;
        loop {
            let line = self.read_line(MAX_LINE).await?;
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
        // Trailer fields, up to an empty line.
        let mut trailers = 0;
        loop {
            let line = self.read_line(MAX_TRAILERS - trailers).await?;
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

    /// Buffers a whole line; returns its length with the line feed.
    async fn read_line(&mut self, max: usize) -> Result<usize, Error> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.avail()[searched..].iter().position(|&b| b == b'\n') {
                return Ok(searched + i + 1);
            }
            searched = self.avail().len();
            if searched >= max {
                return Err(Error::Malformed("chunk line too long"));
            }
            if self.fill(MIN_READ).await.map_err(Error::Io)? == 0 {
                return Err(eof());
            }
        }
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

/// Parses a response head at the start of `buf`: `None` while incomplete.
/// Synchronous, so httparse's header array never lives in a future.
fn parse_head(buf: &[u8], keep_headers: bool) -> Result<Option<Head>, Error> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut raw);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::Malformed("too many headers")),
        Err(httparse::Error::Status) => return Err(Error::Malformed("invalid status line")),
        Err(httparse::Error::Version) => return Err(Error::Malformed("invalid HTTP version")),
        Err(_) => return Err(Error::Malformed("invalid header")),
    };
    let status = res.code.ok_or(Error::Malformed("no status"))?;
    let http11 = res.version == Some(1);
    let mut length: Option<u64> = None;
    let mut te = false;
    let mut chunked = false;
    let (mut close, mut keep_alive) = (false, false);
    for h in res.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            // `5` or, as some servers repeat it, `5, 5`: all values equal.
            for v in h.value.split(|&b| b == b',') {
                let n = parse_decimal(v.trim_ascii())
                    .ok_or(Error::Malformed("invalid content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(Error::Malformed("conflicting content-length"));
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
            // The last coding applied decides; a later header field appends.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let framing = if te {
        // Transfer-Encoding overrides Content-Length (RFC 9112, 6.3); in an
        // HTTP/1.0 response its framing cannot be trusted.
        if chunked && http11 {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    let keep_alive = !close && (http11 || keep_alive) && !(te && length.is_some());
    let headers = if keep_headers {
        res.headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Some(Head {
        len,
        status,
        framing,
        keep_alive,
        headers,
    }))
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// `1a;ext=v\r\n` -> 26.
fn parse_chunk_size(line: &[u8]) -> Result<u64, Error> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        return Err(Error::Malformed("invalid chunk size"));
    }
    let mut n = 0u64;
    for &b in digits {
        let d = (b as char)
            .to_digit(16)
            .ok_or(Error::Malformed("invalid chunk size"))?;
        n = n * 16 + u64::from(d);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncWriteExt, DuplexStream, duplex};

    const GET: Want = Want {
        head: false,
        body: true,
        headers: true,
    };

    /// A connection whose server side is scripted by hand: `chunks` are
    /// written one by one (each in its own read), then the server half is
    /// dropped when `close` (end of stream).
    async fn exchange(
        chunks: Vec<Vec<u8>>,
        close: bool,
        want: Want,
    ) -> (Result<Response, Error>, Conn<DuplexStream>, Vec<u8>) {
        let (client, mut server) = duplex(64 * 1024);
        let mut conn = Conn::new(client);
        let srv = tokio::spawn(async move {
            let mut req = vec![0u8; 4096];
            let n = server.read(&mut req).await.unwrap();
            req.truncate(n);
            for c in chunks {
                server.write_all(&c).await.unwrap();
                server.flush().await.unwrap();
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            // Kept open until the client is done, unless `close`.
            (req, (!close).then_some(server))
        });
        let res = conn.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", want).await;
        let (req, _server) = srv.await.unwrap();
        (res, conn, req)
    }

    async fn one(resp: &str, want: Want) -> (Result<Response, Error>, Conn<DuplexStream>) {
        let (r, c, _) = exchange(vec![resp.as_bytes().to_vec()], false, want).await;
        (r, c)
    }

    #[tokio::test]
    async fn content_length_body_and_headers() {
        let resp = "HTTP/1.1 201 Created\r\nContent-Length: 11\r\nX-Token: abc\r\nx-token: second\r\n\r\n{\"id\":\"7\"}\n";
        let (res, conn, req) = exchange(vec![resp.as_bytes().to_vec()], false, GET).await;
        let res = res.unwrap();
        assert_eq!(req, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(res.status, 201);
        assert_eq!(res.body.as_deref(), Some(&b"{\"id\":\"7\"}\n"[..]));
        assert_eq!(res.header("x-token"), Some("abc"));
        assert_eq!(res.header("X-TOKEN"), Some("abc"));
        assert_eq!(res.header("missing"), None);
        assert_eq!(res.received, resp.len() as u64);
        assert!(!conn.is_closed());
    }

    #[tokio::test]
    async fn body_and_headers_are_kept_only_when_wanted() {
        let resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nA: b\r\n\r\nok";
        let (res, conn) = one(resp, Want::default()).await;
        let res = res.unwrap();
        assert_eq!(res.status, 200);
        assert!(res.body.is_none());
        assert!(res.headers.is_empty());
        assert_eq!(res.received, resp.len() as u64);
        assert!(!conn.is_closed());
    }

    #[tokio::test]
    async fn chunked_with_extensions_and_trailers() {
        let resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n";
        let (res, conn) = one(resp, GET).await;
        let res = res.unwrap();
        assert_eq!(res.body.as_deref(), Some(&b"hello, world"[..]));
        assert_eq!(res.received, resp.len() as u64);
        assert!(!conn.is_closed());
    }

    #[tokio::test]
    async fn chunked_split_across_reads() {
        // Boundaries inside the size line, the data, the CRLF after the data
        // and the trailers.
        let parts = [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1",
            "0\r",
            "\n0123456789abc",
            "def\r",
            "\n3\r\nxyz",
            "\r",
            "\n0\r\nTrail",
            "er: x\r\n",
            "\r\n",
        ];
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let (res, conn, _) = exchange(
            parts.iter().map(|p| p.as_bytes().to_vec()).collect(),
            false,
            GET,
        )
        .await;
        let res = res.unwrap();
        assert_eq!(res.body.as_deref(), Some(&b"0123456789abcdefxyz"[..]));
        assert_eq!(res.received, total as u64);
        assert!(!conn.is_closed());
    }

    #[tokio::test]
    async fn response_split_byte_by_byte() {
        for resp in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3;x\r\nllo\r\n0\r\nT: 1\r\n\r\n",
        ] {
            let bytes = resp.bytes().map(|b| vec![b]).collect();
            let (res, conn, _) = exchange(bytes, false, GET).await;
            let res = res.unwrap();
            assert_eq!(res.status, 200);
            assert_eq!(res.body.as_deref(), Some(&b"hello"[..]));
            assert_eq!(res.received, resp.len() as u64);
            assert!(!conn.is_closed(), "{resp}");
        }
    }

    #[tokio::test]
    async fn no_body_for_head_204_304() {
        // HEAD: Content-Length describes the body a GET would get.
        let head = Want { head: true, ..GET };
        let (res, conn) = one("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", head).await;
        assert_eq!(res.unwrap().body.as_deref(), Some(&b""[..]));
        assert!(!conn.is_closed());
        for resp in [
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        ] {
            let (res, conn) = one(resp, GET).await;
            let res = res.unwrap();
            assert_eq!(res.body.as_deref(), Some(&b""[..]));
            assert_eq!(res.received, resp.len() as u64);
            assert!(!conn.is_closed(), "{resp}");
        }
    }

    #[tokio::test]
    async fn interim_1xx_responses_are_skipped() {
        let resp = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (res, conn) = one(resp, GET).await;
        let res = res.unwrap();
        assert_eq!(res.status, 200);
        assert_eq!(res.body.as_deref(), Some(&b"ok"[..]));
        assert_eq!(res.received, resp.len() as u64);
        assert!(!conn.is_closed());
    }

    #[tokio::test]
    async fn read_to_close_without_length() {
        let resp = "HTTP/1.1 200 OK\r\nX: y\r\n\r\nall of this until the end";
        let (res, conn, _) = exchange(vec![resp.as_bytes().to_vec()], true, GET).await;
        let res = res.unwrap();
        assert_eq!(res.body.as_deref(), Some(&b"all of this until the end"[..]));
        assert_eq!(res.received, resp.len() as u64);
        assert!(conn.is_closed(), "a read-to-close connection is not reused");
    }

    #[tokio::test]
    async fn connection_close_and_http10() {
        for (resp, reusable) in [
            (
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 2\r\n\r\nok",
                false,
            ),
            ("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
            (
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
                true,
            ),
            ("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", true),
            // Transfer-Encoding overrides Content-Length, but such a
            // response ends the connection.
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                false,
            ),
            // More than the response: out of step.
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", false),
        ] {
            let (res, conn) = one(resp, GET).await;
            let res = res.unwrap();
            assert_eq!(res.status, 200, "{resp}");
            assert_eq!(res.body.as_deref(), Some(&b"ok"[..]), "{resp}");
            assert_eq!(conn.is_closed(), !reusable, "{resp}");
        }
    }

    #[tokio::test]
    async fn malformed_responses_are_errors() {
        for resp in [
            "HTTP/1.1 OK\r\n\r\n",
            "HTTX/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad\0: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x2\r\n\r\nok",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
        ] {
            let (res, conn) = one(resp, GET).await;
            assert!(matches!(res, Err(Error::Malformed(_))), "{resp}: {res:?}");
            assert!(conn.is_closed());
        }
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        let (res, _) = one(&many, GET).await;
        assert!(matches!(res, Err(Error::Malformed(_))));
    }

    #[tokio::test]
    async fn truncated_responses_are_io_errors() {
        for resp in [
            "HTTP/1.1 200 OK\r\nContent-Le",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        ] {
            let (res, conn, _) = exchange(vec![resp.as_bytes().to_vec()], true, GET).await;
            assert!(matches!(res, Err(Error::Io(_))), "{resp}: {res:?}");
            assert!(conn.is_closed());
        }
    }

    #[tokio::test]
    async fn large_bodies_grow_the_buffer_then_shrink_it() {
        let body = "x".repeat(300_000);
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (res, conn) = one(&resp, Want::default()).await;
        assert_eq!(res.unwrap().received, resp.len() as u64);
        assert!(conn.buf.capacity() <= SHRINK_ABOVE);
        // A large head too.
        let resp = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
            "y".repeat(20_000)
        );
        let (res, conn) = one(&resp, GET).await;
        assert_eq!(res.unwrap().header("x-big").map(str::len), Some(20_000));
        assert!(conn.buf.capacity() <= SHRINK_ABOVE);
    }

    #[tokio::test]
    async fn keep_alive_then_stale_close_is_retryable() {
        let (client, mut server) = duplex(4096);
        let mut conn = Conn::new(client);
        let srv = tokio::spawn(async move {
            let mut b = [0u8; 1024];
            let _ = server.read(&mut b).await.unwrap();
            server
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            let _ = server.read(&mut b).await.unwrap();
            server
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes")
                .await
                .unwrap();
            let _ = server.read(&mut b).await.unwrap();
            // Closed without an answer.
        });
        let req = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        assert_eq!(
            conn.send(req, GET).await.unwrap().body.as_deref(),
            Some(&b"ok"[..])
        );
        assert_eq!(
            conn.send(req, GET).await.unwrap().body.as_deref(),
            Some(&b"yes"[..])
        );
        let err = conn.send(req, GET).await.unwrap_err();
        assert!(err.is_stale(), "{err:?}");
        assert!(conn.is_closed());
        srv.await.unwrap();
    }

    #[tokio::test]
    async fn close_before_the_first_response_is_not_stale() {
        let (res, conn, _) = exchange(vec![], true, GET).await;
        let err = res.unwrap_err();
        assert!(!err.is_stale() && matches!(err, Error::Io(_)), "{err:?}");
        assert!(conn.is_closed());
    }

    #[tokio::test]
    async fn a_response_that_started_is_not_stale() {
        let (client, mut server) = duplex(4096);
        let mut conn = Conn::new(client);
        let srv = tokio::spawn(async move {
            let mut b = [0u8; 1024];
            let _ = server.read(&mut b).await.unwrap();
            server
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            let _ = server.read(&mut b).await.unwrap();
            server.write_all(b"HTTP/1.1 2").await.unwrap();
        });
        let req = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        conn.send(req, GET).await.unwrap();
        let err = conn.send(req, GET).await.unwrap_err();
        assert!(!err.is_stale(), "{err:?}");
        srv.await.unwrap();
    }

    /// A loopback server that answers `answer` requests per connection
    /// (keep-alive, as far as the client can tell) and then closes it
    /// without a word; returns its address and connection count.
    async fn one_shot_server(
        answer: usize,
    ) -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::sync::{Arc, atomic::AtomicUsize, atomic::Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let count = conns.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for _ in 0..answer {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                                return;
                            }
                        }
                        buf.clear();
                        let res = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        let _ = s.write_all(res).await;
                    }
                });
            }
        });
        (addr, conns)
    }

    async fn run_against(addr: std::net::SocketAddr, iterations: u32) -> crate::report::Report {
        let plan = format!(
            "target: {{baseUrl: 'http://{addr}'}}\nload: {{users: 1, iterations: {iterations}}}\nrequests: [{{name: a, path: /}}]"
        );
        let loaded = crate::planfile::from_str(&plan, std::path::PathBuf::new()).unwrap();
        let opts = crate::local::Options {
            slots: vec![crate::compile::Slot::SOLO],
            progress: false,
        };
        crate::local::run(&loaded, &opts).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_keep_alive_connection_closed_while_idle_is_retried_once() {
        use std::sync::atomic::Ordering;
        // Every connection serves one request: each later request finds its
        // connection closed, and succeeds on a new one.
        let (addr, conns) = one_shot_server(1).await;
        let r = run_against(addr, 5).await;
        assert_eq!(r.summary.total.requests, 5);
        assert_eq!(
            r.summary.total.errors, 0,
            "{:?}",
            r.summary.total.errors_by_kind
        );
        assert_eq!(conns.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fresh_connection_closed_without_an_answer_is_an_http_error() {
        use std::sync::atomic::Ordering;
        let (addr, conns) = one_shot_server(0).await;
        let r = run_against(addr, 3).await;
        assert_eq!(r.summary.total.requests, 3);
        assert_eq!(r.summary.total.errors, 3);
        assert_eq!(
            r.summary.total.errors_by_kind.get("http"),
            Some(&3),
            "{:?}",
            r.summary.total.errors_by_kind
        );
        // Not retried: one connection per request.
        assert_eq!(conns.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"0\r\n").unwrap(), 0);
        assert_eq!(parse_chunk_size(b"1A\r\n").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"ff ; name=value\r\n").unwrap(), 255);
        assert_eq!(parse_chunk_size(b"ffffffffffffffff\n").unwrap(), u64::MAX);
        assert!(parse_chunk_size(b"1ffffffffffffffff\r\n").is_err());
        assert!(parse_chunk_size(b"\r\n").is_err());
        assert!(parse_chunk_size(b"-1\r\n").is_err());
        assert!(parse_chunk_size(b"0x1\r\n").is_err());
    }
}
