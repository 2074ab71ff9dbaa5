//! The `barrage-runner` binary end to end: real processes, real plan files,
//! against the built-in target served from this test process on 127.0.0.1.
//!
//! Every bad-input test also checks that not a single request reached the
//! target: a bad plan must fail before any load is sent.

use std::{
    io::Read,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use barrage_runner::{
    histogram,
    serve::{LocalServer, ServeConfig, spawn_local},
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_barrage-runner");
/// A run that takes longer than this is hung: kill it and fail.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

/// The target's routes. `/r/N` lets a test see which runner slot sent what
/// (paths use `{{ runner.index }}`); `/*` catches everything else.
const ROUTES: &str = r#"
routes:
  - {method: GET, path: /ok, body: ok}
  - {method: GET, path: /slow, latency: 20ms, body: slow}
  - {method: GET, path: /r/0, body: r0}
  - {method: GET, path: /r/1, body: r1}
  - {method: GET, path: /r/2, body: r2}
  - {path: /*, body: other}
"#;

// ---------------------------------------------------------------- helpers

/// The built-in target on its own runtime; the runtime's worker thread serves
/// while the test thread waits for the binary.
struct Target {
    // Declared first so it is dropped (stops accepting) before the runtime.
    server: LocalServer,
    _rt: tokio::runtime::Runtime,
}

impl Target {
    fn start() -> Target {
        Target::with(ROUTES)
    }

    fn with(routes: &str) -> Target {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let config = ServeConfig::from_yaml_str(routes).expect("test routes are valid");
        let server = rt
            .block_on(spawn_local(config))
            .expect("start the built-in target");
        Target { server, _rt: rt }
    }

    fn url(&self) -> String {
        self.server.base_url()
    }

    fn hits(&self, pattern: &str) -> u64 {
        self.server.hits(pattern)
    }

    /// Every request the target saw, matched or not.
    fn total_hits(&self) -> u64 {
        self.server
            .route_hits()
            .iter()
            .map(|(_, _, n)| n)
            .sum::<u64>()
            + self.server.unmatched()
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "barrage-cli-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        Dir(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write fixture");
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The binary with no runner-slot variables inherited from the environment
/// and quiet logging (errors still print).
fn barrage<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("BARRAGE_RUNNER_INDEX")
        .env_remove("BARRAGE_RUNNER_COUNT")
        .env("BARRAGE_LOG", "warn");
    c
}

/// Runs to completion (killing the child after `PROCESS_TIMEOUT`).
fn output(mut cmd: Command) -> Out {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn barrage-runner");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let so = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let se = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for barrage-runner") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "barrage-runner {:?} did not finish within {PROCESS_TIMEOUT:?}; stderr: {}",
                cmd.get_args().collect::<Vec<_>>(),
                se.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        code: status.code(),
        stdout: so.join().expect("stdout reader"),
        stderr: se.join().expect("stderr reader"),
    }
}

/// Runs that send load take turns: two shared cores, and some of them
/// assert on latency.
fn load_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn read_json(p: &Path) -> Value {
    let text =
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{v} is not an unsigned integer"))
}

fn examples_quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.yaml")
}

/// A valid bare plan against `url`; the bad-input tests break one thing in it.
fn good_plan(url: &str) -> String {
    format!(
        "target:\n  baseUrl: {url}\nload:\n  users: 2\n  iterations: 20\nrequests:\n  - name: ok\n    path: /ok\n"
    )
}

/// Writes `plan` (with `{URL}` replaced by the target's URL) and `files`
/// into a temp dir, runs it, and checks that it is refused as invalid: exit
/// 2, an `error:` line on stderr naming the plan file, then `field: `, then
/// every one of `problems`; no report written; no request sent. Returns
/// stderr and the plan path.
fn assert_invalid(
    plan: &str,
    files: &[(&str, &str)],
    field: &str,
    problems: &[&str],
) -> (String, PathBuf) {
    let target = Target::start();
    let dir = Dir::new("invalid");
    for (name, text) in files {
        dir.write(name, text);
    }
    let plan_path = dir.write("plan.yaml", &plan.replace("{URL}", &target.url()));
    let report = dir.path("report.json");
    let brief = dir.path("brief.json");
    let mut cmd = barrage(["run".as_ref(), plan_path.as_os_str()]);
    cmd.arg("--out")
        .arg(&report)
        .arg("--summary-json")
        .arg(&brief)
        .arg("-q");
    let out = output(cmd);
    assert_eq!(out.code, Some(2), "exit code; {out:#?}");
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no `error:` line on stderr: {:?}", out.stderr));
    let at = line
        .find(&format!("{field}: "))
        .unwrap_or_else(|| panic!("error does not name the field {field:?}: {line:?}"));
    let message = &line[at + field.len() + 2..];
    for p in problems {
        assert!(
            message.contains(p),
            "error for {field} does not say {p:?}: {line:?}"
        );
    }
    assert!(!report.exists(), "a report was written for an invalid plan");
    assert!(!brief.exists(), "a summary was written for an invalid plan");
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    // Give a (wrongly) started run's requests a moment to land before counting.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(target.total_hits(), 0, "requests reached the target");
    (line.to_string(), plan_path)
}

// ------------------------------------------------------- the control case

/// The plan every bad-input test starts from is valid and does send: so
/// each refusal below comes from the one thing the test broke, and the
/// "no request reached the target" checks can see requests.
#[test]
fn the_base_plan_runs_and_reaches_the_target() {
    let _l = load_lock();
    let target = Target::start();
    let dir = Dir::new("base");
    let plan = dir.write("plan.yaml", &good_plan(&target.url()));
    let out = output(barrage(["run".as_ref(), plan.as_os_str(), "-q".as_ref()]));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(target.hits("/ok"), 20);
    assert_eq!(target.total_hits(), 20);
}

// -------------------------------------------------------------- bad input

#[test]
fn unknown_field_is_refused() {
    let plan = good_plan("{URL}").replace("users: 2", "usrs: 2");
    let (line, path) = assert_invalid(&plan, &[], "load.usrs", &["unknown field `usrs`"]);
    assert!(
        line.contains(&format!("{}: load.usrs", path.display())),
        "{line}"
    );
}

#[test]
fn bad_duration_is_refused() {
    let plan = good_plan("{URL}").replace("iterations: 20", "duration: 10 parsecs");
    assert_invalid(
        &plan,
        &[],
        "load.duration",
        &["10 parsecs", "unknown unit \"parsecs\""],
    );
}

#[test]
fn empty_requests_are_refused() {
    let plan = format!(
        "{}requests: []\n",
        good_plan("{URL}").split("requests:").next().unwrap()
    );
    assert_invalid(&plan, &[], "requests", &["is empty"]);
}

#[test]
fn all_zero_weights_are_refused() {
    let plan = good_plan("{URL}").replace(
        "  - name: ok\n    path: /ok\n",
        "  - {name: a, path: /ok, weight: 0}\n  - {name: b, path: /ok, weight: 0}\n",
    );
    assert_invalid(&plan, &[], "requests", &["every weight is 0"]);
}

#[test]
fn invalid_base_url_is_refused() {
    // A port that is not a number: not a URL at all.
    let plan = good_plan("{URL}").replace("{URL}", "{URL}:99x");
    assert_invalid(&plan, &[], "target.baseUrl", &["is not a valid URL"]);
}

#[test]
fn non_http_base_url_is_refused() {
    let plan = good_plan("{URL}").replace("baseUrl: {URL}", "baseUrl: 'ftp://127.0.0.1:9'");
    assert_invalid(
        &plan,
        &[],
        "target.baseUrl",
        &["ftp://127.0.0.1:9", "must start with http://"],
    );
}

#[test]
fn target_tls_is_checked_and_operator_fields_refused_locally() {
    // target.tls on a cleartext target would silently do nothing.
    let plan = good_plan("{URL}").replace(
        "baseUrl: {URL}",
        "baseUrl: {URL}\n  tls: {insecureSkipVerify: true}",
    );
    assert_invalid(&plan, &[], "target.tls", &["only applies to an https://"]);
    let https = |tls: &str| {
        good_plan("{URL}").replace(
            "baseUrl: {URL}",
            &format!("baseUrl: 'https://127.0.0.1:9'\n  tls: {tls}"),
        )
    };
    assert_invalid(
        &https("{caFrom: {secret: ca, key: ca.crt}}"),
        &[],
        "target.tls.caFrom",
        &["read by the operator", "caFile"],
    );
    assert_invalid(
        &https("{minVersion: '1.1'}"),
        &[],
        "target.tls.minVersion",
        &["\"1.2\" or \"1.3\""],
    );
    assert_invalid(
        &https("{certFile: c.crt}"),
        &[],
        "target.tls.keyFile",
        &["is missing"],
    );
}

#[test]
fn http2_connections_out_of_bounds_are_refused() {
    let h2 = |conns: &str| {
        good_plan("{URL}").replace(
            "baseUrl: {URL}\n",
            &format!("baseUrl: {{URL}}\n  http: \"2\"\n  connections: {conns}\n"),
        )
    };
    assert_invalid(&h2("0"), &[], "target.connections", &["at least 1"]);
    assert_invalid(
        &h2("10001"),
        &[],
        "target.connections",
        &["10001", "limit of 10000"],
    );
    let plan = good_plan("{URL}").replace("baseUrl: {URL}\n", "baseUrl: {URL}\n  connections: 4\n");
    assert_invalid(
        &plan,
        &[],
        "target.connections",
        &["only applies to HTTP/2"],
    );
}

#[test]
fn unknown_template_variable_is_refused() {
    let plan = good_plan("{URL}").replace("path: /ok", "path: '/x/{{ recrd.id }}'");
    assert_invalid(
        &plan,
        &[],
        "requests[0].path",
        &["column 4", "unknown template variable \"recrd.id\""],
    );
}

#[test]
fn record_without_data_is_refused() {
    let plan = good_plan("{URL}").replace("path: /ok", "path: '/ok/{{ record.x }}'");
    assert_invalid(&plan, &[], "requests[0].path", &["record.x", "no `data`"]);
}

#[test]
fn missing_env_var_in_a_header_is_refused() {
    const VAR: &str = "BARRAGE_CLI_TEST_SURELY_UNSET_TOKEN";
    assert!(std::env::var_os(VAR).is_none(), "{VAR} must not be set");
    let plan = good_plan("{URL}").replace(
        "baseUrl: {URL}\n",
        &format!("baseUrl: {{URL}}\n  headers:\n    x-token: 'Bearer {{{{ env.{VAR} }}}}'\n"),
    );
    assert_invalid(
        &plan,
        &[],
        "target.headers.x-token",
        &[&format!("environment variable {VAR} is not set")],
    );
    // The same in a request's own headers.
    let plan = good_plan("{URL}").replace(
        "path: /ok\n",
        &format!("path: /ok\n    headers: {{x-token: '{{{{ env.{VAR} }}}}'}}\n"),
    );
    assert_invalid(
        &plan,
        &[],
        "requests[0].headers.x-token",
        &[&format!("environment variable {VAR} is not set")],
    );
}

#[test]
fn data_file_that_is_not_json_is_refused() {
    let plan = format!(
        "{}data: {{file: users.json}}\n",
        good_plan("{URL}").replace("path: /ok", "path: '/ok/{{ record.id }}'")
    );
    assert_invalid(
        &plan,
        &[("users.json", "[{\"id\": 1}, {\"id\": ")],
        "data.file",
        &["users.json", "not a JSON array of objects"],
    );
    // Objects are required, not just any JSON.
    assert_invalid(
        &plan,
        &[("users.json", "[{\"id\": 1}, 7]")],
        "data.file",
        &["users.json", "item 1", "expected a JSON object"],
    );
}

#[test]
fn data_file_that_is_not_csv_is_refused() {
    let plan = format!(
        "{}data: {{file: users.csv, select: unique}}\n",
        good_plan("{URL}").replace("path: /ok", "path: '/ok/{{ record.id }}'")
    );
    // The second record has three fields under a two-field header.
    assert_invalid(
        &plan,
        &[("users.csv", "id,name\n1,ann\n2,bob,extra\n")],
        "data.file",
        &["users.csv", "CSV record 2"],
    );
}

#[test]
fn missing_data_file_is_refused() {
    let plan = format!(
        "{}data: {{file: nowhere.jsonl}}\n",
        good_plan("{URL}").replace("path: /ok", "path: '/ok/{{ record.id }}'")
    );
    assert_invalid(&plan, &[], "data.file", &["cannot read", "nowhere.jsonl"]);
}

#[test]
fn threshold_syntax_error_names_the_column() {
    let plan = format!(
        "{}thresholds:\n  - 'error_rate < 1%'\n  - 'p(95) =< 10ms'\n",
        good_plan("{URL}")
    );
    assert_invalid(
        &plan,
        &[],
        "thresholds[1]",
        &["column 7", "\"p(95) =< 10ms\""],
    );
}

#[test]
fn a_window_that_is_not_whole_intervals_is_refused() {
    // good_plan runs by iterations (no fixed length): only the width counts.
    let plan = format!(
        "{}reportInterval: 20s\nthresholds:\n  - 'error_rate < 1%'\n  - 'error_rate[each 45s] < 1%'\n",
        good_plan("{URL}")
    );
    assert_invalid(
        &plan,
        &[],
        "thresholds[1]",
        &[
            "column 17",
            "45s is not a whole number of reportInterval (20s)",
            "use 40s or 1m",
            "\"error_rate[each 45s] < 1%\"",
        ],
    );
}

#[test]
fn a_window_longer_than_the_test_is_refused() {
    let plan = format!(
        "{}thresholds: ['p(95)[last 10m] <= 1.2 * p(95)[first 10m]']\n",
        good_plan("{URL}").replace("iterations: 20", "duration: 5m")
    );
    assert_invalid(
        &plan,
        &[],
        "thresholds[0]",
        &["column 12", "the window (10m) is longer than the test (5m"],
    );
}

#[test]
fn threshold_for_an_unknown_request_is_refused() {
    let plan = format!(
        "{}thresholds:\n  - 'p(95) < 10ms for nope'\n",
        good_plan("{URL}")
    );
    assert_invalid(
        &plan,
        &[],
        "thresholds[0]",
        &["no request is named \"nope\"", "names: ok"],
    );
}

#[test]
fn stages_and_duration_together_are_refused() {
    let plan = good_plan("{URL}").replace(
        "  users: 2\n  iterations: 20\n",
        "  duration: 1s\n  stages:\n    - {duration: 1s, target: 2}\n",
    );
    assert_invalid(
        &plan,
        &[],
        "load.duration",
        &["either stages or duration, not both"],
    );
}

#[test]
fn think_time_with_arrival_rate_is_refused() {
    let plan = good_plan("{URL}").replace(
        "  users: 2\n",
        "  executor: arrival-rate\n  rate: 50\n  thinkTime: 100ms\n",
    );
    assert_invalid(
        &plan,
        &[],
        "load.thinkTime",
        &["only applies to executor: concurrency"],
    );
}

fn manifest(plan: &str) -> String {
    let indented: String = plan.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: barrage.dev/v1alpha1\nkind: LoadTest\nmetadata: {{name: m1}}\nspec:\n  runners: 3\n{indented}"
    )
}

#[test]
fn manifest_errors_are_prefixed_with_spec_and_name_the_file() {
    let plan = manifest(&good_plan("{URL}").replace("users: 2", "usrs: 2"));
    let (line, path) = assert_invalid(&plan, &[], "spec.load.usrs", &["unknown field `usrs`"]);
    assert!(
        line.contains(&format!("{}: spec.load.usrs", path.display())),
        "{line}"
    );
    let plan = manifest(&good_plan("{URL}").replace("iterations: 20", "duration: 10 parsecs"));
    let (line, path) = assert_invalid(&plan, &[], "spec.load.duration", &["unknown unit"]);
    assert!(line.contains(&path.display().to_string()), "{line}");
}

/// Errors found while compiling (after the file parsed) get the `spec.`
/// prefix too, and should name the file like parse errors do.
#[test]
fn manifest_compile_errors_name_the_file() {
    let plan = manifest(&format!(
        "{}thresholds: ['p(95) < 10ms for nope']\n",
        good_plan("{URL}")
    ));
    let (line, path) = assert_invalid(&plan, &[], "spec.thresholds[0]", &["nope"]);
    assert!(
        line.contains(&path.display().to_string()),
        "the error does not name {}: {line}",
        path.display()
    );
}

#[test]
fn manifest_compile_errors_are_prefixed_with_spec() {
    let plan = manifest(&good_plan("{URL}").replace(
        "  users: 2\n  iterations: 20\n",
        "  duration: 1s\n  stages: [{duration: 1s, target: 2}]\n",
    ));
    assert_invalid(&plan, &[], "spec.load.duration", &["not both"]);
    let plan = manifest(&format!(
        "{}thresholds: ['p(95) < 10ms for nope']\n",
        good_plan("{URL}")
    ));
    assert_invalid(&plan, &[], "spec.thresholds[0]", &["\"nope\""]);
}

#[test]
fn runner_index_out_of_range_is_refused() {
    let target = Target::start();
    let dir = Dir::new("slot");
    let plan = dir.write("plan.yaml", &good_plan(&target.url()));
    let mut cmd = barrage(["run".as_ref(), plan.as_os_str(), "-q".as_ref()]);
    cmd.args(["--runner-index", "3", "--runner-count", "3"]);
    let out = output(cmd);
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(
        out.stderr
            .contains("--runner-index: 3 is not below --runner-count 3"),
        "{}",
        out.stderr
    );
    // A count of 0 has no valid index at all.
    let mut cmd = barrage(["run".as_ref(), plan.as_os_str(), "-q".as_ref()]);
    cmd.env("BARRAGE_RUNNER_INDEX", "0")
        .env("BARRAGE_RUNNER_COUNT", "0");
    let out = output(cmd);
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stderr.contains("--runner-index"), "{}", out.stderr);
    // --workers 0 has nothing to run.
    let mut cmd = barrage(["run".as_ref(), plan.as_os_str(), "-q".as_ref()]);
    cmd.args(["--workers", "0"]);
    let out = output(cmd);
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stderr.contains("--workers"), "{}", out.stderr);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(target.total_hits(), 0);
}

// --------------------------------------------------------------- validate

#[test]
fn validate_accepts_the_quickstart() {
    let path = examples_quickstart();
    let out = output(barrage(["validate".as_ref(), path.as_os_str()]));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.stdout.trim(), format!("{}: valid", path.display()));
}

#[test]
fn validate_sends_nothing_and_refuses_a_bad_plan() {
    let target = Target::start();
    let dir = Dir::new("validate");
    let good = dir.write("good.yaml", &good_plan(&target.url()));
    let out = output(barrage(["validate".as_ref(), good.as_os_str()]));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout.contains("valid"), "{}", out.stdout);

    let bad = dir.write(
        "bad.yaml",
        &good_plan(&target.url()).replace("path: /ok", "path: ok"),
    );
    let out = output(barrage(["validate".as_ref(), bad.as_os_str()]));
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(
        out.stderr
            .contains("requests[0].path: \"ok\" must start with '/'"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("valid"), "{}", out.stdout);

    let missing = dir.path("missing.yaml");
    let out = output(barrage(["validate".as_ref(), missing.as_os_str()]));
    // Not an invalid plan but an I/O error: main maps Error::Read to 1.
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("cannot read"), "{}", out.stderr);

    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(target.total_hits(), 0, "validate sent requests");
}

// ------------------------------------------------------------------- runs

/// Runs `plan` (bare) with `--out` and `--summary-json`; returns the exit
/// code, stdout, the report and the brief.
fn run_plan(plan: &str, args: &[&str], quiet: bool) -> (Out, Value, Value) {
    let dir = Dir::new("run");
    let path = dir.write("plan.yaml", plan);
    let report = dir.path("report.json");
    let brief = dir.path("brief.json");
    let mut cmd = barrage(["run".as_ref(), path.as_os_str()]);
    cmd.arg("--out")
        .arg(&report)
        .arg("--summary-json")
        .arg(&brief)
        .args(args);
    if quiet {
        cmd.arg("-q");
    }
    let out = output(cmd);
    assert!(
        matches!(out.code, Some(0 | 99)),
        "the run did not complete: {out:#?}"
    );
    let (r, b) = (read_json(&report), read_json(&brief));
    (out, r, b)
}

#[test]
fn unreachable_target_counts_connect_errors_and_fails_thresholds() {
    let _l = load_lock();
    // A port that was just free: nothing listens there.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().unwrap().port()
    };
    let plan = format!(
        "target: {{baseUrl: 'http://127.0.0.1:{port}', timeout: 2s}}\n\
         load: {{users: 2, iterations: 12}}\n\
         requests: [{{name: ok, path: /ok}}]\n\
         thresholds: ['error_rate < 1%']\n"
    );
    let (out, report, brief) = run_plan(&plan, &[], true);
    assert_eq!(out.code, Some(99), "{out:#?}");
    assert!(out.stdout.is_empty(), "-q prints nothing: {}", out.stdout);

    let total = &report["summary"]["total"];
    assert_eq!(u(&total["requests"]), 12, "{total}");
    assert_eq!(u(&total["errors"]), 12, "{total}");
    assert_eq!(
        total["errorsByKind"],
        serde_json::json!({"connect": 12}),
        "{total}"
    );
    assert_eq!(total["statuses"], serde_json::json!({}), "{total}");
    assert_eq!(report["passed"], false);
    let t = &report["thresholds"][0];
    assert_eq!(t["source"], "error_rate < 1%");
    assert_eq!(t["passed"], false);
    assert_eq!(t["observedText"], "100.00%");

    assert_eq!(brief["passed"], false, "{brief}");
    assert_eq!(u(&brief["requests"]), 12, "{brief}");
    assert_eq!(u(&brief["errors"]), 12, "{brief}");
    assert_eq!(brief["aborted"], Value::Null, "{brief}");
}

#[test]
fn insecure_skip_verify_is_warned_about_at_the_start_and_in_the_summary() {
    let _l = load_lock();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().unwrap().port()
    };
    let plan = format!(
        "target: {{baseUrl: 'https://127.0.0.1:{port}', tls: {{insecureSkipVerify: true}}}}\n\
         load: {{users: 1, iterations: 2}}\n\
         requests: [{{name: ok, path: /ok}}]\n"
    );
    let (out, report, brief) = run_plan(&plan, &[], false);
    let warning = "target.tls.insecureSkipVerify: the target's certificate was not verified";
    assert!(
        out.stderr.contains(&format!("warning: {warning}")),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains(warning), "{}", out.stdout);
    assert_eq!(report["summary"]["warnings"], serde_json::json!([warning]));
    assert_eq!(brief["warnings"], serde_json::json!([warning]), "{brief}");
    // Nothing listens: a failed TCP connect opens no connection.
    assert_eq!(
        report["summary"]["total"]["errorsByKind"],
        serde_json::json!({"connect": 2})
    );
    assert_eq!(brief.get("connections"), None, "{brief}");
}

#[test]
fn abort_on_fail_stops_a_long_run_early() {
    let _l = load_lock();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().unwrap().port()
    };
    let plan = format!(
        "target: {{baseUrl: 'http://127.0.0.1:{port}'}}\n\
         load: {{users: 1, duration: 30s, pacing: 10ms}}\n\
         requests: [{{name: ok, path: /ok}}]\n\
         thresholds: ['errors < 1 abortOnFail']\n"
    );
    let started = Instant::now();
    let (out, report, brief) = run_plan(&plan, &[], true);
    let took = started.elapsed();
    assert_eq!(out.code, Some(99), "{out:#?}");
    assert!(took < Duration::from_secs(15), "not aborted: ran {took:?}");
    let aborted = report["aborted"].as_str().unwrap_or_default();
    assert!(aborted.contains("errors < 1"), "{}", report["aborted"]);
    assert_eq!(brief["aborted"].as_str(), Some(aborted), "{brief}");
    assert_eq!(report["passed"], false);
    let errors = u(&report["summary"]["total"]["errors"]);
    assert!(errors >= 1, "{errors}");
    assert_eq!(
        u(&report["summary"]["total"]["errorsByKind"]["connect"]),
        errors
    );
}

fn threshold_line<'a>(stdout: &'a str, source: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.contains(source))
        .unwrap_or_else(|| panic!("no threshold line for {source:?} in:\n{stdout}"))
        .trim()
}

fn observed_ms(line: &str) -> f64 {
    let text = line
        .rsplit("observed ")
        .next()
        .and_then(|t| t.strip_suffix("ms"))
        .unwrap_or_else(|| panic!("no observed milliseconds in {line:?}"));
    text.parse()
        .unwrap_or_else(|_| panic!("{text:?} in {line:?}"))
}

#[test]
fn failing_threshold_exits_99_and_shows_the_observed_value() {
    let _l = load_lock();
    let target = Target::start();
    let plan = format!(
        "target: {{baseUrl: '{}'}}\n\
         load: {{users: 2, iterations: 10}}\n\
         requests: [{{name: slow, path: /slow}}]\n\
         thresholds: ['p(95) < 5ms for slow', 'requests == 10']\n",
        target.url()
    );
    let (out, report, brief) = run_plan(&plan, &[], false);
    assert_eq!(out.code, Some(99), "{out:#?}");
    assert_eq!(target.hits("/slow"), 10);

    let failed = threshold_line(&out.stdout, "p(95) < 5ms for slow");
    assert!(failed.starts_with('✗'), "{failed}");
    let ms = observed_ms(failed);
    assert!(
        (19.5..1000.0).contains(&ms),
        "the target answers in 20ms, observed {ms}ms: {failed}"
    );
    let passed = threshold_line(&out.stdout, "requests == 10");
    assert!(passed.starts_with('✓'), "{passed}");
    assert!(passed.ends_with("observed 10"), "{passed}");
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);
    assert!(!out.stdout.contains("PASSED"), "{}", out.stdout);

    assert_eq!(report["passed"], false);
    assert_eq!(report["thresholds"][0]["passed"], false);
    assert_eq!(report["thresholds"][1]["passed"], true);
    let observed_us = report["thresholds"][0]["observed"].as_f64().unwrap();
    assert!(observed_us >= 19_500.0, "{observed_us}");
    assert_eq!(brief["passed"], false);
    assert_eq!(u(&brief["errors"]), 0);
}

#[test]
fn passing_thresholds_exit_0() {
    let _l = load_lock();
    let target = Target::start();
    let plan = format!(
        "target: {{baseUrl: '{}'}}\n\
         load: {{users: 2, iterations: 10}}\n\
         requests: [{{name: slow, path: /slow}}]\n\
         thresholds: ['p(95) < 5s for slow', 'requests == 10', 'error_rate < 1%']\n",
        target.url()
    );
    let (out, report, brief) = run_plan(&plan, &[], false);
    assert_eq!(out.code, Some(0), "{out:#?}");
    for source in ["p(95) < 5s for slow", "requests == 10", "error_rate < 1%"] {
        let line = threshold_line(&out.stdout, source);
        assert!(line.starts_with('✓'), "{line}");
    }
    assert!(
        threshold_line(&out.stdout, "error_rate < 1%").ends_with("observed 0.00%"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("PASSED"), "{}", out.stdout);
    assert_eq!(report["passed"], true);
    assert_eq!(brief["passed"], true);
    assert_eq!(u(&brief["requests"]), 10);
    assert_eq!(target.hits("/slow"), 10);
}

/// users 5, 300 iterations, each request on `/r/<its runner's index>`.
fn slot_plan(url: &str, iterations: u64) -> String {
    format!(
        "target: {{baseUrl: '{url}'}}\n\
         load: {{executor: concurrency, users: 6, iterations: {iterations}}}\n\
         requests: [{{name: r, path: '/r/{{{{ runner.index }}}}'}}]\n"
    )
}

#[test]
fn workers_split_the_iterations_exactly() {
    let _l = load_lock();
    let target = Target::start();
    let (out, report, brief) = run_plan(&slot_plan(&target.url(), 300), &["--workers", "3"], true);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(u(&report["summary"]["total"]["requests"]), 300);
    assert_eq!(u(&report["summary"]["runners"]), 3);
    assert_eq!(u(&report["snapshot"]["runners"]), 3);
    assert_eq!(u(&brief["requests"]), 300);
    // Each worker ran as its own slot, with its own third of the iterations.
    for i in 0..3 {
        assert_eq!(target.hits(&format!("/r/{i}")), 100, "slot {i}");
    }
    assert_eq!(target.total_hits(), 300);
}

#[test]
fn arrival_rate_iterations_are_exact_across_workers() {
    let _l = load_lock();
    let target = Target::start();
    let plan = format!(
        "target: {{baseUrl: '{}'}}\n\
         load: {{executor: arrival-rate, rate: 300, iterations: 91}}\n\
         requests: [{{name: r, path: '/r/{{{{ runner.index }}}}'}}]\n",
        target.url()
    );
    let (out, report, _) = run_plan(&plan, &["--workers", "3"], true);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(u(&report["summary"]["total"]["requests"]), 91);
    assert_eq!(u(&report["summary"]["dropped"]), 0);
    let per_slot: Vec<u64> = (0..3).map(|i| target.hits(&format!("/r/{i}"))).collect();
    assert_eq!(per_slot, [31, 30, 30]);
}

/// `load.iterations` is the total "across all runners", so it must not
/// depend on how the users happen to split: 2 users over 3 workers still
/// make 300 iterations.
#[test]
fn iterations_are_exact_with_fewer_users_than_workers() {
    let _l = load_lock();
    let target = Target::start();
    let plan = format!(
        "target: {{baseUrl: '{}'}}\n\
         load: {{executor: concurrency, users: 2, iterations: 300}}\n\
         requests: [{{name: r, path: '/r/{{{{ runner.index }}}}'}}]\n",
        target.url()
    );
    let (out, report, _) = run_plan(&plan, &["--workers", "3"], true);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(
        u(&report["summary"]["total"]["requests"]),
        300,
        "per slot: {:?}",
        (0..3)
            .map(|i| target.hits(&format!("/r/{i}")))
            .collect::<Vec<_>>()
    );
}

#[test]
fn runner_index_runs_only_that_slots_share() {
    let _l = load_lock();
    let target = Target::start();
    let (out, report, _) = run_plan(
        &slot_plan(&target.url(), 300),
        &["--runner-index", "1", "--runner-count", "3"],
        true,
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(u(&report["summary"]["total"]["requests"]), 100);
    assert_eq!(u(&report["summary"]["runners"]), 1);
    assert_eq!(target.hits("/r/1"), 100);
    assert_eq!(target.total_hits(), 100, "only slot 1's requests");
}

#[test]
fn runner_slot_from_the_environment() {
    let _l = load_lock();
    let target = Target::start();
    let dir = Dir::new("env");
    let plan = dir.write("plan.yaml", &slot_plan(&target.url(), 300));
    let report = dir.path("report.json");
    let mut cmd = barrage(["run".as_ref(), plan.as_os_str(), "-q".as_ref()]);
    cmd.arg("--out")
        .arg(&report)
        .env("BARRAGE_RUNNER_INDEX", "2")
        .env("BARRAGE_RUNNER_COUNT", "3");
    let out = output(cmd);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(u(&read_json(&report)["summary"]["total"]["requests"]), 100);
    assert_eq!(target.hits("/r/2"), 100);
    assert_eq!(target.total_hits(), 100);

    // 301 does not divide by 3: the first slot takes the extra iteration.
    let plan = dir.write("plan301.yaml", &slot_plan(&target.url(), 301));
    let mut cmd = barrage(["run".as_ref(), plan.as_os_str(), "-q".as_ref()]);
    cmd.arg("--out")
        .arg(&report)
        .env("BARRAGE_RUNNER_INDEX", "0")
        .env("BARRAGE_RUNNER_COUNT", "3");
    let out = output(cmd);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(u(&read_json(&report)["summary"]["total"]["requests"]), 101);
    assert_eq!(target.hits("/r/0"), 101);
}

#[test]
fn report_json_carries_summary_thresholds_and_histograms() {
    let _l = load_lock();
    let target = Target::start();
    let plan = format!(
        "target: {{baseUrl: '{}'}}\n\
         load: {{users: 3, iterations: 60}}\n\
         requests:\n\
           - {{name: ok, path: /ok, weight: 2}}\n\
           - {{name: other, path: /elsewhere, weight: 1}}\n\
         thresholds: ['requests == 60', 'p(99) < 5s for ok']\n",
        target.url()
    );
    let (out, report, brief) = run_plan(&plan, &[], true);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(u(&report["version"]), 1);
    assert_eq!(report["passed"], true);
    assert!(report.get("aborted").is_none(), "{}", report["aborted"]);
    let summary = &report["summary"];
    assert_eq!(u(&summary["total"]["requests"]), 60);
    assert_eq!(u(&summary["total"]["errors"]), 0);
    assert_eq!(u(&summary["runners"]), 1);
    assert_eq!(summary["total"]["statuses"], serde_json::json!({"200": 60}));

    let th = report["thresholds"].as_array().expect("thresholds array");
    // Neither bounds the errors of all requests, so the default joins them.
    assert_eq!(th.len(), 3);
    assert_eq!(th[2]["source"], "error_rate < 1%");
    assert_eq!(th[2]["default"], true);
    assert_eq!(th[2]["passed"], true);
    assert_eq!(th[0]["source"], "requests == 60");
    assert_eq!(th[0]["observedText"], "60");
    assert_eq!(th[0]["passed"], true);
    assert_eq!(th[1]["source"], "p(99) < 5s for ok");
    assert!(
        th[1]["observedText"]
            .as_str()
            .is_some_and(|t| t.ends_with("us") || t.ends_with("ms")),
        "{}",
        th[1]
    );

    let mut total = 0;
    for name in ["ok", "other"] {
        let encoded = report["snapshot"]["requests"][name]["latency"]
            .as_str()
            .unwrap_or_else(|| panic!("snapshot.requests.{name}.latency is not a string"));
        let h = histogram::decode(encoded)
            .unwrap_or_else(|e| panic!("snapshot.requests.{name}.latency: {e}"));
        let count = u(&summary["requests"][name]["requests"]);
        assert!(count > 0, "{name} never ran in 60 iterations");
        assert_eq!(h.len(), count, "{name}: histogram count vs summary");
        total += h.len();
    }
    assert_eq!(total, 60);
    assert_eq!(
        u(&summary["requests"]["ok"]["requests"]),
        target.hits("/ok")
    );
    assert_eq!(
        u(&summary["requests"]["other"]["requests"]),
        target.hits("/*")
    );

    // The brief is the small summary of the same run.
    assert_eq!(brief["passed"], true);
    assert_eq!(u(&brief["requests"]), 60);
    assert_eq!(u(&brief["errors"]), 0);
    assert_eq!(
        brief["p95Ms"].as_f64(),
        summary["total"]["latencyMs"]["p95"].as_f64()
    );
}

#[test]
fn demo_runs_the_quickstart_against_its_own_target() {
    let _l = load_lock();
    let dir = Dir::new("demo");
    let brief = dir.path("brief.json");
    let mut cmd = barrage(["demo", "--workers", "2", "-q", "--summary-json"]);
    cmd.arg(&brief);
    let out = output(cmd);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout.is_empty(), "-q prints nothing: {}", out.stdout);
    let b = read_json(&brief);
    assert_eq!(b["passed"], true, "{b}");
    assert!(u(&b["requests"]) > 0, "{b}");
    assert_eq!(u(&b["errors"]), 0, "{b}");
}

/// `unique` data that runs out stops the load, and the summary says why.
#[test]
fn running_out_of_unique_records_is_reported() {
    let _l = load_lock();
    let target = Target::start();
    let dir = Dir::new("unique");
    dir.write("users.csv", "id\nu1\nu2\nu3\nu4\nu5\n");
    let plan = dir.write(
        "plan.yaml",
        &format!(
            "target: {{baseUrl: '{}'}}\nload: {{users: 2, iterations: 50}}\ndata: {{file: users.csv, select: unique}}\nrequests: [{{name: u, path: '/u/{{{{ record.id }}}}'}}]\n",
            target.url()
        ),
    );
    let out = output(barrage(["run".as_ref(), plan.as_os_str()]));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout.contains("data exhausted"), "{}", out.stdout);
    assert!(
        out.stdout.contains("data records ....... 5 distinct"),
        "{}",
        out.stdout
    );
    assert_eq!(target.total_hits(), 5);
}

// ---------------------------------------------------------------- setup

fn provisioning(t: &Target, users: u32) -> String {
    include_str!("../../examples/provisioning.yaml")
        .replace("http://127.0.0.1:8080", &t.url())
        .replace("users: 100", &format!("users: {users}"))
}

#[test]
fn setup_writes_one_record_per_user_and_run_provisions_first() {
    let t = Target::with(include_str!("../../examples/auth-target.yaml"));
    let dir = Dir::new("setup");
    let manifest = dir.write("m.yaml", &provisioning(&t, 12));
    let records = dir.path("r.jsonl");
    let out = output(barrage([
        "setup".as_ref(),
        manifest.as_os_str(),
        "-o".as_ref(),
        records.as_os_str(),
    ]));
    assert_eq!(out.code, Some(0), "{out:?}");
    // Piped: progress lines on stdout (the last one final), plain lines
    // for people on stderr, no bar.
    let last = out.stdout.lines().last().unwrap_or_default();
    assert_eq!(last, "barrage-progress done=12 total=12", "{out:?}");
    assert!(
        out.stdout
            .lines()
            .all(|l| l.starts_with("barrage-progress done=")),
        "{out:?}"
    );
    assert!(out.stderr.contains("  12/12 users"), "{out:?}");
    assert!(!out.stderr.contains('\r'), "{out:?}");
    let text = std::fs::read_to_string(&records).unwrap();
    assert_eq!(text.lines().count(), 12);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["token"].as_str().is_some_and(|t| !t.is_empty()), "{line}");
        assert!(t.server.user_id(v["email"].as_str().unwrap()).is_some());
    }
    // `run` on the manifest provisions its own 12 users, then loads them.
    let out = output(barrage([
        "run".as_ref(),
        manifest.as_os_str(),
        "-q".as_ref(),
    ]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(t.server.registered_users(), 24);
    assert_eq!(t.server.distinct_users(), 12);
    assert_eq!(t.server.rejected(), 0);
}

#[test]
fn a_failed_setup_exits_1_with_its_message_and_no_records() {
    let t = Target::with(include_str!("../../examples/auth-target.yaml"));
    let dir = Dir::new("setup-fail");
    let yaml = provisioning(&t, 3).replace("email: \"{{ email }}\"", "email: one@example.test");
    let manifest = dir.write("m.yaml", &yaml);
    let (records, message) = (dir.path("r.jsonl"), dir.path("message"));
    let out = output(barrage([
        "setup".as_ref(),
        manifest.as_os_str(),
        "-o".as_ref(),
        records.as_os_str(),
        "--message-file".as_ref(),
        message.as_os_str(),
    ]));
    assert_eq!(out.code, Some(1), "{out:?}");
    let msg = std::fs::read_to_string(&message).unwrap();
    assert!(msg.starts_with("setup failed for 2 of 3 users"), "{msg}");
    assert!(out.stderr.contains(&msg), "{out:?}");
    assert!(!records.exists());
    // An invalid setup exits 2 and names the file and field.
    let bad = dir.write("bad.yaml", &yaml.replace("users: 3", "users: 0"));
    let out = output(barrage(["setup".as_ref(), bad.as_os_str()]));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("bad.yaml: spec.setup.users: must be at least 1"),
        "{out:?}"
    );
}

/// Many files, several documents in one, every error of each with its
/// file, document and field; JSON for CI; 2 when any is invalid, 0 when
/// all are valid.
#[test]
fn validate_reports_every_error_of_every_document() {
    let dir = Dir::new("validate-many");
    let multi = dir.write(
        "multi.yaml",
        "# load tests\n---\napiVersion: barrage.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: bad}\nspec:\n  runners: 0\n  target: {baseUrl: 'http://10.0.0.1'}\n  load: {users: 1, duration: 0s}\n  requests: [{name: a, path: x}]\n  thresholds: ['p(95) < ten']\n---\napiVersion: barrage.dev/v1alpha1\nkind: ScheduledLoadTest\nmetadata: {name: nightly}\nspec:\n  schedule: '0 9 * * mond'\n  template:\n    spec:\n      target: {baseUrl: 'http://10.0.0.1'}\n      load: {users: 1, duration: 10s}\n      requests: [{name: a, path: /}]\n",
    );
    let quickstart = examples_quickstart();
    let out = output(barrage([
        "validate".as_ref(),
        multi.as_os_str(),
        quickstart.as_os_str(),
    ]));
    assert_eq!(out.code, Some(2), "{out:#?}");
    let m = multi.display();
    for line in [
        format!("{m}#0: spec.runners: must be at least 1"),
        format!("{m}#0: spec.load.duration: must be more than 0"),
        format!("{m}#0: spec.requests[0].path: \"x\" must start with '/'"),
        format!("{m}#0: spec.thresholds[0]: "),
        format!("{m}#1: spec.schedule: \"0 9 * * mond\""),
    ] {
        assert!(out.stderr.contains(&line), "{line}\n{}", out.stderr);
    }
    assert_eq!(out.stderr.lines().count(), 5, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("{}: valid", quickstart.display())
    );

    let out = output(barrage([
        "validate".as_ref(),
        "--output".as_ref(),
        "json".as_ref(),
        multi.as_os_str(),
        dir.path("missing.yaml").as_os_str(),
    ]));
    assert_eq!(out.code, Some(2), "{out:#?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let docs = &v["files"][0]["documents"];
    assert_eq!(docs[0]["kind"], "LoadTest");
    assert_eq!(docs[0]["name"], "bad");
    let fields: Vec<&str> = docs[0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.runners",
            "spec.load.duration",
            "spec.requests[0].path",
            "spec.thresholds[0]"
        ]
    );
    assert_eq!(docs[1]["kind"], "ScheduledLoadTest");
    assert_eq!(docs[1]["errors"][0]["field"], "spec.schedule");
    assert!(
        v["files"][1]["error"]
            .as_str()
            .unwrap()
            .contains("missing.yaml")
    );

    let out = output(barrage(["validate".as_ref(), quickstart.as_os_str()]));
    assert_eq!(out.code, Some(0), "{out:#?}");
}

#[test]
fn validate_checks_a_setup_and_the_fields_of_its_records() {
    let dir = Dir::new("validate-setup");
    let example = include_str!("../../examples/provisioning.yaml");
    let good = dir.write("good.yaml", example);
    let out = output(barrage(["validate".as_ref(), good.as_os_str()]));
    assert_eq!(out.code, Some(0), "{out:?}");
    // The setup records email and token: a plan asking for `password` is wrong.
    let bad = dir.write(
        "bad.yaml",
        &example.replace("{{ record.token }}", "{{ record.password }}"),
    );
    let out = output(barrage(["validate".as_ref(), bad.as_os_str()]));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("bad.yaml: spec.requests[0].headers.authorization")
            && out.stderr.contains("no field \"password\""),
        "{out:?}"
    );
}

// ------------------------------------------- the default threshold (trust)

/// A run in which every request failed never passes: a plan without
/// `thresholds` is judged by the default `error_rate < 1%`, marked
/// "(default)" in the summary and the report; `thresholds: []` turns it off.
#[test]
fn a_plan_without_thresholds_fails_when_every_request_fails() {
    let _l = load_lock();
    let target = Target::start();
    // The target answers 200; the plan expects 204, so every request fails.
    let plan = format!(
        "target: {{baseUrl: '{}'}}\n\
         load: {{users: 2, iterations: 10}}\n\
         requests: [{{name: ok, path: /ok, expect: {{status: [204]}}}}]\n",
        target.url()
    );
    let (out, report, brief) = run_plan(&plan, &[], false);
    assert_eq!(out.code, Some(99), "{out:#?}");
    let line = threshold_line(&out.stdout, "error_rate < 1% (default)");
    assert!(line.starts_with('✗') && line.ends_with("100.00%"), "{line}");
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);
    assert_eq!(report["passed"], false);
    assert_eq!(report["thresholds"][0]["source"], "error_rate < 1%");
    assert_eq!(report["thresholds"][0]["default"], true);
    assert_eq!(brief["passed"], false);

    let none = format!("{plan}thresholds: []\n");
    let (out, report, _) = run_plan(&none, &[], false);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(!out.stdout.contains("(default)"), "{}", out.stdout);
    assert_eq!(report["thresholds"], serde_json::json!([]));
    assert_eq!(target.hits("/ok"), 20);
}

// ------------------------------------ inputs refused, not reinterpreted

/// Runs `barrage-runner run PLAN -q` (plus `args`) on raw plan bytes, with
/// `prepare` adding files next to the plan, and checks the refusal: exit 2,
/// an `error:` line naming `field` and saying each of `problems`, within
/// a few seconds, and no request sent. Returns the error line.
fn refused(
    plan: &[u8],
    prepare: impl FnOnce(&Dir),
    args: &[&str],
    field: &str,
    problems: &[&str],
) -> String {
    let target = Target::start();
    let dir = Dir::new("refused");
    prepare(&dir);
    let text = String::from_utf8_lossy(plan).replace("{URL}", &target.url());
    let bytes = if std::str::from_utf8(plan).is_ok() {
        text.into_bytes()
    } else {
        plan.to_vec()
    };
    let path = dir.path("plan.yaml");
    std::fs::write(&path, bytes).expect("write plan");
    let mut cmd = barrage(["run".as_ref(), path.as_os_str()]);
    cmd.arg("-q").args(args);
    let started = Instant::now();
    let out = output(cmd);
    assert!(started.elapsed() < Duration::from_secs(10), "slow refusal");
    assert_eq!(out.code, Some(2), "exit code; {out:#?}");
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no `error:` line on stderr: {:?}", out.stderr))
        .to_string();
    assert!(
        line.contains(&format!("{field}: ")),
        "field {field:?}: {line}"
    );
    for p in problems {
        assert!(line.contains(p), "{p:?} missing: {line}");
    }
    assert_eq!(target.total_hits(), 0, "requests reached the target");
    line
}

#[test]
fn levels_counts_and_durations_have_upper_bounds() {
    let base = good_plan("{URL}");
    let load = |l: &str| base.replace("  users: 2\n  iterations: 20\n", l);
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "  users: 10000000\n  iterations: 20\n",
            "load.users",
            &["limit of 1000000 users"],
        ),
        (
            "  executor: arrival-rate\n  rate: 1e12\n  duration: 1s\n",
            "load.rate",
            &["limit of 10000000 requests per second"],
        ),
        (
            "  executor: arrival-rate\n  rate: 1e-300\n  iterations: 2\n",
            "load.rate",
            &["less than one a day"],
        ),
        (
            "  executor: arrival-rate\n  rate: .nan\n  duration: 1s\n",
            "load.rate",
            &["finite"],
        ),
        (
            "  executor: arrival-rate\n  rate: .inf\n  duration: 1s\n",
            "load.rate",
            &["finite"],
        ),
        (
            "  users: 2\n  iterations: 10000000000\n",
            "load.iterations",
            &["limit of 1000000000"],
        ),
        (
            "  executor: arrival-rate\n  rate: 0.001\n  iterations: 100000000\n",
            "load.iterations",
            &["limit of 168h"],
        ),
        (
            "  users: 2\n  duration: 200h\n",
            "load.duration",
            &["limit of 168h"],
        ),
        (
            "  stages: [{duration: 1m, target: 2000000}]\n",
            "load.stages[0].target",
            &["limit of 1000000 users"],
        ),
        (
            "  stages: [{duration: 100h, target: 1}, {duration: 100h, target: 1}]\n",
            "load.stages",
            &["limit of 168h"],
        ),
        (
            "  users: 2\n  iterations: 20\n  maxInFlight: 2000000\n",
            "load.maxInFlight",
            &["limit of 1000000"],
        ),
        (
            "  users: 2\n  iterations: 20\n  thinkTime: 2h\n",
            "load.thinkTime",
            &["limit of 1h"],
        ),
        (
            "  users: 2\n  duration: 100h\nreportInterval: 1s\n",
            "reportInterval",
            &["limit of 20000"],
        ),
    ];
    for (l, field, problems) in cases {
        refused(load(l).as_bytes(), |_| {}, &[], field, problems);
    }
    refused(
        base.replace("  baseUrl: {URL}\n", "  baseUrl: {URL}\n  timeout: 2h\n")
            .as_bytes(),
        |_| {},
        &[],
        "target.timeout",
        &["limit of 1h"],
    );
    for w in ["100000", "0"] {
        refused(
            base.as_bytes(),
            |_| {},
            &["--workers", w],
            "--workers",
            &["limit of 1024"],
        );
    }
}

#[test]
fn base_url_ports_and_credentials_are_refused() {
    for (url, problem) in [
        ("http://127.0.0.1:99999", "99999"),
        ("http://127.0.0.1:0", "\"0\""),
        ("http://[::1]:65536", "65536"),
    ] {
        let plan = good_plan(url);
        refused(plan.as_bytes(), |_| {}, &[], "target.baseUrl", &[problem]);
    }
    let plan = good_plan("http://alice:s3cret-pw@127.0.0.1:8080");
    let line = refused(
        plan.as_bytes(),
        |_| {},
        &[],
        "target.baseUrl",
        &["credentials", "authorization"],
    );
    assert!(
        !line.contains("s3cret-pw"),
        "the error repeats the password: {line}"
    );
    assert!(
        !line.contains("alice"),
        "the error repeats the user: {line}"
    );
}

#[test]
fn plans_that_are_not_utf8_or_too_large_are_refused() {
    let plan = good_plan("{URL}");
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(plan.encode_utf16().flat_map(u16::to_le_bytes));
    refused(
        &utf16,
        |_| {},
        &[],
        "(file)",
        &["UTF-16", "save it as UTF-8"],
    );
    let mut latin1 = plan.clone().into_bytes();
    latin1.extend(b"# caf\xe9\n");
    refused(&latin1, |_| {}, &[], "(file)", &["not UTF-8"]);
    let big = format!("{plan}#{}\n", "x".repeat(1 << 20));
    refused(big.as_bytes(), |_| {}, &[], "(file)", &["limit of 1 MiB"]);
}

#[test]
fn yaml_bombs_in_plans_are_refused_fast() {
    let mut bomb = good_plan("{URL}") + "x0: &a0 [a, a, a, a, a, a, a, a, a, a]\n";
    for i in 1..9 {
        let p = i - 1;
        bomb += &format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        );
    }
    refused(bomb.as_bytes(), |_| {}, &[], "(file)", &["aliases expand"]);
    let deep = good_plan("{URL}") + "x: " + &"[".repeat(200_000);
    refused(
        deep.as_bytes(),
        |_| {},
        &[],
        "(file)",
        &["nested more than 64"],
    );
}

#[test]
fn data_files_that_are_devices_or_utf16_are_refused() {
    let plan = format!(
        "{}data: {{file: users.csv}}\n",
        good_plan("{URL}").replace("path: /ok", "path: '/ok/{{ record.id }}'")
    );
    refused(
        plan.as_bytes(),
        |d| std::os::unix::fs::symlink("/dev/zero", d.path("users.csv")).unwrap(),
        &[],
        "data.file",
        &["users.csv", "not a regular file"],
    );
    refused(
        plan.as_bytes(),
        |d| {
            let mut b = vec![0xFE, 0xFF];
            b.extend("id\n1\n".encode_utf16().flat_map(u16::to_be_bytes));
            std::fs::write(d.path("users.csv"), b).unwrap();
        },
        &[],
        "data.file",
        &["users.csv", "UTF-16"],
    );
}

#[test]
fn serve_refuses_bad_connection_limits_naming_the_flag() {
    for (flag, value, needle) in [
        ("--idle-timeout", "0s", "longer than 0"),
        ("--header-read-timeout", "0ms", "longer than 0"),
        ("--header-read-timeout", "soon", "soon"),
        ("--max-connections", "0", "0"),
    ] {
        let out = output(barrage(["serve", "--listen", "127.0.0.1:0", flag, value]));
        assert_eq!(out.code, Some(2), "{flag} {value}: {out:#?}");
        assert!(
            out.stderr.contains(flag) && out.stderr.contains(needle),
            "{flag} {value}: {}",
            out.stderr
        );
    }
}

/// The reported lock-out: more idle sockets than `serve` has file
/// descriptors. Out of descriptors, it closes connections that have had no
/// request for a moment, so a real client queued behind them is served.
#[test]
fn serve_out_of_descriptors_still_serves_a_real_client() {
    use std::{io::Write, net::TcpStream};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new("bash")
        .args([
            "-c",
            &format!("ulimit -n 64 && exec {BIN} serve --listen {addr}"),
        ])
        .env("BARRAGE_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Twice as many idle sockets as it has descriptors (the rest wait in
    // its listen backlog), then a real request.
    let idle: Vec<_> = (0..128)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let start = Instant::now();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply)
        .expect("a reply before the read timeout");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    drop(idle);
}
