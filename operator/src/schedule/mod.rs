//! ScheduledLoadTest: a LoadTest template run on a cron schedule in an IANA
//! time zone, with CronJob's concurrency policies, starting deadline and
//! history limits, and a status that keeps the trend of the runs' results.
//!
//! `cron` parses expressions and finds the instants they name, `policy`
//! decides what is due, `history` computes the status, `runs` builds and
//! reads the LoadTests, `validate` checks a spec, `controller` applies it.
//! `cron`, `policy` and `history` keep their tests in a sibling
//! `tests.rs` (`cron/tests.rs`, ...), so each file holds the logic alone.

pub mod controller;
pub mod crd;
pub mod cron;
pub mod history;
pub mod policy;
pub mod runs;
pub mod validate;

pub use crd::{ScheduledLoadTest, ScheduledLoadTestSpec, ScheduledLoadTestStatus};
