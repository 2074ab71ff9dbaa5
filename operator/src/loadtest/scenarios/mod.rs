//! Reconcile scenarios without a cluster: the real `reconcile` against the
//! mocked API server of `crate::fixtures`, one scenario per phase transition
//! and per fault. Where a phase talks to runners, the runners are real
//! agents (`barrage_runner::agent`) on loopback addresses, running a real
//! load against a small local target, so the figures the status shows are
//! what the runners measured. They serve TLS with a certificate made for
//! each test, as runner pods do, so every call goes over the pinned channel.

mod pending;
mod provisioning;
mod remote_write;
mod running;
mod starting;
mod target_tls;
mod teardown;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use barrage_runner::{
    agent::{AgentHandle, serve_agent_tls},
    compile::{Slot, compile},
    engine::Runner,
    tls::pinned::{self, Identity, PinnedPem},
};
use k8s_openapi::{
    ByteString,
    api::core::v1::{Pod, Secret},
    jiff::Timestamp,
};
use kube::{
    Client,
    api::{ApiResource, DynamicObject},
    runtime::{
        events::{Recorder, Reporter},
        reflector, watcher,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::{Config, Context};
use crate::{
    crd::{LoadTest, LoadTestStatus, Phase, loadtest_resource},
    fixtures::{collection, object},
    metrics::Metrics,
    pods,
};

pub const NS: &str = "ns1";
pub const NAME: &str = "smoke";
pub const TOKEN: &str = "0123456789abcdef";

/// The spec shared by the scenarios, with `extra` YAML lines appended.
pub fn spec(runners: u32, extra: &str) -> String {
    format!(
        "runners: {runners}\ntarget: {{baseUrl: 'http://127.0.0.1:9'}}\nload: {{users: 1, iterations: 5}}\nrequests: [{{name: a, path: /}}]\n{extra}"
    )
}

/// A LoadTest as the API server holds it: named, with a uid and a
/// generation, in `phase` (with the phase's start `since` ago).
pub fn loadtest(yaml: &str, phase: Phase, since: Duration) -> LoadTest {
    let mut lt = crate::pods::tests::lt(yaml);
    lt.metadata.generation = Some(1);
    lt.status = Some(LoadTestStatus {
        phase,
        phase_since: Some(ago(since).to_string()),
        observed_generation: Some(1),
        ..Default::default()
    });
    lt
}

pub fn ago(d: Duration) -> Timestamp {
    Timestamp::now() - jiff_span(d)
}

fn jiff_span(d: Duration) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::try_from(d).unwrap()
}

/// The object the controller is handed (it watches untyped objects).
pub fn dynamic(lt: &LoadTest) -> Arc<DynamicObject> {
    Arc::new(serde_json::from_value(serde_json::to_value(lt).unwrap()).unwrap())
}

/// A context whose pod store holds `pods` (as after the watch's first
/// list), talking to the mocked API server through `client`, and to agents
/// on `agent_port`.
pub fn context(client: Client, pods: &[Pod], agent_port: u16) -> Arc<Context> {
    let (ctx, writer) = context_with_store(client, Some(pods), agent_port);
    // The writer must outlive the context, or the store reads as stopped.
    std::mem::forget(writer);
    ctx
}

/// A context and the writer of its pod store (the watch's side), which
/// has listed `pods`, or not listed yet (`None`).
pub fn context_with_store(
    client: Client,
    pods: Option<&[Pod]>,
    agent_port: u16,
) -> (Arc<Context>, reflector::store::Writer<Pod>) {
    let (store, mut writer) = reflector::store();
    if let Some(pods) = pods {
        writer.apply_watcher_event(&watcher::Event::Init);
        for p in pods {
            writer.apply_watcher_event(&watcher::Event::InitApply(p.clone()));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
    }
    let config = Config {
        runner: crate::pods::tests::defaults(),
        agent_port,
        start_lead: Duration::from_millis(200),
        network_policy: None,
        remote_write: None,
    };
    let reporter = Reporter {
        controller: "barrage-operator".into(),
        instance: None,
    };
    let mut ctx = Context::new(
        client.clone(),
        config,
        Recorder::new(client, reporter),
        vec![(Some(NS.to_string()), store)],
        Arc::new(Metrics::default()),
    );
    ctx.pods_wait = Duration::from_millis(200);
    (Arc::new(ctx), writer)
}

/// Runner pod `index` of `lt` as the watch sees it: Running and Ready at
/// `ip`, or Pending and not ready without one.
pub fn runner_pod(lt: &LoadTest, index: u32, ip: Option<IpAddr>) -> Pod {
    let mut p = pods::runner_pod(lt, index, &crate::pods::tests::defaults());
    let status = match ip {
        Some(ip) => serde_json::json!({
            "phase": "Running", "podIP": ip.to_string(),
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "runner", "ready": true, "restartCount": 0, "image": "r", "imageID": "",
                                   "state": {"running": {}}}]
        }),
        None => serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available"}]
        }),
    };
    p.status = Some(serde_json::from_value(status).unwrap());
    p
}

