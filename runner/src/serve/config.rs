//! The target server's configuration file (YAML or JSON). Latency specs and
//! path patterns are compiled while deserializing, so a bad value is reported
//! with its field path (`routes[2].latency`) and nothing is parsed per request.

use std::{collections::BTreeMap, path::Path, time::Duration};

use hyper::{
    Method, StatusCode,
    header::{HeaderName, HeaderValue},
};
use serde::{Deserialize, Serialize};

use super::{latency::Latency, path::PathPattern};
use crate::{
    duration::HumanDuration,
    error::{Error, Result},
};

/// The demo routes; also the reference example of the format.
const BUILTIN_YAML: &str = include_str!("builtin.yaml");

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServeConfig {
    /// Tried in order; the first route whose method and path match answers.
    /// May be empty only when `auth` is set.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Enables the `/auth/*` endpoints (register, authorize with PKCE,
    /// token, me) and `requireToken` on routes. See `auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
}

/// The OAuth-like auth flow's settings (`auth: {}` takes the defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthSpec {
    /// Lifetime of access tokens; `expires_in` in the token response. Default 1h.
    #[serde(default = "default_token_ttl")]
    pub token_ttl: HumanDuration,
    /// Lifetime of authorization codes. Default 10m.
    #[serde(default = "default_code_ttl")]
    pub code_ttl: HumanDuration,
    /// At most this many users are kept; `POST /auth/register` beyond it gets
    /// 507 `user_limit` (and counts in `/auth/stats` as `refusedRegistrations`),
    /// so memory stays bounded whoever registers. Default 100,000.
    #[serde(default = "default_max_users")]
    pub max_users: usize,
}

impl Default for AuthSpec {
    fn default() -> Self {
        AuthSpec {
            token_ttl: default_token_ttl(),
            code_ttl: default_code_ttl(),
            max_users: default_max_users(),
        }
    }
}

fn default_token_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(3600))
}

fn default_max_users() -> usize {
    100_000
}

fn default_code_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(600))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSpec {
    /// e.g. "GET"; absent means any method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    pub path: PathPattern,
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// e.g. "10%:50ms, 1ms"; default: no delay.
    #[serde(default, skip_serializing_if = "Latency::is_zero")]
    pub latency: Latency,
    /// Fraction (0..=1) of requests answered with `error_status` instead.
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default = "default_error_status")]
    pub error_status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall: Option<StallSpec>,
    /// Answer 401 unless `Authorization: Bearer TOKEN` carries a live token
    /// from `/auth/token` (needs the `auth` section).
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_token: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A window, measured from server start, during which every request on the
/// route (arriving, or still in progress when it opens) is held until it
/// closes: a frozen backend, to show coordinated omission in a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StallSpec {
    pub after: HumanDuration,
    pub duration: HumanDuration,
}

impl StallSpec {
    /// `[start, end)` offsets from server start.
    pub fn window(&self) -> (Duration, Duration) {
        let start = self.after.as_duration();
        (start, start.saturating_add(self.duration.as_duration()))
    }
}

fn default_status() -> u16 {
    200
}

fn default_error_status() -> u16 {
    500
}

impl RouteSpec {
    /// A route answering `status` with `body`, no latency, no errors.
    pub fn new(method: Option<&str>, path: &str, status: u16, body: &str) -> Result<Self> {
        Ok(RouteSpec {
            method: method.map(str::to_string),
            path: path.parse().map_err(|m| Error::invalid("path", m))?,
            status,
            body: body.to_string(),
            headers: BTreeMap::new(),
            latency: Latency::default(),
            error_rate: 0.0,
            error_status: default_error_status(),
            stall: None,
            require_token: false,
        })
    }
}

impl ServeConfig {
    /// Parses YAML (or JSON, which YAML accepts) and validates it. Errors name
    /// the field, e.g. `routes[2].latency: percentages ... add up to more than 100%`.
    pub fn from_yaml_str(s: &str) -> Result<Self> {
        // Through the same parser-bomb limits as plans.
        let doc = crate::planfile::parse_document(s)?;
        let config: ServeConfig = serde_path_to_error::deserialize(doc).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "config".to_string()
            } else {
                path
            };
            Error::invalid(field, e.into_inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::planfile::read_plan(path)?;
        Self::from_yaml_str(&text).map_err(|e| match e {
            Error::Invalid { field, message } => {
                Error::invalid(field, format!("{message} (in {})", path.display()))
            }
            other => other,
        })
    }

    /// The demo routes from `builtin.yaml`.
    pub fn builtin() -> Self {
        Self::from_yaml_str(BUILTIN_YAML).expect("builtin.yaml is valid")
    }

