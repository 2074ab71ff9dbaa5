//! Versions in one place (issue 16): the workspace version in Cargo.toml is the
//! chart's `version` and `appVersion` (so the chart deploys images tagged with it),
//! what `--version` of barrage-operator and kubectl-barrage prints, and the tag of
//! the operator's default runner and operator images. A bump that misses one fails
//! here (charts/tests/test_chart.py checks the chart side against Cargo.toml too).

use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const CHART: &str = include_str!("../../charts/barrage/Chart.yaml");

fn stdout_of(bin: &str, arg: &str) -> String {
    let out = Command::new(bin)
        .arg(arg)
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success(), "{bin} {arg}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_chart_carries_the_crate_version() {
    let chart: serde_yaml_ng::Value = serde_yaml_ng::from_str(CHART).unwrap();
    for key in ["version", "appVersion"] {
        assert_eq!(
            chart[key].as_str(),
            Some(VERSION),
            "charts/barrage/Chart.yaml {key} must be the workspace version {VERSION} (Cargo.toml)"
        );
    }
}

#[test]
fn every_binary_prints_the_crate_version() {
    for (bin, name) in [
        (env!("CARGO_BIN_EXE_barrage-operator"), "barrage-operator"),
        (env!("CARGO_BIN_EXE_kubectl-barrage"), "kubectl-barrage"),
    ] {
        assert_eq!(
            stdout_of(bin, "--version").trim(),
            format!("{name} {VERSION}")
        );
    }
}

#[test]
fn the_default_images_are_tagged_with_the_crate_version() {
    let help = stdout_of(env!("CARGO_BIN_EXE_barrage-operator"), "--help");
    for image in ["runner", "operator"] {
        let want = format!("[default: docker.io/barrage/{image}:{VERSION}]");
        assert!(help.contains(&want), "no {want} in --help:\n{help}");
    }
    assert!(
        !help.contains(":dev]"),
        "a :dev default image in --help:\n{help}"
    );
}
