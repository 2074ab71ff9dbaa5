//! Pure builders for provisioning: the records Secret, the setup pod's
//! ServiceAccount with a Role that reaches that one Secret, and the Job.
//!
//! The Job's pod runs the setup as an init container (the built-in steps
//! through `barrage-runner setup`, or the user's image) writing JSON lines
//! to an emptyDir; then the operator image publishes them into the Secret.
//! RBAC cannot restrict `create` by name, so the operator creates the empty
//! Secret itself and the setup pod may only `get` and `patch` it.

use std::time::Duration;

use k8s_openapi::api::{
    batch::v1::{Job, JobSpec},
    core::v1::{
        ConfigMapProjection, ConfigMapVolumeSource, Container, DownwardAPIProjection,
        DownwardAPIVolumeFile, EmptyDirVolumeSource, KeyToPath, ObjectFieldSelector, PodSpec,
        PodTemplateSpec, ProjectedVolumeSource, ResourceRequirements, Secret, ServiceAccount,
        ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
    },
    rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;

use crate::{
    crd::LoadTest,
    pods::{
        self, PLAN_DIR, RECORDS_KEY, RunnerDefaults, env, owned_meta, read_only_mount,
        records_name, restricted, setup_name,
    },
    target_tls,
};

/// Beyond `timeouts.setup` (the setup's own work), for the Job's pod to be
/// scheduled and pulled, and to publish. The setup stops itself at the
/// timeout and says which users did not finish; the Job's deadline and the
/// operator's wait come after that, so its message is the one shown.
pub const JOB_MARGIN: Duration = Duration::from_secs(60);

/// Where the setup writes records and the publisher reads them.
const OUT_DIR: &str = "/barrage/records";
/// Records annotations the publisher sets on the Secret.
pub const ANN_COUNT: &str = "barrage.dev/records";
pub const ANN_BYTES: &str = "barrage.dev/records-bytes";

/// The empty records Secret, created by the operator so that the setup pod
/// needs no `create` right.
pub fn records_secret(lt: &LoadTest) -> Secret {
    Secret {
        metadata: owned_meta(lt, records_name(&lt.name_any()), "records"),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

pub fn service_account(lt: &LoadTest) -> ServiceAccount {
    ServiceAccount {
        metadata: owned_meta(lt, setup_name(lt), "setup"),
        ..Default::default()
    }
}

/// Read and patch this LoadTest's records Secret, and nothing else.
pub fn role(lt: &LoadTest) -> Role {
    Role {
        metadata: owned_meta(lt, setup_name(lt), "setup"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            resource_names: Some(vec![records_name(&lt.name_any())]),
            verbs: vec!["get".into(), "patch".into()],
            ..Default::default()
        }]),
    }
}

pub fn role_binding(lt: &LoadTest) -> RoleBinding {
    RoleBinding {
        metadata: owned_meta(lt, setup_name(lt), "setup"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: setup_name(lt),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: setup_name(lt),
            namespace: lt.namespace(),
            ..Default::default()
        }]),
    }
}

