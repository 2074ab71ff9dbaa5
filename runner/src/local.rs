//! A local run: the plan split over `workers` in-process runners, which go
//! through the same split, serialize and merge path as runner pods do in a
//! cluster (incremental pulls: `snapshot::cursor` answers, `snapshot::merge`
//! adds up), with a live progress line and the live abort-on-fail judgement
//! the operator uses (`thresholds::live`).

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    compile::Slot,
    engine::Runner,
    error::{Error, Result},
    planfile::Loaded,
    report::Report,
    snapshot::{Cursors, Merge, Snapshot, SnapshotDelta},
    thresholds::{self, live::Live},
};

pub struct Options {
    /// The runner slots to run here: all N of a `--workers N` run, or the one
    /// slot a runner pod was given.
    pub slots: Vec<Slot>,
    /// Show the live progress line (on a terminal).
    pub progress: bool,
}

/// The exit status after a second Ctrl-C, as a shell reports a SIGINT.
pub const EXIT_INTERRUPTED_TWICE: i32 = 130;

/// Compiles the plan for every worker first, so a bad plan fails before any
/// load is sent.
pub async fn run(loaded: &Loaded, opts: &Options) -> Result<Report> {
    run_pushing(loaded, opts, None).await
}

/// `run`, offering the merged figures to `push` every tick (it pushes them
/// at its own interval; the caller pushes the final ones with `finish`).
pub async fn run_pushing(
    loaded: &Loaded,
    opts: &Options,
    push: Option<&crate::remote_write::Pusher>,
) -> Result<Report> {
    if opts.slots.is_empty() {
        return Err(Error::invalid("--workers", "must be at least 1"));
    }
    let runners: Vec<_> = loaded
        .compile_slots(&opts.slots)?
        .into_iter()
        .map(|c| Runner::new(Arc::new(c)))
        .collect();
    for w in runners[0].plan.warnings() {
        eprintln!("warning: {w}");
    }
    let mut interrupts = crate::signal::Interrupts::listen();
    let thresholds = runners[0].plan.thresholds.clone();
    let mut live = Live::wanted(&thresholds).then(Live::default);
    let mut pulls = Pulls::new(runners.len());
    let tasks: Vec<_> = runners
        .iter()
        .map(|r| {
            let r = r.clone();
            tokio::spawn(async move { r.run().await })
        })
        .collect();
    let all_done = async {
        for (t, r) in tasks.into_iter().zip(&runners) {
            // `Runner::run` catches its tasks' panics; this is for its own.
            if let Err(e) = t.await {
                r.fail(format!("the runner task failed: {e}"));
            }
        }
    };
    tokio::pin!(all_done);
    let mut aborted = None;
    let mut interrupted = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let started = Instant::now();
    let mut last = (started, 0u64);
    loop {
        tokio::select! {
            _ = &mut all_done => break,
            _ = interrupts.recv() => {
                if interrupted {
                    // A second Ctrl-C: the user wants out now, report or not.
                    eprintln!("\ninterrupted again: exiting without the report");
                    std::process::exit(EXIT_INTERRUPTED_TWICE);
                }
                // In-flight requests get about a second, then count as
                // `interrupted`: a Ctrl-C ends the run promptly, with its
                // report, even during the graceful stop of an abort.
                interrupted = true;
                aborted.get_or_insert_with(|| "interrupted".to_string());
                runners.iter().for_each(|r| r.interrupt());
            }
            _ = tick.tick() => {
                if !(opts.progress || live.is_some() || push.is_some()) {
                    continue;
                }
                pulls.round(&runners)?;
                // The series only when a live window has just settled.
                let elapsed_us = started.elapsed().as_micros() as u64;
                let series = live.as_ref().is_some_and(|l| l.series_due(&thresholds, elapsed_us));
                let merged = pulls.merge.snapshot(series);
                if opts.progress {
                    last = progress_line(&merged, started, last);
                }
                if let Some(p) = push {
                    p.offer(&merged, unix_ms(), merged.runners.saturating_sub(merged.finished));
                }
                if let Some(why) = live.as_mut().and_then(|l| l.judge(&thresholds, &merged, series))
                    && aborted.is_none()
                {
                    aborted = Some(why);
                    runners.iter().for_each(|r| r.stop.trigger());
                }
            }
        }
    }
    if opts.progress {
        eprintln!();
    }
    pulls.round(&runners)?;
    let merged = pulls.merge.snapshot(true);
    let outcomes = thresholds::evaluate(&thresholds, &merged);
    Ok(Report::new(merged, outcomes, aborted))
}

/// The runners pulled as the operator pulls runner pods: each answers with
/// what changed since its last acknowledged pull (`Cursors`, as its agent
/// would), through the wire form, and the replies add up in one `Merge`.
struct Pulls {
    cursors: Vec<Cursors>,
    merge: Merge,
}

impl Pulls {
    fn new(runners: usize) -> Pulls {
        Pulls {
            cursors: (0..runners).map(|_| Cursors::new()).collect(),
            merge: Merge::new(None),
        }
    }

    fn round(&mut self, runners: &[Arc<Runner>]) -> Result<()> {
        for (i, (r, c)) in runners.iter().zip(&mut self.cursors).enumerate() {
            let i = i as u32;
            let reply = c.reply(self.merge.cursor(i), |first| r.snapshot_from(Some(first)));
            let reply = SnapshotDelta::from_slice(reply.to_json().as_bytes())?;
            // In-process, every reply is based on the cursor it was asked with.
            self.merge.apply(i, &reply)?;
        }
        self.merge.settle();
        Ok(())
    }
}

fn progress_line(s: &Snapshot, started: Instant, (t0, n0): (Instant, u64)) -> (Instant, u64) {
    let now = Instant::now();
    let n = s.total_requests();
    let rate = (n - n0.min(n)) as f64 / now.duration_since(t0).as_secs_f64().max(1e-3);
    let all = s.stats(None).unwrap_or_default();
    let p95 = if all.count() > 0 {
        all.latency.value_at_quantile(0.95) as f64 / 1000.0
    } else {
        0.0
    };
    let errs = all.error_count();
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r  {:>5.0}s  {:>9.1} req/s  p95 {:>8.2}ms  errors {} ({:.2}%)  requests {}   ",
        started.elapsed().as_secs_f64(),
        rate,
        p95,
        errs,
        if n > 0 {
            errs as f64 * 100.0 / n as f64
        } else {
            0.0
        },
        n
    );
    let _ = err.flush();
    (now, n)
}

/// Now, in unix milliseconds (remote-write timestamps).
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

pub fn write_file(path: &PathBuf, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.clone(),
        source,
    })
}
