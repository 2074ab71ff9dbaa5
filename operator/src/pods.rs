//! Pure builders for everything a LoadTest owns: the plan ConfigMap, the
//! agent Secret (token, certificate and key), N runner pods, the provisioning Job and the report
//! ConfigMap. No API calls here, so every field is unit-testable.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, KeyToPath, Pod,
        PodSpec, Probe, Secret, SecretVolumeSource, SecurityContext, TCPSocketAction, Volume,
        VolumeMount,
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use kube::{Resource, ResourceExt};

use barrage_runner::{plan::SetupPlan, tls::pinned::PinnedPem};

use crate::{
    crd::{LoadTest, RunnerPod},
    target_tls,
};

pub const AGENT_PORT: i32 = 9090;
pub const LABEL_TEST: &str = "barrage.dev/loadtest";
pub const LABEL_INDEX: &str = "barrage.dev/runner-index";
pub const LABEL_ROLE: &str = "barrage.dev/role";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "barrage-operator");
pub(crate) const PLAN_DIR: &str = "/etc/barrage/plan";
const TOKEN_DIR: &str = "/etc/barrage/token";
/// The agent Secret's keys: the bearer token, and the certificate and key
/// that the runners' agents serve and the operator presents (both pin it).
pub const TOKEN_KEY: &str = "token";
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";
/// Where runners find the records (the Secret's `records.jsonl`).
pub(crate) const DATA_DIR: &str = "/etc/barrage/data";
pub const RECORDS_KEY: &str = "records.jsonl";

pub fn plan_name(lt: &LoadTest) -> String {
    format!("{}-plan", lt.name_any())
}
pub fn token_name(lt: &LoadTest) -> String {
    format!("{}-token", lt.name_any())
}
pub fn report_name(lt: &LoadTest) -> String {
    format!("{}-report", lt.name_any())
}
pub fn setup_name(lt: &LoadTest) -> String {
    format!("{}-setup", lt.name_any())
}
pub fn teardown_name(lt: &LoadTest) -> String {
    format!("{}-teardown", lt.name_any())
}
pub fn records_name(lt_name: &str) -> String {
    format!("{lt_name}-records")
}
pub fn runner_name(lt: &LoadTest, index: u32) -> String {
    format!("{}-runner-{index}", lt.name_any())
}

/// Selects every runner pod of `lt`.
pub fn runner_selector(lt: &LoadTest) -> String {
    format!("{LABEL_TEST}={},{LABEL_ROLE}=runner", lt.name_any())
}

/// Whether `p` carries the labels of a runner pod of the LoadTest `lt_name`.
pub fn is_runner_of(p: &Pod, lt_name: &str) -> bool {
    let labels = p.labels();
    labels.get(LABEL_TEST).map(String::as_str) == Some(lt_name)
        && labels.get(LABEL_ROLE).map(String::as_str) == Some("runner")
}

/// Metadata shared by every owned object: namespace, the LoadTest as
/// controlling owner (so deleting it deletes them), and our labels.
pub(crate) fn owned_meta(lt: &LoadTest, name: String, role: &str) -> ObjectMeta {
    let labels = BTreeMap::from([
        (LABEL_TEST.to_string(), lt.name_any()),
        (LABEL_ROLE.to_string(), role.to_string()),
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
    ]);
    ObjectMeta {
        name: Some(name),
        namespace: lt.namespace(),
        owner_references: lt.controller_owner_ref(&()).map(|o| vec![o]),
        labels: Some(labels),
        ..Default::default()
    }
}

/// The Secret whose records the runners use, if any: the reused
/// LoadTest's, or this one's when its setup provides records (the built-in
/// steps always do; a custom image does when the spec asks for `data`).
pub fn records_source(lt: &LoadTest) -> Option<String> {
    let spec = &lt.spec;
    if let Some(from) = &spec.data_from {
        return Some(records_name(&from.load_test));
    }
    let setup = spec.setup.as_ref()?;
    (setup.builtin.is_builtin() || spec.plan.data.is_some()).then(|| records_name(&lt.name_any()))
}

