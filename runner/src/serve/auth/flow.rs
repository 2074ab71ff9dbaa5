//! The authorization-code flow itself: `/auth/authorize` hands out a code
//! bound to a PKCE challenge, `/auth/token` exchanges it, once, for a
//! bearer token. Split from the server's user and token store (`auth.rs`).

use std::{sync::atomic::Ordering, time::Instant};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    HeaderMap, Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
};
use percent_encoding::utf8_percent_encode;
use serde_json::json;

use super::{
    Auth, Grant, Session, error, get, json_response, parse_form, random_token, read_body,
    s256_challenge, shard, sweep,
};
use crate::NOT_UNRESERVED;

impl Auth {
    pub(super) async fn authorize(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let mut params = parse_form(req.uri().query().unwrap_or(""));
        let basic = basic_credentials(req.headers());
        if req.method() == Method::POST {
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            // Later pairs win in `get`, so the body overrides the query.
            params.extend(parse_form(&String::from_utf8_lossy(&body)));
        } else {
            crate::serve::handler::drain(req).await;
        }
        let get = |name: &str| get(&params, name);

        let bad = |msg: &str| error(StatusCode::BAD_REQUEST, "invalid_request", msg);
        let Some(client_id) = get("client_id").filter(|c| !c.is_empty()) else {
            return bad("client_id is required");
        };
        let Some(redirect_uri) = get("redirect_uri").filter(|u| !u.is_empty()) else {
            return bad("redirect_uri is required");
        };
        if redirect_uri.contains('#') {
            return bad("redirect_uri must not have a fragment");
        }
        match get("response_type") {
            Some("code") => {}
            None => return bad("response_type is required"),
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_response_type",
                    "only response_type=code is supported",
                );
            }
        }
        let Some(challenge) = get("code_challenge") else {
            return bad("code_challenge is required (PKCE)");
        };
        if get("code_challenge_method") != Some("S256") {
            return bad("code_challenge_method must be S256");
        }
        if !valid_challenge(challenge) {
            return bad("code_challenge must be 43 characters of base64url (S256)");
        }

        let credentials = match basic {
            Some(c) => Some(c),
            None => get("email")
                .zip(get("password"))
                .map(|(e, p)| (e.to_string(), p.to_string())),
        };
        let user = credentials.and_then(|(email, password)| {
            let users = self.users.read().unwrap_or_else(|e| e.into_inner());
            users
                .get(&email)
                .filter(|u| u.password == password)
                .cloned()
        });
        let Some(user) = user else {
            let mut resp = error(
                StatusCode::UNAUTHORIZED,
                "access_denied",
                "unknown email or wrong password",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"barrage\""),
            );
            return resp;
        };

        let code = random_token();
        let mut location = format!(
            "{redirect_uri}{}code={code}",
            if redirect_uri.contains('?') { '&' } else { '?' }
        );
        if let Some(state) = get("state") {
            location += "&state=";
            location.extend(utf8_percent_encode(state, NOT_UNRESERVED));
        }
        let Ok(location) = HeaderValue::from_str(&location) else {
            return bad("redirect_uri is not a valid URI");
        };
        let now = Instant::now();
        {
            let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
            sweep(&mut codes, now, |g| g.expires);
            codes.insert(
                code,
                Grant {
                    user,
                    client_id: client_id.to_string(),
                    challenge: challenge.to_string(),
                    redirect_uri: redirect_uri.to_string(),
                    expires: now + self.code_ttl,
                },
            );
        }
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::FOUND;
        resp.headers_mut().insert(header::LOCATION, location);
        resp
    }

    pub(super) async fn token(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        let params = parse_form(&String::from_utf8_lossy(&body));
        let get = |name: &str| get(&params, name);
        match get("grant_type") {
            Some("authorization_code") => {}
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "grant_type is required",
                );
            }
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "only grant_type=authorization_code is supported",
                );
            }
        }
        let invalid = |msg: &str| error(StatusCode::BAD_REQUEST, "invalid_grant", msg);
        let (Some(code), Some(verifier)) = (get("code"), get("code_verifier")) else {
            return invalid("code and code_verifier are required");
        };
        if !valid_verifier(verifier) {
            return invalid("code_verifier must be 43..128 characters of [A-Za-z0-9-._~]");
        }
        let now = Instant::now();
        let user = {
            let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
            let Some(grant) = codes.get(code) else {
                return invalid("unknown or already used code");
            };
            if grant.expires <= now {
                codes.remove(code);
                return invalid("code expired");
            }
            if get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
                return invalid("redirect_uri does not match the authorization request");
            }
            if get("client_id").is_some_and(|c| c != grant.client_id) {
                return invalid("client_id does not match the authorization request");
            }
            if s256_challenge(verifier) != grant.challenge {
                return invalid("code_verifier does not match the code_challenge");
            }
            codes.remove(code).expect("present").user
        };
        let token = random_token();
        {
            let mut tokens = self.tokens[shard(&token)]
                .write()
                .unwrap_or_else(|e| e.into_inner());
            sweep(&mut tokens, now, |s| s.expires);
            tokens.insert(
                token.clone(),
                Session {
                    user,
                    expires: now + self.token_ttl,
                },
            );
        }
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
        let mut resp = json_response(
            StatusCode::OK,
            &json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_ttl.as_secs(),
            }),
        );
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

/// RFC 7636 section 4.1: 43..=128 characters of `[A-Za-z0-9-._~]`.
pub(super) fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// An S256 challenge is 32 bytes in base64url without padding.
pub(super) fn valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// (email, password) from `Authorization: Basic base64(email:password)`.
pub(super) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (email, password) = decoded.split_once(':')?;
    Some((email.to_string(), password.to_string()))
}
