//! Scenarios and virtual users against the built-in target on loopback:
//! scenarios run in parallel with exact per-scenario counts, weighted
//! scenarios split users and iterations exactly across runners, a user's
//! onStart runs once and its captures reach its later requests, and an
//! onStart that keeps failing retires the user, counted and warned about.

#[path = "support/local_run.rs"]
mod local_run;
use local_run::run_workers;

use std::path::PathBuf;

use barrage_runner::{
    report::Report,
    serve::{LocalServer, ServeConfig, spawn_local},
};

async fn server(routes: &str) -> LocalServer {
    spawn_local(ServeConfig::from_yaml_str(routes).unwrap())
        .await
        .unwrap()
}

async fn run(srv: &LocalServer, plan: &str, workers: u32) -> Report {
    let plan = format!("target: {{baseUrl: '{}'}}\n{plan}", srv.base_url());
    run_workers(&plan, PathBuf::new(), workers).await
}

fn count(r: &Report, name: &str) -> u64 {
    r.snapshot.requests.get(name).map_or(0, |s| s.count())
}

const ROUTES: &str =
    "routes: [{path: /a}, {path: /b}, {path: /c}, {path: /start/*}, {path: /stop/*}]";

/// A closed scenario and an open one starting later run side by side; each
/// one's requests are its own and exact, on one runner and on three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_and_a_later_open_scenario_run_together_with_exact_counts() {
    for workers in [1, 3] {
        let srv = server(ROUTES).await;
        let r = run(
            &srv,
            "scenarios:
  browse:
    load: {users: 3, iterations: 60}
    requests: [{name: a, path: /a}]
  spike:
    startTime: 500ms
    load: {executor: arrival-rate, rate: 40, duration: 1s}
    requests: [{name: b, path: /b}]
",
            workers,
        )
        .await;
        assert_eq!(count(&r, "browse/a"), 60, "{workers} runners");
        assert_eq!(srv.hits("/a"), 60);
        // Every arrival of the open scenario is sent or counted as dropped.
        assert_eq!(count(&r, "spike/b") + r.snapshot.dropped, 40);
        assert_eq!(srv.hits("/b"), count(&r, "spike/b"));
        assert_eq!(r.summary.total.errors, 0);
        // The spike began at its start time, not with the test.
        let started = r.snapshot.started_us.unwrap();
        let first_b = r.snapshot.requests["spike/b"].first_start_us;
        assert!(
            first_b >= started + 490_000,
            "spike's first request {}ms after the start",
            (first_b - started) / 1000
        );
        // And the test lasted until it ended (startTime + duration).
        assert!(
            r.summary.duration_secs >= 1.45,
            "{}",
            r.summary.duration_secs
        );
        assert!(r.passed);
    }
}

/// Weights 10 / 1 / 0.5 over 23 users: 20, 2 and 1 users (largest
/// remainder), whatever the number of runners; each user's onStart and
/// onStop run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_scenarios_split_users_exactly_across_runners() {
    let scenario = |name: &str, weight: &str, path: &str| {
        format!(
            "  {name}:\n    weight: {weight}\n    load: {{thinkTime: 20ms}}\n    onStart: {{steps: [{{name: in, path: /start/{name}}}]}}\n    onStop: {{steps: [{{name: out, path: /stop/{name}}}]}}\n    requests: [{{name: r, path: {path}}}]\n"
        )
    };
    let scenarios = [
        scenario("heavy", "10", "/a"),
        scenario("light", "1", "/b"),
        scenario("rare", "0.5", "/c"),
    ]
    .concat();
    for workers in [1, 3] {
        let srv = server(ROUTES).await;
        let r = run(
            &srv,
            // 2 s: every user starts (and runs onStart) well before the
            // end, even on a busy machine.
            &format!("load: {{users: 23, duration: 2s}}\nscenarios:\n{scenarios}"),
            workers,
        )
        .await;
        let users = [("heavy", 20), ("light", 2), ("rare", 1)];
        for (name, n) in users {
            assert_eq!(
                count(&r, &format!("{name}/onStart/in")),
                n,
                "{name} over {workers}"
            );
            assert_eq!(
                count(&r, &format!("{name}/onStop/out")),
                n,
                "{name} over {workers}"
            );
        }
        assert_eq!(r.snapshot.users.started, 23);
        assert_eq!(r.snapshot.users.retired, 0);
        assert_eq!(srv.hits("/start/*"), 23);
        assert_eq!(srv.hits("/stop/*"), 23);
        assert_eq!(r.summary.total.errors, 0);
    }
}

