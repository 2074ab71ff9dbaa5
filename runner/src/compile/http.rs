//! The HTTP version (`target.http`) and, for HTTP/2, how many connections
//! each runner spreads its streams over (`target.connections`).

use super::{HttpPlan, LoadPlan};
use crate::{
    error::{Error, Result},
    limits,
    plan::{Executor, HttpVersion, Plan},
};

/// Streams per HTTP/2 connection when `target.connections` is not given:
/// one connection per this many users (closed model) or requests in flight
/// (open model), at least one.
pub const STREAMS_PER_CONNECTION: u32 = 100;

pub(super) fn compile_http(
    plan: &Plan,
    loads: &[&LoadPlan],
    slot_count: u32,
    f: &dyn Fn(&str) -> String,
) -> Result<HttpPlan> {
    let version = plan.target.http;
    let connections = match plan.target.connections {
        Some(_) if version == HttpVersion::Http1 => {
            return Err(Error::invalid(
                f("target.connections"),
                "only applies to HTTP/2: set target.http to \"2\" or \"auto\"",
            ));
        }
        Some(0) => {
            return Err(Error::invalid(
                f("target.connections"),
                "must be at least 1",
            ));
        }
        Some(n) => {
            limits::count(n, limits::MAX_CONNECTIONS)
                .map_err(|m| Error::invalid(f("target.connections"), m))?;
            n
        }
        None => default_connections(loads, slot_count),
    };
    Ok(HttpPlan {
        version,
        connections,
    })
}

/// One connection per `STREAMS_PER_CONNECTION` of this runner's peak
/// concurrency, over all its scenarios (which share the connections): its
/// share of the most users each profile reaches, or of `maxInFlight`.
fn default_connections(loads: &[&LoadPlan], slot_count: u32) -> u32 {
    let concurrency: u64 = loads
        .iter()
        .map(|load| match load.executor {
            Executor::Concurrency => {
                let peak = load
                    .profile
                    .stages
                    .iter()
                    .map(|s| s.1)
                    .fold(load.profile.start, f64::max);
                // Users are at most `limits::MAX_USERS`, so this fits.
                (peak.round().max(0.0) as u64).div_ceil(u64::from(slot_count.max(1)))
            }
            Executor::ArrivalRate => u64::from(load.max_in_flight),
        })
        .sum();
    let n = concurrency.div_ceil(u64::from(STREAMS_PER_CONNECTION));
    n.clamp(1, u64::from(limits::MAX_CONNECTIONS)) as u32
}
