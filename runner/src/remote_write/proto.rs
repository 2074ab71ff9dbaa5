//! The remote-write 1.0 messages (`prometheus.WriteRequest` of Prometheus's
//! `prompb/remote.proto` and `types.proto`), declared by hand with prost's
//! derive: no protoc, no build script. Only what a sender fills in; field
//! numbers are the wire contract and follow the upstream files.

/// A write request: what one push sends.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    // 2 is reserved upstream; 3 (metadata) is not sent.
}

/// One series: its labels (sorted by name, `__name__` first) and its
/// samples or native histograms.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    // 3: exemplars, not sent.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Unix milliseconds.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// A native (sparse, exponential) histogram with integer counts.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// `oneof count { uint64 count_int = 1; double count_float = 2; }`:
    /// counts here are integers.
    #[prost(uint64, tag = "1")]
    pub count_int: u64,
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Bucket boundaries are 2^(k * 2^-schema).
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    /// `oneof zero_count { uint64 zero_count_int = 6; ... }`.
    #[prost(uint64, tag = "6")]
    pub zero_count_int: u64,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    /// Each bucket's count as the difference from the previous bucket's.
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    /// 0 unknown, 1 yes, 2 no, 3 gauge.
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    /// Unix milliseconds.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// A run of `length` consecutive buckets, `offset` buckets after the
/// previous span's end (the first span's offset is its first index).
#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// The body of a push: the protobuf in snappy's block format (not its
/// framed format), as the protocol requires.
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    use prost::Message as _;
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy compresses any input below 4 GB")
}
