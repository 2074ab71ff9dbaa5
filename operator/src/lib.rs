//! Barrage's operator: reconciles LoadTest resources into a provisioning Job
//! and N runner pods, starts them at one instant, and writes their merged
//! results onto the resource; runs ScheduledLoadTests' LoadTests on their
//! cron schedules.

pub mod agents;
pub mod controller;
pub mod crd;
pub mod crdgen;
pub mod downsample;
pub mod error;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod netpol;
pub mod observe;
pub mod phases;
pub mod pods;
pub mod provisioning;
pub mod pss;
pub mod publish;
pub mod report;
pub mod results;
pub mod schedule;
pub mod setup;
pub mod status;
pub mod validate;
