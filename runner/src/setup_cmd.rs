//! `barrage-runner setup`, and a manifest's built-in setup run before
//! `run`: provisioning with its progress shown. Part of the binary
//! (main.rs), not of the library: the library's `provision` runs it.

use std::{path::PathBuf, process::ExitCode};

use barrage_runner::{Error, local, planfile, planfile::Loaded, progress, provision, report};

pub async fn setup(
    file: &std::path::Path,
    out: &std::path::Path,
    timeout: Option<std::time::Duration>,
    message_file: Option<&std::path::Path>,
    quiet: bool,
    progress_lines: bool,
) -> Result<ExitCode, Error> {
    let fail = |msg: &str| {
        if let Some(p) = message_file {
            // Kubernetes keeps at most 4096 bytes of a termination message.
            let cut = msg.char_indices().take_while(|(i, _)| *i < 4000).count();
            let _ = std::fs::write(p, msg.chars().take(cut).collect::<String>());
        }
    };
    let compiled = provision::load_file(file).and_then(|(sp, prefix)| {
        provision::compile(&sp, prefix)
            .map(|c| (sp, c))
            .map_err(|e| planfile::in_file(Some(file), e))
    });
    let (sp, setup) = match compiled {
        Ok(x) => x,
        Err(e) => {
            fail(&e.to_string());
            return Err(e);
        }
    };
    if !quiet {
        eprintln!(
            "  provisioning {} users, {} at a time, against {}",
            setup.users, setup.concurrency, sp.target.base_url
        );
    }
    let p = provision_shown(&setup, timeout, quiet, progress_lines).await;
    let result = p.verdict().and_then(|()| p.to_jsonl());
    if !quiet {
        let total = report::Summary::of(&p.snapshot).total;
        eprintln!(
            "  {} of {} users provisioned in {:.1}s ({} failed); {} requests, p95 {:.1} ms",
            p.records.len(),
            p.users,
            p.elapsed.as_secs_f64(),
            p.failed(),
            total.requests,
            total.latency_ms.p95
        );
    }
    match result {
        Ok(jsonl) => {
            local::write_file(&out.to_path_buf(), &jsonl)?;
            if !quiet {
                eprintln!(
                    "  records: {} ({} records, {} bytes)",
                    out.display(),
                    p.records.len(),
                    jsonl.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            fail(&msg);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Runs the setup with its progress shown (see `progress::show`): a bar on
/// a terminal's stderr, else plain lines, unless `quiet`; and with `lines`,
/// progress lines on stdout unless it is a terminal, for the operator to
/// read from the setup pod's log (so they come with `quiet` too).
async fn provision_shown(
    setup: &provision::Setup,
    timeout: Option<std::time::Duration>,
    quiet: bool,
    lines: bool,
) -> provision::Provisioned {
    use std::io::IsTerminal;
    let human = (!quiet).then(std::io::stderr);
    let machine = (lines && !std::io::stdout().is_terminal()).then(std::io::stdout);
    let bar = local::stderr_is_terminal();
    let mut show = progress::show::Show::new(human, bar, machine, Some(setup.users as u64));
    let every = std::time::Duration::from_millis(250);
    let p =
        provision::run_watched(setup, timeout, Some(every), |at, now| show.update(at, &now)).await;
    show.finish(p.elapsed, &p.progress());
    p
}

/// A manifest's built-in `spec.setup`, when the plan needs its records (no
/// `data.file` of its own).
pub fn setup_of(
    file: &std::path::Path,
    loaded: &Loaded,
) -> Result<Option<(barrage_runner::plan::SetupPlan, &'static str)>, Error> {
    let has_file = loaded.plan.data.as_ref().is_some_and(|d| d.file.is_some());
    if loaded.prefix != "spec." || has_file {
        return Ok(None);
    }
    let in_file = |e| planfile::in_file(Some(file), e);
    let text = planfile::read_plan(file).map_err(in_file)?;
    let doc = planfile::parse_document(&text).map_err(in_file)?;
    if doc.get("spec").and_then(|s| s.get("setup")).is_none() {
        return Ok(None);
    }
    provision::from_str(&text)
        .map(Some)
        .map_err(|e| planfile::in_file(Some(file), e))
}

/// A manifest with a built-in `spec.setup` and no data file provisions its
/// records first, as the operator's setup Job would, into a private
/// temporary file (records hold credentials) that becomes the run's data.
/// Returns that file, for the caller to remove after the run.
pub async fn provision_first(
    file: &std::path::Path,
    loaded: &mut Loaded,
    quiet: bool,
) -> Result<Option<PathBuf>, Error> {
    if setup_of(file, loaded)?.is_none() {
        return Ok(None);
    }
    let out = std::env::temp_dir().join(format!(
        "barrage-records-{}-{}.jsonl",
        std::process::id(),
        fastrand::u64(..)
    ));
    private_file(&out)?;
    // `run`'s stdout is its summary: no progress lines in it.
    let code = setup(file, &out, None, None, quiet, false).await;
    if !matches!(code, Ok(c) if c == ExitCode::SUCCESS) {
        let _ = std::fs::remove_file(&out);
        code?;
        return Err(Error::Other("the setup failed; no load was sent".into()));
    }
    let data = loaded.plan.data.get_or_insert_with(Default::default);
    data.file = Some(out.display().to_string());
    Ok(Some(out))
}

/// Creates `path` empty, readable and writable by its owner only.
fn private_file(path: &std::path::Path) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })
}
