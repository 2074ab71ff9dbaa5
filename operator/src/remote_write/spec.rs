//! Pure rules of `spec.output.prometheusRemoteWrite`: which receiver a
//! LoadTest pushes to, what its spec may say (every error names the
//! field), the labels every series carries and the pusher's options.

use std::time::Duration;

use barrage_runner::{
    duration::HumanDuration,
    remote_write::{Endpoint, HistogramMode, Labels, Options},
};
use kube::ResourceExt;

use crate::{
    crd::{LoadTest, RemoteWrite},
    schedule::runs::{ANN_SCHEDULED, LABEL_SLT},
};

pub use barrage_runner::manifest::output::{
    FIELD, MAX_HEADER_VALUE, MAX_HEADERS, MAX_URL, MIN_INTERVAL, check_headers, check_interval,
    check_pair, check_server_name, check_url, check_username, is_https, validate,
};
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// One push's deadline: a slow receiver is given up on (and retried by the
/// pusher) rather than waited for.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

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
