//! Pure builders and judgements for `spec.teardown`: the teardown Job, what
//! its pod reports, and how that outcome goes into the status and (only
//! with `failsTest`) into the verdict.
//!
//! The Job's one container runs `barrage-runner teardown` on the plan the
//! runners read (the plan ConfigMap), with the records Secret and the
//! target's TLS files mounted as on runner pods, and `spec.runner.env`. It
//! needs no API access: it writes its outcome (JSON) to its termination
//! message, which the operator reads from the pod.

use std::time::Duration;

use barrage_runner::teardown::{self as td, Outcome};
use k8s_openapi::api::{
    batch::v1::{Job, JobSpec},
    core::v1::{Container, Pod, PodTemplateSpec},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{
    crd::{LoadTest, TeardownStatus},
    pods::{self, PLAN_DIR, RunnerDefaults, owned_meta, restricted, teardown_name},
    status::{MAX_MESSAGE, bounded},
};

/// `spec.timeouts.teardown` unless set.
pub const DEFAULT_TIMEOUT: Duration = td::DEFAULT_TIMEOUT;
/// Beyond the teardown's own timeout, for the Job's pod to be scheduled
/// and its image pulled: the teardown stops itself at its timeout and says
/// which runs did not finish, before the Job's deadline.
pub const JOB_MARGIN: Duration = Duration::from_secs(60);

pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";

pub fn timeout(lt: &LoadTest) -> Duration {
    lt.spec.timeouts.teardown.map_or(DEFAULT_TIMEOUT, |d| d.0)
}

/// The teardown Job; None without `spec.teardown`.
pub fn job(lt: &LoadTest, defaults: &RunnerDefaults, timeout: Duration) -> Option<Job> {
    lt.spec.plan.teardown.as_ref()?;
    let r = &lt.spec.runner;
    // The plan, the records and the target's TLS files, as runner pods
    // mount them.
    let (volumes, mounts) = pods::plan_volumes(lt);
    let container = Container {
        name: "teardown".into(),
        image: Some(defaults.image_for(r)),
        image_pull_policy: Some(defaults.pull_policy_for(r)),
        args: Some(vec![
            "teardown".into(),
            format!("{PLAN_DIR}/plan.yaml"),
            "--timeout".into(),
            format!("{}ms", timeout.as_millis()),
            "--message-file".into(),
            "/dev/termination-log".into(),
        ]),
        // For `{{ env.NAME }}` in its steps, as the runners have.
        env: (!r.env.is_empty()).then(|| r.env.clone()),
        env_from: (!r.env_from.is_empty()).then(|| r.env_from.clone()),
        volume_mounts: Some(mounts),
        resources: r.resources.clone().or_else(|| defaults.resources.clone()),
        security_context: Some(restricted()),
        // The outcome is the termination message; logs only if it is missing.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    let meta = owned_meta(lt, teardown_name(lt), "teardown");
    Some(Job {
        metadata: meta.clone(),
        spec: Some(JobSpec {
            // A teardown may delete things: a second attempt could see
            // "already gone" as failures, so it is not retried.
            backoff_limit: Some(0),
            active_deadline_seconds: Some((timeout + JOB_MARGIN).as_secs() as i64),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: meta.labels.clone(),
                    ..Default::default()
                }),
                spec: Some(pods::runner_pod_spec(lt, container, volumes)),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// What the teardown container said when it ended: its outcome, or (when
/// it could not run) its error message. None while it has not ended.
pub fn pod_report(p: &Pod) -> Option<Result<Outcome, String>> {
    let st = p.status.as_ref()?;
    let cs = st
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == "teardown")?;
    let t = cs.state.as_ref()?.terminated.as_ref()?;
    let text = t.message.as_deref().unwrap_or("").trim();
    Some(td::parse_message(text).ok_or_else(|| {
        if text.is_empty() {
            format!(
                "its container exited with code {} and no message",
                t.exit_code
            )
        } else {
            format!("its container exited with code {}: {text}", t.exit_code)
        }
    }))
}

/// How the teardown ended, for the status.
#[derive(Clone, Debug, PartialEq)]
pub enum Ended {
    /// The teardown ran and reported (every run succeeded, or not).
    Reported(Outcome),
    /// It could not run or report: an invalid plan, a pod that failed or
    /// never started, the timeout.
    Broken(String),
}

/// `status.teardown` for `ended`, and whether it fails the test (a broken
/// teardown counts as a failed one).
pub fn status(lt: &LoadTest, ended: &Ended) -> (TeardownStatus, bool) {
    let fails_test = lt.spec.plan.teardown.as_ref().is_some_and(|t| t.fails_test);
    let mut s = TeardownStatus {
        job: teardown_name(lt),
        fails_test,
        ..Default::default()
    };
    let ok = match ended {
        Ended::Reported(o) => {
            s.runs = o.runs;
            s.failed = o.failed;
            s.requests = o.requests;
            s.errors = o.errors;
            s.message = Some(bounded(&o.message(), MAX_MESSAGE));
            o.succeeded()
        }
        Ended::Broken(why) => {
            s.message = Some(bounded(&format!("teardown: {why}"), MAX_MESSAGE));
            false
        }
    };
    s.phase = if ok { SUCCEEDED } else { FAILED }.into();
    (s, fails_test && !ok)
}

/// `status.teardown` while the Job runs.
pub fn running(lt: &LoadTest) -> TeardownStatus {
    TeardownStatus {
        phase: RUNNING.into(),
        job: teardown_name(lt),
        fails_test: lt.spec.plan.teardown.as_ref().is_some_and(|t| t.fails_test),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::tests::{defaults, lt};

    const SPEC: &str = "runners: 2\ntarget: {baseUrl: 'https://10.0.0.1:8443', tls: {caFrom: {configMap: ca, key: ca.crt}}}\nload: {users: 2, iterations: 4}\ndata: {select: cycle}\nrequests: [{name: a, path: /}]\nsetup: {users: 3, steps: [{name: r, path: /r, capture: {id: {json: /id}}}]}\nteardown: {perRecord: true, steps: [{name: d, method: DELETE, path: '/u/{{ record.id }}'}]}\nrunner:\n  env: [{name: API_KEY, value: k}]\n  nodeSelector: {pool: load}";

    fn the_job(spec: &str) -> Job {
        job(&lt(spec), &defaults(), Duration::from_secs(120)).unwrap()
    }

    #[test]
    fn the_job_runs_the_teardown_on_the_runners_plan_with_their_records_and_tls() {
        let j = the_job(SPEC);
        assert_eq!(j.metadata.name.as_deref(), Some("smoke-teardown"));
        let owner = &j.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("LoadTest", Some(true))
        );
        let spec = j.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(180));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.node_selector.as_ref().unwrap()["pool"], "load");
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_ref().unwrap(),
            &[
                "teardown",
                "/etc/barrage/plan/plan.yaml",
                "--timeout",
                "120000ms",
                "--message-file",
                "/dev/termination-log"
            ]
        );
        assert_eq!(c.env.as_ref().unwrap()[0].name, "API_KEY");
        let mounts: Vec<_> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.read_only))
            .collect();
        assert!(mounts.contains(&("plan", Some(true))), "{mounts:?}");
        assert!(mounts.contains(&("records", Some(true))), "{mounts:?}");
        assert!(
            mounts.len() == 3,
            "plan, records and the target's CA: {mounts:?}"
        );
        let records = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "records")
            .unwrap();
        assert_eq!(
            records.secret.as_ref().unwrap().secret_name.as_deref(),
            Some("smoke-records")
        );
        // The plan it reads names the mounted records as its data file.
        let cm = pods::plan_config_map(&lt(SPEC));
        let plan =
            barrage_runner::planfile::from_str(&cm.data.unwrap()["plan.yaml"], Default::default())
                .unwrap();
        assert_eq!(
            plan.plan.data.unwrap().file.as_deref(),
            Some("/etc/barrage/data/records.jsonl")
        );
        assert!(plan.plan.teardown.unwrap().per_record);
    }

    #[test]
    fn the_job_is_pod_security_restricted() {
        let pod = the_job(SPEC).spec.unwrap().template.spec.unwrap();
        assert_eq!(
            crate::pss::restricted_violations(&pod),
            Vec::<String>::new()
        );
    }

    #[test]
    fn no_teardown_no_job_and_no_records_no_mount() {
        let plain = "target: {baseUrl: 'http://10.0.0.1'}\nrequests: [{name: a, path: /}]";
        assert!(job(&lt(plain), &defaults(), DEFAULT_TIMEOUT).is_none());
        let once = format!("{plain}\nteardown: {{steps: [{{name: d, path: /reset}}]}}");
        let pod = the_job(&once).spec.unwrap().template.spec.unwrap();
        let names: Vec<_> = pod
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["plan"]);
        assert_eq!(timeout(&lt(&once)), Duration::from_secs(300));
        let set = format!("{once}\ntimeouts: {{teardown: 30s}}");
        assert_eq!(timeout(&lt(&set)), Duration::from_secs(30));
    }

    fn pod_with(message: Option<&str>, code: i32) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [{
                "name": "teardown", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "message": message}}
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn the_pod_reports_its_outcome_or_why_it_could_not() {
        let o = Outcome {
            runs: 3,
            failed: 1,
            ..Default::default()
        };
        let msg = td::termination_message(&o);
        assert_eq!(pod_report(&pod_with(Some(&msg), 1)), Some(Ok(o)));
        let bad = pod_report(&pod_with(Some("error: spec.teardown.steps: is empty"), 2));
        assert_eq!(
            bad,
            Some(Err(
                "its container exited with code 2: error: spec.teardown.steps: is empty".into()
            ))
        );
        assert!(
            pod_report(&pod_with(None, 137))
                .unwrap()
                .unwrap_err()
                .contains("137")
        );
        let running: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [{"name": "teardown", "image": "i", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]}
        }))
        .unwrap();
        assert_eq!(pod_report(&running), None);
    }

    #[test]
    fn a_failed_teardown_fails_the_test_only_with_fails_test() {
        let t = lt(SPEC);
        let failed = Ended::Reported(Outcome {
            runs: 3,
            failed: 2,
            requests: 3,
            errors: 2,
            ..Default::default()
        });
        let (s, fails) = status(&t, &failed);
        assert_eq!(
            (s.phase.as_str(), s.runs, s.failed, fails),
            ("Failed", 3, 2, false)
        );
        assert_eq!(s.message.as_deref(), Some("teardown: 2 of 3 runs failed"));
        let strict = lt(&SPEC.replace("perRecord: true", "perRecord: true, failsTest: true"));
        assert!(status(&strict, &failed).1);
        assert!(status(&strict, &Ended::Broken("timed out".into())).1);
        let ok = Ended::Reported(Outcome {
            runs: 3,
            requests: 3,
            ..Default::default()
        });
        let (s, fails) = status(&strict, &ok);
        assert_eq!(
            (s.phase.as_str(), fails, s.fails_test),
            ("Succeeded", false, true)
        );
        let long = status(&t, &Ended::Broken("x".repeat(5000))).0;
        assert!(long.message.unwrap().chars().count() <= MAX_MESSAGE);
    }
}