/// The plan as the runners read it: the spec minus the cluster-only fields,
/// with the records (if any) as its data file. With built-in setup steps,
/// also the setup as `barrage-runner setup` reads it.
pub fn plan_config_map(lt: &LoadTest) -> ConfigMap {
    let mut plan = lt.spec.plan.clone();
    // `target.tls`'s references become the files mounted from them.
    plan.target = target_tls::for_pods(&plan.target);
    if records_source(lt).is_some() {
        let data = plan.data.get_or_insert_with(Default::default);
        data.file = Some(format!("{DATA_DIR}/{RECORDS_KEY}"));
    }
    let yaml = serde_yaml_ng::to_string(&plan).expect("plans serialize");
    let mut data = BTreeMap::from([("plan.yaml".to_string(), yaml)]);
    if let Some(s) = lt.spec.setup.as_ref().filter(|s| s.builtin.is_builtin()) {
        let sp = SetupPlan {
            target: plan.target.clone(),
            setup: s.builtin.clone(),
        };
        data.insert(
            "setup.yaml".into(),
            serde_yaml_ng::to_string(&sp).expect("setups serialize"),
        );
    }
    ConfigMap {
        metadata: owned_meta(lt, plan_name(lt), "plan"),
        data: Some(data),
        ..Default::default()
    }
}

/// The agent Secret: the token and the agent channel's certificate and key
/// (`agent_tls_data`), mounted into every runner pod.
pub fn token_secret(lt: &LoadTest, token: &str, tls: &PinnedPem) -> Secret {
    let mut data = BTreeMap::from([(TOKEN_KEY.to_string(), token.to_string())]);
    data.extend(agent_tls_data(tls));
    Secret {
        metadata: owned_meta(lt, token_name(lt), "token"),
        string_data: Some(data),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// The certificate and key of the agent channel, as the Secret holds them.
pub fn agent_tls_data(tls: &PinnedPem) -> [(String, String); 2] {
    [
        (TLS_CERT_KEY.to_string(), tls.cert.clone()),
        (TLS_KEY_KEY.to_string(), tls.key.clone()),
    ]
}

/// The runner's command line: the agent, its plan, its token, and TLS with
/// the certificate and key of the mounted agent Secret.
fn agent_args() -> Vec<String> {
    [
        "agent".to_string(),
        "--plan".into(),
        format!("{PLAN_DIR}/plan.yaml"),
        "--token-file".into(),
        format!("{TOKEN_DIR}/{TOKEN_KEY}"),
        "--tls-cert".into(),
        format!("{TOKEN_DIR}/{TLS_CERT_KEY}"),
        "--tls-key".into(),
        format!("{TOKEN_DIR}/{TLS_KEY_KEY}"),
        "--listen".into(),
        format!("0.0.0.0:{AGENT_PORT}"),
    ]
    .into()
}

/// Ready once the agent listens, which it does only after compiling its
/// plan. A TCP check, not an HTTP GET: the agent speaks TLS and completes a
/// handshake only with the operator's certificate, which the kubelet has
/// not.
fn agent_probe() -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(AGENT_PORT),
            ..Default::default()
        }),
        period_seconds: Some(1),
        ..Default::default()
    }
}

pub fn report_config_map(lt: &LoadTest, report_json: String) -> ConfigMap {
    ConfigMap {
        metadata: owned_meta(lt, report_name(lt), "report"),
        data: Some(BTreeMap::from([("report.json".to_string(), report_json)])),
        ..Default::default()
    }
}

pub(crate) fn env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    }
}

/// Runner pods run unprivileged: they only send HTTP and serve their agent.
/// The Pod Security "restricted" profile (`pss`), plus a read-only root and
/// a fixed non-root user.
pub(crate) fn restricted() -> SecurityContext {
    SecurityContext {
        read_only_root_filesystem: Some(true),
        run_as_user: Some(65532),
        ..pss_restricted()
    }
}

/// The default for a custom setup image, whose files we do not know: the
/// "restricted" profile with a writable root, as user 65532. The user must be
/// set: an image without a non-root `USER` (most, ours included) is refused
/// by the kubelet under `runAsNonRoot` alone, and the setup never starts.
pub(crate) fn custom_setup_restricted() -> SecurityContext {
    SecurityContext {
        run_as_user: Some(65532),
        ..pss_restricted()
    }
}

