//! Barrage's load engine, shared by the `barrage-runner` binary and (through
//! the plan and snapshot types) by the operator. No dependency on kube here.

pub mod duration;
pub mod error;
pub mod serve;
pub mod signal;
pub mod size;
pub mod thresholds;
pub mod tls;

pub use error::{Error, Errors, Result};
pub mod agent;
pub mod compile;
pub mod data;
pub mod engine;
pub mod histogram;
pub mod input;
pub mod limits;
pub mod local;
pub mod manifest;
pub mod plan;
pub mod planfile;
pub mod progress;
pub mod provision;
pub mod remote_write;
pub mod report;
pub mod snapshot;
pub mod teardown;
pub mod template;
pub mod text;
pub mod wait;

/// What percent-encoding escapes in query strings, form bodies and redirect
/// parameters: every byte but RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`), so a space is `%20` and a `+` is `%2B`. Use it
/// with `percent_encoding::utf8_percent_encode`; decode forms and queries
/// with `form_urlencoded::parse` (`+` is a space there).
pub const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
