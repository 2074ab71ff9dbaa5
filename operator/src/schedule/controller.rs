//! The ScheduledLoadTest controller: reads the object and its runs, asks
//! `policy` what is due, creates, replaces or skips a run, writes the status
//! that `history` computes, applies the history limits, and sleeps until the
//! next scheduled time (at most `policy::MAX_WAIT`).
//!
//! Its scenarios (a due run, Forbid, Replace, a missed deadline, history
//! limits, an invalid spec, a name taken) run `reconcile` against a mocked
//! API server (`crate::fixtures`) in `controller/tests.rs`.

use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, PostParams},
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        watcher,
    },
};
use tracing::{Instrument, info, info_span, warn};

use super::{
    crd::ScheduledLoadTestStatus,
    history::{self, Outcome, Run},
    policy::{self, Action as Do, Finished, Observed, Rules, SkipReason},
    runs::{self, LABEL_SLT},
    validate,
};
use crate::{
    cluster::{MANAGER, apply_status, per_scope},
    error::{Error, Result},
};

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    /// What time it is: the system clock; in a scenario test a fixed
    /// instant, so what is due or missed does not depend on when it runs.
    pub clock: Clock,
}

pub type Clock = Box<dyn Fn() -> Timestamp + Send + Sync>;

type Note = (EventType, &'static str, String);

impl Context {
    pub fn new(client: Client, reporter: Reporter) -> Context {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            clock: Box::new(Timestamp::now),
        }
    }

    /// A context for a scenario: `client` reaches the mocked API server.
    #[cfg(test)]
    pub fn test(client: Client, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Context {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: None,
        };
        Context {
            clock: Box::new(clock),
            ..Context::new(client, reporter)
        }
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    fn runs_api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &runs::loadtest_resource())
    }

    async fn write_status(&self, ns: &str, name: &str, st: &ScheduledLoadTestStatus) -> Result<()> {
        apply_status(&self.client, &runs::slt_resource(), ns, name, st).await
    }

    async fn publish(&self, obj: &DynamicObject, notes: Vec<Note>) {
        let reference = obj.object_ref(&runs::slt_resource());
        for (type_, reason, note) in notes {
            let ev = Event {
                type_,
                reason: reason.into(),
                note: Some(note.chars().take(1000).collect()),
                action: "Schedule".into(),
                secondary: None,
            };
            if let Err(e) = self.recorder.publish(&ev, &reference).await {
                warn!(error = %e, reason, "could not publish event");
            }
        }
    }
}

/// The status as written; one that does not read back is an error rather
/// than an empty status, which would forget the last schedule time (and run
/// it again) and, once applied, wipe the history.
fn status_of(obj: &DynamicObject) -> Result<ScheduledLoadTestStatus> {
    match obj.data.get("status") {
        None => Ok(ScheduledLoadTestStatus::default()),
        Some(s) => serde_json::from_value(s.clone()).map_err(|e| {
            Error::Other(format!(
                "ScheduledLoadTest {}: status does not read back: {e}",
                obj.name_any()
            ))
        }),
    }
}

/// A spec that does not convert or check: Ready False naming the field, one
/// event, and no retry until the object changes. Runs already started go on.
async fn reject(
    obj: &DynamicObject,
    ctx: &Context,
    field: String,
    message: String,
) -> Result<Action> {
    let msg = format!("invalid spec: {field}: {message}");
    let old = status_of(obj)?;
    let st = history::invalid_status(&old, &msg, obj.metadata.generation, ctx.now());
    if st != old {
        ctx.write_status(&obj.namespace().unwrap_or_default(), &obj.name_any(), &st)
            .await?;
        ctx.publish(obj, vec![(EventType::Warning, "InvalidSpec", msg)])
            .await;
    }
    Ok(Action::await_change())
}

