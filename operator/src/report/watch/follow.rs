//! The Kubernetes side of `watch`: one watch on the one LoadTest (a field
//! selector on its name; the watcher re-lists when the watch expires), the
//! screen redrawn at each change and, for the clock, once a second.

use std::{io::Write, time::Duration};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};

use super::{EXIT_ERROR, Screen, exit_code};
use crate::{crd::LoadTest, report::fetch};

/// Consecutive watch errors (each retried with backoff) before giving up.
const MAX_ERRORS: u32 = 5;

/// How a watch ended.
#[derive(Debug)]
pub enum Ended {
    /// The test finished: its last state.
    Finished(Box<LoadTest>),
    /// Why it cannot be followed any more (deleted, not found, the API
    /// failing, the timeout).
    Error(String),
}

/// Follows `ns/name` until it finishes, `timeout` passes or it is gone,
/// showing it on `screen`.
pub async fn follow<W: Write>(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Option<Duration>,
    screen: &mut Screen<W>,
) -> Ended {
    let api: Api<LoadTest> = Api::namespaced(client.clone(), ns);
    let title = format!("{ns}/{name}");
    // Not there at all is an error at once, not a wait.
    match fetch::run(client, ns, name).await {
        Ok(_) => {}
        Err(e) => return Ended::Error(e.to_string()),
    }
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let events = watcher(api, config).default_backoff();
    futures::pin_mut!(events);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut last: Option<LoadTest> = None;
    let mut errors = 0;
    // Whether the current (re-)list had the object: one without it means
    // it was deleted while the watch was down.
    let mut in_list = false;
    loop {
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = events.next() => {
                let lt = match ev {
                    None => return Ended::Error("the watch ended".into()),
                    Some(Err(e)) => {
                        errors += 1;
                        if errors >= MAX_ERRORS {
                            return Ended::Error(format!("watching LoadTest {title}: {e}"));
                        }
                        continue;
                    }
                    Some(Ok(watcher::Event::Apply(lt))) => lt,
                    Some(Ok(watcher::Event::InitApply(lt))) => {
                        in_list = true;
                        lt
                    }
                    Some(Ok(watcher::Event::Delete(_))) => {
                        return Ended::Error(format!("LoadTest {title} was deleted"));
                    }
                    Some(Ok(watcher::Event::Init)) => {
                        in_list = false;
                        continue;
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        errors = 0;
                        if !in_list {
                            return Ended::Error(format!("LoadTest {title} is gone"));
                        }
                        continue;
                    }
                };
                errors = 0;
                if lt.name_any() != name {
                    continue;
                }
                screen.show(&lt, &title, Timestamp::now());
                if lt.status.as_ref().and_then(exit_code).is_some() {
                    return Ended::Finished(Box::new(lt));
                }
                last = Some(lt);
            }
            _ = tick.tick() => {
                if let Some(lt) = &last && screen.wants_tick() {
                    screen.show(lt, &title, Timestamp::now());
                }
            }
            () = expired => {
                let phase = last
                    .as_ref()
                    .and_then(|l| l.status.as_ref())
                    .map_or("no status".to_string(), |s| format!("{:?}", s.phase));
                return Ended::Error(format!(
                    "timed out after {}: LoadTest {title} is still {phase}",
                    barrage_runner::duration::format_duration(timeout.unwrap_or_default())
                ));
            }
        }
    }
}

/// The exit status for how the watch ended (see [`super::exit_code`]).
pub fn status_of(ended: &Ended) -> u8 {
    match ended {
        Ended::Finished(lt) => lt.status.as_ref().and_then(exit_code).unwrap_or(EXIT_ERROR),
        Ended::Error(_) => EXIT_ERROR,
    }
}
