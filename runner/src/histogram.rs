//! Latency histograms and their wire form.
//!
//! Latencies are recorded in microseconds from 1 µs to one hour with three
//! significant digits; anything slower saturates at the top bucket rather than
//! being lost. On the wire a histogram is HdrHistogram's V2 format with DEFLATE
//! compression, base64-encoded so it can sit inside JSON; any HdrHistogram
//! implementation can read it.

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use hdrhistogram::{
    Histogram,
    serialization::{Deserializer, Serializer as _, V2DeflateSerializer, V2Serializer},
};

pub type Latency = Histogram<u64>;

pub const LOWEST_US: u64 = 1;
pub const HIGHEST_US: u64 = 3_600_000_000;
pub const SIGFIG: u8 = 3;

/// An empty histogram. It starts with the counters for 1 µs..2 ms (16 KB)
/// and grows only as far as the values recorded into or merged into it
/// (auto-resize), up to ~188 KB at the one-hour clamp: a request name that
/// only ever saw fast responses never pays for the full range. The precision
/// and the bucket layout are those of the full range, so recording, merging
/// and the V2 wire form give exactly the same counts.
pub fn new_latency() -> Latency {
    // Auto-resizing: it grows on record and on merging a histogram decoded
    // from another runner, so neither ever fails on range.
    Histogram::new(SIGFIG).expect("static bounds are valid")
}

/// Bytes of counters a histogram holds.
pub fn footprint(h: &Latency) -> usize {
    h.distinct_values() * std::mem::size_of::<u64>()
}

