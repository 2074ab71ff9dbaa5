//! One task for a connection's users and its driver: the closed model's
//! users of one HTTP/2 connection (see `closed::together`) run as futures of
//! one task, and the driver of every connection they make runs in that same
//! task rather than in a task of its own.
//!
//! A round of the task then does what h2load's event loop does for a
//! connection: the driver reads the responses that came and wakes their
//! users; the users, polled next in the same round, record them and open
//! their next streams; the driver, polled after them, writes those streams
//! together. No task is woken per request, no other worker steals a user
//! away from its connection, and h2's connection lock is never contended.
//! The batching that `batch` gets from tokio's deferred queue comes from the
//! order of the polls, so a hosted driver is not wrapped in it.
//!
//! The users' futures find the task's host through a task-local: a
//! connection made by a user of a hosting task is handed to it
//! (`hand`), one made anywhere else gets a task of its own as before. When
//! the users are all done, the drivers still running (their connections may
//! still serve another scenario, or close once the pool does) are handed
//! back to be spawned; if the task is aborted, they are dropped with it.

use std::{
    cell::RefCell,
    future::{Future, poll_fn},
    pin::Pin,
    task::Poll,
};

use futures_util::{StreamExt, stream::FuturesUnordered};

/// A connection's driver, boxed: hosted or spawned alike.
pub(in crate::engine) type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Rounds of users-then-drivers per poll of the task: the first round's
/// drivers read responses (waking users), the second's users send their
/// next requests and its drivers write them.
const ROUNDS: usize = 2;

tokio::task_local! {
    /// Drivers made by the users of the hosting task being polled, not yet
    /// taken into its set.
    static MADE: RefCell<Vec<Driver>>;
}

/// Runs `users` and the drivers of the connections they make in this task
/// until every user is done; the drivers still running then go to `left`.
pub(in crate::engine) async fn host<F>(
    mut users: FuturesUnordered<F>,
    left: impl FnOnce(Vec<Driver>),
) where
    F: Future<Output = ()>,
{
    let drivers = MADE
        .scope(RefCell::new(Vec::new()), async move {
            let mut drivers: FuturesUnordered<Driver> = FuturesUnordered::new();
            poll_fn(|cx| {
                for _ in 0..ROUNDS {
                    loop {
                        match users.poll_next_unpin(cx) {
                            Poll::Ready(Some(())) => {}
                            Poll::Ready(None) => return Poll::Ready(()),
                            Poll::Pending => break,
                        }
                    }
                    MADE.with(|m| drivers.extend(m.borrow_mut().drain(..)));
                    // A driver that ends (its connection closed) is done.
                    while let Poll::Ready(Some(())) = drivers.poll_next_unpin(cx) {}
                }
                Poll::Pending
            })
            .await;
            let mut left: Vec<Driver> = drivers.into_iter().collect();
            left.extend(MADE.with(|m| m.take()));
            left
        })
        .await;
    left(drivers);
}

/// Whether the running task hosts its connections' drivers.
pub(super) fn hosting() -> bool {
    MADE.try_with(|_| ()).is_ok()
}

/// Hands `driver` to the hosting task that is running; `Err` with it back
/// when the task does not host (see `hosting`).
pub(super) fn hand(driver: Driver) -> Result<(), Driver> {
    let mut driver = Some(driver);
    let _ = MADE.try_with(|m| m.borrow_mut().extend(driver.take()));
    driver.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests;
