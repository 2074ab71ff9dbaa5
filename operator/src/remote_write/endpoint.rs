//! Pure: resolved credentials and TLS material into the pusher's
//! `Endpoint`. The values arrive with where they came from (a Secret's key,
//! a file), which is all a message ever says of them.

use std::{collections::BTreeMap, sync::Arc};

use barrage_runner::remote_write::{Endpoint, tls};
use base64::Engine;
use reqwest::header::HeaderValue;
use rustls::ClientConfig;

use super::spec::PUSH_TIMEOUT;

/// A value read from a Secret, a ConfigMap or a file; `at` says where
/// (e.g. `spec.output.prometheusRemoteWrite.bearerTokenFrom: secret "t"
/// key "token"`), for messages. Its `Debug` shows `at` only.
pub struct Value {
    pub at: String,
    pub bytes: Vec<u8>,
}

impl Value {
    pub fn pem(&self) -> tls::Pem<'_> {
        tls::Pem {
            at: &self.at,
            bytes: &self.bytes,
        }
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Value({})", self.at)
    }
}

#[derive(Debug)]
pub enum Auth {
    None,
    Basic { username: String, password: Value },
    Bearer(Value),
}

/// What `tls` referenced, read; `server_name` as given.
#[derive(Debug, Default)]
pub struct TlsMaterial {
    pub ca: Option<Value>,
    pub cert: Option<Value>,
    pub key: Option<Value>,
    pub server_name: Option<String>,
}

/// The endpoint: `headers` (already checked) plus the `Authorization`
/// header of `auth`, and a rustls config when `tls` asks for more than the
/// web PKI roots. The error names where the bad value came from.
pub fn endpoint(
    url: &str,
    headers: &BTreeMap<String, String>,
    auth: Auth,
    tls: Option<TlsMaterial>,
) -> Result<Endpoint, String> {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(value) = authorization(auth)? {
        hs.push(("Authorization".into(), value));
    }
    let tls = match tls {
        Some(m) if m.ca.is_some() || m.cert.is_some() || m.server_name.is_some() => {
            Some(client_config(&m)?)
        }
        _ => None,
    };
    Ok(Endpoint {
        url: url.to_string(),
        headers: hs,
        tls,
        timeout: PUSH_TIMEOUT,
    })
}

fn authorization(auth: Auth) -> Result<Option<String>, String> {
    let value = match auth {
        Auth::None => return Ok(None),
        Auth::Bearer(t) => {
            // As Prometheus reads its own token files: surrounding space is
            // the file's, not the token's.
            let token = text(&t)?.trim().to_string();
            if token.is_empty() {
                return Err(format!("{} is empty", t.at));
            }
            header_value(&t, format!("Bearer {token}"))?
        }
        Auth::Basic { username, password } => {
            // A trailing newline is the file's (`kubectl create secret
            // --from-file`); any other character is the password's.
            let p = text(&password)?.trim_end_matches(['\n', '\r']).to_string();
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{p}"));
            header_value(&password, format!("Basic {encoded}"))?
        }
    };
    Ok(Some(value))
}

fn text(v: &Value) -> Result<String, String> {
    String::from_utf8(v.bytes.clone()).map_err(|_| format!("{} is not UTF-8 text", v.at))
}

fn header_value(v: &Value, value: String) -> Result<String, String> {
    match HeaderValue::from_str(&value) {
        Ok(_) => Ok(value),
        Err(_) => Err(format!(
            "{} holds characters an HTTP header cannot carry",
            v.at
        )),
    }
}

/// The receiver's TLS (`barrage_runner::remote_write::tls`, which the CLI
/// uses too), with each part named by where it came from.
fn client_config(m: &TlsMaterial) -> Result<Arc<ClientConfig>, String> {
    let client = match (&m.cert, &m.key) {
        (Some(cert), Some(key)) => Some((cert.pem(), key.pem())),
        _ => None,
    };
    tls::client_config(
        m.ca.as_ref().map(Value::pem),
        client,
        m.server_name.as_deref(),
    )
    .map(Arc::new)
}
