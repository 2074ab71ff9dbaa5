//! Building a request from a compiled step, and judging its response.
//! Static parts (no template variables) are built once per runner.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Request, Uri,
    header::{HOST, HeaderName, HeaderValue},
};

use crate::{
    compile::{CaptureFrom, Step, TargetInfo},
    template::{RenderCtx, Template},
};

use super::client::Response;

enum Part<T> {
    Static(T),
    Dyn(Template),
}

pub struct Prepared {
    uri: Part<Uri>,
    headers: Vec<(HeaderName, Part<HeaderValue>)>,
    body: Option<Part<Bytes>>,
    host: HeaderValue,
    /// Request line and static header bytes, for the bytes-sent count.
    fixed_len: u64,
}

impl Prepared {
    pub fn new(step: &Step, target: &TargetInfo) -> Prepared {
        let uri = match step.path.as_static().and_then(|s| s.parse().ok()) {
            Some(u) => Part::Static(u),
            None => Part::Dyn(step.path.clone()),
        };
        let headers: Vec<_> = step
            .headers
            .iter()
            .map(
                |(n, t)| match t.as_static().and_then(|s| HeaderValue::from_str(s).ok()) {
                    Some(v) => (n.clone(), Part::Static(v)),
                    None => (n.clone(), Part::Dyn(t.clone())),
                },
            )
            .collect();
        let body = step.body.as_ref().map(|t| match t.as_static() {
            Some(s) => Part::Static(Bytes::copy_from_slice(s.as_bytes())),
            None => Part::Dyn(t.clone()),
        });
        let fixed_len = (step.method.as_str().len() + 12 + 8 + target.host_header.len()) as u64
            + headers
                .iter()
                .map(|(n, v)| match v {
                    Part::Static(v) => (n.as_str().len() + v.len() + 4) as u64,
                    Part::Dyn(_) => 0,
                })
                .sum::<u64>();
        Prepared {
            uri,
            headers,
            body,
            host: target.host_header.clone(),
            fixed_len,
        }
    }

    /// The request, and the bytes it puts on the wire (approximately).
    pub fn build(
        &self,
        step: &Step,
        ctx: &RenderCtx<'_>,
    ) -> Result<(Request<Full<Bytes>>, u64), String> {
        let mut sent = self.fixed_len;
        let uri = match &self.uri {
            Part::Static(u) => u.clone(),
            Part::Dyn(t) => t
                .render(ctx)
                .parse::<Uri>()
                .map_err(|e| format!("rendered path is not valid: {e}"))?,
        };
        sent += uri.path_and_query().map_or(1, |p| p.as_str().len()) as u64;
        let mut b = Request::builder()
            .method(step.method.clone())
            .uri(uri)
            .header(HOST, self.host.clone());
        for (name, v) in &self.headers {
            let value = match v {
                Part::Static(v) => v.clone(),
                Part::Dyn(t) => {
                    let v = HeaderValue::from_str(&t.render(ctx))
                        .map_err(|_| format!("rendered header {name} is not a valid value"))?;
                    sent += (name.as_str().len() + v.len() + 4) as u64;
                    v
                }
            };
            b = b.header(name, value);
        }
        let body = match &self.body {
            None => Bytes::new(),
            Some(Part::Static(b)) => b.clone(),
            Some(Part::Dyn(t)) => Bytes::from(t.render(ctx)),
        };
        sent += body.len() as u64;
        let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;
        Ok((req, sent))
    }
}

pub fn status_ok(step: &Step, status: u16) -> bool {
    if step.expect.is_empty() {
        (200..400).contains(&status)
    } else {
        step.expect.contains(&status)
    }
}

/// Takes each captured value from the response into `vars`; false when one is
/// missing.
pub fn capture(step: &Step, res: &Response, vars: &mut [Option<String>]) -> bool {
    let mut json: Option<serde_json::Value> = None;
    for (idx, from) in &step.captures {
        let value = match from {
            CaptureFrom::Header(h) => res
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
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
        };
        match value {
            Some(v) => vars[*idx] = Some(v),
            None => return false,
        }
    }
    true
}
