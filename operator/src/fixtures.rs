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
//!    server answers a create, a patch or an event. Small helpers per kind
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
    fmt,
    future::Future,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use http::{Method, Request, Response, StatusCode};
use kube::{
    Client,
    client::Body,
    core::{ApiResource, Status},
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

/// How long a reconcile may take against the mock: far more than one needs
/// (no call waits on anything), so reaching it means a hang or a loop.
pub const TIMEOUT: Duration = Duration::from_secs(5);

const EVENTS_PREFIX: &str = "/apis/events.k8s.io/";

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

type Check = Box<dyn Fn(&Value) -> Result<(), String> + Send>;
type Edit = Box<dyn FnOnce(&mut Value) + Send>;

/// One expected call: what it must be, and how it is answered.
pub struct Call {
    /// None for an event: the Recorder POSTs it, or PATCHes a repeat.
    method: Option<Method>,
    path: String,
    /// Calls next to each other with the same group may come in any order.
    group: Option<usize>,
    query: Vec<(String, String)>,
    checks: Vec<(String, Check)>,
    reply: Reply,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>) -> Call {
        Call {
            method: Some(method),
            path: path.into(),
            group: None,
            query: Vec::new(),
            checks: Vec::new(),
            reply: Reply::echo(),
        }
    }

    /// A get, or a list (a GET on a collection).
    pub fn get(path: impl Into<String>) -> Call {
        Call::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>) -> Call {
        Call::new(Method::POST, path)
    }

    pub fn patch(path: impl Into<String>) -> Call {
        Call::new(Method::PATCH, path)
    }

    pub fn put(path: impl Into<String>) -> Call {
        Call::new(Method::PUT, path)
    }

    pub fn delete(path: impl Into<String>) -> Call {
        Call::new(Method::DELETE, path)
    }

    /// An event with this reason, in any namespace; check its type or note
    /// with [`Call::includes`] or [`Call::body`].
    pub fn event(reason: &str) -> Call {
        Call {
            method: None,
            path: EVENTS_PREFIX.into(),
            group: None,
            query: Vec::new(),
            checks: Vec::new(),
            reply: Reply::echo(),
        }
        .includes(json!({ "reason": reason }))
    }

    /// The query must carry `key` with this value (decoded); parameters not
    /// named are not checked.
    pub fn query(mut self, key: &str, value: &str) -> Call {
        self.query.push((key.into(), value.into()));
        self
    }

    /// The body's `metadata.name` must be `name` (a create, an apply).
    pub fn named(self, name: &str) -> Call {
        self.includes(json!({ "metadata": { "name": name } }))
    }

    /// The body must hold `expected`, read as a subset: an object needs only
    /// the keys given (`null`: absent or null), an array the same length
    /// with each element matched the same way, anything else equality.
    pub fn includes(mut self, expected: Value) -> Call {
        let what = format!("including {expected}");
        self.checks.push((
            what,
            Box::new(move |body| match differs(&expected, body, "") {
                None => Ok(()),
                Some(why) => Err(why),
            }),
        ));
        self
    }

    /// The body must satisfy `check`, described by `what` in messages. A
    /// check that panics (an `assert!` inside) fails the step with its
    /// message.
    pub fn body(mut self, what: &str, check: impl Fn(&Value) -> bool + Send + 'static) -> Call {
        let what = what.to_string();
        let label = what.clone();
        self.checks.push((
            label,
            Box::new(move |body| {
                if check(body) {
                    Ok(())
                } else {
                    Err(format!("the body is not {what}"))
                }
            }),
        ));
        self
    }

    pub fn reply(mut self, reply: Reply) -> Call {
        self.reply = reply;
        self
    }

    fn is_event(&self) -> bool {
        self.method.is_none()
    }

    /// Why `seen` is not this call, if it is not.
    fn mismatch(&self, seen: &Seen) -> Option<String> {
        match &self.method {
            None if !seen.is_event() => return Some("not an event".into()),
            Some(m) if *m != seen.method || self.path != seen.path => {
                return Some("another method or path".into());
            }
            _ => {}
        }
        for (k, v) in &self.query {
            match seen.query.iter().find(|(sk, _)| sk == k) {
                Some((_, sv)) if sv == v => {}
                Some((_, sv)) => return Some(format!("query {k} is {sv:?}, not {v:?}")),
                None => return Some(format!("query {k} is missing (expected {v:?})")),
            }
        }
        let body = seen.body.clone().unwrap_or(Value::Null);
        for (what, check) in &self.checks {
            match std::panic::catch_unwind(AssertUnwindSafe(|| check(&body))) {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return Some(why),
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    return Some(format!("the check {what:?} panicked: {msg}"));
                }
            }
        }
        None
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.method {
            None => write!(f, "an event")?,
            Some(m) => write!(f, "{m} {}", self.path)?,
        }
        for (i, (k, v)) in self.query.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
        }
        for (i, (what, _)) in self.checks.iter().enumerate() {
            write!(f, "{} {what}", if i == 0 { " with body" } else { " and" })?;
        }
        Ok(())
    }
}

