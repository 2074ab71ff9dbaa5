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
    let me = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("barrage-operator-{}", std::process::id()));
    if args.leader_elect {
        tracing::info!(namespace = %ns, identity = %me, "waiting for the leader lease");
        tokio::select! {
            _ = lease::acquire(client.clone(), &ns, "barrage-operator", &me) => {}
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
    if args.leader_elect {
        lease::release(client, &ns, "barrage-operator", &me).await;
    }
    if args.webhook.enabled() {
        let _ = drained.await;
    }
    ExitCode::SUCCESS
}
