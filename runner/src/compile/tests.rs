//! Compiling plans: iteration shares, body limits, base URLs, captures
//! and forms.

use super::*;
use super::{
    load::iteration_share,
    steps::FORM_CONTENT_TYPE,
    target::{port_of, redact_userinfo},
};
use crate::limits;

/// The first request of entry `i` of the (unnamed) scenario's mix.
pub(super) fn first(c: &Compiled, i: usize) -> &Step {
    StepKind::requests(&c.scenarios[0].entries[i].steps)[0]
}

fn shares(total: u64, users: u64, count: u32) -> Vec<u64> {
    (0..count)
        .map(|index| iteration_share(total, true, users, Slot { index, count }))
        .collect()
}

#[test]
fn iterations_follow_the_users_so_none_are_stranded() {
    assert_eq!(shares(300, 2, 3), [150, 150, 0]);
    assert_eq!(shares(7, 1, 3), [7, 0, 0]);
    assert_eq!(shares(1001, 7, 3), [429, 286, 286]);
    for (total, users, count) in [(1001, 7, 3), (5, 3, 4), (99, 10, 7)] {
        assert_eq!(shares(total, users, count).iter().sum::<u64>(), total);
    }
}

pub(super) fn compile_yaml(yaml: &str) -> Result<Compiled> {
    let plan: Plan = serde_yaml_ng::from_str(yaml).unwrap();
    compile_with_env(&plan, Slot::SOLO, Path::new("."), "", &|_| None)
}

fn err(yaml: &str) -> String {
    compile_yaml(yaml).unwrap_err().to_string()
}

const HEAD: &str = "target: {baseUrl: 'http://127.0.0.1:1'}\nload: {users: 1, iterations: 1}\n";

#[test]
fn max_body_is_a_size_per_request_or_step() {
    let c = compile_yaml(&format!(
        "{HEAD}requests: [{{name: a, path: /}}, {{name: b, path: /, maxBody: 4MiB}}, {{name: j, steps: [{{name: s, path: /, maxBody: '512'}}]}}]"
    ))
    .unwrap();
    let max = |i: usize| first(&c, i).max_body;
    assert_eq!(
        [max(0), max(1), max(2)],
        [crate::engine::DEFAULT_MAX_BODY, 4 << 20, 512]
    );
    let e = err(&format!(
        "{HEAD}requests: [{{name: j, steps: [{{name: s, path: /, maxBody: 0KiB}}]}}]"
    ));
    assert!(
        e.contains("requests[0].steps[0].maxBody") && e.contains("more than 0"),
        "{e}"
    );
    let e = err(&format!(
        "{HEAD}requests: [{{name: j, maxBody: 1MiB, steps: [{{name: s, path: /}}]}}]"
    ));
    assert!(e.contains("requests[0]") && e.contains("maxBody"), "{e}");
    let e = err(&format!(
        "{HEAD}requests: [{{name: a, path: /, maxBody: 257MiB}}]"
    ));
    assert!(
        e.contains("requests[0].maxBody") && e.contains("limit of 256 MiB"),
        "{e}"
    );
    let plan: Result<Plan, _> = serde_yaml_ng::from_str(&format!(
        "{HEAD}requests: [{{name: a, path: /, maxBody: 4MB/s}}]"
    ));
    assert!(plan.unwrap_err().to_string().contains("unknown unit"));
}

#[test]
fn base_url_ports_are_checked_and_credentials_never_shown() {
    assert_eq!(port_of("h", 80), Ok(80));
    assert_eq!(port_of("h:8080", 80), Ok(8080));
    assert_eq!(port_of("[::1]:9", 80), Ok(9));
    assert_eq!(port_of("[::1]", 443), Ok(443));
    for bad in ["h:", "h:0", "h:65536", "h:99999", "[::1]:x"] {
        assert!(port_of(bad, 80).is_err(), "{bad}");
    }
    assert_eq!(redact_userinfo("http://u:pw@h/p"), "http://***@h/p");
    assert_eq!(redact_userinfo("u:pw@h"), "***@h");
    for url in [
        "http://u:pw@h",
        "http://u:p/pw@h",
        "http://u:p?pw@h:8080/x",
        "http://u:p#pw@h",
        "http://u:pw@h:99999",
        "http://u:pw@ho st/",
        "ftp://u:pw@h",
    ] {
        let e = compile_target(url)
            .err()
            .unwrap_or_else(|| panic!("{url} accepted"));
        assert!(!e.contains("pw"), "{e}");
    }
}

