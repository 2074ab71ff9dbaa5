//! `spec.output.prometheusRemoteWrite`: Pending reads the Secret the spec
//! references and fails the test naming it when it is missing; Running
//! starts the pusher with the token from it, pushes to a local receiver,
//! and shows what was delivered in `status.output` (on from what the status
//! held before an operator restart), the URL without its query and the
//! token nowhere; a receiver that refuses changes no verdict.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;
use crate::{
    fixtures::{Call, Reply, Scenario},
    loadtest::reconcile,
};

const TOKEN_VALUE: &str = "rw-t0k3n-s3cr3t";

fn output(url: &str) -> String {
    format!(
        "output: {{prometheusRemoteWrite: {{url: '{url}', bearerTokenFrom: {{secret: rw, key: token}}, interval: 1s}}}}"
    )
}

fn rw_secret() -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some("rw".into());
    s.data = Some(
        [(
            "token".to_string(),
            ByteString(format!("{TOKEN_VALUE}\n").into_bytes()),
        )]
        .into(),
    );
    s
}

fn get_rw_secret() -> Call {
    Call::get(object(&resource::<Secret>(), NS, "rw"))
}

#[tokio::test]
async fn a_missing_token_secret_fails_the_test_naming_it_before_anything_is_made() {
    let mut lt = loadtest(
        &spec(1, &output("http://127.0.0.1:9/api/v1/write")),
        Phase::Pending,
        Duration::ZERO,
    );
    lt.status = None;
    let msg = "spec.output.prometheusRemoteWrite.bearerTokenFrom: secret \"rw\" not found";
    let (client, mut server) = Scenario::new("missing remote-write Secret")
        .expect(get_rw_secret().reply(Reply::not_found("secrets \"rw\"")))
        .expect(Call::patch(status_path()).body(
            "Failed, Validated False, the field named",
            move |b| {
                b["status"]["phase"] == "Failed"
                    && b["status"]["message"] == msg
                    && b["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| {
                            c["type"] == "Validated"
                                && c["status"] == "False"
                                && c["reason"] == "RemoteWriteNotFound"
                        })
            },
        ))
        .expect(Call::event("Failed").includes(json!({"type": "Warning"})))
        .serve();
    let ctx = context(client, &[], 0);
    let action = server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(action, Action::await_change());
}

/// What a receiver was sent: each request's head (lowercased) and body length.
#[derive(Clone, Default)]
pub struct Received(Arc<Mutex<Vec<(String, usize)>>>);

impl Received {
    pub fn requests(&self) -> Vec<(String, usize)> {
        self.0.lock().unwrap().clone()
    }
}