/// Iterations split by weight, then across runners: exact per scenario.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_scenarios_split_iterations_exactly_across_runners() {
    let srv = server(ROUTES).await;
    let r = run(
        &srv,
        "load: {users: 23, iterations: 115}
scenarios:
  heavy: {weight: 10, requests: [{name: r, path: /a}]}
  light: {weight: 1, requests: [{name: r, path: /b}]}
  rare: {weight: 0.5, requests: [{name: r, path: /c}]}
",
        3,
    )
    .await;
    assert_eq!(
        [
            count(&r, "heavy/r"),
            count(&r, "light/r"),
            count(&r, "rare/r")
        ],
        [100, 10, 5]
    );
    assert_eq!(
        [srv.hits("/a"), srv.hits("/b"), srv.hits("/c")],
        [100, 10, 5]
    );
}

const LOGIN: &str = "
    onStart:
      vars: {email: '{{ email }}', password: '{{ randString(12) }}'}
      steps:
        - {name: register, method: POST, path: /auth/register, headers: {content-type: application/json},
           body: '{\"email\": \"{{ vars.email }}\", \"password\": \"{{ vars.password }}\"}', expect: {status: [201]}}
        - {name: authorize, method: POST, path: /auth/authorize, expect: {status: [302]},
           query: {client_id: b, redirect_uri: 'http://app.test/cb', response_type: code,
                   code_challenge: '{{ pkce.challenge }}', code_challenge_method: S256},
           form: {email: '{{ vars.email }}', password: '{{ vars.password }}'},
           capture: {code: {locationQuery: code}}}
        - {name: token, method: POST, path: /auth/token, expect: {status: [200]},
           form: {grant_type: authorization_code, code: '{{ vars.code }}',
                  code_verifier: '{{ pkce.verifier }}', redirect_uri: 'http://app.test/cb'},
           capture: {token: {json: /access_token}}}
";

/// Log in once, then loop: each user's onStart runs exactly once (one
/// registration and one token per user at the target), and the token it
/// captured authenticates every later request as `user.token`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_start_logs_in_once_per_user_and_its_token_reaches_later_requests() {
    let srv = server(
        "auth: {}\nroutes: [{path: /api/profile, requireToken: true, body: ok}, {path: /bye}]",
    )
    .await;
    let r = run(
        &srv,
        &format!(
            "scenarios:
  shop:
    load: {{users: 5, duration: 2s, thinkTime: 5ms..15ms}}
{LOGIN}
    onStop: {{steps: [{{name: bye, path: '/bye?who={{{{ user.email }}}}'}}]}}
    requests:
      - {{name: profile, path: /api/profile, headers: {{authorization: 'Bearer {{{{ user.token }}}}'}}, expect: {{status: [200]}}}}
"
        ),
        2,
    )
    .await;
    assert_eq!(srv.registered_users(), 5);
    assert_eq!(srv.tokens_issued(), 5, "one login per user");
    assert_eq!(count(&r, "shop/onStart/token"), 5);
    assert_eq!(r.snapshot.users.started, 5);
    assert_eq!(r.summary.total.errors, 0, "{:?}", r.summary.requests);
    assert_eq!(srv.rejected(), 0, "every request carried a live token");
    let profile = count(&r, "shop/profile");
    assert!(profile > 5, "{profile}");
    // Each user's requests were its own: five users, all requests theirs.
    assert_eq!(srv.distinct_users(), 5);
    assert_eq!(srv.user_requests().values().sum::<u64>(), profile);
    assert_eq!(srv.hits("/bye"), 5);
    // onStart passes are journeys of their own, not requests.
    assert_eq!(r.summary.total.requests, 5 * 3 + profile + 5);
    assert!(r.passed);
}

