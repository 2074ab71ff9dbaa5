//! What a scenario sends: the weighted mix of requests and journeys, a
//! journey's steps (requests, pauses, repeat blocks), what a response must
//! look like (`expect`) and what to take from it (`capture`).
//!
//! A request, a journey step and a step inside a repeat block share their
//! HTTP fields through `http_fields!` rather than `#[serde(flatten)]`,
//! because flatten silently disables `deny_unknown_fields`, and a misspelt
//! field must be an error. The nesting stops at one repeat level: a
//! repeated step has no steps of its own (the CRD schema cannot express a
//! recursive type, and bursts within bursts are not a suite anyone has).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{duration::HumanDuration, size::HumanSize, wait::Wait};

/// The HTTP part of a request or a step, borrowed, so that compilation treats
/// all alike.
pub struct HttpView<'a> {
    pub method: Option<&'a str>,
    pub path: Option<&'a str>,
    pub query: &'a BTreeMap<String, String>,
    pub headers: &'a BTreeMap<String, String>,
    pub body: Option<&'a str>,
    pub form: &'a BTreeMap<String, String>,
    pub expect: Option<&'a Expect>,
    pub timeout: Option<HumanDuration>,
    pub follow_redirects: Option<bool>,
    pub max_body: Option<HumanSize>,
    pub capture: &'a BTreeMap<String, Capture>,
}

impl HttpView<'_> {
    /// Whether any field that only a request has is set (a journey or a
    /// pause must leave them empty).
    pub fn is_set(&self) -> bool {
        self.method.is_some()
            || self.path.is_some()
            || !self.query.is_empty()
            || !self.headers.is_empty()
            || self.body.is_some()
            || !self.form.is_empty()
            || self.expect.is_some()
            || self.timeout.is_some()
            || self.follow_redirects.is_some()
            || self.max_body.is_some()
            || !self.capture.is_empty()
    }
}

/// Declares a struct with its own fields followed by the HTTP fields, and
/// its `http()` view.
macro_rules! http_fields {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $($(#[$fm:meta])* pub $f:ident : $t:ty,)*
        }
    ) => {
        $(#[$m])*
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
            /// GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS. Default GET.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub method: Option<String>,
            /// Path relative to target.baseUrl, starting with '/'.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub path: Option<String>,
            /// Query parameters: name -> value (templates allowed), percent-encoded
            /// and appended to the path.
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub query: BTreeMap<String, String>,
            /// Request headers: name -> value (templates allowed), added to
            /// `target.headers`.
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub headers: BTreeMap<String, String>,
            /// The request body (templates allowed), e.g. a JSON document.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub body: Option<String>,
            /// A form body (application/x-www-form-urlencoded): name -> value, both
            /// percent-encoded. Instead of `body`.
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub form: BTreeMap<String, String>,
            /// What a successful response looks like: its status codes (default
            /// any 2xx or 3xx) and body checks.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub expect: Option<Expect>,
            /// This request's timeout, instead of `target.timeout` (default 10s).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub timeout: Option<HumanDuration>,
            /// Follow up to 5 redirects to the target's own host. Default false: a
            /// 3xx is the response (a capture may read its Location).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub follow_redirects: Option<bool>,
            /// The most response body kept for a `json` or `regex` capture or a
            /// body check, e.g. 4MiB (or a number of bytes). Default 1MiB; a
            /// longer body fails the request (`body_too_large`). Bodies that
            /// nothing reads are counted and discarded whatever their size.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub max_body: Option<HumanSize>,
            /// Values to take from the response for later steps: name -> source.
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub capture: BTreeMap<String, Capture>,
        }

        impl $name {
            pub fn http(&self) -> HttpView<'_> {
                HttpView {
                    method: self.method.as_deref(),
                    path: self.path.as_deref(),
                    query: &self.query,
                    headers: &self.headers,
                    body: self.body.as_deref(),
                    form: &self.form,
                    expect: self.expect.as_ref(),
                    timeout: self.timeout,
                    follow_redirects: self.follow_redirects,
                    max_body: self.max_body,
                    capture: &self.capture,
                }
            }
        }
    };
}

http_fields! {
    /// One entry of the weighted mix: a single request, or a journey of `steps`.
    ///
    /// All strings may use {{ }} templates: `record.FIELD`, `env.NAME`,
    /// `vars.NAME` (captured earlier in a journey), `user.NAME` (the virtual
    /// user's own, from its scenario's `onStart`), `uuid`, `seq`,
    /// `randInt(LO, HI)`, `randString(N)`, `email`, `pkce.verifier`,
    /// `pkce.challenge` (one pair per iteration), `runner.index`,
    /// `runner.count`, `now`, `nowMs` and `pick(...)`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct RequestSpec {
        /// The request's (or journey's) name: its metric in the results and
        /// the name `for NAME` in a threshold refers to. Unique in the plan.
        pub name: String,
        /// Relative weight in the mix (fractions allowed, e.g. 0.5). Default 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub weight: Option<f64>,
        /// The pause after this entry, instead of the scenario's
        /// `load.thinkTime`: a duration, a range (1s..3s) or exponential(MEAN).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub think_time: Option<Wait>,
        /// Variables rendered once when each iteration starts, for
        /// `{{ vars.NAME }}` in every step: e.g. a generated email and password
        /// that a registration step and a login step must share.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub vars: BTreeMap<String, String>,
        /// A user journey: the steps run in order, and a step may capture values
        /// for later steps. When present, the request fields stay empty. Its
        /// whole duration is a metric of its own (`journey NAME` in thresholds).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub steps: Vec<StepSpec>,
    }
}

