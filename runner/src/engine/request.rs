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
mod tests {
    use std::time::Duration;

    use hyper::header::HeaderValue;

    use super::*;
    use crate::template::Scope;

    fn tpl(s: &str) -> Template {
        let fields = ["id".to_string(), "name".to_string()];
        let vars = ["token".to_string()];
        let scope = Scope {
            record_fields: Some(&fields),
            vars: &vars,
            user: &[],
            env: &|_| None,
            runner_index: 0,
            runner_count: 1,
        };
        Template::compile(s, &scope).unwrap()
    }

    fn step(method: Method, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Step {
        Step {
            metric: 0,
            method,
            path: tpl(path),
            headers: headers
                .iter()
                .map(|(n, v)| (HeaderName::from_bytes(n.as_bytes()).unwrap(), tpl(v)))
                .collect(),
            body: body.map(tpl),
            expect: Vec::new(),
            timeout: Duration::from_secs(1),
            captures: Vec::new(),
            follow_redirects: false,
            max_body: 1024,
            checks: Vec::new(),
        }
    }

    fn target() -> TargetInfo {
        TargetInfo {
            authority: "127.0.0.1:8080".into(),
            host_header: HeaderValue::from_static("example.test:8080"),
            prefix: String::new(),
            https: false,
            host: "127.0.0.1".into(),
            tls: None,
        }
    }

    fn build(s: &Step, record: &[&str]) -> Result<(String, u64), String> {
        let record: Vec<String> = record.iter().map(|s| s.to_string()).collect();
        let vars = [Some("t0k".to_string())];
        let pkce = crate::template::Pkce::default();
        let ctx = RenderCtx {
            record: Some(&record),
            vars: &vars,
            user: &[],
            seq: 42,
            pkce: &pkce,
        };
        let p = Prepared::new(s, &target());
        let (req, sent) = p.build(s, &ctx)?;
        let text = String::from_utf8(req.as_bytes().to_vec()).unwrap();
        assert_eq!(sent, text.len() as u64);
        Ok((text, sent))
    }

    #[test]
    fn static_requests_are_serialized_once() {
        let s = step(
            Method::GET,
            "/a/b?x=1",
            &[("accept", "text/plain"), ("x-k", "v")],
            None,
        );
        let p = Prepared::new(&s, &target());
        assert!(p.whole.is_some());
        let (text, _) = build(&s, &[]).unwrap();
        assert_eq!(
            text,
            "GET /a/b?x=1 HTTP/1.1\r\nhost: example.test:8080\r\naccept: text/plain\r\nx-k: v\r\n\r\n"
        );
        let s = step(
            Method::POST,
            "/p",
            &[("content-type", "application/json")],
            Some("{\"a\":1}"),
        );
        assert_eq!(
            build(&s, &[]).unwrap().0,
            "POST /p HTTP/1.1\r\nhost: example.test:8080\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
        );
        // A method that defines a body says when it is empty; GET does not.
        let s = step(Method::PUT, "/p", &[], None);
        assert_eq!(
            build(&s, &[]).unwrap().0,
            "PUT /p HTTP/1.1\r\nhost: example.test:8080\r\ncontent-length: 0\r\n\r\n"
        );
        let s = step(Method::HEAD, "/#frag", &[], None);
        assert_eq!(
            build(&s, &[]).unwrap().0,
            "HEAD / HTTP/1.1\r\nhost: example.test:8080\r\n\r\n"
        );
    }

    #[test]
    fn plan_host_replaces_the_target_and_framing_headers_are_ours() {
        let s = step(
            Method::POST,
            "/",
            &[
                ("host", "other"),
                ("content-length", "99"),
                ("transfer-encoding", "chunked"),
            ],
            Some("hi"),
        );
        assert_eq!(
            build(&s, &[]).unwrap().0,
            "POST / HTTP/1.1\r\nhost: other\r\ncontent-length: 2\r\n\r\nhi"
        );
    }

    #[test]
    fn dynamic_parts_are_rendered_per_request() {
        let s = step(
            Method::POST,
            "/users/{{record.id}}?n={{record.name}}&s={{seq}}",
            &[
                ("authorization", "Bearer {{vars.token}}"),
                ("x-static", "1"),
            ],
            Some("{\"name\":\"{{record.name}}\"}"),
        );
        assert!(Prepared::new(&s, &target()).whole.is_none());
        let (text, _) = build(&s, &["7", "ann"]).unwrap();
        assert_eq!(
            text,
            "POST /users/7?n=ann&s=42 HTTP/1.1\r\nhost: example.test:8080\r\nauthorization: Bearer t0k\r\nx-static: 1\r\ncontent-length: 14\r\n\r\n{\"name\":\"ann\"}"
        );
        // Again, with other values: the pooled buffer starts empty.
        let (text, _) = build(&s, &["12345", "bo"]).unwrap();
        assert!(
            text.starts_with("POST /users/12345?n=bo&s=42 HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("content-length: 13\r\n\r\n{\"name\":\"bo\"}"),
            "{text}"
        );
        // Only the body is templated.
        let s = step(Method::POST, "/", &[], Some("{{record.id}}"));
        assert_eq!(
            build(&s, &["x"]).unwrap().0,
            "POST / HTTP/1.1\r\nhost: example.test:8080\r\ncontent-length: 1\r\n\r\nx"
        );
        // Only the path, with a fragment that is not sent.
        let s = step(Method::GET, "/{{record.id}}", &[], None);
        assert_eq!(
            build(&s, &["a#b"]).unwrap().0,
            "GET /a HTTP/1.1\r\nhost: example.test:8080\r\n\r\n"
        );
    }

    #[test]
    fn unsendable_rendered_values_are_errors() {
        let s = step(Method::GET, "/", &[("x-h", "{{record.id}}")], None);
        for bad in ["a\r\nInjected: 1", "a\nb", "a\rb", "\0", "\x7f"] {
            let e = build(&s, &[bad]).unwrap_err();
            assert!(e.contains("x-h"), "{e}");
        }
        assert!(build(&s, &["tab\tand é"]).is_ok());
        let s = step(Method::GET, "/{{record.id}}", &[], None);
        for bad in ["a b", "a\r\nHost: x", "<", "`", "x?\"q\""] {
            let e = build(&s, &[bad]).unwrap_err();
            assert!(e.contains("path"), "{bad:?}: {e}");
        }
        for good in ["é", "{\"a\":1}", "x?`q`&{}", "a?b?c"] {
            assert!(build(&s, &[good]).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn paths_are_checked_as_http_uri_checks_them() {
        for p in [
            "/", "/a?b", "/a#b", "/a b", "/a<b", "/a>b", "/a`b", "/a\"b", "/a{b}", "/a?b`c",
            "/a?b\"c", "/a?b{c}", "/é", "/a?é", "/a\\b", "/a^b|c~", "/a\x7f", "/a?\t",
        ] {
            let ours = valid_path(p).map(str::to_string);
            let theirs = p
                .parse::<hyper::Uri>()
                .ok()
                .map(|u| u.path_and_query().unwrap().as_str().to_string());
            assert_eq!(ours, theirs, "{p:?}");
        }
    }

    fn response(headers: &[(&str, &str)], body: Option<&str>) -> Response {
        Response {
            status: 200,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: body.map(|b| bytes::Bytes::copy_from_slice(b.as_bytes())),
            received: 0,
            body_len: body.map_or(0, |b| b.len() as u64),
        }
    }

    #[test]
    fn location_query_finds_and_decodes_a_parameter() {
        let l = "https://app.test/cb?state=a%20b&code=x%2By+z&code=second#code=frag";
        assert_eq!(location_query(l, "code").as_deref(), Some("x+y z"));
        assert_eq!(location_query(l, "state").as_deref(), Some("a b"));
        assert_eq!(location_query(l, "nope"), None);
        assert_eq!(location_query("/cb", "code"), None);
        assert_eq!(
            location_query("/cb?flag&c=%zz%4", "flag").as_deref(),
            Some("")
        );
        assert_eq!(
            location_query("/cb?flag&c=%zz%4", "c").as_deref(),
            Some("%zz%4")
        );
        assert_eq!(location_query("/cb?c=%C3%A9", "c").as_deref(), Some("é"));
    }

    #[test]
    fn regex_and_location_captures_read_the_response() {
        let mut s = step(Method::GET, "/", &[], None);
        s.captures = vec![
            (
                0,
                CaptureFrom::Regex(
                    regex::bytes::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap(),
                ),
            ),
            (
                1,
                CaptureFrom::Regex(regex::bytes::Regex::new(r"id-\d+").unwrap()),
            ),
            (2, CaptureFrom::LocationQuery("code".into())),
        ];
        let w = want(&s);
        assert!(w.body && w.headers);
        let res = response(
            &[("Location", "/cb?code=abc")],
            Some(r#"<input name="csrf" value="t0k"> see id-42 and id-7"#),
        );
        let mut vars = vec![None; 3];
        assert!(capture(&s, &res, &mut vars));
        assert_eq!(
            vars,
            [Some("t0k".into()), Some("id-42".into()), Some("abc".into())]
        );
        // No match, or no Location: the capture fails.
        let res = response(&[], Some("nothing here"));
        assert!(!capture(&s, &res, &mut vec![None; 3]));
        s.captures.truncate(1);
        let res = response(&[], Some(r#"name="csrf" value="x""#));
        assert!(capture(&s, &res, &mut vec![None; 3]));
        s.captures = vec![(0, CaptureFrom::LocationQuery("code".into()))];
        assert!(!capture(&s, &res, &mut vec![None; 3]));
        let w = want(&s);
        assert!(!w.body && w.headers);
    }

    fn checks(b: &str) -> Vec<Check> {
        let plan: crate::plan::Plan = serde_yaml_ng::from_str(&format!(
            "target: {{baseUrl: 'http://127.0.0.1:1'}}\nload: {{users: 1, iterations: 1}}\nrequests: [{{name: a, path: /, expect: {{body: {b}}}}}]"
        ))
        .unwrap();
        let c = crate::compile::compile(
            &plan,
            crate::compile::Slot::SOLO,
            std::path::Path::new(""),
            "",
        )
        .unwrap();
        crate::compile::StepKind::requests(&c.scenarios[0].entries[0].steps)[0]
            .checks
            .clone()
    }

    /// The label of the first check `body` fails, if any.
    fn judge(spec: &str, body: &str) -> Option<String> {
        let mut s = step(Method::GET, "/", &[], None);
        s.checks = checks(spec);
        assert!(want(&s).body || spec.starts_with("{maxSize"), "{spec}");
        failed_check(&s, &response(&[], Some(body))).map(|c| c.label.to_string())
    }

    #[test]
    fn body_checks_judge_in_order_and_name_the_first_failure() {
        let all = r#"{contains: ok, regex: '^\{', json: [{pointer: /status, equals: ok}, {pointer: /n, equals: "42"}, {pointer: /id}, {pointer: /f, equals: "null"}], maxSize: 64}"#;
        assert_eq!(
            judge(all, r#"{"status":"ok","n":42,"id":"x","f":null}"#),
            None
        );
        assert_eq!(
            judge(all, r#"{"status":"no","n":42}"#).as_deref(),
            Some(r#"contains "ok""#)
        );
        assert_eq!(
            judge(all, r#" {"status":"ok"}"#).as_deref(),
            Some(r"regex ^\{")
        );
        assert_eq!(
            judge(all, r#"{"status":"okay","n":42,"id":1,"f":null}"#).as_deref(),
            Some(r#"json /status == "ok""#)
        );
        // The JSON string "42" equals "42" as the number 42 does.
        assert_eq!(
            judge(all, r#"{"status":"ok","n":"42","id":1,"f":null}"#),
            None
        );
        assert_eq!(
            judge(all, r#"{"status":"ok","n":43,"id":1,"f":null}"#).as_deref(),
            Some(r#"json /n == "42""#)
        );
        assert_eq!(
            judge(all, r#"{"status":"ok","n":42,"f":null}"#).as_deref(),
            Some("json /id present")
        );
        assert_eq!(
            judge(all, r#"{"status":"ok","n":42,"id":1,"f":0}"#).as_deref(),
            Some(r#"json /f == "null""#)
        );
        assert_eq!(
            judge(
                all,
                r#"{"status":"ok","n":42,"id":1,"f":null,"pad":"................................"}"#
            )
            .as_deref(),
            Some("maxSize 64B")
        );
        // Not JSON at all: the first JSON check fails.
        assert_eq!(
            judge("{json: [{pointer: /a}]}", "ok").as_deref(),
            Some("json /a present")
        );
        // maxSize alone counts the body without keeping it.
        let mut s = step(Method::GET, "/", &[], None);
        s.checks = checks("{maxSize: 10}");
        assert!(!want(&s).body);
        let mut res = response(&[], None);
        res.body_len = 11;
        assert_eq!(
            failed_check(&s, &res).map(|c| &*c.label),
            Some("maxSize 10B")
        );
        res.body_len = 10;
        assert!(failed_check(&s, &res).is_none());
    }

    #[test]
    fn form_bodies_are_framed_like_any_body() {
        let mut s = step(
            Method::POST,
            "/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            None,
        );
        s.body = Some(Template::form(vec![
            ("code".into(), tpl("{{ vars.token }}")),
            ("redirect uri".into(), tpl("https://app.test/cb")),
        ]));
        let (text, _) = build(&s, &[]).unwrap();
        let body = "code=t0k&redirect%20uri=https%3A%2F%2Fapp.test%2Fcb";
        assert_eq!(
            text,
            format!(
                "POST /token HTTP/1.1\r\nhost: example.test:8080\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        );
    }
}
