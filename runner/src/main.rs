//! `barrage-runner`: run a plan locally, provision test data, tear down
//! after a test, serve the built-in target, run the demo, or serve as a
//! runner pod's agent.

use std::{path::PathBuf, process::ExitCode};

use barrage_runner::{
    Error,
    compile::Slot,
    local::{self, Options},
    planfile::{self, Loaded},
    remote_write,
    report::Report,
    serve::{self, ServeConfig},
    teardown::{self, Teardown},
    text,
};
use clap::{Parser, Subcommand};

/// Exit status when the run completed but a threshold failed (as k6 does).
const EXIT_THRESHOLDS: u8 = 99;
/// Exit status for a plan or option that is not valid.
pub(crate) const EXIT_INVALID: u8 = 2;
/// Exit status when the engine itself failed (a task panicked): what was
/// measured is reported, but the run is no verdict.
const EXIT_ENGINE: u8 = 103;

mod setup_cmd;
mod teardown_cmd;
mod validate_cmd;

use teardown_cmd::{compile_teardown, run_teardown, teardown_json, teardown_only};

const QUICKSTART: &str = include_str!("../../examples/quickstart.yaml");

#[derive(Parser)]
#[command(
    name = "barrage-runner",
    version,
    about = "Barrage's load engine: run load tests locally or as a runner pod"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Output {
    /// Write the JSON report (summary, thresholds and merged histograms) here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a small JSON summary here (e.g. /dev/termination-log in a pod).
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// No live progress line and no text summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a plan (a LoadTest manifest or the plan alone) from FILE.
    Run {
        file: PathBuf,
        /// Split the plan over N in-process runners, merged like a cluster's.
        #[arg(long, default_value_t = 1)]
        workers: u32,
        /// Run only this runner's share of the plan (0-based)...
        #[arg(long, env = "BARRAGE_RUNNER_INDEX", requires = "runner_count")]
        runner_index: Option<u32>,
        /// ...out of this many runners.
        #[arg(long, env = "BARRAGE_RUNNER_COUNT", requires = "runner_index")]
        runner_count: Option<u32>,
        /// How long the plan's teardown may take after the load (also after
        /// a Ctrl-C); runs not finished by then count as failed.
        #[arg(long, default_value = "5m", value_parser = positive_duration)]
        teardown_timeout: std::time::Duration,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        prometheus: barrage_runner::remote_write::cli::Flags,
    },
    /// Check plans, LoadTest and ScheduledLoadTest manifests (several per
    /// file as multi-document YAML; `-` reads stdin) without sending
    /// anything: every error of every document. Exit 0 when all are valid,
    /// 2 when any is invalid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `text`, or `json`: one JSON document for CI (docs/validate.md).
        #[arg(long, short, value_enum, default_value = "text")]
        output: validate_cmd::Format,
    },
    /// Provision test data: run FILE's setup (a LoadTest manifest's
    /// spec.setup, or a file with `target` and `setup`) once per user and
    /// write one record per successful user as JSON lines.
    Setup {
        file: PathBuf,
        /// Where the records go.
        #[arg(long, short, default_value = "records.jsonl")]
        out: PathBuf,
        /// Stop after this long; users not finished by then count as failed.
        #[arg(long, value_parser = barrage_runner::duration::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// A failure's message is also written here (e.g. /dev/termination-log).
        #[arg(long)]
        message_file: Option<PathBuf>,
        /// Only errors.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run FILE's teardown (a plan or a LoadTest manifest with `teardown`):
    /// once, or with `perRecord` once per record of its data. Prints the
    /// outcome; exit 1 when a run failed.
    Teardown {
        file: PathBuf,
        /// The records (JSON lines, as `setup` writes them), instead of the
        /// plan's data.file.
        #[arg(long)]
        records: Option<PathBuf>,
        /// Stop after this long; runs not finished by then count as failed.
        #[arg(long, default_value = "5m", value_parser = positive_duration)]
        timeout: std::time::Duration,
        /// The outcome (JSON: runs, failed, firstFailure), or the error that
        /// kept the teardown from running, is also written here (e.g.
        /// /dev/termination-log).
        #[arg(long)]
        message_file: Option<PathBuf>,
        /// Only errors.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Serve the built-in target for demos and tests.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Routes file (YAML); the built-in demo routes when absent.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Close a connection whose request head is not complete this long
        /// after its first byte (slowloris).
        #[arg(long, default_value = "10s", value_parser = positive_duration)]
        header_read_timeout: std::time::Duration,
        /// Close a connection with no request in progress after this long.
        #[arg(long, default_value = "60s", value_parser = positive_duration)]
        idle_timeout: std::time::Duration,
        /// Open connections at most; at the cap, idle ones are closed to make room.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: u32,
        /// Serve HTTPS with this certificate chain (PEM, leaf first)...
        #[arg(
            long,
            value_name = "FILE",
            requires = "tls_key",
            conflicts_with = "tls_self_signed"
        )]
        tls_cert: Option<PathBuf>,
        /// ...and this private key (PEM: PKCS#8, PKCS#1 or SEC1).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Serve HTTPS with a CA and a certificate made at start for the listen
        /// address's IP, localhost and each --tls-name; writes DIR/ca.pem for
        /// clients to trust and DIR/client.pem + DIR/client-key.pem (mode 0600),
        /// a client certificate signed by the same CA.
        #[arg(long, value_name = "DIR")]
        tls_self_signed: Option<PathBuf>,
        /// Another name (DNS name or IP) for the self-signed certificate; repeatable.
        #[arg(long, value_name = "NAME", requires = "tls_self_signed")]
        tls_name: Vec<String>,
        /// Require client certificates chaining to this CA (PEM); without one
        /// the handshake is refused.
        #[arg(long, value_name = "FILE")]
        tls_client_ca: Option<PathBuf>,
        /// Require client certificates signed by the self-signed CA.
        #[arg(long, requires = "tls_self_signed", conflicts_with = "tls_client_ca")]
        tls_require_client_cert: bool,
        /// Speak only HTTP/1.1 (no h2c; over TLS, ALPN offers only http/1.1).
        #[arg(long, conflicts_with = "http2_only")]
        http1_only: bool,
        /// Speak only HTTP/2 (h2c by prior knowledge; over TLS, ALPN h2).
        #[arg(long)]
        http2_only: bool,
    },
    /// Run as a runner pod: compile this slot of the plan, then start, report
    /// and stop as the operator asks over HTTPS (HTTP without --tls-cert).
    Agent {
        #[arg(long)]
        plan: PathBuf,
        #[arg(long, default_value = "0.0.0.0:9090")]
        listen: String,
        /// File holding the bearer token the operator sends.
        #[arg(long)]
        token_file: PathBuf,
        /// This runner's slot (0-based)...
        #[arg(long, env = "BARRAGE_RUNNER_INDEX")]
        runner_index: u32,
        /// ...out of this many runners.
        #[arg(long, env = "BARRAGE_RUNNER_COUNT")]
        runner_count: u32,
        /// Exit this long after the load finished, even without /shutdown.
        #[arg(long, default_value = "10m", value_parser = barrage_runner::duration::parse_duration)]
        linger: std::time::Duration,
        /// Startup errors are also written here if the file exists.
        #[arg(long, default_value = "/dev/termination-log", hide = true)]
        termination_log: PathBuf,
        /// Serve TLS only, with this certificate (PEM, exactly one), and
        /// require the client to present the very same one. Without it the
        /// agent serves plain HTTP.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The key of --tls-cert (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// One GET to a runner's agent port, to show what it answers: plain HTTP
    /// (http://), TLS without a client certificate, with a throwaway one,
    /// or with the LoadTest's (https://). Exit 0 with an HTTP answer, 1
    /// without (the reason is printed). For e2e checks from a pod.
    #[command(hide = true)]
    ProbeAgent {
        /// e.g. https://10.0.0.7:9090/status (the path defaults to /healthz).
        url: String,
        /// Present this certificate (and pin the agent's to it).
        #[arg(long, requires = "tls_key", conflicts_with = "throwaway_cert")]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Present a freshly made self-signed certificate.
        #[arg(long)]
        throwaway_cert: bool,
        /// Send this bearer token (over https only with --tls-cert).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Start the built-in target on loopback and run examples/quickstart.yaml against it.
    Demo {
        #[arg(long, default_value_t = 2)]
        workers: u32,
        #[command(flatten)]
        output: Output,
    },
}

/// A duration flag that must be longer than 0 (0 would close every
/// connection at once).
fn positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match barrage_runner::duration::parse_duration(s)? {
        d if d.is_zero() => Err("must be longer than 0 (e.g. \"10s\")".into()),
        // Deadlines are "now + this": far beyond any use, and it must not overflow.
        d if d > std::time::Duration::from_secs(24 * 3600) => Err("must be at most 24h".into()),
        d => Ok(d),
    }
}

