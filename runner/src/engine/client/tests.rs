//! The client against scripted servers: framing, keep-alive, limits.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

const GET: Want = Want {
    head: false,
    body: true,
    headers: true,
    max_body: DEFAULT_MAX_BODY,
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
    one_bytes(resp.as_bytes().to_vec(), want).await
}

async fn one_bytes(resp: Vec<u8>, want: Want) -> (Result<Response, Error>, Conn<DuplexStream>) {
    let (r, c, _) = exchange(vec![resp], false, want).await;
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

#[tokio::test]
async fn endless_trailers_are_refused_within_the_cap() {
    // Far more than MAX_TRAILERS of trailer lines: before
    // the fix, `MAX_TRAILERS - trailers` underflowed and they never ended.
    let mut resp =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n".to_vec();
    let line = format!("X-T: {}\r\n", "t".repeat(1000));
    while resp.len() < MAX_TRAILERS + 32 * 1024 {
        resp.extend_from_slice(line.as_bytes());
    }
    let (res, conn) = one_bytes(resp, GET).await;
    assert!(
        matches!(res, Err(Error::Malformed("trailers too long"))),
        "{res:?}"
    );
    assert!(conn.is_closed());
    assert!(conn.buf.capacity() <= 2 * MAX_TRAILERS + MAX_READ);
}

#[tokio::test]
async fn a_line_longer_than_allowed_is_refused_even_when_read_whole() {
    let resp = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}\r\nx\r\n0\r\n\r\n",
        "e".repeat(MAX_LINE)
    );
    let (res, _) = one(&resp, GET).await;
    assert!(
        matches!(res, Err(Error::Malformed("chunk-size line too long"))),
        "{res:?}"
    );
    // A single trailer line longer than all trailers may be.
    let resp = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: {}\r\n\r\n",
        "v".repeat(MAX_TRAILERS)
    );
    let (res, _) = one(&resp, GET).await;
    assert!(matches!(res, Err(Error::Malformed(_))), "{res:?}");
}

#[tokio::test]
async fn kept_bodies_stop_at_the_cap_whatever_the_framing() {
    let capped = Want {
        max_body: 10,
        ..GET
    };
    let body = "x".repeat(11);
    for (resp, close) in [
        // Announced too long: refused before reading the body.
        (
            format!("HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n{body}"),
            false,
        ),
        (
            format!("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{body}"),
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nxxxxxx\r\n5\r\nxxxxx\r\n0\r\n\r\n"
                .to_string(),
            false,
        ),
        (format!("HTTP/1.1 200 OK\r\n\r\n{body}"), true),
    ] {
        let (res, conn, _) = exchange(vec![resp.clone().into_bytes()], close, capped).await;
        assert!(
            matches!(res, Err(Error::BodyTooLarge(10))),
            "{resp}: {res:?}"
        );
        assert!(
            conn.is_closed(),
            "{resp}: a connection left mid-body is not reused"
        );
    }
    // Exactly at the cap is fine; a body nobody keeps has no cap.
    let resp = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nxxxxxxxxxx";
    let (res, conn) = one(resp, capped).await;
    assert_eq!(res.unwrap().body.as_deref().map(<[u8]>::len), Some(10));
    assert!(!conn.is_closed());
    let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{body}");
    let (res, _) = one(
        &resp,
        Want {
            body: false,
            ..capped
        },
    )
    .await;
    assert_eq!(res.unwrap().received, resp.len() as u64);
}

#[tokio::test]
async fn endless_interim_responses_are_an_error() {
    let resp = "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM + 1);
    let (res, _) = one(&resp, GET).await;
    assert!(matches!(res, Err(Error::Malformed(_))), "{res:?}");
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_not_ready() {
    let (client, mut server) = duplex(4096);
    let mut conn = Conn::new(client);
    assert!(conn.ready(), "a fresh connection is ready");
    let srv = tokio::spawn(async move {
        let mut b = [0u8; 1024];
        let _ = server.read(&mut b).await.unwrap();
        server
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await
            .unwrap();
        server
    });
    let req = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    conn.send(req, GET).await.unwrap();
    let server = srv.await.unwrap();
    assert!(conn.ready(), "open and quiet: ready");
    assert!(conn.ready(), "asking twice changes nothing");
    drop(server);
    assert!(!conn.ready(), "closed by the server while idle");
    assert!(conn.is_closed());
}

#[tokio::test]
async fn stray_bytes_on_an_idle_connection_make_it_not_ready() {
    let (client, mut server) = duplex(4096);
    let mut conn = Conn::new(client);
    let srv = tokio::spawn(async move {
        let mut b = [0u8; 1024];
        let _ = server.read(&mut b).await.unwrap();
        server
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await
            .unwrap();
        server
    });
    conn.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", GET)
        .await
        .unwrap();
    let mut server = srv.await.unwrap();
    server
        .write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        .await
        .unwrap();
    assert!(!conn.ready());
    assert!(conn.is_closed());
}
