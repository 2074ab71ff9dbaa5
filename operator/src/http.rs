//! The operator's own HTTP endpoint: /metrics for Prometheus, /healthz for
//! the liveness probe, /readyz for the readiness probe (which waits for the
//! admission webhook's certificate when the webhook is on).

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::metrics::Metrics;

fn reply(code: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static parts are valid")
}

async fn handle(
    metrics: Arc<Metrics>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match req.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok".into()),
        // Ready once the admission webhook (when on) serves with a certificate.
        "/readyz" if !crate::webhook::ready() => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "webhook not serving yet".into(),
        ),
        "/readyz" => reply(StatusCode::OK, "text/plain", "ok".into()),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found".into()),
    })
}

/// Serves until the process ends. Binding fails loudly: without probes the
/// pod would be restarted forever for a reason nobody sees.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    info!(%addr, "serving /metrics, /healthz, /readyz");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(metrics.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
