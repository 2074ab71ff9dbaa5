//! Serializing a compiled step into HTTP/1.1 request bytes, and judging its
//! response.
//!
//! Everything that does not depend on a template variable is serialized once
//! per runner: a request with no variables at all is a single `Bytes` sent
//! as is; otherwise the request is a list of literal byte runs and templates,
//! rendered into a buffer taken from a small per-thread pool (and given back
//! when the request is dropped), so steady-state requests do not allocate.

use std::{cell::RefCell, fmt::Write as _};

use bytes::Bytes;
use hyper::{Method, header::HeaderName};

use crate::{
    compile::{CaptureFrom, Check, CheckTest, Step, TargetInfo},
    template::{RenderCtx, Template},
};

use super::client::{Response, Want};

enum Seg {
    Lit(String),
    /// The request target: validated (and cut at a `#`) once rendered.
    Path(Template),
    /// A header value: validated once rendered.
    Value(HeaderName, Template),
    /// The body, preceded by its `content-length` and the blank line.
    Body(Template),
}

pub struct Prepared {
    /// The whole request, when nothing in it is templated.
    whole: Option<Bytes>,
    segs: Vec<Seg>,
    /// Bytes of the literal parts, to size the buffer.
    lit_len: usize,
}

/// A serialized request, ready for one write.
pub enum Outgoing {
    Static(Bytes),
    Rendered(String),
}

impl Outgoing {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Outgoing::Static(b) => b,
            Outgoing::Rendered(s) => s.as_bytes(),
        }
    }
}

thread_local! {
    /// Render buffers, reused across requests on this thread.
    static POOL: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}
/// Buffers kept per thread, and the largest one worth keeping.
const POOL_MAX: usize = 64;
const POOL_BUF_MAX: usize = 16 * 1024;

fn take_buf() -> String {
    POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default()
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        if let Outgoing::Rendered(s) = self
            && s.capacity() <= POOL_BUF_MAX
        {
            let mut s = std::mem::take(s);
            s.clear();
            // `try_with`: the thread may be shutting down.
            let _ = POOL.try_with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < POOL_MAX {
                    p.push(s);
                }
            });
        }
    }
}

impl Prepared {
    pub fn new(step: &Step, target: &TargetInfo) -> Prepared {
        let mut segs: Vec<Seg> = Vec::new();
        let mut lit = String::new();
        fn flush(lit: &mut String, segs: &mut Vec<Seg>) {
            if !lit.is_empty() {
                segs.push(Seg::Lit(std::mem::take(lit)));
            }
        }
        lit.push_str(step.method.as_str());
        lit.push(' ');
        match step.path.as_static().and_then(valid_path) {
            Some(p) => lit.push_str(p),
            None => {
                flush(&mut lit, &mut segs);
                segs.push(Seg::Path(step.path.clone()));
            }
        }
        lit.push_str(" HTTP/1.1\r\n");
        // The step's own Host header, if any, replaces the target's.
        let framing = |n: &HeaderName| {
            n == hyper::header::CONTENT_LENGTH || n == hyper::header::TRANSFER_ENCODING
        };
        if !step.headers.iter().any(|(n, _)| n == hyper::header::HOST) {
            let host = target.host_header.to_str().unwrap_or_default();
            let _ = write!(lit, "host: {host}\r\n");
        }
        for (name, t) in &step.headers {
            // The body is framed here, whatever the plan says.
            if framing(name) {
                continue;
            }
            lit.push_str(name.as_str());
            lit.push_str(": ");
            match t.as_static().filter(|v| valid_value(v.as_bytes())) {
                Some(v) => lit.push_str(v),
                None => {
                    flush(&mut lit, &mut segs);
                    segs.push(Seg::Value(name.clone(), t.clone()));
                }
            }
            lit.push_str("\r\n");
        }
        match &step.body {
            Some(t) => match t.as_static() {
                Some(b) => {
                    let _ = write!(lit, "content-length: {}\r\n\r\n{b}", b.len());
                }
                None => {
                    flush(&mut lit, &mut segs);
                    segs.push(Seg::Body(t.clone()));
                }
            },
            None => {
                // Methods that define a body say it is empty (RFC 9110 8.6).
                if matches!(step.method, Method::POST | Method::PUT | Method::PATCH) {
                    lit.push_str("content-length: 0\r\n");
                }
                lit.push_str("\r\n");
            }
        }
        flush(&mut lit, &mut segs);
        let whole = match segs.as_slice() {
            [Seg::Lit(s)] => Some(Bytes::copy_from_slice(s.as_bytes())),
            _ => None,
        };
        let lit_len = segs
            .iter()
            .map(|s| match s {
                Seg::Lit(s) => s.len(),
                _ => 0,
            })
            .sum();
        Prepared {
            whole,
            segs,
            lit_len,
        }
    }

