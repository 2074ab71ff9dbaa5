//! The client of the runners' agents: one start instant for all,
//! incremental snapshot pulls (`results` reads and merges them), stop and
//! shutdown, with the runner crate's own wire types and paths
//! (`barrage_runner::agent`). Calls go to every runner concurrently (a
//! start sent one after another would be skewed by the slowest call).
//!
//! Each LoadTest has its own client: HTTPS to its runners, accepting only
//! the certificate in its Secret and presenting that same certificate
//! (`barrage_runner::tls::pinned`), and its bearer token on every call
//! (`Channel`).

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, stream};

use barrage_runner::{
    agent::{self, AgentStatus, StartRequest},
    plan::Plan,
    tls::pinned::Identity,
};

use crate::error::{Error, Result};

/// At most this many calls in flight at once, so 500 runners do not open 500
/// sockets in the same millisecond.
const PARALLEL: usize = 64;

/// How much of a reply is read, and how that limit is made up (for the
/// error).
#[derive(Clone, Copy)]
struct ReplyLimit {
    bytes: usize,
    rule: &'static str,
}

/// Replies other than snapshots (status, start, stop, shutdown) are one
/// small object.
const CONTROL_REPLY: ReplyLimit = ReplyLimit {
    bytes: 64 * 1024,
    rule: "64 KiB for a control reply",
};

/// How a snapshot's size limit is made up, as the error and docs say it.
pub const SNAPSHOT_LIMIT_RULE: &str =
    "4 MiB + 512 KiB per request name + 16 KiB per report interval, at most 256 MiB";
const SNAPSHOT_BASE: usize = 4 << 20;
const PER_NAME: usize = 512 << 10;
const PER_INTERVAL: usize = 16 << 10;
const SNAPSHOT_MAX: usize = 256 << 20;
/// The plan's `reportInterval`, or the default for its length: the
/// runners' own function (`compile::report_interval`), so the limits here
/// are sized by the width the runners will use.
pub fn report_interval(plan: &Plan) -> Duration {
    barrage_runner::compile::report_interval(plan)
}

/// The most a runner's snapshot of `plan` may take, sized by what it can
/// hold: one histogram per request name (a journey and each of its steps),
/// per named scenario and per journey (its passes), one per report interval
/// over `length` (the plan's length plus its grace), and room for the rest
/// (statuses, errors, the records bitmap).
pub fn snapshot_limit(plan: &Plan, length: Duration) -> usize {
    let names =
        max_names(plan) + plan.scenarios.len() + barrage_runner::compile::max_journeys(plan);
    let intervals = max_intervals(plan, length) as usize;
    SNAPSHOT_BASE
        .saturating_add(names.saturating_mul(PER_NAME))
        .saturating_add(intervals.saturating_mul(PER_INTERVAL))
        .min(SNAPSHOT_MAX)
}

/// The most request names a runner of `plan` can report: each request and
/// each step of a journey (and of its repeat blocks), in the top-level mix
/// and in every named scenario, with their onStart and onStop steps (the
/// runner's own count). Also bounds the scenarios and journeys a runner
/// may report (a plan has fewer of either).
pub fn max_names(plan: &Plan) -> usize {
    barrage_runner::compile::max_names(plan)
}

/// The most report intervals a runner of `plan` can fill in `length` (the
/// plan's length plus its grace), with one to spare at each end.
pub fn max_intervals(plan: &Plan, length: Duration) -> u64 {
    let interval = report_interval(plan).max(Duration::from_millis(100));
    (length.as_micros() / interval.as_micros()) as u64 + 2
}

#[derive(Clone, Debug)]
pub struct RunnerRef {
    pub index: u32,
    pub name: String,
    pub ip: String,
}

/// One LoadTest's way to its runners: the client pinned to its
/// certificate, and its token. Its Debug leaves the token out.
#[derive(Clone)]
pub struct Channel {
    pub agents: Agents,
    pub token: String,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("agents", &self.agents)
            .field("token", &"[elided]")
            .finish()
    }
}

