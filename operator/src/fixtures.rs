//! Reconcile tests without a cluster, in the way of kube-rs's controller-rs
//! (`fixtures.rs`): a mocked API server that expects a named sequence of
//! calls, checks each one and answers it.
//!
//! The controller under test gets a real `kube::Client` whose transport is
//! tower-test's mock service, so its requests are built exactly as against a
//! cluster (paths, query, JSON bodies, server-side apply) and the replies are
//! read exactly as a cluster's would be (objects, lists, `Status` errors).
//! Only the API server is mocked: HTTP to pods (the runners' agents) does not
//! go through the `Client`.
//!
//! # Writing a scenario
//!
//! `schedule/controller/tests.rs` is a complete set to copy from.
//!
//! 1. Give the controller's `Context` a `#[cfg(test)] fn test(client, ...)`
//!    constructor that takes the `Client` and whatever else the reconcile
//!    reads from outside (a clock: `schedule::controller::Context::test`).
//! 2. Build the objects the API server holds with our types (the CRDs,
//!    k8s-openapi); [`Reply::ok`], [`Reply::list`] serialize them.
//! 3. List the calls the reconcile must make, in order: method and path
//!    ([`collection`] and [`object`] build paths from an `ApiResource`),
//!    what each must carry ([`Call::query`], [`Call::named`],
//!    [`Call::includes`] for a JSON subset, [`Call::body`] for anything
//!    else) and its [`Reply`]: an object, a list, a `Status` error
//!    ([`Reply::not_found`], [`Reply::already_exists`], [`Reply::conflict`],
//!    [`Reply::invalid`]), or by default the request's own body, as the API
//!    server answers a create, a patch or an event (a call without a body,
//!    such as a get, must be given a reply). Small helpers per kind
//!    of call (`get_slt`, `write_status(json!(..))`, `event(type, reason,
//!    note)`) keep each scenario a readable list.
//! 4. [`Scenario::serve`] (inside the Tokio test) gives the `Client` and the
//!    [`Server`]; `server.run(reconcile(obj, ctx)).await` runs the real
//!    reconcile and returns what it returned, once every expected call came.
//! 5. Assert on that (the `Action`, the error), and if needed on
//!    [`Server::seen`] (every call with its body) or [`Server::events`].
//!
//! ```ignore
//! #[tokio::test]
//! async fn a_due_run_is_created() {
//!     let (slts, lts) = (runs::slt_resource(), runs::loadtest_resource());
//!     let (client, mut server) = Scenario::new("a due run is created")
//!         .expect(Call::get(object(&slts, "perf", "nightly")).reply(Reply::ok(&slt)))
//!         .expect(
//!             Call::get(collection(&lts, "perf"))
//!                 .query("labelSelector", "barrage.dev/scheduledloadtest=nightly")
//!                 .reply(Reply::list::<LoadTest>(&[])),
//!         )
//!         .expect(
//!             Call::post(collection(&lts, "perf"))
//!                 .named("nightly-29459700")
//!                 .reply(Reply::echo_with(|v| v["metadata"]["uid"] = "run-uid".into())),
//!         )
//!         .expect(
//!             Call::patch(format!("{}/status", object(&slts, "perf", "nightly")))
//!                 .query("fieldManager", "barrage-operator")
//!                 .includes(json!({"status": {"activeCount": 1, "active": [{"name": "nightly-29459700"}]}})),
//!         )
//!         .expect(Call::event("CreatedRun").includes(json!({"type": "Normal"})))
//!         .serve();
//!     let now: Timestamp = "2026-01-05T03:00:30Z".parse().unwrap();
//!     let ctx = Arc::new(Context::test(client, move || now));
//!     let cached = DynamicObject::new("nightly", &slts).within("perf");
//!     let action = server.run(reconcile(Arc::new(cached), ctx)).await.unwrap();
//!     assert_eq!(action, Action::requeue(Duration::from_secs(300)));
//! }
//! ```
//!
//! To learn what a reconcile sends, start with fewer calls than it makes:
//! the failure prints the first call not expected, with its query and body.
//!
//! # What fails a test
//!
//! Each names the scenario and the step: a call that does not match the next
//! expected one (another method or path, a query parameter missing or
//! different, a body check that does not hold or panics: so an unexpected
//! call and a call out of order), a call after the last expected one, a
//! reconcile that returns with calls still expected (they are listed), and
//! one that does not return within [`TIMEOUT`] (5 s; [`Scenario::timeout`]).
//! On the first mismatch the server stops answering, so the reconcile fails
//! fast instead of going on.
//!
//! # Events, concurrency, several reconciles
//!
//! Events (the Recorder's POSTs, and its PATCHes of a series when the same
//! reason repeats for the same object) are calls like any other:
//! [`Call::event`] expects one by reason, where it comes in the sequence. A
//! scenario about something else may [`Scenario::allow_events`]: then every
//! event is answered wherever it comes and none may be listed;
//! [`Server::events`] still tells which came.
//!
//! Calls a reconcile makes concurrently (one per runner, say) go in
//! [`Scenario::expect_any_order`]: they may come in any order among
//! themselves, and all before the calls after them.
//!
//! A scenario of several reconciles (a second pass that must write nothing,
//! an operator restart with a fresh `Context`) adds the next calls with
//! [`Server::expect`] and runs again on the same server.

