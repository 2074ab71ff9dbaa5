//! HTTP/2 against an in-test hyper server that counts connections and
//! streams, the TLS seam, and turning a serialized request into an h2 one;
//! hostile servers are in `hostile`.

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

mod hostile;

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
    if req.uri().path() == "/echo" {
        // The content type and the body, back as the body.
        use http_body_util::BodyExt;
        let ct = req.headers().get("content-type").cloned();
        let body = req.into_body().collect().await.map(|b| b.to_bytes());
        let mut out = ct.map(|v| v.as_bytes().to_vec()).unwrap_or_default();
        out.extend_from_slice(b"|");
        out.extend_from_slice(&body.unwrap_or_default());
        return Ok(HttpResponse::new(Full::new(Bytes::from(out))));
    }
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

#[tokio::test]
async fn a_user_keeps_its_connection() {
    // One user, two connections: all of its requests take the same one (the
    // users one read of responses woke then send on that connection, which
    // writes them together), so the other is never made.
    let (base, counts) = hyper_server(None).await;
    let r = runner(
        &base,
        ", connections: 2}\nload: {users: 1, iterations: 10}\nrequests: [{name: a, path: /}]\n",
    );
    let snap = run(&r).await;
    assert_eq!(snap.requests["a"].statuses.get(&200), Some(&10));
    assert_eq!(counts.streams.load(Ordering::SeqCst), 10);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1);
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
         - {name: moved, path: /old, followRedirects: true, expect: {status: [200]}, capture: {body: {regex: 'mo(ved)'}}}\n  \
         - {name: form, method: POST, path: /echo, form: {a: '{{ vars.body }}', b: 'x y'}, capture: {echo: {regex: '^application/x-www-form-urlencoded\\|a=ved&b=x%20y$'}}}\n",
    );
    let snap = run(&r).await;
    for step in ["j/login", "j/me", "j/moved", "j/form"] {
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
    let mut pool = Pool::new(
        base.trim_start_matches("http://"),
        1,
        None,
        Default::default(),
    );
    pool.stream_budget = 10;
    let (mut attempts, mut bytes) = (0, 0);
    for _ in 0..25 {
        let mut resent = Resent {
            attempts: &mut attempts,
            bytes: &mut bytes,
        };
        let req = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        let res = send(&pool, None, 0, req, Want::default(), &mut resent).await;
        assert_eq!(res.map(|r| r.status).ok(), Some(200));
    }
    assert_eq!(counts.streams.load(Ordering::SeqCst), 25);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 3);
    assert_eq!(attempts, 0);
}

#[test]
fn a_serialized_request_becomes_an_h2_request() {
    let wire = b"POST /p?q=1 HTTP/1.1\r\nhost: example.com:8080\r\nconnection: keep-alive\r\n\
                 transfer-encoding: chunked\r\nx-a: 1\r\nte: gzip\r\ncontent-length: 3\r\n\r\nabc";
    let known = Authority::from_static("example.com:8080");
    let (head, body) = to_h2(wire, &Scheme::HTTP, Some(&known)).unwrap();
    assert_eq!(head.method(), hyper::Method::POST);
    assert_eq!(head.uri().to_string(), "http://example.com:8080/p?q=1");
    let names: Vec<_> = head.headers().keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["x-a", "content-length"]);
    assert_eq!(&body[..], b"abc");
    // A Host other than the target's own is parsed on its own, the same way.
    let other = Authority::from_static("other:1");
    let (again, _) = to_h2(wire, &Scheme::HTTP, Some(&other)).unwrap();
    assert_eq!(again.uri(), head.uri());
    let (again, _) = to_h2(wire, &Scheme::HTTP, None).unwrap();
    assert_eq!(again.uri(), head.uri());
    // A Host that is no authority cannot be sent.
    let bad = b"GET / HTTP/1.1\r\nhost: a b\r\n\r\n";
    assert!(to_h2(bad, &Scheme::HTTP, Some(&other)).is_none());
    // Not a request at all.
    assert!(to_h2(b"nonsense", &Scheme::HTTP, None).is_none());
    assert!(to_h2(b"GET / HTTP/1.1\r\n\r\n", &Scheme::HTTP, None).is_none());
}

#[test]
fn a_slot_reuses_the_request_it_built_while_the_bytes_are_the_same() {
    let known = Authority::try_from("example.com:8080").unwrap();
    let slot = super::Slot::default();
    let a = b"GET /a HTTP/1.1\r\nhost: example.com:8080\r\nx-k: 1\r\n\r\n";
    let (first, _) = slot.build(a, &Scheme::HTTP, Some(&known)).unwrap();
    let (again, body) = slot.build(a, &Scheme::HTTP, Some(&known)).unwrap();
    assert_eq!(again.uri(), first.uri());
    assert_eq!(again.headers(), first.headers());
    assert!(body.is_empty());
    // The copy's authority is the slot's own, not a clone of the pool's.
    let kept = again.uri().authority().unwrap().as_str().as_ptr();
    assert_ne!(kept, known.as_str().as_ptr());
    // Other bytes (a template rendered otherwise) are parsed, never served
    // the kept request.
    let b = b"POST /b HTTP/1.1\r\nhost: example.com:8080\r\ncontent-length: 2\r\n\r\nhi";
    let (other, body) = slot.build(b, &Scheme::HTTP, Some(&known)).unwrap();
    assert_eq!(other.method(), hyper::Method::POST);
    assert_eq!(other.uri().path(), "/b");
    assert_eq!(&body[..], b"hi");
    let (back, _) = slot.build(a, &Scheme::HTTP, Some(&known)).unwrap();
    assert_eq!(back.uri().path(), "/a");
    // Unsendable bytes stay unsendable, whatever was kept.
    assert!(
        slot.build(b"nonsense", &Scheme::HTTP, Some(&known))
            .is_none()
    );
}

// ---- The TLS seam: ALPN decides, and h2 runs over the rustls stream.