pub fn resource<K: k8s_openapi::Resource>() -> ApiResource {
    ApiResource {
        group: K::GROUP.into(),
        version: K::VERSION.into(),
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        plural: K::URL_PATH_SEGMENT.into(),
    }
}

pub fn status_path() -> String {
    format!("{}/status", object(&loadtest_resource(), NS, NAME))
}

pub fn secrets() -> String {
    collection(&resource::<Secret>(), NS)
}

/// Real runners: one agent per runner on its own loopback address
/// (127.0.0.2, 127.0.0.3, ...), all on one port as pods are, each running
/// its slot of `lt`'s plan against `target`, serving TLS with this test's
/// certificate (`secret` is the Secret that holds it).
pub struct Runners {
    pub handles: Vec<AgentHandle>,
    pub port: u16,
    pub tls: PinnedPem,
}

impl Runners {
    pub async fn start(lt: &LoadTest, target: SocketAddr) -> Runners {
        let now = std::time::SystemTime::now();
        let tls = pinned::generate(
            "barrage-agent scenario",
            now,
            now + Duration::from_secs(600),
        )
        .unwrap();
        let server = identity(&tls).server_config().unwrap();
        let count = lt.spec.runners;
        let mut plan = lt.spec.plan.clone();
        plan.target.base_url = format!("http://{target}");
        'port: loop {
            let first = TcpListener::bind((ip(0), 0)).await.unwrap();
            let port = first.local_addr().unwrap().port();
            let mut listeners = vec![first];
            for i in 1..count {
                match TcpListener::bind((ip(i), port)).await {
                    Ok(l) => listeners.push(l),
                    Err(_) => continue 'port,
                }
            }
            let handles = listeners
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    let slot = Slot {
                        index: i as u32,
                        count,
                    };
                    let compiled = compile(&plan, slot, Path::new("."), "spec").unwrap();
                    let runner = Runner::new(Arc::new(compiled));
                    serve_agent_tls(l, runner, TOKEN.into(), server.clone()).unwrap()
                })
                .collect();
            return Runners { handles, port, tls };
        }
    }

    /// The agents' Secret, as the operator made it in Pending (and as the
    /// API server returns it: `data`, not `stringData`).
    pub fn secret(&self, lt: &LoadTest) -> Secret {
        let mut s = pods::token_secret(lt, TOKEN, &self.tls);
        s.data = s.string_data.take().map(|d| {
            d.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect()
        });
        s
    }

    /// A client that talks to these agents as the operator does.
    fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_backend_preconfigured(identity(&self.tls).client_config().unwrap())
            .build()
            .unwrap()
    }

    /// The pods the watch would show for these runners.
    pub fn pods(&self, lt: &LoadTest) -> Vec<Pod> {
        (0..self.handles.len() as u32)
            .map(|i| runner_pod(lt, i, Some(ip(i))))
            .collect()
    }

    /// Starts every runner now, as the operator would, and waits until all
    /// have finished their load.
    pub async fn run_to_end(&self) {
        self.start_now().await;
        self.wait_finished().await;
    }

    /// Starts every runner now, as the operator would.
    pub async fn start_now(&self) {
        let at = super::context::unix_us();
        let http = self.http();
        for h in &self.handles {
            http.post(format!("https://{}/start", h.addr()))
                .bearer_auth(TOKEN)
                .json(&serde_json::json!({ "atUs": at }))
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
        }
    }

    /// How many requests runner `i` reports, from its full snapshot.
    pub async fn requests(&self, i: usize) -> u64 {
        let json = self
            .http()
            .get(format!("https://{}/snapshot", self.handles[i].addr()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        barrage_runner::snapshot::Snapshot::from_json(&json)
            .unwrap()
            .total_requests()
    }

    pub async fn wait_finished(&self) {
        for h in &self.handles {
            tokio::time::timeout(Duration::from_secs(10), h.load_finished())
                .await
                .expect("the runners finish their load");
        }
    }
}

fn identity(tls: &PinnedPem) -> Identity {
    Identity::from_pem(tls.cert.as_bytes(), tls.key.as_bytes()).unwrap()
}

/// Runner `i`'s loopback address.
pub fn ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8))
}

/// How many requests a target received.
#[derive(Clone, Default)]
pub struct Seen(Arc<AtomicU64>);

impl Seen {
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A target that answers every request with `status` on kept-alive
/// connections, counting what it received.
pub async fn target(status: u16) -> (SocketAddr, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Seen::default();
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut have = Vec::new();
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    have.extend_from_slice(&buf[..n]);
                    while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                        have.drain(..end + 4);
                        counter.0.fetch_add(1, Ordering::SeqCst);
                        let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                        if s.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}
