//! `barrage-operator`: reconciles LoadTest and ScheduledLoadTest resources.

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use barrage_operator::{
    http, lease,
    loadtest::{self, Config},
    metrics::Metrics,
    netpol::OperatorPeer,
    pods::{AGENT_PORT, RunnerDefaults},
    remote_write::ClusterDefault,
    schedule, webhook,
};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "barrage-operator",
    version,
    about = "Reconciles Barrage LoadTests into runner pods and merged results"
)]
struct Args {
    /// Runner image for LoadTests that name none.
    #[arg(
        long,
        env = "BARRAGE_RUNNER_IMAGE",
        default_value = concat!("docker.io/barrage/runner:", env!("CARGO_PKG_VERSION"))
    )]
    runner_image: String,
    /// Pull policy for runner pods whose LoadTest sets none.
    #[arg(
        long,
        env = "BARRAGE_RUNNER_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    runner_pull_policy: String,
    /// Resources (JSON, a core/v1 ResourceRequirements) for runner pods whose LoadTest sets none.
    #[arg(long, env = "BARRAGE_RUNNER_RESOURCES")]
    runner_resources: Option<String>,
    /// Namespaces to watch, comma-separated (default: the whole cluster).
    #[arg(long, env = "BARRAGE_WATCH_NAMESPACES", value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    /// Alias of --watch-namespaces with one namespace.
    #[arg(long, env = "BARRAGE_NAMESPACE")]
    namespace: Option<String>,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "BARRAGE_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Hold a Lease before reconciling, so that only one replica does.
    #[arg(long, env = "BARRAGE_LEADER_ELECT", default_value_t = false, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// With --leader-elect in a cluster: label this pod (POD_NAME)
    /// barrage.dev/leader=true while it leads, for the metrics Service.
    #[arg(long, env = "BARRAGE_LEADER_LABEL", default_value_t = false, action = clap::ArgAction::Set)]
    leader_label: bool,
    /// How far ahead the common start instant is set, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    start_lead_ms: u64,
    /// This operator's own image, which publishes setup records.
    #[arg(
        long,
        env = "BARRAGE_OPERATOR_IMAGE",
        default_value = concat!("docker.io/barrage/operator:", env!("CARGO_PKG_VERSION"))
    )]
    operator_image: String,
    /// Give each LoadTest a NetworkPolicy admitting its runners' agent port
    /// only from this operator's pods. Off by default: an operator running
    /// outside the cluster is no pod, and such a policy would lock it out.
    #[arg(long, env = "BARRAGE_NETWORK_POLICY", default_value_t = false, action = clap::ArgAction::Set)]
    network_policy: bool,
    /// The namespace this operator runs in (the downward API's metadata.namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    operator_namespace: Option<String>,
    /// This operator's pod labels, `k=v,...`: the pods the runners' policy admits.
    #[arg(long, env = "BARRAGE_OPERATOR_POD_LABELS", default_value = "")]
    operator_pod_labels: String,
    /// Labels of this operator's namespace, `k=v,...` (default:
    /// kubernetes.io/metadata.name=<namespace>, which Kubernetes sets from 1.21).
    #[arg(long, env = "BARRAGE_OPERATOR_NAMESPACE_LABELS", default_value = "")]
    operator_namespace_labels: String,
    /// The cluster-wide Prometheus remote-write receiver for LoadTests whose
    /// spec names none (JSON: url, headers, basicAuth {username,
    /// passwordFile}, bearerTokenFile, tls {caFile, certFile, keyFile,
    /// serverName}, interval, histograms; see docs/metrics.md). Empty: none.
    #[arg(long, env = "BARRAGE_REMOTE_WRITE", default_value = "")]
    remote_write: String,
    #[command(flatten)]
    webhook: webhook::Flags,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// In a setup Job's pod: publish the records file into the LoadTest's
    /// records Secret.
    PublishRecords {
        #[arg(long)]
        file: std::path::PathBuf,
        #[arg(long)]
        secret: String,
        #[arg(long)]
        namespace: String,
        /// A missing file is not an error (a custom setup without records).
        #[arg(long)]
        optional: bool,
        /// What happened is also written here, for the operator to read.
        #[arg(long, default_value = "/dev/termination-log")]
        message_file: std::path::PathBuf,
    },
    /// The CRDs compiled into this binary (what `crdgen` writes to crds/).
    Crds {
        #[command(subcommand)]
        cmd: CrdsCmd,
    },
    /// The chart's `helm test`: serve the built-in target here, run a tiny
    /// LoadTest against it, exit 0 only if its verdict is Passed.
    Selftest {
        /// Where the LoadTest is created (the operator must watch it).
        #[arg(long, env = "POD_NAMESPACE")]
        namespace: String,
        /// The base URL runner pods reach this pod at, e.g. http://POD_IP:8080.
        #[arg(long)]
        target: String,
        /// Where the built-in target listens.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// The LoadTest's name prefix (a random suffix is added).
        #[arg(long, default_value = "barrage-selftest")]
        name: String,
        /// Seconds to wait for the verdict.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
    },
}

