//! The ScheduledLoadTest reconcile against a mocked API server
//! (`crate::fixtures`): each scenario runs the real `reconcile` with a fixed
//! clock and checks every call it makes, in order, and the status it writes.
//!
//! The ScheduledLoadTest "nightly" runs at 03:00 UTC; the clock reads
//! 2026-01-05 03:00:30, so the run for 03:00 that day is due unless a
//! scenario says otherwise. Runs are named `nightly-<unix minutes>`.

use std::{sync::Arc, time::Duration};

use barrage_runner::report::Latencies;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::{
    Resource,
    api::{ApiResource, DynamicObject, ObjectMeta},
    runtime::controller::Action,
};
use serde_json::{Value, json};

use super::{Context, reconcile};
use crate::{
    crd::{LoadTest, LoadTestStatus, Phase},
    error::Error,
    fixtures::{Call, Reply, Scenario, Server, collection, object},
    schedule::{
        crd::{RunRef, ScheduledLoadTest, ScheduledLoadTestSpec, ScheduledLoadTestStatus},
        runs,
    },
};

const NS: &str = "perf";
const SLT_UID: &str = "slt-uid";
/// The runs for 03:00 on 2026-01-01 .. 2026-01-05.
const RUN_1: &str = "nightly-29453940";
const RUN_2: &str = "nightly-29455380";
const RUN_3: &str = "nightly-29456820";
const RUN_4: &str = "nightly-29458260";
const RUN_5: &str = "nightly-29459700";
const AT_4: &str = "2026-01-04T03:00:00Z";
const AT_5: &str = "2026-01-05T03:00:00Z";
const AT_6: &str = "2026-01-06T03:00:00Z";
/// The clock, unless a scenario says otherwise.
const NOW: &str = "2026-01-05T03:00:30Z";
/// `policy::MAX_WAIT`: the longest requeue.
const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// "nightly" with the template of `runs`' tests and `spec` on top.
fn slt(spec: Value, status: ScheduledLoadTestStatus) -> ScheduledLoadTest {
    let mut base = json!({
        "schedule": "0 3 * * *",
        "template": {
            "metadata": {"labels": {"team": "checkout"}},
            "spec": {"target": {"baseUrl": "http://10.0.0.1"}, "load": {"users": 2, "duration": "70s"},
                     "requests": [{"name": "a", "path": "/"}], "runners": 2}
        }
    });
    for (k, v) in spec.as_object().unwrap() {
        base[k] = v.clone();
    }
    let spec: ScheduledLoadTestSpec = serde_json::from_value(base).unwrap();
    let mut slt = ScheduledLoadTest::new("nightly", spec);
    slt.metadata = ObjectMeta {
        name: Some("nightly".into()),
        namespace: Some(NS.into()),
        uid: Some(SLT_UID.into()),
        generation: Some(1),
        creation_timestamp: Some(Time(at("2026-01-01T00:00:00Z"))),
        ..Default::default()
    };
    slt.status = Some(status);
    slt
}

/// The status after the run of 2026-01-04 was created.
fn scheduled_4() -> ScheduledLoadTestStatus {
    ScheduledLoadTestStatus {
        last_schedule_time: Some(Time(at(AT_4))),
        ..Default::default()
    }
}

