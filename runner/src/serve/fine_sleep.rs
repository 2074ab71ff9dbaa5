//! Sleeping to a deadline with sub-millisecond accuracy, for injected latency.
//!
//! tokio's timer wheel has 1 ms slots and rounds a deadline up to the next
//! one, and a parked worker wakes on an epoll timeout in whole milliseconds:
//! `sleep(1ms)` takes 2 to 2.3 ms. Tests and docs use the target's latency as
//! a known reference, so that is not good enough. Here tokio sleeps to a
//! little before the deadline and one dedicated thread, blocked on a condvar
//! with a timeout (the kernel's high-resolution timers, ~50 µs slack), wakes
//! the task at the deadline. Nothing spins: at load the thread sleeps between
//! deadlines, and it handles only the last few milliseconds of each delay.

use std::{
    collections::BTreeMap,
    sync::{
        Condvar, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

/// How long before the deadline tokio's sleep ends: more than its worst
/// rounding (a slot plus the epoll timeout's millisecond), so the fine timer
/// always gets the end.
const TOKIO_LEAD: Duration = Duration::from_millis(3);

/// Waits until `deadline`: never early, and at the median within a few
/// microseconds of it on an idle machine. Dropping the future cancels it.
pub(crate) async fn sleep_until(deadline: Instant) {
    if let Some(coarse) = deadline.checked_sub(TOKIO_LEAD)
        && coarse > Instant::now()
    {
        tokio::time::sleep_until(coarse.into()).await;
    }
    if Instant::now() >= deadline {
        return;
    }
    // Waking this task takes the timer thread's wake-up plus a worker's
    // (tens of µs, more on a busy machine): ask for the wake that much early.
    let early = Duration::from_micros(WAKE_LATENCY_US.load(Ordering::Relaxed));
    let (tx, rx) = oneshot::channel();
    timer().schedule(deadline.checked_sub(early).unwrap_or(deadline), tx);
    // An error means the timer thread is gone, which it never is; either way
    // the deadline (or the thread's end) has come.
    let _ = rx.await;
    let woke = Instant::now();
    adapt_wake_latency(woke > deadline);
    // Woken before the deadline: the rest is at most `early`, shorter than
    // another trip through the timer, so yield (other tasks still run) until
    // it has passed.
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

/// The median time from the timer thread's wake-up to this task running,
/// tracked as a running median (a step up when a wake came after the
/// deadline, one down when before), so half the wakes need the short yield
/// loop and half are a little late. Shared by every request of the process.
static WAKE_LATENCY_US: AtomicU64 = AtomicU64::new(50);
/// The estimate stays within this: a machine so busy that wakes take longer
/// is late anyway, and a bigger value would only lengthen the yield loops.
const MAX_WAKE_LATENCY_US: u64 = 300;
/// Big enough to follow a change of load within a few dozen requests, small
/// against the 100 µs the median must stay within.
const STEP_US: u64 = 4;

fn adapt_wake_latency(late: bool) {
    let _ = WAKE_LATENCY_US.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |us| {
        Some(if late {
            (us + STEP_US).min(MAX_WAKE_LATENCY_US)
        } else {
            us.saturating_sub(STEP_US)
        })
    });
}

/// Deadlines waiting for the timer thread, earliest first; the `u64` keeps
/// equal instants apart.
struct Timer {
    queue: Mutex<Queue>,
    changed: Condvar,
}

#[derive(Default)]
struct Queue {
    due: BTreeMap<(Instant, u64), oneshot::Sender<()>>,
    next_id: u64,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            queue: Mutex::default(),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("serve-fine-timer".into())
            .spawn(move || {
                // Linux lets a sleeping thread's timer fire up to its "slack"
                // (50 µs by default) late to batch wake-ups; 1 ns asks for
                // no batching. Best effort: only the accuracy depends on it.
                #[cfg(target_os = "linux")]
                // SAFETY: prctl with PR_SET_TIMERSLACK takes one integer
                // argument and touches no memory of ours.
                unsafe {
                    libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
                }
                timer.run()
            })
            .expect("spawn the fine timer thread");
        timer
    })
}

impl Timer {
    fn schedule(&self, at: Instant, tx: oneshot::Sender<()>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let id = q.next_id;
        q.next_id += 1;
        let earliest = q.due.first_key_value().is_none_or(|(k, _)| at < k.0);
        q.due.insert((at, id), tx);
        drop(q);
        if earliest {
            // The thread may be waiting for a later deadline.
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            while let Some(entry) = q.due.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                // A dropped receiver (cancelled request) is fine.
                let _ = entry.remove().send(());
            }
            q = match q.due.first_key_value() {
                None => self.changed.wait(q).unwrap_or_else(|e| e.into_inner()),
                Some((&(at, _), _)) => {
                    let waited = self.changed.wait_timeout(q, at - now);
                    waited.unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn never_wakes_before_the_deadline() {
        let start = Instant::now();
        // Under the lead (fine timer only), over it (both), and already past.
        for us in [300u64, 1_500, 4_200, 0] {
            let deadline = start + Duration::from_micros(us) + start.elapsed();
            sleep_until(deadline).await;
            assert!(Instant::now() >= deadline, "{us} µs: woke early");
        }
    }
}