/// Exactly what the "restricted" profile asks of a container, no more.
pub(crate) fn pss_restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        run_as_non_root: Some(true),
        seccomp_profile: Some(crate::pss::runtime_default_seccomp()),
        capabilities: Some(k8s_openapi::api::core::v1::Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn read_only_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

/// A Secret as a volume; with `key`, only that key, as a file of that name.
pub(crate) fn secret_volume(name: &str, secret: String, key: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            items: key.map(|k| {
                vec![KeyToPath {
                    key: k.into(),
                    path: k.into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The operator's defaults for runner pods (from its Helm values).
#[derive(Clone, Debug, Default)]
pub struct RunnerDefaults {
    pub image: String,
    pub pull_policy: String,
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    /// The operator's own image: the setup Job's records publisher.
    pub operator_image: String,
}

impl RunnerDefaults {
    /// The LoadTest's runner image, else ours.
    pub fn image_for(&self, r: &RunnerPod) -> String {
        r.image.clone().unwrap_or_else(|| self.image.clone())
    }

    pub fn pull_policy_for(&self, r: &RunnerPod) -> String {
        r.image_pull_policy
            .clone()
            .unwrap_or_else(|| self.pull_policy.clone())
    }
}

pub fn runner_pod(lt: &LoadTest, index: u32, defaults: &RunnerDefaults) -> Pod {
    let spec = &lt.spec;
    let r = &spec.runner;
    let mut meta = owned_meta(lt, runner_name(lt, index), "runner");
    let labels = meta.labels.get_or_insert_with(Default::default);
    labels.insert(LABEL_INDEX.into(), index.to_string());
    for (k, v) in &r.labels {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if !r.annotations.is_empty() {
        meta.annotations = Some(r.annotations.clone());
    }
    let mut envs = vec![
        env("BARRAGE_RUNNER_INDEX", index.to_string()),
        env("BARRAGE_RUNNER_COUNT", spec.runners.to_string()),
    ];
    envs.extend(r.env.iter().cloned());
    let (mut volumes, mut mounts) = plan_volumes(lt);
    // The agent's token and certificate, after the plan.
    volumes.insert(1, secret_volume("token", token_name(lt), None));
    mounts.insert(1, read_only_mount("token", TOKEN_DIR));
    let container = Container {
        name: "runner".into(),
        image: Some(defaults.image_for(r)),
        image_pull_policy: Some(defaults.pull_policy_for(r)),
        args: Some(agent_args()),
        env: Some(envs),
        env_from: (!r.env_from.is_empty()).then(|| r.env_from.clone()),
        ports: Some(vec![ContainerPort {
            name: Some("agent".into()),
            container_port: AGENT_PORT,
            ..Default::default()
        }]),
        readiness_probe: Some(agent_probe()),
        resources: r.resources.clone().or_else(|| defaults.resources.clone()),
        security_context: Some(restricted()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    Pod {
        metadata: meta,
        spec: Some(runner_pod_spec(lt, container, volumes)),
        ..Default::default()
    }
}

/// What every pod that runs the plan as the runners do mounts (read-only):
/// the plan ConfigMap, the records Secret when the test has records, and
/// the target's TLS files when the plan names them.
pub(crate) fn plan_volumes(lt: &LoadTest) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = vec![Volume {
        name: "plan".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: plan_name(lt),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let mut mounts = vec![read_only_mount("plan", PLAN_DIR)];
    if let Some(records) = records_source(lt) {
        volumes.push(secret_volume("records", records, Some(RECORDS_KEY)));
        mounts.push(read_only_mount("records", DATA_DIR));
    }
    if let Some((v, m)) = target_tls::volume_and_mount(&lt.spec.plan) {
        volumes.push(v);
        mounts.push(m);
    }
    (volumes, mounts)
}

/// A pod spec for `container` placed as `spec.runner` says (service
/// account, node selector, tolerations, affinity, pull secrets), never
/// restarted, without an API token (it talks to the target only; the token
/// would only be a risk), and Pod Security "restricted" with the target's
/// TLS files readable. The runner pods' and the teardown Job's.
pub(crate) fn runner_pod_spec(
    lt: &LoadTest,
    container: Container,
    volumes: Vec<Volume>,
) -> PodSpec {
    let r = &lt.spec.runner;
    PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        service_account_name: r.service_account_name.clone(),
        node_selector: (!r.node_selector.is_empty()).then(|| r.node_selector.clone()),
        tolerations: (!r.tolerations.is_empty()).then(|| r.tolerations.clone()),
        affinity: r.affinity.clone(),
        image_pull_secrets: (!r.image_pull_secrets.is_empty())
            .then(|| r.image_pull_secrets.clone()),
        volumes: Some(volumes),
        security_context: Some(target_tls::pod_security(
            &lt.spec.plan,
            crate::pss::pod_security_context(),
        )),
        ..Default::default()
    }
}

#[cfg(test)]
pub(crate) mod tests;