/// A remote-write receiver that answers every push with `status` (e.g.
/// "204 No Content").
pub async fn receiver(status: &'static str) -> (std::net::SocketAddr, Received) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let got = Received::default();
    let log = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut have = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&have[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if have.len() < end + 4 + len {
                            break;
                        }
                        have.drain(..end + 4 + len);
                        log.0.lock().unwrap().push((head, len));
                        let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                        if s.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    (addr, got)
}

fn remote_write_status(s: &Value) -> &Value {
    &s["output"]["prometheusRemoteWrite"]
}

#[tokio::test]
async fn the_verdict_pushes_the_final_figures_and_the_status_counts_on_from_before_a_restart() {
    let (at, received) = receiver("204 No Content").await;
    let url = format!("http://{at}/api/v1/write?tenant=a");
    let shown = format!("http://{at}/api/v1/write");
    let mut lt = loadtest(
        &spec(2, &output(&url)),
        Phase::Running,
        Duration::from_secs(1),
    );
    let st = lt.status.as_mut().unwrap();
    st.start_at_us = Some(super::super::context::unix_us());
    // What an operator that restarted had shown: the counts go on from it.
    st.output = Some(crate::crd::OutputStatus {
        prometheus_remote_write: Some(crate::crd::RemoteWriteStatus {
            url: shown.clone(),
            pushes: 3,
            samples: 100,
            ..Default::default()
        }),
    });
    let (addr, seen) = target(200).await;
    let runners = Runners::start(&lt, addr).await;
    runners.run_to_end().await;
    let (client, mut server) = Scenario::new("remote write to the end")
        .expect(
            Call::get(object(&resource::<Secret>(), NS, "smoke-token"))
                .reply(Reply::ok(&runners.secret(&lt))),
        )
        .expect(get_rw_secret().reply(Reply::ok(&rw_secret())))
        .expect(Call::patch(object(
            &resource::<k8s_openapi::api::core::v1::ConfigMap>(),
            NS,
            "smoke-report",
        )))
        .expect(
            Call::patch(status_path()).body("Succeeded, with status.output", move |b| {
                let s = &b["status"];
                let rw = remote_write_status(s);
                s["phase"] == "Succeeded"
                    && s["requests"] == 5
                    && rw["url"] == shown.as_str()
                    && rw["pushes"].as_u64().is_some_and(|n| n >= 4)
                    && rw["samples"].as_u64().is_some_and(|n| n > 100)
                    && rw["undelivered"] == 0
                    && rw.get("lastError").is_none()
            }),
        )
        .expect(Call::event("Succeeded"))
        .serve();
    let ctx = context(client, &runners.pods(&lt), runners.port);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(seen.count(), 5);
    // The token went into the receiver's requests and into no API call.
    let written: String = server
        .seen()
        .iter()
        .filter_map(|s| s.body.as_ref().map(|b| b.to_string()))
        .collect();
    assert!(!written.contains(TOKEN_VALUE));
    let pushes = received.requests();
    assert!(!pushes.is_empty(), "the receiver got no push");
    for (head, len) in pushes {
        assert!(head.starts_with("post /api/v1/write?tenant=a "), "{head}");
        assert!(
            head.contains("content-encoding: snappy") && len > 0,
            "{head}"
        );
        assert!(
            head.contains(&format!("authorization: bearer {TOKEN_VALUE}").to_ascii_lowercase()),
            "{head}"
        );
    }
}

#[tokio::test]
async fn a_receiver_that_refuses_costs_the_test_nothing_and_the_status_counts_it() {
    let (at, received) = receiver("401 Unauthorized").await;
    let url = format!("http://{at}/api/v1/write");
    let mut lt = loadtest(
        &spec(1, &output(&url)),
        Phase::Running,
        Duration::from_secs(1),
    );
    lt.status.as_mut().unwrap().start_at_us = Some(super::super::context::unix_us());
    let (addr, seen) = target(200).await;
    let runners = Runners::start(&lt, addr).await;
    runners.run_to_end().await;
    let (client, mut server) = Scenario::new("remote write refused")
        .expect(
            Call::get(object(&resource::<Secret>(), NS, "smoke-token"))
                .reply(Reply::ok(&runners.secret(&lt))),
        )
        .expect(get_rw_secret().reply(Reply::ok(&rw_secret())))
        .expect(Call::patch(object(
            &resource::<k8s_openapi::api::core::v1::ConfigMap>(),
            NS,
            "smoke-report",
        )))
        .expect(
            Call::patch(status_path()).body("Passed, the refusal counted", |b| {
                let s = &b["status"];
                let rw = remote_write_status(s);
                s["verdict"] == "Passed"
                    && s["requests"] == 5
                    && rw["pushes"] == 0
                    && rw["undelivered"].as_u64().is_some_and(|n| n > 0)
                    && rw["lastError"].as_str().is_some_and(|e| e.contains("401"))
            }),
        )
        .expect(Call::event("Succeeded"))
        .serve();
    let ctx = context(client, &runners.pods(&lt), runners.port);
    server.run(reconcile(dynamic(&lt), ctx)).await.unwrap();
    assert_eq!(seen.count(), 5);
    assert!(!received.requests().is_empty());
}
