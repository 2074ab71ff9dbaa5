//! The pusher against receivers that misbehave: one that never answers,
//! answers 500, refuses the connection, refuses the batch (400) or answers
//! with an endless body. The run never waits for them, what they did not
//! take is counted as undelivered, and errors are bounded and hold no
//! credentials. And against one that records: the protocol's headers, a
//! snappy protobuf body with sorted labels.

#[path = "support/hostile_server.rs"]
#[allow(dead_code)] // the engine's tests use the rest
mod hostile_server;

use std::{path::PathBuf, time::Duration};

use barrage_runner::{
    compile::Slot,
    local::{self, Options},
    planfile,
    remote_write::{self, Delivery, Endpoint, HistogramMode, Labels, Pusher, proto},
    serve::{ServeConfig, spawn_local},
    snapshot::Snapshot,
};
use hostile_server::{Hostile, Reply};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::mpsc,
};

const TOKEN: &str = "s3cr3t-t0ken";

fn endpoint(url: String) -> Endpoint {
    Endpoint {
        url,
        headers: vec![("Authorization".into(), format!("Bearer {TOKEN}"))],
        tls: None,
        timeout: Duration::from_millis(300),
    }
}

fn options(histograms: HistogramMode) -> remote_write::Options {
    remote_write::Options {
        interval: Duration::from_secs(1),
        histograms,
        continuing: false,
    }
}

/// A snapshot with one request name and a few requests.
fn snapshot() -> Snapshot {
    let mut s = Snapshot::empty(1_000_000);
    let mut r = barrage_runner::snapshot::RequestStats::default();
    for us in [800, 1200, 5000] {
        barrage_runner::histogram::record(&mut r.latency, us);
    }
    r.statuses.insert(200, 3);
    s.requests.insert("home".into(), r);
    s
}

/// Two offers a second apart and the final one, then at most `within`.
async fn push_three(url: String, within: Duration) -> Delivery {
    let p = Pusher::start(
        endpoint(url),
        Labels::default(),
        options(HistogramMode::Quantiles),
    );
    let s = snapshot();
    p.offer(&s, 1_000_000, 1);
    p.offer(&s, 1_001_000, 1);
    p.finish(&s, 1_002_000, 0, within).await
}

