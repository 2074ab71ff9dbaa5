//! Reading a histogram's wire form straight into a sum.
//!
//! `histogram::decode` builds a whole histogram (a counts array as wide as
//! its largest value, 16 to 190 KB) and `add` then walks all of it: that
//! was most of a collection round's time, for deltas that hold a few hundred
//! non-zero buckets. Here the V2 payload (plain, or DEFLATE as the recorder
//! packs intervals) is walked once into (index, count) pairs, checked to be
//! Barrage's layout (1 µs, 3 significant digits, at most twice the one-hour
//! range, as `histogram::decode` checks), and added bucket by bucket. A
//! whole reply is read this way before any of it is added, so a bad
//! histogram refuses the reply instead of leaving half of it merged.

use std::sync::OnceLock;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use flate2::{Decompress, FlushDecompress, Status};
use hdrhistogram::Histogram;

use crate::histogram::{HIGHEST_US, LOWEST_US, Latency, SIGFIG};

const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9304 | 0x10;
const HEADER: usize = 40;
/// Our layout: 2048 sub-buckets (3 digits), the lower half of each bucket
/// past the first unused, so an index maps to a value as below.
const HALF_MAGNITUDE: u32 = 10;
const HALF: u32 = 1 << HALF_MAGNITUDE;

/// Buffers reused across histograms (base64 and inflate output).
#[derive(Default)]
pub struct Scratch {
    raw: Vec<u8>,
    plain: Vec<u8>,
    inflate: Option<Decompress>,
}

/// A histogram's non-zero buckets: (counts index, count).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sparse(pub Vec<(u32, u64)>);

impl Sparse {
    /// How many samples it holds.
    pub fn len(&self) -> u64 {
        self.0.iter().fold(0u64, |a, (_, c)| a.saturating_add(*c))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds another one, bucket by bucket (both are sorted by index).
    pub fn add(&mut self, o: &Sparse) {
        if o.0.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.0.len() + o.0.len());
        let (mut a, mut b) = (self.0.iter().peekable(), o.0.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&(i, x)), Some(&&(j, y))) => {
                    if i == j {
                        out.push((i, x.saturating_add(y)));
                        a.next();
                        b.next();
                    } else if i < j {
                        out.push((i, x));
                        a.next();
                    } else {
                        out.push((j, y));
                        b.next();
                    }
                }
                (Some(_), None) => out.extend(a.by_ref().copied()),
                (None, Some(_)) => out.extend(b.by_ref().copied()),
                (None, None) => break,
            }
        }
        self.0 = out;
    }

    pub fn to_latency(&self) -> Latency {
        let mut h = crate::histogram::new_latency();
        self.add_to(&mut h);
        h
    }

    /// Adds every bucket into `h` (which grows to hold them).
    pub fn add_to(&self, h: &mut Latency) {
        for &(index, count) in &self.0 {
            // Same layout, so the value names the same bucket in `h`.
            if h.record_n(value_for(index), count).is_err() {
                h.saturating_record_n(value_for(index), count);
            }
        }
    }
}

/// A sum of histograms as a bare counts array in Barrage's layout, grown
/// to the highest bucket added: adding a bucket is one addition, where a
/// `Histogram` also updates its totals, minimum and maximum each time. A
/// collection round adds thousands of buckets per runner into a few sums.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dense(Vec<u64>);

impl Dense {
    pub fn add(&mut self, s: &Sparse) {
        if let Some(&(top, _)) = s.0.last()
            && top as usize >= self.0.len()
        {
            self.0.resize(top as usize + 1, 0);
        }
        for &(index, count) in &s.0 {
            let c = &mut self.0[index as usize];
            *c = c.saturating_add(count);
        }
    }