/// Where `actual` does not hold `expected` (see [`Call::includes`]).
fn differs(expected: &Value, actual: &Value, at: &str) -> Option<String> {
    let here = || if at.is_empty() { "the body" } else { at }.to_string();
    match (expected, actual) {
        (Value::Null, Value::Null) => None,
        (Value::Object(e), Value::Object(a)) => e.iter().find_map(|(k, ev)| {
            let path = format!("{at}.{k}");
            match a.get(k) {
                None if ev.is_null() => None,
                None => Some(format!("{path} is missing (expected {ev})")),
                Some(av) => differs(ev, av, &path),
            }
        }),
        (Value::Array(e), Value::Array(a)) if e.len() != a.len() => Some(format!(
            "{} has {} items, expected {}: {actual}",
            here(),
            a.len(),
            e.len()
        )),
        (Value::Array(e), Value::Array(a)) => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (ev, av))| differs(ev, av, &format!("{at}[{i}]"))),
        (e, a) if e == a => None,
        (e, a) => Some(format!("{} is {a}, expected {e}", here())),
    }
}

enum Answer {
    Json(Value),
    /// The request's body, possibly changed (a uid filled in, say).
    Echo(Option<Edit>),
}

/// How a call is answered.
pub struct Reply {
    /// None: 201 for a POST, 200 otherwise.
    code: Option<StatusCode>,
    answer: Answer,
}

impl Reply {
    /// 200 with this object (a typed resource, a `DynamicObject`, JSON).
    pub fn ok(obj: &impl Serialize) -> Reply {
        Reply::json(200, obj)
    }

    /// 201 with this object.
    pub fn created(obj: &impl Serialize) -> Reply {
        Reply::json(201, obj)
    }

    pub fn json(code: u16, obj: &impl Serialize) -> Reply {
        Reply {
            code: Some(StatusCode::from_u16(code).expect("an HTTP status code")),
            answer: Answer::Json(serde_json::to_value(obj).expect("a reply serializes")),
        }
    }