fn assert_bounded_and_clean(d: &Delivery) {
    let e = d.last_error.as_deref().expect("a failure is kept");
    assert!(e.chars().count() <= 260, "{} chars", e.len());
    assert!(!e.contains(TOKEN), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_costs_at_most_the_final_wait() {
    let h = Hostile::start(|_| Reply::Silent).await;
    let d = push_three(
        format!("{}/api/v1/write", h.base_url()),
        Duration::from_millis(800),
    )
    .await;
    assert_eq!((d.pushes, d.samples), (0, 0));
    // Three batches of (one requests counter, a dropped counter, a runners
    // gauge, five quantiles, a sum and a count).
    assert_eq!(d.undelivered, 3 * 10, "{d:?}");
    assert!(
        d.last_error
            .as_deref()
            .unwrap()
            .contains("no answer in time"),
        "{d:?}"
    );
    assert_bounded_and_clean(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_counted() {
    let h = Hostile::start(|_| {
        Reply::SendClose(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 29\r\n\r\nbusy: Bearer s3cr3t-t0ken...".to_vec())
    })
    .await;
    let d = push_three(format!("{}/w", h.base_url()), Duration::from_millis(800)).await;
    assert_eq!(d.undelivered, 30, "{d:?}");
    // The first batch, sent again and again (100, 200, 400 ms apart).
    assert!(h.requests() >= 3, "{} requests", h.requests());
    let e = d.last_error.clone().unwrap();
    assert!(e.starts_with("HTTP 500: busy"), "{e}");
    assert_bounded_and_clean(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_counted() {
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = push_three(
        format!("http://127.0.0.1:{port}/w"),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!((d.pushes, d.undelivered), (0, 30), "{d:?}");
    assert!(
        d.last_error
            .as_deref()
            .unwrap()
            .starts_with("cannot connect"),
        "{d:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_not_sent_again_and_an_endless_body_is_cut() {
    let h = Hostile::start(|_| Reply::Endless {
        head: b"HTTP/1.1 400 Bad Request\r\ncontent-length: 100000000\r\n\r\n".to_vec(),
        chunk: b"out of order sample Bearer s3cr3t-t0ken ".repeat(100),
    })
    .await;
    let p = Pusher::start(
        endpoint(format!("{}/w", h.base_url())),
        Labels::default(),
        options(HistogramMode::Quantiles),
    );
    let s = snapshot();
    p.offer(&s, 1_000_000, 1);
    // The first batch reaches the receiver before the others are offered:
    // on a busy machine the delivery task may not have run yet, and the
    // final offer rightly drops what is still queued (then only the final
    // totals are sent, and this test would see one request).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while h.requests() == 0 {
        assert!(std::time::Instant::now() < deadline, "no first push");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.offer(&s, 1_001_000, 1);
    let d = p.finish(&s, 1_002_000, 0, Duration::from_secs(5)).await;
    // Each batch at most once: 400 is the receiver's final word (the
    // second is not sent when it is still queued at the final one).
    assert!((2..=3).contains(&h.requests()), "{}", h.requests());
    assert_eq!((d.pushes, d.undelivered), (0, 30), "{d:?}");
    assert!(
        d.last_error
            .as_deref()
            .unwrap()
            .starts_with("HTTP 400: out of order sample [redacted]"),
        "{d:?}"
    );
    assert_bounded_and_clean(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_its_oldest_batches_and_offers_never_wait() {
    let h = Hostile::start(|_| Reply::Silent).await;
    let mut e = endpoint(format!("{}/w", h.base_url()));
    e.timeout = Duration::from_secs(60);
    let p = Pusher::start(e, Labels::default(), options(HistogramMode::Quantiles));
    let s = snapshot();
    let extra = 10;
    for i in 0..remote_write::MAX_QUEUED + 1 + extra {
        p.offer(&s, 1_000_000 + i as i64 * 1000, 1);
    }
    // One batch is in flight (or about to be), MAX_QUEUED wait: the rest
    // fell out of the queue, counted at once.
    let d = p.delivery();
    assert!(d.undelivered >= extra as u64 * 10, "{d:?}");
    let d = p.finish(&s, 2_000_000, 0, Duration::from_millis(200)).await;
    assert_eq!(
        d.undelivered,
        (remote_write::MAX_QUEUED as u64 + 2 + extra as u64) * 10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_totals_go_next_after_a_slow_receiver() {
    // The first request is never answered (the push times out and is sent
    // again); every later one is taken.
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let h = Hostile::start(move |_| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::Silent
        } else {
            Reply::Send(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n".to_vec())
        }
    })
    .await;
    let mut e = endpoint(format!("{}/w", h.base_url()));
    e.timeout = Duration::from_millis(300);
    let p = Pusher::start(e, Labels::default(), options(HistogramMode::Quantiles));
    let s = snapshot();
    p.offer(&s, 1_000_000, 1);
    // The first batch is in flight once the receiver has read it.
    while h.requests() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for i in 1..5 {
        p.offer(&s, 1_000_000 + i * 1000, 1);
    }
    let d = p.finish(&s, 1_010_000, 0, Duration::from_secs(5)).await;
    // The first batch, once answered, then the final one; the four queued
    // between them hold earlier points only and are not sent.
    assert_eq!((d.pushes, d.undelivered), (2, 4 * 10), "{d:?}");
    assert_eq!(h.requests(), 3);
}

/// A receiver that answers 204 and hands over each request's head and body.
async fn recorder() -> (String, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", l.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = l.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = c.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    buf.drain(..end + 4 + len);
                    // Handed over before the answer, so the sender has
                    // always been recorded once it has its answer.
                    let _ = tx.send((head, body));
                    c.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                        .await
                        .unwrap();
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_remote_write_1_0() {
    use prost::Message as _;
    let (url, mut rx) = recorder().await;
    let labels = Labels(vec![
        ("loadtest".into(), "lt".into()),
        ("namespace".into(), "ns".into()),
    ]);
    let p = Pusher::start(endpoint(url), labels, options(HistogramMode::Native));
    let d = p
        .finish(&snapshot(), 1_000_000, 0, Duration::from_secs(5))
        .await;
    assert_eq!(
        (d.pushes, d.undelivered, d.last_error.as_deref()),
        (1, 0, None)
    );
    let (head, body) = rx.recv().await.unwrap();
    for h in [
        "post /api/v1/write http/1.1",
        "content-encoding: snappy",
        "content-type: application/x-protobuf",
        "x-prometheus-remote-write-version: 0.1.0",
        &format!("authorization: bearer {TOKEN}").to_ascii_lowercase(),
    ] {
        assert!(head.contains(h), "{h} not in {head}");
    }
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    let req = proto::WriteRequest::decode(raw.as_slice()).unwrap();
    // requests{2xx}, dropped, runners, and the native histogram.
    assert_eq!(req.timeseries.len(), 4);
    assert_eq!(d.samples, 4);
    for ts in &req.timeseries {
        assert_eq!(ts.labels[0].name, "__name__");
        assert!(
            ts.labels.windows(2).all(|w| w[0].name < w[1].name),
            "{:?}",
            ts.labels
        );
    }
    let h = req
        .timeseries
        .iter()
        .find_map(|ts| ts.histograms.first())
        .unwrap();
    assert_eq!((h.count_int, h.schema, h.timestamp), (3, 8, 1_000_000));
}

/// A run pushing to `url`: every request the target saw is counted, the
/// run lasts its planned length, and nothing was delivered.
async fn run_against_a_bad_receiver(url: String) {
    let srv = spawn_local(ServeConfig::from_yaml_str("routes: [{path: /, latency: 1ms}]").unwrap())
        .await
        .unwrap();
    let plan = format!(
        "target: {{baseUrl: '{}'}}\nload: {{users: 2, duration: 2500ms}}\nrequests: [{{name: a, path: /}}]",
        srv.base_url()
    );
    let loaded = planfile::from_str(&plan, PathBuf::new()).unwrap();
    let p = Pusher::start(
        endpoint(url),
        Labels::default(),
        options(HistogramMode::Auto),
    );
    let opts = Options {
        slots: vec![Slot::SOLO],
        progress: false,
    };
    let report = local::run_pushing(&loaded, &opts, Some(&p)).await.unwrap();
    assert!(report.summary.total.requests > 100);
    assert_eq!(report.summary.total.errors, 0);
    assert_eq!(srv.hits("/"), report.summary.total.requests);
    let elapsed = report.snapshot.elapsed_secs();
    assert!(elapsed < 3.5, "{elapsed}");
    let d = p
        .finish(
            &report.snapshot,
            local::unix_ms(),
            0,
            Duration::from_millis(300),
        )
        .await;
    assert_eq!(d.pushes, 0);
    assert!(d.undelivered > 0, "{d:?}");
    assert_bounded_and_clean(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_receiver_never_changes_the_run() {
    let h = Hostile::start(|_| Reply::Silent).await;
    run_against_a_bad_receiver(format!("{}/w", h.base_url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_never_changes_the_run() {
    let h = Hostile::start(|_| {
        Reply::SendClose(
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nbusy".to_vec(),
        )
    })
    .await;
    run_against_a_bad_receiver(format!("{}/w", h.base_url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_receiver_never_changes_the_run() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    run_against_a_bad_receiver(format!("http://127.0.0.1:{port}/w")).await;
}

const BIN: &str = env!("CARGO_BIN_EXE_barrage-runner");

fn plan_file(name: &str, base_url: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "barrage-rw-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let plan = format!(
        "target: {{baseUrl: '{base_url}'}}\nload: {{users: 1, iterations: 50}}\nrequests: [{{name: a, path: /}}]\n"
    );
    std::fs::write(&p, plan).unwrap();
    p
}

/// `barrage-runner run` of a 50-request plan pushing to a recorder, with
/// `args` after the URL and `envs` (the auth variables are cleared first);
/// its stderr and the last request's head and decoded body.
async fn cli_push(args: &[&str], envs: &[(&str, &str)]) -> (String, String, proto::WriteRequest) {
    use prost::Message as _;
    let srv = spawn_local(ServeConfig::from_yaml_str("routes: [{path: /}]").unwrap())
        .await
        .unwrap();
    let (url, mut rx) = recorder().await;
    let plan = plan_file("cli-plan.yaml", &srv.base_url());
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("run")
        .arg(&plan)
        .args(["-q", "--out-prometheus", &url])
        .args(args)
        .env_remove(remote_write::cli::TOKEN_ENV)
        .env_remove(remote_write::cli::PASSWORD_ENV)
        .envs(envs.iter().copied());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(plan.parent().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("remote write to {url}: ")),
        "{stderr}"
    );
    assert!(stderr.contains(" 0 undelivered"), "{stderr}");
    // The final push is the last one (the run waited for it).
    let (mut head, mut body) = rx.recv().await.unwrap();
    while let Ok(later) = rx.try_recv() {
        (head, body) = later;
    }
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    (
        stderr,
        head,
        proto::WriteRequest::decode(raw.as_slice()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_pushes_with_a_token_from_the_environment() {
    let (stderr, head, req) = cli_push(
        &["--out-prometheus-label", "env=test"],
        &[(remote_write::cli::TOKEN_ENV, TOKEN)],
    )
    .await;
    assert!(!stderr.contains(TOKEN));
    assert!(
        head.contains(&format!("authorization: bearer {TOKEN}")),
        "{head}"
    );
    let requests = req
        .timeseries
        .iter()
        .find(|ts| {
            ts.labels
                .iter()
                .any(|l| l.value == "barrage_requests_total")
        })
        .unwrap();
    let labels: Vec<_> = requests
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("__name__", "barrage_requests_total"),
            ("env", "test"),
            ("loadtest", "cli-plan"),
            ("request", "a"),
            ("status_class", "2xx")
        ]
    );
    assert_eq!(requests.samples.last().unwrap().value, 50.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_pushes_with_basic_auth_from_a_file() {
    let dir = std::env::temp_dir().join(format!(
        "barrage-rw-pw-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("password");
    std::fs::write(&pw, "pa55:word\n").unwrap();
    let (stderr, head, _) = cli_push(
        &[
            "--out-prometheus-user",
            "team-a",
            "--out-prometheus-password-file",
            pw.to_str().unwrap(),
            "--out-prometheus-loadtest",
            "nightly",
        ],
        &[(remote_write::cli::TOKEN_ENV, "ignored-with-basic-auth")],
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    // base64("team-a:pa55:word")
    assert!(
        head.contains("authorization: basic dgvhbs1honbhntu6d29yza=="),
        "{head}"
    );
    assert!(!stderr.contains("pa55"));
}

#[test]
fn bad_flags_exit_2_naming_the_flag_before_any_load() {
    let plan = plan_file("p.yaml", "http://127.0.0.1:1");
    let missing = plan.with_file_name("no-such-token");
    let bad_ca = plan.clone(); // a plan is no PEM
    for (extra, flag) in [
        (vec!["--out-prometheus", "ftp://h/w"], "--out-prometheus:"),
        (
            vec!["--out-prometheus", "http://h:99999/w"],
            "--out-prometheus:",
        ),
        (
            vec![
                "--out-prometheus",
                "http://h/w",
                "--out-prometheus-header",
                "no colon",
            ],
            "--out-prometheus-header",
        ),
        (
            vec![
                "--out-prometheus",
                "http://h/w",
                "--out-prometheus-header",
                "bad name: v",
            ],
            "--out-prometheus-header",
        ),
        (
            vec![
                "--out-prometheus",
                "http://h/w",
                "--out-prometheus-token-file",
                missing.to_str().unwrap(),
            ],
            "--out-prometheus-token-file",
        ),
        (
            vec![
                "--out-prometheus",
                "http://h/w",
                "--out-prometheus-ca",
                bad_ca.to_str().unwrap(),
            ],
            "--out-prometheus-ca",
        ),
        (
            vec![
                "--out-prometheus",
                "http://h/w",
                "--out-prometheus-label",
                "__name__=x",
            ],
            "--out-prometheus-label",
        ),
        (
            vec![
                "--out-prometheus",
                "http://h/w",
                "--out-prometheus-interval",
                "0s",
            ],
            "--out-prometheus-interval",
        ),
        (
            vec![
                "--out-prometheus",
                "http://h/w",
                "--out-prometheus-histograms",
                "some",
            ],
            "--out-prometheus-histograms",
        ),
        (vec!["--out-prometheus-header", "A: b"], "--out-prometheus"),
        (
            vec![
                "--out-prometheus",
                "http://h/w",
                "--out-prometheus-user",
                "u",
            ],
            "--out-prometheus-user",
        ),
    ] {
        let out = std::process::Command::new(BIN)
            .arg("run")
            .arg(&plan)
            .args(&extra)
            .env_remove(remote_write::cli::PASSWORD_ENV)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(flag), "{extra:?}: {stderr}");
        assert!(
            !stderr.contains("connect"),
            "{extra:?}: load was sent: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(plan.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let h = Hostile::start(|_| {
        Reply::SendClose(
            b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 4\r\n\r\nslow"
                .to_vec(),
        )
    })
    .await;
    let p = Pusher::start(
        endpoint(format!("{}/w", h.base_url())),
        Labels::default(),
        options(HistogramMode::Quantiles),
    );
    let d = p
        .finish(&snapshot(), 1_000_000, 0, Duration::from_millis(1500))
        .await;
    // At 0 and 1 s; the backoff alone would have sent it at 0, 0.1, 0.3, 0.7 s.
    assert!((1..=2).contains(&h.requests()), "{} requests", h.requests());
    assert_eq!(
        (d.undelivered, d.last_error.as_deref()),
        (10, Some("HTTP 429: slow"))
    );
}
