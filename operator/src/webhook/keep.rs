//! Every replica, every `interval`: reads the certificate Secret, makes or
//! rotates what `certs::plan` says (managed mode), keeps the
//! ValidatingWebhookConfiguration's caBundle equal to `certs::bundle`, and
//! loads the serving certificate into the server when it changed.
//!
//! Any replica may write: each write is a replace at the resourceVersion it
//! read, so two replicas racing make one write and the other re-reads next
//! time; the decision is a function of the Secret, so they agree. With
//! cert-manager the Secret is cert-manager's: only read and loaded.

use std::{sync::Arc, time::SystemTime};

use k8s_openapi::{
    ByteString, api::admissionregistration::v1::ValidatingWebhookConfiguration,
    api::core::v1::Secret,
};
use kube::{Api, api::PostParams};
use tracing::{debug, info, warn};

use super::{
    certs::{self, Data, Plan, Settings, TLS_CRT, TLS_KEY},
    serve::{Swap, set_ready},
};
use crate::error::{Error, Result};

pub struct Keeper {
    pub secrets: Api<Secret>,
    pub secret: String,
    /// Managed mode: how to make and rotate the certificates, and the
    /// webhook configuration whose caBundle to keep. None: read only.
    pub managed: Option<(Settings, Api<ValidatingWebhookConfiguration>, String)>,
    pub swap: Arc<Swap>,
}

impl Keeper {
    /// One round; errors are for the caller to log (the next round retries).
    /// Ok(false): another replica wrote the Secret meanwhile; read it again
    /// now rather than wait a whole interval without a certificate.
    pub async fn tick(&self) -> Result<bool> {
        let secret = self.secrets.get(&self.secret).await.map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 => Error::Other(format!(
                "the webhook certificate Secret {:?} does not exist (the chart creates it)",
                self.secret
            )),
            e => e.into(),
        })?;
        let mut data: Data = secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let mut bundle = Ok(());
        if let Some((settings, configs, config)) = &self.managed {
            let now = SystemTime::now();
            let plan = certs::plan(now, &data, settings);
            if plan != Plan::Keep {
                let new = certs::apply(plan, now, &data, settings)
                    .map_err(|e| Error::Other(e.to_string()))?;
                let mut updated = secret.clone();
                updated.data = Some(
                    new.iter()
                        .map(|(k, v)| (k.clone(), ByteString(v.clone())))
                        .collect(),
                );
                match self
                    .secrets
                    .replace(&self.secret, &PostParams::default(), &updated)
                    .await
                {
                    Ok(_) => {
                        info!(step = ?plan, secret = %self.secret, "webhook certificates updated");
                        data = new;
                    }
                    // Another replica wrote first; its write is read next round.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        debug!(step = ?plan, "webhook Secret changed meanwhile");
                        return Ok(false);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // Patched before loading: a replica turns ready with the bundle in place.
            bundle = ensure_bundle(configs, config, &certs::bundle(&data)).await;
        }
        // Served even if the bundle could not be patched this round.
        self.load(&data)?;
        bundle.map(|()| true)
    }

    fn load(&self, data: &Data) -> Result<()> {
        match (data.get(TLS_CRT), data.get(TLS_KEY)) {
            (Some(c), Some(k)) if !c.is_empty() && !k.is_empty() => {
                if self.swap.load(c, k).map_err(Error::Other)? {
                    let until = certs::parse(c).map(|p| p.not_after);
                    info!(not_after_unix = ?until, "webhook serving certificate loaded");
                }
                set_ready(true);
                Ok(())
            }
            _ => Err(Error::Other(format!(
                "the webhook Secret {:?} holds no serving certificate yet",
                self.secret
            ))),
        }
    }
}

/// Sets every webhook's caBundle in `name` to `bundle`, if it is not already.
async fn ensure_bundle(
    api: &Api<ValidatingWebhookConfiguration>,
    name: &str,
    bundle: &[u8],
) -> Result<()> {
    let mut vwc = api.get(name).await?;
    let mut changed = false;
    for w in vwc.webhooks.iter_mut().flatten() {
        if w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(bundle) {
            w.client_config.ca_bundle = Some(ByteString(bundle.to_vec()));
            changed = true;
        }
    }
    if !changed {
        return Ok(());
    }
    match api.replace(name, &PostParams::default(), &vwc).await {
        Ok(_) => {
            info!(configuration = %name, "webhook caBundle updated");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => {
            warn!(configuration = %name, "cannot update the webhook caBundle");
            Err(e.into())
        }
    }
}