use std::{
    collections::VecDeque,
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use http::{Request, Response};
use kube::{Client, client::Body, core::ApiResource};
use serde_json::Value;
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

mod call;
mod reply;
#[cfg(test)]
mod tests;

pub use call::{Call, Seen};
pub use reply::Reply;

/// How long a reconcile may take against the mock: far more than one needs
/// (no call waits on anything), so reaching it means a hang or a loop.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The path of a namespaced collection, e.g.
/// `/apis/barrage.dev/v1alpha1/namespaces/perf/loadtests` (where lists go
/// and creates are posted).
pub fn collection(ar: &ApiResource, namespace: &str) -> String {
    let base = if ar.group.is_empty() {
        format!("/api/{}", ar.version)
    } else {
        format!("/apis/{}/{}", ar.group, ar.version)
    };
    format!("{base}/namespaces/{namespace}/{}", ar.plural)
}

/// The path of one object; append `/status` for its status.
pub fn object(ar: &ApiResource, namespace: &str, name: &str) -> String {
    format!("{}/{name}", collection(ar, namespace))
}

/// The calls a reconcile must make, by name.
pub struct Scenario {
    name: String,
    calls: Vec<Call>,
    groups: usize,
    allow_events: bool,
    timeout: Duration,
}

impl Scenario {
    pub fn new(name: &str) -> Scenario {
        Scenario {
            name: name.into(),
            calls: Vec::new(),
            groups: 0,
            allow_events: false,
            timeout: TIMEOUT,
        }
    }

    /// The next call, after those already expected.
    pub fn expect(mut self, call: Call) -> Scenario {
        self.calls.push(call);
        self
    }

    /// The next calls, in any order among themselves (requests the
    /// reconcile makes concurrently), after those already expected.
    pub fn expect_any_order(mut self, calls: impl IntoIterator<Item = Call>) -> Scenario {
        self.groups += 1;
        let group = self.groups;
        self.calls
            .extend(calls.into_iter().map(|c| c.in_group(group)));
        self
    }

    /// Answer every event wherever it comes, and check none.
    pub fn allow_events(mut self) -> Scenario {
        self.allow_events = true;
        self
    }

    /// How long a reconcile may take, instead of [`TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Scenario {
        self.timeout = timeout;
        self
    }

    /// Starts the server (inside a Tokio runtime) and gives the client that
    /// reaches it.
    pub fn serve(self) -> (Client, Server) {
        assert!(
            !(self.allow_events && self.calls.iter().any(Call::is_event)),
            "scenario '{}': allow_events answers every event, so none may be expected",
            self.name
        );
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let shared = Arc::new(Mutex::new(Shared {
            expected: self.calls.into(),
            groups: self.groups,
            answered: 0,
            failure: None,
            seen: Vec::new(),
            allow_events: self.allow_events,
        }));
        let task = tokio::spawn(answer(self.name.clone(), handle, shared.clone()));
        let server = Server {
            name: self.name,
            timeout: self.timeout,
            shared,
            task,
        };
        (client, server)
    }
}

