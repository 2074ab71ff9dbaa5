//! Reading runner pods: which are ready, which failed and why. Pure
//! functions of the pod objects, so each failure mode is unit-tested.

use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};

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
        let state = cs.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref())
            && let Some(r) = w.reason.as_deref().filter(|r| STUCK.contains(r))
        {
            return Some(
                format!("{r}: {}", w.message.clone().unwrap_or_default())
                    .trim_end_matches(": ")
                    .to_string(),
            );
        }
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            let reason = t.reason.clone().unwrap_or_else(|| "Terminated".into());
            let msg = t
                .message
                .as_deref()
                .map(|m| format!(": {}", m.trim()))
                .unwrap_or_default();
            return Some(format!("{reason} (exit code {}){msg}", t.exit_code));
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
        let state = cs.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref())
            && let Some(r) = w.reason.as_deref().filter(|r| STUCK.contains(r))
        {
            let msg = w
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            return Some(SetupFailure {
                container: cs.name.clone(),
                exited: false,
                hopeless: !matches!(r, "ErrImagePull" | "CreateContainerConfigError"),
                message: format!(": {r}{msg}"),
            });
        }
        if let Some(t) = state.and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            let msg = t
                .message
                .as_deref()
                .map(|m| format!(": {}", m.trim()))
                .unwrap_or_default();
            return Some(SetupFailure {
                container: cs.name.clone(),
                exited: true,
                hopeless: true,
                message: format!(" exited with code {}{msg}", t.exit_code),
            });
        }
    }
    None
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