    /// A list of these objects, as a list call returns them.
    pub fn list<T: Serialize>(items: &[T]) -> Reply {
        Reply::ok(&json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": { "resourceVersion": "1" },
            "items": items,
        }))
    }

    /// The request's own body: what the API server returns for a create, a
    /// patch or an event (no server-assigned fields; see [`Reply::echo_with`]).
    pub fn echo() -> Reply {
        Reply {
            code: None,
            answer: Answer::Echo(None),
        }
    }

    /// The request's body changed by `f`, e.g. given the uid the API server
    /// would assign.
    pub fn echo_with(f: impl FnOnce(&mut Value) + Send + 'static) -> Reply {
        Reply {
            code: None,
            answer: Answer::Echo(Some(Box::new(f))),
        }
    }

    /// A `Status` error, as the API server sends one.
    pub fn error(code: u16, reason: &str, message: &str) -> Reply {
        Reply::json(
            code,
            &status_json(Status::failure(message, reason).with_code(code)),
        )
    }

    pub fn not_found(what: &str) -> Reply {
        Reply::error(404, "NotFound", &format!("{what} not found"))
    }

    /// 409 on a create whose name is taken.
    pub fn already_exists(what: &str) -> Reply {
        Reply::error(409, "AlreadyExists", &format!("{what} already exists"))
    }

    /// 409 on a write from a stale resourceVersion.
    pub fn conflict(what: &str) -> Reply {
        Reply::error(
            409,
            "Conflict",
            &format!("Operation cannot be fulfilled on {what}: the object has been modified"),
        )
    }

    /// 422: the API server's validation refused the object.
    pub fn invalid(message: &str) -> Reply {
        Reply::error(422, "Invalid", message)
    }

    /// A delete accepted (a `Status` Success, as for a background delete).
    pub fn deleted() -> Reply {
        Reply::ok(&status_json(Status::success().with_code(200)))
    }

    fn into_response(self, seen: &Seen) -> Response<Body> {
        let default = if seen.method == Method::POST {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let (code, body) = match (self.answer, seen.body.clone()) {
            (Answer::Json(v), _) => (self.code.unwrap_or(default), v),
            (Answer::Echo(f), Some(mut v)) => {
                if let Some(f) = f {
                    f(&mut v);
                }
                (self.code.unwrap_or(default), v)
            }
            (Answer::Echo(_), None) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                status_json(
                    Status::failure("the scenario gives no reply for this call", "InternalError")
                        .with_code(500),
                ),
            ),
        };
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).expect("JSON")))
            .expect("a response")
    }
}

/// kube's `Status` serializes without its kind, which is how a client tells
/// a `Status` from an object in a delete's reply.
fn status_json(s: Status) -> Value {
    let mut v = serde_json::to_value(s).expect("a Status serializes");
    v["kind"] = "Status".into();
    v["apiVersion"] = "v1".into();
    v
}

/// A call as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    /// Decoded, in order.
    pub query: Vec<(String, String)>,
    /// JSON (a body that is not JSON is kept as a string).
    pub body: Option<Value>,
}

impl Seen {
    pub fn is_event(&self) -> bool {
        self.path.starts_with(EVENTS_PREFIX)
            && (self.method == Method::POST || self.method == Method::PATCH)
    }

    /// An event's reason.
    pub fn reason(&self) -> Option<&str> {
        self.is_event()
            .then(|| self.body.as_ref()?.get("reason")?.as_str())
            .flatten()
    }
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        for (i, (k, v)) in self.query.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
        }
        if let Some(b) = &self.body {
            let text = b.to_string();
            let cut: String = text.chars().take(1500).collect();
            let more = if cut.len() < text.len() { " …" } else { "" };
            write!(f, " {cut}{more}")?;
        }
        Ok(())
    }
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
        self.calls.extend(calls.into_iter().map(|c| Call {
            group: Some(group),
            ..c
        }));
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
            self.expect(Call {
                group: Some(group),
                ..call
            });
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
                        sh.answered += 1;
                        Ok(call.reply)
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
            Ok(reply) => send.send_response(reply.into_response(&seen)),
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

#[cfg(test)]
mod tests {
    //! The harness's own guarantees: each way a scenario can go wrong fails
    //! the test with the scenario and the step named.

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::{
        Api,
        api::{ObjectMeta, PostParams},
    };

    use super::*;

