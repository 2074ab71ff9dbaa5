//! `kubectl-barrage`, the kubectl plugin (`kubectl barrage ...` once it is on
//! PATH): a LoadTest's report as text, JSON or a self-contained HTML page,
//! and two runs compared. See docs/report.md.
//!
//! Exit status: 0 done; 1 an error (LoadTest not found, API unreachable, bad
//! arguments, file not writable); 99 with `report --fail-on-verdict` when
//! the verdict is Failed. `watch`: 0 Passed, 99 Failed, 1 when the test
//! ended without a verdict, was deleted, or `--timeout` passed.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use barrage_operator::report::{
    self, Run, compare, fetch, html, text,
    watch::{self, follow},
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kubectl-barrage",
    bin_name = "kubectl barrage",
    version,
    about = "Barrage LoadTest reports: summaries, HTML pages with plots, comparisons"
)]
struct Args {
    /// Namespace of the LoadTests (default: the current context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    /// Kubeconfig context to use (default: the current one; KUBECONFIG is honoured).
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The summary of one run: totals, latency per request, status codes,
    /// thresholds and verdict (like `barrage-runner run` prints).
    Report {
        /// The LoadTest: NAME or NAMESPACE/NAME.
        name: String,
        /// Write a self-contained HTML page with plots to FILE instead.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Print the status and the full report as JSON instead.
        #[arg(long, conflicts_with = "html")]
        json: bool,
        /// Exit with 99 when the verdict is Failed (for scripts and CI).
        #[arg(long)]
        fail_on_verdict: bool,
    },
    /// Follow a LoadTest to its end: phase, elapsed and remaining time,
    /// runners, req/s, p95, errors, thresholds and progress, redrawn in place
    /// on a terminal (a line per change when piped); then its summary.
    /// Exits 0 Passed, 99 Failed, 1 without a verdict, deleted or timed out.
    Watch {
        /// The LoadTest: NAME or NAMESPACE/NAME.
        name: String,
        /// Give up after this long (e.g. 30m), with exit status 1.
        #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
        timeout: Option<std::time::Duration>,
    },
    /// Two runs side by side, total and per request, with the changes beyond
    /// the noise threshold marked better or worse.
    Compare {
        /// The baseline: NAME or NAMESPACE/NAME.
        a: String,
        /// The candidate: NAME or NAMESPACE/NAME.
        b: String,
        /// Changes within this many percent count as noise.
        #[arg(long, default_value_t = 5.0, value_name = "PERCENT")]
        threshold: f64,
        /// Also write the comparison as a self-contained HTML page to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
}

const VERDICT_FAILED: u8 = 99;

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    barrage_runner::duration::parse_duration(s)
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

fn write_file(path: &PathBuf, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!(
        "wrote {} ({} KB)",
        path.display(),
        contents.len().div_ceil(1024)
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; bad usage is, like any other.
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let (client, default_ns) = match fetch::connect(args.context.as_deref()).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let ns = args.namespace.unwrap_or(default_ns);
    let get = |what: &'static str, r: String| {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            let (ns, name) = report::parse_ref(&r, &ns, what)?;
            fetch::run(&client, &ns, &name).await
        }
    };
    match args.command {
        Command::Report {
            name,
            html: html_file,
            json,
            fail_on_verdict,
        } => {
            let run = match get("NAME", name).await {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            if json {
                println!("{}", as_json(&run));
            } else if let Some(path) = html_file {
                if let Err(e) = write_file(&path, &html::render(&run)) {
                    return fail(e);
                }
                for n in run.notes() {
                    eprintln!("note: {n}");
                }
            } else {
                print!("{}", text::render(&run));
            }
            if fail_on_verdict && run.verdict().as_deref() == Some("Failed") {
                return ExitCode::from(VERDICT_FAILED);
            }
            ExitCode::SUCCESS
        }
        Command::Watch { name, timeout } => {
            let (ns, name) = match report::parse_ref(&name, &ns, "NAME") {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            let terminal = std::io::stdout().is_terminal();
            let mut screen = watch::Screen::new(std::io::stdout(), terminal);
            let ended = follow::follow(&client, &ns, &name, timeout, &mut screen).await;
            let code = follow::status_of(&ended);
            match ended {
                follow::Ended::Error(e) => {
                    eprintln!("error: {e}");
                }
                follow::Ended::Finished(_) => match fetch::run(&client, &ns, &name).await {
                    Ok(run) => print!("{}", text::render(&run)),
                    Err(e) => eprintln!("error: the summary could not be read: {e}"),
                },
            }
            ExitCode::from(code)
        }
        Command::Compare {
            a,
            b,
            threshold,
            html: html_file,
        } => {
            if !(threshold.is_finite() && threshold >= 0.0) {
                return fail(format!(
                    "--threshold: {threshold} is not a percentage of 0 or more"
                ));
            }
            let (ra, rb) = tokio::join!(get("A", a), get("B", b));
            let (ra, rb) = match (ra, rb) {
                (Ok(x), Ok(y)) => (x, y),
                (Err(e), _) | (_, Err(e)) => return fail(e),
            };
            let c = compare::compare(&ra, &rb, threshold);
            let colour = std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            print!("{}", compare::render_text(&c, colour));
            if let Some(path) = html_file
                && let Err(e) = write_file(&path, &compare::render_html(&c, &ra, &rb))
            {
                return fail(e);
            }
            ExitCode::SUCCESS
        }
    }
}

/// The status and the full report (null when there is none), with the notes
/// that say why.
fn as_json(run: &Run) -> String {
    let v = serde_json::json!({
        "namespace": run.namespace,
        "name": run.name,
        "runners": run.runners,
        "status": run.status,
        "report": run.loaded(),
        "notes": run.notes(),
    });
    serde_json::to_string_pretty(&v).expect("reports serialize")
}