async fn reconcile(cached: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    let (ns, name) = (cached.namespace().unwrap_or_default(), cached.name_any());
    let span = info_span!("reconcile_schedule", namespace = %ns, name = %name);
    async {
        // Read afresh: the cache may not hold this controller's last status
        // write yet (a run's deletion can arrive first), and a stale history
        // would lose the results of the runs the history limit just deleted.
        let slts: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &ns, &runs::slt_resource());
        let Some(obj) = slts.get_opt(&name).await? else {
            return Ok(Action::await_change());
        };
        if obj.meta().deletion_timestamp.is_some() {
            // The runs are ours (owner references): the garbage collector
            // deletes them.
            return Ok(Action::await_change());
        }
        let checked = validate::typed(&obj).and_then(|slt| {
            let c = validate::validate(&slt)?;
            Ok((slt, c))
        });
        let (slt, checked) = match checked {
            Ok(x) => x,
            Err(Error::Invalid { field, message }) => {
                return reject(&obj, &ctx, field, message).await;
            }
            Err(e) => return Err(e),
        };
        let uid = obj.uid().unwrap_or_default();
        let api = ctx.runs_api(&ns);
        let listed = api
            .list(&ListParams::default().labels(&format!("{LABEL_SLT}={name}")))
            .await?;
        let all: Vec<Run> = listed
            .items
            .iter()
            .filter(|o| runs::is_run_of(o, &uid))
            .map(runs::run_of)
            .collect();
        let old = status_of(&obj)?;
        let now = ctx.now();
        let obs = Observed {
            now,
            created: obj
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(now, |t| t.0),
            last_schedule: old.last_schedule_time.as_ref().map(|t| t.0),
            last_skipped: old.last_skipped_time.as_ref().map(|t| t.0),
            active: all.iter().filter(|r| r.is_active()).count(),
            existing: all.iter().map(|r| r.scheduled).collect(),
        };
        let rules = Rules {
            cron: &checked.cron,
            tz: &checked.tz,
            suspend: slt.spec.suspend,
            policy: slt.spec.concurrency_policy,
            deadline: checked.deadline,
        };
        let decision = policy::decide(&rules, &obs);
        let mut outcome = Outcome::default();
        let mut notes: Vec<Note> = Vec::new();
        if let Some(n) = decision.too_many_missed {
            notes.push((
                EventType::Warning,
                "TooManyMissedTimes",
                format!(
                    "more than {} scheduled times missed ({n}); only the latest runs. Check the operator's clock, or set startingDeadlineSeconds",
                    policy::MAX_MISSED
                ),
            ));
        }
        match decision.action {
            Do::Start { at, replace } => {
                if replace {
                    for r in all.iter().filter(|r| r.is_active()) {
                        delete(&api, &r.name).await?;
                        outcome.replaced.push(r.name.clone());
                        notes.push((
                            EventType::Normal,
                            "ReplacedRun",
                            format!("deleted active run {} (concurrencyPolicy Replace)", r.name),
                        ));
                    }
                }
                let raw = &obj.data["spec"]["template"]["spec"];
                let run = runs::run_object(&slt, raw, at);
                let run_name = run.name_any();
                let created_uid = match api.create(&PostParams::default(), &run).await {
                    Ok(o) => o.uid(),
                    // The same scheduled time, already created (an earlier
                    // reconcile whose status write was lost): fine if it is ours.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        let existing = api.get(&run_name).await?;
                        if !runs::is_run_of(&existing, &uid) {
                            return Err(Error::Other(format!(
                                "LoadTest {run_name} exists and is not a run of this ScheduledLoadTest"
                            )));
                        }
                        existing.uid()
                    }
                    Err(e) => return Err(e.into()),
                };
                info!(run = %run_name, scheduled = %at, "created run");
                notes.push((
                    EventType::Normal,
                    "CreatedRun",
                    format!("created run {run_name} for {}", history::time(at).0),
                ));
                outcome.created = Some(Run {
                    name: run_name,
                    uid: created_uid,
                    scheduled: at,
                    ..Default::default()
                });
            }
            Do::Skip { at, reason } => {
                let (type_, why) = match reason {
                    SkipReason::Forbid => (
                        EventType::Normal,
                        "a run is still active and concurrencyPolicy is Forbid",
                    ),
                    SkipReason::Deadline => (
                        EventType::Warning,
                        "it could not start within startingDeadlineSeconds",
                    ),
                };
                info!(scheduled = %at, reason = reason.as_str(), "skipped a scheduled time");
                notes.push((
                    type_,
                    "SkippedRun",
                    format!("skipped the run for {}: {why}", history::time(at).0),
                ));
            }
            Do::Record { .. } | Do::None => {}
        }
        let st = history::next_status(
            &old,
            &all,
            &decision,
            &outcome,
            slt.spec.suspend,
            obj.metadata.generation,
            now,
        );
        if st != old {
            ctx.write_status(&ns, &name, &st).await?;
        }
        ctx.publish(&obj, notes).await;
        // The history limits, once the status holds these runs' results.
        let finished: Vec<Finished> = all
            .iter()
            .filter(|r| !r.deleting && !outcome.replaced.contains(&r.name))
            .map(|r| Finished {
                name: r.name.clone(),
                scheduled: r.scheduled,
                phase: r.status.phase,
            })
            .collect();
        let mut pruned = Vec::new();
        for run in policy::prune(
            &finished,
            slt.spec.successful_runs_history_limit,
            slt.spec.failed_runs_history_limit,
        ) {
            delete(&api, &run).await?;
            pruned.push((
                EventType::Normal,
                "DeletedRun",
                format!("deleted finished run {run} (history limit)"),
            ));
        }
        ctx.publish(&obj, pruned).await;
        Ok(Action::requeue(decision.requeue(ctx.now())))
    }
    .instrument(span)
    .await
}

/// Deletes a run; one already gone is fine. Background propagation: its
/// pods go with it.
async fn delete(api: &Api<DynamicObject>, name: &str) -> Result<()> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn error_policy(obj: Arc<DynamicObject>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(name = %obj.name_any(), category = err.category(), error = %err, "schedule reconcile failed; retrying");
    Action::requeue(std::time::Duration::from_secs(5))
}

/// Runs one controller per watched namespace (one cluster-wide controller
/// when the list is empty) until a shutdown signal.
pub async fn run(client: Client, namespaces: Vec<String>) {
    let reporter = Reporter {
        controller: MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context::new(client.clone(), reporter));
    per_scope(namespaces, |ns| controller(client.clone(), ctx.clone(), ns)).await;
}

async fn controller(client: Client, ctx: Arc<Context>, namespace: Option<String>) {
    let (slt_ar, lt_ar) = (runs::slt_resource(), runs::loadtest_resource());
    let (slts, lts): (Api<DynamicObject>, Api<DynamicObject>) = match &namespace {
        Some(ns) => (
            Api::namespaced_with(client.clone(), ns, &slt_ar),
            Api::namespaced_with(client, ns, &lt_ar),
        ),
        None => (
            Api::all_with(client.clone(), &slt_ar),
            Api::all_with(client, &lt_ar),
        ),
    };
    // Untyped: one ScheduledLoadTest that does not fit our types must not
    // fail the list and stall the others (it is rejected in `reconcile`).
    // Only our runs are watched (by label). Every status write of a running
    // LoadTest wakes this reconcile; it is cheap (a get and a list) and
    // changes nothing until a run finishes.
    Controller::new_with(slts, watcher::Config::default(), slt_ar)
        .owns_with(lts, lt_ar, watcher::Config::default().labels(LABEL_SLT))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "schedule reconcile loop");
            }
        })
        .await;
}

#[cfg(test)]
mod tests;
