//! The hosting task: drivers made by its users run in it, after the users
//! they woke, go elsewhere when the users are done, and die with it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Waker},
};

use tokio::sync::oneshot;

use super::*;

/// Sets its flag when dropped.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn one<F: Future<Output = ()>>(f: F) -> FuturesUnordered<F> {
    let set = FuturesUnordered::new();
    set.push(f);
    set
}

/// A driver made by a user of the hosting task runs in that task; once
/// every user is done, the driver still running is handed over, and runs
/// on to its end wherever it goes.
#[tokio::test]
async fn a_users_driver_runs_in_its_task_and_outlives_it() {
    let (user_task, driver_task) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(None)));
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let (end_tx, end_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let (u, d) = (user_task.clone(), driver_task.clone());
    let user = async move {
        *u.lock().unwrap() = Some(tokio::task::id());
        assert!(hosting(), "a hosting task says so to its users");
        let driver: Driver = Box::pin(async move {
            *d.lock().unwrap() = Some(tokio::task::id());
            let _ = started_tx.send(());
            let _ = end_rx.await;
            let _ = done_tx.send(());
        });
        assert!(hand(driver).is_ok(), "taken by the hosting task");
        // The user waits until its driver ran, as one waits for a response.
        started_rx.await.unwrap();
    };
    let (left_tx, left_rx) = oneshot::channel();
    tokio::spawn(host(one(user), move |left| {
        let _ = left_tx.send(left);
    }))
    .await
    .unwrap();
    let left = left_rx.await.unwrap();
    assert_eq!(left.len(), 1, "the unfinished driver is handed over");
    let user_task = user_task.lock().unwrap().unwrap();
    assert_eq!(driver_task.lock().unwrap().unwrap(), user_task, "one task");
    tokio::spawn(left.into_iter().next().unwrap());
    end_tx.send(()).unwrap();
    done_rx
        .await
        .expect("the handed-over driver runs to its end");
}

/// Outside a hosting task a driver is not taken: the caller spawns it.
#[tokio::test]
async fn elsewhere_a_driver_is_given_back() {
    assert!(!hosting());
    let driver: Driver = Box::pin(async {});
    assert!(hand(driver).is_err());
}

/// Aborting the hosting task (the end of a graceful stop) drops its users
/// and their drivers with it.
#[tokio::test]
async fn aborting_the_task_drops_its_drivers() {
    let (user_dropped, driver_dropped) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (u, d) = (user_dropped.clone(), driver_dropped.clone());
    let (ready_tx, ready_rx) = oneshot::channel();
    let user = async move {
        let _guard = Dropped(u);
        let driver: Driver = Box::pin(async move {
            let _guard = Dropped(d);
            std::future::pending::<()>().await;
        });
        assert!(hand(driver).is_ok());
        let _ = ready_tx.send(());
        std::future::pending::<()>().await;
    };
    let task = tokio::spawn(host(one(user), |_| panic!("not done: aborted")));
    ready_rx.await.unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(user_dropped.load(Ordering::SeqCst));
    assert!(driver_dropped.load(Ordering::SeqCst));
}

/// A driver that wakes its users is polled again after all of them, in the
/// same poll of the task: it then finds every request they queued, as h2's
/// connection finds the streams its users opened and writes them at once.
#[tokio::test]
async fn a_driver_is_polled_after_the_users_it_woke() {
    const USERS: usize = 3;
    let queued = Arc::new(Mutex::new(0usize));
    let wakers: Arc<Mutex<Vec<Waker>>> = Arc::default();
    let driver_waker: Arc<Mutex<Option<Waker>>> = Arc::default();
    // What the driver found queued at each poll.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let users = FuturesUnordered::new();
    for _ in 0..USERS {
        let (queued, wakers, driver_waker) = (queued.clone(), wakers.clone(), driver_waker.clone());
        let mut polls = 0;
        users.push(Box::pin(poll_fn(move |cx: &mut Context<'_>| {
            polls += 1;
            match polls {
                // Waits for its response.
                1 => wakers.lock().unwrap().push(cx.waker().clone()),
                // It came: queue the next request, wake the driver, and
                // wait for that one's response (forever, here).
                2 => {
                    *queued.lock().unwrap() += 1;
                    if let Some(w) = driver_waker.lock().unwrap().as_ref() {
                        w.wake_by_ref();
                    }
                }
                _ => {}
            }
            Poll::<()>::Pending
        })) as Pin<Box<dyn Future<Output = ()> + Send>>);
    }
    let (w, q, s) = (wakers.clone(), queued.clone(), seen.clone());
    let dw = driver_waker.clone();
    let mut go = Some(go_rx);
    let driver: Driver = Box::pin(poll_fn(move |cx: &mut Context<'_>| {
        *dw.lock().unwrap() = Some(cx.waker().clone());
        s.lock().unwrap().push(*q.lock().unwrap());
        // Waits for the test's go, then "reads the responses": wakes every
        // user at once.
        if let Some(rx) = go.as_mut() {
            if Pin::new(rx).poll(cx).is_pending() {
                return Poll::Pending;
            }
            go = None;
            for u in w.lock().unwrap().drain(..) {
                u.wake();
            }
        }
        Poll::Pending
    }));
    let mut driver = Some(driver);
    users.push(Box::pin(async move {
        assert!(hand(driver.take().unwrap()).is_ok());
        std::future::pending::<()>().await;
    }));
    let task = tokio::spawn(host(users, |_| {}));
    // Every user is waiting for its response.
    while wakers.lock().unwrap().len() < USERS {
        tokio::task::yield_now().await;
    }
    go_tx.send(()).unwrap();
    while *queued.lock().unwrap() < USERS || seen.lock().unwrap().last() != Some(&USERS) {
        tokio::task::yield_now().await;
    }
    task.abort();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().find(|&&n| n > 0),
        Some(&USERS),
        "the driver's first poll after the users ran found all their requests, not some: {seen:?}"
    );
}
