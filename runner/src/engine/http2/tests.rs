//! HTTP/2 against in-test servers: hyper's (a well-behaved one, counting
//! connections and streams) and hand-driven `h2` ones (hostile: huge
//! headers, GOAWAY mid-run, reset streams).

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response as HttpResponse, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::*;
use crate::{
    compile::Slot,
    engine::Runner,
    planfile,
    snapshot::{ErrorKind, Snapshot},
};

#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    streams: AtomicU64,
    /// Connections that ended.
    closed: AtomicU64,
    closing: tokio::sync::Notify,
}

/// A hyper HTTP/2-only server; returns its base URL and what it counted.
async fn hyper_server(max_streams: Option<u32>) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            c.connections.fetch_add(1, Ordering::SeqCst);
            let (c, c2) = (c.clone(), c.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    c.streams.fetch_add(1, Ordering::SeqCst);
                    handle(req)
                });
                let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                b.max_concurrent_streams(max_streams);
                let _ = b.serve_connection(TokioIo::new(s), svc).await;
                c2.closed.fetch_add(1, Ordering::SeqCst);
                c2.closing.notify_waiters();
            });
        }
    });
    (base, counts)
}

async fn handle(req: Request<Incoming>) -> Result<HttpResponse<Full<Bytes>>, Infallible> {
    let b = HttpResponse::builder();
    let authority = req.uri().authority().map(|a| a.to_string());
    let res = match req.uri().path() {
        "/login" => b
            .header("x-session", "s-1")
            .body(Full::new(Bytes::from(r#"{"data":{"token":"t-42"}}"#))),
        "/me/t-42/s-1" => b.body(Full::new(Bytes::from("me"))),
        "/old" => b
            .status(302)
            .header("location", "/new")
            .body(Full::new(Bytes::new())),
        "/new" => b.body(Full::new(Bytes::from("moved"))),
        "/authority" => b
            .header("x-authority", authority.unwrap_or_default())
            .body(Full::new(Bytes::new())),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            b.body(Full::new(Bytes::new()))
        }
        _ => b.body(Full::new(Bytes::from("ok"))),
    };
    Ok(res.unwrap())
}

fn runner(base: &str, rest: &str) -> Arc<Runner> {
    let yaml = format!("target: {{baseUrl: '{base}', http: '2'{rest}");
    let loaded = planfile::from_str(&yaml, Default::default()).unwrap();
    Runner::new(Arc::new(loaded.compile(Slot::SOLO).unwrap()))
}

async fn run(r: &Arc<Runner>) -> Snapshot {
    tokio::time::timeout(Duration::from_secs(20), r.run())
        .await
        .expect("the run ends");
    r.snapshot()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_users_share_five_connections_and_every_stream_is_counted() {
    let (base, counts) = hyper_server(None).await;
    let r = runner(
        &base,
        ", connections: 5}\nload: {users: 50, iterations: 2000}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(a.count(), 2000);
    assert_eq!(a.statuses.get(&200), Some(&2000), "{:?}", a.errors);
    assert_eq!(counts.streams.load(Ordering::SeqCst), 2000);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 5);
    // The run is over: its connections close, though the runner is kept.
    let all_closed = async {
        loop {
            let n = counts.closing.notified();
            if counts.closed.load(Ordering::SeqCst) == 5 {
                return;
            }
            n.await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), all_closed)
        .await
        .expect("the connections close at the end of the run");
    // Body bytes exactly, and a head for each response.
    assert!(a.bytes_received > 2000 * 2, "{}", a.bytes_received);
    assert_eq!(a.bytes_sent % 2000, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_servers_concurrency_limit_wait_their_turn() {
    // 20 users on one connection that allows 2 streams at a time.
    let (base, counts) = hyper_server(Some(2)).await;
    let r = runner(
        &base,
        ", connections: 1}\nload: {users: 20, iterations: 400}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!((a.count(), a.error_count()), (400, 0), "{:?}", a.errors);
    assert_eq!(counts.streams.load(Ordering::SeqCst), 400);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn captures_and_redirects_work_over_h2() {
    let (base, _) = hyper_server(None).await;
    let r = runner(
        &base,
        "}\nload: {users: 2, iterations: 10}\nrequests:\n- name: j\n  steps:\n  \
         - {name: login, method: POST, path: /login, body: '{}', capture: {token: {json: /data/token}, session: {header: x-session}}}\n  \
         - {name: me, path: '/me/{{ vars.token }}/{{ vars.session }}', expect: {status: [200]}}\n  \
         - {name: moved, path: /old, followRedirects: true, expect: {status: [200]}, capture: {body: {regex: 'mo(ved)'}}}\n",
    );
    let snap = run(&r).await;
    for step in ["j/login", "j/me", "j/moved"] {
        let s = &snap.requests[step];
        assert_eq!(
            (s.count(), s.error_count()),
            (10, 0),
            "{step}: {:?}",
            s.errors
        );
    }
}

#[tokio::test]
async fn the_host_becomes_the_authority() {
    let (base, _) = hyper_server(None).await;
    let yaml = format!(
        "target: {{baseUrl: '{base}', http: '2'}}\nload: {{users: 1, iterations: 1}}\nrequests:\n\
         - name: j\n  steps: [{{name: a, path: /authority, capture: {{x: {{header: x-authority}}}}}}]\n"
    );
    let loaded = planfile::from_str(&yaml, Default::default()).unwrap();
    let r = Runner::with_journal(Arc::new(loaded.compile(Slot::SOLO).unwrap()));
    run(&r).await;
    let journal = r.take_journal();
    let vars = journal[0].result.as_ref().map_err(|f| f.error).unwrap();
    assert_eq!(vars[0].as_deref(), base.strip_prefix("http://"));
}

#[tokio::test]
async fn a_stream_that_outlives_its_timeout_is_a_timeout() {
    let (base, counts) = hyper_server(None).await;
    let r = runner(
        &base,
        ", timeout: 200ms}\nload: {users: 3, iterations: 6}\nrequests: [{name: a, path: /slow}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(a.count(), 6);
    assert_eq!(a.errors.get(&ErrorKind::Timeout), Some(&6));
    assert_eq!(counts.streams.load(Ordering::SeqCst), 6);
    // Cancelled streams leave the connection usable: one is enough.
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_open_model_runs_over_h2() {
    let (base, counts) = hyper_server(None).await;
    let r = runner(
        &base,
        "}\nload: {executor: arrival-rate, rate: 200, duration: 1s, maxInFlight: 250}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(a.error_count(), 0, "{:?}", a.errors);
    assert_eq!(a.count() + snap.dropped, 200);
    assert_eq!(counts.streams.load(Ordering::SeqCst), a.count());
    // One connection per 100 requests in flight, by default.
    assert_eq!(r.plan.http.connections, 3);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_unreachable_target_is_a_connect_error_for_each_request() {
    // A port nobody listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let r = runner(
        &base,
        "}\nload: {users: 4, iterations: 20}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(a.errors.get(&ErrorKind::Connect), Some(&20));
}

#[tokio::test]
async fn a_connection_that_used_up_its_stream_ids_is_replaced() {
    let (base, counts) = hyper_server(None).await;
    let mut pool = Pool::new(base.trim_start_matches("http://"), 1);
    pool.stream_budget = 10;
    let (mut attempts, mut bytes) = (0, 0);
    for _ in 0..25 {
        let mut resent = Resent {
            attempts: &mut attempts,
            bytes: &mut bytes,
        };
        let req = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        let res = send(&pool, req, Want::default(), &mut resent).await;
        assert_eq!(res.map(|r| r.status).ok(), Some(200));
    }
    assert_eq!(counts.streams.load(Ordering::SeqCst), 25);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 3);
    assert_eq!(attempts, 0);
}

// ---- Hostile servers, driven with `h2` directly.

/// How a hand-driven server answers stream number `n` (from 0) of a
/// connection.
#[derive(Clone, Copy)]
enum Answer {
    Ok,
    /// A 200 with a header of this many bytes.
    HugeHeader(usize),
    Reset(Reason),
    /// Never: waits for the client to reset the stream.
    Hang,
    /// A 200 once the whole request body has arrived.
    AfterBody,
    /// A 200 with a body of this many bytes, and no header.
    Body(usize),
}

struct Hostile {
    answer: fn(u64) -> Answer,
    /// Shut each connection down gracefully (GOAWAY) after this many streams.
    goaway_after: Option<u64>,
    /// The stream window the server offers (default 64 KiB).
    window: Option<u32>,
}

struct H2Server {
    base: String,
    counts: Arc<Counts>,
    /// Streams answered with a whole response.
    answered: Arc<AtomicU64>,
    /// Streams the client reset with CANCEL.
    cancelled: Arc<AtomicU64>,
}

async fn h2_server(answer: fn(u64) -> Answer, goaway_after: Option<u64>) -> H2Server {
    hostile(Hostile {
        answer,
        goaway_after,
        window: None,
    })
    .await
}

async fn hostile(h: Hostile) -> H2Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let srv = H2Server {
        base: format!("http://{}", listener.local_addr().unwrap()),
        counts: Arc::default(),
        answered: Arc::default(),
        cancelled: Arc::default(),
    };
    let (c, done, cancelled) = (
        srv.counts.clone(),
        srv.answered.clone(),
        srv.cancelled.clone(),
    );
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            c.connections.fetch_add(1, Ordering::SeqCst);
            let (c, done, cancelled) = (c.clone(), done.clone(), cancelled.clone());
            tokio::spawn(async move {
                let mut b = h2::server::Builder::new();
                if let Some(w) = h.window {
                    b.initial_window_size(w);
                }
                let Ok(mut conn) = b.handshake::<_, Bytes>(s).await else {
                    return;
                };
                let mut n = 0u64;
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    c.streams.fetch_add(1, Ordering::SeqCst);
                    match (h.answer)(n) {
                        Answer::Ok => {
                            let res = HttpResponse::builder().body(()).unwrap();
                            if let Ok(mut body) = respond.send_response(res, false) {
                                let _ = body.send_data(Bytes::from_static(b"ok"), true);
                                done.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Answer::HugeHeader(len) => {
                            let res = HttpResponse::builder()
                                .header("x-huge", "a".repeat(len))
                                .body(())
                                .unwrap();
                            let _ = respond.send_response(res, true);
                        }
                        Answer::Reset(reason) => respond.send_reset(reason),
                        Answer::Body(len) => {
                            let res = HttpResponse::builder().body(()).unwrap();
                            if let Ok(mut body) = respond.send_response(res, false) {
                                let _ = body.send_data(Bytes::from(vec![b'x'; len]), true);
                                done.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Answer::AfterBody => {
                            let done = done.clone();
                            tokio::spawn(async move {
                                let mut body = req.into_body();
                                while let Some(chunk) = body.data().await {
                                    let Ok(chunk) = chunk else { return };
                                    let _ = body.flow_control().release_capacity(chunk.len());
                                }
                                let res = HttpResponse::builder().body(()).unwrap();
                                if respond.send_response(res, true).is_ok() {
                                    done.fetch_add(1, Ordering::SeqCst);
                                }
                            });
                        }
                        Answer::Hang => {
                            let cancelled = cancelled.clone();
                            tokio::spawn(async move {
                                let r = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
                                if matches!(r, Ok(Reason::CANCEL)) {
                                    cancelled.fetch_add(1, Ordering::SeqCst);
                                }
                            });
                        }
                    }
                    n += 1;
                    if h.goaway_after == Some(n) {
                        conn.graceful_shutdown();
                    }
                }
            });
        }
    });
    srv
}

#[tokio::test]
async fn a_huge_header_block_fails_the_request_not_the_runner() {
    let srv = h2_server(|_| Answer::HugeHeader(1 << 20), None).await;
    let r = runner(
        &srv.base,
        "}\nload: {users: 2, iterations: 10}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(a.count(), 10);
    assert_eq!(a.errors.get(&ErrorKind::Http), Some(&10), "{:?}", a.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_mid_run_moves_the_load_to_new_connections_and_loses_nothing() {
    let H2Server {
        base,
        counts,
        answered,
        ..
    } = h2_server(|_| Answer::Ok, Some(50)).await;
    let r = runner(
        &base,
        ", connections: 1}\nload: {users: 10, iterations: 500}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(a.count(), 500);
    // Every request the server answered is counted as answered, once; any
    // that a GOAWAY caught mid-flight is counted as failed, never lost.
    let ok = a.statuses.get(&200).copied().unwrap_or(0);
    assert_eq!(ok, answered.load(Ordering::SeqCst));
    assert_eq!(ok + a.error_count(), 500);
    assert!(ok >= 450, "{ok} {:?}", a.errors);
    let conns = counts.connections.load(Ordering::SeqCst);
    let streams = counts.streams.load(Ordering::SeqCst);
    assert!(
        conns >= 5,
        "{conns} connections, {streams} streams, {:?} {}",
        a.errors,
        a.retries
    );
}

#[tokio::test]
async fn reset_streams_fail_as_http_and_refused_ones_are_sent_once_more() {
    // Every stream reset with an error: each request fails once, as http.
    let srv = h2_server(|_| Answer::Reset(Reason::INTERNAL_ERROR), None).await;
    let r = runner(
        &srv.base,
        "}\nload: {users: 2, iterations: 10}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(a.errors.get(&ErrorKind::Http), Some(&10), "{:?}", a.errors);
    assert_eq!((a.count(), a.retries), (10, 0));
    assert_eq!(srv.counts.streams.load(Ordering::SeqCst), 10);

    // Every other stream refused unprocessed: sent again, and counted so.
    let srv = h2_server(
        |n| {
            if n % 2 == 0 {
                Answer::Reset(Reason::REFUSED_STREAM)
            } else {
                Answer::Ok
            }
        },
        None,
    )
    .await;
    let r = runner(
        &srv.base,
        "}\nload: {users: 1, iterations: 10}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!((a.count(), a.error_count(), a.retries), (10, 0, 10));
    assert_eq!(srv.answered.load(Ordering::SeqCst), 10);
    assert_eq!(srv.counts.streams.load(Ordering::SeqCst), 20);

    // Refused every time: one resend, then http.
    let srv = h2_server(|_| Answer::Reset(Reason::REFUSED_STREAM), None).await;
    let r = runner(
        &srv.base,
        "}\nload: {users: 1, iterations: 3}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(a.errors.get(&ErrorKind::Http), Some(&3));
    assert_eq!(a.retries, 3);
}

#[tokio::test]
async fn bodies_count_exactly_and_only_what_a_capture_needs_is_kept() {
    // 3 MiB each, beyond the stream and connection windows: read only
    // because each chunk's window is given back as it is read.
    let srv = h2_server(|_| Answer::Body(3 << 20), None).await;
    let r = runner(
        &srv.base,
        "}\nload: {users: 2, iterations: 4}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!((a.count(), a.error_count()), (4, 0), "{:?}", a.errors);
    // `HTTP/1.1 200 \r\n` and the blank line for a head with no field.
    assert_eq!(a.bytes_received, 4 * (16 + (3 << 20)));
    // A capture keeps the body, up to maxBody.
    let r = runner(
        &srv.base,
        "}\nload: {users: 1, iterations: 2}\nrequests: [{name: j, steps: [{name: a, path: /, maxBody: 1MiB, capture: {x: {regex: 'x+'}}}]}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["j/a"];
    assert_eq!(a.errors.get(&ErrorKind::BodyTooLarge), Some(&2));
}

#[tokio::test]
async fn a_server_that_does_not_speak_h2_fails_each_request_as_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let r = runner(
        &base,
        "}\nload: {users: 2, iterations: 10}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(a.count(), 10);
    assert_eq!(a.errors.get(&ErrorKind::Http), Some(&10), "{:?}", a.errors);
}

#[tokio::test]
async fn a_timed_out_stream_is_reset_with_cancel_and_counted_once() {
    let srv = h2_server(|_| Answer::Hang, None).await;
    let r = runner(
        &srv.base,
        ", timeout: 100ms}\nload: {users: 2, iterations: 6}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(
        (a.count(), a.errors.get(&ErrorKind::Timeout)),
        (6, Some(&6))
    );
    // The server sees each one cancelled; waits on that, not on a clock.
    let all = async {
        while srv.cancelled.load(Ordering::SeqCst) < 6 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), all)
        .await
        .expect("every timed-out stream is reset with CANCEL");
    assert_eq!(srv.counts.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_server_that_never_opens_its_window_is_a_timeout_not_a_hang() {
    // Longer than the default window, which a client may use before the
    // server's SETTINGS arrive.
    let plan = format!(
        ", timeout: 300ms}}\nload: {{users: 2, iterations: 4}}\nrequests: [{{name: a, method: POST, path: /, body: '{}'}}]\n",
        "a".repeat(100_000)
    );
    for (window, ok) in [(None, 4), (Some(0), 0)] {
        let srv = hostile(Hostile {
            answer: |_| Answer::AfterBody,
            goaway_after: None,
            window,
        })
        .await;
        let snap = run(&runner(&srv.base, &plan)).await;
        let a = &snap.requests["a"];
        assert_eq!(a.count(), 4);
        assert_eq!(a.statuses.get(&200).copied().unwrap_or(0), ok);
        assert_eq!(
            a.errors.get(&ErrorKind::Timeout).copied().unwrap_or(0),
            4 - ok
        );
        assert_eq!(srv.answered.load(Ordering::SeqCst), ok);
    }
}

#[tokio::test]
async fn a_request_cut_off_by_the_end_of_the_run_counts_as_interrupted() {
    let srv = h2_server(|_| Answer::Hang, None).await;
    let r = runner(
        &srv.base,
        ", timeout: 1h}\nload: {users: 3, duration: 100ms, gracefulStop: 50ms}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(a.count(), 3);
    assert_eq!(a.errors.get(&ErrorKind::Interrupted), Some(&3));
    assert_eq!(srv.counts.streams.load(Ordering::SeqCst), 3);
}

#[test]
fn a_serialized_request_becomes_an_h2_request() {
    let wire = b"POST /p?q=1 HTTP/1.1\r\nhost: example.com:8080\r\nconnection: keep-alive\r\n\
                 transfer-encoding: chunked\r\nx-a: 1\r\nte: gzip\r\ncontent-length: 3\r\n\r\nabc";
    let (head, body) = to_h2(wire, &Scheme::HTTP).unwrap();
    assert_eq!(head.method(), hyper::Method::POST);
    assert_eq!(head.uri().to_string(), "http://example.com:8080/p?q=1");
    let names: Vec<_> = head.headers().keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["x-a", "content-length"]);
    assert_eq!(&body[..], b"abc");
    // Not a request at all.
    assert!(to_h2(b"nonsense", &Scheme::HTTP).is_none());
    assert!(to_h2(b"GET / HTTP/1.1\r\n\r\n", &Scheme::HTTP).is_none());
}

// ---- The TLS seam: ALPN decides, and h2 runs over the rustls stream.

/// A CA and a server certificate it signed for localhost and 127.0.0.1.
fn certificates() -> (
    rustls_pki_types::CertificateDer<'static>,
    rustls_pki_types::CertificateDer<'static>,
    rustls_pki_types::PrivateKeyDer<'static>,
) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    (ca.der().clone(), leaf.der().clone(), key)
}

/// A TLS server offering `alpn`, serving HTTP/2 when it was chosen, and a
/// client connection to it that offers h2 and http/1.1.
async fn tls_pair(alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let (ca, leaf, key) = certificates();
    let mut server = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf], key)
        .unwrap();
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(s).await.unwrap();
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
            let svc = service_fn(handle);
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn alpn_decides_and_h2_runs_over_tls() {
    assert!(!negotiated_h2(&tls_pair(&[b"http/1.1"]).await));
    assert!(!negotiated_h2(&tls_pair(&[]).await));
    let tls = tls_pair(&[b"h2", b"http/1.1"]).await;
    assert!(negotiated_h2(&tls));
    // The same settings and exchange as h2c, over the rustls stream.
    let Ok(live) = handshake(tls, &super::Slot::default()).await else {
        panic!("the HTTP/2 handshake over TLS failed");
    };
    let (head, body) = to_h2(
        b"GET /new HTTP/1.1\r\nhost: localhost\r\n\r\n",
        &Scheme::HTTPS,
    )
    .unwrap();
    let want = Want {
        body: true,
        max_body: 100,
        ..Want::default()
    };
    let Ok(res) = attempt(&live, head, body, want).await else {
        panic!("the request over TLS failed");
    };
    assert_eq!(res.status, 200);
    assert_eq!(res.body.as_deref(), Some(&b"moved"[..]));
}