    fn cm(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn cms() -> ApiResource {
        ApiResource::erase::<ConfigMap>(&())
    }

    /// The panic message of a scenario run that must fail.
    async fn failure_of(
        scenario: Scenario,
        f: impl AsyncFnOnce(Api<ConfigMap>) -> kube::Result<()>,
    ) -> String {
        let (client, mut server) = scenario.serve();
        let api: Api<ConfigMap> = Api::namespaced(client, "ns");
        let run = AssertUnwindSafe(server.run(f(api)));
        let panic = futures::FutureExt::catch_unwind(run)
            .await
            .expect_err("the scenario must fail");
        panic.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[tokio::test]
    async fn calls_in_order_are_answered_from_typed_objects_and_errors() {
        let (client, mut server) = Scenario::new("in order")
            .expect(Call::get(object(&cms(), "ns", "a")).reply(Reply::ok(&cm("a"))))
            .expect(
                Call::get(collection(&cms(), "ns"))
                    .query("labelSelector", "app=x")
                    .reply(Reply::list(&[cm("a"), cm("b")])),
            )
            .expect(
                Call::post(collection(&cms(), "ns"))
                    .named("c")
                    .reply(Reply::already_exists("configmaps \"c\"")),
            )
            .expect(Call::get(object(&cms(), "ns", "gone")).reply(Reply::not_found("gone")))
            .serve();
        let api: Api<ConfigMap> = Api::namespaced(client, "ns");
        let (got, listed, created, gone) = server
            .run(async {
                let got = api.get("a").await.unwrap();
                let listed = api
                    .list(&kube::api::ListParams::default().labels("app=x"))
                    .await
                    .unwrap();
                let created = api.create(&PostParams::default(), &cm("c")).await;
                let gone = api.get_opt("gone").await.unwrap();
                (got, listed, created, gone)
            })
            .await;
        assert_eq!(got.metadata.name.as_deref(), Some("a"));
        assert_eq!(listed.items.len(), 2);
        assert!(matches!(created, Err(kube::Error::Api(s)) if s.code == 409));
        assert!(gone.is_none());
        assert_eq!(server.seen().len(), 4);
    }

    #[tokio::test]
    async fn a_call_that_does_not_match_names_the_scenario_and_the_step() {
        let scenario = Scenario::new("wrong call")
            .expect(Call::get(object(&cms(), "ns", "a")).reply(Reply::ok(&cm("a"))))
            .expect(Call::post(collection(&cms(), "ns")).named("b"));
        let msg = failure_of(scenario, async |api| {
            api.get("a").await?;
            api.delete("a", &Default::default()).await?;
            Ok(())
        })
        .await;
        assert!(msg.contains("scenario 'wrong call', step 2 of 2"), "{msg}");
        assert!(
            msg.contains("expected: POST /api/v1/namespaces/ns/configmaps"),
            "{msg}"
        );
        assert!(
            msg.contains("got:      DELETE /api/v1/namespaces/ns/configmaps/a"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_body_or_query_that_does_not_match_says_where() {
        let scenario =
            Scenario::new("wrong name").expect(Call::post(collection(&cms(), "ns")).named("b"));
        let msg = failure_of(scenario, async |api| {
            api.create(&PostParams::default(), &cm("c")).await?;
            Ok(())
        })
        .await;
        assert!(
            msg.contains("step 1 of 1: .metadata.name is \"c\", expected \"b\""),
            "{msg}"
        );

        let scenario = Scenario::new("wrong selector").expect(
            Call::get(collection(&cms(), "ns"))
                .query("labelSelector", "app=x")
                .reply(Reply::list::<ConfigMap>(&[])),
        );
        let msg = failure_of(scenario, async |api| {
            api.list(&kube::api::ListParams::default().labels("app=y"))
                .await?;
            Ok(())
        })
        .await;
        assert!(
            msg.contains("query labelSelector is \"app=y\", not \"app=x\""),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_panicking_body_check_fails_its_step() {
        let scenario = Scenario::new("asserting").expect(
            Call::post(collection(&cms(), "ns")).body("with data", |b| {
                assert_eq!(b["data"]["k"], "v", "data.k");
                true
            }),
        );
        let msg = failure_of(scenario, async |api| {
            api.create(&PostParams::default(), &cm("c")).await?;
            Ok(())
        })
        .await;
        assert!(
            msg.contains("step 1 of 1: the check \"with data\" panicked"),
            "{msg}"
        );
        assert!(msg.contains("data.k"), "{msg}");
    }

    #[tokio::test]
    async fn missing_and_extra_calls_fail() {
        let scenario = Scenario::new("too few")
            .expect(Call::get(object(&cms(), "ns", "a")).reply(Reply::ok(&cm("a"))))
            .expect(Call::delete(object(&cms(), "ns", "a")).reply(Reply::deleted()));
        let msg = failure_of(scenario, async |api| {
            api.get("a").await?;
            Ok(())
        })
        .await;
        assert!(
            msg.contains("scenario 'too few': the reconcile finished before these expected calls")
                && msg.contains("step 2: DELETE /api/v1/namespaces/ns/configmaps/a"),
            "{msg}"
        );

        let scenario = Scenario::new("too many")
            .expect(Call::get(object(&cms(), "ns", "a")).reply(Reply::ok(&cm("a"))));
        let msg = failure_of(scenario, async |api| {
            api.get("a").await?;
            api.get("a").await?;
            Ok(())
        })
        .await;
        assert!(
            msg.contains("scenario 'too many': a call after the last of 1 expected: GET"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_hung_reconcile_fails_within_the_timeout() {
        let scenario = Scenario::new("hangs")
            .timeout(Duration::from_millis(100))
            .expect(Call::get(object(&cms(), "ns", "a")).reply(Reply::ok(&cm("a"))));
        let msg = failure_of(scenario, async |_| {
            std::future::pending::<()>().await;
            Ok(())
        })
        .await;
        assert!(
            msg.contains(
                "scenario 'hangs': the reconcile did not finish within 100ms; 0 calls answered"
            ) && msg.contains("step 1: GET /api/v1/namespaces/ns/configmaps/a"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn calls_expected_in_any_order_match_either_way() {
        let both = || {
            [
                Call::post(collection(&cms(), "ns")).named("a"),
                Call::post(collection(&cms(), "ns")).named("b"),
            ]
        };
        for order in [["a", "b"], ["b", "a"]] {
            let (client, mut server) = Scenario::new("any order")
                .expect_any_order(both())
                .expect(Call::get(object(&cms(), "ns", "a")).reply(Reply::ok(&cm("a"))))
                .serve();
            let api: Api<ConfigMap> = Api::namespaced(client, "ns");
            server
                .run(async {
                    for name in order {
                        api.create(&PostParams::default(), &cm(name)).await.unwrap();
                    }
                    api.get("a").await.unwrap();
                })
                .await;
        }

        // The group holds the sequence: nothing after it comes first, and
        // nothing outside it matches.
        let scenario = Scenario::new("any order, then a get")
            .expect_any_order(both())
            .expect(Call::get(object(&cms(), "ns", "a")).reply(Reply::ok(&cm("a"))));
        let msg = failure_of(scenario, async |api| {
            api.create(&PostParams::default(), &cm("b")).await?;
            api.get("a").await?;
            Ok(())
        })
        .await;
        assert!(
            msg.contains("step 2 of 3: another method or path")
                && msg.contains("expected: POST /api/v1/namespaces/ns/configmaps with body including {\"metadata\":{\"name\":\"a\"}}"),
            "{msg}"
        );
        let msg = failure_of(
            Scenario::new("any order, a stranger").expect_any_order(both()),
            async |api| {
                api.create(&PostParams::default(), &cm("c")).await?;
                Ok(())
            },
        )
        .await;
        assert!(
            msg.contains("step 1 of 2: none of the 2 calls expected in any order"),
            "{msg}"
        );
    }

    #[test]
    fn includes_reads_the_expected_value_as_a_subset() {
        let body = json!({"a": 1, "b": {"c": [ {"x": 1, "y": 2} ], "d": "e"}});
        assert_eq!(differs(&json!({"b": {"c": [{"x": 1}]}}), &body, ""), None);
        assert_eq!(differs(&json!({"z": null}), &body, ""), None);
        assert_eq!(
            differs(&json!({"b": {"d": "f"}}), &body, ""),
            Some(".b.d is \"e\", expected \"f\"".into())
        );
        assert_eq!(
            differs(&json!({"b": {"c": []}}), &body, ""),
            Some(".b.c has 1 items, expected 0: [{\"x\":1,\"y\":2}]".into())
        );
        assert_eq!(
            differs(&json!({"b": {"c": [{"y": 3}]}}), &body, ""),
            Some(".b.c[0].y is 2, expected 3".into())
        );
        assert_eq!(
            differs(&json!({"q": 1}), &body, ""),
            Some(".q is missing (expected 1)".into())
        );
    }
}
