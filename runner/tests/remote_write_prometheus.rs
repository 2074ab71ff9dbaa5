//! Remote write against Debian's real Prometheus: a local run pushes its
//! series while it runs and PromQL reads them back. Totals equal the run's
//! summary exactly; quantiles from native histograms lie within the native
//! bucket (0.27 %) of the summary's; without native histograms the pusher
//! falls back to quantile series, which equal the summary's exactly.

#[path = "support/prometheus.rs"]
mod prometheus;

use std::{path::PathBuf, time::Duration};

use barrage_runner::{
    compile::Slot,
    local::{self, Options},
    planfile,
    remote_write::{self, Delivery, Endpoint, HistogramMode, Labels, Pusher},
    report::Report,
    serve::{ServeConfig, spawn_local},
};
use prometheus::Prometheus;

const ROUTES: &str = "routes: [{path: /fast, latency: '50%:2ms, 1ms'}, {path: /flaky, errorRate: 0.2, errorStatus: 503, latency: 3ms}]";
const PLAN: &str = "target: {baseUrl: BASE}\nload: {users: 4, duration: 2500ms}\nrequests: [{name: fast, path: /fast}, {name: flaky, path: /flaky}]";

/// Runs PLAN against the built-in target with a pusher to `prom` (every
/// second), pushes the final figures, and returns the report and delivery.
async fn run_pushing(prom: &Prometheus, loadtest: &str, mode: HistogramMode) -> (Report, Delivery) {
    let srv = spawn_local(ServeConfig::from_yaml_str(ROUTES).unwrap())
        .await
        .unwrap();
    let loaded =
        planfile::from_str(&PLAN.replace("BASE", &srv.base_url()), PathBuf::new()).unwrap();
    let endpoint = Endpoint {
        url: prom.write_url(),
        headers: vec![],
        tls: None,
        timeout: Duration::from_secs(5),
    };
    let labels = Labels(vec![
        ("namespace".into(), "local".into()),
        ("loadtest".into(), loadtest.into()),
    ]);
    let options = remote_write::Options {
        interval: Duration::from_secs(1),
        histograms: mode,
        continuing: false,
    };
    let pusher = Pusher::start(endpoint, labels, options);
    let opts = Options {
        slots: vec![Slot::SOLO],
        progress: false,
    };
    let report = local::run_pushing(&loaded, &opts, Some(&pusher))
        .await
        .unwrap();
    let d = pusher
        .finish(
            &report.snapshot,
            local::unix_ms(),
            0,
            Duration::from_secs(10),
        )
        .await;
    (report, d)
}

fn sel(loadtest: &str) -> String {
    format!("{{namespace=\"local\",loadtest=\"{loadtest}\"}}")
}

