//! Pure rules of `spec.output.prometheusRemoteWrite`: which receiver a
//! LoadTest pushes to, what its spec may say (every error names the
//! field), the labels every series carries and the pusher's options.

use std::{collections::BTreeMap, time::Duration};

use barrage_runner::{
    duration::HumanDuration,
    plan::ValueFrom,
    remote_write::{Endpoint, HistogramMode, Labels, Options},
};
use kube::ResourceExt;
use reqwest::header::{HeaderName, HeaderValue};

use crate::{
    crd::{LoadTest, RemoteWrite, SecretKey},
    error::{Error, Result},
    object_refs::value_from,
    schedule::runs::{ANN_SCHEDULED, LABEL_SLT},
};

/// The spec field every message names.
pub const FIELD: &str = "spec.output.prometheusRemoteWrite";
/// Pushes less often than this would load a receiver for little gain.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// One push's deadline: a slow receiver is given up on (and retried by the
/// pusher) rather than waited for.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
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

/// Where a LoadTest's series go.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Choice<'a> {
    /// Nowhere: no receiver, or `disabled: true`.
    None,
    /// The receiver its spec names.
    Spec(&'a RemoteWrite),
    /// The operator's cluster-wide default.
    ClusterDefault,
}

/// The spec's own receiver wins; `disabled: true` opts out of the default.
pub fn choose(rw: Option<&RemoteWrite>, has_default: bool) -> Choice<'_> {
    match rw {
        Some(rw) if rw.disabled => Choice::None,
        Some(rw) => Choice::Spec(rw),
        None if has_default => Choice::ClusterDefault,
        None => Choice::None,
    }
}

/// The LoadTest's `spec.output.prometheusRemoteWrite`, if any.
pub fn of(lt: &LoadTest) -> Option<&RemoteWrite> {
    lt.spec
        .output
        .as_ref()
        .and_then(|o| o.prometheus_remote_write.as_ref())
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

fn f(name: &str) -> String {
    format!("{FIELD}.{name}")
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

/// `url` without userinfo, query or fragment, as status, events and logs
/// show it (`Endpoint::redacted_url`).
pub fn redacted(url: &str) -> String {
    Endpoint {
        url: url.to_string(),
        headers: Vec::new(),
        tls: None,
        timeout: PUSH_TIMEOUT,
    }
    .redacted_url()
}

pub fn options(interval: Option<HumanDuration>, histograms: Option<HistogramMode>) -> Options {
    Options {
        interval: interval.map_or(DEFAULT_INTERVAL, |d| d.0),
        histograms: histograms.unwrap_or_default(),
        continuing: false,
    }
}

/// The labels every series of `lt` carries: `namespace` and `loadtest`,
/// and for a run of a ScheduledLoadTest `scheduledloadtest` and `run`, the
/// instant it was scheduled for (RFC 3339, UTC, as its
/// `barrage.dev/scheduled-at` annotation; the LoadTest's name when that is
/// missing), so runs line up by schedule, not by the name's suffix.
pub fn labels(lt: &LoadTest) -> Labels {
    let name = lt.name_any();
    let mut l = vec![
        ("namespace".to_string(), lt.namespace().unwrap_or_default()),
        ("loadtest".to_string(), name.clone()),
    ];
    if let Some(slt) = lt.labels().get(LABEL_SLT) {
        let run = lt.annotations().get(ANN_SCHEDULED).cloned().unwrap_or(name);
        l.push(("scheduledloadtest".into(), slt.clone()));
        l.push(("run".into(), run));
    }
    Labels(l)
}