    /// The histogram it sums.
    pub fn to_latency(&self) -> Latency {
        let mut h = crate::histogram::new_latency();
        for (index, &count) in self.0.iter().enumerate() {
            if count > 0 && h.record_n(value_for(index as u32), count).is_err() {
                h.saturating_record_n(value_for(index as u32), count);
            }
        }
        h
    }
}

/// The lowest value of the bucket at `index` in Barrage's layout.
fn value_for(index: u32) -> u64 {
    let bucket = (index >> HALF_MAGNITUDE) as i32 - 1;
    let sub = (index & (HALF - 1)) + HALF;
    if bucket < 0 {
        u64::from(sub - HALF)
    } else {
        u64::from(sub) << bucket
    }
}

/// One past the highest index a histogram of ours may use.
fn index_limit() -> u32 {
    static LIMIT: OnceLock<u32> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let h: Latency = Histogram::new_with_bounds(LOWEST_US, 2 * HIGHEST_US, SIGFIG)
            .expect("static bounds are valid");
        h.distinct_values() as u32
    })
}

/// Reads a base64 V2 histogram (plain or DEFLATE) into its non-zero buckets.
pub fn read(text: &str, scratch: &mut Scratch) -> Result<Sparse, String> {
    scratch.raw.clear();
    B64.decode_vec(text, &mut scratch.raw)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    let raw = &scratch.raw;
    match be_u32(raw, 0)? {
        V2_COOKIE => read_plain(raw),
        V2_DEFLATE_COOKIE => {
            let len = be_u32(raw, 4)? as usize;
            let stream = raw
                .get(8..8 + len)
                .ok_or("histogram is cut short (compressed payload)")?;
            let inflate = scratch.inflate.get_or_insert_with(|| Decompress::new(true));
            inflate.reset(true);
            // The most a histogram of ours can take: 9 bytes a counter.
            let max = HEADER + 9 * index_limit() as usize;
            scratch.plain.clear();
            scratch.plain.reserve(max);
            match inflate.decompress_vec(stream, &mut scratch.plain, FlushDecompress::Finish) {
                Ok(Status::StreamEnd) => read_plain(&scratch.plain),
                Ok(_) => Err(
                    "histogram does not decode: compressed payload too long or cut short".into(),
                ),
                Err(e) => Err(format!("histogram does not decode: {e}")),
            }
        }
        _ => Err("histogram does not decode: not a V2 histogram".into()),
    }
}

fn be_u32(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|x| u32::from_be_bytes(x.try_into().expect("4 bytes")))
        .ok_or_else(|| "histogram is cut short".to_string())
}

fn be_u64(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 8)
        .map(|x| u64::from_be_bytes(x.try_into().expect("8 bytes")))
        .ok_or_else(|| "histogram is cut short".to_string())
}

fn read_plain(b: &[u8]) -> Result<Sparse, String> {
    if be_u32(b, 0)? != V2_COOKIE {
        return Err("histogram does not decode: not a V2 histogram".into());
    }
    let len = be_u32(b, 4)? as usize;
    let (offset, digits) = (be_u32(b, 8)?, be_u32(b, 12)?);
    let (low, high) = (be_u64(b, 16)?, be_u64(b, 24)?);
    let ratio = f64::from_bits(be_u64(b, 32)?);
    if offset != 0
        || digits != u32::from(SIGFIG)
        || low != LOWEST_US
        || high > 2 * HIGHEST_US
        || ratio != 1.0
    {
        return Err(format!(
            "histogram is not Barrage's (1 µs..1 h, {SIGFIG} significant digits): it has {digits} significant digits and range {low}..{high}"
        ));
    }
    let mut payload = b
        .get(HEADER..HEADER + len)
        .ok_or("histogram is cut short (payload)")?;
    let limit = index_limit();
    let mut index: u64 = 0;
    let mut out = Vec::new();
    while !payload.is_empty() {
        let (zz, used) = varint(payload).ok_or("histogram is cut short (counts)")?;
        payload = &payload[used..];
        let n = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
        if n < 0 {
            index = index.saturating_add(n.unsigned_abs());
            continue;
        }
        if n > 0 {
            if index >= u64::from(limit) {
                return Err("histogram does not decode: a count lies beyond its range".into());
            }
            out.push((index as u32, n as u64));
        }
        index += 1;
    }
    Ok(Sparse(out))
}

