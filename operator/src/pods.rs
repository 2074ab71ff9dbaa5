//! Pure builders for everything a LoadTest owns: the plan ConfigMap, the
//! agent-token Secret, N runner pods, the provisioning Job and the report
//! ConfigMap. No API calls here, so every field is unit-testable.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        batch::v1::{Job, JobSpec},
        core::v1::{
            ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction, Pod,
            PodSpec, PodTemplateSpec, Probe, Secret, SecretVolumeSource, SecurityContext, Volume,
            VolumeMount,
        },
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use kube::{Resource, ResourceExt};

use crate::crd::LoadTest;

pub const AGENT_PORT: i32 = 9090;
pub const LABEL_TEST: &str = "barrage.dev/loadtest";
pub const LABEL_INDEX: &str = "barrage.dev/runner-index";
pub const LABEL_ROLE: &str = "barrage.dev/role";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "barrage-operator");
const PLAN_DIR: &str = "/etc/barrage/plan";
const TOKEN_DIR: &str = "/etc/barrage/token";

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
pub fn runner_name(lt: &LoadTest, index: u32) -> String {
    format!("{}-runner-{index}", lt.name_any())
}

/// Selects every runner pod of `lt`.
pub fn runner_selector(lt: &LoadTest) -> String {
    format!("{LABEL_TEST}={},{LABEL_ROLE}=runner", lt.name_any())
}

