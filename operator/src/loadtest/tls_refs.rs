//! Pending's check, before any pod exists, that every Secret and ConfigMap
//! key `spec.target.tls` references is there and holds PEM of the right
//! kind: a runner pod would otherwise hang in ContainerCreating on a missing
//! Secret, or fail only once started. The values are read to be parsed and
//! dropped; they go into no status, event or log.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::context::Context;
use crate::{
    crd::LoadTest,
    error::Result,
    target_tls::{self, Part, Source},
};

/// Why the test cannot run (the condition reason and the message naming
/// the field, the object and the key), or None when every reference holds.
/// An error from the API server is returned as is.
pub async fn check(lt: &LoadTest, ctx: &Context) -> Result<Option<(&'static str, String)>> {
    let Some(tls) = &lt.spec.plan.target.tls else {
        return Ok(None);
    };
    let mut values = Vec::new();
    for r in target_tls::refs(tls) {
        let found = match r.source {
            Source::Secret(name) => ctx
                .ns_api::<Secret>(lt)
                .get_opt(name)
                .await?
                .map(|s| s.data.unwrap_or_default().remove(r.key).map(|b| b.0)),
            Source::ConfigMap(name) => ctx.ns_api::<ConfigMap>(lt).get_opt(name).await?.map(|c| {
                let text = c.data.unwrap_or_default().remove(r.key);
                text.map(String::into_bytes)
                    .or_else(|| c.binary_data.unwrap_or_default().remove(r.key).map(|b| b.0))
            }),
        };
        let Some(value) = found else {
            return Ok(Some((REASON_NOT_FOUND, target_tls::not_found(&r))));
        };
        let reason = if value.is_none() {
            REASON_NOT_FOUND
        } else {
            REASON_INVALID
        };
        if let Err(msg) = target_tls::check(&r, value.as_deref()) {
            return Ok(Some((reason, msg)));
        }
        values.push((r, value.unwrap_or_default()));
    }
    let of = |part| values.iter().find(|(r, _)| r.part == part);
    if let (Some((cr, c)), Some((kr, k))) = (of(Part::Cert), of(Part::Key))
        && let Err(msg) = target_tls::check_pair((cr, c), (kr, k))
    {
        return Ok(Some((REASON_INVALID, msg)));
    }
    Ok(None)
}

/// A referenced object or key is missing.
pub const REASON_NOT_FOUND: &str = "TargetTlsNotFound";
/// A referenced key does not hold what it should (PEM certificates, a key).
pub const REASON_INVALID: &str = "TargetTlsInvalid";
