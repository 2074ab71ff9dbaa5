//! The LoadTest lifecycle, one phase per reconcile step:
//! Pending → (Provisioning) → Starting → Running → (TearingDown) →
//! Succeeded | Failed | Aborted.
//!
//! Where to look:
//! - `reconcile`: the thin reconciler. It converts the object,
//!   runs the step of its phase, and then writes the status ONCE, by
//!   server-side apply, publishes the step's events and says when to look
//!   again. The one other status write is the start instant (`starting`).
//! - one file per phase: `pending`, `provisioning`, `starting`, `running`,
//!   `finishing` (verdict, report, cleanup), `tearing_down` (the teardown
//!   Job after the load, then the final phase). A phase reads the cluster
//!   through `context` (a small facade: owned objects, events, the runner
//!   pods from the watch, the agents), decides with the pure builders
//!   (`crate::pods`, `crate::setup`, `crate::status`, `crate::observe`) and
//!   returns a `next::Next`.
//! - `watch`: the controller's wiring (what is watched, the pod store).
//! - `rules`: what the run phases derive from the spec (how long runners may
//!   take, the largest reply, the thresholds).
//! - `tls_refs`: Pending's check of the Secrets and ConfigMaps that
//!   `spec.target.tls` references.
//! - `output`: the series pushed while the test runs (`spec.output`):
//!   Pending's check, Running's offers, the verdict's final push.
//! - `scenarios` (tests): every phase and fault against a mocked API server
//!   and real runner agents.
//!
//! Imports run one way: `watch` → `reconcile` → the phases → `rules`,
//! `next`, `context` → the crate's builders, `results` and `agents`;
//! nothing below calls back up.

mod context;
mod finishing;
mod next;
mod output;
mod pending;
mod provisioning;
mod reconcile;
mod rules;
mod running;
#[cfg(test)]
mod scenarios;
mod starting;
mod tearing_down;
mod tls_refs;
mod watch;

pub use context::{Config, Context};
pub use provisioning::setup_timeout;
pub use reconcile::{error_policy, reconcile, typed};
pub use watch::run;
