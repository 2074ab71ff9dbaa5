//! The agent's HTTP API: wire types (shared with the operator, its client)
//! and the routing. `GET /snapshot` serves the whole cumulative snapshot
//! (tools, tests); `GET /snapshot?since=CURSOR` what changed since the state
//! the caller acknowledged (the operator's pulls, see `snapshot::cursor`). Handlers stay cheap because they share the runtime with
//! the load; the one costly call, building a snapshot, runs on the blocking
//! pool.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
};
use serde::{Deserialize, Serialize};

use super::{Agent, schedule::AgentState};

pub const HEALTHZ: &str = "/healthz";
pub const STATUS: &str = "/status";
pub const START: &str = "/start";
pub const SNAPSHOT: &str = "/snapshot";
pub const STOP: &str = "/stop";
pub const SHUTDOWN: &str = "/shutdown";

/// `GET /snapshot?since=CURSOR`: what changed since the state acknowledged
/// by CURSOR (0: everything), as a `SnapshotDelta`; see `snapshot::cursor`.
pub fn snapshot_since(cursor: u64) -> String {
    format!("{SNAPSHOT}?since={cursor}")
}

/// `/start` bodies are one small object; anything bigger is not ours.
const MAX_BODY: usize = 16 * 1024;

/// The body of `GET /status` and of the `/start`, `/stop`, `/shutdown` replies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    pub state: AgentState,
    /// This runner's slot.
    pub index: u32,
    pub count: u32,
    /// The accepted start instant (unix µs).
    #[serde(default)]
    pub start_at_us: Option<u64>,
    /// When the load really started and ended (unix µs).
    #[serde(default)]
    pub started_us: Option<u64>,
    #[serde(default)]
    pub finished_us: Option<u64>,
}

/// The body of `POST /start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRequest {
    /// Unix time in microseconds at which every runner starts.
    pub at_us: u64,
}

/// The body of every 4xx reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

type Reply = Response<Full<Bytes>>;

pub(super) async fn handle(agent: Arc<Agent>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let path = req.uri().path();
    // A liveness check without the token, so it must reveal nothing (over
    // TLS the pinned certificate is still needed to get this far).
    if path == HEALTHZ {
        return Ok(match *req.method() {
            Method::GET => text(StatusCode::OK, "ok"),
            _ => not_allowed("GET"),
        });
    }
    // Authenticate before routing, so a caller without the token cannot even
    // learn which paths exist.
    if !authorized(&req, &agent.token) {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(r);
    }
    let allowed = match path {
        STATUS | SNAPSHOT => "GET",
        START | STOP | SHUTDOWN => "POST",
        _ => return Ok(error(StatusCode::NOT_FOUND, "no such path")),
    };
    if req.method().as_str() != allowed {
        return Ok(not_allowed(allowed));
    }
    Ok(match path {
        STATUS => json(StatusCode::OK, &agent.status()),
        START => start(&agent, req).await,
        SNAPSHOT => match since(req.uri().query()) {
            Ok(Some(cursor)) => delta(&agent, cursor).await,
            Ok(None) => snapshot(&agent, req.uri().query() != Some("intervals=false")).await,
            Err(e) => error(StatusCode::BAD_REQUEST, &e),
        },
        STOP => {
            agent.stop_load();
            json(StatusCode::ACCEPTED, &agent.status())
        }
        SHUTDOWN => {
            // The server drains connections before the process exits, so this
            // reply is written out even though the signal goes first.
            agent.shutdown.trigger();
            json(StatusCode::OK, &agent.status())
        }
        _ => unreachable!("matched above"),
    })
}

async fn start(agent: &Arc<Agent>, req: Request<Incoming>) -> Reply {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        // Over the limit is the caller's size, not its syntax (RFC 9110 §15.5.14).
        Err(e) if e.is::<LengthLimitError>() => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("body over the {MAX_BODY}-byte limit"),
            );
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}")),
    };
    let start: StartRequest = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("body must be {{\"atUs\": <unix µs>}}: {e}"),
            );
        }
    };
    let (outcome, status) = agent.start_at(start.at_us);
    let code = match outcome {
        super::schedule::StartOutcome::Scheduled => StatusCode::ACCEPTED,
        super::schedule::StartOutcome::AlreadyScheduled => StatusCode::OK,
        super::schedule::StartOutcome::Conflict => StatusCode::CONFLICT,
    };
    json(code, &status)
}

