//! Provisioning against the built-in target's auth flow: users are
//! registered and get tokens through PKCE, their records drive token-checked
//! load under each data policy, and failures, tolerance and timeouts are
//! reported with counts and the first errors.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use barrage_runner::{
    Error,
    compile::Slot,
    local::{self, Options},
    planfile,
    provision::{self, MAX_RECORDS_BYTES},
    report::Report,
    serve::{LocalServer, ServeConfig, spawn_local},
};

const EXAMPLE: &str = include_str!("../../examples/provisioning.yaml");
const TARGET: &str = include_str!("../../examples/auth-target.yaml");

async fn target() -> LocalServer {
    spawn_local(ServeConfig::from_yaml_str(TARGET).unwrap())
        .await
        .unwrap()
}

/// The example manifest against `srv`, with `users` users.
fn example(srv: &LocalServer, users: u32) -> String {
    EXAMPLE
        .replace("http://127.0.0.1:8080", &srv.base_url())
        .replace("users: 100", &format!("users: {users}"))
}

async fn provision(yaml: &str) -> provision::Provisioned {
    let (sp, prefix) = provision::from_str(yaml).unwrap();
    let setup = provision::compile(&sp, prefix).unwrap();
    provision::run(&setup, None).await
}

/// Runs `plan` (a bare plan; BASE is the target) over `records` with two
/// runners, and returns the report and each user's requests during it.
async fn load(srv: &LocalServer, plan: &str, records: &str) -> (Report, BTreeMap<String, u64>) {
    let dir = std::env::temp_dir().join(format!("barrage-prov-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("users.jsonl"), records).unwrap();
    let loaded = planfile::from_str(&plan.replace("BASE", &srv.base_url()), dir.clone()).unwrap();
    let before = srv.user_requests();
    let report = local::run(
        &loaded,
        &Options {
            slots: vec![Slot { index: 0, count: 2 }, Slot { index: 1, count: 2 }],
            progress: false,
        },
    )
    .await
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let during = srv
        .user_requests()
        .into_iter()
        .map(|(u, n)| (u.clone(), n - before.get(&u).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    (report, during)
}

fn plan(data: &str, iterations: u32) -> String {
    format!(
        "target: {{baseUrl: BASE}}\nload: {{users: 4, iterations: {iterations}}}\n\
         data: {{file: users.jsonl, {data}}}\n\
         requests: [{{name: profile, path: /api/profile, headers: {{authorization: 'Bearer {{{{ record.token }}}}'}}, expect: {{status: [200]}}}}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_provisioned_through_pkce_drive_each_data_policy() {
    let srv = target().await;
    let p = provision(&example(&srv, 60)).await;
    p.verdict().unwrap();
    assert_eq!(p.records.len(), 60);
    assert_eq!(srv.registered_users(), 60);
    assert_eq!(srv.tokens_issued(), 60);
    // Each record is one registered user with a token of its own.
    let mut tokens: Vec<_> = p.records.iter().map(|r| r["token"].clone()).collect();
    tokens.sort_by_key(|t| t.to_string());
    tokens.dedup();
    assert_eq!(tokens.len(), 60);
    for r in &p.records {
        let email = r["email"].as_str().unwrap();
        assert!(srv.user_id(email).is_some(), "{email} was not registered");
        assert_eq!(r.keys().collect::<Vec<_>>(), ["email", "token"]);
    }
    let records = p.to_jsonl().unwrap();

    // Warm cache: going round 60 users for 180 requests uses each 3 times.
    let (report, seen) = load(&srv, &plan("select: cycle", 180), &records).await;
    assert_eq!(report.summary.total.errors, 0, "{:?}", report.summary.total);
    assert_eq!(seen.len(), 60);
    assert!(seen.values().all(|&n| n == 3), "{seen:?}");
    assert_eq!(report.summary.distinct_records, 60);

    // Cold start: every request a user not used before; 60 requests, 60 users.
    let (report, seen) = load(&srv, &plan("select: unique", 60), &records).await;
    assert_eq!(report.summary.total.errors, 0);
    assert_eq!(seen.len(), 60);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    assert_eq!(report.summary.distinct_records, 60);

    // Mixed: 20% of 150 requests take a new user, 30 expected (binomial,
    // sd about 4.9); the rest reuse one, so distinct users stay near 30.
    // The bound is 4.5 sd wide (a false failure about once in 150,000
    // runs; 3 sd failed about once in 400) and still tells the policy from
    // always-new (60, every record) and always-reuse (1).
    let (report, seen) = load(&srv, &plan("select: mixed, repeat: 0.8", 150), &records).await;
    assert_eq!(report.summary.total.errors, 0);
    let distinct = seen.len() as u64;
    assert!((8..=52).contains(&distinct), "{distinct} distinct users");
    assert_eq!(report.summary.distinct_records, distinct);
    assert_eq!(seen.values().sum::<u64>(), 150);

    assert_eq!(srv.rejected(), 0, "no request may fail authentication");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_users_fail_the_setup_with_a_count_and_the_first_errors() {
    let srv = target().await;
    // Every user registers the same email: the first gets 201, the rest 409.
    let yaml = example(&srv, 8)
        .replace("email: \"{{ email }}\"", "email: same@example.test")
        .replace("concurrency: 10", "concurrency: 1");
    let p = provision(&yaml).await;
    assert_eq!(p.records.len(), 1);
    assert_eq!(p.failed(), 7);
    let msg = p.verdict().unwrap_err();
    assert!(
        msg.starts_with("setup failed for 7 of 8 users (setup.toleratedFailureRatio: 0%)"),
        "{msg}"
    );
    assert!(
        msg.contains("step \"register\": status 409 (expected 201)"),
        "{msg}"
    );
    assert!(msg.contains("and 2 more failed"), "{msg}");

    // Tolerated: 7 of 8 is within 90%, and the one good user is the record
    // (on a fresh target, where the email is free again).
    let srv = target().await;
    let yaml = example(&srv, 8)
        .replace("email: \"{{ email }}\"", "email: same@example.test")
        .replace("concurrency: 10", "concurrency: 1");
    let yaml = yaml.replace(
        "record: [email, token]",
        "record: [email, token]\n    toleratedFailureRatio: 0.9",
    );
    let p = provision(&yaml).await;
    p.verdict().unwrap();
    assert_eq!(p.records.len(), 1);
    assert_eq!(p.records[0]["email"], "same@example.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setup_timeout_counts_unfinished_users_as_failed() {
    let srv = spawn_local(
        ServeConfig::from_yaml_str("routes: [{path: /slow, latency: 1s, body: '{\"id\": \"x\"}'}]")
            .unwrap(),
    )
    .await
    .unwrap();
    let yaml = format!(
        "target: {{baseUrl: '{}'}}\nsetup: {{users: 4, concurrency: 1, steps: [{{name: s, path: /slow, capture: {{id: {{json: /id}}}}}}]}}",
        srv.base_url()
    );
    let (sp, prefix) = provision::from_str(&yaml).unwrap();
    let setup = provision::compile(&sp, prefix).unwrap();
    let p = provision::run(&setup, Some(Duration::from_millis(1500))).await;
    assert!(p.records.len() <= 2, "{}", p.records.len());
    assert!(p.unfinished >= 2, "{}", p.unfinished);
    let msg = p.verdict().unwrap_err();
    assert!(
        msg.contains("users did not finish within the setup timeout 1500ms"),
        "{msg}"
    );
}

#[test]
fn setup_errors_name_the_field_as_written() {
    let base = "apiVersion: barrage.dev/v1alpha1\nkind: LoadTest\nspec:\n  target: {baseUrl: 'http://127.0.0.1:1'}\n  setup: ";
    let cases = [
        ("{steps: [{name: a, path: /}]}", "spec.setup.users"),
        (
            "{users: 0, steps: [{name: a, path: /}]}",
            "spec.setup.users",
        ),
        ("{users: 5}", "spec.setup.steps"),
        (
            "{users: 5, steps: [{name: a, path: nope}]}",
            "spec.setup.steps[0].path",
        ),
        (
            "{users: 5, vars: {e: '{{ nope }}'}, steps: [{name: a, path: /}]}",
            "spec.setup.vars.e",
        ),
        (
            "{users: 5, steps: [{name: a, path: /, capture: {t: {json: /t}}}], record: [t, x]}",
            "spec.setup.record[1]",
        ),
        (
            "{users: 5, steps: [{name: a, path: /, capture: {t: {json: /t}}}], toleratedFailureRatio: 2}",
            "spec.setup.toleratedFailureRatio",
        ),
        (
            "{users: 5, concurrency: 0, steps: [{name: a, path: /, capture: {t: {json: /t}}}]}",
            "spec.setup.concurrency",
        ),
        (
            "{users: 5, steps: [{name: a, path: /}]}",
            "spec.setup.steps",
        ),
        ("{users: 5, stepz: []}", "spec.setup"),
        ("{image: seed:1}", "spec.setup.image"),
    ];
    for (setup, field) in cases {
        let yaml = format!("{base}{setup}\n");
        let got =
            provision::from_str(&yaml).and_then(|(sp, p)| provision::compile(&sp, p).map(|_| ()));
        match got {
            Err(Error::Invalid { field: f, message }) => {
                assert!(f.starts_with(field), "{setup}: {f}: {message}")
            }
            other => panic!("{setup}: expected an error on {field}, got {other:?}"),
        }
    }
}

#[test]
fn records_beyond_a_secret_are_refused_clearly() {
    provision::check_size(MAX_RECORDS_BYTES, 10).unwrap();
    let e = provision::check_size(MAX_RECORDS_BYTES + 1, 10).unwrap_err();
    assert!(e.contains("at most 1048576 bytes (1 MiB)"), "{e}");
    assert!(e.contains("setup.record"), "{e}");
}

#[test]
fn the_example_manifest_is_a_valid_setup_and_plan() {
    let (sp, prefix) = provision::from_str(EXAMPLE).unwrap();
    let setup = provision::compile(&sp, prefix).unwrap();
    assert_eq!(setup.users, 100);
    let names: Vec<_> = setup.fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["email", "token"]);
    let loaded = planfile::from_str(EXAMPLE, PathBuf::new()).unwrap();
    assert!(loaded.plan.data.unwrap().file.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_told_while_users_are_provisioned() {
    let srv = target().await;
    // One at a time, half of them failing (the same email registers once).
    let yaml = example(&srv, 12)
        .replace(
            "email: \"{{ email }}\"",
            "email: \"{{ randInt(1, 6) }}@example.test\"",
        )
        .replace("concurrency: 10", "concurrency: 1");
    let (sp, prefix) = provision::from_str(&yaml).unwrap();
    let setup = provision::compile(&sp, prefix).unwrap();
    let mut seen = Vec::new();
    let p = provision::run_watched(&setup, None, Some(Duration::from_millis(1)), |at, now| {
        seen.push((at, now))
    })
    .await;
    // The first report comes at once; counts and times only grow.
    let (_, first) = &seen[0];
    assert_eq!(
        first,
        &barrage_runner::progress::Progress::setup(0, 0, Some(12))
    );
    for w in seen.windows(2) {
        let ((t0, a), (t1, b)) = (&w[0], &w[1]);
        assert!(
            t1 >= t0 && b.done >= a.done && b.failed >= a.failed,
            "{seen:?}"
        );
        assert!(b.failed <= b.done && b.done <= 12, "{seen:?}");
    }
    // The final count is every user, the failed ones as the result says.
    let last = p.progress();
    assert_eq!((last.done, last.total), (12, Some(12)));
    assert_eq!(last.failed, p.failed());
    assert!(p.failed() >= 6, "at most 6 distinct emails register: {p:?}");
}
