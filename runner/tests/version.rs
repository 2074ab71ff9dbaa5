//! `barrage-runner --version` prints the workspace version, which is the chart's
//! appVersion and so the runner image tag the chart deploys (issue 16; the
//! operator's tests/versions.rs checks the chart and the other binaries).

use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn version_is_the_charts_app_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_barrage-runner"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("barrage-runner {VERSION}")
    );
    let chart = include_str!("../../charts/barrage/Chart.yaml");
    assert!(
        chart
            .lines()
            .any(|l| l == format!("appVersion: \"{VERSION}\"")),
        "charts/barrage/Chart.yaml has no appVersion \"{VERSION}\""
    );
}
