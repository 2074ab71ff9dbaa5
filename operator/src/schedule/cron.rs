//! The schedule's cron and time-zone rules live in the runner crate
//! (`barrage_runner::manifest::cron`), so `barrage-runner validate` checks a
//! ScheduledLoadTest exactly as the operator does.

pub use barrage_runner::manifest::cron::*;