#[test]
fn captures_take_exactly_one_source() {
    let ok = compile_yaml(&format!(
        "{HEAD}requests: [{{name: a, path: /, capture: {{c: {{locationQuery: code}}, t: {{regex: 'id=(\\d+)'}}}}}}]"
    ))
    .unwrap();
    let step = first(&ok, 0);
    assert_eq!(
        step.captures[0].1,
        CaptureFrom::LocationQuery("code".into())
    );
    assert!(matches!(&step.captures[1].1, CaptureFrom::Regex(r) if r.as_str() == "id=(\\d+)"));
    assert!(step.needs_body() && step.needs_headers() && !step.follow_redirects);
    let e = err(&format!(
        "{HEAD}requests: [{{name: j, steps: [{{name: s, path: /, capture: {{c: {{json: /a, regex: x}}}}}}]}}]"
    ));
    assert!(
        e.contains("requests[0].steps[0].capture.c") && e.contains("exactly one"),
        "{e}"
    );
    let e = err(&format!(
        "{HEAD}requests: [{{name: a, path: /, capture: {{c: {{}}}}}}]"
    ));
    assert!(
        e.contains("requests[0].capture.c") && e.contains("exactly one"),
        "{e}"
    );
    let e = err(&format!(
        "{HEAD}requests: [{{name: a, path: /, capture: {{c: {{regex: '(a'}}}}}}]"
    ));
    assert!(e.contains("requests[0].capture.c.regex"), "{e}");
    let e = err(&format!(
        "{HEAD}requests: [{{name: a, path: /, capture: {{c: {{locationQuery: ''}}}}}}]"
    ));
    assert!(e.contains("requests[0].capture.c.locationQuery"), "{e}");
}

#[test]
fn forms_set_their_content_type_and_exclude_a_body() {
    let c = compile_yaml(
        "target: {baseUrl: 'http://127.0.0.1:1', headers: {content-type: application/json}}\nload: {users: 1, iterations: 1}\nrequests:\n- {name: a, method: POST, path: /, form: {k: 'v {{seq}}'}, followRedirects: true}\n- {name: b, method: POST, path: /, form: {k: v}, headers: {Content-Type: text/x-mine}}",
    )
    .unwrap();
    let a = first(&c, 0);
    assert!(a.follow_redirects);
    let ct: Vec<_> = a
        .headers
        .iter()
        .filter(|(n, _)| n == hyper::header::CONTENT_TYPE)
        .map(|(_, t)| t.as_static().unwrap())
        .collect();
    assert_eq!(ct, [FORM_CONTENT_TYPE]);
    let b = first(&c, 1);
    assert_eq!(b.body.as_ref().unwrap().as_static(), Some("k=v"));
    let ct: Vec<_> = b
        .headers
        .iter()
        .filter(|(n, _)| n == hyper::header::CONTENT_TYPE)
        .map(|(_, t)| t.as_static().unwrap())
        .collect();
    assert_eq!(ct, ["text/x-mine"]);

    let e = err(&format!(
        "{HEAD}requests: [{{name: j, steps: [{{name: s, method: POST, path: /, body: x, form: {{k: v}}}}]}}]"
    ));
    assert!(
        e.contains("requests[0].steps[0].form") && e.contains("not both"),
        "{e}"
    );
    let e = err(&format!(
        "{HEAD}requests: [{{name: a, path: /, form: {{k: '{{{{ nope }}}}'}}}}]"
    ));
    assert!(e.contains("requests[0].form.k"), "{e}");
    let e = err(&format!(
        "{HEAD}requests: [{{name: j, followRedirects: true, steps: [{{name: s, path: /}}]}}]"
    ));
    assert!(e.contains("has both `steps`"), "{e}");
}