/// The provisioning Job; None without `spec.setup`.
pub fn job(lt: &LoadTest, defaults: &RunnerDefaults, timeout: Duration) -> Option<Job> {
    let s = lt.spec.setup.as_ref()?;
    let r = &lt.spec.runner;
    // Namespaces with a ResourceQuota admit no pod without them.
    let resources = s
        .resources
        .clone()
        .or_else(|| r.resources.clone())
        .or_else(|| defaults.resources.clone());
    let out = format!("{OUT_DIR}/{RECORDS_KEY}");
    let out_mount = VolumeMount {
        name: "records".into(),
        mount_path: OUT_DIR.into(),
        ..Default::default()
    };
    let mut volumes = vec![Volume {
        name: "records".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }];
    // The setup talks to the target too: it gets `target.tls`'s files.
    let mut setup_mounts = vec![out_mount.clone()];
    if let Some((v, m)) = target_tls::volume_and_mount(&lt.spec.plan) {
        volumes.push(v);
        setup_mounts.push(m);
    }
    let setup = match &s.image {
        Some(image) => {
            let mut envs = vec![env("BARRAGE_RECORDS_FILE", out.clone())];
            envs.extend(s.env.iter().cloned());
            Container {
                name: "setup".into(),
                image: Some(image.clone()),
                image_pull_policy: r.image_pull_policy.clone(),
                command: (!s.command.is_empty()).then(|| s.command.clone()),
                args: (!s.args.is_empty()).then(|| s.args.clone()),
                env: Some(envs),
                volume_mounts: Some(setup_mounts),
                resources: resources.clone(),
                security_context: Some(
                    s.security_context
                        .clone()
                        .unwrap_or_else(pods::custom_setup_restricted),
                ),
                termination_message_policy: Some("FallbackToLogsOnError".into()),
                ..Default::default()
            }
        }
        None => {
            volumes.push(Volume {
                name: "plan".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: pods::plan_name(lt),
                    ..Default::default()
                }),
                ..Default::default()
            });
            Container {
                name: "setup".into(),
                image: Some(defaults.image_for(r)),
                image_pull_policy: Some(defaults.pull_policy_for(r)),
                args: Some(vec![
                    "setup".into(),
                    format!("{PLAN_DIR}/setup.yaml"),
                    "--out".into(),
                    out.clone(),
                    // The Job's deadline has a margin beyond this, so the
                    // setup says which users did not finish before the Job
                    // is killed.
                    "--timeout".into(),
                    format!("{}ms", timeout.as_millis()),
                    "--message-file".into(),
                    "/dev/termination-log".into(),
                ]),
                env: (!s.env.is_empty()).then(|| s.env.clone()),
                volume_mounts: Some(
                    [setup_mounts, vec![read_only_mount("plan", PLAN_DIR)]].concat(),
                ),
                resources: resources.clone(),
                security_context: Some(restricted()),
                termination_message_policy: Some("FallbackToLogsOnError".into()),
                ..Default::default()
            }
        }
    };
    let mut publish_args = vec![
        "publish-records".into(),
        "--file".into(),
        out,
        "--secret".into(),
        records_name(&lt.name_any()),
        "--namespace".into(),
        lt.namespace().unwrap_or_default(),
    ];
    // A custom setup may provision server state without records.
    if s.image.is_some() && lt.spec.plan.data.is_none() {
        publish_args.push("--optional".into());
    }
    volumes.push(api_token_volume());
    let publish = Container {
        name: "publish".into(),
        image: Some(defaults.operator_image.clone()),
        image_pull_policy: Some(defaults.pull_policy.clone()),
        args: Some(publish_args),
        volume_mounts: Some(vec![
            VolumeMount {
                read_only: Some(true),
                ..out_mount
            },
            read_only_mount("api-token", TOKEN_DIR),
        ]),
        resources: Some(publisher_resources()),
        security_context: Some(restricted()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    let meta = owned_meta(lt, setup_name(lt), "setup");
    Some(Job {
        metadata: meta.clone(),
        spec: Some(JobSpec {
            backoff_limit: Some(s.backoff_limit.unwrap_or(0)),
            // The Job stops itself too, so a stuck setup never outlives the
            // LoadTest's verdict; the margin lets the pod start and publish.
            active_deadline_seconds: Some((timeout + JOB_MARGIN).as_secs() as i64),
            template: PodTemplateSpec {
                metadata: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    labels: meta.labels.clone(),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    init_containers: Some(vec![setup]),
                    containers: vec![publish],
                    restart_policy: Some("Never".into()),
                    service_account_name: Some(setup_name(lt)),
                    // Only the publisher gets the API token (mounted below),
                    // not the setup, which runs the user's image or talks to
                    // the target.
                    automount_service_account_token: Some(false),
                    node_selector: (!r.node_selector.is_empty()).then(|| r.node_selector.clone()),
                    tolerations: (!r.tolerations.is_empty()).then(|| r.tolerations.clone()),
                    image_pull_secrets: (!r.image_pull_secrets.is_empty())
                        .then(|| r.image_pull_secrets.clone()),
                    volumes: Some(volumes),
                    // The seccomp default also covers a custom container whose
                    // `setup.securityContext` does not set its own.
                    security_context: Some(target_tls::pod_security(
                        &lt.spec.plan,
                        crate::pss::pod_security_context(),
                    )),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The publisher reads at most 1 MiB of records and makes one API call.
fn publisher_resources() -> ResourceRequirements {
    let q = |cpu: &str, mem: &str| {
        std::collections::BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(mem.into())),
        ])
    };
    ResourceRequirements {
        requests: Some(q("10m", "32Mi")),
        limits: Some(q("500m", "128Mi")),
        ..Default::default()
    }
}

/// Where Kubernetes clients look for in-cluster credentials.
const TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What the kubelet would mount with `automountServiceAccountToken`: a
/// bound token, the cluster's CA and the namespace, for one container only.
fn api_token_volume() -> Volume {
    Volume {
        name: "api-token".into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(3600),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                field_path: "metadata.namespace".into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The record count the publisher left on the Secret, if it has published.
pub fn published_count(secret: &Secret) -> Option<u64> {
    secret
        .annotations()
        .get(ANN_COUNT)
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::tests::{defaults, lt};

    const SPEC: &str = "target: {baseUrl: 'http://10.0.0.1:8080'}\nload: {users: 2, duration: 10s}\nrequests: [{name: a, path: /}]";

    #[test]
    fn the_setup_pod_may_get_and_patch_its_records_secret_only() {
        let t = lt(&format!("{SPEC}\nsetup: {{image: reg/seed:1}}"));
        let rules = role(&t).rules.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(&["secrets".to_string()][..])
        );
        assert_eq!(
            rules[0].resource_names.as_deref(),
            Some(&["smoke-records".to_string()][..])
        );
        assert_eq!(rules[0].verbs, ["get", "patch"]);
        let rb = role_binding(&t);
        assert_eq!(rb.role_ref.name, "smoke-setup");
        let sub = &rb.subjects.unwrap()[0];
        assert_eq!(
            (sub.kind.as_str(), sub.name.as_str()),
            ("ServiceAccount", "smoke-setup")
        );
        assert_eq!(sub.namespace.as_deref(), Some("ns1"));
        // Everything is owned by the LoadTest, so it goes when the test goes.
        for owner in [
            records_secret(&t).metadata.owner_references,
            service_account(&t).metadata.owner_references,
            role(&t).metadata.owner_references,
        ] {
            assert_eq!(owner.unwrap()[0].name, "smoke");
        }
    }

    #[test]
    fn a_custom_setup_runs_the_users_image_then_publishes() {
        let t = lt(&format!(
            "{SPEC}\nsetup: {{image: reg/seed:1, command: [seed, --users, '1000'], backoffLimit: 2, resources: {{limits: {{cpu: '2'}}}}}}"
        ));
        let j = job(&t, &defaults(), Duration::from_secs(90)).unwrap();
        assert_eq!(j.metadata.name.as_deref(), Some("smoke-setup"));
        let spec = j.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(2));
        assert_eq!(spec.active_deadline_seconds, Some(150));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("smoke-setup"));
        // The API token reaches the publisher only, never the user's image.
        assert_eq!(pod.automount_service_account_token, Some(false));
        let mounts = |c: &Container| -> Vec<String> {
            c.volume_mounts
                .iter()
                .flatten()
                .map(|m| m.name.clone())
                .collect()
        };
        assert!(mounts(&pod.containers[0]).contains(&"api-token".to_string()));
        assert!(
            !mounts(&pod.init_containers.as_ref().unwrap()[0]).contains(&"api-token".to_string())
        );
        let init = &pod.init_containers.unwrap()[0];
        assert_eq!(init.image.as_deref(), Some("reg/seed:1"));
        assert_eq!(init.command.as_ref().unwrap()[0], "seed");
        let limits = init.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["cpu"].0, "2");
        let env = init.env.as_ref().unwrap();
        assert_eq!(env[0].name, "BARRAGE_RECORDS_FILE");
        assert_eq!(
            env[0].value.as_deref(),
            Some("/barrage/records/records.jsonl")
        );
        let publish = &pod.containers[0];
        assert_eq!(publish.image.as_deref(), Some("default/operator:dev"));
        let args = publish.args.as_ref().unwrap();
        assert_eq!(args[0], "publish-records");
        assert!(args.windows(2).any(|w| w == ["--secret", "smoke-records"]));
        // No data asked for: a setup without records is fine.
        assert!(args.contains(&"--optional".to_string()));
    }

    #[test]
    fn every_setup_pod_passes_the_restricted_profile_unless_loosened() {
        use crate::pss::restricted_violations;
        let pod_of = |setup: &str| {
            let t = lt(&format!("{SPEC}\nsetup: {setup}"));
            let j = job(&t, &defaults(), Duration::from_secs(60)).unwrap();
            j.spec.unwrap().template.spec.unwrap()
        };
        // The built-in setup, a custom image and the publisher in both.
        for setup in [
            "{users: 5, steps: [{name: l, path: /l, capture: {t: {json: /t}}}]}",
            "{image: reg/seed:1}",
        ] {
            assert_eq!(
                restricted_violations(&pod_of(setup)),
                Vec::<String>::new(),
                "{setup}"
            );
        }
        // A custom image keeps a writable root, and runs as a non-root user
        // even when its image names none (the kubelet refuses root images
        // under runAsNonRoot alone: seen in e2e).
        let pod = pod_of("{image: reg/seed:1}");
        let sc = pod.init_containers.unwrap()[0]
            .security_context
            .clone()
            .unwrap();
        assert_eq!(
            (sc.read_only_root_filesystem, sc.run_as_user),
            (None, Some(65532))
        );
        // `setup.securityContext` replaces the default for that container only.
        let pod =
            pod_of("{image: reg/seed:1, securityContext: {runAsUser: 0, runAsNonRoot: false}}");
        let v = restricted_violations(&pod);
        assert!(
            !v.is_empty() && v.iter().all(|l| l.starts_with("container setup:")),
            "{v:?}"
        );
    }

    #[test]
    fn the_builtin_setup_runs_barrage_runner_setup_within_the_timeout() {
        let t = lt(&format!(
            "{SPEC}\nsetup: {{users: 5, steps: [{{name: l, path: /l, capture: {{t: {{json: /t}}}}}}]}}"
        ));
        let j = job(&t, &defaults(), Duration::from_secs(600)).unwrap();
        let pod = j.spec.unwrap().template.spec.unwrap();
        let init = &pod.init_containers.unwrap()[0];
        assert_eq!(init.image.as_deref(), Some("default/runner:dev"));
        let args = init.args.as_ref().unwrap();
        assert_eq!(args[0], "setup");
        assert_eq!(args[1], "/etc/barrage/plan/setup.yaml");
        assert!(args.windows(2).any(|w| w == ["--timeout", "600000ms"]));
        assert!(
            !pod.containers[0]
                .args
                .as_ref()
                .unwrap()
                .contains(&"--optional".to_string())
        );
    }
}
