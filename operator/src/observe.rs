//! Reading runner pods: which are ready, which failed and why. Pure
//! functions of the pod objects, so each failure mode is unit-tested.

use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{ContainerStatus, Pod},
};

/// Container waiting reasons that will not get better by waiting.
const STUCK: &[&str] = &[
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
];

pub fn is_ready(p: &Pod) -> bool {
    let st = p.status.as_ref();
    st.and_then(|s| s.pod_ip.as_ref()).is_some()
        && st
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn pod_ip(p: &Pod) -> Option<String> {
    p.status.as_ref()?.pod_ip.clone()
}

/// Why this runner pod can no longer produce load, if it cannot: evicted,
/// OOM-killed, crashed, exited, or stuck pulling its image.
pub fn pod_failure(p: &Pod) -> Option<String> {
    let st = p.status.as_ref()?;
    if st.reason.as_deref() == Some("Evicted") {
        return Some(format!(
            "evicted: {}",
            st.message.clone().unwrap_or_default()
        ));
    }
    for cs in st.container_statuses.iter().flatten() {
        match trouble(cs) {
            Some(Trouble::Stuck { reason, message }) => {
                return Some(match message {
                    Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                    _ => reason.to_string(),
                });
            }
            Some(Trouble::Exited {
                reason,
                code,
                message,
            }) => {
                let msg = message
                    .map(|m| format!(": {}", m.trim()))
                    .unwrap_or_default();
                return Some(format!(
                    "{} (exit code {code}){msg}",
                    reason.unwrap_or("Terminated")
                ));
            }
            None => {}
        }
    }
    if st.phase.as_deref() == Some("Failed") {
        return Some(st.reason.clone().unwrap_or_else(|| "pod failed".into()));
    }
    None
}

/// Why a setup Job's pod failed or is stuck.
#[derive(Clone, Debug, PartialEq)]
pub struct SetupFailure {
    /// `setup` or `publish`.
    pub container: String,
    /// The container ran and exited non-zero (the Job may retry the pod).
    pub exited: bool,
    /// Stuck in a way a retry will not mend (a bad image name, a pull
    /// backing off); a first pull error or a missing config may still heal.
    pub hopeless: bool,
    pub message: String,
}

impl std::fmt::Display for SetupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.container, self.message)
    }
}

/// The first failed or stuck container of a setup Job's pod, naming it and
/// quoting its termination message, which both containers write.
pub fn setup_pod_failure(p: &Pod) -> Option<SetupFailure> {
    let st = p.status.as_ref()?;
    let all = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten());
    for cs in all {
        match trouble(cs) {
            Some(Trouble::Stuck { reason, message }) => {
                let msg = message.map(|m| format!(": {m}")).unwrap_or_default();
                return Some(SetupFailure {
                    container: cs.name.clone(),
                    exited: false,
                    hopeless: !matches!(reason, "ErrImagePull" | "CreateContainerConfigError"),
                    message: format!(": {reason}{msg}"),
                });
            }
            Some(Trouble::Exited { code, message, .. }) if code != 0 => {
                let msg = message
                    .map(|m| format!(": {}", m.trim()))
                    .unwrap_or_default();
                return Some(SetupFailure {
                    container: cs.name.clone(),
                    exited: true,
                    hopeless: true,
                    message: format!(" exited with code {code}{msg}"),
                });
            }
            _ => {}
        }
    }
    None
}

/// What is wrong with one container, as runner and setup pods both read it.
enum Trouble<'a> {
    /// Waiting for a reason in `STUCK`.
    Stuck {
        reason: &'a str,
        message: Option<&'a str>,
    },
    /// Terminated, whatever the exit code.
    Exited {
        reason: Option<&'a str>,
        code: i32,
        message: Option<&'a str>,
    },
}

fn trouble(cs: &ContainerStatus) -> Option<Trouble<'_>> {
    let state = cs.state.as_ref()?;
    if let Some(w) = &state.waiting
        && let Some(reason) = w.reason.as_deref().filter(|r| STUCK.contains(r))
    {
        return Some(Trouble::Stuck {
            reason,
            message: w.message.as_deref(),
        });
    }
    state.terminated.as_ref().map(|t| Trouble::Exited {
        reason: t.reason.as_deref(),
        code: t.exit_code,
        message: t.message.as_deref(),
    })
}

