//! Prometheus metrics: the operator's own (reconciles, errors by category,
//! reconcile duration) and, per LoadTest, its live figures, labelled only by
//! namespace and name so the series stay bounded by the LoadTests that exist.

use std::sync::Mutex;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use std::sync::atomic::AtomicU64;

use crate::crd::LoadTestStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Category {
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Test {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TestQuantile {
    namespace: String,
    name: String,
    quantile: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Mutex<Registry>,
    reconciles: Counter,
    errors: Family<Category, Counter>,
    duration: Histogram,
    requests: Family<Test, Gauge>,
    rps: Family<Test, F64Gauge>,
    error_ratio: Family<Test, F64Gauge>,
    latency: Family<TestQuantile, F64Gauge>,
    runners_ready: Family<Test, Gauge>,
}

const QUANTILES: [&str; 3] = ["0.5", "0.95", "0.99"];

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            reconciles: Counter::default(),
            errors: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            requests: Family::default(),
            rps: Family::default(),
            error_ratio: Family::default(),
            latency: Family::default(),
            runners_ready: Family::default(),
        };
        {
            let mut r = m.registry.lock().expect("fresh mutex");
            r.register(
                "barrage_reconciles",
                "Reconciles of LoadTests",
                m.reconciles.clone(),
            );
            r.register(
                "barrage_reconcile_errors",
                "Failed reconciles by error category",
                m.errors.clone(),
            );
            r.register(
                "barrage_reconcile_duration_seconds",
                "Time one reconcile took",
                m.duration.clone(),
            );
            r.register(
                "barrage_loadtest_requests_total",
                "Requests sent so far by all runners of a LoadTest",
                m.requests.clone(),
            );
            r.register(
                "barrage_loadtest_rps",
                "Requests per second of a LoadTest (merged)",
                m.rps.clone(),
            );
            r.register(
                "barrage_loadtest_error_ratio",
                "Failed requests / requests of a LoadTest",
                m.error_ratio.clone(),
            );
            r.register(
                "barrage_loadtest_latency_seconds",
                "Latency percentiles of a LoadTest, from the merged histograms",
                m.latency.clone(),
            );
            r.register(
                "barrage_loadtest_runners_ready",
                "Runner pods of a LoadTest that are up",
                m.runners_ready.clone(),
            );
        }
        m
    }
}

impl Metrics {
    pub fn reconciled(&self, seconds: f64) {
        self.reconciles.inc();
        self.duration.observe(seconds);
    }

    pub fn failed(&self, category: &str) {
        self.errors
            .get_or_create(&Category {
                category: category.into(),
            })
            .inc();
    }

    /// Publishes a LoadTest's status figures (kept after it ends, until it is deleted).
    pub fn observe(&self, namespace: &str, name: &str, st: &LoadTestStatus) {
        let t = Test {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.requests.get_or_create(&t).set(st.requests as i64);
        self.rps.get_or_create(&t).set(st.rps);
        let ratio = if st.requests > 0 {
            st.errors as f64 / st.requests as f64
        } else {
            0.0
        };
        self.error_ratio.get_or_create(&t).set(ratio);
        self.runners_ready
            .get_or_create(&t)
            .set(st.runners_ready as i64);
        if let Some(l) = &st.latency_ms {
            for (q, ms) in QUANTILES.iter().zip([l.p50, l.p95, l.p99]) {
                self.latency
                    .get_or_create(&TestQuantile {
                        namespace: namespace.into(),
                        name: name.into(),
                        quantile: (*q).into(),
                    })
                    .set(ms / 1000.0);
            }
        }
    }

    /// Drops a deleted LoadTest's series.
    pub fn forget(&self, namespace: &str, name: &str) {
        let t = Test {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.requests.remove(&t);
        self.rps.remove(&t);
        self.error_ratio.remove(&t);
        self.runners_ready.remove(&t);
        for q in QUANTILES {
            self.latency.remove(&TestQuantile {
                namespace: namespace.into(),
                name: name.into(),
                quantile: q.into(),
            });
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(
            &mut out,
            &self.registry.lock().unwrap_or_else(|e| e.into_inner()),
        )
        .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_runner::report::Latencies;

    #[test]
    fn exposes_status_figures_and_forgets_deleted_tests() {
        let m = Metrics::default();
        let st = LoadTestStatus {
            requests: 3000,
            errors: 30,
            rps: 912.5,
            runners_ready: 3,
            latency_ms: Some(Latencies {
                p50: 1.2,
                p95: 51.3,
                p99: 52.0,
                ..Default::default()
            }),
            ..Default::default()
        };
        m.observe("ns1", "smoke", &st);
        m.reconciled(0.01);
        m.failed("kube");
        let text = m.render();
        for line in [
            r#"barrage_loadtest_requests_total{namespace="ns1",name="smoke"} 3000"#,
            r#"barrage_loadtest_rps{namespace="ns1",name="smoke"} 912.5"#,
            r#"barrage_loadtest_error_ratio{namespace="ns1",name="smoke"} 0.01"#,
            r#"barrage_loadtest_latency_seconds{namespace="ns1",name="smoke",quantile="0.95"} 0.0513"#,
            r#"barrage_loadtest_runners_ready{namespace="ns1",name="smoke"} 3"#,
            r#"barrage_reconcile_errors_total{category="kube"} 1"#,
            "barrage_reconciles_total 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        m.forget("ns1", "smoke");
        assert!(!m.render().contains("smoke"));
    }
}
