//! `spec.output.prometheusRemoteWrite` of a LoadTest: its types (the
//! operator's CRD embeds them) and the pure rules of what it may say, each
//! error naming the field; shared by the operator and `barrage-runner
//! validate`.

use std::{collections::BTreeMap, time::Duration};

use reqwest::header::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::refs::value_from;
use crate::{
    duration::HumanDuration,
    error::{Error, Result},
    plan::ValueFrom,
};

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::invalid(field, message)
}

fn f(name: &str) -> String {
    format!("{FIELD}.{name}")
}

/// The spec field every message names.
pub const FIELD: &str = "spec.output.prometheusRemoteWrite";
/// Pushes less often than this would load a receiver for little gain.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_HEADERS: usize = 32;
pub const MAX_URL: usize = 2048;
pub const MAX_HEADER_VALUE: usize = 4096;

/// Headers the pusher sets itself (the protocol's) or that carry
/// credentials, which come from Secrets only.
const RESERVED: &[&str] = &[
    "authorization",
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "user-agent",
    "x-prometheus-remote-write-version",
];

/// A Prometheus remote-write receiver (Prometheus, Grafana Mimir, Thanos
/// Receive, VictoriaMetrics ...). Credentials only from Secrets in the
/// LoadTest's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteWrite {
    /// `http://` or `https://` URL, e.g. `http://prometheus:9090/api/v1/write`.
    /// Empty with `disabled: true`.
    #[serde(default)]
    #[schemars(transform = no_default)]
    pub url: String,
    /// Push nothing, not even the cluster-wide default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Extra headers (not secret), e.g. `X-Scope-OrgID` for Mimir.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Basic auth: a username and a password from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization: Bearer` with a token from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_from: Option<SecretKey>,
    /// A private CA (`caFrom`) and a client certificate (`certFrom`,
    /// `keyFrom`) for an https receiver, as `target.tls` takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RemoteWriteTls>,
    /// The least time between two pushes. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<HumanDuration>,
    /// `auto` (native histograms, quantile series where refused), `native`
    /// or `quantiles`. Default auto.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<crate::remote_write::HistogramMode>,
}

/// Leaves a field's `default` out of the CRD: Kubernetes 1.20 refuses the CRD
/// that `#[serde(default)]` on a `String` makes (`default: ''`) when it is
/// applied server-side, as Helm does ("must be of type string: null").
fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The basic-auth username (not secret).
    pub username: String,
    pub password_from: SecretKey,
}

/// One key of a Secret in the LoadTest's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKey {
    /// The Secret's name, in the LoadTest's namespace.
    pub secret: String,
    /// The key within the Secret.
    pub key: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteWriteTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_from: Option<crate::plan::ValueFrom>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_from: Option<crate::plan::ValueFrom>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_from: Option<crate::plan::ValueFrom>,
    /// The name checked against the receiver's certificate, if not its host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Checks the spec's receiver (nothing with `disabled: true`).
pub fn validate(rw: &RemoteWrite) -> Result<()> {
    if rw.disabled {
        return Ok(());
    }
    check_url(&f("url"), &rw.url)?;
    check_headers(&f("headers"), &rw.headers)?;
    if let Some(b) = &rw.basic_auth {
        check_username(&f("basicAuth.username"), &b.username)?;
        secret_key(&f("basicAuth.passwordFrom"), &b.password_from)?;
        if rw.bearer_token_from.is_some() {
            return Err(invalid(
                &f("bearerTokenFrom"),
                "give either basicAuth or bearerTokenFrom, not both",
            ));
        }
    }
    if let Some(t) = &rw.bearer_token_from {
        secret_key(&f("bearerTokenFrom"), t)?;
    }
    if let Some(tls) = &rw.tls {
        if !is_https(&rw.url) {
            return Err(invalid(&f("tls"), "applies to an https:// url only"));
        }
        for (field, from) in [
            ("tls.caFrom", &tls.ca_from),
            ("tls.certFrom", &tls.cert_from),
            ("tls.keyFrom", &tls.key_from),
        ] {
            if let Some(v) = from {
                value_from(&f(field), v)?;
            }
        }
        if tls
            .key_from
            .as_ref()
            .is_some_and(|k| k.config_map.is_some())
        {
            return Err(invalid(
                &f("tls.keyFrom.configMap"),
                "a private key is a secret: keep it in a Secret and give keyFrom.secret",
            ));
        }
        check_pair(
            &f("tls.certFrom"),
            tls.cert_from.is_some(),
            &f("tls.keyFrom"),
            tls.key_from.is_some(),
        )?;
        if let Some(n) = &tls.server_name {
            check_server_name(&f("tls.serverName"), n)?;
        }
    }
    check_interval(&f("interval"), rw.interval)
}

