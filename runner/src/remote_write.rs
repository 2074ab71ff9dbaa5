//! Prometheus remote write (protocol 1.0): a run's merged, cumulative
//! figures pushed as time series while it runs, so a soak test lines up with
//! the service's own metrics in Grafana.
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
//!
//! Inside: `proto` declares the protocol's messages (prost's derive, snappy
//! block compression), `series` turns a snapshot into series (names,
//! labels, the cardinality bound), `native` maps HdrHistograms onto native
//! histograms, `push` sends one batch and classifies the answer (retry,
//! refused, native histograms refused) with bounded, credential-free
//! errors; this module keeps the queue and runs the delivery task. `cli`
//! is `barrage-runner run --out-prometheus` and its flags;
//! [`client_config`] builds a receiver's TLS config (a private CA, a client
//! certificate). The series and their labels are described in
//! docs/metrics.md.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::snapshot::Snapshot;

pub mod cli;
pub mod native;
pub mod proto;
mod push;
pub mod series;
#[cfg(test)]
mod tests;
pub mod tls;

/// Batches queued at most; when full, the oldest is dropped.
pub const MAX_QUEUED: usize = 64;
/// Bytes of compressed bodies queued at most (with native histograms and
/// quantile series both kept until the receiver has said which it takes).
pub const MAX_QUEUED_BYTES: usize = 16 << 20;

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
    /// The run's series were pushed before (by an operator before its
    /// restart): no counter starts with a 0 at the run's start, which the
    /// receiver would refuse as older than what it holds.
    pub continuing: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            interval: Duration::from_secs(10),
            histograms: HistogramMode::Auto,
            continuing: false,
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

impl Endpoint {
    /// Checks what a push would otherwise fail on every time: the URL's
    /// scheme and host, the headers' names and values. The error is
    /// `(what, why)` and holds no header value.
    pub fn check(&self) -> Result<(), (String, String)> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| ("url".to_string(), format!("{}: {e}", self.redacted_url())))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err((
                "url".into(),
                format!(
                    "{}: must be an http:// or https:// URL with a host",
                    self.redacted_url()
                ),
            ));
        }
        for (k, v) in &self.headers {
            reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| ("headers".to_string(), format!("{k:?} is not a header name")))?;
            reqwest::header::HeaderValue::from_str(v).map_err(|_| {
                (
                    "headers".to_string(),
                    format!("the value of {k} is not a valid header value"),
                )
            })?;
        }
        Ok(())
    }
}

/// Samples in `series` (a native histogram counts as one, as receivers
/// count them).
fn samples(series: &[proto::TimeSeries]) -> usize {
    series
        .iter()
        .map(|ts| ts.samples.len() + ts.histograms.len())
        .sum()
}

/// One queued push: the series both ways, compressed, so a receiver that
/// refuses native histograms gets the quantile series of the same instant.
struct Batch {
    at_ms: i64,
    /// Samples of the series sent either way.
    common: usize,
    /// Body and latency samples with native histograms, when they may be sent.
    native: Option<(Vec<u8>, usize)>,
    /// ... with quantile series instead, when they may be sent.
    quantiles: Option<(Vec<u8>, usize)>,
}

impl Batch {
    fn bytes(&self) -> usize {
        self.native.as_ref().map_or(0, |b| b.0.len())
            + self.quantiles.as_ref().map_or(0, |b| b.0.len())
    }

    /// The body to send and its samples (a native histogram counts as one).
    fn body(&self, native_refused: bool) -> Option<(&[u8], u64)> {
        let pick = match (&self.native, native_refused) {
            (Some(n), false) => Some(n),
            _ => self.quantiles.as_ref(),
        };
        pick.map(|(b, n)| (b.as_slice(), (self.common + n) as u64))
    }

