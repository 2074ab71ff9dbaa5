//! Delivery: one HTTP POST per queued batch, retried with backoff while the
//! receiver is unreachable or overloaded, never blocking the run.

use std::time::Duration;

use super::Endpoint;

/// What became of one push.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Accepted,
    /// Worth trying again: a network error, a timeout, 5xx, 429; not
    /// before `after` when the receiver said so (`Retry-After`, bounded).
    Retry(String, Option<Duration>),
    /// The receiver refused native histograms (it has them off).
    NativeRefused(String),
    /// Refused for good (other 4xx, a redirect): the batch is dropped.
    Refused(String),
}

/// Response bytes read at most, for the error message: a hostile receiver
/// may answer with an endless body.
const MAX_ERROR_BODY: usize = 1024;
/// Characters of a receiver's message kept in `last_error`.
const MAX_MESSAGE: usize = 200;

/// The first wait after a failed push; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The longest `Retry-After` taken from a receiver.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

pub fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempt.min(16))
        .min(MAX_BACKOFF)
}

/// The client for `endpoint`: its TLS config (or the web PKI roots), no
/// redirects (credentials stay with the receiver they were given for).
pub fn client(endpoint: &Endpoint) -> Result<reqwest::Client, String> {
    let tls = match &endpoint.tls {
        Some(c) => (**c).clone(),
        None => super::tls::client_config(None, None, None)?,
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(endpoint.timeout)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))
}

/// POSTs one snappy-compressed `WriteRequest`.
pub async fn send(client: &reqwest::Client, endpoint: &Endpoint, body: Vec<u8>) -> Outcome {
    let mut req = client
        .post(&endpoint.url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header("User-Agent", concat!("barrage/", env!("CARGO_PKG_VERSION")));
    for (k, v) in &endpoint.headers {
        req = req.header(k, v);
    }
    let mut resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(e) => return Outcome::Retry(clean(&redact(endpoint, &network_error(&e))), None),
    };
    let status = resp.status();
    if status.is_success() {
        return Outcome::Accepted;
    }
    // Seconds only (an HTTP date is rare from receivers).
    let after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c[..c.len().min(MAX_ERROR_BODY - body.len())]),
            _ => break,
        }
    }
    drop(resp);
    let text = error_text(endpoint, &body);
    let msg = if text.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {text}", status.as_u16())
    };
    match classify(status.as_u16(), &text, msg) {
        Outcome::Retry(msg, _) => Outcome::Retry(msg, after),
        o => o,
    }
}

/// A receiver's answer (at most [`MAX_ERROR_BODY`] bytes of it) as one
/// short, credential-free line.
fn error_text(endpoint: &Endpoint, body: &[u8]) -> String {
    let mut raw = String::from_utf8_lossy(body).into_owned();
    if body.len() >= MAX_ERROR_BODY {
        // The cut may split an echoed credential: its head would not match
        // below, so the last word goes.
        raw.truncate(raw.trim_end().rfind(char::is_whitespace).unwrap_or(0));
    }
    // Masked whole before the text is cut short, so a credential that
    // straddles the cut leaves no part of itself behind.
    clean(&redact(endpoint, &raw))
}

/// Prometheus answers 500 "native histograms are disabled" (2.42, without
/// `--enable-feature=native-histograms`); other receivers word it their
/// own way, all naming native histograms.
fn classify(status: u16, text: &str, msg: String) -> Outcome {
    let t = text.to_ascii_lowercase();
    let native = (t.contains("native histogram") || t.contains("nativehistogram"))
        && (t.contains("disabled") || t.contains("not enabled") || t.contains("not supported"));
    match status {
        _ if native && status >= 400 => Outcome::NativeRefused(msg),
        429 | 500..=599 => Outcome::Retry(msg, None),
        _ => Outcome::Refused(msg),
    }
}

