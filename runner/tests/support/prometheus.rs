//! Debian's real `prometheus`, started by a test with its remote-write
//! receiver on, on a free loopback port with a throwaway data directory,
//! and read back with PromQL. Without `prometheus` installed the test fails
//! when `CI` is set and skips loudly otherwise.
#![allow(dead_code)] // each test file uses its own part

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub addr: String,
    http: reqwest::Client,
}

/// The binary (`$PROMETHEUS` or `prometheus` on the PATH), or `None` after
/// saying loudly that the test was skipped (a failure under CI).
pub fn binary() -> Option<PathBuf> {
    let name = std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(&name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = "prometheus is not installed: remote write was NOT checked against a real Prometheus (apt-get install -y prometheus)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("\n!!!!!!!!!! SKIPPED: {msg} !!!!!!!!!!\n");
    }
    found
}

impl Prometheus {
    /// Starts Prometheus (with native histograms when `native`) and waits
    /// until it says it is ready; `None` when it is not installed.
    pub async fn start(native: bool) -> Option<Prometheus> {
        let bin = binary()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!(
            "barrage-prometheus-{}-{port}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        // No scrape jobs: everything it holds was pushed by the test.
        std::fs::write(
            dir.join("prometheus.yml"),
            "global: {}\nscrape_configs: []\n",
        )
        .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(bin);
        cmd.arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).unwrap());
        if native {
            cmd.arg("--enable-feature=native-histograms");
        }
        let child = cmd.spawn().expect("start prometheus");
        let tls = barrage_runner::remote_write::tls::client_config(None, None, None).unwrap();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut p = Prometheus {
            child,
            dir,
            addr,
            http,
        };
        p.wait_ready().await;
        Some(p)
    }

    /// Polls `/-/ready` (the readiness it announces) until it answers 200.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://{}/-/ready", self.addr);
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 60s: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// An instant query's `data.result` (now).
    pub async fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let url = self.url("/api/v1/query", &[("query", q)]);
        let r = self.http.get(url).send().await.unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], "success", "{q}: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A range query's `data.result` over the last `secs` seconds.
    pub async fn query_range(&self, q: &str, secs: u64, step: &str) -> Vec<serde_json::Value> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (start, end) = ((now - secs).to_string(), (now + 1).to_string());
        let url = self.url(
            "/api/v1/query_range",
            &[
                ("query", q),
                ("start", &start),
                ("end", &end),
                ("step", step),
            ],
        );
        let r = self.http.get(url).send().await.unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], "success", "{q}: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn url(&self, path: &str, params: &[(&str, &str)]) -> reqwest::Url {
        let mut u = reqwest::Url::parse(&format!("http://{}{path}", self.addr)).unwrap();
        u.query_pairs_mut().extend_pairs(params);
        u
    }

    /// The single scalar an instant query returns.
    pub async fn value(&self, q: &str) -> f64 {
        let r = self.query(q).await;
        assert_eq!(r.len(), 1, "{q}: {r:?}");
        r[0]["value"][1].as_str().unwrap().parse().unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
