//! `spec.target.tls` in a cluster. Runner pods have no files of the user's,
//! so a LoadTest names the CA, the client certificate and its key by
//! reference (`caFrom`, `certFrom`, `keyFrom`: a key of a Secret or a
//! ConfigMap in its namespace). Each referenced key is mounted read-only, as
//! one file at a fixed path, into every runner pod and the setup pod, and
//! the plan they read names those paths (`caFile`, ...) instead of the
//! references, which the runner refuses.
//!
//! Pure: what is referenced, the volume, the plan as runners read it, and
//! the check of what the API server holds (Pending does the gets, see
//! `loadtest::tls_refs`). Nothing here copies a referenced value anywhere
//! but into its check, whose messages never quote it.

use barrage_runner::plan::{Plan, Target, TargetTls, ValueFrom};
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, KeyToPath, PodSecurityContext, ProjectedVolumeSource, SecretProjection,
    Volume, VolumeMount, VolumeProjection,
};

/// Where the referenced files are mounted.
pub const DIR: &str = "/etc/barrage/target-tls";
pub const VOLUME: &str = "target-tls";
/// The group the mounted files belong to (the pod's `fsGroup`): the key is
/// mode 0440, readable by the runner's user (65532, in this group) and by
/// no other user, and a custom setup image reads it as any user in it.
pub const FS_GROUP: i64 = 65532;

/// One of the three files `target.tls` may take from a reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Ca,
    Cert,
    Key,
}

impl Part {
    /// The spec field that references it.
    pub fn field(self) -> &'static str {
        match self {
            Part::Ca => "spec.target.tls.caFrom",
            Part::Cert => "spec.target.tls.certFrom",
            Part::Key => "spec.target.tls.keyFrom",
        }
    }

    /// The file's name in `DIR`.
    pub fn file(self) -> &'static str {
        match self {
            Part::Ca => "ca.pem",
            Part::Cert => "cert.pem",
            Part::Key => "key.pem",
        }
    }

    pub fn path(self) -> String {
        format!("{DIR}/{}", self.file())
    }

    /// Certificates are public; the key is readable by its owner group only.
    fn mode(self) -> i32 {
        match self {
            Part::Key => 0o440,
            Part::Ca | Part::Cert => 0o444,
        }
    }
}

/// Where a reference points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source<'a> {
    Secret(&'a str),
    ConfigMap(&'a str),
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Secret(n) => write!(f, "secret {n:?}"),
            Source::ConfigMap(n) => write!(f, "configMap {n:?}"),
        }
    }
}

/// One referenced key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ref<'a> {
    pub part: Part,
    pub source: Source<'a>,
    pub key: &'a str,
}

fn source(v: &ValueFrom) -> Option<Source<'_>> {
    match (&v.secret, &v.config_map) {
        (Some(s), _) => Some(Source::Secret(s)),
        (None, Some(c)) => Some(Source::ConfigMap(c)),
        (None, None) => None,
    }
}

/// The references of `tls`, in the order CA, certificate, key (a reference
/// naming neither a Secret nor a ConfigMap is refused by `validate` first).
pub fn refs(tls: &TargetTls) -> Vec<Ref<'_>> {
    [
        (Part::Ca, &tls.ca_from),
        (Part::Cert, &tls.cert_from),
        (Part::Key, &tls.key_from),
    ]
    .into_iter()
    .filter_map(|(part, v)| {
        let v = v.as_ref()?;
        Some(Ref {
            part,
            source: source(v)?,
            key: &v.key,
        })
    })
    .collect()
}

fn plan_refs(plan: &Plan) -> Vec<Ref<'_>> {
    plan.target.tls.as_ref().map(refs).unwrap_or_default()
}

/// The target as runner pods and the setup pod read it: each reference
/// replaced by the path where its key is mounted.
pub fn for_pods(target: &Target) -> Target {
    let mut t = target.clone();
    if let Some(tls) = t.tls.as_mut() {
        let path = |v: &Option<ValueFrom>, p: Part| v.as_ref().map(|_| p.path());
        tls.ca_file = path(&tls.ca_from, Part::Ca);
        tls.cert_file = path(&tls.cert_from, Part::Cert);
        tls.key_file = path(&tls.key_from, Part::Key);
        (tls.ca_from, tls.cert_from, tls.key_from) = (None, None, None);
    }
    t
}

