//! Hostile servers, driven with `h2` directly: huge header blocks, GOAWAY
//! mid-run, reset and refused streams, windows never opened, streams never
//! answered, a server that does not speak HTTP/2 at all.

use super::*;

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
    /// A 200 head and some body, then a reset saying REFUSED_STREAM: a lie,
    /// the stream was processed.
    HeadThenRefuse,
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
                        Answer::HeadThenRefuse => {
                            let res = HttpResponse::builder().body(()).unwrap();
                            if let Ok(mut body) = respond.send_response(res, false) {
                                let _ = body.send_data(Bytes::from_static(b"part"), false);
                                body.send_reset(Reason::REFUSED_STREAM);
                            }
                        }
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

    // Refused after its head (a lie: it was processed). Once the client has
    // seen the head it never sends the stream again; but when the head and
    // the reset arrive before the response is polled, h2 reports only the
    // reset, and the stream is resent as refused. Either way every stream
    // the server saw is a request or a counted retry, and each request
    // fails once, as http.
    let srv = h2_server(|_| Answer::HeadThenRefuse, None).await;
    let r = runner(
        &srv.base,
        "}\nload: {users: 1, iterations: 3}\nrequests: [{name: a, method: POST, path: /, body: x}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(a.errors.get(&ErrorKind::Http), Some(&3), "{:?}", a.errors);
    assert_eq!(a.count(), 3);
    assert!(a.retries <= 3, "at most one resend each: {}", a.retries);
    assert_eq!(
        srv.counts.streams.load(Ordering::SeqCst),
        a.count() + a.retries
    );
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
        ", timeout: 1h}\nload: {users: 3, duration: 300ms, gracefulStop: 50ms}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    let a = &snap.requests["a"];
    assert_eq!(a.count(), 3);
    assert_eq!(a.errors.get(&ErrorKind::Interrupted), Some(&3));
    assert_eq!(srv.counts.streams.load(Ordering::SeqCst), 3);
}
