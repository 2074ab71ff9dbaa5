//! A small OAuth-like authorization-code flow with PKCE (RFC 7636, S256
//! only), so provisioning and token-checked load can run against the target
//! without an outside identity provider. Enabled by the config's `auth`
//! section; endpoints (all answer JSON):
//!
//! - `POST /auth/register` `{"email","password"}` → 201 `{"userId"}`, 409 if
//!   the email is taken, 400 if the body is not that JSON or a field is over
//!   256 bytes, 507 `user_limit` once `auth.maxUsers` users are registered
//!   (users are never evicted: a test's users must keep working).
//! - `GET /auth/authorize?client_id&redirect_uri&response_type=code&
//!   code_challenge&code_challenge_method=S256[&state]` with HTTP Basic
//!   credentials (email:password) → 302 `Location: redirect_uri?code=..&state=..`.
//!   `POST /auth/authorize` also works, with the same parameters and
//!   `email`/`password` in a form-encoded body (query or body, body wins).
//!   Bad request → 400, bad credentials → 401.
//! - `POST /auth/token` form `grant_type=authorization_code&code&code_verifier
//!   &redirect_uri` → 200 `{"access_token","token_type":"Bearer","expires_in"}`.
//!   A code is consumed by its successful exchange only; a wrong verifier,
//!   redirect_uri, an unknown, used or expired code → 400 `invalid_grant`.
//! - `GET /auth/me` with `Authorization: Bearer TOKEN` → 200 `{"userId","email"}`
//!   or 401; routes with `requireToken` check the token the same way.
//! - `DELETE /auth/me` with `Authorization: Bearer TOKEN` → 200 `{"deleted":
//!   USER_ID}`: the user
//!   is gone, with every token and code of theirs (their email may register
//!   again); 401 for a token that is not live. What a teardown calls to
//!   delete the users a setup made.
//! - `GET /auth/stats` → 200 `{"registered","deleted","maxUsers","refusedRegistrations",
//!   "tokensIssued","distinctUsers","rejected","userRequests":{"user-1":N,..}}`: what the server saw, so a
//!   test can check a run from outside (distinct users, failed token checks).
//!
//! Passwords are kept in plain text and tokens come from a non-cryptographic
//! RNG: a test target, not an identity provider.
//!
//! Token checks run under load, so tokens live in sharded `RwLock`ed maps (a
//! read lock and a hash lookup per request), and per-user request counts are
//! atomics on the user.
//!
//! Here: the users, codes and tokens, and the endpoints' dispatch; the
//! authorize and token steps of the flow are in `flow`.

use std::{
    collections::{BTreeMap, HashMap, hash_map::Entry},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    HeaderMap, Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::config::AuthSpec;

/// Which auth endpoint a route is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Register,
    Authorize,
    Token,
    Me,
    DeleteMe,
    Stats,
}

/// The endpoints, in the order they are matched (before configured routes).
pub(crate) const ENDPOINTS: [(Method, &str, Endpoint); 7] = [
    (Method::POST, "/auth/register", Endpoint::Register),
    (Method::GET, "/auth/authorize", Endpoint::Authorize),
    (Method::POST, "/auth/authorize", Endpoint::Authorize),
    (Method::POST, "/auth/token", Endpoint::Token),
    (Method::GET, "/auth/me", Endpoint::Me),
    (Method::DELETE, "/auth/me", Endpoint::DeleteMe),
    (Method::GET, "/auth/stats", Endpoint::Stats),
];

/// Request bodies of the auth endpoints are small; larger ones get 413.
const MAX_BODY: usize = 64 * 1024;

/// Token maps are split by the token's first character so that concurrent
/// token checks do not all bump one lock's reader count.
const SHARDS: usize = 16;

/// Maps are swept of expired entries when they reach a power of two at
/// least this large, so abandoned codes and old tokens cannot pile up.
const SWEEP_FROM: usize = 1024;

/// Longest email or password `/auth/register` keeps: with `maxUsers`, this
/// bounds the users' memory (a 64 KiB body per user would not be).
const MAX_FIELD: usize = 256;

pub(crate) struct User {
    id: String,
    email: String,
    password: String,
    /// Token-checked requests made with this user's tokens.
    requests: AtomicU64,
}

