//! `barrage-runner`'s teardown: inline after `run`, and the `teardown`
//! command the cluster's teardown Job runs. Part of the binary (main.rs),
//! not of the library: the library's `teardown` compiles and runs it.

use std::{path::PathBuf, process::ExitCode};

use barrage_runner::{
    Error, planfile,
    planfile::Loaded,
    report,
    teardown::{self, Teardown},
};

/// The teardown's outcome and its own requests, per step.
pub fn teardown_json(d: &teardown::Done) -> serde_json::Value {
    let mut v = serde_json::to_value(&d.outcome).expect("outcomes serialize");
    v["summary"] = serde_json::to_value(report::Summary::of(&d.snapshot).requests)
        .expect("summaries serialize");
    v
}

/// A teardown compiled against the plan's records (None without one).
pub fn compile_teardown(loaded: &Loaded) -> Result<Option<Teardown>, Error> {
    let env = |k: &str| std::env::var(k).ok();
    teardown::compile(&loaded.plan, &loaded.base_dir, loaded.prefix, &env)
        .map_err(|e| planfile::in_file(loaded.origin.as_deref(), e))
}

pub async fn run_teardown(
    t: &Teardown,
    timeout: std::time::Duration,
    quiet: bool,
) -> teardown::Done {
    if !quiet {
        eprintln!("  teardown: {} runs, {} at a time", t.runs, t.concurrency);
    }
    let mut interrupts = barrage_runner::signal::Interrupts::listen();
    let done = teardown::run(t, timeout, interrupts.recv()).await;
    let o = &done.outcome;
    if !quiet || !o.succeeded() {
        let verdict = match (o.succeeded(), o.fails_test) {
            (true, _) => "",
            (false, true) => " (teardown.failsTest: the test fails)",
            (false, false) => " (the load's verdict stands)",
        };
        eprintln!(
            "  {}; {} requests, {} errors, {:.1}s{verdict}",
            o.message(),
            o.requests,
            o.errors,
            o.elapsed_secs
        );
    }
    done
}

/// `barrage-runner teardown`: the teardown alone, as the cluster's teardown
/// Job runs it; its outcome (or why it could not run) goes to
/// `message_file` for the operator to read.
pub async fn teardown_only(
    file: &std::path::Path,
    records: Option<PathBuf>,
    timeout: std::time::Duration,
    message_file: Option<&std::path::Path>,
    quiet: bool,
) -> Result<ExitCode, Error> {
    let write = |msg: &str| {
        if let Some(p) = message_file {
            let cut = msg
                .char_indices()
                .take_while(|(i, _)| *i < teardown::MAX_MESSAGE)
                .count();
            let _ = std::fs::write(p, msg.chars().take(cut).collect::<String>());
        }
    };
    let compiled = planfile::load_file(file).and_then(|mut loaded| {
        if let Some(r) = records {
            // Relative to where the command runs, not to the plan file (which
            // `target.tls`'s files stay relative to).
            let r = std::path::absolute(&r).unwrap_or(r);
            let data = loaded.plan.data.get_or_insert_with(Default::default);
            data.file = Some(r.display().to_string());
        }
        match compile_teardown(&loaded)? {
            Some(t) => Ok(t),
            None => Err(planfile::in_file(
                Some(file),
                Error::invalid(
                    format!("{}teardown", loaded.prefix),
                    "is missing: nothing to tear down",
                ),
            )),
        }
    });
    let t = match compiled {
        Ok(t) => t,
        Err(e) => {
            write(&e.to_string());
            return Err(e);
        }
    };
    let done = run_teardown(&t, timeout, quiet).await;
    write(&teardown::termination_message(&done.outcome));
    Ok(if done.outcome.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
