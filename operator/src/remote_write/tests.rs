//! The pure parts: which receiver applies, the spec's rules (each error
//! naming its field), the labels, the endpoint made from resolved values
//! (never showing them), the cluster-wide default's flag and files, and the
//! counts a pusher's status continues from.

use std::time::Duration;

use barrage_runner::remote_write::{Delivery, HistogramMode, Labels, Pusher, tls::verifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::{
    cluster_default::ClusterDefault,
    endpoint::{Auth, TlsMaterial, Value, endpoint},
    pushers::{Pushers, base, shown},
    spec::{self, Choice, choose},
};
use crate::{
    crd::{LoadTestSpec, RemoteWrite, RemoteWriteStatus},
    error::Error,
    pods::tests::lt,
    validate::validate,
};

const PLAN: &str = "target: {baseUrl: 'http://10.0.0.1'}\nload: {users: 1, duration: 1s}\nrequests: [{name: a, path: /}]";

fn rw(yaml: &str) -> RemoteWrite {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn spec_with(output: &str) -> LoadTestSpec {
    serde_yaml_ng::from_str(&format!(
        "{PLAN}\noutput: {{prometheusRemoteWrite: {output}}}"
    ))
    .unwrap()
}

fn value(at: &str, bytes: &str) -> Value {
    Value {
        at: at.into(),
        bytes: bytes.as_bytes().to_vec(),
    }
}

#[test]
fn the_spec_wins_disabled_opts_out_and_the_default_fills_in() {
    let own = rw("{url: 'http://p:9090/api/v1/write'}");
    let off = rw("{disabled: true}");
    assert_eq!(choose(Some(&own), true), Choice::Spec(&own));
    assert_eq!(choose(Some(&off), true), Choice::None);
    assert_eq!(choose(None, true), Choice::ClusterDefault);
    assert_eq!(choose(None, false), Choice::None);
}

#[test]
fn a_good_receiver_passes_validation() {
    for output in [
        "{url: 'http://prometheus.monitoring:9090/api/v1/write'}",
        "{url: 'https://mimir.example/api/v1/push', headers: {X-Scope-OrgID: team-a}, basicAuth: {username: load, passwordFrom: {secret: rw, key: password}}, interval: 5s, histograms: quantiles}",
        "{url: 'https://10.0.0.9/api/v1/write', bearerTokenFrom: {secret: rw, key: token}, tls: {serverName: rw.internal, caFrom: {configMap: ca, key: ca.crt}, certFrom: {secret: c, key: tls.crt}, keyFrom: {secret: c, key: tls.key}}}",
        // disabled ignores the rest.
        "{disabled: true, url: 'ftp://x'}",
    ] {
        validate("t", &spec_with(output)).unwrap_or_else(|e| panic!("{output}: {e}"));
    }
}

#[test]
fn receiver_errors_name_the_field() {
    let f = |s: &str| format!("spec.output.prometheusRemoteWrite.{s}");
    let cases = [
        ("{url: ''}", f("url")),
        ("{url: 'ftp://p/write'}", f("url")),
        ("{url: 'not a url'}", f("url")),
        ("{url: 'http://user:pw@p/write'}", f("url")),
        (
            "{url: 'http://p', headers: {'Bad Name': x}}",
            f("headers.Bad Name"),
        ),
        (
            "{url: 'http://p', headers: {Authorization: 'Bearer x'}}",
            f("headers.Authorization"),
        ),
        (
            "{url: 'http://p', headers: {Content-Encoding: gzip}}",
            f("headers.Content-Encoding"),
        ),
        (
            "{url: 'http://p', headers: {X-A: \"a\\nb\"}}",
            f("headers.X-A"),
        ),
        (
            "{url: 'http://p', basicAuth: {username: 'a:b', passwordFrom: {secret: s, key: k}}}",
            f("basicAuth.username"),
        ),
        (
            "{url: 'http://p', basicAuth: {username: a, passwordFrom: {secret: S_1, key: k}}}",
            f("basicAuth.passwordFrom.secret"),
        ),
        (
            "{url: 'http://p', basicAuth: {username: a, passwordFrom: {secret: s, key: 'k/1'}}, }",
            f("basicAuth.passwordFrom.key"),
        ),
        (
            "{url: 'http://p', basicAuth: {username: a, passwordFrom: {secret: s, key: k}}, bearerTokenFrom: {secret: s, key: t}}",
            f("bearerTokenFrom"),
        ),
        ("{url: 'http://p', tls: {serverName: x}}", f("tls")),
        (
            "{url: 'https://p', tls: {certFrom: {secret: c, key: tls.crt}}}",
            f("tls.certFrom"),
        ),
        (
            "{url: 'https://p', tls: {keyFrom: {configMap: c, key: tls.key}, certFrom: {secret: c, key: tls.crt}}}",
            f("tls.keyFrom.configMap"),
        ),
        (
            "{url: 'https://p', tls: {caFrom: {key: ca.crt}}}",
            f("tls.caFrom"),
        ),
        (
            "{url: 'https://p', tls: {serverName: 'a b'}}",
            f("tls.serverName"),
        ),
        ("{url: 'http://p', interval: 100ms}", f("interval")),
    ];
    for (output, field) in cases {
        match validate("t", &spec_with(output)) {
            Err(Error::Invalid { field: got, .. }) => assert_eq!(got, field, "{output}"),
            other => panic!("{output}: expected an error on {field}, got {other:?}"),
        }
    }
}

#[test]
fn url_errors_never_repeat_the_url() {
    let e = spec::check_url("f", "http://user:s3cr3t@p/write").unwrap_err();
    assert!(!e.to_string().contains("s3cr3t"), "{e}");
}

#[test]
fn series_carry_namespace_and_loadtest_and_a_scheduled_runs_schedule() {
    let mut t = lt(PLAN);
    assert_eq!(
        spec::labels(&t),
        Labels(vec![
            ("namespace".into(), "ns1".into()),
            ("loadtest".into(), "smoke".into())
        ])
    );
    t.metadata.labels = Some(
        [(
            "barrage.dev/scheduledloadtest".to_string(),
            "nightly".to_string(),
        )]
        .into(),
    );
    t.metadata.annotations = Some(
        [(
            "barrage.dev/scheduled-at".to_string(),
            "2026-12-03T02:00:00Z".to_string(),
        )]
        .into(),
    );
    let l = spec::labels(&t).0;
    assert_eq!(l[2], ("scheduledloadtest".into(), "nightly".into()));
    assert_eq!(l[3], ("run".into(), "2026-12-03T02:00:00Z".into()));
    // Without the annotation the run is its LoadTest's name.
    t.metadata.annotations = None;
    assert_eq!(spec::labels(&t).0[3], ("run".into(), "smoke".into()));
}

#[test]
fn options_default_to_10s_and_auto() {
    let o = spec::options(None, None);
    assert_eq!(o.interval, Duration::from_secs(10));
    assert_eq!(o.histograms, HistogramMode::Auto);
    let r = rw("{url: 'http://p', interval: 3s, histograms: native}");
    let o = spec::options(r.interval, r.histograms);
    assert_eq!(
        (o.interval, o.histograms),
        (Duration::from_secs(3), HistogramMode::Native)
    );
}

#[test]
fn credentials_become_the_authorization_header() {
    let headers = [("X-Scope-OrgID".to_string(), "a".to_string())].into();
    let e = endpoint(
        "http://p/w",
        &headers,
        Auth::Bearer(value("tok", "  abc.def\n")),
        None,
    )
    .unwrap();
    assert_eq!(
        e.headers,
        vec![
            ("X-Scope-OrgID".into(), "a".into()),
            ("Authorization".into(), "Bearer abc.def".into())
        ]
    );
    assert!(e.tls.is_none());
    let e = endpoint(
        "http://p/w",
        &Default::default(),
        Auth::Basic {
            username: "load".into(),
            password: value("pw", "open sesame\n"),
        },
        None,
    )
    .unwrap();
    // base64("load:open sesame")
    assert_eq!(
        e.headers,
        vec![(
            "Authorization".into(),
            "Basic bG9hZDpvcGVuIHNlc2FtZQ==".into()
        )]
    );
}

#[test]
fn a_bad_credential_is_refused_naming_where_it_came_from_never_its_value() {
    let at = "spec.output.prometheusRemoteWrite.bearerTokenFrom: secret \"rw\" key \"token\"";
    let e = refused(endpoint(
        "http://p",
        &Default::default(),
        Auth::Bearer(value(at, "s3cr3t\u{7}tok")),
        None,
    ));
    assert!(e.starts_with(at), "{e}");
    assert!(!e.contains("s3cr3t"), "{e}");
    let e = refused(endpoint(
        "http://p",
        &Default::default(),
        Auth::Bearer(value(at, " \n")),
        None,
    ));
    assert_eq!(e, format!("{at} is empty"));
}

/// The message of an endpoint that could not be made (an `Endpoint` has
/// no `Debug`: it holds credentials).
fn refused(r: Result<barrage_runner::remote_write::Endpoint, String>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

/// A CA, and a certificate it signed for `names` with its key (PEM).
fn signed(names: &[&str]) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn der(pem: &str) -> CertificateDer<'static> {
    barrage_runner::tls::certs_from_pem(pem.as_bytes())
        .unwrap()
        .remove(0)
}

#[test]
fn the_receivers_certificate_is_checked_against_the_ca_and_the_server_name() {
    let (ca, cert, _) = signed(&["rw.internal"]);
    let ca = value("ca", &ca);
    let ip = ServerName::try_from("10.0.0.9").unwrap();
    let now = UnixTime::now();
    // Connected by IP, checked for the name its certificate carries.
    let named = verifier(Some(ca.pem()), Some("rw.internal")).unwrap();
    assert!(
        named
            .verify_server_cert(&der(&cert), &[], &ip, &[], now)
            .is_ok()
    );
    let wrong = verifier(Some(ca.pem()), Some("other.internal")).unwrap();
    assert!(
        wrong
            .verify_server_cert(&der(&cert), &[], &ip, &[], now)
            .is_err()
    );
    // Without serverName the connection's own name is checked.
    let plain = verifier(Some(ca.pem()), None).unwrap();
    assert!(
        plain
            .verify_server_cert(&der(&cert), &[], &ip, &[], now)
            .is_err()
    );
    // Another CA's certificate is refused.
    let (_, stranger, _) = signed(&["rw.internal"]);
    assert!(
        named
            .verify_server_cert(&der(&stranger), &[], &ip, &[], now)
            .is_err()
    );
}

#[test]
fn a_client_certificate_needs_its_own_key() {
    let (ca, cert, key) = signed(&["client"]);
    let (_, _, other) = signed(&["client"]);
    let tls = |k: &str| TlsMaterial {
        ca: Some(value("ca-at", &ca)),
        cert: Some(value("cert-at", &cert)),
        key: Some(value("key-at", k)),
        server_name: None,
    };
    let e = endpoint(
        "https://p",
        &Default::default(),
        Auth::None,
        Some(tls(&key)),
    )
    .unwrap();
    assert!(
        e.tls
            .is_some_and(|c| c.client_auth_cert_resolver.has_certs())
    );
    let e = endpoint(
        "https://p",
        &Default::default(),
        Auth::None,
        Some(tls(&other)),
    );
    let e = refused(e);
    assert!(
        e.starts_with("key-at is not the private key of the certificate of cert-at"),
        "{e}"
    );
    let e = endpoint(
        "https://p",
        &Default::default(),
        Auth::None,
        Some(tls("nope")),
    );
    let e = refused(e);
    assert!(e.starts_with("key-at "), "{e}");
}

#[test]
fn the_cluster_default_is_parsed_checked_and_its_files_read() {
    assert_eq!(ClusterDefault::parse("  ").unwrap(), None);
    let dir = std::env::temp_dir().join(format!("barrage-rw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "t0k3n\n").unwrap();
    let json = format!(
        r#"{{"url": "http://prometheus.monitoring:9090/api/v1/write", "headers": {{"X-Team": "sre"}}, "bearerTokenFile": {:?}, "interval": "15s", "histograms": "quantiles"}}"#,
        token.display().to_string()
    );
    let d = ClusterDefault::parse(&json).unwrap().unwrap();
    let o = d.options();
    assert_eq!(
        (o.interval, o.histograms),
        (Duration::from_secs(15), HistogramMode::Quantiles)
    );
    let e = d.endpoint().unwrap();
    assert!(
        e.headers
            .contains(&("Authorization".into(), "Bearer t0k3n".into()))
    );
    // A rotated token is read at the next start.
    std::fs::write(&token, "n3w\n").unwrap();
    let e = d.endpoint().unwrap();
    assert!(
        e.headers
            .contains(&("Authorization".into(), "Bearer n3w".into()))
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let field = |json: &str| match ClusterDefault::parse(json) {
        Err(Error::Invalid { field, message }) => (field, message),
        other => panic!("{json}: {other:?}"),
    };
    assert_eq!(field(r#"{"url": "ftp://p"}"#).0, "--remote-write url");
    let (f, m) = field(r#"{"url": "http://p", "bearerToken": "x"}"#);
    assert_eq!(f, "--remote-write bearerToken");
    assert!(m.contains("unknown field"), "{m}");
    assert_eq!(
        field(r#"{"url": "http://p", "interval": "10 parsecs"}"#).0,
        "--remote-write interval"
    );
    assert_eq!(
        field(r#"{"url": "http://p", "tls": {"caFile": "/x"}}"#).0,
        "--remote-write tls"
    );
    let (f, m) = field(r#"{"url": "http://p", "bearerTokenFile": "/nonexistent/token"}"#);
    assert_eq!(f, "--remote-write");
    assert!(m.contains("bearerTokenFile /nonexistent/token"), "{m}");
}

#[test]
fn counts_continue_from_the_status_for_the_same_receiver() {
    let before = RemoteWriteStatus {
        url: "http://p/w".into(),
        pushes: 3,
        samples: 300,
        undelivered: 2,
        last_error: Some("503".into()),
    };
    let b = base(Some(&before), "http://p/w".into());
    let d = Delivery {
        pushes: 2,
        samples: 150,
        undelivered: 0,
        last_error: None,
    };
    assert_eq!(
        shown(&b, &d),
        RemoteWriteStatus {
            pushes: 5,
            samples: 450,
            undelivered: 2,
            ..before.clone()
        }
    );
    // Another receiver starts from nothing.
    assert_eq!(base(Some(&before), "http://q/w".into()).pushes, 0);
    let long = Delivery {
        last_error: Some("x".repeat(5000)),
        ..Default::default()
    };
    assert!(shown(&b, &long).last_error.unwrap().len() <= super::pushers::MAX_ERROR + 3);
}

#[tokio::test]
async fn a_finished_pusher_keeps_its_status_and_pushes_no_more() {
    let pushers = Pushers::default();
    let merged = barrage_runner::snapshot::Snapshot::empty(1_000_000);
    assert!(pushers.offer("u", &merged, 0, 1).is_none());
    let ep = endpoint(
        "http://127.0.0.1:9/w",
        &Default::default(),
        Auth::None,
        None,
    )
    .unwrap();
    let b = base(None, ep.redacted_url());
    pushers.start(
        "u",
        Pusher::start(ep, Labels::default(), spec::options(None, None)),
        b,
    );
    assert_eq!(
        pushers.offer("u", &merged, 0, 1).unwrap().url,
        "http://127.0.0.1:9/w"
    );
    let first = pushers
        .finish("u", &merged, 0, Duration::from_millis(50))
        .await;
    let again = pushers
        .finish("u", &merged, 0, Duration::from_millis(50))
        .await;
    assert_eq!(first, again);
    assert!(pushers.holds("u"));
    pushers.forget("u");
    assert!(!pushers.holds("u"));
}