/// Why a pod is not ready yet, for the timeout message.
pub fn pending_reason(p: &Pod) -> String {
    let st = p.status.as_ref();
    let cond = st.and_then(|s| s.conditions.as_ref()).and_then(|cs| {
        cs.iter()
            .find(|c| c.status != "True" && c.message.is_some())
    });
    match cond {
        Some(c) => format!(
            "{} ({})",
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default()
        ),
        None => st
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into()),
    }
}

pub enum JobState {
    Running,
    Succeeded,
    Failed(String),
}

pub fn job_state(j: &Job) -> JobState {
    let Some(st) = j.status.as_ref() else {
        return JobState::Running;
    };
    if st.succeeded.unwrap_or(0) > 0 {
        return JobState::Succeeded;
    }
    if let Some(c) = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True")
    {
        return JobState::Failed(format!(
            "{}: {}",
            c.reason.clone().unwrap_or_else(|| "Failed".into()),
            c.message.clone().unwrap_or_default()
        ));
    }
    JobState::Running
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "t-runner-0"}, "status": status}),
        )
        .unwrap()
    }

    #[test]
    fn ready_needs_the_condition_and_an_ip() {
        assert!(is_ready(&pod(
            serde_json::json!({"podIP": "10.1.1.1", "conditions": [{"type": "Ready", "status": "True"}]})
        )));
        assert!(!is_ready(&pod(
            serde_json::json!({"conditions": [{"type": "Ready", "status": "True"}]})
        )));
        assert!(!is_ready(&pod(
            serde_json::json!({"podIP": "10.1.1.1", "conditions": [{"type": "Ready", "status": "False"}]})
        )));
    }

    #[test]
    fn failures_say_what_happened() {
        let oom = pod(
            serde_json::json!({"phase": "Failed", "containerStatuses": [{"name": "runner", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
        );
        assert_eq!(pod_failure(&oom).unwrap(), "OOMKilled (exit code 137)");
        let pull = pod(
            serde_json::json!({"phase": "Pending", "containerStatuses": [{"name": "runner", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}]}),
        );
        assert_eq!(
            pod_failure(&pull).unwrap(),
            "ImagePullBackOff: no such image"
        );
        let evicted = pod(
            serde_json::json!({"phase": "Failed", "reason": "Evicted", "message": "low memory"}),
        );
        assert_eq!(pod_failure(&evicted).unwrap(), "evicted: low memory");
        let creating = pod(
            serde_json::json!({"phase": "Pending", "containerStatuses": [{"name": "runner", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        assert_eq!(pod_failure(&creating), None);
        let running = pod(serde_json::json!({"phase": "Running", "podIP": "10.1.1.1"}));
        assert_eq!(pod_failure(&running), None);
    }

    #[test]
    fn setup_failures_name_the_container_and_quote_its_message() {
        let p = pod(serde_json::json!({"initContainerStatuses": [
            {"name": "setup", "state": {"terminated": {"exitCode": 1, "message": "setup failed for 3 of 10 users\n"}}}
        ], "containerStatuses": [
            {"name": "publish", "state": {"waiting": {"reason": "PodInitializing"}}}
        ]}));
        let f = setup_pod_failure(&p).unwrap();
        assert_eq!(
            f.to_string(),
            "setup exited with code 1: setup failed for 3 of 10 users"
        );
        assert!(f.exited);
        let p = pod(serde_json::json!({"initContainerStatuses": [
            {"name": "setup", "state": {"terminated": {"exitCode": 0}}}
        ], "containerStatuses": [
            {"name": "publish", "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}
        ]}));
        let f = setup_pod_failure(&p).unwrap();
        assert_eq!(f.to_string(), "publish: ErrImagePull: not found");
        // A first pull error may heal; a pull backing off is given up on.
        assert!(!f.exited && !f.hopeless);
        let ok = pod(serde_json::json!({"initContainerStatuses": [
            {"name": "setup", "state": {"running": {}}}
        ]}));
        assert_eq!(setup_pod_failure(&ok), None);
    }

    #[test]
    fn job_states() {
        let j = |s: serde_json::Value| -> Job {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "j"}, "status": s}))
                .unwrap()
        };
        assert!(matches!(
            job_state(&j(serde_json::json!({"succeeded": 1}))),
            JobState::Succeeded
        ));
        assert!(matches!(
            job_state(&j(serde_json::json!({"active": 1}))),
            JobState::Running
        ));
        match job_state(&j(
            serde_json::json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
        )) {
            JobState::Failed(m) => assert!(m.starts_with("BackoffLimitExceeded"), "{m}"),
            _ => panic!("expected failed"),
        }
    }
}