struct Shared {
    expected: VecDeque<Call>,
    groups: usize,
    answered: usize,
    failure: Option<String>,
    seen: Vec<Seen>,
    allow_events: bool,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panicking test may poison it; what it holds is still what was seen.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The mocked API server, answering in a task of its own.
pub struct Server {
    name: String,
    timeout: Duration,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Another expected call, after the rest (a scenario's next reconcile).
    pub fn expect(&mut self, call: Call) {
        let mut sh = lock(&self.shared);
        assert!(
            !(sh.allow_events && call.is_event()),
            "scenario '{}': allow_events answers every event, so none may be expected",
            self.name
        );
        sh.expected.push_back(call);
    }

    /// More calls, in any order among themselves, after the rest.
    pub fn expect_any_order(&mut self, calls: impl IntoIterator<Item = Call>) {
        let group = {
            let mut sh = lock(&self.shared);
            sh.groups += 1;
            sh.groups
        };
        for call in calls {
            self.expect(call.in_group(group));
        }
    }

    /// Runs `reconcile` against the server and returns what it returned.
    /// Panics, naming the scenario and the step, if a call did not match,
    /// if calls are still expected when it finishes, or if it takes longer
    /// than [`TIMEOUT`] (or the scenario's own timeout).
    pub async fn run<T>(&mut self, reconcile: impl Future<Output = T>) -> T {
        let out = tokio::time::timeout(self.timeout, reconcile).await;
        let sh = lock(&self.shared);
        // A mismatch first: it is why the reconcile failed or hung.
        let problem = if let Some(f) = &sh.failure {
            Some(f.clone())
        } else if out.is_err() {
            Some(format!(
                "scenario '{}': the reconcile did not finish within {:?}; {} calls answered{}",
                self.name,
                self.timeout,
                sh.answered,
                pending(&sh)
            ))
        } else if !sh.expected.is_empty() {
            Some(format!(
                "scenario '{}': the reconcile finished before these expected calls{}",
                self.name,
                pending(&sh)
            ))
        } else {
            None
        };
        drop(sh);
        match (problem, out) {
            (Some(p), _) => panic!("{p}"),
            (None, Ok(out)) => out,
            (None, Err(_)) => unreachable!("a timeout is a problem"),
        }
    }

    /// Every call seen so far, answered or not, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared).seen.clone()
    }

    /// The reasons of the events seen so far, in order.
    pub fn events(&self) -> Vec<String> {
        lock(&self.shared)
            .seen
            .iter()
            .filter_map(|s| s.reason().map(str::to_string))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn pending(sh: &Shared) -> String {
    let first = sh.answered + 1;
    sh.expected
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let any = if c.group.is_some() {
                " (any order)"
            } else {
                ""
            };
            format!("\n  step {}{any}: {c}", first + i)
        })
        .collect()
}

/// The server's task: takes each call, checks it against the next expected
/// one, answers it, and stops at the first that does not match (dropping
/// the handle fails that call and any later one, so nothing waits).
async fn answer(
    name: String,
    mut handle: Handle<Request<Body>, Response<Body>>,
    shared: Arc<Mutex<Shared>>,
) {
    while let Some((request, send)) = handle.next_request().await {
        let seen = read(request).await;
        let verdict = {
            let mut sh = lock(&shared);
            sh.seen.push(seen.clone());
            if sh.allow_events && seen.is_event() {
                Ok(Reply::echo())
            } else {
                let step = sh.answered + 1;
                let of = sh.answered + sh.expected.len();
                // The next call, or any of the group of calls at the front.
                let group = sh.expected.front().and_then(|c| c.group);
                let next = sh
                    .expected
                    .iter()
                    .take_while(|c| group.is_some() && c.group == group)
                    .count()
                    .max(1)
                    .min(sh.expected.len());
                let found = (0..next).find(|&i| sh.expected[i].mismatch(&seen).is_none());
                match (found, sh.expected.front()) {
                    (Some(i), _) => {
                        let call = sh.expected.remove(i).expect("found");
                        if call.reply.echoes() && seen.body.is_none() {
                            Err(format!(
                                "scenario '{name}', step {step} of {of}: no reply given for {call}, and the call has no body to echo: add .reply(..)"
                            ))
                        } else {
                            sh.answered += 1;
                            Ok(call.reply)
                        }
                    }
                    (None, None) => Err(format!(
                        "scenario '{name}': a call after the last of {of} expected: {seen}"
                    )),
                    (None, Some(call)) if next == 1 => {
                        let why = call.mismatch(&seen).unwrap_or_default();
                        Err(format!(
                            "scenario '{name}', step {step} of {of}: {why}\n  expected: {call}\n  got:      {seen}"
                        ))
                    }
                    (None, Some(_)) => {
                        let calls: String = sh
                            .expected
                            .iter()
                            .take(next)
                            .map(|c| format!("\n    {c}"))
                            .collect();
                        Err(format!(
                            "scenario '{name}', step {step} of {of}: none of the {next} calls expected in any order{calls}\n  got:      {seen}"
                        ))
                    }
                }
            }
        };
        match verdict {
            Ok(reply) => send.send_response(reply.into_response(&seen.method, seen.body.as_ref())),
            Err(failure) => {
                lock(&shared).failure = Some(failure);
                return;
            }
        }
    }
}

async fn read(request: Request<Body>) -> Seen {
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.unwrap_or_default();
    let body = (!bytes.is_empty()).then(|| {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    });
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    Seen {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        body,
    }
}
