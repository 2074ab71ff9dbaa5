use super::{
    series::{self, Names},
    *,
};
use crate::{
    histogram,
    snapshot::{ErrorKind, RequestStats},
};

fn stats(
    latencies_us: &[u64],
    statuses: &[(u16, u64)],
    errors: &[(ErrorKind, u64)],
) -> RequestStats {
    let mut r = RequestStats::default();
    for us in latencies_us {
        histogram::record(&mut r.latency, *us);
    }
    r.statuses = statuses.iter().copied().collect();
    r.errors = errors.iter().copied().collect();
    r
}

fn labels_of(ts: &proto::TimeSeries) -> Vec<(&str, &str)> {
    ts.labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

fn value(b: &series::Built, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    b.common
        .iter()
        .chain(&b.quantiles)
        .find(|ts| {
            let l = labels_of(ts);
            l.contains(&("__name__", name)) && want.iter().all(|w| l.contains(w))
        })
        .map(|ts| ts.samples.last().unwrap().value)
}

#[test]
fn series_add_up_to_the_snapshot_with_sorted_labels() {
    let mut s = Snapshot::empty(1_000_000);
    // 3 answered 200, 1 answered 503, 2 without an answer.
    s.requests.insert(
        "home".into(),
        stats(
            &[1000, 2000, 3000, 4000, 5000, 6000],
            &[(200, 3), (503, 1)],
            &[(ErrorKind::Status, 1), (ErrorKind::Connect, 2)],
        ),
    );
    s.dropped = 7;
    let labels = Labels(vec![
        ("namespace".into(), "ns".into()),
        ("loadtest".into(), "t".into()),
        ("run".into(), String::new()),
    ]);
    let b = series::build(&s, 42, 3, &labels, &mut Names::default());
    for ts in b.common.iter().chain(&b.native).chain(&b.quantiles) {
        assert_eq!(ts.labels[0].name, "__name__");
        assert!(
            ts.labels.windows(2).all(|w| w[0].name < w[1].name),
            "{:?}",
            ts.labels
        );
        assert!(labels_of(ts).contains(&("loadtest", "t")));
        // An empty caller label is left out.
        assert!(!ts.labels.iter().any(|l| l.name == "run"));
    }
    let req = |class| {
        value(
            &b,
            series::REQUESTS,
            &[("request", "home"), ("status_class", class)],
        )
    };
    assert_eq!(
        (req("2xx"), req("5xx"), req("none")),
        (Some(3.0), Some(1.0), Some(2.0))
    );
    assert_eq!(req("4xx"), None);
    assert_eq!(value(&b, series::ERRORS, &[("kind", "connect")]), Some(2.0));
    assert_eq!(value(&b, series::ERRORS, &[("kind", "status")]), Some(1.0));
    assert_eq!(value(&b, series::DROPPED, &[]), Some(7.0));
    assert_eq!(value(&b, series::RUNNERS, &[]), Some(3.0));
    let h = &b.native[0].histograms[0];
    assert_eq!((h.count_int, h.timestamp), (6, 42));
    let p95 = s.requests["home"].latency.value_at_quantile(0.95) as f64 / 1e6;
    assert_eq!(
        value(&b, series::DURATION, &[("quantile", "0.95")]),
        Some(p95)
    );
    assert_eq!(
        value(&b, &format!("{}_count", series::DURATION), &[]),
        Some(6.0)
    );
}

#[test]
fn names_beyond_the_bound_go_to_other_and_never_move() {
    let mut s = Snapshot::empty(1_000_000);
    let mut names = Names::default();
    for i in 0..series::MAX_REQUESTS + 5 {
        s.requests.insert(
            format!("r{i:03}"),
            stats(&[1000; 2][..1 + i % 2], &[(200, 1 + (i % 2) as u64)], &[]),
        );
    }
    let labels = Labels::default();
    let b = series::build(&s, 1, 1, &labels, &mut names);
    let requests: Vec<_> = b
        .native
        .iter()
        .map(|ts| labels_of(ts)[1].1.to_string())
        .collect();
    assert_eq!(requests.len(), series::MAX_REQUESTS + 1);
    assert!(requests.contains(&series::OTHER.to_string()));
    let total = |b: &series::Built| -> f64 {
        b.common
            .iter()
            .filter(|ts| labels_of(ts).contains(&("__name__", series::REQUESTS)))
            .map(|ts| ts.samples[0].value)
            .sum()
    };
    assert_eq!(total(&b) as u64, s.total_requests());
    // The busiest (two requests each) got their own series first.
    assert!(requests.contains(&"r001".to_string()));
    let other_before = value(&b, series::REQUESTS, &[("request", series::OTHER)]).unwrap();
    // A new name later goes to other too; no name moves out of it.
    s.requests
        .insert("zz".into(), stats(&[5], &[(200, 1)], &[]));
    let b2 = series::build(&s, 2, 1, &labels, &mut names);
    assert_eq!(
        value(&b2, series::REQUESTS, &[("request", series::OTHER)]),
        Some(other_before + 1.0)
    );
    assert_eq!(b2.native.len(), series::MAX_REQUESTS + 1);
}

#[test]
fn scenarios_label_their_requests() {
    let mut s = Snapshot::empty(1_000_000);
    s.requests
        .insert("browse/home".into(), stats(&[10], &[(200, 1)], &[]));
    s.requests
        .insert("checkout/pay".into(), stats(&[10], &[(200, 1)], &[]));
    s.scenarios
        .insert("browse".into(), stats(&[10], &[(200, 1)], &[]));
    let b = series::build(&s, 1, 1, &Labels::default(), &mut Names::default());
    let home = value(
        &b,
        series::REQUESTS,
        &[("request", "browse/home"), ("scenario", "browse")],
    );
    assert_eq!(home, Some(1.0));
    // `checkout` is no scenario here (a journey step of the unnamed one).
    let pay = b
        .common
        .iter()
        .find(|ts| labels_of(ts).contains(&("request", "checkout/pay")))
        .unwrap();
    assert!(!pay.labels.iter().any(|l| l.name == "scenario"));
}

#[test]
fn a_body_is_snappy_protobuf_that_decodes_back() {
    use prost::Message as _;
    let req = proto::WriteRequest {
        timeseries: vec![proto::TimeSeries {
            labels: vec![proto::Label {
                name: "__name__".into(),
                value: "x".into(),
            }],
            samples: vec![proto::Sample {
                value: 1.5,
                timestamp: 9,
            }],
            histograms: vec![],
        }],
    };
    let body = proto::encode(&req);
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    assert_eq!(proto::WriteRequest::decode(raw.as_slice()).unwrap(), req);
}

#[test]
fn endpoints_are_checked() {
    let e = |url: &str, headers: &[(&str, &str)]| Endpoint {
        url: url.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        tls: None,
        timeout: Duration::from_secs(1),
    };
    assert!(
        e(
            "http://127.0.0.1:9090/api/v1/write",
            &[("X-Scope-OrgID", "a")]
        )
        .check()
        .is_ok()
    );
    assert_eq!(e("ftp://h/x", &[]).check().unwrap_err().0, "url");
    assert_eq!(e("not a url", &[]).check().unwrap_err().0, "url");
    let (field, msg) = e("http://h/", &[("Authorization", "Bearer sec\nret")])
        .check()
        .unwrap_err();
    assert_eq!(field, "headers");
    assert!(!msg.contains("sec"), "{msg}");
    assert_eq!(
        e("https://u:p@h/x?k=v#f", &[]).redacted_url(),
        "https://h/x"
    );
}

/// Offers closer than the interval (less a tenth of slack) are skipped; the
/// final one always goes, a millisecond after the last if it must.
#[tokio::test]
async fn offers_are_taken_once_per_interval() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = Endpoint {
        url: format!("http://127.0.0.1:{port}/w"),
        headers: vec![],
        tls: None,
        timeout: Duration::from_millis(100),
    };
    let options = Options {
        interval: Duration::from_secs(1),
        histograms: HistogramMode::Quantiles,
        continuing: false,
    };
    let p = Pusher::start(endpoint, Labels::default(), options);
    let s = Snapshot::empty(1_000_000);
    // Taken: 0, 950 (within the slack), 1900; skipped: 500, 1000, 1500.
    for at in [0, 500, 950, 1000, 1500, 1900] {
        p.offer(&s, at, 1);
    }
    let d = p.finish(&s, 1900, 0, Duration::from_millis(50)).await;
    // Each batch: the dropped counter and the runners gauge.
    assert_eq!(d.undelivered, 4 * 2, "{d:?}");
}

