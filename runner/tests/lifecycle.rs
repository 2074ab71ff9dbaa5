//! How a run ends: every request the target saw is in the report, the ones
//! still unanswered when the run ended as `interrupted`; the open model never
//! runs past its planned end; Ctrl-C ends a run within a couple of seconds
//! and still writes its report.

#[path = "support/local_run.rs"]
mod local_run;
use local_run::run_solo;

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use barrage_runner::{
    report::Report,
    serve::{ServeConfig, spawn_local},
    snapshot::ErrorKind,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// A target that counts every request head it reads and answers `200` while
/// `answering` is set; after that it keeps reading (and counting) but never
/// answers, holding its connections open.
struct Stalling {
    base: String,
    received: Arc<AtomicU64>,
    answering: Arc<AtomicBool>,
}

impl Stalling {
    async fn start(answering: bool) -> Stalling {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(AtomicU64::new(0));
        let answering = Arc::new(AtomicBool::new(answering));
        let (rx, ans) = (received.clone(), answering.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (rx, ans) = (rx.clone(), ans.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        // The plans send GETs without a body: a request is its head.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            rx.fetch_add(1, Ordering::SeqCst);
                            if ans.load(Ordering::SeqCst) {
                                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                                if sock.write_all(ok).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Stalling {
            base,
            received,
            answering,
        }
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }
}

fn interrupted(r: &Report) -> u64 {
    r.summary
        .total
        .errors_by_kind
        .get(ErrorKind::Interrupted.as_str())
        .copied()
        .unwrap_or(0)
}

/// The case: the target answers for 2 s, then never. The requests
/// it left unanswered were neither successes nor errors; now each is counted
/// once, as `interrupted`, and the verdict fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_at_the_end_of_the_graceful_stop_count_as_interrupted() {
    let target = Stalling::start(true).await;
    let answering = target.answering.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        answering.store(false, Ordering::SeqCst);
    });
    let plan = format!(
        "target: {{baseUrl: '{}', timeout: 10s}}\n\
         load: {{executor: arrival-rate, rate: 50, duration: 4s, gracefulStop: 1s}}\n\
         requests: [{{name: a, path: /}}]\nthresholds: ['error_rate < 1%']\n",
        target.base
    );
    let started = Instant::now();
    let r = run_solo(&plan).await;
    // The graceful stop bounds the run, not the 10 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    let t = &r.summary.total;
    assert_eq!(t.requests, target.received(), "{t:?}");
    assert_eq!(t.requests + r.summary.dropped, 200);
    let cut = interrupted(&r);
    assert!(
        (80..=120).contains(&cut),
        "{cut} interrupted of {}",
        t.requests
    );
    assert_eq!(t.errors, cut);
    assert_eq!(t.statuses.get(&200).copied().unwrap_or(0), t.requests - cut);
    assert!(!r.passed);
    // Nothing records after the run: a later snapshot would show the same.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(target.received(), t.requests);
}

/// The closed model's users still waiting when the graceful stop ends are
/// aborted, and each one's request is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_virtual_users_count_their_requests_as_interrupted() {
    let target = Stalling::start(false).await;
    let plan = format!(
        "target: {{baseUrl: '{}', timeout: 30s}}\n\
         load: {{users: 20, duration: 500ms, gracefulStop: 300ms}}\n\
         requests: [{{name: a, path: /}}]\n",
        target.base
    );
    let started = Instant::now();
    let r = run_solo(&plan).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.summary.total.requests, 20);
    assert_eq!(target.received(), 20);
    assert_eq!(interrupted(&r), 20);
}

