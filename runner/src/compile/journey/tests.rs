//! Compiling a journey's pauses and repeat blocks, and body checks: each
//! rule, and each error naming its field.

use std::time::Duration;

use crate::{
    compile::{CheckTest, Compiled, StepKind, tests::compile_yaml},
    wait::Wait,
};

fn plan(steps: &str) -> String {
    format!(
        "target: {{baseUrl: 'http://127.0.0.1:1'}}\nload: {{users: 1, iterations: 1}}\nrequests:\n- name: j\n  steps: {steps}\n"
    )
}

fn ok(steps: &str) -> Compiled {
    compile_yaml(&plan(steps)).unwrap_or_else(|e| panic!("{steps}: {e}"))
}

/// The error for `steps`, which must name `field` and say `says`.
fn err(steps: &str, field: &str, says: &str) {
    let e = match compile_yaml(&plan(steps)) {
        Ok(_) => panic!("{steps}: compiled"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains(field) && e.contains(says), "{steps}: {e}");
}

#[test]
fn pauses_and_repeat_blocks_compile_with_journey_metrics() {
    let c = ok("[{name: a, path: /a}, {sleep: 100ms..200ms}, \
         {repeat: 2..4, interval: 10ms, steps: [{name: b, path: /b}, {sleep: 5ms}, {name: c, path: /c}]}, \
         {name: d, path: /d}]");
    assert_eq!(c.names, ["j/a", "j/b", "j/c", "j/d"]);
    let steps = &c.scenarios[0].entries[0].steps;
    assert_eq!(steps.len(), 4);
    let ms = Duration::from_millis;
    assert!(
        matches!(steps[1], StepKind::Sleep(Wait::Uniform(lo, hi)) if lo == ms(100) && hi == ms(200))
    );
    let StepKind::Repeat(r) = &steps[2] else {
        panic!("{:?}", steps[2])
    };
    assert_eq!((r.min, r.max, r.interval), (2, 4, Wait::Fixed(ms(10))));
    assert!(matches!(r.steps[1], StepKind::Sleep(Wait::Fixed(d)) if d == ms(5)));
    let metrics: Vec<usize> = StepKind::requests(steps).iter().map(|s| s.metric).collect();
    assert_eq!(metrics, [0, 1, 2, 3]);
    // A repeat block may be named; it has no metric of its own.
    let c = ok("[{name: burst, repeat: 3, steps: [{name: x, path: /}]}]");
    assert_eq!(c.names, ["j/x"]);
}

#[test]
fn captures_flow_through_a_repeat_block_in_order() {
    // A later step (in the block, and after it) sees an earlier capture.
    ok(
        "[{repeat: 2, steps: [{name: a, path: /, capture: {t: {header: x}}}, \
         {name: b, path: '/{{ vars.t }}'}]}, {name: c, path: '/{{ vars.t }}'}]",
    );
    // An earlier step in the block does not: its first round has none.
    err(
        "[{repeat: 2, steps: [{name: b, path: '/{{ vars.t }}'}, {name: a, path: /, capture: {t: {header: x}}}]}]",
        "requests[0].steps[0].steps[0].path",
        "no earlier step captures",
    );
}

#[test]
fn each_shape_refuses_what_is_not_its_own() {
    let p = "requests[0].steps[0]";
    err(
        "[{sleep: 1s, path: /}]",
        &format!("{p}.path"),
        "not for a pause",
    );
    err("[{sleep: 1s, name: x}]", &format!("{p}.name"), "no name");
    err(
        "[{sleep: 1s, expect: {status: [200]}}]",
        &format!("{p}.expect"),
        "not for a pause",
    );
    err(
        "[{sleep: 1s, repeat: 2}]",
        &format!("{p}.repeat"),
        "not for a pause",
    );
    err(
        "[{repeat: 2, steps: [{sleep: 1s, capture: {a: {header: b}}}]}]",
        &format!("{p}.steps[0].capture"),
        "not for a pause",
    );
    err(
        "[{repeat: 2, path: /, steps: [{name: a, path: /}]}]",
        &format!("{p}.path"),
        "not for a repeat block",
    );
    err("[{repeat: 2}]", &format!("{p}.steps"), "is empty");
    err(
        "[{repeat: 2, name: 'a b', steps: [{name: a, path: /}]}]",
        &format!("{p}.name"),
        "letters",
    );
    err(
        "[{name: a, path: /, interval: 1s}]",
        &format!("{p}.interval"),
        "only for a repeat block",
    );
    err(
        "[{name: a, path: /, steps: [{name: b, path: /}]}]",
        &format!("{p}.steps"),
        "only for a repeat block",
    );
    err("[{sleep: 2h}]", &format!("{p}.sleep"), "limit");
    err(
        "[{repeat: 2, interval: 2h, steps: [{name: a, path: /}]}]",
        &format!("{p}.interval"),
        "limit",
    );
    err(
        "[{repeat: 5000..10000, steps: [{name: a, path: /}, {sleep: 1ms}]}]",
        &format!("{p}.repeat"),
        "5000..10000 rounds of 2 steps is more than the limit of 10000",
    );
    ok("[{repeat: 5000..10000, steps: [{name: a, path: /}]}]");
    // Names stay unique within the journey, repeat blocks included.
    err(
        "[{name: a, path: /}, {repeat: 2, steps: [{name: a, path: /}]}]",
        "requests[0].steps[1].steps[0].name",
        "used twice",
    );
    // A journey of pauses alone sends nothing and has no metric.
    err(
        "[{sleep: 1s}, {repeat: 2, steps: [{sleep: 1s}]}]",
        "requests[0].steps",
        "no request",
    );
}

fn checks(body: &str) -> Vec<(String, CheckTest)> {
    let c = compile_yaml(&format!(
        "target: {{baseUrl: 'http://127.0.0.1:1'}}\nload: {{users: 1, iterations: 1}}\nrequests: [{{name: a, path: /, expect: {{body: {body}}}}}]"
    ))
    .unwrap_or_else(|e| panic!("{body}: {e}"));
    StepKind::requests(&c.scenarios[0].entries[0].steps)[0]
        .checks
        .iter()
        .map(|c| (c.label.to_string(), c.test.clone()))
        .collect()
}

fn check_err(body: &str, field: &str, says: &str) {
    let e = compile_yaml(&format!(
        "target: {{baseUrl: 'http://127.0.0.1:1'}}\nload: {{users: 1, iterations: 1}}\nrequests: [{{name: a, path: /, expect: {{body: {body}}}}}]"
    ))
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(e.contains(field) && e.contains(says), "{body}: {e}");
}

#[test]
fn body_checks_compile_in_order_with_their_labels() {
    let c = checks(
        r#"{maxSize: 64KiB, json: [{pointer: /status, equals: ok}, {pointer: /id}], regex: '^\{', contains: '"ok"'}"#,
    );
    let labels: Vec<&str> = c.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            r#"contains "\"ok\"""#,
            r"regex ^\{",
            r#"json /status == "ok""#,
            "json /id present",
            "maxSize 64KiB",
        ]
    );
    assert!(
        matches!(&c[0].1, CheckTest::Contains(re) if re.is_match(br#"{"a":"ok"}"#) && !re.is_match(b"ok"))
    );
    assert!(matches!(c[4].1, CheckTest::MaxSize(65536)));
    // Labels are bounded, whatever the plan's texts.
    let long = "x".repeat(500);
    let c = checks(&format!("{{contains: {long}}}"));
    assert_eq!(c[0].0.chars().count(), crate::limits::MAX_CHECK_LABEL);
    assert!(c[0].0.ends_with('…'));
}

#[test]
fn body_check_errors_name_the_field() {
    let b = "requests[0].expect.body";
    check_err("{regex: '(['}", &format!("{b}.regex"), "not a valid regex");
    check_err("{contains: ''}", &format!("{b}.contains"), "empty");
    check_err(
        "{json: [{pointer: status}]}",
        &format!("{b}.json[0].pointer"),
        "not a JSON pointer",
    );
    check_err("{}", b, "is empty");
    let many = vec!["{pointer: /a}"; crate::limits::MAX_JSON_CHECKS + 1].join(", ");
    check_err(
        &format!("{{json: [{many}]}}"),
        &format!("{b}.json"),
        "more than the limit",
    );
    // A HEAD response has no body to read (maxSize alone holds, and is allowed).
    let head = |body: &str| {
        compile_yaml(&format!(
            "target: {{baseUrl: 'http://127.0.0.1:1'}}\nload: {{users: 1, iterations: 1}}\nrequests: [{{name: a, method: HEAD, path: /, expect: {{body: {body}}}}}]"
        ))
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let e = head("{contains: ok}").unwrap_err();
    assert!(e.contains(b) && e.contains("HEAD"), "{e}");
    head("{maxSize: 1KiB}").unwrap();
    // In a journey step and a repeated step too.
    err(
        "[{repeat: 2, steps: [{name: a, path: /, expect: {body: {regex: '('}}}]}]",
        "requests[0].steps[0].steps[0].expect.body.regex",
        "not a valid regex",
    );
}
