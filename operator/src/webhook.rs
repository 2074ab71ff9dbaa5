//! The validating admission webhook for LoadTest and ScheduledLoadTest
//! (docs/webhook.md): the API server sends each CREATE and UPDATE here and
//! refuses what the operator would refuse, with every error named by field.
//!
//! `admit` is the pure AdmissionReview handling; `refs` the warnings about
//! what the spec references in the cluster; `certs` the pure certificate
//! decisions; `keep` the loop that applies them to the Secret and the
//! webhook configuration's caBundle; `serve` the HTTPS server. Every
//! replica serves (validation is stateless) and keeps its certificate
//! current, leader or not; leader election is not involved.

pub mod admit;
pub mod certs;
pub mod keep;
pub mod refs;
pub mod serve;
#[cfg(test)]
mod tests;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use barrage_runner::duration::HumanDuration;
use kube::{Api, Client};
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
};
use tracing::{info, warn};

pub use serve::ready;

/// The webhook's flags (each also an environment variable).
#[derive(clap::Args, Clone, Debug)]
pub struct Flags {
    /// Where the admission webhook is served over HTTPS, e.g. 0.0.0.0:9443.
    /// Empty: no webhook.
    #[arg(long, env = "BARRAGE_WEBHOOK_ADDR", default_value = "")]
    pub webhook_addr: String,
    /// The Secret (in the operator's namespace) holding the webhook's CA
    /// and serving certificate.
    #[arg(
        long,
        env = "BARRAGE_WEBHOOK_SECRET",
        default_value = "barrage-webhook-tls"
    )]
    pub webhook_secret: String,
    /// The Service the API server calls (its names go into the certificate).
    #[arg(
        long,
        env = "BARRAGE_WEBHOOK_SERVICE",
        default_value = "barrage-webhook"
    )]
    pub webhook_service: String,
    /// The ValidatingWebhookConfiguration whose caBundle the operator keeps.
    #[arg(long, env = "BARRAGE_WEBHOOK_CONFIGURATION", default_value = "barrage")]
    pub webhook_configuration: String,
    /// Make and rotate the certificates and keep the caBundle. false: only
    /// read the Secret (cert-manager makes it and injects the bundle).
    #[arg(long, env = "BARRAGE_WEBHOOK_MANAGE_CERTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub webhook_manage_certs: bool,
    #[arg(long, env = "BARRAGE_WEBHOOK_CA_VALIDITY", default_value = "87600h")]
    pub webhook_ca_validity: HumanDuration,
    /// The CA rotation starts when less than this is left of it.
    #[arg(long, env = "BARRAGE_WEBHOOK_CA_RENEW_BEFORE", default_value = "8760h")]
    pub webhook_ca_renew_before: HumanDuration,
    #[arg(long, env = "BARRAGE_WEBHOOK_CERT_VALIDITY", default_value = "2160h")]
    pub webhook_cert_validity: HumanDuration,
    /// The serving certificate is renewed when less than this is left of it.
    #[arg(
        long,
        env = "BARRAGE_WEBHOOK_CERT_RENEW_BEFORE",
        default_value = "720h"
    )]
    pub webhook_cert_renew_before: HumanDuration,
    /// How often each replica reads the Secret (and reloads what changed).
    #[arg(long, env = "BARRAGE_WEBHOOK_CHECK_INTERVAL", default_value = "30s")]
    pub webhook_check_interval: HumanDuration,
}

impl Flags {
    pub fn enabled(&self) -> bool {
        !self.webhook_addr.trim().is_empty()
    }

    pub fn addr(&self) -> Result<SocketAddr, String> {
        self.webhook_addr
            .trim()
            .parse()
            .map_err(|e| format!("--webhook-addr {:?}: {e}", self.webhook_addr))
    }

    fn interval(&self) -> Duration {
        self.webhook_check_interval.0.max(Duration::from_secs(1))
    }

    /// The certificate settings; each CA rotation step waits two rounds of
    /// every replica plus some slack (`certs::Settings::settle`).
    pub fn settings(&self, namespace: &str) -> Result<certs::Settings, String> {
        let s = certs::Settings {
            ca_validity: self.webhook_ca_validity.0,
            ca_renew_before: self.webhook_ca_renew_before.0,
            cert_validity: self.webhook_cert_validity.0,
            cert_renew_before: self.webhook_cert_renew_before.0,
            settle: self.interval() * 2 + Duration::from_secs(5),
            dns_names: certs::service_names(self.webhook_service.trim(), namespace),
        };
        s.check()?;
        Ok(s)
    }
}

/// Checks the flags before anything starts: a bad one is exit status 2.
pub fn check(flags: &Flags, namespace: &str) -> Result<(), String> {
    if flags.enabled() {
        flags.addr()?;
        if flags.webhook_manage_certs {
            flags.settings(namespace)?;
        }
    }
    Ok(())
}

/// Serves the webhook and keeps its certificate until the process ends;
/// returns only if the port cannot be bound. Not ready (/readyz) until a
/// serving certificate is loaded.
pub async fn run(client: Client, flags: Flags, namespace: String) -> Result<(), String> {
    serve::set_ready(false);
    let addr = flags.addr()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot serve the webhook on {addr}: {e}"))?;
    let swap = Arc::new(serve::Swap::default());
    let managed = if flags.webhook_manage_certs {
        Some((
            flags.settings(&namespace)?,
            Api::all(client.clone()),
            flags.webhook_configuration.clone(),
        ))
    } else {
        None
    };
    let keeper = keep::Keeper {
        secrets: Api::namespaced(client.clone(), &namespace),
        secret: flags.webhook_secret.clone(),
        managed,
        swap: swap.clone(),
    };
    let interval = flags.interval();
    tokio::spawn(async move {
        let mut raced = 0;
        loop {
            match keeper.tick().await {
                // Another replica wrote first: read its write at once (a few times).
                Ok(false) if raced < 3 => {
                    raced += 1;
                    continue;
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "webhook certificate check failed"),
            }
            raced = 0;
            tokio::time::sleep(interval).await;
        }
    });
    serve::serve(listener, swap, Some(client))
        .await
        .map_err(|e| format!("webhook server stopped: {e}"))
}

/// How long a stopping replica goes on answering after SIGTERM, not ready:
/// the API server keeps calling a pod until kube-proxy has dropped it from
/// the webhook Service (about a second), and with failurePolicy Fail a call
/// to a pod that is gone would refuse an apply.
pub const DRAIN: Duration = Duration::from_secs(5);

/// Completes `DRAIN` after SIGTERM (or SIGINT), having made /readyz fail at
/// once. The operator waits for it before exiting while the webhook is on.
pub async fn drained() {
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    serve::set_ready(false);
    info!(drain = ?DRAIN, "stopping: the webhook answers a little longer");
    tokio::time::sleep(DRAIN).await;
}
