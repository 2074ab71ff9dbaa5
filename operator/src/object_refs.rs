//! Checks of references to Secrets and ConfigMaps in a spec: in the
//! runner crate (`barrage_runner::manifest::refs`), shared with
//! `barrage-runner validate`.

pub use barrage_runner::manifest::refs::{object_name, value_from};
