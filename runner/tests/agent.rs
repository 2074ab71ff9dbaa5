//! `barrage-runner agent` over real HTTP on loopback: in-process agents
//! (`serve_agent`) for the protocol, and the real binary for the process
//! life cycle (startup errors, /shutdown, linger, SIGTERM).
//!
//! The client is a few lines of raw HTTP/1.1 with `Connection: close`, so
//! what is tested is exactly what goes over the wire.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use barrage_runner::{
    agent::{
        AgentHandle, AgentState, AgentStatus, SnapshotDelta, StartRequest, serve_agent,
        snapshot_since,
    },
    compile::{Slot, compile},
    engine::Runner,
    planfile,
    serve::{LocalServer, ServeConfig, spawn_local},
    snapshot::{Applied, Merge, Snapshot},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const TOKEN: &str = "s3cret-token";
const BIN: &str = env!("CARGO_BIN_EXE_barrage-runner");

// ---------------------------------------------------------------- helpers

async fn target() -> LocalServer {
    spawn_local(ServeConfig::from_yaml_str("routes: [{path: /}]").unwrap())
        .await
        .unwrap()
}

fn plan_yaml(target: &LocalServer, load: &str) -> String {
    format!(
        "target: {{baseUrl: '{}'}}\nload: {load}\nrequests: [{{name: a, path: /}}]\n",
        target.base_url()
    )
}

/// One in-process agent for `slot` of the plan, on 127.0.0.1:0.
async fn agent(target: &LocalServer, load: &str, slot: Slot) -> (Arc<Runner>, AgentHandle) {
    agent_for(&plan_yaml(target, load), slot).await
}

async fn agent_for(plan: &str, slot: Slot) -> (Arc<Runner>, AgentHandle) {
    let loaded = planfile::from_str(plan, PathBuf::new()).unwrap();
    let compiled = compile(&loaded.plan, slot, &loaded.base_dir, loaded.prefix).unwrap();
    let runner = Runner::new(Arc::new(compiled));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = serve_agent(listener, runner.clone(), TOKEN.to_string()).unwrap();
    (runner, handle)
}

fn solo() -> Slot {
    Slot { index: 0, count: 1 }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// One request on its own connection: (status code, body).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    call_as(addr, method, path, auth.as_deref(), body).await
}

/// `call` with the whole `Authorization` value (or none).
async fn call_as(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect to agent");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n");
    if let Some(a) = authorization {
        req += &format!("Authorization: {a}\r\n");
    }
    let body = body.unwrap_or("");
    req += &format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Read to the end; a reset after the reply (a refused body left unread
    // in the server's buffer) ends the read like EOF.
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            raw.extend_from_slice(&buf[..n]);
        }
    });
    read.await.expect("agent answered in time");
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    (code, body.to_string())
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    call(addr, "GET", path, Some(TOKEN), None).await
}

async fn start(addr: SocketAddr, at_us: u64) -> (u16, AgentStatus) {
    let body = serde_json::to_string(&StartRequest { at_us }).unwrap();
    let (code, text) = call(addr, "POST", "/start", Some(TOKEN), Some(&body)).await;
    (code, status_of(&text))
}

fn status_of(text: &str) -> AgentStatus {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not a status ({e}): {text}"))
}

async fn status(addr: SocketAddr) -> AgentStatus {
    let (code, text) = get(addr, "/status").await;
    assert_eq!(code, 200, "{text}");
    status_of(&text)
}

async fn snapshot(addr: SocketAddr) -> Snapshot {
    let (code, text) = get(addr, "/snapshot").await;
    assert_eq!(code, 200, "{text}");
    Snapshot::from_json(&text).unwrap()
}

