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
        "/", "/a?b", "/a#b", "/a b", "/a<b", "/a>b", "/a`b", "/a\"b", "/a{b}", "/a?b`c", "/a?b\"c",
        "/a?b{c}", "/é", "/a?é", "/a\\b", "/a^b|c~", "/a\x7f", "/a?\t",
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
            CaptureFrom::Regex(regex::bytes::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap()),
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
