//! Running a plan in this process, as `barrage-runner run` does with one
//! runner, for the tests that drive the engine through its whole path.

use std::path::PathBuf;

use barrage_runner::{
    compile::Slot,
    local::{self, Options},
    planfile,
    report::Report,
};

/// Runs the plan `yaml` as one local runner, without the progress line.
pub async fn run_solo(yaml: &str) -> Report {
    let loaded = planfile::from_str(yaml, PathBuf::new()).unwrap();
    local::run(
        &loaded,
        &Options {
            slots: vec![Slot::SOLO],
            progress: false,
        },
    )
    .await
    .unwrap()
}
