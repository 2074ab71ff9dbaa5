//! A request counted once it may have reached the target, however its task
//! ends. The engine ends work it gave up on by dropping it (a task aborted
//! when the graceful stop runs out, a panic unwinding): a request in flight
//! then has no result, but the target may have seen it, so it must still be
//! counted. `Pending` records it as `interrupted` when dropped unfinished.
//!
//! It is made when the request starts (before its connection is made, if one
//! is needed), so a request interrupted while still connecting counts as
//! `interrupted` too: started, unfinished, possibly unseen. Counting it errs
//! on the side of the verdict: never a request lost, never a pass on it.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use tokio::sync::Notify;

use super::{Recorder, Sample};
use crate::snapshot::ErrorKind;

/// How many `Pending` requests exist, so the runner can wait until none can
/// record any more before it calls the run over.
#[derive(Default)]
pub struct Outstanding {
    count: AtomicU64,
    none: Notify,
}

impl Outstanding {
    /// Resolves once no request is pending (at once if none is).
    pub async fn drained(&self) {
        loop {
            let n = self.none.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            n.await;
        }
    }

    fn leave(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.none.notify_waiters();
        }
    }
}

/// One request from just before it is written until it is recorded.
pub struct Pending<'a> {
    recorder: &'a Recorder,
    outstanding: &'a Outstanding,
    shard: usize,
    /// The moment its latency counts from (the open model's intended start).
    from: Instant,
    /// None once recorded.
    sample: Option<Sample>,
}

impl<'a> Pending<'a> {
    pub fn new(
        recorder: &'a Recorder,
        outstanding: &'a Outstanding,
        shard: usize,
        from: Instant,
        sample: Sample,
    ) -> Pending<'a> {
        outstanding.count.fetch_add(1, Ordering::SeqCst);
        Pending {
            recorder,
            outstanding,
            shard,
            from,
            sample: Some(sample),
        }
    }

    /// The sample, for the exchange to fill in.
    pub fn sample(&mut self) -> &mut Sample {
        self.sample
            .as_mut()
            .expect("a pending request has its sample")
    }

    /// Records the finished request and returns its error and status.
    pub fn finish(mut self) -> (Option<ErrorKind>, Option<u16>) {
        let s = self.sample();
        let out = (s.error, s.status);
        self.record();
        out
    }

    fn record(&mut self) {
        if let Some(mut s) = self.sample.take() {
            s.end = Instant::now();
            s.latency = s.end.saturating_duration_since(self.from);
            self.recorder.record(self.shard, &s);
            self.outstanding.leave();
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.sample.as_mut() {
            // Cut off mid-exchange: whatever it had gathered is not a result.
            s.error = Some(ErrorKind::Interrupted);
            s.status = None;
        }
        self.record();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn recorder() -> Recorder {
        Recorder::new(vec!["r".into()], Duration::from_secs(1))
    }

    fn sample(start: Instant) -> Sample {
        Sample {
            metric: 0,
            start,
            end: start,
            latency: Duration::ZERO,
            status: None,
            error: None,
            sent: 10,
            received: 0,
            retries: 0,
            check: None,
        }
    }

    #[test]
    fn a_finished_request_is_recorded_once_as_it_ended() {
        let (rec, out) = (recorder(), Outstanding::default());
        let mut p = Pending::new(&rec, &out, 0, Instant::now(), sample(Instant::now()));
        p.sample().status = Some(200);
        assert_eq!(p.finish(), (None, Some(200)));
        let r = &rec.snapshot(false).requests["r"];
        assert_eq!((r.count(), r.error_count(), r.statuses[&200]), (1, 0, 1));
        assert_eq!(out.count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_request_dropped_unfinished_counts_as_interrupted() {
        let (rec, out) = (recorder(), Outstanding::default());
        let from = Instant::now() - Duration::from_millis(50);
        let p = Pending::new(&rec, &out, 3, from, sample(Instant::now()));
        assert_eq!(out.count.load(Ordering::SeqCst), 1);
        drop(p);
        let r = &rec.snapshot(false).requests["r"];
        assert_eq!(r.count(), 1);
        assert_eq!(r.errors.get(&ErrorKind::Interrupted), Some(&1));
        assert_eq!(r.bytes_sent, 10);
        // Its latency runs from `from` to the moment it was given up.
        assert!(r.latency.max() >= 50_000, "{}", r.latency.max());
        assert_eq!(out.count.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_aborted_task_counts_its_request_before_its_join_returns() {
        let rec = std::sync::Arc::new(recorder());
        let out = std::sync::Arc::new(Outstanding::default());
        let (r2, o2) = (rec.clone(), out.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let _p = Pending::new(&r2, &o2, 0, Instant::now(), sample(Instant::now()));
            let _ = tx.send(());
            std::future::pending::<()>().await;
        });
        rx.await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        out.drained().await;
        let r = &rec.snapshot(false).requests["r"];
        assert_eq!(r.errors.get(&ErrorKind::Interrupted), Some(&1));
    }
}
