//! Polls a connection's driver once per burst of wake-ups rather than once
//! per wake-up, so that the streams its users open in one go leave in one
//! write. For a driver in a task of its own; one hosted by its users' task
//! (see `host`) gets the same batching from the order of the polls.
//!
//! Every `send_request` wakes the connection's driver. Polled at once (and
//! tokio's LIFO slot runs a task woken by the running one right after it),
//! the driver writes each request on its own: one `sendto` per request,
//! where a connection with ten users has up to ten requests to send for
//! every read of responses (h2load writes them all at once). Deferred
//! instead to when the worker has run the other tasks it has ready (the
//! users that the last read of responses woke), the driver finds all of
//! their streams queued and writes them together; the server then answers
//! them together too, which batches the reads as well.
//!
//! The delay is tokio's own `yield_now` queue: a worker wakes what was
//! deferred when its run queue is empty, and otherwise every
//! `event_interval` (61) tasks, so the driver waits for at most a few dozen
//! task polls, never for a timer. A wake-up that comes while the driver is
//! already deferred is only noted (the deferred wake polls the connection
//! anyway): without that, the next user's `send_request` would poll it
//! again at once and the batching would be lost.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

/// `inner` (an h2 connection) polled once per burst of wake-ups.
pub(super) struct Batched<F> {
    inner: F,
    state: State,
    deferred: Arc<Deferred>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// The next wake-up defers the poll.
    Armed,
    /// A deferred wake-up is outstanding; polls before it do nothing.
    Waiting,
}

/// The waker handed to tokio's deferred queue: it records that the
/// deferred turn came, then wakes the task.
#[derive(Default)]
struct Deferred {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Deferred {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            t.wake();
        }
    }
}

impl<F> Batched<F> {
    pub(super) fn new(inner: F) -> Batched<F> {
        Batched {
            inner,
            // The first poll (the task starting) runs the connection at once:
            // the handshake's settings and the first streams are queued.
            state: State::Waiting,
            deferred: Arc::new(Deferred {
                fired: AtomicBool::new(true),
                task: Mutex::new(None),
            }),
        }
    }
}

impl<F: Future + Unpin> Future for Batched<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let me = &mut *self;
        match me.state {
            State::Armed => {
                me.state = State::Waiting;
                me.deferred.fired.store(false, Ordering::Release);
                *me.deferred.task.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(cx.waker().clone());
                let waker = Waker::from(me.deferred.clone());
                // `yield_now` puts the waker of the context it is polled
                // with in the worker's deferred queue and returns Pending.
                let mut turn = std::pin::pin!(tokio::task::yield_now());
                let _ = turn.as_mut().poll(&mut Context::from_waker(&waker));
                return Poll::Pending;
            }
            State::Waiting if !me.deferred.fired.load(Ordering::Acquire) => {
                // Woken again meanwhile (another stream queued, or data came
                // in): the deferred turn polls the connection for all of them.
                return Poll::Pending;
            }
            State::Waiting => {}
        }
        let out = Pin::new(&mut me.inner).poll(cx);
        if out.is_pending() {
            me.state = State::Armed;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts its polls; ready once `done` is set.
    struct Probe {
        polls: Arc<AtomicUsize>,
        done: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.done.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    /// Wakes its driver and passes on to the next of `n` users, spawned
    /// (so queued behind the driver, as the users a read of responses woke
    /// are); the last one says so on `done`.
    fn relay(n: usize, waker: Waker, done: tokio::sync::oneshot::Sender<()>) {
        tokio::spawn(async move {
            waker.wake_by_ref();
            if n > 1 {
                relay(n - 1, waker, done);
            } else {
                let _ = done.send(());
            }
        });
    }

    /// Ten wake-ups, each followed by another ready task, poll the inner
    /// future once, after all of them (polled on each, it would write each
    /// user's request on its own); and it still completes.
    #[test]
    fn wakes_in_one_burst_poll_once() {
        // No periodic turn for deferred tasks within the test's few polls:
        // only an empty run queue lets the driver run.
        let rt = tokio::runtime::Builder::new_current_thread()
            .event_interval(1000)
            .build()
            .unwrap();
        rt.block_on(async {
            let polls = Arc::new(AtomicUsize::new(0));
            let done = Arc::new(AtomicBool::new(false));
            let waker = Arc::new(Mutex::new(None::<Waker>));
            let driver = tokio::spawn(Batched::new(Probe {
                polls: polls.clone(),
                done: done.clone(),
                waker: waker.clone(),
            }));
            // The first poll is immediate.
            while polls.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
            let w = waker.lock().unwrap().clone().unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel();
            relay(10, w.clone(), tx);
            rx.await.unwrap();
            assert_eq!(
                polls.load(Ordering::SeqCst),
                1,
                "not polled during the burst"
            );
            // Its deferred turn comes once the run queue is empty.
            while polls.load(Ordering::SeqCst) == 1 {
                tokio::task::yield_now().await;
            }
            assert_eq!(polls.load(Ordering::SeqCst), 2, "one poll for ten wake-ups");
            done.store(true, Ordering::SeqCst);
            waker.lock().unwrap().clone().unwrap().wake();
            driver.await.unwrap();
        });
    }
}