/// The target as the operator checks it with the runner's compiler: the
/// files exist only in the pods, so neither files nor references are given
/// (and `caMode`, which needs a CA, is the default); `validate` checks those
/// itself, the compiler everything else.
pub use barrage_runner::manifest::loadtest::without_files;

/// One projected volume holding every referenced key as its file, only
/// those keys; None without references.
pub fn volume(plan: &Plan) -> Option<Volume> {
    let refs = plan_refs(plan);
    if refs.is_empty() {
        return None;
    }
    let sources = refs
        .iter()
        .map(|r| {
            let items = Some(vec![KeyToPath {
                key: r.key.to_string(),
                path: r.part.file().into(),
                mode: Some(r.part.mode()),
                ..Default::default()
            }]);
            match r.source {
                Source::Secret(name) => VolumeProjection {
                    secret: Some(SecretProjection {
                        name: name.into(),
                        items,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Source::ConfigMap(name) => VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: name.into(),
                        items,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            }
        })
        .collect();
    Some(Volume {
        name: VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The read-only mount of `volume` at `DIR`.
pub fn mount() -> VolumeMount {
    VolumeMount {
        name: VOLUME.into(),
        mount_path: DIR.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

/// What a pod mounting `plan`'s files adds: the volume and its mount, or
/// nothing without references.
pub fn volume_and_mount(plan: &Plan) -> Option<(Volume, VolumeMount)> {
    volume(plan).map(|v| (v, mount()))
}

/// `pod` with the group that may read the mounted key, when there is one.
pub fn pod_security(plan: &Plan, pod: PodSecurityContext) -> PodSecurityContext {
    if plan_refs(plan).is_empty() {
        return pod;
    }
    PodSecurityContext {
        fs_group: Some(FS_GROUP),
        ..pod
    }
}

/// Checks what the API server holds for `r`: `data` is the value of its key
/// (None when the object has no such key). The message names the field, the
/// object and the key, never the value.
pub fn check(r: &Ref<'_>, data: Option<&[u8]>) -> Result<(), String> {
    let at = format!("{}: {} key {:?}", r.part.field(), r.source, r.key);
    let Some(data) = data else {
        return Err(format!(
            "{}: {} has no key {:?}",
            r.part.field(),
            r.source,
            r.key
        ));
    };
    let parsed = match r.part {
        Part::Ca | Part::Cert => barrage_runner::tls::certs_from_pem(data).map(|_| ()),
        Part::Key => barrage_runner::tls::key_from_pem(data).map(|_| ()),
    };
    parsed.map_err(|m| format!("{at} {m}"))
}

/// Checks that `key` (already `check`ed) is the private key of `cert`'s
/// first certificate: a mismatched pair would fail every handshake.
pub fn check_pair(cert: (&Ref<'_>, &[u8]), key: (&Ref<'_>, &[u8])) -> Result<(), String> {
    use barrage_runner::tls::{certs_from_pem, key_from_pem, provider};
    let (Ok(chain), Ok(der)) = (certs_from_pem(cert.1), key_from_pem(key.1)) else {
        return Ok(()); // `check` reports these.
    };
    let at = format!(
        "{}: {} key {:?}",
        key.0.part.field(),
        key.0.source,
        key.0.key
    );
    // rustls's errors name what failed, never the key's bytes; ours say less.
    match rustls::sign::CertifiedKey::from_der(chain, der, &provider()) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(format!(
            "{at} is not the private key of the certificate of {} ({} key {:?})",
            cert.0.part.field(),
            cert.0.source,
            cert.0.key
        )),
        Err(_) => Err(format!(
            "{at} is not a private key this runner can use (RSA, ECDSA P-256/P-384 or Ed25519)"
        )),
    }
}

/// The message of a referenced object that does not exist.
pub fn not_found(r: &Ref<'_>) -> String {
    format!("{}: {} not found", r.part.field(), r.source)
}

#[cfg(test)]
mod tests;
