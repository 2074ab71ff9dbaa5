//! The operator's cluster-wide default receiver, for LoadTests whose spec
//! names none (`spec.output.prometheusRemoteWrite.disabled: true` opts
//! out). Given as JSON by `--remote-write` (`BARRAGE_REMOTE_WRITE`; the
//! chart renders it from its `prometheusRemoteWrite` values). Its
//! credentials and TLS files are paths: the chart mounts them from Secrets
//! in the operator's own namespace, so the operator needs no right to read
//! Secrets there, and the JSON holds no secret.
//!
//! Checked once at start (a bad flag exits with status 2, naming the
//! field); the files are read again whenever a pusher starts, so a rotated
//! Secret is picked up without a restart.

use std::{collections::BTreeMap, path::PathBuf};

use barrage_runner::{
    duration::HumanDuration,
    remote_write::{Endpoint, HistogramMode, Options},
};
use serde::Deserialize;

use super::{
    endpoint::{self, Auth, TlsMaterial, Value},
    spec,
};
use crate::error::{Error, Result};

/// The flag, as messages name it.
pub const FLAG: &str = "--remote-write";

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterDefault {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub basic_auth: Option<FileBasicAuth>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub tls: Option<FileTls>,
    #[serde(default)]
    pub interval: Option<HumanDuration>,
    #[serde(default)]
    pub histograms: Option<HistogramMode>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileBasicAuth {
    pub username: String,
    pub password_file: PathBuf,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileTls {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub server_name: Option<String>,
}

fn f(name: &str) -> String {
    format!("{FLAG} {name}")
}

impl ClusterDefault {
    /// The flag's value: None when it is empty (no default), else the
    /// default, checked as a spec's receiver is, and its files readable
    /// and fit (the endpoint is made once and dropped).
    pub fn parse(json: &str) -> Result<Option<ClusterDefault>> {
        if json.trim().is_empty() {
            return Ok(None);
        }
        let mut de = serde_json::Deserializer::from_str(json);
        let d: ClusterDefault = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            Error::Invalid {
                field: if path == "." { FLAG.into() } else { f(&path) },
                message: e.into_inner().to_string(),
            }
        })?;
        d.check()?;
        d.endpoint().map_err(|message| Error::Invalid {
            field: FLAG.into(),
            message,
        })?;
        Ok(Some(d))
    }

    fn check(&self) -> Result<()> {
        spec::check_url(&f("url"), &self.url)?;
        spec::check_headers(&f("headers"), &self.headers)?;
        if let Some(b) = &self.basic_auth {
            spec::check_username(&f("basicAuth.username"), &b.username)?;
            if self.bearer_token_file.is_some() {
                return Err(Error::Invalid {
                    field: f("bearerTokenFile"),
                    message: "give either basicAuth or bearerTokenFile, not both".into(),
                });
            }
        }
        if let Some(tls) = &self.tls {
            if !spec::is_https(&self.url) {
                return Err(Error::Invalid {
                    field: f("tls"),
                    message: "applies to an https:// url only".into(),
                });
            }
            spec::check_pair(
                &f("tls.certFile"),
                tls.cert_file.is_some(),
                &f("tls.keyFile"),
                tls.key_file.is_some(),
            )?;
            if let Some(n) = &tls.server_name {
                spec::check_server_name(&f("tls.serverName"), n)?;
            }
        }
        Ok(spec::check_interval(&f("interval"), self.interval)?)
    }

    /// The endpoint, its files read now; the message names the file.
    pub fn endpoint(&self) -> std::result::Result<Endpoint, String> {
        let auth = match (&self.basic_auth, &self.bearer_token_file) {
            (Some(b), _) => Auth::Basic {
                username: b.username.clone(),
                password: read("basicAuth.passwordFile", &b.password_file)?,
            },
            (None, Some(t)) => Auth::Bearer(read("bearerTokenFile", t)?),
            (None, None) => Auth::None,
        };
        let tls = match &self.tls {
            None => None,
            Some(t) => {
                let opt =
                    |name: &str, p: &Option<PathBuf>| p.as_ref().map(|p| read(name, p)).transpose();
                Some(TlsMaterial {
                    ca: opt("tls.caFile", &t.ca_file)?,
                    cert: opt("tls.certFile", &t.cert_file)?,
                    key: opt("tls.keyFile", &t.key_file)?,
                    server_name: t.server_name.clone(),
                })
            }
        };
        endpoint::endpoint(&self.url, &self.headers, auth, tls)
    }

    /// The URL without credentials, for the operator's start-up log.
    pub fn redacted_url(&self) -> String {
        spec::redacted(&self.url)
    }

    pub fn options(&self) -> Options {
        spec::options(self.interval, self.histograms)
    }
}

fn read(name: &str, path: &PathBuf) -> std::result::Result<Value, String> {
    let at = format!("{} {}", f(name), path.display());
    // The error is the operating system's (no such file, permission), never
    // the contents.
    match std::fs::read(path) {
        Ok(bytes) => Ok(Value { at, bytes }),
        Err(e) => Err(format!("{at}: {e}")),
    }
}