/// `?intervals=false` leaves out the per-interval series: the operator's
/// live pulls do not need it, and in a long soak test it is most of the size.
async fn snapshot(agent: &Arc<Agent>, intervals: bool) -> Reply {
    // Merging the recorder's shards takes milliseconds under heavy load: keep
    // it off the async workers that drive the load and this server.
    let runner = agent.runner.clone();
    match tokio::task::spawn_blocking(move || runner.snapshot_with(intervals).to_json()).await {
        Ok(body) => with_type(StatusCode::OK, body.into(), "application/json"),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("snapshot failed: {e}"),
        ),
    }
}

/// The `since` of a snapshot query, if it has one.
fn since(query: Option<&str>) -> Result<Option<u64>, String> {
    let Some(v) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("since="))
    else {
        return Ok(None);
    };
    v.parse().map(Some).map_err(|_| {
        format!("since: {v:?} is not a cursor (a whole number from a previous reply, or 0)")
    })
}

/// An incremental pull: the difference from the acknowledged state. The
/// cursors' lock is held while the reply is built, so pulls that overlap
/// are answered one after the other, each from a consistent state.
async fn delta(agent: &Arc<Agent>, since: u64) -> Reply {
    let agent = agent.clone();
    let built = tokio::task::spawn_blocking(move || {
        let mut cursors = agent.cursors.lock().unwrap_or_else(|e| e.into_inner());
        cursors
            .reply(since, |first| agent.runner.snapshot_from(Some(first)))
            .to_json()
    });
    match built.await {
        Ok(body) => with_type(StatusCode::OK, body.into(), "application/json"),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("snapshot failed: {e}"),
        ),
    }
}

/// Constant-time in the token's content: the time taken must not tell an
/// attacker how many leading bytes of a guess were right.
fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer_token(v.as_bytes()))
    else {
        return false;
    };
    constant_time_eq(given, token.as_bytes())
}

/// The credentials of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive and followed by one or more spaces (RFC 9110 §11.4,
/// RFC 6750 §2.1), so `bearer t` and `BEARER  t` are the same as `Bearer t`.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    Some(&rest[start..])
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

fn with_type(code: StatusCode, body: Bytes, content_type: &'static str) -> Reply {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(code: StatusCode, body: &'static str) -> Reply {
    with_type(code, Bytes::from_static(body.as_bytes()), "text/plain")
}

fn json<T: Serialize>(code: StatusCode, value: &T) -> Reply {
    let body = serde_json::to_vec(value).expect("API types always serialize");
    with_type(code, body.into(), "application/json")
}

fn error(code: StatusCode, message: &str) -> Reply {
    json(
        code,
        &ApiError {
            error: message.to_string(),
        },
    )
}

fn not_allowed(allow: &'static str) -> Reply {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_needs_an_exact_match() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"secret\0", b"secret"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR   t0k"] {
            assert_eq!(bearer_token(v.as_bytes()), Some(&b"t0k"[..]), "{v}");
        }
        for v in [
            "Basic t0k",
            "Bearert0k",
            "Bearer",
            "Bearer ",
            "Bearer:t0k",
            " Bearer t0k",
        ] {
            assert_eq!(bearer_token(v.as_bytes()), None, "{v}");
        }
    }

    #[test]
    fn since_is_read_from_the_query() {
        assert_eq!(since(None), Ok(None));
        assert_eq!(since(Some("intervals=false")), Ok(None));
        assert_eq!(since(Some("since=0")), Ok(Some(0)));
        assert_eq!(since(Some("x=1&since=42")), Ok(Some(42)));
        let e = since(Some("since=-1")).unwrap_err();
        assert!(e.starts_with("since: \"-1\""), "{e}");
        assert_eq!(snapshot_since(7), "/snapshot?since=7");
    }

    #[test]
    fn wire_types_are_camel_case_with_null_times() {
        let s = AgentStatus {
            state: AgentState::Ready,
            index: 1,
            count: 3,
            start_at_us: None,
            started_us: None,
            finished_us: None,
        };
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"state": "ready", "index": 1, "count": 3,
                "startAtUs": null, "startedUs": null, "finishedUs": null})
        );
        let r: StartRequest = serde_json::from_str(r#"{"atUs": 42}"#).unwrap();
        assert_eq!(r.at_us, 42);
    }
}