/// An onStart that always fails: each user tries it three times, waiting
/// its think time between, then is retired; the failures are counted
/// requests, the users section counts them, and the summary warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_whose_on_start_keeps_failing_is_retried_then_retired() {
    let srv = server("routes: [{path: /login, status: 500}, {path: /work}]").await;
    let r = run(
        &srv,
        "load: {users: 4, duration: 1s, thinkTime: 20ms}
onStart: {steps: [{name: login, path: /login}]}
requests: [{name: work, path: /work}]
",
        1,
    )
    .await;
    assert_eq!(srv.hits("/login"), 12);
    assert_eq!(srv.hits("/work"), 0);
    let u = r.snapshot.users;
    assert_eq!((u.started, u.on_start_failures, u.retired), (0, 12, 4));
    assert_eq!(count(&r, "onStart/login"), 12);
    assert_eq!(r.summary.total.errors, 12);
    assert!(
        r.summary
            .warnings
            .iter()
            .any(|w| w.contains("4 virtual user(s) retired")),
        "{:?}",
        r.summary.warnings
    );
    assert_eq!(r.summary.users, u);
    assert!(!r.passed);
    // The JSON summary (--out's and --summary-json's) carries the users
    // section and the warning.
    let json = serde_json::to_value(&r.summary).unwrap();
    assert_eq!(json["users"]["retired"], 4);
    assert_eq!(json["users"]["onStartFailures"], 12);
    let brief = r.brief();
    assert_eq!(brief["users"]["retired"], 4);
    assert!(brief["warnings"][0].as_str().unwrap().contains("retired"));
}

/// A ramp down parks users: each runs its onStop; unparked, it starts
/// again with a fresh onStart. Every start has its stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_user_stops_and_starts_again_with_a_fresh_on_start() {
    let srv = server(ROUTES).await;
    let r = run(
        &srv,
        "load:
  stages: [{duration: 300ms, target: 4}, {duration: 300ms, target: 0}, {duration: 400ms, target: 4}]
  thinkTime: 10ms
onStart: {steps: [{name: in, path: /start/x}]}
onStop: {steps: [{name: out, path: /stop/x}]}
requests: [{name: r, path: /a}]
",
        1,
    )
    .await;
    let (starts, stops) = (srv.hits("/start/*"), srv.hits("/stop/*"));
    assert_eq!(starts, stops);
    assert!(
        starts > 4,
        "users started again after the ramp down: {starts}"
    );
    assert_eq!(r.snapshot.users.started, starts);
    assert_eq!(r.summary.total.errors, 0);
}

/// A request's own think time replaces the scenario's after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_think_time_overrides_the_scenarios() {
    let srv = server(ROUTES).await;
    let r = run(
        &srv,
        "load: {users: 1, duration: 1s, thinkTime: 1h}
requests: [{name: a, path: /a, thinkTime: 40ms..80ms}]
",
        1,
    )
    .await;
    // 1 s of 40..80 ms pauses: 12 to 26 requests (fewer on a busy
    // machine), not the one an hour's think time would allow.
    let n = count(&r, "a");
    assert!((4..=27).contains(&n), "{n}");
}

/// Pacing drawn per iteration from a range: each iteration takes 100 to
/// 200 ms start to start, so one user makes 5 to 11 requests in a second
/// (a busy machine may lose one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_is_drawn_from_its_range_for_every_iteration() {
    let srv = server(ROUTES).await;
    let r = run(
        &srv,
        "load: {users: 1, duration: 1s, pacing: 100ms..200ms}\nrequests: [{name: a, path: /a}]\n",
        1,
    )
    .await;
    let n = count(&r, "a");
    assert!((4..=11).contains(&n), "{n}");
}

/// Each scenario selects from the test's records on its own: two `unique`
/// scenarios each go through the records from the first (5 and 3 records,
/// 5 distinct in all); onStart picks a record too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scenario_selects_from_the_tests_records_on_its_own() {
    let srv = server(ROUTES).await;
    let dir = std::env::temp_dir().join(format!("barrage-scenarios-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rows: Vec<String> = (0..10).map(|i| format!("{{\"id\":\"u{i}\"}}")).collect();
    std::fs::write(dir.join("users.jsonl"), rows.join("\n")).unwrap();
    let plan = format!(
        "target: {{baseUrl: '{}'}}
data: {{file: users.jsonl, select: random}}
scenarios:
  a:
    data: {{select: unique}}
    load: {{users: 1, iterations: 5}}
    requests: [{{name: r, path: '/a?id={{{{ record.id }}}}'}}]
  b:
    data: {{select: unique}}
    load: {{users: 1, iterations: 3}}
    onStart: {{steps: [{{name: in, path: '/start/{{{{ record.id }}}}'}}]}}
    requests: [{{name: r, path: /b}}]
",
        srv.base_url()
    );
    let r = run_workers(&plan, dir.clone(), 1).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!([count(&r, "a/r"), count(&r, "b/r")], [5, 3]);
    // a took u0..u4; b's one user took u0 for its onStart.
    assert_eq!(r.summary.distinct_records, 5);
    assert_eq!(srv.hits("/start/*"), 1);
    assert_eq!(r.summary.total.errors, 0);
}

/// Scenarios share the runner's HTTP/2 connections; counts stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_share_http2_connections_with_exact_counts() {
    let srv = server(ROUTES).await;
    let plan = format!(
        "target: {{baseUrl: '{}', http: \"2\", connections: 1}}
scenarios:
  closed: {{load: {{users: 4, iterations: 40}}, requests: [{{name: r, path: /a}}]}}
  open: {{load: {{executor: arrival-rate, rate: 30, duration: 500ms}}, requests: [{{name: r, path: /b}}]}}
",
        srv.base_url()
    );
    let r = run_workers(&plan, PathBuf::new(), 2).await;
    assert_eq!(count(&r, "closed/r"), 40);
    assert_eq!(srv.hits("/a"), 40);
    assert_eq!(count(&r, "open/r") + r.snapshot.dropped, 15);
    assert_eq!(srv.hits("/b"), count(&r, "open/r"));
    assert_eq!(r.summary.total.errors, 0);
    // One connection per runner, shared by both scenarios.
    assert_eq!(r.snapshot.connections.opened(), 2);
}

