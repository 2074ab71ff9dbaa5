//! A latency HdrHistogram as a Prometheus native histogram.
//!
//! Native histograms have exponential buckets: at schema `s`, bucket `i`
//! holds the values in (2^((i-1)/2^s), 2^(i/2^s)]. At the finest schema (8)
//! a bucket is 0.27 % wide, a little coarser than the HdrHistogram's three
//! significant digits (at most 0.1 %), so every HdrHistogram bucket falls
//! into one native bucket (the one holding its highest equivalent value,
//! which is what the summary's percentiles report): the count is exact, the
//! bucket counts add up to it exactly, and a quantile read from the native
//! histogram lies in the same 0.27 % bucket as the summary's.

use std::sync::OnceLock;

use super::proto::{BucketSpan, Histogram};
use crate::histogram::Latency;

/// The finest schema Prometheus accepts.
pub const SCHEMA: i32 = 8;
const PER_OCTAVE: usize = 1 << SCHEMA;
/// Empty buckets up to this many between two filled ones are sent as zeros
/// rather than starting a new span (as Prometheus's own client does).
const MAX_GAP: i32 = 2;

/// A bucket's relative width at [`SCHEMA`]: the precision of quantiles read
/// from what is pushed, on top of the HdrHistogram's.
pub fn relative_width() -> f64 {
    2f64.powf(1.0 / PER_OCTAVE as f64) - 1.0
}

/// Within one octave [0.5, 1), the upper bounds of its buckets, as
/// Prometheus computes them (its `exponentialBounds`).
fn bounds() -> &'static [f64] {
    static B: OnceLock<Vec<f64>> = OnceLock::new();
    B.get_or_init(|| {
        (0..PER_OCTAVE)
            .map(|j| 2f64.powf(j as f64 / PER_OCTAVE as f64 - 1.0))
            .collect()
    })
}

/// The native bucket holding `v` (> 0, finite), as Prometheus finds it:
/// `frexp`, then the first bound at or above the fraction.
pub fn bucket_index(v: f64) -> i32 {
    let (frac, exp) = frexp(v);
    let j = bounds().partition_point(|b| *b < frac);
    j as i32 + (exp - 1) * PER_OCTAVE as i32
}

/// `v = frac * 2^exp` with `frac` in [0.5, 1), for positive normal `v`.
fn frexp(v: f64) -> (f64, i32) {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (frac, exp)
}

