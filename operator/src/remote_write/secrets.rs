//! What `spec.output.prometheusRemoteWrite` references, read from the
//! LoadTest's namespace: the basic-auth password or the bearer token (a
//! Secret's key), the CA, client certificate and key (`tls.*From`).
//! Pending resolves it once to check it (a missing Secret fails the test
//! with the field named, before any pod exists); Running resolves it again
//! when it starts the pusher (after an operator restart too). The values go
//! into the endpoint's headers and TLS config, never into a message.

use barrage_runner::{plan::ValueFrom, remote_write::Endpoint};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use super::{
    endpoint::{self, Auth, TlsMaterial, Value},
    spec::FIELD,
};
use crate::{crd::RemoteWrite, error::Result, target_tls::Source};

/// A referenced object or key is missing.
pub const REASON_NOT_FOUND: &str = "RemoteWriteNotFound";
/// A referenced key holds what does not fit (not PEM, a key of another
/// certificate, a token an HTTP header cannot carry).
pub const REASON_INVALID: &str = "RemoteWriteInvalid";

/// Why the receiver cannot be used: the condition's reason, and a message
/// naming the field, the object and the key.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// `rw`'s endpoint with what it references read from namespace `ns`, or
/// why it cannot be made. An error from the API server is returned as is.
pub async fn resolve(
    client: &Client,
    ns: &str,
    rw: &RemoteWrite,
) -> Result<std::result::Result<Endpoint, Refusal>> {
    let reader = Reader { client, ns };
    let auth = match (&rw.basic_auth, &rw.bearer_token_from) {
        (Some(b), _) => {
            let field = format!("{FIELD}.basicAuth.passwordFrom");
            match reader
                .secret(&field, &b.password_from.secret, &b.password_from.key)
                .await?
            {
                Ok(password) => Auth::Basic {
                    username: b.username.clone(),
                    password,
                },
                Err(r) => return Ok(Err(r)),
            }
        }
        (None, Some(t)) => {
            let field = format!("{FIELD}.bearerTokenFrom");
            match reader.secret(&field, &t.secret, &t.key).await? {
                Ok(token) => Auth::Bearer(token),
                Err(r) => return Ok(Err(r)),
            }
        }
        (None, None) => Auth::None,
    };
    let tls = match &rw.tls {
        None => None,
        Some(tls) => {
            let mut m = TlsMaterial {
                server_name: tls.server_name.clone(),
                ..Default::default()
            };
            for (name, from, slot) in [
                ("caFrom", &tls.ca_from, &mut m.ca),
                ("certFrom", &tls.cert_from, &mut m.cert),
                ("keyFrom", &tls.key_from, &mut m.key),
            ] {
                let Some(v) = from else { continue };
                match reader.value_from(&format!("{FIELD}.tls.{name}"), v).await? {
                    Ok(value) => *slot = Some(value),
                    Err(r) => return Ok(Err(r)),
                }
            }
            Some(m)
        }
    };
    Ok(
        endpoint::endpoint(&rw.url, &rw.headers, auth, tls).map_err(|message| Refusal {
            reason: REASON_INVALID,
            message,
        }),
    )
}

struct Reader<'a> {
    client: &'a Client,
    ns: &'a str,
}

impl Reader<'_> {
    async fn secret(
        &self,
        field: &str,
        name: &str,
        key: &str,
    ) -> Result<std::result::Result<Value, Refusal>> {
        self.read(field, Source::Secret(name), key).await
    }

    async fn value_from(
        &self,
        field: &str,
        v: &ValueFrom,
    ) -> Result<std::result::Result<Value, Refusal>> {
        // `validate` refused a reference naming neither.
        let source = match (&v.secret, &v.config_map) {
            (Some(s), _) => Source::Secret(s),
            (None, Some(c)) => Source::ConfigMap(c),
            (None, None) => return Ok(Err(not_found(format!("{field}: names no object")))),
        };
        self.read(field, source, &v.key).await
    }

    async fn read(
        &self,
        field: &str,
        source: Source<'_>,
        key: &str,
    ) -> Result<std::result::Result<Value, Refusal>> {
        let found = match source {
            Source::Secret(name) => Api::<Secret>::namespaced(self.client.clone(), self.ns)
                .get_opt(name)
                .await?
                .map(|s| s.data.unwrap_or_default().remove(key).map(|b| b.0)),
            Source::ConfigMap(name) => Api::<ConfigMap>::namespaced(self.client.clone(), self.ns)
                .get_opt(name)
                .await?
                .map(|c| {
                    let text = c.data.unwrap_or_default().remove(key);
                    text.map(String::into_bytes)
                        .or_else(|| c.binary_data.unwrap_or_default().remove(key).map(|b| b.0))
                }),
        };
        Ok(match found {
            None => Err(not_found(format!("{field}: {source} not found"))),
            Some(None) => Err(not_found(format!("{field}: {source} has no key {key:?}"))),
            Some(Some(bytes)) => Ok(Value {
                at: format!("{field}: {source} key {key:?}"),
                bytes,
            }),
        })
    }
}

fn not_found(message: String) -> Refusal {
    Refusal {
        reason: REASON_NOT_FOUND,
        message,
    }
}
