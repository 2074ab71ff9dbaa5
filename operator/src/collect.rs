//! Talking to the runners' agents: one start instant for all, cumulative
//! snapshots, stop and shutdown. Calls go to every runner concurrently (a
//! start sent one after another would be skewed by the slowest call).

use std::time::Duration;

use futures::{StreamExt, stream};
use serde::Deserialize;

use crate::error::{Error, Result};

/// At most this many calls in flight at once, so 500 runners do not open 500
/// sockets in the same millisecond.
const PARALLEL: usize = 64;

#[derive(Clone, Debug)]
pub struct RunnerRef {
    pub index: u32,
    pub name: String,
    pub ip: String,
}

/// What a runner's agent says about itself (`GET /status`, `POST /start`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    pub state: String,
    #[serde(default)]
    pub start_at_us: Option<u64>,
    #[serde(default)]
    pub started_us: Option<u64>,
}

#[derive(Clone)]
pub struct Agents {
    http: reqwest::Client,
    port: u16,
}

impl Agents {
    pub fn new(port: u16) -> Agents {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client without TLS always builds");
        Agents { http, port }
    }

    fn url(&self, r: &RunnerRef, path: &str) -> String {
        format!("http://{}:{}{path}", r.ip, self.port)
    }

    async fn call(
        &self,
        r: &RunnerRef,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, String)> {
        let mut req = self
            .http
            .request(method, self.url(r, path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let err = |e: reqwest::Error| Error::Agent {
            runner: r.name.clone(),
            message: e.to_string(),
        };
        let res = req.send().await.map_err(err)?;
        let code = res.status().as_u16();
        let text = res.text().await.map_err(err)?;
        Ok((code, text))
    }

    fn expect_ok(r: &RunnerRef, (code, text): (u16, String), what: &str) -> Result<String> {
        if (200..300).contains(&code) {
            Ok(text)
        } else {
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
                "/start",
                token,
                Some(serde_json::json!({ "atUs": at_us })),
            )
            .await?;
        let text = Self::expect_ok(r, res, "start")?;
        serde_json::from_str(&text).map_err(|e| Error::Agent {
            runner: r.name.clone(),
            message: format!("start: {e}"),
        })
    }

    /// The runner's cumulative snapshot, as JSON (decoded by the caller, so
    /// that many can be merged one at a time).
    pub async fn snapshot(&self, r: &RunnerRef, token: &str, intervals: bool) -> Result<String> {
        let path = if intervals {
            "/snapshot"
        } else {
            "/snapshot?intervals=false"
        };
        let res = self
            .call(r, reqwest::Method::GET, path, token, None)
            .await?;
        Self::expect_ok(r, res, "snapshot")
    }

    pub async fn stop(&self, r: &RunnerRef, token: &str) -> Result<()> {
        let res = self
            .call(r, reqwest::Method::POST, "/stop", token, None)
            .await?;
        Self::expect_ok(r, res, "stop").map(drop)
    }

    pub async fn shutdown(&self, r: &RunnerRef, token: &str) -> Result<()> {
        let res = self
            .call(r, reqwest::Method::POST, "/shutdown", token, None)
            .await?;
        Self::expect_ok(r, res, "shutdown").map(drop)
    }
}

/// Runs `f` for every runner concurrently; results come back in index order.
pub async fn for_all<T, F, Fut>(runners: &[RunnerRef], f: F) -> Vec<(RunnerRef, Result<T>)>
where
    F: Fn(RunnerRef) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut out: Vec<(RunnerRef, Result<T>)> = stream::iter(runners.iter().cloned())
        .map(|r| {
            let fut = f(r.clone());
            async move { (r, fut.await) }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    out.sort_by_key(|(r, _)| r.index);
    out
}
