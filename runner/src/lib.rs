//! Barrage's load engine, shared by the `barrage-runner` binary and (through
//! the plan and snapshot types) by the operator. No dependency on kube here.

pub mod duration;
pub mod error;
pub mod serve;
pub mod signal;
pub mod size;
pub mod thresholds;

pub use error::{Error, Result};
pub mod agent;
pub mod compile;
pub mod data;
pub mod engine;
pub mod histogram;
pub mod input;
pub mod limits;
pub mod local;
pub mod plan;
pub mod planfile;
pub mod provision;
pub mod report;
pub mod snapshot;
pub mod template;
pub mod text;
pub mod urlcode;
