//! What a phase step returns (`Next`), and the two ways a step ends a test
//! early: a failure it decided (`fail`), or an error from the cluster that
//! waiting will not mend (`terminal`).

use std::time::Duration;

use kube::runtime::events::EventType;

use super::context::now;
use crate::{
    crd::LoadTestStatus,
    error::{Error, Result},
    status,
};

/// What a phase step decided: the status to write (once, by the
/// reconciler), the events to publish and when to look again.
pub struct Next {
    pub status: LoadTestStatus,
    pub events: Vec<(EventType, &'static str, String)>,
    pub requeue: Option<Duration>,
    /// The status a phase already wrote itself this reconcile (only the
    /// start instant, see `starting`): the reconciler does not write it again.
    pub written: Option<LoadTestStatus>,
}

impl Next {
    pub fn new(status: LoadTestStatus, requeue: Option<Duration>) -> Next {
        Next {
            status,
            events: Vec::new(),
            requeue,
            written: None,
        }
    }

    pub fn event(mut self, type_: EventType, reason: &'static str, note: String) -> Next {
        self.events.push((type_, reason, note));
        self
    }
}

/// Fails the test because of `cond` (set False with `reason`).
pub fn fail(
    mut st: LoadTestStatus,
    generation: Option<i64>,
    msg: String,
    cond: &str,
    reason: &str,
) -> Next {
    status::failed(&mut st, cond, reason, &msg, generation, now());
    Next::new(st, None).event(EventType::Warning, "Failed", msg)
}

/// An error that waiting will not mend (a name taken by an object this
/// LoadTest does not own, a request the API server refuses as invalid or
/// forbidden) fails the test with the reason; any other error is returned,
/// and the reconcile is retried.
pub fn terminal(st: LoadTestStatus, generation: Option<i64>, e: Error, cond: &str) -> Result<Next> {
    let refused = |code: u16| matches!(code, 400 | 403 | 422);
    match e {
        Error::Conflict(msg) => Ok(fail(st, generation, msg, cond, "NameTaken")),
        Error::Kube(kube::Error::Api(s)) if refused(s.code) => Ok(fail(
            st,
            generation,
            format!(
                "the API server refused a request ({} {}): {}",
                s.code, s.reason, s.message
            ),
            cond,
            "Refused",
        )),
        other => Err(other),
    }
}