/// A run of `owner` for 03:00 on 2026-01-0`day` in `phase`; a finished one
/// has figures that tell the days apart (rps 10+day, p95 40+day).
fn run_of(owner: &str, day: i64, phase: Phase) -> LoadTest {
    let scheduled = at(&format!("2026-01-0{day}T03:00:00Z"));
    let name = format!("nightly-{}", scheduled.as_second() / 60);
    let template = slt(json!({}), Default::default()).spec.template.spec;
    let mut lt = LoadTest::new(&name, template);
    lt.metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(NS.into()),
        uid: Some(format!("run-{day}-uid")),
        labels: Some([(runs::LABEL_SLT.to_string(), "nightly".to_string())].into()),
        annotations: Some([(runs::ANN_SCHEDULED.to_string(), scheduled.to_string())].into()),
        owner_references: Some(vec![OwnerReference {
            api_version: "barrage.dev/v1alpha1".into(),
            kind: "ScheduledLoadTest".into(),
            name: "nightly".into(),
            uid: owner.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..Default::default()
    };
    let done = phase.is_terminal();
    lt.status = Some(LoadTestStatus {
        phase,
        verdict: done.then(|| {
            if phase == Phase::Succeeded {
                "Passed"
            } else {
                "Failed"
            }
            .into()
        }),
        requests: if done { 1000 } else { 0 },
        rps: if done { 10.0 + day as f64 } else { 0.0 },
        latency_ms: done.then(|| Latencies {
            p95: 40.0 + day as f64,
            ..Default::default()
        }),
        finished_at: done.then(|| format!("2026-01-0{day}T03:02:00Z")),
        ..Default::default()
    });
    lt
}

fn run(day: i64, phase: Phase) -> LoadTest {
    run_of(SLT_UID, day, phase)
}

/// A LoadTest that carries our label but is not ours (made by hand, or by
/// another ScheduledLoadTest of the same name before this one): never
/// counted, recorded or deleted.
fn strangers(day: i64, phase: Phase) -> LoadTest {
    let mut lt = run_of("another-uid", day, phase);
    lt.metadata.name = Some(format!("nightly-by-hand-{day}"));
    lt.metadata.uid = Some(format!("stranger-{day}-uid"));
    lt
}

fn slts() -> ApiResource {
    runs::slt_resource()
}

fn lts() -> ApiResource {
    runs::loadtest_resource()
}

fn get_slt(slt: &ScheduledLoadTest) -> Call {
    Call::get(object(&slts(), NS, "nightly")).reply(Reply::ok(slt))
}

/// The runs are listed by their label.
fn list_runs(runs: &[LoadTest]) -> Call {
    Call::get(collection(&lts(), NS))
        .query("labelSelector", "barrage.dev/scheduledloadtest=nightly")
        .reply(Reply::list(runs))
}

/// The run for 2026-01-05 03:00, created from the template: its name, our
/// labels and the template's, the scheduled time, "nightly" as controlling
/// owner, the template's spec as served. The API server gives it a uid.
fn create_run_5(served: &ScheduledLoadTest) -> Call {
    let spec = serde_json::to_value(&served.spec.template.spec).unwrap();
    Call::post(collection(&lts(), NS))
        .named(RUN_5)
        .includes(json!({
            "apiVersion": "barrage.dev/v1alpha1",
            "kind": "LoadTest",
            "metadata": {
                "namespace": NS,
                "labels": {
                    "barrage.dev/scheduledloadtest": "nightly",
                    "app.kubernetes.io/managed-by": "barrage-operator",
                    "team": "checkout",
                },
                "annotations": {"barrage.dev/scheduled-at": AT_5},
                "ownerReferences": [{
                    "apiVersion": "barrage.dev/v1alpha1", "kind": "ScheduledLoadTest",
                    "name": "nightly", "uid": SLT_UID, "controller": true, "blockOwnerDeletion": true,
                }],
            },
        }))
        .body("the template's spec, whole", move |b| b["spec"] == spec)
        .reply(Reply::echo_with(|v| v["metadata"]["uid"] = "run-5-uid".into()))
}

/// The one status write: server-side apply of the whole status, holding
/// `status` (a subset, see `Call::includes`).
fn write_status(status: Value) -> Call {
    Call::patch(format!("{}/status", object(&slts(), NS, "nightly")))
        .query("fieldManager", "barrage-operator")
        .query("force", "true")
        .includes(json!({
            "apiVersion": "barrage.dev/v1alpha1",
            "kind": "ScheduledLoadTest",
            "status": status,
        }))
}

/// A background delete: the run's pods go with it.
fn delete_run(name: &str) -> Call {
    Call::delete(object(&lts(), NS, name))
        .includes(json!({"propagationPolicy": "Background"}))
        .reply(Reply::deleted())
}

fn event(type_: &str, reason: &str, note: &str) -> Call {
    Call::event(reason).includes(json!({
        "type": type_,
        "note": note,
        "action": "Schedule",
        "regarding": {"kind": "ScheduledLoadTest", "name": "nightly", "namespace": NS, "uid": SLT_UID},
    }))
}

/// The conditions of a valid, unsuspended ScheduledLoadTest whose next run
/// is at `next`, and whose last finished run `passed` (if any).
fn conditions(next: &str, last: Option<(&str, bool)>) -> Value {
    let mut c = vec![
        json!({"type": "Ready", "status": "True", "reason": "Scheduled",
               "message": format!("next run at {next}"), "observedGeneration": 1}),
        json!({"type": "Suspended", "status": "False", "reason": "Active"}),
    ];
    if let Some((msg, passed)) = last {
        c.push(
            json!({"type": "LastRunPassed", "status": if passed { "True" } else { "False" },
                      "message": msg}),
        );
    }
    Value::Array(c)
}

/// The status of the last status write the server saw.
fn written_status(server: &Server) -> Value {
    let seen = server.seen();
    let write = seen
        .iter()
        .rfind(|s| s.path.ends_with("/status"))
        .expect("a status write");
    write.body.as_ref().unwrap()["status"].clone()
}

/// Runs `reconcile` for "nightly" at `now` against `server`.
async fn reconcile_at(
    client: kube::Client,
    server: &mut Server,
    now: &str,
) -> crate::error::Result<Action> {
    let now = at(now);
    let ctx = Arc::new(Context::test(client, move || now));
    let mut cached = DynamicObject::new("nightly", &slts()).within(NS);
    cached.meta_mut().uid = Some(SLT_UID.into());
    server.run(reconcile(Arc::new(cached), ctx)).await
}

#[tokio::test]
async fn a_due_run_is_created_and_recorded() {
    let obj = slt(json!({}), scheduled_4());
    let (client, mut server) = Scenario::new("a due run is created")
        .expect(get_slt(&obj))
        .expect(list_runs(&[run(4, Phase::Succeeded), strangers(4, Phase::Running)]))
        .expect(create_run_5(&obj))
        .expect(write_status(json!({
            "observedGeneration": 1,
            "lastScheduleTime": AT_5,
            "nextScheduleTime": AT_6,
            "active": [{"name": RUN_5, "uid": "run-5-uid"}],
            "activeCount": 1,
            "skippedRuns": 0,
            "lastSkippedTime": null,
            "history": [
                {"name": RUN_5, "scheduledTime": AT_5, "phase": "Pending", "verdict": null, "rps": null},
                {"name": RUN_4, "scheduledTime": AT_4, "phase": "Succeeded", "verdict": "Passed",
                 "rps": 14.0, "p95Ms": 44.0, "finishedAt": "2026-01-04T03:02:00Z"},
            ],
            "lastVerdict": "Passed",
            "lastSuccessfulTime": "2026-01-04T03:02:00Z",
            "recentP95": "44.0",
            "conditions": conditions(AT_6, Some((&format!("{RUN_4} (Succeeded): Passed"), true))),
        })))
        .expect(event(
            "Normal",
            "CreatedRun",
            &format!("created run {RUN_5} for {AT_5}"),
        ))
        .serve();
    let action = reconcile_at(client.clone(), &mut server, NOW)
        .await
        .unwrap();
    // The next run is a day away: look again within MAX_WAIT.
    assert_eq!(action, Action::requeue(FIVE_MINUTES));

    // Woken again by the new run, with the status as written: nothing is
    // due and nothing changed, so nothing is written, created or said.
    let mut obj = obj;
    obj.status = Some(serde_json::from_value(written_status(&server)).unwrap());
    server.expect(get_slt(&obj));
    server.expect(list_runs(&[
        run(4, Phase::Succeeded),
        run(5, Phase::Pending),
    ]));
    let action = reconcile_at(client, &mut server, "2026-01-05T03:00:40Z")
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(FIVE_MINUTES));
}

#[tokio::test]
async fn forbid_with_an_active_run_skips_the_due_time() {
    let status = ScheduledLoadTestStatus {
        active: vec![RunRef {
            name: RUN_4.into(),
            uid: Some("run-4-uid".into()),
        }],
        active_count: 1,
        ..scheduled_4()
    };
    let obj = slt(json!({"concurrencyPolicy": "Forbid"}), status);
    let (client, mut server) = Scenario::new("Forbid skips")
        .expect(get_slt(&obj))
        .expect(list_runs(&[run(4, Phase::Running)]))
        // No create: the skip is recorded, the active run left alone.
        .expect(write_status(json!({
            "lastScheduleTime": AT_4,
            "lastSkippedTime": AT_5,
            "lastSkippedReason": "ConcurrencyForbid",
            "skippedRuns": 1,
            "nextScheduleTime": AT_6,
            "active": [{"name": RUN_4, "uid": "run-4-uid"}],
            "activeCount": 1,
            "history": [{"name": RUN_4, "phase": "Running", "verdict": null}],
        })))
        .expect(event(
            "Normal",
            "SkippedRun",
            &format!(
                "skipped the run for {AT_5}: a run is still active and concurrencyPolicy is Forbid"
            ),
        ))
        .serve();
    let action = reconcile_at(client, &mut server, NOW).await.unwrap();
    assert_eq!(action, Action::requeue(FIVE_MINUTES));
}

#[tokio::test]
async fn replace_deletes_the_active_run_then_creates_the_due_one() {
    let obj = slt(json!({"concurrencyPolicy": "Replace"}), scheduled_4());
    let (client, mut server) = Scenario::new("Replace")
        .expect(get_slt(&obj))
        .expect(list_runs(&[run(4, Phase::Running)]))
        .expect(delete_run(RUN_4))
        .expect(create_run_5(&obj))
        .expect(write_status(json!({
            "lastScheduleTime": AT_5,
            "active": [{"name": RUN_5, "uid": "run-5-uid"}],
            "activeCount": 1,
            "skippedRuns": 0,
            // The replaced run stays in the history, marked so.
            "history": [
                {"name": RUN_5, "phase": "Pending"},
                {"name": RUN_4, "phase": "Replaced"},
            ],
        })))
        .expect(event(
            "Normal",
            "ReplacedRun",
            &format!("deleted active run {RUN_4} (concurrencyPolicy Replace)"),
        ))
        .expect(event(
            "Normal",
            "CreatedRun",
            &format!("created run {RUN_5} for {AT_5}"),
        ))
        // No history-limit delete of the replaced run: it is already going.
        .serve();
    let action = reconcile_at(client, &mut server, NOW).await.unwrap();
    assert_eq!(action, Action::requeue(FIVE_MINUTES));
}

#[tokio::test]
async fn a_time_past_the_starting_deadline_is_skipped_with_a_warning() {
    // 30 s late, 10 s allowed.
    let obj = slt(json!({"startingDeadlineSeconds": 10}), scheduled_4());
    let (client, mut server) = Scenario::new("missed deadline")
        .expect(get_slt(&obj))
        .expect(list_runs(&[]))
        .expect(write_status(json!({
            "lastScheduleTime": AT_4,
            "lastSkippedTime": AT_5,
            "lastSkippedReason": "StartingDeadlineExceeded",
            "skippedRuns": 1,
            "nextScheduleTime": AT_6,
            "active": null,
            "activeCount": 0,
        })))
        .expect(event(
            "Warning",
            "SkippedRun",
            &format!(
                "skipped the run for {AT_5}: it could not start within startingDeadlineSeconds"
            ),
        ))
        .serve();
    let action = reconcile_at(client, &mut server, NOW).await.unwrap();
    assert_eq!(action, Action::requeue(FIVE_MINUTES));
}

#[tokio::test]
async fn history_limits_delete_the_oldest_finished_runs_after_the_status_holds_them() {
    let status = ScheduledLoadTestStatus {
        last_schedule_time: Some(Time(at(AT_5))),
        active: vec![RunRef {
            name: RUN_5.into(),
            uid: Some("run-5-uid".into()),
        }],
        active_count: 1,
        ..Default::default()
    };
    let obj = slt(
        json!({"successfulRunsHistoryLimit": 2, "failedRunsHistoryLimit": 1}),
        status,
    );
    let listed = [
        run(1, Phase::Succeeded),
        run(2, Phase::Failed),
        run(3, Phase::Succeeded),
        run(4, Phase::Aborted),
        run(5, Phase::Succeeded),
        strangers(1, Phase::Succeeded),
    ];
    let (client, mut server) = Scenario::new("history limits")
        .expect(get_slt(&obj))
        .expect(list_runs(&listed))
        // First the status, with every run's results ...
        .expect(write_status(json!({
            "lastScheduleTime": AT_5,
            "nextScheduleTime": AT_6,
            "active": null,
            "activeCount": 0,
            "history": [
                {"name": RUN_5, "phase": "Succeeded", "verdict": "Passed", "rps": 15.0, "p95Ms": 45.0},
                {"name": RUN_4, "phase": "Aborted", "verdict": "Failed", "rps": 14.0, "p95Ms": 44.0},
                {"name": RUN_3, "phase": "Succeeded", "verdict": "Passed", "rps": 13.0, "p95Ms": 43.0},
                {"name": RUN_2, "phase": "Failed", "verdict": "Failed", "rps": 12.0, "p95Ms": 42.0},
                {"name": RUN_1, "phase": "Succeeded", "verdict": "Passed", "rps": 11.0, "p95Ms": 41.0},
            ],
            "lastVerdict": "Passed",
            "lastSuccessfulTime": "2026-01-05T03:02:00Z",
            "recentP95": "45.0 44.0! 43.0 42.0! 41.0",
            "recentRps": "15.0 14.0! 13.0 12.0! 11.0",
            "conditions": conditions(AT_6, Some((&format!("{RUN_5} (Succeeded): Passed"), true))),
        })))
        // ... then the runs beyond the limits, newest first: 2 Succeeded
        // kept (5, 3) and 1 failed (4).
        .expect(delete_run(RUN_2))
        .expect(delete_run(RUN_1))
        .expect(event(
            "Normal",
            "DeletedRun",
            &format!("deleted finished run {RUN_2} (history limit)"),
        ))
        // The Recorder sends a repeat of the same reason as a PATCH of the
        // first event's series; the note is the first one's.
        .expect(
            Call::event("DeletedRun")
                .includes(json!({"type": "Normal", "series": {"count": 2}})),
        )
        .serve();
    // Two minutes before the next run: nothing due, look again then.
    let action = reconcile_at(client, &mut server, "2026-01-06T02:58:00Z")
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(120)));
}

