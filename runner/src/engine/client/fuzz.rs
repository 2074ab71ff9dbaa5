//! Seeded property tests for the response parser: random and mutated
//! responses, split at random points, never panic, never hang, never keep
//! more than the caps, and read the same however the bytes are split.
//! Seeds are fixed, so a failure names its seed and case and replays.

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{parse::parse_chunk_size, parse::parse_head, *};

/// A connection whose server side is a list of byte runs, each delivered by
/// one read at most (a read may take less), then the end of the stream.
struct Scripted {
    chunks: VecDeque<Vec<u8>>,
    reads: usize,
    /// More reads than this is a client that keeps reading nothing: a hang.
    max_reads: usize,
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.reads += 1;
        assert!(self.reads <= self.max_reads, "the client keeps reading");
        if let Some(mut c) = self.chunks.pop_front() {
            let n = c.len().min(buf.remaining());
            buf.put_slice(&c[..n]);
            if n < c.len() {
                self.chunks.push_front(c.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What a send came to, comparable across different splits of one stream.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok {
        status: u16,
        body: Option<Vec<u8>>,
        received: u64,
    },
    Io,
    Malformed,
    TooLarge,
}

const MAX_BODY: usize = 300;

/// Sends one request over `chunks`; checks what must hold whatever the bytes.
fn send(rt: &tokio::runtime::Runtime, chunks: Vec<Vec<u8>>, want: Want) -> Outcome {
    let total: usize = chunks.iter().map(Vec::len).sum();
    let stream = Scripted {
        chunks: chunks.into(),
        reads: 0,
        max_reads: total + 16,
    };
    let mut conn = Conn::new(stream);
    let res = rt.block_on(conn.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", want));
    // The read buffer never holds more than a head, a line or a read's worth
    // beyond what a response needs: bounded by the caps, not by the input.
    assert!(
        conn.buf.capacity() <= 2 * (MAX_HEAD + MAX_READ),
        "buffer grew to {}",
        conn.buf.capacity()
    );
    match res {
        Ok(r) => {
            assert!(r.received <= total as u64, "counted more than was sent");
            if let Some(b) = &r.body {
                assert!(b.len() <= want.max_body, "kept {} bytes", b.len());
            }
            assert!(want.body || r.body.is_none());
            assert!(r.headers.len() <= MAX_HEADERS);
            Outcome::Ok {
                status: r.status,
                body: r.body.map(|b| b.to_vec()),
                received: r.received,
            }
        }
        Err(e) => {
            assert!(
                conn.is_closed(),
                "a failed exchange leaves the connection closed"
            );
            match e {
                Error::Io(_) | Error::Stale(_) => Outcome::Io,
                Error::Malformed(_) => Outcome::Malformed,
                Error::BodyTooLarge(n) => {
                    assert_eq!(n, want.max_body);
                    Outcome::TooLarge
                }
            }
        }
    }
}

fn pick<'a>(rng: &mut fastrand::Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.usize(..xs.len())]
}

/// A plausible response, often valid, with the framings and headers that
/// decide how a body is read.
fn response(rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.usize(0..3) {
        out.extend_from_slice(
            pick(
                rng,
                &[
                    "HTTP/1.1 100 Continue\r\n\r\n",
                    "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
                ],
            )
            .as_bytes(),
        );
    }
    let version = pick(rng, &["HTTP/1.1", "HTTP/1.0", "HTTP/1.1", "HTTP/2.0"]);
    let status = pick(
        rng,
        &[
            "200 OK",
            "201 Created",
            "204 No Content",
            "304 Not Modified",
            "404 Not Found",
            "500 Oops",
            "101 Switching",
        ],
    );
    out.extend_from_slice(format!("{version} {status}\r\n").as_bytes());
    let body: Vec<u8> = (0..rng.usize(0..2 * MAX_BODY))
        .map(|_| rng.u8(..))
        .collect();
    let framing = rng.u8(0..4);
    for _ in 0..rng.usize(0..4) {
        let h = pick(
            rng,
            &[
                "Connection: close",
                "Connection: keep-alive",
                "X-A: b",
                "Content-Length: 3",
                "Transfer-Encoding: gzip",
                "Content-Length: 1, 1",
                "Set-Cookie: a=b; Path=/",
            ],
        );
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        0 => out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes()),
        1 => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n"),
        _ => out.extend_from_slice(b"\r\n"),
    }
    if framing == 1 {
        let mut rest = &body[..];
        while !rest.is_empty() {
            let n = rng.usize(1..=rest.len());
            let ext = pick(rng, &["", ";a=1", "; name=\"v\"", ";x"]);
            out.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        out.extend_from_slice(b"0\r\n");
        for _ in 0..rng.usize(0..3) {
            out.extend_from_slice(b"X-Trailer: t\r\n");
        }
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(&body);
    }
    out
}

/// Byte flips, insertions, deletions, truncation and repeats.
fn mutate(rng: &mut fastrand::Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.usize(0..4) {
        if b.is_empty() {
            break;
        }
        let i = rng.usize(..b.len());
        match rng.u8(0..6) {
            0 => b[i] = rng.u8(..),
            1 => b.insert(
                i,
                pick(rng, &["\r", "\n", ":", ";", " ", "0", "f"]).as_bytes()[0],
            ),
            2 => {
                b.remove(i);
            }
            3 => b.truncate(i),
            4 => {
                let j = rng.usize(i..b.len());
                let run = b[i..j].to_vec();
                b.splice(i..i, run);
            }
            _ => b[i] = pick(rng, &["\r", "\n", "0"]).as_bytes()[0],
        }
    }
    b
}

/// `b` cut at random points into runs (sometimes single bytes).
fn split(rng: &mut fastrand::Rng, b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = b;
    while !rest.is_empty() {
        let n = if rng.u8(0..4) == 0 {
            1
        } else {
            rng.usize(1..=rest.len())
        };
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn random_and_mutated_responses_read_the_same_however_split() {
    let rt = runtime();
    for seed in 0..4000u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut resp = response(&mut rng);
        if rng.bool() {
            resp = mutate(&mut rng, resp);
        }
        let want = Want {
            head: rng.u8(0..8) == 0,
            body: rng.bool(),
            headers: rng.bool(),
            max_body: if rng.bool() {
                MAX_BODY
            } else {
                DEFAULT_MAX_BODY
            },
        };
        let whole = send(&rt, vec![resp.clone()], want);
        let parts = split(&mut rng, &resp);
        let pieces = send(&rt, parts, want);
        assert_eq!(
            whole,
            pieces,
            "seed {seed}: {:?}",
            String::from_utf8_lossy(&resp)
        );
    }
}

#[test]
fn random_bytes_never_panic_or_hang() {
    let rt = runtime();
    for seed in 0..3000u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        // Mostly noise, sometimes after a valid status line so the noise
        // lands in the headers or the body.
        let mut b = if rng.bool() {
            b"HTTP/1.1 200 OK\r\n".to_vec()
        } else {
            Vec::new()
        };
        let alphabet =
            b"\r\n:; 0123456789abcdefHTTP/1.chunkedContent-LengthTransfer-Encoding\x00\xff";
        for _ in 0..rng.usize(0..600) {
            b.push(if rng.bool() {
                alphabet[rng.usize(..alphabet.len())]
            } else {
                rng.u8(..)
            });
        }
        let parts = split(&mut rng, &b);
        let want = Want {
            head: false,
            body: true,
            headers: true,
            max_body: MAX_BODY,
        };
        send(&rt, parts, want);
    }
}

#[test]
fn parse_head_and_chunk_sizes_take_any_bytes() {
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..20_000 {
        let mut b = response(&mut rng);
        b = mutate(&mut rng, b);
        b.truncate(rng.usize(..=b.len()));
        if let Ok(Some(h)) = parse_head(&b, true) {
            assert!(h.len <= b.len());
            let kept: usize = h.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
            assert!(kept <= h.len);
        }
        let line: Vec<u8> = (0..rng.usize(0..24))
            .map(|_| b"0123456789abcdefABCDEFxX; =\r\n-+"[rng.usize(..31)])
            .collect();
        if let Ok(n) = parse_chunk_size(&line) {
            // Only hex digits before any `;`, at most 16 of them.
            let digits = line.split(|&c| c == b';').next().unwrap().trim_ascii();
            assert!(
                digits.len() <= 16 && digits.iter().all(u8::is_ascii_hexdigit),
                "{line:?}"
            );
            assert_eq!(
                u64::from_str_radix(std::str::from_utf8(digits).unwrap(), 16).unwrap(),
                n
            );
        }
    }
}

#[test]
fn endless_streams_stop_at_the_caps() {
    let rt = runtime();
    let want = Want {
        head: false,
        body: true,
        headers: true,
        max_body: 64 * 1024,
    };
    let endless = |head: &[u8], unit: &[u8]| {
        let mut chunks = vec![head.to_vec()];
        chunks.extend(std::iter::repeat_n(unit.to_vec(), (4 << 20) / unit.len()));
        chunks
    };
    let chunk = [b"3e8\r\n".as_slice(), &[b'x'; 1000], b"\r\n"].concat();
    for (chunks, expect) in [
        // A head without end.
        (
            endless(
                b"HTTP/1.1 200 OK\r\n",
                b"X-A: bbbbbbbbbbbbbbbbbbbbbbbbbb\r\n",
            ),
            Outcome::Malformed,
        ),
        // A header line without end.
        (
            endless(
                b"HTTP/1.1 200 OK\r\nX-A: ",
                b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            ),
            Outcome::Malformed,
        ),
        // A chunk-size line without end.
        (
            endless(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;",
                b"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
            ),
            Outcome::Malformed,
        ),
        // Trailers without end.
        (
            endless(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
                b"X: y\r\n",
            ),
            Outcome::Malformed,
        ),
        // Bodies kept past the cap, in each framing.
        (
            endless(b"HTTP/1.1 200 OK\r\n\r\n", &[b'x'; 1000]),
            Outcome::TooLarge,
        ),
        (
            endless(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                &chunk,
            ),
            Outcome::TooLarge,
        ),
    ] {
        let name = String::from_utf8_lossy(&chunks[0]).into_owned();
        assert_eq!(send(&rt, chunks, want), expect, "{name}");
    }
}