pub fn record(h: &mut Latency, us: u64) {
    let us = us.clamp(LOWEST_US, HIGHEST_US);
    // `record` grows an auto-resizing histogram to hold the value;
    // `saturating_record` would pile it into the current top bucket instead.
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

pub fn encode(h: &Latency) -> String {
    // The V2 header carries the trackable range, which for a growing
    // histogram depends on the order its values came in. Written as the
    // range of its largest value instead, equal histograms encode to equal
    // text (merges stay order-independent on the wire) and decode to a
    // histogram no larger than their contents.
    let top = h.max().max(2 * LOWEST_US);
    let sized;
    let h = if h.high() == top {
        h
    } else {
        let mut c = Histogram::new_with_bounds(LOWEST_US, top, SIGFIG).expect("top >= 2");
        c.auto(true);
        c.add(h).expect("sized to hold the largest value");
        sized = c;
        &sized
    };
    let mut buf = Vec::with_capacity(1024);
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("writing to a Vec cannot fail");
    B64.encode(buf)
}

/// Plain V2 (no DEFLATE), base64: cheaper for the small, sparse
/// histograms of a difference, which DEFLATE barely shrinks.
pub fn encode_plain(h: &Latency) -> String {
    let mut buf = Vec::with_capacity(256);
    V2Serializer::new()
        .serialize(h, &mut buf)
        .expect("writing to a Vec cannot fail");
    B64.encode(buf)
}

pub fn decode(s: &str) -> Result<Latency, String> {
    let bytes = B64
        .decode(s)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    let mut h: Latency = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram does not decode: {e:?}"))?;
    // Histograms come from runners, which the operator does not trust: only
    // our own layout is taken. Another precision or range would change what
    // merged figures mean, and a 5-digit one holds ~50 MB of counters.
    if h.sigfig() != SIGFIG || h.low() != LOWEST_US || h.high() > 2 * HIGHEST_US {
        return Err(format!(
            "histogram is not Barrage's (1 µs..1 h, {SIGFIG} significant digits): it has {} significant digits and range {}..{}",
            h.sigfig(),
            h.low(),
            h.high()
        ));
    }
    h.auto(true);
    Ok(h)
}

/// `#[serde(with = "crate::histogram::b64")]` for histogram fields.
pub mod b64 {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Latency;

    pub fn serialize<S: Serializer>(h: &Latency, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Latency, D::Error> {
        let s = String::deserialize(d)?;
        super::decode(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a runner sends is checked: another precision or range is
    /// refused, not merged (nor allowed to allocate its counters for long).
    #[test]
    fn only_our_own_layout_decodes() {
        let foreign = |low, high, sigfig| {
            let mut h: Latency = Histogram::new_with_bounds(low, high, sigfig).unwrap();
            h.record(low).unwrap();
            let mut buf = Vec::new();
            V2DeflateSerializer::new().serialize(&h, &mut buf).unwrap();
            decode(&B64.encode(buf))
        };
        for (low, high, sigfig) in [
            (1, 3_600_000_000, 5),
            (1, 3_600_000_000, 2),
            (1000, 3_600_000_000, 3),
            (1, u64::MAX / 4, 3),
        ] {
            let e = foreign(low, high, sigfig).unwrap_err();
            assert!(e.contains("is not Barrage's"), "{e}");
        }
        assert!(foreign(1, 3_600_000_000, 3).is_ok());
    }

    #[test]
    fn round_trips_exactly() {
        let mut h = new_latency();
        for v in [1, 17, 999, 12_345, 1_000_000, 59_000_000] {
            record(&mut h, v);
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.len(), 6);
    }

    #[test]
    fn one_million_samples_encode_under_20kb() {
        let mut h = new_latency();
        let mut x = 12345u64;
        for _ in 0..1_000_000 {
            // A wide, skewed spread (xorshift): 100 µs to ~10 s.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let us = 100 + (x % 1000) * (x % 1000) * (x % 10) + x % 97;
            record(&mut h, us);
        }
        let s = encode(&h);
        assert!(s.len() < 20 * 1024, "encoded size {}", s.len());
        assert_eq!(decode(&s).unwrap().len(), 1_000_000);
    }

    #[test]
    fn out_of_range_values_saturate_instead_of_vanishing() {
        let mut h = new_latency();
        record(&mut h, 0);
        record(&mut h, u64::MAX);
        assert_eq!(h.len(), 2);
        assert!(h.max() >= HIGHEST_US / 2);
    }

    #[test]
    fn starts_small_and_grows_only_to_the_values_recorded() {
        let mut h = new_latency();
        assert!(footprint(&h) <= 16 * 1024, "{}", footprint(&h));
        record(&mut h, 1_500);
        assert!(footprint(&h) <= 16 * 1024, "{}", footprint(&h));
        record(&mut h, 1_000_000);
        assert!(footprint(&h) <= 96 * 1024, "{}", footprint(&h));
        record(&mut h, u64::MAX);
        assert!(footprint(&h) <= 192 * 1024, "{}", footprint(&h));
        // A decoded histogram is as small as the one encoded.
        let small = new_latency();
        assert_eq!(
            footprint(&decode(&encode(&small)).unwrap()),
            footprint(&small)
        );
    }

    #[test]
    fn same_buckets_as_the_full_range_histogram() {
        // The layout the wire form had before histograms started small:
        // counts, quantiles and merges must not change.
        let mut full = Histogram::<u64>::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).unwrap();
        let mut small = new_latency();
        let mut x = 88172645463325252u64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let us = x % (1 << (x % 33));
            record(&mut full, us);
            record(&mut small, us);
        }
        assert_eq!(small, full);
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(small.value_at_quantile(q), full.value_at_quantile(q));
        }
        // An old full-range histogram from the wire merges into a small one exactly.
        let mut merged = new_latency();
        merged.add(decode(&encode(&full)).unwrap()).unwrap();
        assert_eq!(merged, full);
    }

    #[test]
    fn equal_histograms_encode_equally_whatever_the_merge_order() {
        let one = |v| {
            let mut h = new_latency();
            record(&mut h, v);
            h
        };
        let (a, b) = (one(2_000), one(3_000));
        let mut ab = a.clone();
        ab.add(&b).unwrap();
        let mut ba = b.clone();
        ba.add(&a).unwrap();
        assert_eq!(encode(&ab), encode(&ba));
        // A full-range histogram (what older runners sent) encodes the same
        // as a small one with the same counts.
        let mut full = Histogram::<u64>::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).unwrap();
        full.add(&ab).unwrap();
        assert_eq!(encode(&full), encode(&ab));
        assert!(footprint(&decode(&encode(&full)).unwrap()) <= footprint(&ab));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode("!!!").unwrap_err().contains("base64"));
        assert!(decode("AAAA").unwrap_err().contains("decode"));
    }
}
