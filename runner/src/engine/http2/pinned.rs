//! One single-threaded executor per core for the tasks that host HTTP/2
//! connections (see `host`), each connection's task pinned to one of them,
//! as h2load pins its connections to its threads.
//!
//! On tokio's work-stealing runtime the hosting tasks of 50 connections
//! move between the workers all the time: a worker that reads the sockets
//! queues every task it woke, the idle one is unparked to steal half of
//! them, and each connection's state (h2's buffers, HPACK tables, the
//! users' futures) is then touched from the other core. Measured with the
//! same binary, one worker instead of two cost 12.0-13.2 instead of
//! 13.9-16.0 µs per request (see bench/README.md). Here each executor is a
//! `current_thread` runtime on a thread of its own with its own sockets and
//! timers: a connection made by a user of a pinned task is registered with
//! that executor, its driver runs there (hosted, or adopted at the end), and
//! nothing is stolen.
//!
//! Only the closed model's hosted HTTP/2 groups run here; HTTP/1.1, the
//! open model, ramps and several scenarios keep the main runtime. The
//! executors are made on first use, as many as the main runtime has
//! workers (`TOKIO_WORKER_THREADS`, else one per core), and live as long as
//! the process: the main runtime's workers then mostly sleep, so the
//! threads doing the work are as many as before. If they cannot be made, a
//! group runs on the main runtime as before.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
};

use tokio::{
    runtime::{Builder, Handle},
    task::{AbortHandle, JoinHandle},
};

/// The executors, made once (empty if they could not be).
static CORES: OnceLock<Box<[Handle]>> = OnceLock::new();
/// The executor the next task goes to (mod their number).
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Tasks an executor runs between two looks at its sockets and timers, as
/// the main runtime (see `main.rs`).
const EVENT_INTERVAL: u32 = 256;

fn cores() -> &'static [Handle] {
    CORES.get_or_init(|| {
        let n = Handle::try_current().map_or(1, |h| h.metrics().num_workers().max(1));
        let mut cores = Vec::with_capacity(n);
        for i in 0..n {
            let Ok(rt) = Builder::new_current_thread()
                .event_interval(EVENT_INTERVAL)
                .enable_all()
                .build()
            else {
                break;
            };
            let handle = rt.handle().clone();
            // The thread parks in its runtime for the rest of the process,
            // running whatever is spawned on it.
            let spawned = std::thread::Builder::new()
                .name(format!("barrage-h2-{i}"))
                .spawn(move || rt.block_on(std::future::pending::<()>()));
            if spawned.is_err() {
                break;
            }
            cores.push(handle);
        }
        tracing::debug!(executors = cores.len(), "HTTP/2 pinned executors");
        cores.into_boxed_slice()
    })
}

/// Runs `task` on the next executor in turn (on the current runtime if
/// there are none). The returned future ends with the task, re-raises its
/// panic, and aborts it if dropped first.
///
/// In turn across the whole process, not by the group's index: with
/// several in-process runners (`--workers`), each runner's first
/// connection would otherwise land on the same executor.
pub(in crate::engine) fn spawn<F>(task: F) -> Pinned
where
    F: Future<Output = ()> + Send + 'static,
{
    let cores = cores();
    let i = NEXT.fetch_add(1, Ordering::Relaxed);
    let handle = match cores.get(i % cores.len().max(1)) {
        Some(core) => core.spawn(task),
        None => tokio::spawn(task),
    };
    Pinned(handle)
}

/// A task on a pinned executor, awaited from another runtime.
pub(in crate::engine) struct Pinned(JoinHandle<()>);

impl Pinned {
    /// Aborts the task; this future then ends once the task has been
    /// dropped (and its requests in flight counted as interrupted), which
    /// a plain drop of this future would not wait for.
    pub(in crate::engine) fn abort_handle(&self) -> AbortHandle {
        self.0.abort_handle()
    }
}

impl Future for Pinned {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match ready!(Pin::new(&mut self.0).poll(cx)) {
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: only by our own abort.
            _ => Poll::Ready(()),
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, atomic::AtomicBool};

    use super::*;

    /// Sets its flag when dropped.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_runs_on_an_executor_of_its_own_and_keeps_it() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn(async move {
            let first = std::thread::current().id();
            let name = std::thread::current().name().map(str::to_string);
            // Sockets and timers are the executor's own.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let _ = tx.send((name, first == std::thread::current().id()));
        })
        .await;
        let (name, same) = rx.await.unwrap();
        assert!(
            name.as_deref()
                .is_some_and(|n| n.starts_with("barrage-h2-")),
            "{name:?}"
        );
        assert!(same, "the task moved to another thread");
    }

    #[tokio::test]
    async fn its_panic_reaches_the_awaiting_task() {
        let awaited = tokio::spawn(spawn(async { panic!("a user panicked") }));
        let e = awaited.await.unwrap_err();
        assert!(e.is_panic());
    }

    /// Aborted through its handle, the task is dropped (its requests in
    /// flight counted) before the awaiting future ends.
    #[tokio::test]
    async fn aborted_it_ends_once_the_task_is_dropped() {
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = Dropped(dropped.clone());
        let task = spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        task.abort_handle().abort();
        task.await;
        assert!(dropped.load(Ordering::SeqCst));
    }

    /// Dropped unfinished, it aborts the task rather than leave it running.
    #[tokio::test]
    async fn dropped_it_aborts_the_task() {
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = Dropped(dropped.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = spawn(async move {
            let _guard = guard;
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(task);
        // The sender goes with the task: the receiver sees it closed.
        assert!(rx.await.is_err());
        assert!(dropped.load(Ordering::SeqCst));
    }
}
