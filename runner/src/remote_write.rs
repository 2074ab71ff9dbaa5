//! Prometheus remote write (protocol 1.0): a run's merged, cumulative
//! figures pushed as time series while it runs, so a soak test lines up with
//! the service's own metrics in Grafana.
//!
//! FOUNDATION (session 15): the API below is what the operator and the local
//! run call; the `rw` work fills in the bodies (encoding, queue, retries).
//!
//! - [`Endpoint`]: where to push (URL, extra headers incl. resolved auth,
//!   TLS). Credentials live only in `headers` and are never printed:
//!   [`Endpoint::redacted_url`] is what status, events and logs may show.
//! - [`Labels`]: the labels every series carries (namespace, loadtest,
//!   scheduledloadtest, run), given by the caller.
//! - [`Pusher::start`] spawns the delivery task on the current runtime;
//!   [`Pusher::offer`] never blocks and never fails: it turns a merged
//!   snapshot into series at an instant and queues them (bounded; what falls
//!   out of the queue is counted as undelivered); [`Pusher::finish`] offers
//!   the final snapshot and waits, bounded, for the queue to drain.
//! - [`Delivery`]: what was sent and what could not be, for the status.

use std::{sync::Arc, time::Duration};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::snapshot::Snapshot;

/// Where series are pushed.
#[derive(Clone)]
pub struct Endpoint {
    /// `http://` or `https://` URL of the receiver (e.g. Prometheus's
    /// `/api/v1/write`).
    pub url: String,
    /// Extra request headers, including `Authorization` resolved from a
    /// Secret or a flag; never logged.
    pub headers: Vec<(String, String)>,
    /// TLS for `https://` receivers: a private CA, a client certificate.
    /// `None`: the bundled web PKI roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// One push's deadline.
    pub timeout: Duration,
}

impl Endpoint {
    /// The URL without userinfo, query or fragment: safe for status and logs.
    pub fn redacted_url(&self) -> String {
        let u = self.url.split(['?', '#']).next().unwrap_or_default();
        match u.split_once("://") {
            Some((scheme, rest)) => {
                let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                format!("{scheme}://{rest}")
            }
            None => u.to_string(),
        }
    }
}

/// How latency is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HistogramMode {
    /// Native histograms, falling back to quantile series when the receiver
    /// refuses them.
    #[default]
    Auto,
    /// Native histograms only.
    Native,
    /// Quantile series only (receivers without native histograms).
    Quantiles,
}

/// The labels every series of one run carries, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Labels(pub Vec<(String, String)>);

/// How a pusher behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// The least time between two offers that are pushed (others are
    /// skipped until it passes); the final offer is always pushed.
    pub interval: Duration,
    pub histograms: HistogramMode,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            interval: Duration::from_secs(10),
            histograms: HistogramMode::Auto,
        }
    }
}

/// What a pusher delivered, for the status and the summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Write requests the receiver accepted.
    pub pushes: u64,
    /// Samples in them.
    pub samples: u64,
    /// Samples that were never accepted: dropped from a full queue, refused
    /// by the receiver, or still queued when the run ended.
    pub undelivered: u64,
    /// The last failure (status and a bounded, credential-free message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One run's pusher: a queue and a delivery task.
pub struct Pusher {
    _endpoint: Endpoint,
    _labels: Labels,
    _options: Options,
}

impl Pusher {
    /// Starts the delivery task on the current tokio runtime.
    pub fn start(endpoint: Endpoint, labels: Labels, options: Options) -> Pusher {
        Pusher {
            _endpoint: endpoint,
            _labels: labels,
            _options: options,
        }
    }

    /// Queues `merged`'s series at `at_ms` (unix milliseconds) when the
    /// interval has passed since the last queued offer. `active_runners`:
    /// the runners producing load now. Never blocks.
    pub fn offer(&self, merged: &Snapshot, at_ms: i64, active_runners: u32) {
        let _ = (merged, at_ms, active_runners);
    }

    /// What was delivered so far.
    pub fn delivery(&self) -> Delivery {
        Delivery::default()
    }

    /// Queues the final snapshot and waits at most `within` for the queue to
    /// drain; what is left counts as undelivered.
    pub async fn finish(
        self,
        merged: &Snapshot,
        at_ms: i64,
        active_runners: u32,
        within: Duration,
    ) -> Delivery {
        let _ = (merged, at_ms, active_runners, within);
        Delivery::default()
    }
}