#[derive(Clone)]
pub struct Agents {
    http: reqwest::Client,
    scheme: &'static str,
    port: u16,
}

/// Only where the calls go: the client's TLS config holds the key.
impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents")
            .field("scheme", &self.scheme)
            .field("port", &self.port)
            .finish()
    }
}

impl Agents {
    /// Plain HTTP: for runners whose Secret has no certificate (made by an
    /// operator from before the agent channel had TLS), and tests.
    pub fn new(port: u16) -> Agents {
        // reqwest wants a TLS config even for http:// (it has no crypto
        // provider of its own): one that trusts nothing, never used.
        let none = rustls::ClientConfig::builder_with_provider(barrage_runner::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let http = builder()
            .tls_backend_preconfigured(none)
            .build()
            .expect("an HTTP client with a preconfigured TLS config always builds");
        Agents {
            http,
            scheme: "http",
            port,
        }
    }

    /// HTTPS to agents that present exactly `id`'s certificate, presenting
    /// it in turn (`pinned::Identity::client_config`).
    pub fn pinned(port: u16, id: &Identity) -> Result<Agents> {
        let tls = id.client_config().map_err(Error::Other)?;
        let http = builder()
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| Error::Other(format!("cannot build the agents' client: {e}")))?;
        Ok(Agents {
            http,
            scheme: "https",
            port,
        })
    }

    fn url(&self, r: &RunnerRef, path: &str) -> String {
        format!("{}://{}:{}{path}", self.scheme, r.ip, self.port)
    }

    /// One call; the reply is read up to `limit` bytes, and one longer (by
    /// its Content-Length or as it streams in) is refused without reading on.
    async fn call(
        &self,
        r: &RunnerRef,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&StartRequest>,
        limit: ReplyLimit,
    ) -> Result<(u16, Bytes)> {
        let mut req = self
            .http
            .request(method, self.url(r, path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let err = |e: reqwest::Error| Error::Agent {
            runner: r.name.clone(),
            message: with_causes(&e),
        };
        let mut res = req.send().await.map_err(err)?;
        let code = res.status().as_u16();
        let too_large = || Error::ReplyTooLarge {
            runner: r.name.clone(),
            what: path
                .split('?')
                .next()
                .unwrap_or(path)
                .trim_start_matches('/')
                .into(),
            limit: limit.bytes,
            rule: limit.rule,
        };
        if res.content_length().is_some_and(|n| n > limit.bytes as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(err)? {
            if body.len() + chunk.len() > limit.bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((code, body.into()))
    }

    fn expect_ok(r: &RunnerRef, (code, body): (u16, Bytes), what: &str) -> Result<Bytes> {
        if (200..300).contains(&code) {
            Ok(body)
        } else {
            let text = String::from_utf8_lossy(&body);
            Err(Error::Agent {
                runner: r.name.clone(),
                message: format!(
                    "{what} answered {code}: {}",
                    text.chars().take(300).collect::<String>()
                ),
            })
        }
    }

    /// Asks a runner to start at `at_us`. The agent accepts the same instant
    /// again (so a restarted operator may repeat it) and refuses another one.
    pub async fn start(&self, r: &RunnerRef, token: &str, at_us: u64) -> Result<AgentStatus> {
        let res = self
            .call(
                r,
                reqwest::Method::POST,
                agent::START,
                token,
                Some(&StartRequest { at_us }),
                CONTROL_REPLY,
            )
            .await?;
        let body = Self::expect_ok(r, res, "start")?;
        serde_json::from_slice(&body).map_err(|e| Error::Agent {
            runner: r.name.clone(),
            message: format!("start: {e}"),
        })
    }

    /// What changed in a runner's results since `since` (its
    /// `SnapshotDelta`, undecoded: `results` decodes and merges it), if
    /// under `limit` bytes (`snapshot_limit`).
    pub async fn pull(
        &self,
        r: &RunnerRef,
        token: &str,
        since: u64,
        limit: usize,
    ) -> Result<Bytes> {
        let res = self
            .call(
                r,
                reqwest::Method::GET,
                &agent::snapshot_since(since),
                token,
                None,
                ReplyLimit {
                    bytes: limit,
                    rule: SNAPSHOT_LIMIT_RULE,
                },
            )
            .await?;
        Self::expect_ok(r, res, "snapshot")
    }

    pub async fn stop(&self, r: &RunnerRef, token: &str) -> Result<()> {
        let res = self
            .call(
                r,
                reqwest::Method::POST,
                agent::STOP,
                token,
                None,
                CONTROL_REPLY,
            )
            .await?;
        Self::expect_ok(r, res, "stop").map(drop)
    }

    pub async fn shutdown(&self, r: &RunnerRef, token: &str) -> Result<()> {
        let res = self
            .call(
                r,
                reqwest::Method::POST,
                agent::SHUTDOWN,
                token,
                None,
                CONTROL_REPLY,
            )
            .await?;
        Self::expect_ok(r, res, "shutdown").map(drop)
    }
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
}

/// An error and its causes: reqwest's own text is only "error sending
/// request", the reason (e.g. a refused certificate) is further down.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !text.contains(&t) {
            text = format!("{text}: {t}");
        }
        cause = c.source();
    }
    text
}

/// Runs `f` for every runner concurrently; results come back in index order.
pub async fn for_all<T, F, Fut>(runners: &[RunnerRef], f: F) -> Vec<(RunnerRef, Result<T>)>
where
    F: Fn(RunnerRef) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut out: Vec<(RunnerRef, Result<T>)> = each(runners, f).collect().await;
    out.sort_by_key(|(r, _)| r.index);
    out
}

