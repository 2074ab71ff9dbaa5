//! Teardown against the built-in target's auth flow: a setup registers
//! users, the load uses them, the teardown deletes each one (`DELETE
//! /auth/me` per record), in its own result; its failures are reported with
//! the first one named, and fail the run only with `failsTest`.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use barrage_runner::{
    compile::Slot,
    local::{self, Options},
    planfile, provision,
    serve::{LocalServer, ServeConfig, spawn_local},
    teardown,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_barrage-runner");
const SETUP: &str = include_str!("../../examples/provisioning.yaml");
const TARGET: &str = include_str!("../../examples/auth-target.yaml");
/// A run that takes longer than this is hung.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

const DELETE: &str = "teardown:
  perRecord: true
  concurrency: 4
  steps:
    - name: delete
      method: DELETE
      path: /auth/me
      headers: {authorization: 'Bearer {{ record.token }}'}
      expect: {status: [200]}
";

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("barrage-td-{tag}-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_record_teardown_deletes_every_user_in_a_result_of_its_own() {
    let srv = spawn_local(ServeConfig::from_yaml_str(TARGET).unwrap())
        .await
        .unwrap();
    let setup = SETUP
        .replace("http://127.0.0.1:8080", &srv.base_url())
        .replace("users: 100", "users: 12");
    let (sp, prefix) = provision::from_str(&setup).unwrap();
    let p = provision::run(&provision::compile(&sp, prefix).unwrap(), None).await;
    p.verdict().unwrap();
    assert_eq!(srv.registered_users(), 12);
    let dir = temp_dir("lib");
    std::fs::write(dir.join("users.jsonl"), p.to_jsonl().unwrap()).unwrap();

    let plan = format!(
        "target: {{baseUrl: {}}}\nload: {{users: 3, iterations: 24}}\n\
         data: {{file: users.jsonl}}\n\
         requests: [{{name: profile, path: /api/profile, headers: {{authorization: 'Bearer {{{{ record.token }}}}'}}, expect: {{status: [200]}}}}]\n{DELETE}",
        srv.base_url()
    );
    let loaded = planfile::from_str(&plan, dir.clone()).unwrap();
    let report = local::run(
        &loaded,
        &Options {
            slots: vec![Slot::SOLO],
            progress: false,
        },
    )
    .await
    .unwrap();
    // The load's figures hold the load's requests only.
    assert_eq!(report.summary.total.requests, 24);
    assert_eq!(
        report.summary.requests.keys().collect::<Vec<_>>(),
        ["profile"]
    );

    let env = |_: &str| None;
    let t = teardown::compile(&loaded.plan, &loaded.base_dir, "", &env)
        .unwrap()
        .unwrap();
    assert_eq!((t.runs, t.concurrency), (12, 4));
    let done = teardown::run(&t, Duration::from_secs(30), std::future::pending()).await;
    let o = &done.outcome;
    assert_eq!(
        (o.runs, o.failed, o.requests, o.errors),
        (12, 0, 12, 0),
        "{o:?}"
    );
    assert!(o.succeeded() && o.first_failure.is_none());
    assert_eq!(srv.registered_users(), 0);
    assert_eq!(srv.deleted_users(), 12);
    let s = barrage_runner::report::Summary::of(&done.snapshot);
    assert_eq!(s.requests.keys().collect::<Vec<_>>(), ["teardown/delete"]);
    assert_eq!(s.requests["teardown/delete"].requests, 12);

    // Again: every token is dead now, so every run fails, counted and named.
    let again = teardown::run(&t, Duration::from_secs(30), std::future::pending()).await;
    let o = &again.outcome;
    assert_eq!((o.runs, o.failed, o.requests, o.errors), (12, 12, 12, 12));
    let f = o.first_failure.as_ref().unwrap();
    assert_eq!(
        (f.step.as_str(), f.error.as_str(), f.status),
        ("delete", "status", Some(401))
    );
    assert!(!o.fails_the_test(), "failsTest is not set");
    // The message carries no token.
    let tokens: Vec<String> = p.records.iter().map(|r| r["token"].to_string()).collect();
    let msg = teardown::termination_message(o);
    assert!(tokens.iter().all(|t| !msg.contains(t.trim_matches('"'))));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_teardown_that_outlasts_its_timeout_counts_its_runs_unfinished() {
    let srv =
        spawn_local(ServeConfig::from_yaml_str("routes: [{path: /slow, latency: 5s}]").unwrap())
            .await
            .unwrap();
    let plan = format!(
        "target: {{baseUrl: {}}}\nrequests: [{{name: a, path: /}}]\n\
         teardown: {{steps: [{{name: wait, path: /slow}}]}}\n",
        srv.base_url()
    );
    let loaded = planfile::from_str(&plan, PathBuf::new()).unwrap();
    let t = teardown::compile(&loaded.plan, Path::new(""), "", &|_| None)
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let done = teardown::run(&t, Duration::from_millis(200), std::future::pending()).await;
    assert!(started.elapsed() < Duration::from_secs(4));
    let o = &done.outcome;
    assert_eq!((o.runs, o.failed, o.unfinished), (1, 1, 1), "{o:?}");
    assert!(
        o.message().contains("1 runs did not finish"),
        "{}",
        o.message()
    );
}

// ------------------------------------------------------------- the binary

/// The auth target on its own runtime, so the test thread can wait for
/// the binary.
struct Target {
    server: LocalServer,
    _rt: tokio::runtime::Runtime,
}

impl Target {
    fn start() -> Target {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(spawn_local(ServeConfig::from_yaml_str(TARGET).unwrap()))
            .unwrap();
        Target { server, _rt: rt }
    }
}

/// A manifest with a setup of `users` users, a load over them for
/// `duration` or 20 iterations, and `teardown`.
fn manifest(t: &Target, users: u32, load: &str, teardown: &str) -> String {
    let spec_teardown = teardown
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect::<String>();
    SETUP
        .replace("http://127.0.0.1:8080", &t.server.base_url())
        .replace("users: 100", &format!("users: {users}"))
        .replace("load: {users: 10, iterations: 300}", load)
        + &spec_teardown
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env("BARRAGE_LOG", "warn")
        .env_remove("BARRAGE_RUNNER_INDEX")
        .env_remove("BARRAGE_RUNNER_COUNT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` (killing it after `PROCESS_TIMEOUT`): exit code, stderr.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut out = child.stdout.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("barrage-runner hung: {}", reader.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status.code(), reader.join().unwrap())
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn run_tears_down_after_the_load_and_reports_it_apart() {
    let t = Target::start();
    let dir = temp_dir("cli");
    let load = "load: {users: 2, iterations: 20}";
    let file = dir.join("lt.yaml");
    std::fs::write(&file, manifest(&t, 6, load, DELETE)).unwrap();
    let brief = dir.join("brief.json");
    let report = dir.join("report.json");
    let args = [
        "run",
        file.to_str().unwrap(),
        "--quiet",
        "--summary-json",
        brief.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ];
    let (code, stderr) = finish(spawn(&args));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(t.server.registered_users(), 0);
    assert_eq!(t.server.deleted_users(), 6);
    let b = read_json(&brief);
    assert_eq!(
        (b["passed"].as_bool(), b["requests"].as_u64()),
        (Some(true), Some(20))
    );
    let td = &b["teardown"];
    assert_eq!(
        (td["runs"].as_u64(), td["failed"].as_u64()),
        (Some(6), Some(0)),
        "{b}"
    );
    let r = read_json(&report);
    assert_eq!(r["teardown"]["summary"]["teardown/delete"]["requests"], 6);
    assert!(r["summary"]["requests"].get("teardown/delete").is_none());

    // A teardown that fails (it expects 204 for the 200 it gets): the
    // load's verdict stands...
    let bad = DELETE.replace("status: [200]", "status: [204]");
    std::fs::write(&file, manifest(&t, 3, load, &bad)).unwrap();
    let (code, stderr) = finish(spawn(&args));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("3 of 3 runs failed; first failure: step \"delete\": status, status 200"),
        "{stderr}"
    );
    assert!(stderr.contains("the load's verdict stands"), "{stderr}");
    // ...unless it says so.
    let fails = bad.replace("perRecord: true", "perRecord: true\n  failsTest: true");
    std::fs::write(&file, manifest(&t, 3, load, &fails)).unwrap();
    let (code, stderr) = finish(spawn(&args));
    assert_eq!(code, Some(99), "{stderr}");
    let b = read_json(&brief);
    assert_eq!(b["passed"], true, "the load itself passed");
    assert_eq!(b["teardown"]["failed"], 3);
    assert_eq!(b["teardown"]["failsTest"], true);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_interrupted_run_still_tears_down() {
    let t = Target::start();
    let dir = temp_dir("int");
    let file = dir.join("lt.yaml");
    let load = "load: {users: 2, duration: 1m}";
    std::fs::write(&file, manifest(&t, 4, load, DELETE)).unwrap();
    let brief = dir.join("brief.json");
    let child = spawn(&[
        "run",
        file.to_str().unwrap(),
        "--quiet",
        "--summary-json",
        brief.to_str().unwrap(),
    ]);
    // Interrupt once the load is on (the setup is done, users make requests).
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    while t.server.user_requests().values().sum::<u64>() == 0 {
        assert!(Instant::now() < deadline, "the load never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(99), "an interrupted run does not pass: {stderr}");
    let b = read_json(&brief);
    assert_eq!(b["aborted"], "interrupted");
    assert_eq!(
        (
            b["teardown"]["runs"].as_u64(),
            b["teardown"]["failed"].as_u64()
        ),
        (Some(4), Some(0)),
        "{b}"
    );
    assert_eq!(t.server.registered_users(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_teardown_command_runs_it_alone_and_writes_its_outcome() {
    let t = Target::start();
    let dir = temp_dir("cmd");
    let file = dir.join("lt.yaml");
    std::fs::write(
        &file,
        manifest(&t, 3, "load: {users: 1, iterations: 1}", DELETE),
    )
    .unwrap();
    let records = dir.join("records.jsonl");
    let (code, stderr) = finish(spawn(&[
        "setup",
        file.to_str().unwrap(),
        "--out",
        records.to_str().unwrap(),
        "--quiet",
    ]));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(t.server.registered_users(), 3);
    let msg = dir.join("message");
    let args = [
        "teardown",
        file.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
        "--message-file",
        msg.to_str().unwrap(),
        "--quiet",
    ];
    let (code, stderr) = finish(spawn(&args));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(t.server.registered_users(), 0);
    let o = teardown::parse_message(&std::fs::read_to_string(&msg).unwrap()).unwrap();
    assert_eq!((o.runs, o.failed, o.requests), (3, 0, 3));
    // Again: the users are gone, every run fails (exit 1), the message says how.
    let (code, _) = finish(spawn(&args));
    assert_eq!(code, Some(1));
    let o = teardown::parse_message(&std::fs::read_to_string(&msg).unwrap()).unwrap();
    assert_eq!((o.failed, o.first_failure.unwrap().status), (3, Some(401)));
    // A bad teardown: exit 2, the error (naming the field) as the message.
    let broken = std::fs::read_to_string(&file)
        .unwrap()
        .replace("record.token", "record.nope");
    std::fs::write(&file, broken).unwrap();
    let (code, stderr) = finish(spawn(&args));
    assert_eq!(code, Some(2), "{stderr}");
    let m = std::fs::read_to_string(&msg).unwrap();
    assert!(m.contains("spec.teardown.steps[0]"), "{m}");
    assert!(teardown::parse_message(&m).is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}
