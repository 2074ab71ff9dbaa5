//! The per-request path. Everything a response needs (status, body `Bytes`,
//! headers, latency table, error threshold, stall window as `Instant`s) is
//! prepared once in `Shared::new`, so a request costs a route scan, its
//! route's request count, at most one timer, and refcount bumps on the shared
//! body.

use std::{
    convert::Infallible,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    HeaderMap, Method, Request, Response, StatusCode,
    body::Incoming,
    header::{HeaderName, HeaderValue},
};

use super::{
    auth::{self, Auth, Endpoint},
    config::{ServeConfig, parse_method},
    latency::Latency,
    path::PathPattern,
    spread,
};

pub(crate) struct Route {
    /// An `/auth/*` endpoint, or None for a configured route.
    auth: Option<Endpoint>,
    /// 401 without a live bearer token.
    require_token: bool,
    method: Option<Method>,
    path: PathPattern,
    status: StatusCode,
    body: Bytes,
    headers: HeaderMap,
    latency: Latency,
    /// Draws below this (in ppm) get `error_status`; 0 = never.
    error_ppm: u32,
    error_status: StatusCode,
    /// Absolute `[start, end)`.
    stall: Option<(Instant, Instant)>,
    hits: AtomicU64,
}

/// State shared by all connections of one server.
pub(crate) struct Shared {
    pub(crate) routes: Vec<Route>,
    pub(crate) started: Instant,
    /// Requests answered 404 or 405.
    pub(crate) unmatched: AtomicU64,
    /// Users, codes and tokens, when the config has an `auth` section.
    pub(crate) auth: Option<Auth>,
}

impl Shared {
    /// `config` should be validated; values that are not anyway (possible
    /// only for a config built in code) are skipped or clamped with a warning
    /// rather than failing the server.
    pub(crate) fn new(config: &ServeConfig, started: Instant) -> Shared {
        // The auth endpoints come first, so a catch-all route cannot hide them.
        let auth_routes = config.auth.iter().flat_map(|_| {
            auth::ENDPOINTS
                .iter()
                .map(|(method, path, endpoint)| Route {
                    auth: Some(*endpoint),
                    require_token: false,
                    method: Some(method.clone()),
                    path: path.parse().expect("valid auth path"),
                    status: StatusCode::OK,
                    body: Bytes::new(),
                    headers: HeaderMap::new(),
                    latency: Latency::default(),
                    error_ppm: 0,
                    error_status: StatusCode::INTERNAL_SERVER_ERROR,
                    stall: None,
                    hits: AtomicU64::new(0),
                })
        });
        let configured = config.routes.iter().map(|r| {
            let mut headers = HeaderMap::with_capacity(r.headers.len());
            for (name, value) in &r.headers {
                match (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    (Ok(n), Ok(v)) => {
                        headers.append(n, v);
                    }
                    _ => tracing::warn!(route = %r.path, header = %name, "invalid header skipped"),
                }
            }
            let status = |code| {
                StatusCode::from_u16(code).unwrap_or_else(|_| {
                    tracing::warn!(route = %r.path, code, "invalid status, using 500");
                    StatusCode::INTERNAL_SERVER_ERROR
                })
            };
            Route {
                auth: None,
                require_token: r.require_token,
                method: r.method.as_deref().and_then(|m| parse_method(m).ok()),
                path: r.path.clone(),
                status: status(r.status),
                body: Bytes::from(r.body.clone()),
                headers,
                latency: r.latency.clone(),
                error_ppm: (r.error_rate.clamp(0.0, 1.0) * 1e6).round() as u32,
                error_status: status(r.error_status),
                stall: r.stall.map(|s| {
                    let (a, b) = s.window();
                    (started + a, started + b)
                }),
                hits: AtomicU64::new(0),
            }
        });
        let routes = auth_routes.chain(configured).collect();
        Shared {
            routes,
            started,
            unmatched: AtomicU64::new(0),
            auth: config.auth.as_ref().map(Auth::new),
        }
    }