/// A rate far beyond what can be sent: the run still ends at its planned
/// end, and every arrival the schedule had is either sent or dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_stops_at_its_planned_end_however_far_behind() {
    let srv = spawn_local(ServeConfig::from_yaml_str("routes: [{path: /}]").unwrap())
        .await
        .unwrap();
    let plan = format!(
        "target: {{baseUrl: '{}'}}\n\
         load: {{executor: arrival-rate, rate: 1e7, duration: 1s, maxInFlight: 4, gracefulStop: 1s}}\n\
         requests: [{{name: a, path: /}}]\n",
        srv.base_url()
    );
    let started = Instant::now();
    let r = run_solo(&plan).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let sent = r.summary.total.requests;
    assert!(sent > 0);
    // The highest rate a plan may ask for (`limits`): far beyond this machine.
    assert_eq!(sent + r.summary.dropped, 10_000_000);
    assert_eq!(r.summary.total.errors, 0);
}

/// `barrage-runner run` with `users` users against a target that never
/// answers (a 30 s graceful stop), once every user's request has arrived.
struct StalledRun {
    target: Stalling,
    child: std::process::Child,
    dir: PathBuf,
    out: PathBuf,
}

impl StalledRun {
    async fn start(users: u64, tag: &str) -> StalledRun {
        let target = Stalling::start(false).await;
        let dir = std::env::temp_dir().join(format!("barrage-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (plan, out) = (dir.join("plan.yaml"), dir.join("report.json"));
        std::fs::write(
            &plan,
            format!(
                "target: {{baseUrl: '{}', timeout: 60s}}\n\
                 load: {{users: {users}, duration: 60s, gracefulStop: 30s}}\n\
                 requests: [{{name: a, path: /}}]\n",
                target.base
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_barrage-runner"))
            .arg("run")
            .arg(&plan)
            .arg("--out")
            .arg(&out)
            .arg("-q")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Every user's request has reached the target: the run is in full swing.
        let deadline = Instant::now() + Duration::from_secs(30);
        while target.received() < users {
            assert!(
                Instant::now() < deadline,
                "only {} requests arrived",
                target.received()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        StalledRun {
            target,
            child,
            dir,
            out,
        }
    }

    /// A real Ctrl-C (SIGINT) to the process.
    fn interrupt(&self) {
        let kill = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
    }

    /// Waits (at most 10 s) for the process to exit: its status and stderr.
    async fn exit(&mut self) -> (std::process::ExitStatus, String) {
        let since = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if since.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("still running 10 s after Ctrl-C");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        (status, stderr)
    }
}

impl Drop for StalledRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A real Ctrl-C (SIGINT) to `barrage-runner run` against a target that
/// never answers, with a 30 s graceful stop: out within a few seconds, the
/// report written, every request counted as interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_a_run_promptly_and_writes_its_report() {
    const USERS: u64 = 2000;
    let mut run = StalledRun::start(USERS, "ctrlc").await;
    let sent = Instant::now();
    run.interrupt();
    let (status, stderr) = run.exit().await;
    let took = sent.elapsed();
    // A second's grace, then 2000 aborted requests and the report: well
    // under 5 s even for a debug build on a busy machine, and far below the
    // 30 s graceful stop this guards against.
    assert!(
        took < Duration::from_secs(5),
        "exited {took:?} after Ctrl-C"
    );
    // Interrupted is not passed: the thresholds-failed status.
    assert_eq!(status.code(), Some(99), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&run.out).unwrap()).unwrap();
    let total = &report["summary"]["total"];
    assert_eq!(total["requests"], USERS, "{total}");
    assert_eq!(total["errorsByKind"]["interrupted"], USERS, "{total}");
    assert_eq!(run.target.received(), USERS);
    assert_eq!(report["aborted"], "interrupted");
}

/// A second Ctrl-C while the first one's short grace runs: out at once,
/// without the report, with the status a shell gives a SIGINT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_exits_at_once() {
    let mut run = StalledRun::start(50, "ctrlc2").await;
    run.interrupt();
    // Well inside the first Ctrl-C's one-second grace.
    tokio::time::sleep(Duration::from_millis(150)).await;
    run.interrupt();
    let (status, stderr) = run.exit().await;
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted again"), "{stderr}");
    assert!(
        !run.out.exists(),
        "a report was written after the second Ctrl-C"
    );
}