#[derive(clap::Subcommand)]
enum CrdsCmd {
    /// Server-side apply them (field manager barrage-crds, forcing
    /// conflicts), then wait until each is Established.
    Apply {
        /// Seconds to wait for Established.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Print them as YAML (the files in crds/).
    Print,
}

async fn client_or_exit() -> Result<kube::Client, ExitCode> {
    kube::Client::try_default()
        .await
        .map_err(|e| fail(format!("cannot reach the Kubernetes API: {e}")))
}

async fn crds(cmd: &CrdsCmd) -> ExitCode {
    match cmd {
        CrdsCmd::Print => {
            for (_, text) in barrage_operator::crdgen::files() {
                print!("{text}");
            }
            ExitCode::SUCCESS
        }
        CrdsCmd::Apply { timeout } => {
            let client = match client_or_exit().await {
                Ok(c) => c,
                Err(code) => return code,
            };
            match barrage_operator::crd_apply::apply(client, Duration::from_secs(*timeout)).await {
                Ok(names) => {
                    println!("applied and established: {}", names.join(", "));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("applying the CRDs failed: {e}")),
            }
        }
    }
}

async fn selftest(opts: barrage_operator::selftest::Options) -> ExitCode {
    let client = match client_or_exit().await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match barrage_operator::selftest::run(client, &opts).await {
        Ok(summary) => {
            println!("{summary}\nselftest passed");
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("{why}");
            fail("selftest failed".into())
        }
    }
}

async fn publish(
    file: &std::path::Path,
    secret: &str,
    namespace: &str,
    optional: bool,
    message_file: &std::path::Path,
) -> ExitCode {
    let result = barrage_operator::publish::run(file, secret, namespace, optional).await;
    let (msg, code) = match result {
        Ok(m) => (m, ExitCode::SUCCESS),
        Err(e) => (format!("publishing records failed: {e}"), ExitCode::FAILURE),
    };
    eprintln!("{msg}");
    // Only where the file can be written (a pod's termination log).
    let _ = std::fs::write(message_file, &msg);
    code
}

/// A flag that cannot work: exit status 2, as clap does for its own errors.
fn bad_flag(msg: String) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn fail(msg: String) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BARRAGE_LOG")
        .unwrap_or_else(|_| "info,kube=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Cmd::PublishRecords {
        file,
        secret,
        namespace,
        optional,
        message_file,
    }) = &args.cmd
    {
        return publish(file, secret, namespace, *optional, message_file).await;
    }
    match args.cmd {
        Some(Cmd::Crds { cmd }) => return crds(&cmd).await,
        Some(Cmd::Selftest {
            namespace,
            target,
            listen,
            name,
            timeout,
        }) => {
            return selftest(barrage_operator::selftest::Options {
                namespace,
                target,
                listen,
                name,
                timeout: Duration::from_secs(timeout),
            })
            .await;
        }
        Some(Cmd::PublishRecords { .. }) | None => {}
    }
    let resources = match args
        .runner_resources
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        None => None,
        Some(j) => match serde_json::from_str(j) {
            Ok(r) => Some(r),
            Err(e) => {
                return fail(format!(
                    "BARRAGE_RUNNER_RESOURCES is not a ResourceRequirements JSON: {e}"
                ));
            }
        },
    };
    let network_policy = if args.network_policy {
        match OperatorPeer::new(
            args.operator_namespace.as_deref(),
            &args.operator_pod_labels,
            &args.operator_namespace_labels,
        ) {
            Ok(p) => Some(p),
            Err(e) => return bad_flag(e),
        }
    } else {
        None
    };
    let remote_write = match ClusterDefault::parse(&args.remote_write) {
        Ok(d) => d,
        Err(e) => return bad_flag(e.to_string()),
    };
    let ns = args
        .operator_namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    if let Err(e) = webhook::check(&args.webhook, &ns) {
        return bad_flag(e);
    }
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot reach the Kubernetes API: {e}")),
    };
    let pod = std::env::var("POD_NAME").ok();
    let me = pod
        .clone()
        .unwrap_or_else(|| format!("barrage-operator-{}", std::process::id()));
    let leadership = args.leader_elect.then(|| {
        let labelled = pod.as_deref().filter(|_| args.leader_label);
        lease::Leadership::new(client.clone(), &ns, "barrage-operator", &me, labelled)
    });
    if args.leader_label && pod.is_none() {
        return bad_flag("--leader-label needs POD_NAME (the downward API's metadata.name)".into());
    }
    // Before serving anything: a container restarted in the same pod after
    // losing the lease must not keep the label the metrics Service selects.
    if let Some(l) = &leadership
        && let Err(e) = l.clear_label().await
    {
        tracing::warn!(error = %e, label = lease::LEADER_LABEL, "cannot remove a stale leader label from this pod");
    }
    let metrics = Arc::new(Metrics::default());
    let (addr, m) = (args.metrics_addr, metrics.clone());
    let server = tokio::spawn(async move { http::serve(addr, m).await });
    // Every replica serves the webhook, leader or standby.
    let (webhook, mut drained) = if args.webhook.enabled() {
        let (c, f, n) = (client.clone(), args.webhook.clone(), ns.clone());
        (
            tokio::spawn(async move { webhook::run(c, f, n).await }),
            tokio::spawn(webhook::drained()),
        )
    } else {
        (tokio::spawn(std::future::pending()), tokio::spawn(async {}))
    };
    if let Some(l) = &leadership {
        tracing::info!(namespace = %ns, identity = %me, "waiting for the leader lease");
        tokio::select! {
            _ = l.acquire() => {}
            res = server => return fail(format!("metrics server stopped: {res:?}")),
            res = webhook => return fail(format!("webhook stopped: {res:?}")),
            // A standby replica stopped: nothing to hand over.
            _ = &mut drained, if args.webhook.enabled() => return ExitCode::SUCCESS,
        }
    } else if server.is_finished() {
        return fail(format!("metrics server stopped: {:?}", server.await));
    } else if webhook.is_finished() {
        return fail(format!("webhook stopped: {:?}", webhook.await));
    }
    let mut namespaces: Vec<String> = args
        .watch_namespaces
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    namespaces.extend(args.namespace);
    let config = Config {
        runner: RunnerDefaults {
            image: args.runner_image,
            pull_policy: args.runner_pull_policy,
            resources,
            operator_image: args.operator_image,
        },
        agent_port: AGENT_PORT as u16,
        start_lead: Duration::from_millis(args.start_lead_ms),
        network_policy,
        remote_write,
    };
    tracing::info!(
        namespaces = ?namespaces,
        network_policy = ?config.network_policy,
        remote_write = ?config.remote_write.as_ref().map(|d| d.redacted_url()),
        "barrage-operator starting"
    );
    // ScheduledLoadTests beside LoadTests: same namespaces, same lease.
    tokio::join!(
        loadtest::run(client.clone(), config, namespaces.clone(), metrics),
        schedule::controller::run(client.clone(), namespaces),
    );
    if let Some(l) = &leadership {
        l.release().await;
    }
    if args.webhook.enabled() {
        let _ = drained.await;
    }
    ExitCode::SUCCESS
}
