//! `barrage-runner run --out-prometheus URL` and its flags: what a local
//! run needs to push to a receiver (auth headers, a bearer token kept off
//! the command line, a private CA, labels, the histogram mode).

use std::{path::PathBuf, time::Duration};

use super::{Endpoint, HistogramMode, Labels, Options};
use crate::error::{Error, Result};

/// The environment variable a bearer token may come from.
pub const TOKEN_ENV: &str = "BARRAGE_OUT_PROMETHEUS_TOKEN";
/// The environment variable a basic-auth password may come from.
pub const PASSWORD_ENV: &str = "BARRAGE_OUT_PROMETHEUS_PASSWORD";

#[derive(clap::Args, Clone, Debug, Default)]
pub struct Flags {
    /// Push the run's series to this Prometheus remote-write URL while it
    /// runs (e.g. http://prometheus:9090/api/v1/write); see docs/metrics.md.
    #[arg(long, value_name = "URL")]
    pub out_prometheus: Option<String>,
    /// An extra request header, 'Name: value' (repeatable), e.g. a tenant's
    /// 'X-Scope-OrgID: team-a'.
    #[arg(long, value_name = "HEADER", requires = "out_prometheus")]
    pub out_prometheus_header: Vec<String>,
    /// Send 'Authorization: Bearer TOKEN' with the token read from FILE
    /// (or from $BARRAGE_OUT_PROMETHEUS_TOKEN), never from the command line.
    #[arg(long, value_name = "FILE", requires = "out_prometheus")]
    pub out_prometheus_token_file: Option<PathBuf>,
    /// Basic auth as this user, with the password read from
    /// --out-prometheus-password-file (or $BARRAGE_OUT_PROMETHEUS_PASSWORD).
    #[arg(
        long,
        value_name = "USER",
        requires = "out_prometheus",
        conflicts_with = "out_prometheus_token_file"
    )]
    pub out_prometheus_user: Option<String>,
    /// The basic-auth password, read from FILE.
    #[arg(long, value_name = "FILE", requires = "out_prometheus_user")]
    pub out_prometheus_password_file: Option<PathBuf>,
    /// Trust only this CA (PEM) for an https:// receiver.
    #[arg(long, value_name = "FILE", requires = "out_prometheus")]
    pub out_prometheus_ca: Option<PathBuf>,
    /// The `loadtest` label (default: the plan's name, or the file's stem).
    #[arg(long, value_name = "NAME", requires = "out_prometheus")]
    pub out_prometheus_loadtest: Option<String>,
    /// An extra label on every series, NAME=VALUE (repeatable).
    #[arg(long, value_name = "NAME=VALUE", requires = "out_prometheus")]
    pub out_prometheus_label: Vec<String>,
    /// Latency as native histograms, quantile series, or native falling
    /// back to quantiles when the receiver refuses them.
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = ["auto", "native", "quantiles"])]
    pub out_prometheus_histograms: String,
    /// The time between two pushes.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::duration::parse_duration)]
    pub out_prometheus_interval: Duration,
    /// One push's deadline, and the longest wait for the last pushes after
    /// the run.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::duration::parse_duration)]
    pub out_prometheus_timeout: Duration,
}

/// What the pusher is started with.
pub struct Setup {
    pub endpoint: Endpoint,
    pub labels: Labels,
    pub options: Options,
    /// How long to wait for the last pushes.
    pub within: Duration,
}

