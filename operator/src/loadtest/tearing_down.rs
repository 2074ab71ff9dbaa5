//! TearingDown: the load's results are final and its verdict written (in
//! the `Passed` condition); the runners are cleaned up, the teardown Job
//! runs, and its outcome goes into `status.teardown`. Then the final phase:
//! the load's verdict, failed too only when the teardown failed with
//! `failsTest`.

use std::{cmp::Reverse, time::Duration};

use k8s_openapi::api::batch::v1::Job;
use kube::{ResourceExt, runtime::events::EventType};

use super::{
    context::{Context, in_phase, now},
    finishing,
    next::Next,
};
use crate::{
    crd::{LoadTest, LoadTestStatus, Phase},
    error::{Error, Result},
    observe::{self, JobState},
    pods,
    status::{self, COND_TEARDOWN, set_condition},
    teardown::{self, Ended},
};

/// Beyond the Job's own margin (`teardown::JOB_MARGIN`), so that the Job's
/// deadline and the teardown's own report come before the operator gives up.
const OPERATOR_MARGIN: Duration = Duration::from_secs(30);

pub async fn step(lt: &LoadTest, ctx: &Context, mut st: LoadTestStatus) -> Result<Next> {
    // The runners' results are final: they are not needed any more.
    finishing::cleanup(lt, ctx).await?;
    let limit = teardown::timeout(lt);
    let Some(job) = teardown::job(lt, &ctx.config.runner, limit) else {
        let why = "spec.teardown was removed while tearing down; it did not run";
        return Ok(conclude(lt, st, Ended::Broken(why.into())));
    };
    st.teardown.get_or_insert_with(|| teardown::running(lt));
    // A Job the API server refuses (a quota, a name taken) is a teardown
    // that could not run, not a reason to retry for ever.
    if let Err(e) = ctx.create_if_absent(lt, &job).await {
        return match refused(e) {
            Ok(why) => Ok(conclude(lt, st, Ended::Broken(why))),
            Err(e) => Err(e),
        };
    }
    let job: Job = ctx.ns_api::<Job>(lt).get(&pods::teardown_name(lt)).await?;
    // Newest first (the Job does not retry, but a pod may be replaced).
    let mut found = ctx.setup_pods(lt, job.metadata.uid.as_deref());
    found.sort_by_key(|p| Reverse(p.creation_timestamp()));
    let report = found.iter().find_map(teardown::pod_report);
    // An image that will not pull never reports: say so at once.
    let stuck = found
        .iter()
        .filter_map(observe::setup_pod_failure)
        .find(|f| !f.exited && f.hopeless);
    let waited = limit + teardown::JOB_MARGIN + OPERATOR_MARGIN;
    let ended = match (report, stuck, observe::job_state(&job)) {
        (Some(Ok(outcome)), _, _) => Ended::Reported(outcome),
        (Some(Err(why)), _, _) => Ended::Broken(why),
        (None, Some(f), _) => Ended::Broken(format!("the teardown pod cannot start: {f}")),
        (None, None, JobState::Failed(why)) => {
            Ended::Broken(format!("the teardown job failed: {why}"))
        }
        _ if in_phase(&st) > waited => Ended::Broken(format!(
            "no outcome within spec.timeouts.teardown ({}) and {} for its pod to start",
            barrage_runner::duration::format_duration(limit),
            barrage_runner::duration::format_duration(waited - limit)
        )),
        // The Job and its pod are watched; this is a fallback.
        _ => return Ok(Next::new(st, Some(Duration::from_secs(2)))),
    };
    Ok(conclude(lt, st, ended))
}

/// The reason an error of the API server will not mend by waiting, or the
/// error to retry.
fn refused(e: Error) -> std::result::Result<String, Error> {
    match e {
        Error::Conflict(msg) => Ok(msg),
        Error::Kube(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 422) => Ok(format!(
            "the API server refused the teardown job ({} {}): {}",
            s.code, s.reason, s.message
        )),
        other => Err(other),
    }
}

