//! `--remote-write` (`BARRAGE_REMOTE_WRITE`), the cluster-wide default
//! receiver: a value that cannot work stops the operator at start with exit
//! status 2 and the field named, before it talks to any cluster, and the
//! message never repeats a credential.

use std::process::Command;

fn run(json: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_barrage-operator"))
        .env_remove("BARRAGE_REMOTE_WRITE")
        .env("KUBECONFIG", "/nonexistent")
        .args(["--remote-write", json])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_bad_default_receiver_exits_2_naming_the_field() {
    for (json, field) in [
        (r#"{"url": "ftp://p/write"}"#, "--remote-write url"),
        (
            r#"{"url": "http://user:s3cr3t@p/write"}"#,
            "--remote-write url",
        ),
        (
            r#"{"url": "http://p", "token": "s3cr3t"}"#,
            "--remote-write token",
        ),
        (
            r#"{"url": "http://p", "bearerTokenFile": "/nonexistent/token"}"#,
            "bearerTokenFile /nonexistent/token",
        ),
        (
            r#"{"url": "http://p", "interval": "10ms"}"#,
            "--remote-write interval",
        ),
    ] {
        let (code, stderr) = run(json);
        assert_eq!(code, Some(2), "{json}: {stderr}");
        assert!(stderr.contains(field), "{json}: {stderr}");
        assert!(!stderr.contains("s3cr3t"), "{json}: {stderr}");
    }
}