/// Polls /status until the agent reports `finished`.
async fn wait_finished(addr: SocketAddr, within: Duration) -> AgentStatus {
    let deadline = Instant::now() + within;
    loop {
        let s = status(addr).await;
        if s.state == AgentState::Finished {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "not finished after {within:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- in-process

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_but_healthz_needs_the_token() {
    let srv = target().await;
    let (_runner, a) = agent(&srv, "{users: 1, iterations: 10}", solo()).await;
    let addr = a.addr();

    assert_eq!(
        call(addr, "GET", "/healthz", None, None).await,
        (200, "ok".to_string())
    );
    for path in ["/status", "/snapshot", "/nope"] {
        for token in [
            None,
            Some("wrong"),
            Some("s3cret-toke"),
            Some("s3cret-token2"),
        ] {
            let (code, body) = call(addr, "GET", path, token, None).await;
            assert_eq!(code, 401, "{path} with {token:?}: {body}");
            let err: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(err["error"].is_string(), "{body}");
        }
    }
    let start_body = format!(r#"{{"atUs": {}}}"#, now_us());
    for path in ["/start", "/stop", "/shutdown"] {
        let (code, _) = call(addr, "POST", path, Some("wrong"), Some(&start_body)).await;
        assert_eq!(code, 401, "{path}");
    }
    // None of that may have started, stopped or shut anything.
    assert_eq!(a.status().state, AgentState::Ready);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), a.shutdown_requested())
            .await
            .is_err()
    );

    // With the token: the status, 404 and 405.
    let s = status(addr).await;
    assert_eq!((s.state, s.index, s.count), (AgentState::Ready, 0, 1));
    assert_eq!(
        (s.start_at_us, s.started_us, s.finished_us),
        (None, None, None)
    );
    assert_eq!(get(addr, "/nope").await.0, 404);
    assert_eq!(
        call(addr, "POST", "/status", Some(TOKEN), None).await.0,
        405
    );
    assert_eq!(get(addr, "/start").await.0, 405);
    assert_eq!(call(addr, "POST", "/healthz", None, None).await.0, 405);
    // A malformed /start is refused without scheduling anything.
    let (code, _) = call(addr, "POST", "/start", Some(TOKEN), Some("{\"at\": 1}")).await;
    assert_eq!(code, 400);
    assert_eq!(a.status().state, AgentState::Ready);
    assert_eq!(srv.hits("/"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive_and_a_big_body_gets_413() {
    let srv = target().await;
    let (_runner, a) = agent(&srv, "{users: 1, iterations: 10}", solo()).await;
    let addr = a.addr();
    // RFC 9110 §11.1: the scheme is case-insensitive, and 1*SP follows it.
    for scheme in ["bearer", "BEARER", "bEaReR", "Bearer  "] {
        let auth = format!("{scheme} {TOKEN}");
        let (code, body) = call_as(addr, "GET", "/status", Some(&auth), None).await;
        assert_eq!(code, 200, "{auth}: {body}");
    }
    for auth in [format!("Basic {TOKEN}"), format!("Bearer{TOKEN}")] {
        let (code, _) = call_as(addr, "GET", "/status", Some(&auth), None).await;
        assert_eq!(code, 401, "{auth}");
    }

    // Over the 16 KiB limit: 413 naming the limit, and nothing scheduled.
    let big = format!(
        r#"{{"atUs": {}, "pad": "{}"}}"#,
        now_us(),
        "x".repeat(20_000)
    );
    let (code, body) = call(addr, "POST", "/start", Some(TOKEN), Some(&big)).await;
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("16384"), "{body}");
    assert_eq!(a.status().state, AgentState::Ready);
    // Just under it is read (and refused for its content, not its size).
    let pad = "x".repeat(16_000);
    let (code, _) = call(
        addr,
        "POST",
        "/start",
        Some(TOKEN),
        Some(&format!(r#"{{"pad": "{pad}"}}"#)),
    )
    .await;
    assert_eq!(code, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_starts_at_the_given_instant_not_before() {
    let srv = target().await;
    let (runner, a) = agent(&srv, "{users: 2, iterations: 200}", solo()).await;
    // A second ahead: the calls below fit in it even on a busy machine.
    let at = now_us() + 1_000_000;
    let (code, s) = start(a.addr(), at).await;
    assert_eq!(code, 202);
    assert_eq!((s.state, s.start_at_us), (AgentState::Scheduled, Some(at)));

    // Still waiting before the instant (a status that came back before it
    // was taken before it).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = status(a.addr()).await;
    if now_us() < at {
        assert_eq!((s.state, s.started_us), (AgentState::Scheduled, None));
        assert_eq!(srv.hits("/"), 0);
    }

    let s = wait_finished(a.addr(), Duration::from_secs(10)).await;
    let started = s.started_us.expect("a start time once finished");
    assert!(started >= at, "started {}us before atUs", at - started);
    assert!(
        started - at < 100_000,
        "started {}us after atUs",
        started - at
    );
    assert!(s.finished_us.unwrap() >= started);
    assert_eq!(runner.snapshot().total_requests(), 200);
    assert_eq!(srv.hits("/"), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_start_is_harmless_and_a_different_one_refused() {
    let srv = target().await;
    let (_runner, a) = agent(&srv, "{users: 1, iterations: 20}", solo()).await;
    let at = now_us() + 1_000_000;
    assert_eq!(start(a.addr(), at).await.0, 202);
    // While scheduled...
    let (code, s) = start(a.addr(), at).await;
    assert_eq!((code, s.state), (200, AgentState::Scheduled));
    let (code, s) = start(a.addr(), at + 1).await;
    assert_eq!((code, s.start_at_us), (409, Some(at)));
    // ...and once finished: never a second run.
    wait_finished(a.addr(), Duration::from_secs(10)).await;
    let (code, s) = start(a.addr(), at).await;
    assert_eq!((code, s.state), (200, AgentState::Finished));
    let (code, s) = start(a.addr(), now_us()).await;
    assert_eq!((code, s.state), (409, AgentState::Finished));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(srv.hits("/"), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_decode_before_and_after_the_load() {
    let srv = target().await;
    let (_runner, a) = agent(&srv, "{users: 3, iterations: 150}", solo()).await;
    let before = snapshot(a.addr()).await;
    assert_eq!(before.total_requests(), 0);
    assert_eq!((before.started_us, before.finished), (None, 0));

    assert_eq!(start(a.addr(), now_us()).await.0, 202);
    let s = wait_finished(a.addr(), Duration::from_secs(10)).await;
    let snap = snapshot(a.addr()).await;
    assert_eq!(snap.total_requests(), 150);
    assert_eq!(snap.total_errors(), 0);
    assert_eq!((snap.runners, snap.finished), (1, 1));
    assert_eq!(snap.runner_starts_us, vec![s.started_us.unwrap()]);
    assert_eq!(snap.requests["a"].count(), 150);
    assert!(
        !snap.intervals.is_empty(),
        "the full snapshot carries the interval series"
    );

    // Live pulls leave the interval series out, with the same totals.
    let (code, text) = get(a.addr(), "/snapshot?intervals=false").await;
    assert_eq!(code, 200);
    let live = Snapshot::from_json(&text).unwrap();
    assert!(live.intervals.is_empty());
    assert_eq!(live.total_requests(), 150);
}

/// Incremental pulls while the load runs, with replies lost on the way
/// (asked again with the same cursor), a caller that restarts with no
/// memory, and a stranger pulling in between: what the caller adds up is
/// exactly the full snapshot at the end, interval series included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_pulls_add_up_to_the_full_snapshot() {
    let srv = target().await;
    let plan = format!(
        "target: {{baseUrl: '{}'}}\nreportInterval: 200ms\nload: {{users: 2, duration: 1500ms, thinkTime: 1ms}}\nrequests: [{{name: a, path: /}}, {{name: b, path: /}}]\n",
        srv.base_url()
    );
    let (_runner, a) = agent_for(&plan, solo()).await;
    let mut m = Merge::new(None);
    let mut pulls = 0;
    let pull = async |m: &mut Merge, lose: bool| {
        let (code, body) = get(a.addr(), &snapshot_since(m.cursor(0))).await;
        assert_eq!(code, 200, "{body}");
        let d = SnapshotDelta::from_slice(body.as_bytes()).unwrap();
        if lose {
            return;
        }
        if m.apply(0, &d).unwrap() == Applied::Rebase {
            m.reset();
            let (_, body) = get(a.addr(), &snapshot_since(0)).await;
            let d = SnapshotDelta::from_slice(body.as_bytes()).unwrap();
            assert_eq!(m.apply(0, &d).unwrap(), Applied::Added);
        }
        m.settle();
    };
    // A pull before the start: nothing measured yet, but a cursor.
    pull(&mut m, false).await;
    assert_eq!(start(a.addr(), now_us()).await.0, 202);
    loop {
        pulls += 1;
        match pulls {
            // Lost replies: the next pull sends the same cursor again.
            3 | 4 | 9 => pull(&mut m, true).await,
            // The caller restarts with empty memory.
            6 => {
                m = Merge::new(None);
                pull(&mut m, false).await;
            }
            // Someone else pulls from 0 in between.
            11 => {
                get(a.addr(), &snapshot_since(0)).await;
                pull(&mut m, false).await;
            }
            _ => pull(&mut m, false).await,
        }
        if m.snapshot(false).finished == 1 && pulls > 12 {
            break;
        }
        assert!(pulls < 2000, "the load did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let full = snapshot(a.addr()).await;
    assert!(full.total_requests() > 100, "{}", full.total_requests());
    assert!(full.intervals.len() >= 5, "{}", full.intervals.len());
    assert_eq!(
        m.snapshot(true).to_json(),
        Snapshot::merged([&full]).to_json()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_a_running_load_early_and_keeps_its_results() {
    let srv = target().await;
    let (_runner, a) = agent(&srv, "{users: 2, duration: 60s, thinkTime: 2ms}", solo()).await;
    assert_eq!(start(a.addr(), now_us()).await.0, 202);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status(a.addr()).await.state, AgentState::Running);

    let (code, text) = call(a.addr(), "POST", "/stop", Some(TOKEN), None).await;
    assert_eq!(code, 202, "{text}");
    let s = wait_finished(a.addr(), Duration::from_secs(5)).await;
    let ran = s.finished_us.unwrap() - s.started_us.unwrap();
    assert!(ran < 5_000_000, "ran {ran}us of a 60s plan");

    let snap = snapshot(a.addr()).await;
    assert!(snap.total_requests() > 10, "{}", snap.total_requests());
    assert_eq!(snap.finished, 1);
    // Nothing is sent after the end, and a second stop changes nothing.
    let sent = srv.hits("/");
    assert_eq!(sent, snap.total_requests());
    assert_eq!(
        call(a.addr(), "POST", "/stop", Some(TOKEN), None).await.0,
        202
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(srv.hits("/"), sent);
    assert_eq!(status(a.addr()).await, s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_before_the_start_cancels_it() {
    let srv = target().await;
    let (_runner, a) = agent(&srv, "{users: 1, iterations: 50}", solo()).await;
    let at = now_us() + 1_000_000;
    assert_eq!(start(a.addr(), at).await.0, 202);
    let (code, text) = call(a.addr(), "POST", "/stop", Some(TOKEN), None).await;
    assert_eq!(code, 202);
    let s = status_of(&text);
    assert_eq!((s.state, s.started_us), (AgentState::Finished, None));
    assert!(s.finished_us.is_some());
    tokio::time::timeout(Duration::from_secs(1), a.load_finished())
        .await
        .expect("finished at once");

    // Past the instant: still nothing sent, and the snapshot says finished.
    tokio::time::sleep(Duration::from_micros(
        (at + 200_000).saturating_sub(now_us()),
    ))
    .await;
    assert_eq!(srv.hits("/"), 0);
    let after = status(a.addr()).await;
    assert_eq!(
        (after.state, after.started_us),
        (AgentState::Finished, None)
    );
    assert_eq!(after.finished_us, s.finished_us);
    let snap = snapshot(a.addr()).await;
    assert_eq!((snap.total_requests(), snap.finished), (0, 1));
    assert_eq!(snap.started_us, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_given_the_same_instant_start_together() {
    let srv = target().await;
    let mut agents = Vec::new();
    for index in 0..3 {
        agents.push(
            agent(
                &srv,
                "{users: 3, iterations: 300}",
                Slot { index, count: 3 },
            )
            .await,
        );
    }
    let at = now_us() + 1_000_000;
    for (_, a) in &agents {
        assert_eq!(start(a.addr(), at).await.0, 202);
    }
    let mut snaps = Vec::new();
    for (_, a) in &agents {
        let s = wait_finished(a.addr(), Duration::from_secs(10)).await;
        assert!(s.started_us.unwrap() >= at, "{s:?}");
        snaps.push(snapshot(a.addr()).await);
    }
    let merged = Snapshot::merged(&snaps);
    assert_eq!(merged.runner_starts_us.len(), 3);
    let skew = merged.start_skew_us().unwrap();
    // Three timers waking at one instant on two busy cores.
    assert!(skew < 50_000, "start skew {skew}us");
    assert_eq!(merged.total_requests(), 300);
    assert_eq!((merged.runners, merged.finished), (3, 3));
    assert_eq!(srv.hits("/"), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_signalled_after_the_reply() {
    let srv = target().await;
    let (_runner, a) = agent(&srv, "{users: 1, iterations: 5}", solo()).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(100), a.shutdown_requested())
            .await
            .is_err(),
        "shutdown signalled without a request"
    );
    let (code, text) = call(a.addr(), "POST", "/shutdown", Some(TOKEN), None).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(status_of(&text).state, AgentState::Ready);
    tokio::time::timeout(Duration::from_secs(1), a.shutdown_requested())
        .await
        .expect("shutdown signalled");
    // Closing drains connections and stops listening.
    let addr = a.addr();
    tokio::time::timeout(Duration::from_secs(5), a.close())
        .await
        .expect("closed in time");
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_token_is_refused() {
    let srv = target().await;
    let loaded = planfile::from_str(
        &plan_yaml(&srv, "{users: 1, iterations: 1}"),
        PathBuf::new(),
    )
    .unwrap();
    let compiled = compile(&loaded.plan, solo(), &loaded.base_dir, loaded.prefix).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    assert!(serve_agent(listener, Runner::new(Arc::new(compiled)), String::new()).is_err());
}

// ---------------------------------------------------------------- the binary

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("barrage-agent-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop, so a failing test leaves nothing behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.0.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "agent still running after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stderr(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(e) = self.0.stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_agent(plan: &Path, token_file: &Path, port: u16, extra: &[&str]) -> Proc {
    Proc(
        Command::new(BIN)
            .arg("agent")
            .arg("--plan")
            .arg(plan)
            .arg("--token-file")
            .arg(token_file)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("BARRAGE_RUNNER_INDEX", "0")
            .env("BARRAGE_RUNNER_COUNT", "1")
            .env("BARRAGE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn barrage-runner agent"),
    )
}

/// Waits until /healthz answers (the readiness probe's view).
async fn wait_ready(p: &mut Proc, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = p.0.try_wait().unwrap() {
            panic!("agent exited early ({st}): {}", p.stderr());
        }
        if TcpStream::connect(addr).await.is_ok() {
            assert_eq!(
                call(addr, "GET", "/healthz", None, None).await,
                (200, "ok".into())
            );
            return;
        }
        assert!(Instant::now() < deadline, "agent not listening on {addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_a_run_and_exits_on_shutdown() {
    let srv = target().await;
    let dir = TempDir::new("shutdown");
    let plan = dir.file("plan.yaml", &plan_yaml(&srv, "{users: 2, iterations: 100}"));
    let token = dir.file("token", &format!("  {TOKEN}\n"));
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut p = spawn_agent(&plan, &token, port, &[]);
    wait_ready(&mut p, addr).await;

    assert_eq!(call(addr, "GET", "/status", None, None).await.0, 401);
    let s = status(addr).await;
    assert_eq!((s.state, s.index, s.count), (AgentState::Ready, 0, 1));
    let at = now_us() + 200_000;
    assert_eq!(start(addr, at).await.0, 202);
    let s = wait_finished(addr, Duration::from_secs(15)).await;
    assert!(s.started_us.unwrap() >= at);
    let snap = snapshot(addr).await;
    assert_eq!((snap.total_requests(), snap.finished), (100, 1));

    let (code, _) = call(addr, "POST", "/shutdown", Some(TOKEN), None).await;
    assert_eq!(code, 200);
    let st = p.wait_exit(Duration::from_secs(10)).await;
    assert!(st.success(), "{st}: {}", p.stderr());
    assert_eq!(srv.hits("/"), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_by_itself_after_lingering() {
    let srv = target().await;
    let dir = TempDir::new("linger");
    let plan = dir.file("plan.yaml", &plan_yaml(&srv, "{users: 1, iterations: 10}"));
    let token = dir.file("token", TOKEN);
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut p = spawn_agent(&plan, &token, port, &["--linger", "500ms"]);
    wait_ready(&mut p, addr).await;
    // Ready, not finished: it must not leave on its own.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(p.0.try_wait().unwrap().is_none(), "exited before any load");
    assert_eq!(start(addr, now_us()).await.0, 202);
    let st = p.wait_exit(Duration::from_secs(10)).await;
    assert!(st.success(), "{st}: {}", p.stderr());
    assert_eq!(srv.hits("/"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_stops_the_load_and_exits_on_sigterm() {
    let srv = target().await;
    let dir = TempDir::new("sigterm");
    let plan = dir.file(
        "plan.yaml",
        &plan_yaml(&srv, "{users: 1, duration: 60s, thinkTime: 5ms}"),
    );
    let token = dir.file("token", TOKEN);
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut p = spawn_agent(&plan, &token, port, &[]);
    wait_ready(&mut p, addr).await;
    assert_eq!(start(addr, now_us()).await.0, 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(addr).await.state, AgentState::Running);
    let killed = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let st = p.wait_exit(Duration::from_secs(5)).await;
    assert!(st.success(), "{st}: {}", p.stderr());
    let sent = srv.hits("/");
    assert!(sent > 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(srv.hits("/"), sent, "requests after exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_rejects_a_bad_plan_or_token_with_exit_2() {
    let srv = target().await;
    let dir = TempDir::new("invalid");
    let good = dir.file("plan.yaml", &plan_yaml(&srv, "{users: 1, iterations: 1}"));
    let bad = dir.file("bad.yaml", &plan_yaml(&srv, "{users: 1, duration: 1 sec}"));
    let token = dir.file("token", TOKEN);
    let empty = dir.file("empty", " \n");
    let term_log = dir.file("termination-log", "");

    let port = free_port();
    let log_arg = term_log.to_str().unwrap();
    let mut p = spawn_agent(&bad, &token, port, &["--termination-log", log_arg]);
    let st = p.wait_exit(Duration::from_secs(10)).await;
    let err = p.stderr();
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("load.duration"), "{err}");
    let logged = std::fs::read_to_string(&term_log).unwrap();
    assert!(logged.contains("load.duration"), "{logged:?}");

    let mut p = spawn_agent(&good, &empty, port, &["--termination-log", log_arg]);
    let st = p.wait_exit(Duration::from_secs(10)).await;
    let err = p.stderr();
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("--token-file"), "{err}");
    assert!(
        std::fs::read_to_string(&term_log)
            .unwrap()
            .contains("empty")
    );

    // A slot outside the runner count.
    let mut p = spawn_agent(&good, &token, port, &["--runner-index", "1"]);
    let st = p.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(st.code(), Some(2), "{}", p.stderr());
    assert_eq!(srv.hits("/"), 0);
}