/// The histogram of latencies in microseconds as a native histogram of
/// seconds at `at_ms`.
pub fn from_latency(h: &Latency, at_ms: i64) -> Histogram {
    // (bucket index, count), in increasing index: HdrHistogram iterates
    // its buckets in increasing value.
    let mut buckets: Vec<(i32, u64)> = Vec::new();
    for v in h.iter_recorded() {
        let i = bucket_index(v.value_iterated_to().max(1) as f64 / 1e6);
        match buckets.last_mut() {
            Some((last, n)) if *last == i => *n += v.count_at_value(),
            _ => buckets.push((i, v.count_at_value())),
        }
    }
    let mut spans: Vec<BucketSpan> = Vec::new();
    let mut deltas: Vec<i64> = Vec::new();
    let (mut prev_index, mut prev_count) = (None::<i32>, 0i64);
    for (i, n) in buckets {
        let n = n as i64;
        match prev_index {
            Some(p) if i - p - 1 <= MAX_GAP => {
                for _ in 0..i - p - 1 {
                    deltas.push(-prev_count);
                    prev_count = 0;
                }
                spans.last_mut().expect("a span is open").length += (i - p) as u32;
            }
            _ => spans.push(BucketSpan {
                offset: prev_index.map_or(i, |p| i - p - 1),
                length: 1,
            }),
        }
        deltas.push(n - prev_count);
        (prev_index, prev_count) = (Some(i), n);
    }
    Histogram {
        count_int: h.len(),
        // HdrHistogram keeps no exact sum: its mean (of each bucket's
        // middle), within the same precision as the buckets.
        sum: h.mean() * h.len() as f64 / 1e6,
        schema: SCHEMA,
        zero_threshold: 0.0,
        zero_count_int: 0,
        positive_spans: spans,
        positive_deltas: deltas,
        reset_hint: 0,
        timestamp: at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram;

    /// Bucket counts back from spans and deltas: (index, count).
    fn expand(h: &Histogram) -> Vec<(i32, i64)> {
        let (mut out, mut idx, mut count, mut d) =
            (Vec::new(), 0i32, 0i64, h.positive_deltas.iter());
        for (k, s) in h.positive_spans.iter().enumerate() {
            idx += s.offset + if k == 0 { 0 } else { 1 };
            for j in 0..s.length {
                count += d.next().expect("a delta per bucket");
                out.push((idx, count));
                if j + 1 < s.length {
                    idx += 1;
                }
            }
        }
        assert!(d.next().is_none(), "more deltas than buckets");
        out
    }

    #[test]
    fn bucket_bounds_are_prometheus_ones() {
        // Bucket i holds (2^((i-1)/256), 2^(i/256)]; 1 is the top of bucket 0.
        assert_eq!(bucket_index(1.0), 0);
        assert_eq!(bucket_index(1.0000001), 1);
        assert_eq!(bucket_index(2.0), 256);
        assert_eq!(bucket_index(0.5), -256);
        assert_eq!(bucket_index(0.001), (0.001f64.log2() * 256.0).ceil() as i32);
        for v in [1e-6, 3.7e-4, 0.0123, 0.25, 7.5, 3600.0] {
            let i = bucket_index(v);
            let (lo, hi) = (
                2f64.powf((i - 1) as f64 / 256.0),
                2f64.powf(i as f64 / 256.0),
            );
            assert!(
                lo < v && v <= hi * (1.0 + 1e-12),
                "{v} not in bucket {i}: ({lo}, {hi}]"
            );
        }
    }

    #[test]
    fn counts_are_exact_and_quantiles_stay_in_their_bucket() {
        let mut h = histogram::new_latency();
        // Fast and slow, with gaps wide enough to need several spans.
        for us in (1..=5000u64)
            .map(|i| 100 + i * 7)
            .chain([90_000, 90_100, 2_500_000])
        {
            histogram::record(&mut h, us);
        }
        let n = from_latency(&h, 1234);
        assert_eq!(
            (n.count_int, n.schema, n.timestamp),
            (h.len(), SCHEMA, 1234)
        );
        let buckets = expand(&n);
        assert!(n.positive_spans.len() >= 3, "{:?}", n.positive_spans);
        assert!(buckets.iter().all(|(_, c)| *c >= 0));
        assert_eq!(buckets.iter().map(|(_, c)| *c as u64).sum::<u64>(), h.len());
        assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0));
        // The bucket where the cumulative count reaches 95 % holds the
        // HdrHistogram's p95.
        for q in [0.5, 0.95, 0.99, 1.0] {
            let rank = (q * h.len() as f64).ceil() as i64;
            let mut seen = 0;
            let (i, _) = *buckets
                .iter()
                .find(|(_, c)| {
                    seen += c;
                    seen >= rank
                })
                .unwrap();
            assert_eq!(
                i,
                bucket_index(h.value_at_quantile(q) as f64 / 1e6),
                "q {q}"
            );
        }
        let mean = n.sum / n.count_int as f64 * 1e6;
        assert!((mean - h.mean()).abs() < 1e-6 * h.mean());
    }

    #[test]
    fn an_empty_histogram_has_no_buckets() {
        let n = from_latency(&histogram::new_latency(), 0);
        assert_eq!(
            (n.count_int, n.positive_spans.len(), n.positive_deltas.len()),
            (0, 0, 0)
        );
    }
}
