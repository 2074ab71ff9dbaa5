//! The engine against targets that misbehave on purpose (see
//! support/hostile_server.rs), through the library's whole path: engine,
//! recorder, snapshot, report. For each case: the report counts exactly the
//! requests the server read (retries included), the error kind is the right
//! one, memory stays bounded, and every connection is let go within the
//! request's timeout.

#[path = "support/local_run.rs"]
mod local_run;

#[path = "support/hostile_server.rs"]
mod server;

use std::time::{Duration, Instant};

use barrage_runner::report::Report;
use local_run::run_solo;
use server::{Hostile, Reply};

/// Runs `requests` (a YAML list) against `srv` with `load`, and checks what
/// every case must hold: the client counted each request the server read,
/// and closed every connection.
async fn run(srv: &Hostile, load: &str, requests: &str) -> Report {
    let yaml = format!(
        "target: {{baseUrl: '{}', timeout: 2s}}\nload: {{{load}}}\nrequests: {requests}",
        srv.base_url()
    );
    let report = run_solo(&yaml).await;
    let t = &report.summary.total;
    assert_eq!(
        srv.requests(),
        t.requests + t.retries,
        "the server read {} requests, the report has {} and {} retries: {:?}",
        srv.requests(),
        t.requests,
        t.retries,
        t.errors_by_kind
    );
    assert!(
        srv.all_closed(Duration::from_secs(2)).await,
        "a connection outlived the run"
    );
    report
}

