//! Name resolution for the target's connections: one lookup per host,
//! shared and reused, not one per new connection.
//!
//! Before, every dial called `TcpStream::connect("host:port")`, i.e. one
//! `getaddrinfo` per new connection: a test that opens 10,000 connections
//! (or reopens them after the target closes them) sent 10,000 queries to
//! the cluster DNS, and measured them as connect time.
//!
//! The policy (docs/resolver.md says it for users):
//! - The system resolver (`getaddrinfo` through `tokio::net::lookup_host`):
//!   it honours `/etc/hosts`, the pod's `resolv.conf` search path and
//!   `ndots` exactly as the pod's other programs do, and it works in the
//!   FROM scratch image (static glibc reads both files without NSS
//!   modules). It gives no TTLs, so an answer is reused for `REFRESH`
//!   (30 s) and then looked up again: long enough that lookups cost
//!   nothing next to the load, short enough that a Service whose
//!   endpoints change (a headless Service's pod IPs) is followed.
//! - Single flight: the dials that need a host while it is being looked up
//!   wait for that one lookup instead of starting their own.
//! - A failed lookup is remembered for `NEGATIVE` (2 s), so a name that
//!   does not resolve costs one query per 2 s, not one per request; each
//!   request that needed it fails as `dns` (counted like `connect`: the
//!   target never saw it).
//! - New connections go round robin over the addresses of the answer (a
//!   headless Service's pods share the load); when one refuses, the next
//!   ones are tried before the dial fails as `connect`.
//! - IP literals never reach the resolver.
//! - Memory: at most `MAX_HOSTS` names are cached (a run dials its one
//!   target; the bound only guards against a plan that grows that), each
//!   with the addresses of one answer.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::future::BoxFuture;
use tokio::net::TcpStream;

use crate::snapshot::ErrorKind;

/// How long an answer is reused before the name is looked up again.
pub const REFRESH: Duration = Duration::from_secs(30);
/// How long a failed lookup is remembered.
pub const NEGATIVE: Duration = Duration::from_secs(2);
/// Names cached at most; beyond that a name is looked up on each dial.
pub const MAX_HOSTS: usize = 64;

/// Looks a host name up: its addresses, or why not.
pub type Lookup = Arc<dyn Fn(String) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> + Send + Sync>;

/// A run's resolver cache: every new connection of the run dials through it.
pub struct Resolver {
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    lookup: Lookup,
}

/// One name: its last answer, and whose turn it is among its addresses.
struct Host {
    /// Held across the lookup: that is the single flight.
    answer: tokio::sync::Mutex<Option<Answer>>,
    next: AtomicUsize,
}

struct Answer {
    at: Instant,
    addrs: Option<Arc<[IpAddr]>>,
}

impl Answer {
    fn fresh(&self, now: Instant) -> bool {
        let keep = if self.addrs.is_some() {
            REFRESH
        } else {
            NEGATIVE
        };
        now.duration_since(self.at) < keep
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::with_lookup(Arc::new(|host: String| {
            Box::pin(async move {
                // Port 0: only the addresses matter; the dial adds its port.
                let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
                Ok(addrs.map(|a| a.ip()).collect())
            })
        }))
    }
}

impl Resolver {
    /// A resolver that asks `lookup` (tests give their own).
    pub fn with_lookup(lookup: Lookup) -> Resolver {
        Resolver {
            hosts: Mutex::new(HashMap::new()),
            lookup,
        }
    }

    /// Connects to `authority` (`host:port`, `[v6]:port`): a name is
    /// resolved through the cache (`dns` if it does not resolve), then its
    /// addresses are tried from the next one in turn (`connect` if none
    /// takes the connection).
    pub async fn connect(&self, authority: &str) -> Result<TcpStream, ErrorKind> {
        if let Ok(addr) = authority.parse::<SocketAddr>() {
            return TcpStream::connect(addr)
                .await
                .map_err(|_| ErrorKind::Connect);
        }
        let (host, port) = split(authority).ok_or(ErrorKind::Dns)?;
        let (addrs, first) = self.resolve(host).await?;
        for i in 0..addrs.len() {
            let ip = addrs[(first + i) % addrs.len()];
            if let Ok(s) = TcpStream::connect((ip, port)).await {
                return Ok(s);
            }
        }
        Err(ErrorKind::Connect)
    }

    /// The addresses of `host` and the index a new connection starts at.
    pub async fn resolve(&self, host: &str) -> Result<(Arc<[IpAddr]>, usize), ErrorKind> {
        let Some(entry) = self.entry(host) else {
            // Over the bound: no caching, but still an answer.
            let addrs = self.ask(host).await.ok_or(ErrorKind::Dns)?;
            return Ok((addrs, 0));
        };
        let addrs = {
            let mut answer = entry.answer.lock().await;
            let now = Instant::now();
            match answer.as_ref() {
                Some(a) if a.fresh(now) => a.addrs.clone(),
                _ => {
                    let addrs = self.ask(host).await;
                    *answer = Some(Answer {
                        at: Instant::now(),
                        addrs: addrs.clone(),
                    });
                    addrs
                }
            }
        };
        let addrs = addrs.ok_or(ErrorKind::Dns)?;
        let first = entry.next.fetch_add(1, Ordering::Relaxed) % addrs.len();
        Ok((addrs, first))
    }

    /// One lookup; no addresses is a failure too.
    async fn ask(&self, host: &str) -> Option<Arc<[IpAddr]>> {
        // A bracketed IPv6 literal has no name to look up.
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            return Some(Arc::from([ip]));
        }
        match (self.lookup)(host.to_string()).await {
            Ok(mut v) if !v.is_empty() => {
                v.dedup();
                Some(v.into())
            }
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(host, error = %e, "name lookup failed");
                None
            }
        }
    }

    /// The cache entry of `host`, made if there is room (`None` if not).
    fn entry(&self, host: &str) -> Option<Arc<Host>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = hosts.get(host) {
            return Some(h.clone());
        }
        if hosts.len() >= MAX_HOSTS {
            return None;
        }
        let h = Arc::new(Host {
            answer: tokio::sync::Mutex::new(None),
            next: AtomicUsize::new(0),
        });
        hosts.insert(host.to_string(), h.clone());
        Some(h)
    }
}

/// `host:port` -> (host, port); the host keeps an IPv6 literal's brackets.
fn split(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = authority.rsplit_once(':')?;
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests;