    /// The request, and the bytes it puts on the wire. An error when a
    /// template rendered something that cannot be sent.
    pub fn build(&self, _step: &Step, ctx: &RenderCtx<'_>) -> Result<(Outgoing, u64), String> {
        if let Some(b) = &self.whole {
            return Ok((Outgoing::Static(b.clone()), b.len() as u64));
        }
        // Wrapped first, so that an early return gives the buffer back.
        let mut req = Outgoing::Rendered(take_buf());
        let Outgoing::Rendered(out) = &mut req else {
            unreachable!()
        };
        out.reserve(self.lit_len + 64);
        for seg in &self.segs {
            let start = out.len();
            match seg {
                Seg::Lit(s) => out.push_str(s),
                Seg::Path(t) => {
                    t.render_into(ctx, out);
                    let len = valid_path(&out[start..])
                        .ok_or("rendered path is not valid")?
                        .len();
                    out.truncate(start + len);
                }
                Seg::Value(name, t) => {
                    t.render_into(ctx, out);
                    if !valid_value(&out.as_bytes()[start..]) {
                        return Err(format!("rendered header {name} is not a valid value"));
                    }
                }
                Seg::Body(t) => {
                    t.render_into(ctx, out);
                    let mut head = [0u8; 40];
                    let head = content_length(&mut head, out.len() - start);
                    out.insert_str(start, head);
                }
            }
        }
        let sent = out.len() as u64;
        Ok((req, sent))
    }
}

/// `content-length: N\r\n\r\n`, formatted without allocating.
fn content_length(buf: &mut [u8; 40], n: usize) -> &str {
    let mut w = &mut buf[..];
    let _ = std::io::Write::write_fmt(&mut w, format_args!("content-length: {n}\r\n\r\n"));
    let left = w.len();
    let len = 40 - left;
    std::str::from_utf8(&buf[..len]).expect("ASCII")
}

/// The origin-form request target in `p`, checked as `http::Uri` checks a
/// path and query (the `#fragment`, if any, cut off); `None` if invalid.
pub(super) fn valid_path(p: &str) -> Option<&str> {
    let b = p.as_bytes();
    if b.first() != Some(&b'/') || b.len() >= u16::MAX as usize {
        return None;
    }
    let mut in_query = false;
    for (i, &c) in b.iter().enumerate() {
        let ok = match c {
            b'#' => return Some(&p[..i]),
            b'?' => {
                in_query = true;
                true
            }
            0x80.. => true,
            // Path: as `http` 1.x (which also tolerates `"`, `{` and `}`);
            // query: 0x21, 0x24-0x3B, 0x3D, 0x3F-0x7E.
            b'"' => !in_query,
            b'`' => in_query,
            0x21..=0x7e => !matches!(c, b'<' | b'>'),
            _ => false,
        };
        if !ok {
            return None;
        }
    }
    Some(p)
}