/// Runs `f` for every runner concurrently; results come as they complete,
/// so a caller can use each (and drop it) before the slowest is in.
pub fn each<'a, T, F, Fut>(
    runners: &'a [RunnerRef],
    f: F,
) -> impl Stream<Item = (RunnerRef, Result<T>)> + 'a
where
    F: Fn(RunnerRef) -> Fut + 'a,
    Fut: Future<Output = Result<T>> + 'a,
    T: 'a,
{
    stream::iter(runners.iter().cloned())
        .map(move |r| {
            let fut = f(r.clone());
            async move { (r, fut.await) }
        })
        .buffer_unordered(PARALLEL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    /// A fake agent on 127.0.0.1 answering every connection with `head`,
    /// then `body_chunk` over and over until the client hangs up (`endless`)
    /// or once.
    async fn fake_agent(head: String, body_chunk: Vec<u8>, endless: bool) -> (u16, RunnerRef) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (head, chunk) = (head.clone(), body_chunk.clone());
                tokio::spawn(async move {
                    let mut req = [0u8; 4096];
                    let _ = s.read(&mut req).await;
                    s.write_all(head.as_bytes()).await?;
                    loop {
                        s.write_all(&chunk).await?;
                        if !endless {
                            return Ok::<_, std::io::Error>(());
                        }
                    }
                });
            }
        });
        let r = RunnerRef {
            index: 3,
            name: "lt-runner-3".into(),
            ip: "127.0.0.1".into(),
        };
        (port, r)
    }

    fn chunked(data: &[u8]) -> Vec<u8> {
        let mut c = format!("{:x}\r\n", data.len()).into_bytes();
        c.extend_from_slice(data);
        c.extend_from_slice(b"\r\n");
        c
    }

    #[tokio::test]
    async fn an_endless_reply_is_cut_at_the_limit_and_names_the_runner() {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (port, r) = fake_agent(head.into(), chunked(&[b'x'; 64 * 1024]), true).await;
        let agents = Agents::new(port);
        let limit = 1 << 20;
        let err = tokio::time::timeout(Duration::from_secs(10), agents.pull(&r, "t", 0, limit))
            .await
            .expect("the read stops at the limit")
            .unwrap_err();
        assert!(
            matches!(err, Error::ReplyTooLarge { limit: 1048576, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("lt-runner-3") && msg.contains("1048576"),
            "{msg}"
        );
        assert!(
            msg.contains("snapshot") && msg.contains("per request name"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_declared_oversized_reply_is_refused_unread_and_a_small_one_read() {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 1u64 << 40);
        let (port, r) = fake_agent(head, vec![b'x'; 1024], false).await;
        let err = Agents::new(port).stop(&r, "t").await.unwrap_err();
        assert!(
            matches!(err, Error::ReplyTooLarge { limit, .. } if limit == CONTROL_REPLY.bytes),
            "{err}"
        );
        assert!(
            err.to_string().contains("64 KiB for a control reply"),
            "{err}"
        );

        let body = r#"{"state":"ready"}"#;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        let (port, r) = fake_agent(head, body.into(), false).await;
        let got = Agents::new(port).pull(&r, "t", 0, 100).await.unwrap();
        assert_eq!(got, body.as_bytes());
    }

    /// A real agent on 127.0.0.1 serving TLS with `id` (its load never
    /// started), and how to reach it.
    async fn tls_agent(id: &Identity) -> (barrage_runner::agent::AgentHandle, RunnerRef) {
        let plan: Plan = serde_yaml_ng::from_str(
            "target: {baseUrl: 'http://127.0.0.1:9'}\nload: {users: 1, iterations: 1}\nrequests: [{name: a, path: /}]",
        )
        .unwrap();
        let slot = barrage_runner::compile::Slot { index: 0, count: 1 };
        let compiled =
            barrage_runner::compile::compile(&plan, slot, std::path::Path::new("."), "spec")
                .unwrap();
        let runner = barrage_runner::engine::Runner::new(std::sync::Arc::new(compiled));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = id.server_config().unwrap();
        let h =
            barrage_runner::agent::serve_agent_tls(listener, runner, "t0k".into(), tls).unwrap();
        let r = RunnerRef {
            index: 0,
            name: "lt-runner-0".into(),
            ip: "127.0.0.1".into(),
        };
        (h, r)
    }

    fn identity() -> (barrage_runner::tls::pinned::PinnedPem, Identity) {
        let now = std::time::SystemTime::now();
        let pem =
            barrage_runner::tls::pinned::generate("t", now, now + Duration::from_secs(60)).unwrap();
        let id = Identity::from_pem(pem.cert.as_bytes(), pem.key.as_bytes()).unwrap();
        (pem, id)
    }

    #[tokio::test]
    async fn the_pinned_client_talks_to_its_agent_and_refuses_another() {
        let (pem, id) = identity();
        let (h, r) = tls_agent(&id).await;
        let agents = Agents::pinned(h.addr().port(), &id).unwrap();
        let st = agents.start(&r, "t0k", u64::MAX / 2).await.unwrap();
        assert_eq!(st.start_at_us, Some(u64::MAX / 2));
        // The token is still required over the pinned channel.
        let e = agents.stop(&r, "wrong").await.unwrap_err().to_string();
        assert!(e.contains("401"), "{e}");

        // An agent with another certificate (another LoadTest's, or an
        // impostor at a reused pod IP) is not talked to.
        let (_, other) = identity();
        let (h2, r2) = tls_agent(&other).await;
        let agents = Agents::pinned(h2.addr().port(), &id).unwrap();
        let e = agents.stop(&r2, "t0k").await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("lt-runner-0")
                && msg.contains("other than this LoadTest's agent certificate"),
            "{msg}"
        );
        assert_eq!(h2.status().state, barrage_runner::agent::AgentState::Ready);

        // Nothing that holds the key or the token shows them.
        let ch = Channel {
            agents,
            token: "t0k".into(),
        };
        let shown = format!("{ch:?} {id:?}");
        assert!(!shown.contains("t0k"), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(!shown.contains(pem.key.lines().nth(1).unwrap()), "{shown}");
    }

    #[tokio::test]
    async fn a_plain_client_gets_no_answer_from_a_tls_agent() {
        let (_, id) = identity();
        let (h, r) = tls_agent(&id).await;
        let e = Agents::new(h.addr().port())
            .stop(&r, "t0k")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Agent { .. }), "{e}");
    }

    #[test]
    fn the_snapshot_limit_grows_with_names_and_intervals_up_to_a_cap() {
        let plan = |yaml: &str| -> Plan { serde_yaml_ng::from_str(yaml).unwrap() };
        let base = "target: {baseUrl: 'http://x'}\nload: {users: 1, duration: 10s}\n";
        let one = plan(&format!(
            "{base}reportInterval: 10s\nrequests: [{{name: a, path: /}}]"
        ));
        let ten_min = Duration::from_secs(600);
        // One name, 600 s / 10 s + 2 intervals.
        assert_eq!(
            snapshot_limit(&one, ten_min),
            (4 << 20) + (512 << 10) + 62 * (16 << 10)
        );
        // Without reportInterval, by the default the runners take for a
        // 10 s test (1s): 600 s / 1 s + 2.
        let default = plan(&format!("{base}requests: [{{name: a, path: /}}]"));
        assert_eq!(report_interval(&default), Duration::from_secs(1));
        assert_eq!(max_intervals(&default, ten_min), 602);
        let journey = plan(&format!(
            "{base}requests: [{{name: j, steps: [{{name: s1, path: /}}, {{name: s2, path: /}}]}}]"
        ));
        assert!(snapshot_limit(&journey, ten_min) > snapshot_limit(&one, ten_min));
        // A repeat block's steps are names of their own: j/a to j/d.
        let burst = plan(&format!(
            "{base}requests: [{{name: j, steps: [{{name: a, path: /}}, {{repeat: 3, steps: [{{name: b, path: /}}, {{name: c, path: /}}, {{name: d, path: /}}]}}]}}]"
        ));
        assert!(max_names(&burst) >= 4, "{}", max_names(&burst));
        let fine = plan(&format!(
            "{base}reportInterval: 1s\nrequests: [{{name: a, path: /}}]"
        ));
        assert!(snapshot_limit(&fine, ten_min) > snapshot_limit(&one, ten_min));
        let week = Duration::from_secs(7 * 86400);
        assert_eq!(snapshot_limit(&fine, week), SNAPSHOT_MAX);
    }

    #[test]
    fn named_scenarios_and_user_journeys_count_as_names() {
        let plan = |yaml: &str| -> Plan { serde_yaml_ng::from_str(yaml).unwrap() };
        let p = plan(
            "target: {baseUrl: 'http://x'}\n\
             scenarios:\n\
             \x20 browse: {load: {users: 1, duration: 10s}, requests: [{name: home, path: /}]}\n\
             \x20 buy:\n\
             \x20   load: {users: 1, duration: 10s}\n\
             \x20   onStart: {steps: [{name: login, path: /login}]}\n\
             \x20   requests: [{name: checkout, steps: [{name: cart, path: /}, {name: pay, path: /}]}]\n",
        );
        // home; onStart + login; checkout + cart + pay.
        assert_eq!(max_names(&p), 6);
        assert_eq!(barrage_runner::compile::max_journeys(&p), 2);
        let ten_min = Duration::from_secs(600);
        let one = plan(
            "target: {baseUrl: 'http://x'}\nload: {users: 1, duration: 10s}\nrequests: [{name: a, path: /}]",
        );
        // 6 names, 2 scenarios and 2 journeys against 1 name.
        let extra = snapshot_limit(&p, ten_min) - snapshot_limit(&one, ten_min);
        assert_eq!(extra, 9 * (512 << 10));
    }
}