struct Grant {
    user: Arc<User>,
    client_id: String,
    challenge: String,
    redirect_uri: String,
    expires: Instant,
}

struct Session {
    user: Arc<User>,
    expires: Instant,
}

pub(crate) struct Auth {
    token_ttl: Duration,
    code_ttl: Duration,
    /// By email.
    users: RwLock<HashMap<String, Arc<User>>>,
    max_users: usize,
    /// Registrations refused because `max_users` were registered.
    refused: AtomicU64,
    next_user: AtomicU64,
    codes: Mutex<HashMap<String, Grant>>,
    tokens: [RwLock<HashMap<String, Session>>; SHARDS],
    distinct_users: AtomicU64,
    /// Users deleted (`DELETE /auth/me`).
    deleted: AtomicU64,
    tokens_issued: AtomicU64,
    rejected: AtomicU64,
}

/// base64url (no padding) of SHA-256(verifier): the S256 code challenge.
pub(crate) fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// 32 random bytes, base64url: 43 characters.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_exact_mut(8) {
        chunk.copy_from_slice(&fastrand::u64(..).to_le_bytes());
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

fn shard(token: &str) -> usize {
    token.as_bytes().first().map_or(0, |b| *b as usize % SHARDS)
}

impl Auth {
    pub(crate) fn new(spec: &AuthSpec) -> Auth {
        Auth {
            token_ttl: spec.token_ttl.as_duration(),
            code_ttl: spec.code_ttl.as_duration(),
            users: RwLock::default(),
            max_users: spec.max_users,
            refused: AtomicU64::new(0),
            next_user: AtomicU64::new(1),
            codes: Mutex::default(),
            tokens: std::array::from_fn(|_| RwLock::default()),
            distinct_users: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    /// Looks up the bearer token in `headers`; for a live one, counts the
    /// request for its user and returns `f(user)`. The token-checked path.
    pub(crate) fn authenticate<R>(
        &self,
        headers: &HeaderMap,
        f: impl FnOnce(&User) -> R,
    ) -> Option<R> {
        let found = self.session_user(headers, f);
        if found.is_none() {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    fn session_user<R>(&self, headers: &HeaderMap, f: impl FnOnce(&User) -> R) -> Option<R> {
        let token = bearer(headers)?;
        let now = Instant::now();
        let tokens = self.tokens[shard(token)]
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let session = tokens.get(token).filter(|s| s.expires > now)?;
        if session.user.requests.fetch_add(1, Ordering::Relaxed) == 0 {
            self.distinct_users.fetch_add(1, Ordering::Relaxed);
        }
        Some(f(&session.user))
    }

    /// Deletes the user of the bearer token in `headers`, with their tokens
    /// and codes, so nothing of theirs stays in memory; returns their id, or
    /// None (counted as a rejected token check) when the token is not live. A sweep of every
    /// token is bounded by the tokens held, which the sweeps bound in turn.
    fn delete_user(&self, headers: &HeaderMap) -> Option<String> {
        let (email, id) = self.authenticate(headers, |u| (u.email.clone(), u.id.clone()))?;
        let removed = {
            let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
            // Unless deleted meanwhile (another of its tokens), and its email
            // perhaps registered again by a new user.
            match users.get(&email) {
                Some(u) if u.id == id => users.remove(&email),
                _ => None,
            }
        };
        let Some(gone) = removed else {
            return Some(id);
        };
        for shard in &self.tokens {
            shard
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, s| !Arc::ptr_eq(&s.user, &gone));
        }
        self.codes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, g| !Arc::ptr_eq(&g.user, &gone));
        self.deleted.fetch_add(1, Ordering::Relaxed);
        Some(id)
    }

    /// Users deleted through `DELETE /auth/me`.
    pub(crate) fn deleted_users(&self) -> u64 {
        self.deleted.load(Ordering::Relaxed)
    }

    /// Token checks that failed (401s).
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// What `GET /auth/stats` answers, for tests that look from outside.
    fn stats(&self) -> serde_json::Value {
        json!({
            "registered": self.registered_users(),
            "deleted": self.deleted_users(),
            "maxUsers": self.max_users,
            "refusedRegistrations": self.refused.load(Ordering::Relaxed),
            "tokensIssued": self.tokens_issued(),
            "distinctUsers": self.distinct_users(),
            "rejected": self.rejected(),
            "userRequests": self.user_requests(),
        })
    }

    pub(crate) fn distinct_users(&self) -> u64 {
        self.distinct_users.load(Ordering::Relaxed)
    }

    pub(crate) fn tokens_issued(&self) -> u64 {
        self.tokens_issued.load(Ordering::Relaxed)
    }

    pub(crate) fn registered_users(&self) -> usize {
        self.users.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub(crate) fn user_id(&self, email: &str) -> Option<String> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.get(email).map(|u| u.id.clone())
    }

    /// Every registered user's id and token-checked request count.
    pub(crate) fn user_requests(&self) -> BTreeMap<String, u64> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users
            .values()
            .map(|u| (u.id.clone(), u.requests.load(Ordering::Relaxed)))
            .collect()
    }

    pub(crate) async fn handle(
        &self,
        endpoint: Endpoint,
        req: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        match endpoint {
            Endpoint::Register => self.register(req).await,
            Endpoint::Authorize => self.authorize(req).await,
            Endpoint::Token => self.token(req).await,
            Endpoint::Stats => {
                super::handler::drain(req).await;
                json_response(StatusCode::OK, &self.stats())
            }
            Endpoint::DeleteMe => {
                let resp = match self.delete_user(req.headers()) {
                    Some(id) => json_response(StatusCode::OK, &json!({ "deleted": id })),
                    None => unauthorized(req.headers()),
                };
                super::handler::drain(req).await;
                resp
            }
            Endpoint::Me => {
                let me =
                    self.authenticate(req.headers(), |u| json!({"userId": u.id, "email": u.email}));
                let resp = match me {
                    Some(v) => json_response(StatusCode::OK, &v),
                    None => unauthorized(req.headers()),
                };
                super::handler::drain(req).await;
                resp
            }
        }
    }

    async fn register(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        #[derive(Deserialize)]
        struct Register {
            email: String,
            password: String,
        }
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        let r: Register = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
        };
        if r.email.is_empty() || r.password.is_empty() {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "email and password must not be empty",
            );
        }
        for (name, value) in [("email", &r.email), ("password", &r.password)] {
            if value.len() > MAX_FIELD {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("{name} is over {MAX_FIELD} bytes"),
                );
            }
        }
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let full = users.len() >= self.max_users;
        match users.entry(r.email) {
            Entry::Occupied(_) => error(
                StatusCode::CONFLICT,
                "email_taken",
                "a user with this email exists",
            ),
            Entry::Vacant(_) if full => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                error(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "user_limit",
                    &format!(
                        "the server keeps at most {} users (auth.maxUsers)",
                        self.max_users
                    ),
                )
            }
            Entry::Vacant(v) => {
                let id = format!("user-{}", self.next_user.fetch_add(1, Ordering::Relaxed));
                let user = User {
                    id: id.clone(),
                    email: v.key().clone(),
                    password: r.password,
                    requests: AtomicU64::new(0),
                };
                v.insert(Arc::new(user));
                json_response(StatusCode::CREATED, &json!({ "userId": id }))
            }
        }
    }
}

fn sweep<V>(map: &mut HashMap<String, V>, now: Instant, expires: impl Fn(&V) -> Instant) {
    if map.len() >= SWEEP_FROM && map.len().is_power_of_two() {
        map.retain(|_, v| expires(v) > now);
    }
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// 401 for a missing or bad bearer token.
pub(crate) fn unauthorized(headers: &HeaderMap) -> Response<Full<Bytes>> {
    let mut resp = error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "a valid bearer token is required",
    );
    let challenge = if headers.contains_key(header::AUTHORIZATION) {
        "Bearer error=\"invalid_token\""
    } else {
        "Bearer"
    };
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    resp
}

fn error(status: StatusCode, error: &str, description: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(v.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "request body too large or unreadable",
        )),
    }
}

/// `application/x-www-form-urlencoded` (also query strings) into pairs.
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(s.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The last value of `name`.
fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

mod flow;
#[cfg(test)]
mod tests;
