//! `barrage-operator`: reconciles LoadTest resources.

use std::time::Duration;

use barrage_operator::controller::{self, Config};
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
        default_value = "docker.io/barrage/runner:dev"
    )]
    runner_image: String,
    /// Watch only this namespace (default: the whole cluster).
    #[arg(long, env = "BARRAGE_NAMESPACE")]
    namespace: Option<String>,
    /// How far ahead the common start instant is set, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    start_lead_ms: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BARRAGE_LOG")
        .unwrap_or_else(|_| "info,kube=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot reach the Kubernetes API: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let config = Config {
        runner_image: args.runner_image,
        agent_port: barrage_operator::pods::AGENT_PORT as u16,
        start_lead: Duration::from_millis(args.start_lead_ms),
    };
    tracing::info!(namespace = ?args.namespace, "barrage-operator starting");
    controller::run(client, config, args.namespace).await;
    std::process::ExitCode::SUCCESS
}