/// A counter's first sample comes after a 0 at the previous push (the
/// run's start for the first push), so rate() and increase() see all it
/// counted; gauges and counters already sent get no such sample.
#[test]
fn new_counters_start_from_zero() {
    let mut s = Snapshot::empty(1_000_000);
    s.started_us = Some(1_000_000);
    s.requests
        .insert("a".into(), stats(&[10, 20], &[(200, 2)], &[]));
    let mut names = Names::default();
    let labels = Labels::default();
    let first = series::build(&s, 3_000, 1, &labels, &mut names);
    let samples = |b: &series::Built, name: &str, extra: (&str, &str)| -> Vec<(i64, f64)> {
        b.common
            .iter()
            .find(|ts| {
                labels_of(ts).contains(&("__name__", name))
                    && (extra.0.is_empty() || labels_of(ts).contains(&extra))
            })
            .map(|ts| ts.samples.iter().map(|x| (x.timestamp, x.value)).collect())
            .unwrap()
    };
    assert_eq!(
        samples(&first, series::REQUESTS, ("", "")),
        [(1_000, 0.0), (3_000, 2.0)]
    );
    assert_eq!(
        samples(&first, series::DROPPED, ("", "")),
        [(1_000, 0.0), (3_000, 0.0)]
    );
    assert_eq!(samples(&first, series::RUNNERS, ("", "")), [(3_000, 1.0)]);
    let h = &first.native[0].histograms;
    assert_eq!(
        (h.len(), h[0].count_int, h[0].timestamp, h[1].count_int),
        (2, 0, 1_000, 2)
    );
    s.requests.insert(
        "a".into(),
        stats(&[10, 20, 30], &[(200, 2)], &[(ErrorKind::Timeout, 1)]),
    );
    let second = series::build(&s, 5_000, 1, &labels, &mut names);
    assert_eq!(
        samples(&second, series::REQUESTS, ("status_class", "2xx")),
        [(5_000, 2.0)]
    );
    assert_eq!(
        samples(&second, series::REQUESTS, ("status_class", "none")),
        [(3_000, 0.0), (5_000, 1.0)]
    );
    assert_eq!(
        samples(&second, series::ERRORS, ("kind", "timeout")),
        [(3_000, 0.0), (5_000, 1.0)]
    );
    assert_eq!(second.native[0].histograms.len(), 1);
}