/// Totals, per request and in all, equal the report's exactly.
async fn assert_totals(prom: &Prometheus, report: &Report, lt: &str) {
    let s = sel(lt);
    let total = prom.value(&format!("sum(barrage_requests_total{s})")).await;
    assert_eq!(total as u64, report.summary.total.requests);
    for (name, r) in &report.snapshot.requests {
        let q = format!("sum(barrage_requests_total{{loadtest=\"{lt}\",request=\"{name}\"}})");
        assert_eq!(prom.value(&q).await as u64, r.count(), "{q}");
    }
    let ok = prom
        .value(&format!(
            "sum(barrage_requests_total{{loadtest=\"{lt}\",status_class=\"2xx\"}})"
        ))
        .await;
    let flaky = &report.snapshot.requests["flaky"];
    let s503 = flaky.statuses.get(&503).copied().unwrap_or(0);
    assert!(
        s503 > 0,
        "the flaky route answered no 503: {:?}",
        flaky.statuses
    );
    assert_eq!(ok as u64, report.summary.total.requests - s503);
    let errors = prom.value(&format!("sum(barrage_errors_total{s})")).await;
    assert_eq!(errors as u64, report.summary.total.errors);
    let status_errors = prom
        .value(&format!(
            "sum(barrage_errors_total{{loadtest=\"{lt}\",kind=\"status\"}})"
        ))
        .await;
    assert_eq!(status_errors as u64, s503);
    assert_eq!(
        prom.value(&format!("sum(barrage_dropped_total{s})")).await,
        0.0
    );
    // The final push says the load is over.
    assert_eq!(
        prom.value(&format!("sum(barrage_runners_active{s})")).await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_histograms_read_back_exactly() {
    let Some(prom) = Prometheus::start(true).await else {
        return;
    };
    let lt = "rw-native";
    let (report, d) = run_pushing(&prom, lt, HistogramMode::Auto).await;
    assert_eq!(d.undelivered, 0, "{d:?}\n{}", prom.log());
    assert!(
        d.pushes >= 2,
        "a push during the run and the final one: {d:?}"
    );
    assert_totals(&prom, &report, lt).await;
    let s = sel(lt);
    let count = prom
        .value(&format!(
            "sum(histogram_count(barrage_request_duration_seconds{s}))"
        ))
        .await;
    assert_eq!(count as u64, report.summary.total.requests);
    // Quantiles of all requests together, and of each request.
    let width = remote_write::native::relative_width();
    for (q, want_ms) in [
        (0.5, report.summary.total.latency_ms.p50),
        (0.95, report.summary.total.latency_ms.p95),
        (0.99, report.summary.total.latency_ms.p99),
    ] {
        let got = prom
            .value(&format!(
                "histogram_quantile({q}, sum(barrage_request_duration_seconds{s}))"
            ))
            .await;
        let want = want_ms / 1000.0;
        assert!(
            (got - want).abs() <= want * width * 1.01,
            "p{q}: Prometheus {got}, summary {want}"
        );
    }
    for (name, r) in &report.snapshot.requests {
        let got = prom
            .value(&format!("histogram_quantile(0.95, barrage_request_duration_seconds{{loadtest=\"{lt}\",request=\"{name}\"}})"))
            .await;
        let want = r.latency.value_at_quantile(0.95) as f64 / 1e6;
        assert!(
            (got - want).abs() <= want * width * 1.01,
            "{name} p95: Prometheus {got}, summary {want}"
        );
    }
    // The series is a counter over time: rate() over it has points.
    let rate = prom
        .query_range(
            &format!("sum(rate(barrage_requests_total{s}[2s]))"),
            30,
            "1s",
        )
        .await;
    assert_eq!(rate.len(), 1, "{rate:?}");
    // Each counter starts from 0 at the run's start, so nothing it counted
    // before its first push is lost to rate() or increase().
    let first = prom
        .value(&format!(
            "min_over_time(barrage_requests_total{{loadtest=\"{lt}\",request=\"fast\"}}[1m])"
        ))
        .await;
    assert_eq!(first, 0.0);
    check_dashboard(&prom, lt, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_native_histograms_quantile_series_are_pushed_instead() {
    let Some(prom) = Prometheus::start(false).await else {
        return;
    };
    // Native only: Prometheus 2.42 without the feature refuses every push
    // that holds one (HTTP 500 "native histograms are disabled"): counted,
    // not retried for ever.
    let (_, native) = run_pushing(&prom, "rw-native-only", HistogramMode::Native).await;
    assert_eq!((native.pushes, native.samples), (0, 0), "{native:?}");
    assert!(native.undelivered > 0, "{native:?}");
    let err = native.last_error.unwrap_or_default();
    // Prometheus 2.42 says "HTTP 500: native histograms are disabled".
    assert!(
        err.starts_with("HTTP ") && err.contains("native histograms"),
        "{err}"
    );

    let lt = "rw-fallback";
    let (report, d) = run_pushing(&prom, lt, HistogramMode::Auto).await;
    assert_eq!(d.undelivered, 0, "{d:?}\n{}", prom.log());
    assert!(d.pushes >= 2, "{d:?}");
    assert_totals(&prom, &report, lt).await;
    for (name, r) in &report.snapshot.requests {
        let one = |suffix: &str, extra: &str| {
            format!(
                "barrage_request_duration_seconds{suffix}{{loadtest=\"{lt}\",request=\"{name}\"{extra}}}"
            )
        };
        let p95 = prom.value(&one("", ",quantile=\"0.95\"")).await;
        assert_eq!(
            p95,
            r.latency.value_at_quantile(0.95) as f64 / 1e6,
            "{name}"
        );
        assert_eq!(prom.value(&one("_count", "")).await as u64, r.count());
    }
    check_dashboard(&prom, lt, false).await;
    // The quantile mode pushes the same.
    let (report, d) = run_pushing(&prom, "rw-quantiles", HistogramMode::Quantiles).await;
    assert_eq!(d.undelivered, 0, "{d:?}");
    assert_totals(&prom, &report, "rw-quantiles").await;
}

/// Every query of the dashboard's panels on the pushed series, and its
/// variables' queries, run against Prometheus with Grafana's variables
/// substituted: each returns data, so a renamed series or label breaks
/// this test rather than the dashboard. The heatmap needs native
/// histograms.
async fn check_dashboard(prom: &Prometheus, lt: &str, native: bool) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/barrage/dashboards/barrage.json"
    );
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let subst = |q: &str| {
        q.replace("$namespace", ".*")
            .replace("$loadtest", lt)
            .replace("$__rate_interval", "10s")
            .replace("$__interval", "1s")
    };
    // The variables list what was pushed.
    for v in d["templating"]["list"].as_array().unwrap() {
        let Some(q) = v["query"]["query"].as_str() else {
            continue;
        };
        let inner = q
            .strip_prefix("query_result(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap();
        let r = prom.query(&subst(inner).replace(lt, ".*")).await;
        let want = if v["name"] == "loadtest" { lt } else { "local" };
        let re = v["regex"].as_str().unwrap();
        let label = re.trim_start_matches('/').split('=').next().unwrap();
        assert!(
            r.iter().any(|s| s["metric"][label] == want),
            "variable {}: {want} not in {r:?}",
            v["name"]
        );
    }
    let pushed = [
        remote_write::series::REQUESTS,
        remote_write::series::ERRORS,
        remote_write::series::DURATION,
        remote_write::series::DROPPED,
        remote_write::series::RUNNERS,
    ];
    let mut checked = 0;
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            if !pushed.iter().any(|s| expr.contains(s)) {
                continue; // the operator's own metrics
            }
            if p["type"] == "heatmap" && !native {
                continue;
            }
            let r = prom.query_range(&subst(expr), 60, "1s").await;
            // Floats come as `values`, native histograms as `histograms`.
            let points: usize = r
                .iter()
                .flat_map(|s| [&s["values"], &s["histograms"]])
                .map(|v| v.as_array().map_or(0, Vec::len))
                .sum();
            assert!(
                points > 0,
                "panel {:?}: {expr} returned no data",
                p["title"]
            );
            checked += 1;
        }
    }
    // Throughput x2, errors, statuses, quantiles x3, p95 per request,
    // heatmap, runners, dropped.
    assert_eq!(checked, if native { 11 } else { 10 });
}
