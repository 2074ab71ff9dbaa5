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
    serialization::{Deserializer, Serializer as _, V2DeflateSerializer},
};

pub type Latency = Histogram<u64>;

pub const LOWEST_US: u64 = 1;
pub const HIGHEST_US: u64 = 3_600_000_000;
pub const SIGFIG: u8 = 3;

pub fn new_latency() -> Latency {
    let mut h =
        Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).expect("static bounds are valid");
    // Merging a histogram decoded from another runner must never fail on range.
    h.auto(true);
    h
}

pub fn record(h: &mut Latency, us: u64) {
    h.saturating_record(us.clamp(LOWEST_US, HIGHEST_US));
}

pub fn encode(h: &Latency) -> String {
    let mut buf = Vec::with_capacity(1024);
    V2DeflateSerializer::new()
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
    fn garbage_is_an_error() {
        assert!(decode("!!!").unwrap_err().contains("base64"));
        assert!(decode("AAAA").unwrap_err().contains("decode"));
    }
}