/// Writes the teardown's outcome and the final phase, with an event for
/// each.
fn conclude(lt: &LoadTest, mut st: LoadTestStatus, ended: Ended) -> Next {
    let generation = lt.metadata.generation;
    let (ts, fails) = teardown::status(lt, &ended);
    let ok = ts.phase == teardown::SUCCEEDED;
    let tmsg = ts.message.clone().unwrap_or_default();
    st.teardown = Some(ts);
    set_condition(
        &mut st.conditions,
        COND_TEARDOWN,
        ok,
        if ok {
            "TeardownSucceeded"
        } else {
            "TeardownFailed"
        },
        &tmsg,
        generation,
        now(),
    );
    let (phase, msg) = status::finish_after_teardown(&mut st, fails, &tmsg, generation, now());
    let teardown_event = if ok {
        (EventType::Normal, "TeardownSucceeded")
    } else {
        (EventType::Warning, "TeardownFailed")
    };
    let (type_, event) = if phase == Phase::Succeeded {
        (EventType::Normal, "Succeeded")
    } else {
        (EventType::Warning, "Failed")
    };
    tracing::info!(name = %lt.name_any(), teardown = %tmsg, "teardown ended");
    // The cleanup of a finished test comes in the next reconcile.
    Next::new(st, Some(Duration::from_secs(1)))
        .event(teardown_event.0, teardown_event.1, tmsg)
        .event(type_, event, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::tests::lt;
    use barrage_runner::teardown::Outcome;

    const SPEC: &str = "target: {baseUrl: 'http://10.0.0.1'}\nrequests: [{name: a, path: /}]\nteardown: {steps: [{name: d, path: /reset}]}";

    /// A LoadTest whose load ended `load` (as `finalize` leaves it).
    fn judged(spec: &str, load: Phase, reason: &str) -> (LoadTest, LoadTestStatus) {
        let mut t = lt(spec);
        t.metadata.generation = Some(1);
        let mut st = LoadTestStatus::default();
        status::judged_before_teardown(&mut st, load, reason, "10 requests", Some(1), now());
        assert_eq!(st.phase, Phase::TearingDown);
        assert!(status::condition(&st.conditions, status::COND_COMPLETE).is_none());
        (t, st)
    }

    fn failed_runs() -> Ended {
        Ended::Reported(Outcome {
            runs: 1,
            failed: 1,
            ..Default::default()
        })
    }

    #[test]
    fn the_loads_verdict_stands_unless_fails_test() {
        let (t, st) = judged(SPEC, Phase::Succeeded, "Succeeded");
        let n = conclude(&t, st.clone(), failed_runs());
        assert_eq!(n.status.phase, Phase::Succeeded);
        assert_eq!(n.status.verdict.as_deref(), Some("Passed"));
        assert_eq!(n.status.teardown.as_ref().unwrap().phase, "Failed");
        let reasons: Vec<_> = n.events.iter().map(|e| e.1).collect();
        assert_eq!(reasons, ["TeardownFailed", "Succeeded"]);
        let cond = status::condition(&n.status.conditions, COND_TEARDOWN).unwrap();
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("False", "TeardownFailed")
        );

        let strict = SPEC.replace("teardown: {", "teardown: {failsTest: true, ");
        let (t, st) = judged(&strict, Phase::Succeeded, "Succeeded");
        let n = conclude(&t, st, failed_runs());
        assert_eq!(n.status.phase, Phase::Failed);
        assert_eq!(n.status.verdict.as_deref(), Some("Failed"));
        let complete = status::condition(&n.status.conditions, status::COND_COMPLETE).unwrap();
        assert_eq!(complete.reason, status::REASON_TEARDOWN_FAILED);
        assert!(
            n.status
                .message
                .as_deref()
                .unwrap()
                .contains("1 of 1 runs failed"),
            "{:?}",
            n.status.message
        );
    }

    #[test]
    fn a_failed_or_aborted_load_stays_so_whatever_the_teardown() {
        let ok = Ended::Reported(Outcome {
            runs: 1,
            ..Default::default()
        });
        let (t, st) = judged(SPEC, Phase::Aborted, "Aborted");
        assert_eq!(conclude(&t, st, ok.clone()).status.phase, Phase::Aborted);
        let (t, st) = judged(SPEC, Phase::Failed, "Failed");
        let n = conclude(&t, st, ok);
        assert_eq!(n.status.phase, Phase::Failed);
        assert_eq!(n.status.message.as_deref(), Some("10 requests"));
        assert_eq!(n.status.teardown.unwrap().phase, "Succeeded");
    }
}
