//! The LoadTest controller's wiring: one controller per watched scope, each
//! woken by its LoadTests, by the pods and Jobs the operator owns there, and
//! keeping those pods in a reflector store that the phases read.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api, Client,
    api::DynamicObject,
    runtime::{
        Controller, WatchStreamExt, controller,
        events::{Recorder, Reporter},
        reflector::{self, store::Writer},
        watcher,
    },
};

use super::{
    context::{Config, Context},
    reconcile::{error_policy, reconcile},
};
use crate::{
    cluster::{self, MANAGER},
    crd::loadtest_resource,
    metrics::Metrics,
    pods,
};

/// Runs one controller per watched namespace (all namespaces when the list
/// is empty: then one cluster-wide controller) until a shutdown signal.
pub async fn run(client: Client, config: Config, namespaces: Vec<String>, metrics: Arc<Metrics>) {
    let reporter = Reporter {
        controller: MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let scopes = cluster::scopes(namespaces);
    let (stores, writers): (Vec<_>, Vec<_>) = scopes
        .iter()
        .map(|scope| {
            let (store, writer) = reflector::store();
            ((scope.clone(), store), writer)
        })
        .unzip();
    let ctx = Arc::new(Context::new(
        client.clone(),
        config,
        Recorder::new(client.clone(), reporter),
        stores,
        metrics,
    ));
    let controllers = scopes
        .into_iter()
        .zip(writers)
        .map(|(ns, writer)| controller(client.clone(), ctx.clone(), ns, writer));
    futures::future::join_all(controllers).await;
}

async fn controller(
    client: Client,
    ctx: Arc<Context>,
    namespace: Option<String>,
    pod_store: Writer<Pod>,
) {
    let ar = loadtest_resource();
    let (lts, pods_api, jobs): (Api<DynamicObject>, Api<Pod>, Api<Job>) = match &namespace {
        Some(ns) => (
            Api::namespaced_with(client.clone(), ns, &ar),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all_with(client.clone(), &ar),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        pods::MANAGED_BY.0,
        pods::MANAGED_BY.1
    ));
    // One watch of our pods both fills the store and wakes the controller,
    // deletions included (a runner that vanished is noticed at once).
    let pod_events = watcher(pods_api, owned.clone())
        .default_backoff()
        .reflect(pod_store)
        .touched_objects();
    Controller::new_with(lts, watcher::Config::default(), ar)
        .owns_stream(pod_events)
        .owns(jobs, owned)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| {
            // A LoadTest deleted (without a finalizer) is not reconciled
            // again; its wake-up finds it gone, and its memory goes here.
            if let Err(controller::Error::ObjectNotFound(gone)) = &res {
                ctx.forget_gone(gone.namespace.as_deref().unwrap_or_default(), &gone.name);
            } else if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile loop");
            }
            std::future::ready(())
        })
        .await;
}