http_fields! {
    /// One step of a journey: a request (`name` and the HTTP fields), a pause
    /// (`sleep` alone), or a repeat block (`repeat`, `interval`, `steps`).
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct StepSpec {
        /// The request's name (its metric is `JOURNEY/NAME`); a repeat
        /// block may be named too. Not for a pause.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub name: String,
        /// A pause step: wait this long (a duration, a range such as
        /// 100ms..300ms, or exponential(MEAN)) before the next step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sleep: Option<Wait>,
        /// A repeat block: run `steps` this many times, a number or a range
        /// such as 10..20 (drawn for each pass through the journey).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub repeat: Option<RepeatCount>,
        /// A repeat block: the pause between two rounds of its steps.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub interval: Option<Wait>,
        /// A repeat block's steps (requests and pauses, no nested repeat).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub steps: Vec<RepeatedStep>,
    }
}

http_fields! {
    /// A step inside a repeat block: a request or a pause.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct RepeatedStep {
        /// The step's name: its metric is `JOURNEY/NAME`.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub name: String,
        /// A pause step (see the journey step's `sleep`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sleep: Option<Wait>,
    }
}

/// How many times a repeat block runs: a number (`10`) or an inclusive
/// range (`10..20`), drawn uniformly each time the block starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepeatCount {
    pub min: u32,
    pub max: u32,
}

impl std::fmt::Display for RepeatCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

impl std::str::FromStr for RepeatCount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| {
            t.trim().parse::<u32>().map_err(|_| {
                format!("bad repeat {s:?}: expected a count such as 10 or a range such as 10..20")
            })
        };
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(s)?;
                (n, n)
            }
        };
        if min > max {
            return Err(format!(
                "bad repeat {s:?}: the range must go from the smaller to the larger"
            ));
        }
        Ok(RepeatCount { min, max })
    }
}

impl Serialize for RepeatCount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.min == self.max {
            s.serialize_u32(self.min)
        } else {
            s.serialize_str(&self.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for RepeatCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RepeatCount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a count such as 10 or a range such as \"10..20\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RepeatCount, E> {
                let n =
                    u32::try_from(v).map_err(|_| E::custom(format!("repeat {v} is too large")))?;
                Ok(RepeatCount { min: n, max: n })
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RepeatCount, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("repeat {v} is negative")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RepeatCount, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RepeatCount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RepeatCount".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "x-kubernetes-int-or-string": true,
            "description": "A count (10) or an inclusive range (\"10..20\")."
        })
    }
    fn inline_schema() -> bool {
        true
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expect {
    /// Status codes that count as success. Default: any 2xx or 3xx.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<u16>,
    /// Checks on the response body; a failed one counts as a `check` error
    /// with the check named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyCheck>,
}

/// Checks on a response body, like k6's checks but feeding the same error
/// rates and thresholds. Every check given must hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BodyCheck {
    /// The body contains this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// The body matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// JSON pointers into the body: each must be present and, with
    /// `equals`, equal to that value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json: Vec<JsonCheck>,
    /// The body is at most this long, e.g. 64KiB (or a number of bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<HumanSize>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JsonCheck {
    /// A JSON pointer, e.g. /data/status.
    pub pointer: String,
    /// The value there: a string compares with a JSON string, and with the
    /// JSON text of a number, boolean or null ("42", "true", "null").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
}

/// Where a captured value comes from: exactly one of `json`, `header`,
/// `regex` or `locationQuery`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capture {
    /// A JSON pointer into the response body, e.g. /data/token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    /// A response header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// A regular expression over the response body: its first group, or the
    /// whole match if it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// A query parameter of the response's Location header, URL-decoded
    /// (e.g. `code` from an authorization redirect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_query: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeat_counts_read_as_numbers_or_ranges() {
        let s: StepSpec = serde_yaml_ng::from_str(
            "{repeat: 10..20, interval: 50ms, steps: [{name: a, path: /}]}",
        )
        .unwrap();
        assert_eq!(s.repeat, Some(RepeatCount { min: 10, max: 20 }));
        let s: StepSpec = serde_yaml_ng::from_str("{repeat: 3, steps: [{sleep: 1s..2s}]}").unwrap();
        assert_eq!(s.repeat, Some(RepeatCount { min: 3, max: 3 }));
        for bad in ["{repeat: 5..2}", "{repeat: -1}", "{repeat: x}"] {
            assert!(serde_yaml_ng::from_str::<StepSpec>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nesting_stops_at_one_repeat_level_and_misspellings_are_errors() {
        let nested = "{repeat: 2, steps: [{repeat: 2, steps: []}]}";
        assert!(serde_yaml_ng::from_str::<StepSpec>(nested).is_err());
        assert!(serde_yaml_ng::from_str::<RequestSpec>("{name: a, pth: /}").is_err());
    }
}