    /// Checks what the types alone cannot. `from_yaml_str` calls it; call it
    /// yourself for a config built in code.
    pub fn validate(&self) -> Result<()> {
        if self.routes.is_empty() && self.auth.is_none() {
            return Err(Error::invalid(
                "routes",
                "no routes (every request would get 404)",
            ));
        }
        if let Some(auth) = &self.auth {
            for (name, ttl) in [("tokenTtl", auth.token_ttl), ("codeTtl", auth.code_ttl)] {
                if ttl.as_duration().is_zero() {
                    return Err(Error::invalid(
                        format!("auth.{name}"),
                        "must be longer than 0 (e.g. \"1h\")",
                    ));
                }
            }
            if auth.max_users == 0 {
                return Err(Error::invalid(
                    "auth.maxUsers",
                    "must be at least 1 (no user could register)",
                ));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            let field = |name: &str| format!("routes[{i}].{name}");
            if let Some(m) = &r.method {
                parse_method(m).map_err(|msg| Error::invalid(field("method"), msg))?;
            }
            if r.require_token && self.auth.is_none() {
                return Err(Error::invalid(
                    field("requireToken"),
                    "needs an `auth` section (e.g. `auth: {}`) to issue tokens",
                ));
            }
            check_status(r.status).map_err(|msg| Error::invalid(field("status"), msg))?;
            check_status(r.error_status)
                .map_err(|msg| Error::invalid(field("errorStatus"), msg))?;
            if !(0.0..=1.0).contains(&r.error_rate) {
                return Err(Error::invalid(
                    field("errorRate"),
                    format!(
                        "{} is not a fraction between 0 and 1 (0.05 means 5%)",
                        r.error_rate
                    ),
                ));
            }
            for (name, value) in &r.headers {
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    Error::invalid(
                        field("headers"),
                        format!("{name:?} is not a valid header name"),
                    )
                })?;
                HeaderValue::from_str(value).map_err(|_| {
                    Error::invalid(
                        field(&format!("headers.{name}")),
                        format!("{value:?} is not a valid header value"),
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// Methods are case-insensitive in the file ("get") but sent upper-case.
pub(crate) fn parse_method(m: &str) -> Result<Method, String> {
    let upper = m.trim().to_ascii_uppercase();
    if upper.is_empty() || !upper.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!(
            "{m:?} is not an HTTP method (omit the field to match any)"
        ));
    }
    Method::from_bytes(upper.as_bytes()).map_err(|e| format!("{m:?}: {e}"))
}

fn check_status(code: u16) -> Result<(), String> {
    match StatusCode::from_u16(code) {
        Ok(_) if code >= 200 => Ok(()),
        // 1xx would confuse clients (and hyper), so they are refused too.
        _ => Err(format!("{code} is not a final HTTP status (200..=999)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses_and_round_trips() {
        let c = ServeConfig::builtin();
        assert!(c.routes.len() >= 6);
        let yaml = serde_yaml_ng::to_string(&c).unwrap();
        assert_eq!(ServeConfig::from_yaml_str(&yaml).unwrap(), c);
    }

    #[test]
    fn defaults_apply() {
        let c = ServeConfig::from_yaml_str("routes: [{path: /}]").unwrap();
        let r = &c.routes[0];
        assert_eq!((r.status, r.error_status, r.error_rate), (200, 500, 0.0));
        assert!(r.method.is_none() && r.body.is_empty() && r.latency.is_zero());
        assert!(!r.require_token && c.auth.is_none());
    }

    #[test]
    fn auth_section_defaults_and_checks() {
        let c = ServeConfig::from_yaml_str("auth: {}").unwrap();
        assert!(c.routes.is_empty());
        assert_eq!(c.auth, Some(AuthSpec::default()));
        assert_eq!(
            AuthSpec::default().token_ttl.as_duration(),
            Duration::from_secs(3600)
        );
        let c = ServeConfig::from_yaml_str(
            "auth: {tokenTtl: 5m}\nroutes: [{path: /p, requireToken: true}]",
        )
        .unwrap();
        assert_eq!(
            c.auth.unwrap().token_ttl.as_duration(),
            Duration::from_secs(300)
        );
        assert!(c.routes[0].require_token);
        let field = |yaml: &str| match ServeConfig::from_yaml_str(yaml) {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field("routes: [{path: /, requireToken: true}]"),
            "routes[0].requireToken"
        );
        assert_eq!(field("auth: {tokenTtl: 0s}"), "auth.tokenTtl");
        assert!(field("auth: {tokenTTL: 1h}").starts_with("auth"));
    }
}