/// The pusher's settings from the flags, `None` without `--out-prometheus`.
/// `default_loadtest`: the plan's name or the file's stem. Errors name the
/// flag (exit status 2) and never hold a token.
pub fn setup(f: &Flags, default_loadtest: &str) -> Result<Option<Setup>> {
    let Some(url) = &f.out_prometheus else {
        return Ok(None);
    };
    let flag = |name: &str| format!("--out-prometheus{name}");
    let mut headers = Vec::new();
    for h in &f.out_prometheus_header {
        let Some((k, v)) = h.split_once(':') else {
            return Err(Error::invalid(flag("-header"), "must be 'Name: value'"));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    if let Some(user) = &f.out_prometheus_user {
        use base64::Engine as _;
        let password = match &f.out_prometheus_password_file {
            Some(p) => std::fs::read_to_string(p).map_err(|e| {
                Error::invalid(
                    flag("-password-file"),
                    format!("cannot read {}: {e}", p.display()),
                )
            })?,
            None => std::env::var(PASSWORD_ENV).map_err(|_| {
                Error::invalid(
                    flag("-user"),
                    format!("needs --out-prometheus-password-file or ${PASSWORD_ENV}"),
                )
            })?,
        };
        // A file's final newline is no part of the password.
        let password = password.strip_suffix('\n').unwrap_or(&password);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.push(("Authorization".into(), format!("Basic {basic}")));
    }
    let token = match &f.out_prometheus_token_file {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
            Error::invalid(
                flag("-token-file"),
                format!("cannot read {}: {e}", p.display()),
            )
        })?),
        None if f.out_prometheus_user.is_none() => std::env::var(TOKEN_ENV).ok(),
        None => None,
    };
    if let Some(t) = token {
        let t = t.trim();
        if t.is_empty() {
            return Err(Error::invalid(flag("-token-file"), "the token is empty"));
        }
        headers.push(("Authorization".into(), format!("Bearer {t}")));
    }
    if f.out_prometheus_timeout.is_zero() {
        return Err(Error::invalid(flag("-timeout"), "must be longer than 0"));
    }
    if f.out_prometheus_interval < Duration::from_secs(1) {
        return Err(Error::invalid(flag("-interval"), "must be at least 1s"));
    }
    let tls = match &f.out_prometheus_ca {
        Some(p) => {
            let pem = std::fs::read(p).map_err(|e| {
                Error::invalid(flag("-ca"), format!("cannot read {}: {e}", p.display()))
            })?;
            let at = p.display().to_string();
            let ca = super::tls::Pem {
                at: &at,
                bytes: &pem,
            };
            let c = super::tls::client_config(Some(ca), None, None)
                .map_err(|m| Error::invalid(flag("-ca"), m))?;
            Some(std::sync::Arc::new(c))
        }
        None => None,
    };
    let endpoint = Endpoint {
        url: url.clone(),
        headers,
        tls,
        timeout: f.out_prometheus_timeout,
    };
    endpoint.check().map_err(|(what, why)| {
        Error::invalid(
            if what == "url" {
                flag("")
            } else {
                flag("-header")
            },
            why,
        )
    })?;
    let loadtest = f
        .out_prometheus_loadtest
        .as_deref()
        .unwrap_or(default_loadtest);
    let mut labels = vec![("loadtest".to_string(), loadtest.to_string())];
    for l in &f.out_prometheus_label {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| Error::invalid(flag("-label"), format!("{l:?} is not NAME=VALUE")))?;
        if !label_name(k) {
            return Err(Error::invalid(
                flag("-label"),
                format!(
                    "{k:?} is not a label name (letters, digits, _; not starting with a digit or __)"
                ),
            ));
        }
        labels.retain(|(n, _)| n != k);
        labels.push((k.to_string(), v.to_string()));
    }
    let histograms = match f.out_prometheus_histograms.as_str() {
        "native" => HistogramMode::Native,
        "quantiles" => HistogramMode::Quantiles,
        _ => HistogramMode::Auto,
    };
    Ok(Some(Setup {
        endpoint,
        labels: Labels(labels),
        options: Options {
            interval: f.out_prometheus_interval,
            histograms,
            continuing: false,
        },
        within: f.out_prometheus_timeout,
    }))
}

/// A Prometheus label name a caller may set (`__` names are reserved).
pub fn label_name(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with("__")
}

/// The line printed after the run.
pub fn delivery_line(url: &str, d: &super::Delivery) -> String {
    let mut line = format!(
        "  remote write to {url}: {} pushes, {} samples delivered, {} undelivered",
        d.pushes, d.samples, d.undelivered
    );
    if let Some(e) = &d.last_error {
        line.push_str(&format!(" (last error: {e})"));
    }
    line
}