/// Tasks a busy tokio worker runs between two looks at its sockets and
/// timers (see `main`).
const EVENT_INTERVAL: u32 = 256;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BARRAGE_LOG")
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        // A busy worker looks at sockets and timers (and wakes the tasks
        // deferred by `yield_now`) every `event_interval` tasks, 61 by
        // default. HTTP/2 connections write once per such turn (see
        // engine/http2/batch.rs): with 500 users on 2 workers, 61 tasks cut
        // each connection's batch of ten streams short (strace: 0.19 writes
        // per request at 61, 0.14 at 256, 0.11 at 1024). 256 keeps a timer
        // or a response noticed within a few hundred microseconds of work.
        .event_interval(EVENT_INTERVAL)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(dispatch(cli.cmd)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if matches!(e, Error::Invalid { .. }) {
                EXIT_INVALID
            } else {
                1
            })
        }
    }
}

async fn dispatch(cmd: Cmd) -> Result<ExitCode, Error> {
    match cmd {
        Cmd::Run {
            file,
            workers,
            runner_index,
            runner_count,
            teardown_timeout,
            output,
            prometheus,
        } => {
            check_runners("--workers", workers)?;
            // A count of 0 is refused below, with the index it cannot hold.
            if let Some(n) = runner_count.filter(|&n| n > 0) {
                check_runners("--runner-count", n)?;
            }
            let mut loaded = planfile::load_file(&file)?;
            let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned());
            let loadtest = loaded.name.clone().or(stem).unwrap_or_default();
            let push = remote_write::cli::setup(&prometheus, &loadtest)?;
            let records = setup_cmd::provision_first(&file, &mut loaded, output.quiet).await?;
            let slots = match (runner_index, runner_count) {
                (Some(index), Some(count)) if workers == 1 => {
                    if count == 0 || index >= count {
                        return Err(Error::invalid(
                            "--runner-index",
                            format!("{index} is not below --runner-count {count}"),
                        ));
                    }
                    vec![Slot { index, count }]
                }
                (Some(_), _) => {
                    return Err(Error::invalid(
                        "--workers",
                        "cannot be combined with --runner-index",
                    ));
                }
                _ => (0..workers)
                    .map(|index| Slot {
                        index,
                        count: workers,
                    })
                    .collect(),
            };
            let title = loaded
                .name
                .clone()
                .unwrap_or_else(|| file.display().to_string());
            // After provisioning (its records are the teardown's), before any
            // load: a bad teardown is refused while nothing was sent.
            let result = match compile_teardown(&loaded) {
                Ok(t) => {
                    // One runner's share of a cluster's plan leaves the
                    // teardown to the cluster's Job.
                    let t = t.filter(|_| runner_index.is_none());
                    let td = t.map(|t| (t, teardown_timeout));
                    run(&loaded, slots, &output, &title, td, push).await
                }
                Err(e) => Err(e),
            };
            if let Some(r) = records {
                let _ = std::fs::remove_file(r);
            }
            result
        }
        Cmd::Validate { files, output } => Ok(validate_cmd::validate(&files, output)),
        Cmd::Setup {
            file,
            out,
            timeout,
            message_file,
            quiet,
        } => setup_cmd::setup(&file, &out, timeout, message_file.as_deref(), quiet, true).await,
        Cmd::Teardown {
            file,
            records,
            timeout,
            message_file,
            quiet,
        } => teardown_only(&file, records, timeout, message_file.as_deref(), quiet).await,
        Cmd::Serve {
            listen,
            config,
            header_read_timeout,
            idle_timeout,
            max_connections,
            tls_cert,
            tls_key,
            tls_self_signed,
            tls_name,
            tls_client_ca,
            tls_require_client_cert,
            http1_only,
            http2_only,
        } => {
            let limits = serve::ServeLimits {
                header_read_timeout,
                idle_timeout,
                max_connections: max_connections as usize,
            };
            let tls = match (tls_cert, tls_key, tls_self_signed) {
                (Some(cert), Some(key), _) => serve::CliTls::Files { cert, key },
                (_, _, Some(dir)) => serve::CliTls::SelfSigned {
                    dir,
                    names: tls_name,
                },
                _ => serve::CliTls::None,
            };
            let http = match (http1_only, http2_only) {
                (true, _) => serve::HttpVersions::Http1Only,
                (_, true) => serve::HttpVersions::Http2Only,
                _ => serve::HttpVersions::Both,
            };
            let opts = serve::CliOptions {
                limits,
                http,
                tls,
                client_ca: tls_client_ca,
                require_client_cert: tls_require_client_cert,
            };
            serve::run_cli(&listen, config.as_deref(), opts).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Agent {
            plan,
            listen,
            token_file,
            runner_index,
            runner_count,
            linger,
            termination_log,
            tls_cert,
            tls_key,
        } => {
            barrage_runner::agent::run(barrage_runner::agent::AgentOptions {
                plan,
                listen,
                token_file,
                slot: Slot {
                    index: runner_index,
                    count: runner_count,
                },
                linger,
                termination_log: Some(termination_log),
                tls: tls_cert
                    .zip(tls_key)
                    .map(|(cert, key)| barrage_runner::agent::AgentTls { cert, key }),
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::ProbeAgent {
            url,
            tls_cert,
            tls_key,
            throwaway_cert,
            token_file,
        } => {
            use barrage_runner::agent::probe::{self, ClientCert, Outcome};
            let cert = match (tls_cert.zip(tls_key), throwaway_cert) {
                (Some((cert, key)), _) => ClientCert::Files { cert, key },
                (None, true) => ClientCert::Throwaway,
                (None, false) => ClientCert::None,
            };
            let opts = probe::ProbeOptions {
                url,
                cert,
                token_file,
            };
            Ok(match probe::probe(opts).await? {
                Outcome::Answered(line) => {
                    println!("answered: {line}");
                    ExitCode::SUCCESS
                }
                Outcome::Refused(why) => {
                    println!("refused: {why}");
                    ExitCode::FAILURE
                }
            })
        }
        Cmd::Demo { workers, output } => {
            check_runners("--workers", workers)?;
            let server = serve::spawn_local(ServeConfig::builtin()).await?;
            let mut loaded = planfile::from_str(QUICKSTART, PathBuf::from("examples"))?;
            loaded.plan.target.base_url = server.base_url();
            if !output.quiet {
                eprintln!(
                    "  built-in target on {}; running examples/quickstart.yaml with {workers} workers",
                    server.base_url()
                );
            }
            let slots = (0..workers)
                .map(|index| Slot {
                    index,
                    count: workers,
                })
                .collect();
            run(&loaded, slots, &output, "quickstart (demo)", None, None).await
        }
    }
}

/// In-process runners each hold a copy of the compiled plan and its
/// histograms: more than `MAX_RUNNERS` only costs memory (100 000 took 5.8 GB).
fn check_runners(flag: &str, n: u32) -> Result<(), Error> {
    let max = barrage_runner::limits::MAX_RUNNERS;
    if n == 0 || n > max {
        return Err(Error::invalid(
            flag,
            format!("{n} is not between 1 and the limit of {max}"),
        ));
    }
    Ok(())
}

/// Runs the load, prints its summary, then runs the teardown (if any) and
/// prints its outcome apart: teardown requests never enter the load's
/// figures. A Ctrl-C during the load still runs the teardown (as k6 does),
/// within its own timeout; a Ctrl-C during the teardown stops it.
async fn run(
    loaded: &Loaded,
    slots: Vec<Slot>,
    output: &Output,
    title: &str,
    teardown: Option<(Teardown, std::time::Duration)>,
    push: Option<remote_write::cli::Setup>,
) -> Result<ExitCode, Error> {
    let progress = !output.quiet && local::stderr_is_terminal();
    let pusher = push.as_ref().map(|p| {
        remote_write::Pusher::start(p.endpoint.clone(), p.labels.clone(), p.options.clone())
    });
    let opts = Options { slots, progress };
    let report: Report = local::run_pushing(loaded, &opts, pusher.as_ref()).await?;
    if !output.quiet {
        print!("{}", text::summary(&report, title));
    }
    // After the summary: the last push may wait for a slow receiver.
    if let (Some(p), Some(setup)) = (pusher, &push) {
        let d = p
            .finish(&report.snapshot, local::unix_ms(), 0, setup.within)
            .await;
        eprintln!(
            "{}",
            remote_write::cli::delivery_line(&setup.endpoint.redacted_url(), &d)
        );
    }
    let torn = match teardown {
        Some((t, timeout)) => Some(run_teardown(&t, timeout, output.quiet).await),
        None => None,
    };
    if let Some(p) = &output.out {
        let mut json = serde_json::to_value(&report).expect("reports serialize");
        if let Some(d) = &torn {
            json["teardown"] = teardown_json(d);
        }
        local::write_file(
            p,
            &serde_json::to_string_pretty(&json).expect("reports serialize"),
        )?;
    }
    if let Some(p) = &output.summary_json {
        let mut brief = report.brief();
        if let Some(d) = &torn {
            brief["teardown"] = serde_json::to_value(&d.outcome).expect("outcomes serialize");
        }
        local::write_file(p, &brief.to_string())?;
    }
    for why in &report.snapshot.failures {
        eprintln!("error: the run failed: {why}");
    }
    let torn = torn.map(|d| d.outcome);
    Ok(ExitCode::from(exit_status(&report, torn.as_ref())))
}

fn exit_status(report: &Report, teardown: Option<&teardown::Outcome>) -> u8 {
    if !report.snapshot.failures.is_empty() {
        EXIT_ENGINE
    } else if report.passed && !teardown.is_some_and(|t| t.fails_the_test()) {
        0
    } else {
        EXIT_THRESHOLDS
    }
}

#[cfg(test)]
mod tests {
    use barrage_runner::snapshot::Snapshot;

    use super::*;

    #[test]
    fn an_engine_failure_has_its_own_exit_status() {
        let report = |failures: Vec<String>, aborted: Option<String>| {
            let mut s = Snapshot::empty(1_000_000);
            s.failures = failures;
            Report::new(s, Vec::new(), aborted)
        };
        assert_eq!(exit_status(&report(vec![], None), None), 0);
        assert_eq!(
            exit_status(&report(vec![], Some("interrupted".into())), None),
            EXIT_THRESHOLDS
        );
        let failed = report(vec!["a virtual user panicked: boom".into()], None);
        assert!(!failed.passed);
        assert_eq!(exit_status(&failed, None), EXIT_ENGINE);
        assert!(![0, EXIT_INVALID, EXIT_THRESHOLDS, 1].contains(&EXIT_ENGINE));
    }

    #[test]
    fn a_failed_teardown_fails_the_run_only_when_it_says_so() {
        let passed = Report::new(Snapshot::empty(1_000_000), Vec::new(), None);
        let mut t = teardown::Outcome {
            runs: 3,
            failed: 1,
            ..Default::default()
        };
        assert_eq!(exit_status(&passed, Some(&t)), 0);
        t.fails_test = true;
        assert_eq!(exit_status(&passed, Some(&t)), EXIT_THRESHOLDS);
        t.failed = 0;
        assert_eq!(exit_status(&passed, Some(&t)), 0);
    }
}
