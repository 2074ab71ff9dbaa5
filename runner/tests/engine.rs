//! The engine against the built-in target on loopback: measured latency
//! matches injected latency, the open model exposes stalls, splits are exact,
//! journeys pass captured values on, data policies hold.

#[path = "support/local_run.rs"]
mod local_run;
use local_run::{run_solo, run_workers};

use std::{path::PathBuf, time::Instant};

use barrage_runner::{
    report::Report,
    serve::{LocalServer, ServeConfig, spawn_local},
    snapshot::ErrorKind,
};

async fn server(routes: &str) -> LocalServer {
    spawn_local(ServeConfig::from_yaml_str(routes).unwrap())
        .await
        .unwrap()
}

async fn run_plan(srv: &LocalServer, plan: &str, workers: u32) -> Report {
    run_in(srv, plan, workers, PathBuf::new()).await
}

async fn run_in(srv: &LocalServer, plan: &str, workers: u32, dir: PathBuf) -> Report {
    run_workers(&plan.replace("BASE", &srv.base_url()), dir, workers).await
}

fn pct(r: &Report, name: &str, p: f64) -> f64 {
    let h = &r.snapshot.requests[name].latency;
    h.value_at_quantile(p / 100.0) as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentiles_follow_the_injected_latency() {
    let srv = server("routes: [{path: /slow, latency: '10%:50ms'}]").await;
    let plan = "target: {baseUrl: BASE}\nload: {users: 10, iterations: 1000}\nrequests: [{name: slow, path: /slow}]";
    let r = run_plan(&srv, plan, 1).await;
    assert_eq!(r.summary.total.requests, 1000);
    assert_eq!(r.summary.total.errors, 0);
    let (p80, p95) = (pct(&r, "slow", 80.0), pct(&r, "slow", 95.0));
    assert!(p95 >= 50.0, "p95 {p95}ms should include the 10% at 50ms");
    assert!(p80 < 15.0, "p80 {p80}ms should be well below 50ms");
    assert_eq!(srv.hits("/slow"), 1000);
}

/// A server that stops answering for one second. In the open model the
/// requests due during the stall keep arriving and count their wait, so the
/// stall reaches p99; closed-model users simply stop sending (coordinated
/// omission), so only a handful of samples see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_shows_a_stall_that_the_closed_model_hides() {
    let routes = "routes: [{path: /, latency: 1ms, stall: {after: 1s, duration: 1s}}]";
    let open_srv = server(routes).await;
    let open = run_plan(&open_srv, "target: {baseUrl: BASE}\nload: {executor: arrival-rate, rate: 300, duration: 3s}\nrequests: [{name: r, path: /}]", 1).await;
    let closed_srv = server(routes).await;
    let closed = run_plan(
        &closed_srv,
        "target: {baseUrl: BASE}\nload: {users: 4, duration: 3s}\nrequests: [{name: r, path: /}]",
        1,
    )
    .await;

    // Both met the stall...
    assert!(
        open.summary.total.latency_ms.max >= 800.0,
        "open max {}",
        open.summary.total.latency_ms.max
    );
    assert!(
        closed.summary.total.latency_ms.max >= 800.0,
        "closed max {}",
        closed.summary.total.latency_ms.max
    );
    // ...but only the open model's percentiles admit it.
    let (open_p99, closed_p99) = (pct(&open, "r", 99.0), pct(&closed, "r", 99.0));
    assert!(open_p99 >= 500.0, "open p99 {open_p99}ms");
    assert!(closed_p99 < 100.0, "closed p99 {closed_p99}ms");
    // Every arrival is sent or counted dropped; the arrival due 7 ms before
    // the end may be dropped when a busy machine runs the scheduler that
    // late (it never sends past the planned end), but no more than a few.
    assert_eq!(open.summary.total.requests + open.summary.dropped, 900);
    assert!(
        open.summary.dropped <= 10,
        "{} dropped",
        open.summary.dropped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_together_produce_exactly_the_planned_load() {
    let srv = server("routes: [{path: /}]").await;
    let closed = run_plan(&srv, "target: {baseUrl: BASE}\nload: {users: 7, iterations: 1001}\nrequests: [{name: a, path: /, weight: 3}, {name: b, path: /}]", 3).await;
    assert_eq!(closed.summary.total.requests, 1001);
    assert_eq!(closed.summary.runners, 3);
    let a = closed.summary.requests["a"].requests as f64;
    assert!(
        (0.68..0.82).contains(&(a / 1001.0)),
        "weight 3:1 gave {a} of 1001"
    );

    let open = run_plan(&srv, "target: {baseUrl: BASE}\nload: {executor: arrival-rate, rate: 150, duration: 2s}\nrequests: [{name: a, path: /}]", 4).await;
    assert_eq!(open.summary.total.requests + open.summary.dropped, 300);
    // At most the last arrivals, when a busy machine runs a scheduler late.
    assert!(
        open.summary.dropped <= 4,
        "{} dropped",
        open.summary.dropped
    );
    assert_eq!(open.snapshot.runner_starts_us.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_beyond_max_in_flight_are_dropped_and_counted() {
    let srv = server("routes: [{path: /, latency: 300ms}]").await;
    let r = run_plan(&srv, "target: {baseUrl: BASE}\nload: {executor: arrival-rate, rate: 100, duration: 1s, maxInFlight: 5}\nrequests: [{name: a, path: /}]", 1).await;
    assert_eq!(r.summary.total.requests + r.summary.dropped, 100);
    assert!(r.summary.dropped >= 60, "dropped {}", r.summary.dropped);
    assert!(
        r.summary.total.requests >= 10,
        "requests {}",
        r.summary.total.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journeys_pass_captured_values_to_later_steps() {
    let srv = server(
        "routes:\n- {method: POST, path: /login, body: '{\"data\":{\"token\":\"t123\"}}', headers: {x-session: s9}}\n- {path: /me/t123/s9, body: me}\n- {path: /bad, body: '{}'}",
    )
    .await;
    let plan = "target: {baseUrl: BASE}\nload: {users: 2, iterations: 10}\nrequests:\n- name: journey\n  steps:\n  - {name: login, method: POST, path: /login, capture: {token: {json: /data/token}, session: {header: x-session}}}\n  - {name: me, path: '/me/{{ vars.token }}/{{ vars.session }}', expect: {status: [200]}}";
    let r = run_plan(&srv, plan, 1).await;
    assert_eq!(r.summary.requests["journey/login"].requests, 10);
    assert_eq!(r.summary.requests["journey/me"].requests, 10);
    assert_eq!(r.summary.total.errors, 0);
    assert_eq!(srv.hits("/me/t123/s9"), 10);
    // Each pass is in the journeys table, apart from the requests.
    let j = &r.summary.journeys["journey"];
    assert_eq!((j.passes, j.failed), (10, 0));
    assert_eq!(r.summary.total.requests, 20);
    assert!(j.duration_ms.min >= r.summary.requests["journey/login"].latency_ms.min);

    // A capture that finds nothing fails its step and ends the journey.
    let plan = "target: {baseUrl: BASE}\nload: {users: 1, iterations: 3}\nrequests:\n- name: j\n  steps:\n  - {name: first, path: /bad, capture: {token: {json: /token}}}\n  - {name: second, path: '/me/{{ vars.token }}'}";
    let r = run_plan(&srv, plan, 1).await;
    assert_eq!(
        r.snapshot.requests["j/first"]
            .errors
            .get(&ErrorKind::Capture),
        Some(&3)
    );
    assert!(!r.snapshot.requests.contains_key("j/second"));
    let j = &r.snapshot.journeys["j"];
    assert_eq!((j.passes(), j.failed), (3, 3));
    // Through the split, the wire and the merge of three runners, and
    // judged by a threshold on the whole pass.
    let plan = "target: {baseUrl: BASE}\nload: {users: 3, iterations: 30}\nthresholds: ['requests == 30 for journey journey', 'errors == 0 for journey journey', 'p(99) < 10s for journey journey']\nrequests:\n- name: journey\n  steps:\n  - {name: login, method: POST, path: /login}\n  - {name: me, path: /me/t123/s9}";
    let r = run_plan(&srv, plan, 3).await;
    assert_eq!(r.snapshot.journeys["journey"].passes(), 30);
    assert!(r.passed, "{:?}", r.thresholds);
}

fn users_file(n: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("barrage-engine-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rows: Vec<String> = (0..n).map(|i| format!("{{\"id\":\"u{i}\"}}")).collect();
    std::fs::write(dir.join("users.jsonl"), rows.join("\n")).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_policies_hold_across_workers() {
    let srv = server("routes: [{path: '/u/*'}]").await;
    let dir = users_file(100);
    // Cold start: every record once, disjoint across the 2 runners, then stop.
    let unique = "target: {baseUrl: BASE}\nload: {users: 4, iterations: 500}\ndata: {file: users.jsonl, select: unique}\nrequests: [{name: u, path: '/u/{{ record.id }}'}]";
    let r = run_in(&srv, unique, 2, dir.clone()).await;
    assert_eq!(r.summary.total.requests, 100);
    assert_eq!(r.summary.distinct_records, 100);
    assert!(r.snapshot.data_exhausted > 0);

    // Warm cache: 300 requests over 100 records.
    let cycle = unique
        .replace("select: unique", "select: cycle")
        .replace("500", "300");
    let r = run_in(&srv, &cycle, 2, dir.clone()).await;
    assert_eq!(r.summary.total.requests, 300);
    assert_eq!(r.summary.distinct_records, 100);

    // Mixed: about 20% of iterations take a new record.
    let dir = users_file(5000);
    let mixed = unique
        .replace("select: unique", "select: mixed, repeat: 0.8")
        .replace("500", "1000");
    let r = run_in(&srv, &mixed, 2, dir).await;
    let new = r.summary.distinct_records as f64 / 1000.0;
    assert!((0.14..0.27).contains(&new), "new-record fraction {new}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn think_time_paces_users_and_intervals_add_up() {
    let srv = server("routes: [{path: /}]").await;
    let plan = "target: {baseUrl: BASE}\nload: {users: 2, duration: 1s, thinkTime: 100ms}\nreportInterval: 250ms\nrequests: [{name: a, path: /}]";
    let r = run_plan(&srv, plan, 1).await;
    let n = r.summary.total.requests;
    assert!((14..=24).contains(&n), "2 users x ~10 iterations, got {n}");
    let iv = &r.snapshot.intervals;
    assert!((3..=5).contains(&iv.len()), "{} intervals", iv.len());
    assert_eq!(iv.iter().map(|i| i.requests).sum::<u64>(), n);
    assert_eq!(
        iv.iter()
            .map(|i| i.latency.unpack().unwrap().len())
            .sum::<u64>(),
        n
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_sets_the_iteration_period() {
    let srv = server("routes: [{path: /, latency: 20ms}]").await;
    // Each iteration takes ~20 ms; pacing stretches it to 250 ms start to start.
    let plan = "target: {baseUrl: BASE}\nload: {users: 2, duration: 1s, pacing: 250ms}\nrequests: [{name: a, path: /}]";
    let r = run_plan(&srv, plan, 1).await;
    let n = r.summary.total.requests;
    assert!(
        (6..=10).contains(&n),
        "2 users x 4 iterations expected, got {n}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_ramp_users_up_and_down() {
    let srv = server("routes: [{path: /, latency: 10ms}]").await;
    let plan = "target: {baseUrl: BASE}\nload: {stages: [{duration: 1s, target: 6}, {duration: 1s, target: 0}]}\nreportInterval: 500ms\nrequests: [{name: a, path: /}]";
    let t = Instant::now();
    let r = run_plan(&srv, plan, 2).await;
    assert!(t.elapsed().as_secs_f64() < 3.5);
    // Average 3 users over 2 s at ~10 ms each: roughly 600 requests, and the
    // middle of the test (the peak) busier than its start.
    let n = r.summary.total.requests;
    assert!((250..=700).contains(&n), "{n}");
    let iv = &r.snapshot.intervals;
    assert!(
        iv[1].requests > iv[0].requests,
        "{:?}",
        iv.iter().map(|i| i.requests).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_on_fail_threshold_stops_the_run_early() {
    let srv = server("routes: [{path: /, status: 500}]").await;
    let plan = "target: {baseUrl: BASE}\nload: {users: 2, duration: 20s, thinkTime: 10ms}\nrequests: [{name: a, path: /}]\nthresholds: ['error_rate < 1% abortOnFail']";
    let t = Instant::now();
    let r = run_plan(&srv, plan, 1).await;
    assert!(t.elapsed().as_secs() < 5, "took {:?}", t.elapsed());
    assert!(!r.passed);
    assert!(
        r.aborted.as_deref().unwrap().contains("error_rate"),
        "{:?}",
        r.aborted
    );
    assert_eq!(
        r.snapshot.requests["a"].errors.get(&ErrorKind::Status),
        Some(&r.summary.total.requests)
    );
}

/// Windows of the run's own series: a half-second stall one second in shows
/// in the window that holds it and in no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_thresholds_read_the_series_of_the_run() {
    let srv =
        server("routes: [{path: /, latency: 1ms, stall: {after: 1s, duration: 500ms}}]").await;
    let plan = "target: {baseUrl: BASE}\nload: {executor: arrival-rate, rate: 100, duration: 3s}\n\
        reportInterval: 500ms\nrequests: [{name: r, path: /}]\nthresholds:\n\
        - 'p(99)[each 1s] < 300ms'\n\
        - 'p(99)[first 1s] < 300ms'\n\
        - 'p(99)[last 1s] < 300ms'\n\
        - 'error_rate[each 1s] == 0'\n\
        - 'requests[from 0s to 3s] >= 250'";
    let r = run_plan(&srv, plan, 2).await;
    let by: std::collections::HashMap<&str, &barrage_runner::thresholds::Outcome> = r
        .thresholds
        .iter()
        .map(|o| (o.source.as_str(), o))
        .collect();
    let each = by["p(99)[each 1s] < 300ms"];
    assert!(!each.passed, "{each:?}");
    assert!(
        each.observed_text.starts_with("window 1s-2s: p(99) ")
            && each
                .observed_text
                .ends_with("1 of 3 window(s) of 1s failed"),
        "{}",
        each.observed_text
    );
    assert!(each.observed.unwrap() >= 250_000.0, "{each:?}");
    for ok in [
        "p(99)[first 1s] < 300ms",
        "p(99)[last 1s] < 300ms",
        "error_rate[each 1s] == 0",
        "requests[from 0s to 3s] >= 250",
    ] {
        assert!(by[ok].passed, "{:?}", by[ok]);
    }
    // The open model lasts its planned length (its last arrival is at
    // 2.99s), so the whole 3s are whole intervals.
    assert!(
        r.summary.duration_secs >= 3.0,
        "{}",
        r.summary.duration_secs
    );
    // All 300 sends but those that completed after the end (a busy machine).
    let n = by["requests[from 0s to 3s] >= 250"].observed.unwrap();
    assert!(n <= 300.0 && n <= r.summary.total.requests as f64, "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_each_window_abort_on_fail_stops_the_run_once_the_window_settles() {
    let srv = server("routes: [{path: /, status: 500}]").await;
    let plan = "target: {baseUrl: BASE}\nload: {users: 2, duration: 20s, thinkTime: 10ms}\nreportInterval: 500ms\n\
        requests: [{name: a, path: /}]\nthresholds: ['error_rate[each 1s] < 50% abortOnFail', 'error_rate[last 1s] < 50% abortOnFail']";
    let t = Instant::now();
    let r = run_plan(&srv, plan, 1).await;
    // The first window ends at 1s and settles a second later; the live
    // check runs every second.
    assert!(t.elapsed().as_secs() < 8, "took {:?}", t.elapsed());
    let why = r.aborted.as_deref().unwrap();
    assert!(
        why.starts_with("threshold \"error_rate[each 1s] < 50% abortOnFail\" failed (observed window 0s-1s: error_rate 100.00%"),
        "{why}"
    );
    assert!(!r.passed);
}

/// A low rate's last arrival comes well before the end; the run still
/// lasts its planned length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_lasts_its_planned_length() {
    let srv = server("routes: [{path: /}]").await;
    let plan = "target: {baseUrl: BASE}\nload: {executor: arrival-rate, rate: 2, duration: 1500ms}\n\
        reportInterval: 500ms\nrequests: [{name: a, path: /}]\nthresholds: ['requests[first 1500ms] == 3']";
    let r = run_plan(&srv, plan, 1).await;
    assert_eq!(r.summary.total.requests, 3);
    assert!(
        r.summary.duration_secs >= 1.5,
        "{}",
        r.summary.duration_secs
    );
    assert!(r.passed, "{:?}", r.thresholds);
}

// ---- A hand-written loopback server, for OAuth-style journeys and redirects.

mod raw {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex},
    };

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    #[derive(Clone, Debug)]
    pub struct Req {
        pub method: String,
        /// Path and query, as sent.
        pub target: String,
        pub headers: HashMap<String, String>,
        pub body: String,
    }

    impl Req {
        pub fn path(&self) -> &str {
            self.target.split('?').next().unwrap()
        }
    }

    type Handler = dyn Fn(&Req) -> (u16, Vec<(String, String)>, String) + Send + Sync;

    /// Serves keep-alive HTTP/1.1 on 127.0.0.1, answering each request with
    /// `handler` and logging it; returns the base URL and the log.
    pub async fn spawn(handler: Arc<Handler>) -> (String, Arc<Mutex<Vec<Req>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let l2 = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (handler, log) = (handler.clone(), l2.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let req = loop {
                            if let Some(req) = parse(&mut buf) {
                                break req;
                            }
                            let mut chunk = [0u8; 4096];
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        log.lock().unwrap().push(req.clone());
                        let (status, headers, body) = handler(&req);
                        let mut out =
                            format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                        for (k, v) in headers {
                            out.push_str(&format!("{k}: {v}\r\n"));
                        }
                        out.push_str("\r\n");
                        out.push_str(&body);
                        if sock.write_all(out.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (base, log)
    }

    /// One whole request off the front of `buf`, if it has arrived.
    fn parse(buf: &mut Vec<u8>) -> Option<Req> {
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .map_or(0, |v| v.parse().unwrap());
        if buf.len() < head_end + 4 + len {
            return None;
        }
        let body = String::from_utf8_lossy(&buf[head_end + 4..head_end + 4 + len]).to_string();
        buf.drain(..head_end + 4 + len);
        Some(Req {
            method,
            target,
            headers,
            body,
        })
    }

    /// `k=v&...` decoded (percent and `+`).
    pub fn form(s: &str) -> HashMap<String, String> {
        let dec = |s: &str| {
            let b = s.replace('+', " ");
            let b = b.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' && i + 2 < b.len() {
                    out.push(
                        u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16)
                            .unwrap(),
                    );
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        };
        s.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (dec(k), dec(v))
            })
            .collect()
    }
}

/// An authorization-code + PKCE flow: step 1 sends the challenge and
/// captures the code from the 302's Location, step 2 posts the verifier in a
/// form (the server checks SHA-256 and answers 200 or 400), step 3 uses the
/// token captured with a regex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkce_journey_captures_the_code_and_proves_the_verifier() {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex, atomic::AtomicU64},
    };

    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use sha2::{Digest, Sha256};

    let challenges: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let next_code = Arc::new(AtomicU64::new(0));
    let handler = {
        let challenges = challenges.clone();
        move |req: &raw::Req| -> (u16, Vec<(String, String)>, String) {
            let q = raw::form(req.target.split_once('?').map_or("", |(_, q)| q));
            match (req.method.as_str(), req.path()) {
                ("GET", "/authorize") => {
                    assert_eq!(q["code_challenge_method"], "S256");
                    assert!(q["login_hint"].ends_with("@example.test"));
                    let code = format!(
                        "c/{}+=",
                        next_code.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    );
                    challenges
                        .lock()
                        .unwrap()
                        .insert(code.clone(), q["code_challenge"].clone());
                    let enc = code
                        .replace('/', "%2F")
                        .replace('+', "%2B")
                        .replace('=', "%3D");
                    let location = format!("https://app.test/cb?state=s&code={enc}");
                    (302, vec![("location".into(), location)], String::new())
                }
                ("POST", "/token") => {
                    assert_eq!(
                        req.headers["content-type"],
                        "application/x-www-form-urlencoded"
                    );
                    let f = raw::form(&req.body);
                    let Some(challenge) = challenges.lock().unwrap().remove(&f["code"]) else {
                        return (400, vec![], "unknown code".into());
                    };
                    let v = &f["code_verifier"];
                    let ok = f["grant_type"] == "authorization_code"
                        && (43..=128).contains(&v.len())
                        && URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) == challenge;
                    if ok {
                        (200, vec![], format!("{{\"access_token\":\"at-{v}\"}}"))
                    } else {
                        (400, vec![], "bad verifier".into())
                    }
                }
                ("GET", "/me") => {
                    let ok = req.headers["authorization"].starts_with("Bearer at-");
                    (if ok { 200 } else { 401 }, vec![], String::new())
                }
                _ => (404, vec![], String::new()),
            }
        }
    };
    let (base, log) = raw::spawn(Arc::new(handler)).await;
    let plan = format!(
        r#"target: {{baseUrl: "{base}"}}
load: {{users: 2, iterations: 20}}
requests:
- name: login
  steps:
  - name: authorize
    path: /authorize
    query: {{code_challenge: "{{{{ pkce.challenge }}}}", code_challenge_method: S256, login_hint: "{{{{ email }}}}"}}
    expect: {{status: [302]}}
    capture: {{code: {{locationQuery: code}}}}
  - name: token
    method: POST
    path: /token
    form: {{grant_type: authorization_code, code: "{{{{ vars.code }}}}", code_verifier: "{{{{ pkce.verifier }}}}"}}
    expect: {{status: [200]}}
    capture: {{token: {{regex: '"access_token":"([^"]+)"'}}}}
  - {{name: me, path: /me, headers: {{authorization: "Bearer {{{{ vars.token }}}}"}}, expect: {{status: [200]}}}}
"#
    );
    let r = run_solo(&plan).await;
    assert_eq!(r.summary.total.errors, 0, "{:?}", r.snapshot.requests);
    for step in ["login/authorize", "login/token", "login/me"] {
        assert_eq!(r.summary.requests[step].requests, 20, "{step}");
    }
    // Every iteration had its own verifier.
    let verifiers: std::collections::HashSet<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path() == "/token")
        .map(|r| raw::form(&r.body)["code_verifier"].clone())
        .collect();
    assert_eq!(verifiers.len(), 20);

    // A verifier that does not match the challenge is refused: the 400 fails
    // the step and ends the journey.
    let wrong = plan.replace("{{ pkce.verifier }}", "{{ randString(50) }}");
    let r = run_solo(&wrong.replace("iterations: 20", "iterations: 3")).await;
    assert_eq!(
        r.snapshot.requests["login/token"].statuses.get(&400),
        Some(&3)
    );
    assert!(!r.snapshot.requests.contains_key("login/me"));
}

fn redirect_server() -> impl Fn(&raw::Req) -> (u16, Vec<(String, String)>, String) {
    |req: &raw::Req| {
        let to = |status: u16, location: &str| {
            (
                status,
                vec![("location".to_string(), location.to_string())],
                String::new(),
            )
        };
        let host = req.headers["host"].clone();
        match req.path() {
            "/see-other" => to(303, "/moved"),
            "/moved" => to(302, &format!("http://{host}/temp")),
            "/temp" => to(307, "final?x=1"),
            "/final" => (200, vec![], format!("{} {}", req.method, req.body)),
            "/away" => to(302, "http://other.test/final"),
            "/loop" => to(302, "/loop"),
            _ => (404, vec![], String::new()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_only_when_asked_and_only_to_the_target() {
    use std::sync::Arc;

    let (base, log) = raw::spawn(Arc::new(redirect_server())).await;
    let plan = |req: &str| {
        format!(
            "target: {{baseUrl: \"{base}\"}}\nload: {{users: 1, iterations: 2}}\nrequests: [{req}]"
        )
    };
    let paths = |log: &std::sync::Mutex<Vec<raw::Req>>| {
        let mut l = log.lock().unwrap();
        let p: Vec<String> = l
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect();
        l.clear();
        p
    };

    // Not followed (the default): the 303 is the response, and it passes.
    let r = run_solo(&plan("{name: a, method: POST, path: /see-other, body: hi}")).await;
    assert_eq!(r.snapshot.requests["a"].statuses.get(&303), Some(&2));
    assert_eq!(r.summary.total.errors, 0);
    assert_eq!(paths(&log), ["POST /see-other", "POST /see-other"]);

    // Followed: 303 turns the POST into a GET without body, 302 stays GET,
    // 307 keeps the method (and body) and resolves a relative Location.
    let r = run_solo(&plan(
        "{name: a, method: POST, path: /see-other, body: hi, followRedirects: true, expect: {status: [200]}}",
    ))
    .await;
    assert_eq!(r.snapshot.requests["a"].statuses.get(&200), Some(&2));
    assert_eq!(r.summary.total.requests, 2);
    assert_eq!(r.summary.total.errors, 0);
    assert_eq!(
        paths(&log),
        [
            "POST /see-other",
            "GET /moved",
            "GET /temp",
            "GET /final?x=1"
        ]
        .repeat(2)
    );
    let r = run_solo(&plan(
        "{name: a, method: PUT, path: /temp, body: hi, followRedirects: true, expect: {status: [200]}}",
    ))
    .await;
    assert_eq!(r.summary.total.errors, 0);
    let l = log.lock().unwrap().clone();
    assert_eq!(l[1].target, "/final?x=1");
    assert_eq!((l[1].method.as_str(), l[1].body.as_str()), ("PUT", "hi"));
    paths(&log);

    // Another host is never followed: the 302 is recorded as it is.
    let r = run_solo(&plan(
        "{name: a, path: /away, followRedirects: true, expect: {status: [302]}}",
    ))
    .await;
    assert_eq!(r.snapshot.requests["a"].statuses.get(&302), Some(&2));
    assert_eq!(r.summary.total.errors, 0);
    assert_eq!(paths(&log), ["GET /away", "GET /away"]);

    // At most 5 redirects: then the last 3xx is the response judged.
    let r = run_solo(&plan(
        "{name: a, path: /loop, followRedirects: true, expect: {status: [200]}}",
    ))
    .await;
    assert_eq!(r.snapshot.requests["a"].statuses.get(&302), Some(&2));
    assert_eq!(
        r.snapshot.requests["a"].errors.get(&ErrorKind::Status),
        Some(&2)
    );
    assert_eq!(paths(&log).len(), 12);
}