fn kinds(r: &Report) -> Vec<(String, u64)> {
    r.summary
        .total
        .errors_by_kind
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn errors(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn send(s: &str) -> Reply {
    Reply::Send(s.as_bytes().to_vec())
}

fn send_close(s: &str) -> Reply {
    Reply::SendClose(s.as_bytes().to_vec())
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"id\":\"7\"}\n";

/// The highest resident set size of this test process so far, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_with_extensions_and_trailers_are_read_and_reused() {
    let srv = Hostile::start(|_| {
        send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;a=1;b=\"x\"\r\n{\"id\r\n7; ext\r\n\":\"7\"}\n\r\n0;last\r\nX-Sum: 1\r\nX-Other: two\r\n\r\n")
    })
    .await;
    let r = run(
        &srv,
        "users: 1, iterations: 5",
        "[{name: j, steps: [{name: a, path: /, capture: {id: {json: /id}}}, {name: b, path: '/{{vars.id}}'}]}]",
    )
    .await;
    assert_eq!(r.summary.total.requests, 10);
    assert_eq!(kinds(&r), errors(&[]));
    assert_eq!(
        srv.connections(),
        1,
        "every response left the connection reusable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_trailers_are_an_http_error() {
    let srv = Hostile::start(|_| Reply::Endless {
        head: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n".to_vec(),
        chunk: b"X-Trailer: again and again\r\n".repeat(1000),
    })
    .await;
    let r = run(&srv, "users: 1, iterations: 3", "[{name: a, path: /}]").await;
    assert_eq!(kinds(&r), errors(&[("http", 3)]));
    assert!(peak_rss_mib() < 300, "{} MiB", peak_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_bodies_are_capped_when_kept_and_discarded_otherwise() {
    let chunk = vec![b'x'; 64 * 1024];
    let framings: [(&str, Vec<u8>); 3] = [
        ("HTTP/1.1 200 OK\r\n\r\n", chunk.clone()),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            [b"10000\r\n".as_slice(), &chunk, b"\r\n"].concat(),
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n",
            chunk.clone(),
        ),
    ];
    for (head, chunk) in framings {
        let script = {
            let (head, chunk) = (head.as_bytes().to_vec(), chunk.clone());
            move |_| Reply::Endless {
                head: head.clone(),
                chunk: chunk.clone(),
            }
        };
        // Kept for a capture: stopped at maxBody, at once. A Content-Length
        // beyond the cap is refused before any of the body is read.
        let srv = Hostile::start(script.clone()).await;
        let started = Instant::now();
        let r = run(
            &srv,
            "users: 1, iterations: 2",
            "[{name: a, path: /, maxBody: 256KiB, timeout: 5s, capture: {t: {regex: 'never'}}}]",
        )
        .await;
        assert_eq!(kinds(&r), errors(&[("body_too_large", 2)]), "{head}");
        assert!(started.elapsed() < Duration::from_secs(4), "{head}");
        // Not kept: read and counted in constant memory until the timeout.
        let srv = Hostile::start(script).await;
        let r = run(
            &srv,
            "users: 1, iterations: 1",
            "[{name: a, path: /, timeout: 700ms}]",
        )
        .await;
        assert_eq!(kinds(&r), errors(&[("timeout", 1)]), "{head}");
    }
    // An uncapped capture of an endless body grew by hundreds of MB a second.
    assert!(peak_rss_mib() < 300, "{} MiB", peak_rss_mib());
}

/// Body checks against a body without end: one that reads the body keeps
/// at most maxBody and fails as too large at once; `maxSize` alone counts
/// the body without keeping it, and a big finite body fails it as a check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_checks_stay_bounded_against_huge_bodies() {
    let endless = || Reply::Endless {
        head: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        chunk: [b"10000\r\n".as_slice(), &[b'x'; 0x10000], b"\r\n"].concat(),
    };
    let srv = Hostile::start(move |_| endless()).await;
    let started = Instant::now();
    let r = run(
        &srv,
        "users: 1, iterations: 2",
        "[{name: a, path: /, maxBody: 256KiB, timeout: 5s, expect: {body: {contains: never}}}]",
    )
    .await;
    assert_eq!(kinds(&r), errors(&[("body_too_large", 2)]));
    assert!(started.elapsed() < Duration::from_secs(4));
    // 16 MiB, 64 times maxBody: read through and counted, never kept.
    let big = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 16777216\r\n\r\n".as_slice(),
        &vec![b'y'; 16 << 20],
    ]
    .concat();
    let srv = Hostile::start(move |_| Reply::Send(big.clone())).await;
    let r = run(
        &srv,
        "users: 1, iterations: 3",
        "[{name: a, path: /, maxBody: 256KiB, expect: {body: {maxSize: 1MiB}}}]",
    )
    .await;
    assert_eq!(kinds(&r), errors(&[("check", 3)]));
    let a = &r.summary.requests["a"];
    assert_eq!(a.checks.get("maxSize 1MiB"), Some(&3), "{:?}", a.checks);
    assert!(a.bytes_received > 3 * (16 << 20));
    assert!(peak_rss_mib() < 300, "{} MiB", peak_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_shorter_or_longer_than_the_body() {
    // Shorter: the response is what Content-Length says; the extra bytes put
    // the connection out of step, so it is not reused.
    let srv = Hostile::start(|_| send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")).await;
    let r = run(&srv, "users: 1, iterations: 4", "[{name: a, path: /}]").await;
    assert_eq!(kinds(&r), errors(&[]));
    assert_eq!(srv.connections(), 4);
    // Longer, then closed: a broken response.
    let srv =
        Hostile::start(|_| send_close("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")).await;
    let r = run(&srv, "users: 1, iterations: 3", "[{name: a, path: /}]").await;
    assert_eq!(kinds(&r), errors(&[("http", 3)]));
    // Longer, and left open: the request times out.
    let srv = Hostile::start(|_| send("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")).await;
    let r = run(
        &srv,
        "users: 1, iterations: 2",
        "[{name: a, path: /, timeout: 300ms}]",
    )
    .await;
    assert_eq!(kinds(&r), errors(&[("timeout", 2)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_mid_head_mid_body_or_mid_chunk_is_an_http_error() {
    for partial in [
        "HTTP/1.1 200 OK\r\nContent-Le",
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"id\"",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    ] {
        // The first request answered in full, so later ones are on a reused
        // connection: a response that started is never taken for a stale
        // connection, so a GET is not resent either.
        let srv = Hostile::start(move |k| {
            if k == 0 {
                send(OK)
            } else {
                send_close(partial)
            }
        })
        .await;
        let r = run(&srv, "users: 1, iterations: 5", "[{name: a, path: /}]").await;
        assert_eq!(kinds(&r), errors(&[("http", 2)]), "{partial:?}");
        assert_eq!(r.summary.total.retries, 0, "{partial:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_or_trickles_is_a_timeout() {
    let srv = Hostile::start(|_| Reply::Silent).await;
    let started = Instant::now();
    let r = run(
        &srv,
        "users: 2, iterations: 4",
        "[{name: a, path: /, timeout: 300ms}]",
    )
    .await;
    assert_eq!(kinds(&r), errors(&[("timeout", 4)]));
    assert!(started.elapsed() < Duration::from_secs(2));
    // A byte every 100ms: a valid response that would take seconds.
    let srv = Hostile::start(|_| Reply::Trickle {
        bytes: OK.as_bytes().to_vec(),
        every: Duration::from_millis(100),
    })
    .await;
    let r = run(
        &srv,
        "users: 1, iterations: 2",
        "[{name: a, path: /, timeout: 500ms}]",
    )
    .await;
    assert_eq!(kinds(&r), errors(&[("timeout", 2)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_10_interim_and_bodiless_statuses() {
    // HTTP/1.0: the connection ends with each response (with or without a
    // length).
    for (resp, close) in [
        (
            "HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\n{\"id\":\"7\"}\n",
            false,
        ),
        ("HTTP/1.0 200 OK\r\n\r\n{\"id\":\"7\"}\n", true),
    ] {
        let srv = Hostile::start(move |_| if close { send_close(resp) } else { send(resp) }).await;
        let r = run(
            &srv,
            "users: 1, iterations: 3",
            "[{name: a, path: /, capture: {id: {json: /id}}}]",
        )
        .await;
        assert_eq!(kinds(&r), errors(&[]), "{resp}");
        assert_eq!(srv.connections(), 3, "{resp}");
    }
    // 100 Continue and 103 before the answer, on one kept-alive connection.
    let srv = Hostile::start(|_| {
        send(&format!(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n{OK}"
        ))
    })
    .await;
    let r = run(
        &srv,
        "users: 1, iterations: 3",
        "[{name: a, method: POST, path: /, body: 'x', capture: {id: {json: /id}}}]",
    )
    .await;
    assert_eq!(kinds(&r), errors(&[]));
    assert_eq!(srv.connections(), 1);
    // 204 and 304 with a body they may not have: the status stands, and the
    // stray bytes are never read as the next response.
    for resp in [
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.1 500 Nope\r\nContent-Length: 0\r\n\r\n",
    ] {
        let srv = Hostile::start(move |_| send(resp)).await;
        let r = run(
            &srv,
            "users: 1, iterations: 4",
            "[{name: a, path: /, expect: {status: [204, 304]}}]",
        )
        .await;
        assert_eq!(kinds(&r), errors(&[]), "{resp}");
        assert!(!r.summary.total.statuses.contains_key(&500), "{resp}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_an_http_error() {
    for junk in [
        &b"\x00\xff\xfegarbage\r\n\r\n"[..],
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
    ] {
        let srv = Hostile::start(move |_| Reply::Send(junk.to_vec())).await;
        let r = run(&srv, "users: 1, iterations: 3", "[{name: a, path: /}]").await;
        assert_eq!(
            kinds(&r),
            errors(&[("http", 3)]),
            "{}",
            String::from_utf8_lossy(junk)
        );
    }
}

/// Each connection answers its first request, then reads the next one and
/// closes without answering: the server may have processed it.
fn answers_once_then_reads_and_closes(k: u64) -> Reply {
    if k == 0 { send(OK) } else { Reply::Close }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_the_server_read_is_never_resent() {
    let srv = Hostile::start(answers_once_then_reads_and_closes).await;
    let r = run(
        &srv,
        "users: 1, iterations: 6",
        "[{name: a, method: POST, path: /, body: 'x'}]",
    )
    .await;
    // Requests 2, 4 and 6 were read, then the connection closed: each is an
    // error, and none went out twice.
    assert_eq!(r.summary.total.requests, 6);
    assert_eq!(r.summary.total.retries, 0);
    assert_eq!(kinds(&r), errors(&[("http", 3)]));
    assert_eq!(srv.methods(), vec!["POST"; 6]);
    // PATCH too.
    let srv = Hostile::start(answers_once_then_reads_and_closes).await;
    let r = run(
        &srv,
        "users: 1, iterations: 2",
        "[{name: a, method: PATCH, path: /, body: 'x'}]",
    )
    .await;
    assert_eq!(kinds(&r), errors(&[("http", 1)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_request_is_resent_once_and_the_resend_counted() {
    let srv = Hostile::start(answers_once_then_reads_and_closes).await;
    let r = run(
        &srv,
        "users: 1, iterations: 4",
        "[{name: a, method: PUT, path: /, body: 'x'}]",
    )
    .await;
    // Requests 2, 3 and 4 each found their connection closed after the
    // server read them, and succeeded on a new one: 7 requests reached the
    // server, 3 of them resends.
    assert_eq!(r.summary.total.requests, 4);
    assert_eq!(r.summary.total.retries, 3);
    assert_eq!(kinds(&r), errors(&[]));
    assert_eq!(srv.requests(), 7);
    // Shown per request name too, and in the JSON report.
    assert_eq!(r.summary.requests["a"].retries, 3);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["summary"]["total"]["retries"], 3);
    assert_eq!(json["snapshot"]["requests"]["a"]["retries"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_while_idle_is_replaced_before_writing() {
    // The server answers and closes the connection (a keep-alive idle
    // timeout shorter than the think time): the client sees the close
    // before it writes, so even a POST is neither an error nor a resend.
    let srv = Hostile::start(|_| send_close(OK)).await;
    let r = run(
        &srv,
        "users: 1, iterations: 4, thinkTime: 50ms",
        "[{name: a, method: POST, path: /, body: 'x'}]",
    )
    .await;
    assert_eq!(kinds(&r), errors(&[]));
    assert_eq!(r.summary.total.retries, 0);
    assert_eq!(srv.connections(), 4);
}
