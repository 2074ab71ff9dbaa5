//! Barrage's operator: reconciles LoadTest resources into a provisioning Job
//! and N runner pods, starts them at one instant, writes their merged
//! results onto the resource, then runs the teardown Job; runs ScheduledLoadTests' LoadTests on their
//! cron schedules.
//!
//! A newcomer's map: the LoadTest lifecycle is `loadtest` (its `reconcile`
//! writes the status, once per reconcile; one file per phase). A LoadTest
//! becomes pods in the pure builders `pods`, `setup`, `teardown` and
//! `netpol`, with
//! `target_tls` mounting what `spec.target.tls` references. Runners'
//! results are pulled by `agents` and merged in `results`; `status` writes
//! them into the status; `remote_write` pushes them to a Prometheus
//! remote-write receiver while the test runs. `webhook` is the admission
//! webhook (the same validation, at `kubectl apply`). `schedule` is the
//! ScheduledLoadTest controller; `report` the `kubectl barrage` plugin.

pub mod agents;
pub mod cluster;
pub mod crd;
pub mod crd_apply;
pub mod crdgen;
pub mod downsample;
pub mod error;
#[cfg(test)]
pub mod fixtures;
pub mod http;
pub mod lease;
pub mod loadtest;
pub mod metrics;
pub mod netpol;
pub mod object_refs;
pub mod observe;
pub mod pods;
pub mod progress;
pub mod pss;
pub mod publish;
pub mod remote_write;
pub mod report;
pub mod results;
pub mod schedule;
pub mod selftest;
pub mod setup;
pub mod status;
pub mod target_tls;
pub mod teardown;
pub mod validate;
pub mod webhook;
