//! The run's series pushed while it runs (`spec.output`, or the operator's
//! cluster-wide default): Pending's check of what the spec references,
//! Running's offer of each round's merged snapshot (the pusher started on
//! the first), and the verdict's final push. The phases call these with a
//! line or two; the rules are `crate::remote_write`'s.
//!
//! A receiver never holds up the test: an offer only queues, the final push
//! is bounded by `FINISH_WITHIN`, and a receiver that cannot be used once
//! the test runs (its Secret deleted since Pending, the default's file
//! unreadable) is shown in `status.output` and one Warning event, and the
//! test goes on without it.

use std::time::Duration;

use barrage_runner::{
    remote_write::{Options, Pusher},
    snapshot::Snapshot,
};
use kube::{ResourceExt, runtime::events::EventType};
use tracing::warn;

use super::{
    context::{Context, unix_us},
    next::Next,
};
use crate::{
    crd::{LoadTest, LoadTestStatus, OutputStatus, RemoteWriteStatus},
    error::Result,
    remote_write::{
        pushers,
        secrets::{self, Refusal},
        spec::{self, Choice},
    },
};

/// The most the verdict waits for the last series to be delivered.
pub const FINISH_WITHIN: Duration = Duration::from_secs(5);
/// The event of a receiver that could not be used once the test ran.
pub const REASON_FAILED: &str = "RemoteWriteFailed";

/// Pending: why the spec's receiver cannot be used (the condition's reason
/// and the message naming the field), or None. The cluster-wide default is
/// the operator's own and checked when it starts.
pub async fn check(lt: &LoadTest, ctx: &Context) -> Result<Option<(&'static str, String)>> {
    let Choice::Spec(rw) = spec::choose(spec::of(lt), false) else {
        return Ok(None);
    };
    let ns = lt.namespace().unwrap_or_default();
    Ok(secrets::resolve(&ctx.client, &ns, rw)
        .await?
        .err()
        .map(|r| (r.reason, r.message)))
}

/// Running, each round: offers `merged` (starting the pusher first if
/// this LoadTest has none) and shows what was delivered in `st`. A message
/// for a Warning event when the receiver cannot be used.
pub async fn offer(
    lt: &LoadTest,
    ctx: &Context,
    st: &mut LoadTestStatus,
    merged: &Snapshot,
) -> Option<String> {
    let uid = lt.uid().unwrap_or_default();
    let refused = start_once(lt, ctx, st).await;
    let active = merged.runners.saturating_sub(merged.finished);
    if let Some(s) = ctx.pushers.offer(&uid, merged, now_ms(), active) {
        show(st, s);
    }
    refused
}

/// The verdict: the final snapshot pushed (after an operator restart too),
/// waiting at most `FINISH_WITHIN`; what could not be delivered by then is
/// counted undelivered.
pub async fn finish(
    lt: &LoadTest,
    ctx: &Context,
    st: &mut LoadTestStatus,
    merged: &Snapshot,
) -> Option<String> {
    let uid = lt.uid().unwrap_or_default();
    let refused = start_once(lt, ctx, st).await;
    if let Some(s) = ctx
        .pushers
        .finish(&uid, merged, now_ms(), FINISH_WITHIN)
        .await
    {
        show(st, s);
    }
    refused
}

/// `n` with the Warning event of `refused`, if any.
pub fn with_event(n: Next, refused: Option<String>) -> Next {
    match refused {
        Some(msg) => n.event(EventType::Warning, REASON_FAILED, msg),
        None => n,
    }
}

/// Starts this LoadTest's pusher unless it has or had one. A Secret that
/// cannot be read now (the API server's error) is tried again next round.
async fn start_once(lt: &LoadTest, ctx: &Context, st: &mut LoadTestStatus) -> Option<String> {
    let uid = lt.uid().unwrap_or_default();
    if ctx.pushers.holds(&uid) {
        return None;
    }
    let default = ctx.config.remote_write.as_ref();
    let (endpoint, options) = match spec::choose(spec::of(lt), default.is_some()) {
        Choice::None => return None,
        Choice::Spec(rw) => {
            let ns = lt.namespace().unwrap_or_default();
            match secrets::resolve(&ctx.client, &ns, rw).await {
                Ok(Ok(e)) => (e, spec::options(rw.interval, rw.histograms)),
                Ok(Err(Refusal { message, .. })) => {
                    return Some(refuse(ctx, &uid, st, &rw.url, message));
                }
                Err(e) => {
                    warn!(error = %e, "could not read the remote-write Secrets; trying again next round");
                    return None;
                }
            }
        }
        Choice::ClusterDefault => {
            let d = default?;
            match d.endpoint() {
                Ok(e) => (e, d.options()),
                Err(m) => {
                    let message = format!("the operator's default receiver: {m}");
                    return Some(refuse(ctx, &uid, st, &d.url, message));
                }
            }
        }
    };
    let previous = previous(st);
    let base = pushers::base(previous.as_ref(), endpoint.redacted_url());
    // After an operator restart the receiver holds this run's series: the
    // new pusher adds no 0 at the run's start (refused as out of order).
    let options = Options {
        continuing: base.pushes > 0,
        ..options
    };
    let pusher = Pusher::start(endpoint, spec::labels(lt), options);
    ctx.pushers.start(&uid, pusher, base.clone());
    show(st, base);
    None
}

/// Notes a receiver that cannot be used, in the status and (returned) an event.
fn refuse(ctx: &Context, uid: &str, st: &mut LoadTestStatus, url: &str, message: String) -> String {
    let shown = RemoteWriteStatus {
        last_error: Some(message.clone()),
        ..pushers::base(previous(st).as_ref(), spec::redacted(url))
    };
    ctx.pushers.done(uid, shown.clone());
    show(st, shown);
    message
}

fn previous(st: &LoadTestStatus) -> Option<RemoteWriteStatus> {
    st.output
        .as_ref()
        .and_then(|o| o.prometheus_remote_write.clone())
}

fn show(st: &mut LoadTestStatus, s: RemoteWriteStatus) {
    st.output
        .get_or_insert_with(OutputStatus::default)
        .prometheus_remote_write = Some(s);
}

fn now_ms() -> i64 {
    (unix_us() / 1000) as i64
}