/// After an operator restart the receiver already holds the run's series:
/// a 0 at the run's start would be older than what it holds, and Prometheus
/// refuses the whole write. The first push of a continuing pusher adds none;
/// a counter first seen after it still starts from 0 at the previous push.
#[test]
fn a_continuing_pusher_adds_no_zero_to_series_pushed_before() {
    let mut s = Snapshot::empty(1_000_000);
    s.started_us = Some(1_000_000);
    s.requests
        .insert("a".into(), stats(&[10, 20], &[(200, 2)], &[]));
    let mut names = Names::new(true);
    let labels = Labels::default();
    let first = series::build(&s, 3_000, 1, &labels, &mut names);
    for ts in first.common.iter().chain(&first.native) {
        assert!(
            ts.samples.iter().all(|x| x.timestamp == 3_000)
                && ts.histograms.iter().all(|h| h.timestamp == 3_000),
            "{:?}",
            labels_of(ts)
        );
    }
    s.requests.insert(
        "a".into(),
        stats(&[10, 20, 30], &[(200, 2)], &[(ErrorKind::Timeout, 1)]),
    );
    let second = series::build(&s, 5_000, 1, &labels, &mut names);
    let timeouts = second
        .common
        .iter()
        .find(|ts| labels_of(ts).contains(&("kind", "timeout")))
        .unwrap();
    let at: Vec<i64> = timeouts.samples.iter().map(|x| x.timestamp).collect();
    assert_eq!(at, [3_000, 5_000]);
}