/// Metadata shared by every owned object: namespace, the LoadTest as
/// controlling owner (so deleting it deletes them), and our labels.
fn owned_meta(lt: &LoadTest, name: String, role: &str) -> ObjectMeta {
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

/// The plan as the runners read it: the spec minus the cluster-only fields.
pub fn plan_config_map(lt: &LoadTest) -> ConfigMap {
    let yaml = serde_yaml_ng::to_string(&lt.spec.plan).expect("plans serialize");
    ConfigMap {
        metadata: owned_meta(lt, plan_name(lt), "plan"),
        data: Some(BTreeMap::from([("plan.yaml".to_string(), yaml)])),
        ..Default::default()
    }
}

pub fn token_secret(lt: &LoadTest, token: &str) -> Secret {
    Secret {
        metadata: owned_meta(lt, token_name(lt), "token"),
        string_data: Some(BTreeMap::from([("token".to_string(), token.to_string())])),
        type_: Some("Opaque".into()),
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

fn env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    }
}

/// Runner pods run unprivileged: they only send HTTP and serve their agent.
fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(65532),
        capabilities: Some(k8s_openapi::api::core::v1::Capabilities {
            drop: Some(vec!["ALL".into()]),
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
    let container = Container {
        name: "runner".into(),
        image: Some(r.image.clone().unwrap_or_else(|| defaults.image.clone())),
        image_pull_policy: Some(
            r.image_pull_policy
                .clone()
                .unwrap_or_else(|| defaults.pull_policy.clone()),
        ),
        args: Some(vec![
            "agent".into(),
            "--plan".into(),
            format!("{PLAN_DIR}/plan.yaml"),
            "--token-file".into(),
            format!("{TOKEN_DIR}/token"),
            "--listen".into(),
            format!("0.0.0.0:{AGENT_PORT}"),
        ]),
        env: Some(envs),
        env_from: (!r.env_from.is_empty()).then(|| r.env_from.clone()),
        ports: Some(vec![ContainerPort {
            name: Some("agent".into()),
            container_port: AGENT_PORT,
            ..Default::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".into()),
                port: IntOrString::Int(AGENT_PORT),
                ..Default::default()
            }),
            period_seconds: Some(1),
            ..Default::default()
        }),
        resources: r.resources.clone().or_else(|| defaults.resources.clone()),
        security_context: Some(restricted()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "plan".into(),
                mount_path: PLAN_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "token".into(),
                mount_path: TOKEN_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    Pod {
        metadata: meta,
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("Never".into()),
            // Runners need no API access; the token would only be a risk.
            automount_service_account_token: Some(false),
            service_account_name: r.service_account_name.clone(),
            node_selector: (!r.node_selector.is_empty()).then(|| r.node_selector.clone()),
            tolerations: (!r.tolerations.is_empty()).then(|| r.tolerations.clone()),
            affinity: r.affinity.clone(),
            image_pull_secrets: (!r.image_pull_secrets.is_empty())
                .then(|| r.image_pull_secrets.clone()),
            volumes: Some(vec![
                Volume {
                    name: "plan".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: plan_name(lt),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "token".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(token_name(lt)),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The provisioning Job: the user's image and command, run once.
pub fn setup_job(lt: &LoadTest) -> Option<Job> {
    let s = lt.spec.setup.as_ref()?;
    let meta = owned_meta(lt, setup_name(lt), "setup");
    let container = Container {
        name: "setup".into(),
        image: Some(s.image.clone()),
        image_pull_policy: lt.spec.runner.image_pull_policy.clone(),
        command: (!s.command.is_empty()).then(|| s.command.clone()),
        args: (!s.args.is_empty()).then(|| s.args.clone()),
        env: (!s.env.is_empty()).then(|| s.env.clone()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    Some(Job {
        metadata: meta.clone(),
        spec: Some(JobSpec {
            backoff_limit: Some(s.backoff_limit.unwrap_or(0)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: meta.labels.clone(),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    restart_policy: Some("Never".into()),
                    image_pull_secrets: (!lt.spec.runner.image_pull_secrets.is_empty())
                        .then(|| lt.spec.runner.image_pull_secrets.clone()),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::LoadTestSpec;

    fn defaults() -> RunnerDefaults {
        let resources = serde_json::from_str(r#"{"limits": {"cpu": "500m"}}"#).unwrap();
        RunnerDefaults {
            image: "default/runner:dev".into(),
            pull_policy: "IfNotPresent".into(),
            resources: Some(resources),
        }
    }

    pub(crate) fn lt(yaml_spec: &str) -> LoadTest {
        let spec: LoadTestSpec = serde_yaml_ng::from_str(yaml_spec).unwrap();
        let mut lt = LoadTest::new("smoke", spec);
        lt.metadata.namespace = Some("ns1".into());
        lt.metadata.uid = Some("uid-1".into());
        lt
    }

    const SPEC: &str = "runners: 3\ntarget: {baseUrl: 'http://10.0.0.1:8080'}\nload: {users: 6, duration: 10s}\nrequests: [{name: a, path: /}]\nrunner:\n  image: reg/runner:1\n  nodeSelector: {pool: load}\n  env: [{name: API_KEY, value: k}]\n  labels: {team: sre}\n  tolerations: [{key: dedicated, operator: Exists}]";

    #[test]
    fn runner_pods_know_their_slot_and_are_owned() {
        let t = lt(SPEC);
        let p = runner_pod(&t, 2, &defaults());
        assert_eq!(p.metadata.name.as_deref(), Some("smoke-runner-2"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("ns1"));
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("LoadTest", "smoke", Some(true))
        );
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_INDEX], "2");
        assert_eq!(labels["team"], "sre");
        let spec = p.spec.unwrap();
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("reg/runner:1"));
        let env: Vec<_> = c
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
            .collect();
        assert!(
            env.contains(&("BARRAGE_RUNNER_INDEX", "2"))
                && env.contains(&("BARRAGE_RUNNER_COUNT", "3"))
                && env.contains(&("API_KEY", "k"))
        );
        assert_eq!(spec.node_selector.unwrap()["pool"], "load");
        assert_eq!(
            spec.tolerations.unwrap()[0].key.as_deref(),
            Some("dedicated")
        );
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert!(c.args.as_ref().unwrap().contains(&"agent".to_string()));
    }

    #[test]
    fn the_default_image_applies_when_the_spec_has_none() {
        let t = lt(
            "target: {baseUrl: 'http://10.0.0.1'}\nload: {users: 1, duration: 1s}\nrequests: [{name: a, path: /}]",
        );
        assert_eq!(t.spec.runners, 1);
        let p = runner_pod(&t, 0, &defaults());
        let c = &p.spec.unwrap().containers[0];
        assert_eq!(c.image.as_deref(), Some("default/runner:dev"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        let cpu = &c.resources.as_ref().unwrap().limits.as_ref().unwrap()["cpu"];
        assert_eq!(cpu.0, "500m");
        assert!(setup_job(&t).is_none());
    }

    #[test]
    fn the_plan_config_map_holds_a_plan_the_runner_reads_back() {
        let t = lt(SPEC);
        let cm = plan_config_map(&t);
        let yaml = &cm.data.unwrap()["plan.yaml"];
        let back = barrage_runner::planfile::from_str(yaml, Default::default()).unwrap();
        assert_eq!(back.plan, t.spec.plan);
    }

    #[test]
    fn setup_job_runs_the_users_command_once() {
        let t = lt(&format!(
            "{SPEC}\nsetup: {{image: reg/seed:1, command: [seed, --users, '1000']}}"
        ));
        let j = setup_job(&t).unwrap();
        let spec = j.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let c = &spec.template.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.command.as_ref().unwrap()[0], "seed");
        assert_eq!(j.metadata.name.as_deref(), Some("smoke-setup"));
    }
}
