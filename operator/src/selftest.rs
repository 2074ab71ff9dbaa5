//! `barrage-operator selftest`: the chart's `helm test`. In one pod it
//! serves the built-in target (barrage_runner's `serve`, as `barrage-runner
//! serve` does), creates a tiny LoadTest aimed at its own pod IP, waits for
//! it by a watch, prints its summary, deletes it, and succeeds only when the
//! verdict is Passed and every planned request was counted.
//!
//! So a release test proves the whole path of a real install: the operator
//! reconciles in that namespace, runner pods start from the configured
//! image, reach a pod in the cluster and report back exact results.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use barrage_runner::serve::{self, ServeConfig, ServeLimits};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
    runtime::wait::await_condition,
};
use serde_json::json;

use crate::crd::{LoadTest, LoadTestStatus, Phase};

/// Requests the test plans: few enough for seconds of load on any cluster.
pub const ITERATIONS: u64 = 200;

/// The LoadTest the self-test runs: one runner, `ITERATIONS` GETs of `/`
/// at `target`, every one answered 200. `prefix` becomes its generateName.
pub fn loadtest(prefix: &str, target: &str) -> Result<LoadTest, String> {
    let lt = json!({
        "apiVersion": "barrage.dev/v1alpha1",
        "kind": "LoadTest",
        "metadata": {
            "generateName": format!("{prefix}-"),
            "labels": {"app.kubernetes.io/component": "selftest"}
        },
        "spec": {
            "runners": 1,
            "target": {"baseUrl": target},
            "load": {"users": 2, "iterations": ITERATIONS},
            "requests": [{"name": "root", "method": "GET", "path": "/", "expect": {"status": [200]}}],
            "thresholds": ["error_rate < 1%"]
        }
    });
    serde_json::from_value(lt).map_err(|e| format!("the self-test LoadTest does not parse: {e}"))
}

/// Whether the LoadTest is over (a terminal phase).
pub fn finished(lt: Option<&LoadTest>) -> bool {
    lt.and_then(|l| l.status.as_ref())
        .is_some_and(|s| s.phase.is_terminal())
}

/// One line for the test's log: phase, verdict and the figures.
pub fn summary(name: &str, st: &LoadTestStatus) -> String {
    let p95 = st
        .latency_ms
        .as_ref()
        .map(|l| format!("{}ms", l.p95))
        .unwrap_or_else(|| "-".into());
    format!(
        "LoadTest {name}: phase {:?}, verdict {}, requests {}, errors {}, error rate {}, rps {}, p95 {p95}{}",
        st.phase,
        st.verdict.as_deref().unwrap_or("none"),
        st.requests,
        st.errors,
        st.error_rate.as_deref().unwrap_or("-"),
        st.rps,
        st.message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default(),
    )
}

/// The release test's outcome: Ok only for phase Succeeded, verdict Passed
/// and exactly `ITERATIONS` requests counted (anything else is a failed
/// install, said in the error).
pub fn judge(st: &LoadTestStatus) -> Result<(), String> {
    if st.phase != Phase::Succeeded {
        return Err(format!("phase is {:?}, not Succeeded", st.phase));
    }
    if st.verdict.as_deref() != Some("Passed") {
        return Err(format!(
            "verdict is {}, not Passed",
            st.verdict.as_deref().unwrap_or("none")
        ));
    }
    if st.requests != ITERATIONS {
        return Err(format!(
            "{} requests counted, {ITERATIONS} planned",
            st.requests
        ));
    }
    Ok(())
}

pub struct Options {
    pub namespace: String,
    /// The base URL the runners reach this pod at, e.g. http://POD_IP:8080.
    pub target: String,
    /// Where the built-in target listens.
    pub listen: SocketAddr,
    /// The LoadTest's generateName prefix.
    pub name: String,
    pub timeout: Duration,
}

/// Runs the self-test; Ok(summary) on a pass, Err(why) otherwise.
pub async fn run(client: Client, opts: &Options) -> Result<String, String> {
    let config = ServeConfig::builtin();
    config.validate().map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve::serve(
        listener,
        Arc::new(config),
        ServeLimits::default(),
        async {
            let _ = stopped.await;
        },
    ));

    let api: Api<LoadTest> = Api::namespaced(client, &opts.namespace);
    let created = api
        .create(&PostParams::default(), &loadtest(&opts.name, &opts.target)?)
        .await
        .map_err(|e| {
            format!(
                "cannot create the self-test LoadTest in {}: {e}",
                opts.namespace
            )
        })?;
    let name = created.metadata.name.unwrap_or_default();
    eprintln!(
        "created LoadTest {}/{name} against {}",
        opts.namespace, opts.target
    );
    let waited = tokio::time::timeout(
        opts.timeout,
        await_condition(api.clone(), &name, |lt: Option<&LoadTest>| finished(lt)),
    )
    .await;
    let outcome = match waited {
        Err(_) => Err(format!(
            "LoadTest {name} did not finish within {}s (is the operator watching {}?)",
            opts.timeout.as_secs(),
            opts.namespace
        )),
        Ok(Err(e)) => Err(format!("watching LoadTest {name}: {e}")),
        Ok(Ok(None)) => Err(format!("LoadTest {name} was deleted before it finished")),
        Ok(Ok(Some(lt))) => {
            let st = lt.status.unwrap_or_default();
            let line = summary(&name, &st);
            judge(&st)
                .map(|()| line.clone())
                .map_err(|why| format!("{line}\nfailed: {why}"))
        }
    };
    if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
        eprintln!("warning: could not delete LoadTest {name}: {e}");
    }
    let _ = stop.send(());
    let _ = server.await;
    outcome
}

#[cfg(test)]
mod tests;