/// A scenario whose users are cut off at its end (gracefulStop) does not
/// take the shared HTTP/2 connection down with them: the other scenario's
/// streams on it, in flight at that moment, finish, none fails. (The cut
/// scenario connects first, so that its users' task would host the
/// connection's driver if drivers were hosted with several scenarios.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_cut_off_at_its_end_leaves_the_shared_http2_connection_to_the_others() {
    let srv = server("routes: [{path: /a}, {path: /hang, latency: 10s}]").await;
    let plan = format!(
        "target: {{baseUrl: '{}', http: \"2\", connections: 1, timeout: 1m}}
scenarios:
  cut: {{load: {{users: 2, duration: 200ms, gracefulStop: 50ms}}, requests: [{{name: r, path: /hang}}]}}
  busy: {{startTime: 100ms, load: {{users: 4, duration: 600ms}}, requests: [{{name: r, path: /a}}]}}
",
        srv.base_url()
    );
    let r = run_workers(&plan, PathBuf::new(), 1).await;
    let cut = &r.snapshot.requests["cut/r"];
    assert_eq!(cut.count(), 2);
    assert_eq!(cut.errors.values().sum::<u64>(), 2, "both cut off");
    let busy = &r.snapshot.requests["busy/r"];
    assert!(busy.count() > 10, "busy ran: {}", busy.count());
    assert!(
        busy.errors.is_empty(),
        "busy lost streams: {:?}",
        busy.errors
    );
    assert_eq!(srv.hits("/a"), busy.count());
    assert_eq!(r.snapshot.connections.opened(), 1);
}

/// At the end of a timed test each user's onStop runs whole, its pauses
/// included (the scenario's end does not cut them: only an interrupt
/// does), and is a journey pass of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_stop_runs_whole_at_the_end_pauses_included() {
    let srv = server(ROUTES).await;
    let r = run(
        &srv,
        "load: {users: 3, duration: 300ms, thinkTime: 20ms}
onStart: {steps: [{name: in, path: /start/x}]}
onStop: {steps: [{name: bye, path: /stop/a}, {sleep: 30ms}, {name: gone, path: /stop/b}]}
requests: [{name: r, path: /a}]
",
        1,
    )
    .await;
    assert_eq!(count(&r, "onStop/bye"), 3);
    assert_eq!(count(&r, "onStop/gone"), 3, "the pause cut onStop short");
    assert_eq!(r.summary.journeys["onStop"].passes, 3);
    assert_eq!(r.summary.total.errors, 0);
}

/// Fewer iterations than users: only the users that get an iteration log
/// in (the iteration is claimed before onStart runs). How many of the
/// three iterations each user takes depends on scheduling (on a busy
/// machine one user may take all three before the others run), so the
/// bound is asserted, not a count: at most one login per iteration, and
/// every login is a started user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_without_an_iteration_left_do_not_log_in() {
    let srv = server(ROUTES).await;
    let r = run(
        &srv,
        "load: {users: 10, iterations: 3}
onStart: {steps: [{name: in, path: /start/x}]}
requests: [{name: r, path: /a}]
",
        1,
    )
    .await;
    assert_eq!(count(&r, "r"), 3);
    let logins = srv.hits("/start/*");
    assert!(
        (1..=3).contains(&logins),
        "{logins} logins for 3 iterations: a user logged in with nothing left to do"
    );
    assert_eq!(r.snapshot.users.started, logins);
}