    /// Requests seen by routes whose pattern is written exactly `pattern`
    /// (summed over methods).
    pub(crate) fn hits(&self, pattern: &str) -> u64 {
        self.routes
            .iter()
            .filter(|r| r.path.as_str() == pattern)
            .map(|r| r.hits.load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn route_hits(&self) -> Vec<(Option<Method>, String, u64)> {
        self.routes
            .iter()
            .map(|r| {
                (
                    r.method.clone(),
                    r.path.to_string(),
                    r.hits.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    pub(crate) fn describe_routes(&self) -> impl Iterator<Item = String> + '_ {
        self.routes.iter().map(|r| {
            let method = r.method.as_ref().map_or("*", Method::as_str);
            if r.auth.is_some() {
                return format!("{method} {} -> auth", r.path);
            }
            let mut s = format!("{method} {} -> {}", r.path, r.status.as_u16());
            if r.require_token {
                s += " (bearer token)";
            }
            if !r.latency.is_zero() {
                s += &format!(" latency {}", r.latency);
            }
            if r.error_ppm > 0 {
                s += &format!(" errors {}ppm as {}", r.error_ppm, r.error_status.as_u16());
            }
            s
        })
    }

    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let arrived = Instant::now();
        let path = req.uri().path();
        let mut path_matched = false;
        let route = self.routes.iter().find(|r| {
            if !r.path.matches(path) {
                return false;
            }
            path_matched = true;
            r.method.as_ref().is_none_or(|m| m == req.method())
        });
        let Some(route) = route else {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
            let status = if path_matched {
                StatusCode::METHOD_NOT_ALLOWED
            } else {
                StatusCode::NOT_FOUND
            };
            drain(req).await;
            return Ok(response(status, Bytes::new(), None));
        };
        // This request's place among its route's: it picks the latency and
        // error draws (see `spread`).
        let n = route.hits.fetch_add(1, Ordering::Relaxed);
        if let Some(endpoint) = route.auth {
            return Ok(match &self.auth {
                Some(a) => a.handle(endpoint, req).await,
                None => {
                    drain(req).await;
                    response(StatusCode::NOT_FOUND, Bytes::new(), None)
                }
            });
        }
        if route.require_token
            && self
                .auth
                .as_ref()
                .is_none_or(|a| a.authenticate(req.headers(), |_| ()).is_none())
        {
            // Refused at once: no latency, stall or error draw.
            let resp = auth::unauthorized(req.headers());
            drain(req).await;
            return Ok(resp);
        }
        // Read the request body to its end (chunks are slices of hyper's read
        // buffer, nothing is copied) so the connection stays reusable.
        drain(req).await;

        let mut deadline = None;
        if !route.latency.is_zero() {
            deadline = Some(arrived + route.latency.sample(n));
        }
        if let Some((start, end)) = route.stall {
            // Held if the request is in progress at any time in the window.
            if arrived < end && deadline.unwrap_or(arrived) >= start {
                deadline = Some(deadline.map_or(end, |d| d.max(end)));
            }
        }
        if let Some(d) = deadline {
            // tokio's own timer would add 1 to 2 ms (see `fine_sleep`).
            super::fine_sleep::sleep_until(d).await;
        }

        if route.error_ppm > 0 && spread::error_ppm(n) < route.error_ppm {
            return Ok(response(route.error_status, Bytes::new(), None));
        }
        Ok(response(
            route.status,
            route.body.clone(),
            Some(&route.headers),
        ))
    }
}

fn response(status: StatusCode, body: Bytes, headers: Option<&HeaderMap>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    if let Some(h) = headers.filter(|h| !h.is_empty()) {
        // The only per-request allocation, and only for routes with headers.
        resp.headers_mut().clone_from(h);
    }
    resp
}

pub(super) async fn drain(req: Request<Incoming>) {
    use hyper::body::Body as _;
    let mut body = req.into_body();
    if body.is_end_stream() {
        return;
    }
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
}