    fn samples(&self, native_refused: bool) -> u64 {
        match self.body(native_refused) {
            Some((_, n)) => n,
            // Native only, and refused: what it held, with native histograms.
            None => self
                .native
                .as_ref()
                .map_or(0, |(_, n)| (self.common + n) as u64),
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Batch>,
    queued_bytes: usize,
    /// Samples of the batch being sent (or waiting to be sent again).
    in_flight: u64,
    delivery: Delivery,
    /// The receiver said it takes no native histograms (Auto falls back).
    native_refused: bool,
    /// No more offers: the task ends when the queue is empty.
    closing: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What an offer keeps between calls.
struct Offers {
    names: series::Names,
    last_ms: Option<i64>,
}

/// One run's pusher: a queue and a delivery task.
pub struct Pusher {
    labels: Labels,
    options: Options,
    shared: Arc<Shared>,
    offers: Mutex<Offers>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Pusher {
    /// Starts the delivery task on the current tokio runtime.
    pub fn start(endpoint: Endpoint, labels: Labels, options: Options) -> Pusher {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: tokio::sync::Notify::new(),
        });
        let task = tokio::spawn(deliver(endpoint, options.histograms, shared.clone()));
        let names = series::Names::new(options.continuing);
        Pusher {
            labels,
            options,
            shared,
            offers: Mutex::new(Offers {
                names,
                last_ms: None,
            }),
            task: Some(task),
        }
    }

    /// Queues `merged`'s series at `at_ms` (unix milliseconds) when the
    /// interval has passed since the last queued offer. `active_runners`:
    /// the runners producing load now. Never blocks.
    pub fn offer(&self, merged: &Snapshot, at_ms: i64, active_runners: u32) {
        self.queue(merged, at_ms, active_runners, false);
    }

    fn queue(&self, merged: &Snapshot, at_ms: i64, active_runners: u32, last: bool) {
        let mut offers = self.offers.lock().unwrap_or_else(|e| e.into_inner());
        // A tenth of slack: offers that come once a tick, a little early
        // or late, are still pushed once per interval, not every other one.
        let interval = self.options.interval.as_millis() as i64;
        let due = interval - interval / 10;
        let at_ms = match offers.last_ms {
            Some(prev) if !last && at_ms < prev.saturating_add(due) => return,
            // Two samples of a series at one instant: the receiver refuses
            // the second.
            Some(prev) => at_ms.max(prev + 1),
            None => at_ms,
        };
        offers.last_ms = Some(at_ms);
        let built = series::build(
            merged,
            at_ms,
            active_runners,
            &self.labels,
            &mut offers.names,
        );
        drop(offers);
        let native_refused = self.shared.lock().native_refused;
        let encode = |latency: Vec<proto::TimeSeries>| {
            let n = samples(&latency);
            let mut timeseries = built.common.clone();
            timeseries.extend(latency);
            (proto::encode(&proto::WriteRequest { timeseries }), n)
        };
        let batch = Batch {
            at_ms,
            common: samples(&built.common),
            native: match self.options.histograms {
                HistogramMode::Quantiles => None,
                _ if native_refused => None,
                _ => Some(encode(built.native)),
            },
            quantiles: match self.options.histograms {
                HistogramMode::Native => None,
                _ => Some(encode(built.quantiles)),
            },
        };
        let mut st = self.shared.lock();
        st.queued_bytes += batch.bytes();
        st.queue.push_back(batch);
        // The final totals go next: batches still queued behind a slow
        // receiver hold only earlier points of the same cumulative series
        // (counted as undelivered), and would spend the final wait.
        let keep = if last { 1 } else { MAX_QUEUED };
        while st.queue.len() > keep || (st.queued_bytes > MAX_QUEUED_BYTES && st.queue.len() > 1) {
            let old = st.queue.pop_front().expect("the queue is not empty");
            st.queued_bytes -= old.bytes();
            let refused = st.native_refused;
            st.delivery.undelivered += old.samples(refused);
        }
        drop(st);
        self.shared.wake.notify_one();
    }

    /// What was delivered so far.
    pub fn delivery(&self) -> Delivery {
        self.shared.lock().delivery.clone()
    }

    /// Queues the final snapshot and waits at most `within` for the queue to
    /// drain; what is left counts as undelivered.
    pub async fn finish(
        mut self,
        merged: &Snapshot,
        at_ms: i64,
        active_runners: u32,
        within: Duration,
    ) -> Delivery {
        self.queue(merged, at_ms, active_runners, true);
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(within, &mut task).await.is_err()
        {
            task.abort();
            let _ = task.await;
        }
        let mut st = self.shared.lock();
        let refused = st.native_refused;
        let left: u64 = st.queue.iter().map(|b| b.samples(refused)).sum::<u64>() + st.in_flight;
        st.queue.clear();
        st.in_flight = 0;
        st.delivery.undelivered += left;
        if left > 0 && st.delivery.last_error.is_none() {
            st.delivery.last_error = Some(format!("not delivered within {within:?}"));
        }
        st.delivery.clone()
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        // Dropped without `finish` (say, the run failed): stop sending.
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// The delivery task: sends the queue's batches in order, one at a time.
async fn deliver(endpoint: Endpoint, mode: HistogramMode, shared: Arc<Shared>) {
    let client = match push::client(&endpoint) {
        Ok(c) => c,
        Err(e) => {
            // Nothing can be sent: what is offered stays queued (within
            // the bound) and counts as undelivered at the end.
            shared.lock().delivery.last_error = Some(e);
            return;
        }
    };
    loop {
        let next = {
            let mut st = shared.lock();
            match st.queue.pop_front() {
                Some(b) => {
                    st.queued_bytes -= b.bytes();
                    st.in_flight = b.samples(st.native_refused);
                    Some(b)
                }
                None if st.closing => return,
                None => None,
            }
        };
        let Some(batch) = next else {
            shared.wake.notified().await;
            continue;
        };
        let mut attempt = 0;
        loop {
            let refused = shared.lock().native_refused;
            let Some((body, samples)) = batch.body(refused) else {
                let mut st = shared.lock();
                st.delivery.undelivered += st.in_flight;
                st.in_flight = 0;
                break;
            };
            let outcome = push::send(&client, &endpoint, body.to_vec()).await;
            let Some(after) = record(&shared, &endpoint, mode, &batch, samples, outcome) else {
                break;
            };
            tokio::time::sleep(after.max(push::backoff(attempt))).await;
            attempt += 1;
        }
        tracing::trace!(at_ms = batch.at_ms, "remote write batch done");
    }
}

/// Books one push's outcome; `Some(at least this wait)` when the batch
/// is to be sent again (after a backoff), `None` when it is done with.
fn record(
    shared: &Shared,
    endpoint: &Endpoint,
    mode: HistogramMode,
    batch: &Batch,
    samples: u64,
    outcome: push::Outcome,
) -> Option<Duration> {
    let mut st = shared.lock();
    match outcome {
        push::Outcome::Accepted => {
            st.delivery.pushes += 1;
            st.delivery.samples += samples;
            st.in_flight = 0;
            None
        }
        push::Outcome::NativeRefused(msg)
            if mode == HistogramMode::Auto && batch.quantiles.is_some() =>
        {
            // Sent again as quantile series, as is every later batch.
            tracing::warn!(
                receiver = %endpoint.redacted_url(),
                "the receiver takes no native histograms ({msg}); sending quantile series instead"
            );
            st.native_refused = true;
            st.in_flight = batch.samples(true);
            Some(Duration::ZERO)
        }
        push::Outcome::NativeRefused(msg) | push::Outcome::Refused(msg) => {
            st.delivery.undelivered += st.in_flight;
            st.delivery.last_error = Some(msg);
            st.in_flight = 0;
            None
        }
        push::Outcome::Retry(msg, after) => {
            st.delivery.last_error = Some(msg);
            Some(after.unwrap_or_default())
        }
    }
}
