//! The operator's side of Prometheus remote write: while a LoadTest runs,
//! its merged figures are pushed to the receiver its spec names
//! (`spec.output.prometheusRemoteWrite`), or else to the operator's
//! cluster-wide default (`--remote-write`, the chart's
//! `prometheusRemoteWrite` values). Encoding, queueing and retries are the
//! runner's (`barrage_runner::remote_write`); this module decides where and
//! with which credentials, and keeps one pusher per running LoadTest.
//!
//! - `spec`: pure. Which receiver applies (`choose`), the spec's rules
//!   (`validate`, errors naming the field), the series' labels and the
//!   pusher's options.
//! - `endpoint`: pure. Resolved credentials and TLS material into an
//!   `Endpoint` (the `Authorization` header, a rustls config).
//! - `secrets`: reads what the spec references (Secrets, ConfigMaps in the
//!   LoadTest's namespace) and resolves the endpoint, or says why not.
//! - `cluster_default`: the operator's default, read from the flag's JSON
//!   and the files the chart mounts from Secrets in its own namespace.
//! - `pushers`: every running LoadTest's pusher by uid, and what it
//!   delivered as `status.output.prometheusRemoteWrite`.
//!
//! Credentials go into the request headers and nowhere else: status, events
//! and logs show `Endpoint::redacted_url` and messages that name the field,
//! the object and the key, never a value.
//!
//! Imports run one way: `pushers` and `secrets` use `spec` and `endpoint`;
//! `cluster_default` uses `spec` and `endpoint`; nothing here uses
//! `crate::loadtest` (which calls this).

pub mod cluster_default;
pub mod endpoint;
pub mod pushers;
pub mod secrets;
pub mod spec;

pub use cluster_default::ClusterDefault;
pub use pushers::Pushers;

#[cfg(test)]
mod tests;