#[tokio::test]
async fn an_invalid_spec_is_reported_once_and_not_retried() {
    let obj = slt(json!({"schedule": "every night"}), scheduled_4());
    let (client, mut server) = Scenario::new("invalid spec")
        .expect(get_slt(&obj))
        // No list, no run: only Ready False naming the field.
        .expect(
            write_status(json!({
                "observedGeneration": 1,
                "lastScheduleTime": AT_4,
                "nextScheduleTime": null,
                "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSpec",
                                "lastTransitionTime": NOW}],
            }))
            .body("a Ready message naming spec.schedule", |b| {
                b["status"]["conditions"][0]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("invalid spec: spec.schedule: \"every night\""))
            }),
        )
        .expect(Call::event("InvalidSpec").includes(json!({"type": "Warning"})))
        .serve();
    let action = reconcile_at(client.clone(), &mut server, NOW)
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());

    // Woken again with the status as written: nothing to write or say.
    let mut obj = obj;
    obj.status = Some(serde_json::from_value(written_status(&server)).unwrap());
    server.expect(get_slt(&obj));
    let action = reconcile_at(client, &mut server, "2026-01-05T03:10:00Z")
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_409_on_create_is_fine_when_the_run_is_ours() {
    // The run was created by an earlier reconcile whose status write was
    // lost, and the list did not show it yet.
    let obj = slt(json!({}), scheduled_4());
    let (client, mut server) = Scenario::new("409, ours")
        .expect(get_slt(&obj))
        .expect(list_runs(&[]))
        .expect(create_run_5(&obj).reply(Reply::already_exists(&format!("loadtests \"{RUN_5}\""))))
        .expect(Call::get(object(&lts(), NS, RUN_5)).reply(Reply::ok(&run(5, Phase::Pending))))
        .expect(write_status(json!({
            "lastScheduleTime": AT_5,
            "active": [{"name": RUN_5, "uid": "run-5-uid"}],
            "activeCount": 1,
        })))
        .expect(event(
            "Normal",
            "CreatedRun",
            &format!("created run {RUN_5} for {AT_5}"),
        ))
        .serve();
    let action = reconcile_at(client, &mut server, NOW).await.unwrap();
    assert_eq!(action, Action::requeue(FIVE_MINUTES));
}

