//! The Pod Security Standards' "restricted" profile as a pure check, so unit
//! tests can hold every pod the operator builds to it (a namespace labelled
//! `pod-security.kubernetes.io/enforce: restricted` would refuse the pod).
//! <https://kubernetes.io/docs/concepts/security/pod-security-standards/>

use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec, SeccompProfile, SecurityContext};

/// Volume types the restricted profile allows.
const ALLOWED_VOLUMES: &str =
    "configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret";

/// Every rule of the restricted profile `spec` breaks, one line each naming
/// the container or volume; empty when the pod would be admitted.
pub fn restricted_violations(spec: &PodSpec) -> Vec<String> {
    let mut out = Vec::new();
    for (field, on) in [
        ("hostNetwork", spec.host_network),
        ("hostPID", spec.host_pid),
        ("hostIPC", spec.host_ipc),
    ] {
        if on == Some(true) {
            out.push(format!("{field} is true"));
        }
    }
    for v in spec.volumes.iter().flatten() {
        let allowed = v.config_map.is_some()
            || v.csi.is_some()
            || v.downward_api.is_some()
            || v.empty_dir.is_some()
            || v.ephemeral.is_some()
            || v.persistent_volume_claim.is_some()
            || v.projected.is_some()
            || v.secret.is_some();
        if !allowed || v.host_path.is_some() {
            out.push(format!(
                "volume {}: only {ALLOWED_VOLUMES} are allowed",
                v.name
            ));
        }
    }
    let pod = spec.security_context.clone().unwrap_or_default();
    check_pod_level(&pod, &mut out);
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for c in containers {
        let sc = c.security_context.clone().unwrap_or_default();
        check_container(&c.name, &sc, &pod, &mut out);
        for p in c.ports.iter().flatten() {
            if p.host_port.is_some_and(|h| h != 0) {
                out.push(format!("container {}: hostPort {:?}", c.name, p.host_port));
            }
        }
    }
    out
}

fn check_pod_level(pod: &PodSecurityContext, out: &mut Vec<String>) {
    if pod.run_as_user == Some(0) {
        out.push("pod: runAsUser is 0".into());
    }
    if let Some(p) = &pod.seccomp_profile
        && !seccomp_ok(p)
    {
        out.push(format!("pod: seccompProfile {} is not allowed", p.type_));
    }
}

fn check_container(
    name: &str,
    sc: &SecurityContext,
    pod: &PodSecurityContext,
    out: &mut Vec<String>,
) {
    let mut bad = |rule: &str| out.push(format!("container {name}: {rule}"));
    if sc.privileged == Some(true) {
        bad("privileged is true");
    }
    if sc.allow_privilege_escalation != Some(false) {
        bad("allowPrivilegeEscalation must be false");
    }
    // The container's setting wins over the pod's.
    if sc.run_as_non_root.or(pod.run_as_non_root) != Some(true) {
        bad("runAsNonRoot must be true (on the container or the pod)");
    }
    if sc.run_as_user == Some(0) {
        bad("runAsUser is 0");
    }
    match sc.seccomp_profile.as_ref().or(pod.seccomp_profile.as_ref()) {
        Some(p) if seccomp_ok(p) => {}
        _ => {
            bad("seccompProfile must be RuntimeDefault or Localhost (on the container or the pod)")
        }
    }
    let caps = sc.capabilities.clone().unwrap_or_default();
    if !caps.drop.iter().flatten().any(|c| c == "ALL") {
        bad("capabilities must drop ALL");
    }
    for c in caps.add.iter().flatten() {
        if c != "NET_BIND_SERVICE" {
            bad(&format!(
                "capability {c} added (only NET_BIND_SERVICE may be)"
            ));
        }
    }
}

fn seccomp_ok(p: &SeccompProfile) -> bool {
    matches!(p.type_.as_str(), "RuntimeDefault" | "Localhost")
}

/// `seccompProfile: {type: RuntimeDefault}`: the container runtime's default
/// syscall filter, which the restricted profile requires.
pub fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

/// The pod-level part every operator-built pod carries: the seccomp default
/// for any container that does not set its own.
pub fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> PodSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const OK: &str = "containers:\n- name: c\n  securityContext: {allowPrivilegeEscalation: false, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}\nvolumes: [{name: v, emptyDir: {}}]";

    #[test]
    fn a_restricted_pod_passes_and_each_rule_is_checked() {
        assert_eq!(restricted_violations(&pod(OK)), Vec::<String>::new());
        // Pod-level runAsNonRoot and seccomp count for containers without them.
        let pod_level = "securityContext: {runAsNonRoot: true, seccompProfile: {type: Localhost, localhostProfile: p.json}}\ncontainers:\n- name: c\n  securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}";
        assert_eq!(restricted_violations(&pod(pod_level)), Vec::<String>::new());
        for (change, rule) in [
            ("runAsNonRoot: true", "runAsNonRoot: false"),
            (
                "seccompProfile: {type: RuntimeDefault}",
                "seccompProfile: {type: Unconfined}",
            ),
            (
                "allowPrivilegeEscalation: false",
                "privileged: true, allowPrivilegeEscalation: false",
            ),
            ("allowPrivilegeEscalation: false, ", ""),
            ("drop: [ALL]", "drop: [NET_RAW]"),
            ("add: [NET_BIND_SERVICE]", "add: [SYS_ADMIN]"),
            ("runAsNonRoot: true", "runAsNonRoot: true, runAsUser: 0"),
            ("emptyDir: {}", "hostPath: {path: /}"),
            (
                "- name: c\n",
                "- name: c\n  ports: [{containerPort: 80, hostPort: 80}]\n",
            ),
            ("containers:", "hostNetwork: true\ncontainers:"),
            ("containers:", "hostPID: true\ncontainers:"),
            ("containers:", "hostIPC: true\ncontainers:"),
        ] {
            let yaml = OK.replacen(change, rule, 1);
            assert_ne!(yaml, OK, "{change}");
            let v = restricted_violations(&pod(&yaml));
            assert!(!v.is_empty(), "{rule:?} passed");
        }
    }
}