#[test]
fn https_targets_default_to_port_443_and_carry_one_tls_config() {
    let c = compile_yaml(
        "target: {baseUrl: 'https://example.test/api'}\nload: {users: 1, iterations: 1}\nrequests: [{name: a, path: /x}]",
    )
    .unwrap();
    assert_eq!(c.target.authority, "example.test:443");
    assert!(c.target.https);
    let tls = c.target.tls.as_ref().unwrap();
    assert_eq!(
        tls.server_name,
        rustls::pki_types::ServerName::try_from("example.test").unwrap()
    );
    assert_eq!(tls.config.alpn_protocols, [b"http/1.1".to_vec()]);
    assert!(c.warnings().is_empty());
    // An IP host is verified as an IP address (and sent no SNI).
    let c = compile_yaml(
        "target: {baseUrl: 'https://[::1]:8443', http: auto}\nload: {users: 1, iterations: 1}\nrequests: [{name: a, path: /}]",
    )
    .unwrap();
    let tls = c.target.tls.as_ref().unwrap();
    assert!(matches!(
        tls.server_name,
        rustls::pki_types::ServerName::IpAddress(_)
    ));
    assert_eq!(
        tls.config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    let c = compile_yaml(
        "target: {baseUrl: 'https://h', tls: {insecureSkipVerify: true}}\nload: {users: 1, iterations: 1}\nrequests: [{name: a, path: /}]",
    )
    .unwrap();
    assert_eq!(c.warnings(), [crate::tls::client::INSECURE_WARNING]);
}

#[test]
fn target_tls_fields_are_checked_by_name() {
    let https = |tls: &str| {
        err(&format!(
            "target: {{baseUrl: 'https://h', tls: {tls}}}\nload: {{users: 1, iterations: 1}}\nrequests: [{{name: a, path: /}}]"
        ))
    };
    for (tls, field, what) in [
        ("{minVersion: '1.0'}", "target.tls.minVersion", "\"1.0\""),
        ("{certFile: c.pem}", "target.tls.keyFile", "is missing"),
        ("{keyFile: k.pem}", "target.tls.certFile", "is missing"),
        ("{caMode: replace}", "target.tls.caMode", "needs caFile"),
        (
            "{serverName: 'a b'}",
            "target.tls.serverName",
            "not a DNS name",
        ),
        (
            "{keyFrom: {secret: s, key: k}, certFile: c}",
            "target.tls.keyFrom",
            "read by the operator",
        ),
        (
            "{caFile: /nonexistent/ca.pem}",
            "target.tls.caFile",
            "/nonexistent/ca.pem",
        ),
    ] {
        let e = https(tls);
        assert!(e.contains(field) && e.contains(what), "{tls}: {e}");
    }
    let e = err(
        "target: {baseUrl: 'http://h', tls: {}}\nload: {users: 1, iterations: 1}\nrequests: [{name: a, path: /}]",
    );
    assert!(e.contains("target.tls") && e.contains("https://"), "{e}");
}

#[test]
fn http2_connections_default_to_one_per_hundred_and_are_bounded() {
    let conns = |target: &str, load: &str, slot: Slot| {
        let plan: Plan = serde_yaml_ng::from_str(&format!(
            "target: {{baseUrl: 'http://127.0.0.1:1'{target}}}\nload: {load}\nrequests: [{{name: a, path: /}}]"
        ))
        .unwrap();
        compile_with_env(&plan, slot, Path::new("."), "", &|_| None)
            .map(|c| (c.http.version, c.http.connections))
            .map_err(|e| e.to_string())
    };
    let solo = Slot::SOLO;
    let h2 = ", http: 2";
    // Users: the peak of the profile, this runner's share of it.
    assert_eq!(
        conns(h2, "{users: 1, duration: 1s}", solo),
        Ok((HttpVersion::Http2, 1))
    );
    assert_eq!(conns(h2, "{users: 100, duration: 1s}", solo).unwrap().1, 1);
    assert_eq!(conns(h2, "{users: 101, duration: 1s}", solo).unwrap().1, 2);
    let ramp = "{stages: [{duration: 1s, target: 450}, {duration: 1s, target: 10}]}";
    assert_eq!(conns(h2, ramp, solo).unwrap().1, 5);
    let half = Slot { index: 0, count: 2 };
    assert_eq!(conns(h2, "{users: 400, duration: 1s}", half).unwrap().1, 2);
    // Arrival rate: this runner's share of maxInFlight.
    let open = "{executor: arrival-rate, rate: 10, duration: 1s, maxInFlight: 250}";
    assert_eq!(conns(h2, open, solo).unwrap().1, 3);
    // Given, and "auto" takes it too.
    assert_eq!(
        conns(
            ", http: auto, connections: 7",
            "{users: 1, duration: 1s}",
            solo
        ),
        Ok((HttpVersion::Auto, 7))
    );
    assert_eq!(
        conns("", "{users: 1, duration: 1s}", solo),
        Ok((HttpVersion::Http1, 1))
    );
    for (target, what) in [
        (", http: 2, connections: 0", "must be at least 1"),
        (
            ", http: 2, connections: 10001",
            "more than the limit of 10000",
        ),
        (", connections: 4", "only applies to HTTP/2"),
    ] {
        let e = conns(target, "{users: 1, duration: 1s}", solo).unwrap_err();
        assert!(e.contains("target.connections") && e.contains(what), "{e}");
    }
    let plan: Result<Plan, _> = serde_yaml_ng::from_str(
        "target: {baseUrl: 'http://127.0.0.1:1', http: 3}\nload: {users: 1}\nrequests: [{name: a, path: /}]",
    );
    let e = plan.unwrap_err().to_string();
    assert!(
        e.contains("target.http") || e.contains("unknown HTTP version"),
        "{e}"
    );
}

#[test]
fn thresholds_for_scenarios_and_journeys_must_name_the_plan_s() {
    let plan = |th: &str| {
        format!(
            "{HEAD}requests: [{{name: a, path: /}}, {{name: j, steps: [{{name: s, path: /}}]}}]\nthresholds: ['{th}']\n"
        )
    };
    let ok = compile_yaml(&plan("p(99) < 2s for journey j")).unwrap();
    assert_eq!(
        ok.thresholds[0].scope,
        Some(crate::thresholds::Scope::Journey("j".into()))
    );
    let e = err(&plan("p(99) < 2s for journey nope"));
    assert!(
        e.contains("thresholds[0]") && e.contains("no journey is named \"nope\" (names: j)"),
        "{e}"
    );
    let e = err(&plan("p(95) < 1s for scenario browse"));
    assert!(
        e.contains("thresholds[0]") && e.contains("the plan has no scenarios"),
        "{e}"
    );
    // A request name is not a journey's, nor the other way round.
    let e = err(&plan("p(99) < 2s for journey a"));
    assert!(e.contains("no journey is named \"a\""), "{e}");
    assert!(compile_yaml(&plan("p(99) < 2s for j/s")).is_ok());
}

#[test]
fn the_default_interval_follows_the_test_s_length() {
    let s = Duration::from_secs;
    for (length, want) in [
        (None, s(10)),
        (Some(Duration::from_millis(500)), s(1)),
        (Some(s(10)), s(1)),
        (Some(s(300)), s(1)),
        (Some(s(301)), s(2)),
        (Some(s(600)), s(2)),
        (Some(s(1500)), s(5)),
        (Some(s(1501)), s(10)),
        (Some(s(3600)), s(10)),
        (Some(s(8 * 3600)), s(10)),
        (Some(s(200_000)), s(10)),
        (Some(s(200_001)), s(20)),
        (Some(s(100 * 3600)), s(20)),
        (Some(limits::MAX_LENGTH), s(60)),
    ] {
        assert_eq!(default_interval(length), want, "{length:?}");
    }
    // Over every length a plan may have: enough points for a curve, within
    // the limit on intervals, and never wider than the old fixed 10s (nor
    // one that does not divide it) where 10s was within the limit.
    let mut secs = 1u64;
    while secs <= limits::MAX_LENGTH.as_secs() {
        let w = default_interval(Some(s(secs)));
        let n = secs.div_ceil(w.as_secs());
        assert!(n <= limits::MAX_INTERVALS, "{secs}s: {n} intervals");
        assert!(n >= secs.min(10), "{secs}s: only {n} intervals");
        if secs <= 10 * limits::MAX_INTERVALS {
            assert_eq!(10 % w.as_secs(), 0, "{secs}s: {w:?}");
        }
        secs = secs * 11 / 10 + 1;
    }
}

#[test]
fn runners_and_operator_read_one_interval_from_the_plan() {
    let t = "target: {baseUrl: 'http://127.0.0.1:1'}\nrequests: [{name: a, path: /}]\n";
    let s = Duration::from_secs;
    for (load, want) in [
        // The README's in-cluster example: 10 s at 100 req/s.
        (
            "load: {executor: arrival-rate, rate: 100, duration: 10s}",
            s(1),
        ),
        ("load: {users: 5, duration: 8h}", s(10)),
        // Stages add up: 1h.
        (
            "load: {stages: [{duration: 10m, target: 5}, {duration: 50m, target: 5}]}",
            s(10),
        ),
        // Too long for 10s intervals: before, an error unless set by hand.
        ("load: {users: 5, duration: 100h}", s(20)),
        // An open model's iterations take iterations / rate: 60,000 s.
        (
            "load: {executor: arrival-rate, rate: 10, iterations: 600000}",
            s(10),
        ),
        // A closed model's iterations: unknown length.
        ("load: {users: 1, iterations: 5}", s(10)),
        (
            "reportInterval: 250ms\nload: {users: 5, duration: 1h}",
            Duration::from_millis(250),
        ),
    ] {
        let yaml = format!("{t}{load}\n");
        let plan: Plan = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(report_interval(&plan), want, "{load}");
        assert_eq!(compile_yaml(&yaml).unwrap().interval, want, "{load}");
    }
    // Scenarios: by the latest end (start time plus length).
    let two = |a: &str| -> Plan {
        serde_yaml_ng::from_str(&format!(
            "target: {{baseUrl: 'http://127.0.0.1:1'}}\n\
             scenarios:\n\
             \x20 a: {{load: {a}, requests: [{{name: a, path: /}}]}}\n\
             \x20 b: {{startTime: 4m, load: {{users: 1, duration: 2m}}, requests: [{{name: b, path: /}}]}}\n"
        ))
        .unwrap()
    };
    let plan = two("{users: 1, duration: 1m}");
    assert_eq!(planned_length(&plan), Some(s(360)));
    assert_eq!(report_interval(&plan), s(2));
    // One that ends by its iterations alone makes the length unknown: the
    // 10s default, so it may still run 55h rather than 5h 33m at 2s.
    let plan = two("{users: 1, iterations: 3}");
    assert_eq!(planned_length(&plan), None);
    assert_eq!(report_interval(&plan), s(10));
}

#[test]
fn windows_written_for_the_old_default_still_fit() {
    for load in [
        "load: {users: 1, duration: 10s}",
        "load: {users: 1, duration: 20m}",
        "load: {users: 1, duration: 8h}",
    ] {
        let yaml = format!(
            "target: {{baseUrl: 'http://127.0.0.1:1'}}\nrequests: [{{name: a, path: /}}]\n{load}\n\
             thresholds: ['error_rate[each 10s] < 1%', 'p(95)[first 10s] < 1s', 'p(95)[last 10s] < 2 * p(95)[first 10s]']\n"
        );
        let c = compile_yaml(&yaml).unwrap_or_else(|e| panic!("{load}: {e}"));
        assert_eq!(c.thresholds.len(), 3);
    }
}