#[tokio::test]
async fn a_409_on_create_is_an_error_when_the_name_is_a_strangers() {
    let obj = slt(json!({}), scheduled_4());
    let (client, mut server) = Scenario::new("409, a stranger's")
        .expect(get_slt(&obj))
        .expect(list_runs(&[]))
        .expect(create_run_5(&obj).reply(Reply::already_exists(&format!("loadtests \"{RUN_5}\""))))
        .expect(
            Call::get(object(&lts(), NS, RUN_5)).reply(Reply::ok(&run_of(
                "another-uid",
                5,
                Phase::Running,
            ))),
        )
        // Nothing recorded: the reconcile retries.
        .serve();
    let err = reconcile_at(client, &mut server, NOW).await.unwrap_err();
    assert!(
        matches!(&err, Error::Other(m)
            if m == &format!("LoadTest {RUN_5} exists and is not a run of this ScheduledLoadTest")),
        "{err}"
    );
}

#[tokio::test]
async fn a_scheduledloadtest_gone_since_the_watch_is_left_alone() {
    let (client, mut server) = Scenario::new("gone")
        .expect(
            Call::get(object(&slts(), NS, "nightly"))
                .reply(Reply::not_found("scheduledloadtests \"nightly\"")),
        )
        .serve();
    let action = reconcile_at(client, &mut server, NOW).await.unwrap();
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_scheduledloadtest_being_deleted_is_left_to_the_garbage_collector() {
    let mut obj = slt(json!({}), scheduled_4());
    obj.metadata.deletion_timestamp = Some(Time(at(NOW)));
    // A due run, but no list, no create, no status: its runs go with it.
    let (client, mut server) = Scenario::new("being deleted").expect(get_slt(&obj)).serve();
    let action = reconcile_at(client, &mut server, NOW).await.unwrap();
    assert_eq!(action, Action::await_change());
}