/// An `http://` or `https://` URL with a host, without credentials in it.
pub fn check_url(field: &str, url: &str) -> Result<()> {
    if url.trim().is_empty() {
        return Err(invalid(
            field,
            "is empty: give the receiver's URL (e.g. http://prometheus:9090/api/v1/write), or disabled: true",
        ));
    }
    if url.len() > MAX_URL {
        return Err(invalid(
            field,
            format!("is {} characters; at most {MAX_URL}", url.len()),
        ));
    }
    // The parser's message is about the URL's shape; it is not repeated
    // with the URL, which may hold a token in its query.
    let parsed =
        reqwest::Url::parse(url).map_err(|e| invalid(field, format!("is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(
            field,
            format!("{:?} is not http or https", parsed.scheme()),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            field,
            "holds credentials: give basicAuth (its password from a Secret) instead",
        ));
    }
    Ok(())
}

pub fn is_https(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(s, _)| s.eq_ignore_ascii_case("https"))
}

/// Header names HTTP accepts, values without control characters, none the
/// pusher sets itself, none that carries credentials.
pub fn check_headers(field: &str, headers: &BTreeMap<String, String>) -> Result<()> {
    if headers.len() > MAX_HEADERS {
        return Err(invalid(
            field,
            format!("{} headers; at most {MAX_HEADERS}", headers.len()),
        ));
    }
    for (name, value) in headers {
        let at = format!("{field}.{name}");
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(invalid(&at, format!("{name:?} is not an HTTP header name")));
        }
        let lower = name.to_ascii_lowercase();
        if lower == "authorization" {
            return Err(invalid(
                &at,
                "credentials come from Secrets: give basicAuth or bearerTokenFrom",
            ));
        }
        if RESERVED.contains(&lower.as_str()) {
            return Err(invalid(&at, "is set by the remote-write client itself"));
        }
        if value.len() > MAX_HEADER_VALUE {
            return Err(invalid(
                &at,
                format!("is {} bytes; at most {MAX_HEADER_VALUE}", value.len()),
            ));
        }
        if HeaderValue::from_str(value).is_err() {
            return Err(invalid(
                &at,
                "is not a valid header value (control characters or non-ASCII)",
            ));
        }
    }
    Ok(())
}

/// RFC 7617: the user-id of basic auth holds no colon.
pub fn check_username(field: &str, username: &str) -> Result<()> {
    if username.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if username.contains(':') || username.chars().any(char::is_control) {
        return Err(invalid(
            field,
            "holds a ':' or a control character, which basic auth cannot carry",
        ));
    }
    Ok(())
}

fn secret_key(field: &str, k: &SecretKey) -> Result<()> {
    value_from(
        field,
        &ValueFrom {
            secret: Some(k.secret.clone()),
            config_map: None,
            key: k.key.clone(),
        },
    )
}

/// A client certificate goes with its key.
pub fn check_pair(cert_field: &str, cert: bool, key_field: &str, key: bool) -> Result<()> {
    match (cert, key) {
        (true, false) => Err(invalid(
            cert_field,
            format!("needs {key_field}, the client certificate's private key"),
        )),
        (false, true) => Err(invalid(
            key_field,
            format!("needs {cert_field}, the client certificate it is the key of"),
        )),
        _ => Ok(()),
    }
}

pub fn check_server_name(field: &str, name: &str) -> Result<()> {
    match rustls::pki_types::ServerName::try_from(name) {
        Ok(_) => Ok(()),
        Err(_) => Err(invalid(
            field,
            format!("{name:?} is not a DNS name or an IP address"),
        )),
    }
}

pub fn check_interval(field: &str, interval: Option<HumanDuration>) -> Result<()> {
    match interval {
        Some(d) if d.0 < MIN_INTERVAL => Err(invalid(field, "must be at least 1s")),
        _ => Ok(()),
    }
}