/// A network error's chain, without the URL (it may hold credentials;
/// the redacted URL is said elsewhere).
fn network_error(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let what = if e.is_timeout() {
        "no answer in time".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut cause = e.source();
    let mut parts = vec![what];
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    parts.join(": ")
}

/// One line of printable text, at most [`MAX_MESSAGE`] characters.
fn clean(s: &str) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one = one.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

/// Never a credential in a message: the header values (a receiver may echo
/// them) and the URL's userinfo and query are masked.
fn redact(endpoint: &Endpoint, msg: &str) -> String {
    let mut out = msg.to_string();
    let mut secrets: Vec<&str> = endpoint
        .headers
        .iter()
        .flat_map(|(_, v)| std::iter::once(v.as_str()).chain(v.split_whitespace()))
        .collect();
    if let Some((_, rest)) = endpoint.url.split_once("://") {
        let host_part = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if let Some((userinfo, _)) = host_part.rsplit_once('@') {
            secrets.push(userinfo);
            secrets.extend(userinfo.split(':'));
        }
    }
    if let Some((_, q)) = endpoint.url.split_once('?') {
        secrets.push(q);
        secrets.extend(q.split(['&', '=']));
    }
    // Longest first, so a part never leaves the rest of a whole behind;
    // short fragments (a scheme word) would mask ordinary text.
    secrets.retain(|s| s.len() >= 4);
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets {
        out = out.replace(s, "[redacted]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(headers: &[(&str, &str)]) -> Endpoint {
        Endpoint {
            url: "https://user:pa55word@mimir.example/api/v1/push?token=s3cret".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tls: None,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn what_is_retried() {
        let c = |s, t: &str| classify(s, t, "m".into());
        assert_eq!(c(503, "overloaded"), Outcome::Retry("m".into(), None));
        assert_eq!(c(429, ""), Outcome::Retry("m".into(), None));
        assert_eq!(c(400, "out of order sample"), Outcome::Refused("m".into()));
        assert_eq!(c(401, ""), Outcome::Refused("m".into()));
        assert_eq!(c(302, ""), Outcome::Refused("m".into()));
        assert_eq!(
            c(500, "native histograms are disabled"),
            Outcome::NativeRefused("m".into())
        );
        assert_eq!(
            c(
                400,
                "err-mimir-native-histogram-ingestion-disabled: native histograms are disabled"
            ),
            Outcome::NativeRefused("m".into())
        );
    }

    #[test]
    fn backoff_doubles_up_to_a_bound() {
        assert_eq!(backoff(0), FIRST_BACKOFF);
        assert_eq!(backoff(1), FIRST_BACKOFF * 2);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn messages_hold_no_credentials_and_are_bounded() {
        let e = endpoint(&[
            ("Authorization", "Bearer tok-abc123"),
            ("X-Scope-OrgID", "tenant-7"),
        ]);
        let echoed = "bad auth Bearer tok-abc123 for user:pa55word tenant-7 token=s3cret";
        let m = redact(&e, echoed);
        for secret in ["tok-abc123", "pa55word", "tenant-7", "s3cret"] {
            assert!(!m.contains(secret), "{m}");
        }
        assert!(m.starts_with("bad auth"), "{m}");
        // A token straddling the 200-character cut, and one cut by the
        // body's bound: no part of either is kept.
        for at in [150, 190, 195, 199, 205] {
            let body = format!("{} invalid token: Bearer tok-abc123 end", "w".repeat(at));
            let m = error_text(&e, body.as_bytes());
            assert!(!m.contains("tok-a") && !m.contains("abc1"), "{at}: {m}");
        }
        // Cut by the body's bound mid-token (whitespace collapses, so the
        // head would show): the last word goes.
        let head = "x tok-abc1";
        let body = format!("{}{head}", " ".repeat(MAX_ERROR_BODY - head.len()));
        let m = error_text(&e, body.as_bytes());
        assert_eq!(m, "x");
        let long = clean(&format!("a\nb\x1b[31m{}", "x".repeat(5000)));
        assert!(long.chars().count() <= MAX_MESSAGE + 1, "{}", long.len());
        assert!(!long.contains('\n') && !long.contains('\x1b'));
    }
}