/// A header value as `HeaderValue` accepts it: no control characters but
/// tab (so no CR or LF), no DEL.
fn valid_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// What judging the response of `step` needs beyond its status.
pub fn want(step: &Step) -> Want {
    Want {
        head: step.method == Method::HEAD,
        body: step.needs_body(),
        headers: step.needs_headers(),
        max_body: step.max_body,
    }
}

/// Whether the serialized request `req` uses a method that RFC 9110 (9.2.2)
/// calls idempotent, so that sending it twice means what sending it once
/// does: GET, HEAD, OPTIONS, TRACE, PUT, DELETE. Read from the request line,
/// because a redirect may change the method.
pub fn idempotent(req: &[u8]) -> bool {
    let method = req.split(|&b| b == b' ').next().unwrap_or_default();
    [
        &b"GET"[..],
        b"HEAD",
        b"OPTIONS",
        b"TRACE",
        b"PUT",
        b"DELETE",
    ]
    .contains(&method)
}

pub fn status_ok(step: &Step, status: u16) -> bool {
    if step.expect.is_empty() {
        (200..400).contains(&status)
    } else {
        step.expect.contains(&status)
    }
}

/// The first of the step's body checks (`expect.body`) that the response
/// fails, in their order; None when all hold. A check that reads the body
/// has it: `want` keeps it for them (a longer one failed as too large).
pub fn failed_check<'s>(step: &'s Step, res: &Response) -> Option<&'s Check> {
    let body = res.body.as_deref().unwrap_or_default();
    // Parsed once, for the first JSON check; None if it is not JSON.
    let mut json: Option<Option<serde_json::Value>> = None;
    step.checks.iter().find(|c| {
        let holds = match &c.test {
            CheckTest::Contains(re) | CheckTest::Regex(re) => re.is_match(body),
            CheckTest::MaxSize(max) => res.body_len <= *max,
            CheckTest::Json { pointer, equals } => json
                .get_or_insert_with(|| serde_json::from_slice(body).ok())
                .as_ref()
                .and_then(|j| j.pointer(pointer))
                .is_some_and(|v| equals.as_deref().is_none_or(|want| json_equals(v, want))),
        };
        !holds
    })
}

/// Whether a JSON value equals `want`: a string compares with a JSON
/// string's contents, any other value by its JSON text (`42`, `true`,
/// `null`).
fn json_equals(value: &serde_json::Value, want: &str) -> bool {
    match value {
        serde_json::Value::String(s) => s == want,
        // By text: `Value == str` would hold only for a string.
        other => {
            let text = other.to_string();
            text == want
        }
    }
}

/// Takes each captured value from the response into `vars`; false when one is
/// missing.
pub fn capture(step: &Step, res: &Response, vars: &mut [Option<String>]) -> bool {
    let mut json: Option<serde_json::Value> = None;
    for (idx, from) in &step.captures {
        let value = match from {
            CaptureFrom::Header(h) => res.header(h.as_str()).map(str::to_string),
            CaptureFrom::Json(ptr) => {
                if json.is_none() {
                    json = res
                        .body
                        .as_ref()
                        .and_then(|b| serde_json::from_slice(b).ok());
                }
                json.as_ref().and_then(|j| j.pointer(ptr)).map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            }
            CaptureFrom::Regex(re) => res.body.as_ref().and_then(|b| {
                let caps = re.captures(b)?;
                let m = caps.get(1).or_else(|| caps.get(0))?;
                Some(String::from_utf8_lossy(m.as_bytes()).into_owned())
            }),
            CaptureFrom::LocationQuery(name) => {
                res.header("location").and_then(|l| location_query(l, name))
            }
        };
        match value {
            Some(v) => vars[*idx] = Some(v),
            None => return false,
        }
    }
    true
}

/// The value of query parameter `name` in the URL `location`, decoded as a
/// form value (`+` is a space); the first one if it repeats.
pub fn location_query(location: &str, name: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests;
