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
// Each test crate includes this file and uses one or both of its functions.
#[allow(dead_code)]
pub async fn run_solo(yaml: &str) -> Report {
    run_workers(yaml, PathBuf::new(), 1).await
}

/// Runs the plan `yaml` (its files relative to `dir`) as `workers`
/// in-process runners, as `--workers` does, without the progress line.
pub async fn run_workers(yaml: &str, dir: PathBuf, workers: u32) -> Report {
    let loaded = planfile::from_str(yaml, dir).unwrap();
    let slots = (0..workers)
        .map(|index| Slot {
            index,
            count: workers,
        })
        .collect();
    local::run(
        &loaded,
        &Options {
            slots,
            progress: false,
        },
    )
    .await
    .unwrap()
}