/// LEB128 as HdrHistogram writes it: at most 9 bytes, the ninth whole.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..8 {
        let x = *b.get(i)?;
        value |= u64::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    Some((value | u64::from(*b.get(8)?) << 56, 9))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::{self, new_latency, record};
    use hdrhistogram::serialization::{Serializer as _, V2Serializer};

    fn spread(seed: u64, n: usize) -> Latency {
        let mut h = new_latency();
        let mut x = seed | 1;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            record(&mut h, x % (1 << (x % 33)));
        }
        h
    }

    fn plain(h: &Latency) -> String {
        let mut buf = Vec::new();
        V2Serializer::new().serialize(h, &mut buf).unwrap();
        B64.encode(buf)
    }

    /// Both wire forms read into exactly the histogram the crate decodes.
    #[test]
    fn reads_both_forms_exactly_as_the_crate_decodes_them() {
        let mut scratch = Scratch::default();
        for (seed, n) in [(1, 0), (2, 1), (3, 700), (4, 50_000)] {
            let h = spread(seed, n);
            for text in [histogram::encode(&h), plain(&h)] {
                let s = read(&text, &mut scratch).unwrap();
                assert_eq!(s.len(), h.len());
                let mut sum = new_latency();
                s.add_to(&mut sum);
                assert_eq!(sum, histogram::decode(&text).unwrap(), "seed {seed}");
                assert_eq!(histogram::encode(&sum), histogram::encode(&h));
            }
        }
        // Summed densely, the same.
        let (a, b) = (spread(7, 5000), spread(8, 300));
        let mut dense = Dense::default();
        dense.add(&read(&plain(&a), &mut scratch).unwrap());
        dense.add(&read(&histogram::encode(&b), &mut scratch).unwrap());
        let mut want = a.clone();
        want.add(&b).unwrap();
        assert_eq!(
            histogram::encode(&dense.to_latency()),
            histogram::encode(&want)
        );
        // Added into a sum that already holds other values.
        let (a, b) = (spread(5, 3000), spread(6, 3000));
        let mut sum = a.clone();
        read(&plain(&b), &mut scratch).unwrap().add_to(&mut sum);
        let mut want = a;
        want.add(&b).unwrap();
        assert_eq!(histogram::encode(&sum), histogram::encode(&want));
    }

    #[test]
    fn foreign_layouts_and_garbage_are_refused() {
        let mut scratch = Scratch::default();
        let mut five: Latency = Histogram::new_with_bounds(1, 3_600_000_000, 5).unwrap();
        five.record(7).unwrap();
        let e = read(&plain(&five), &mut scratch).unwrap_err();
        assert!(e.contains("is not Barrage's"), "{e}");
        assert!(read("!!!", &mut scratch).unwrap_err().contains("base64"));
        assert!(read("AAAA", &mut scratch).is_err());
        // A valid header whose counts run past the range.
        let mut bytes = B64.decode(plain(&spread(9, 10))).unwrap();
        let huge: [u8; 9] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        bytes.truncate(HEADER);
        bytes.extend_from_slice(&huge); // a long run of zeros
        bytes.push(2); // then a count of 1
        let len = (bytes.len() - HEADER) as u32;
        bytes[4..8].copy_from_slice(&len.to_be_bytes());
        let e = read(&B64.encode(&bytes), &mut scratch).unwrap_err();
        assert!(e.contains("beyond its range"), "{e}");
        // Cut short.
        bytes.truncate(HEADER + 3);
        assert!(read(&B64.encode(&bytes), &mut scratch).is_err());
    }
}
