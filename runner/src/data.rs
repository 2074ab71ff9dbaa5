//! Test data records (JSON array, JSON lines or CSV) and how iterations pick
//! them: cycle, unique, random or mixed.
//!
//! Records are stored as rows of strings in field order, because templates
//! only ever paste them into text; field names are resolved to indexes when
//! templates compile.

use std::{
    ops::Range,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use crate::{
    error::{Error, Result},
    plan::{OnExhausted, Select},
    snapshot::Bitmap,
};

#[derive(Debug, Default, PartialEq)]
pub struct Records {
    pub fields: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Records {
    /// Reads `path`, choosing the format by extension. `field` names the plan
    /// field for error messages (e.g. `data.file`).
    pub fn load(path: &Path, field: &str) -> Result<Records> {
        // Bounded: every runner holds the records in memory, and a link to
        // /dev/zero must not be read until memory runs out.
        let text = crate::input::read_text(path, crate::input::MAX_DATA_BYTES, field).map_err(
            |e| match e {
                Error::Read { source, .. } => {
                    Error::invalid(field, format!("cannot read {}: {source}", path.display()))
                }
                other => other,
            },
        )?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let recs = match ext.as_str() {
            "json" => Records::from_json_array(&text),
            "jsonl" | "ndjson" => Records::from_json_lines(&text),
            "csv" => Records::from_csv(&text),
            other => Err(format!(
                "unknown data format {other:?}: use .json (an array of objects), .jsonl or .csv"
            )),
        }
        .map_err(|e| Error::invalid(field, format!("{}: {e}", path.display())))?;
        if recs.rows.is_empty() {
            return Err(Error::invalid(
                field,
                format!("{} holds no records", path.display()),
            ));
        }
        Ok(recs)
    }

    pub fn from_json_array(text: &str) -> Result<Records, String> {
        let v: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("not a JSON array of objects: {e}"))?;
        let mut b = Builder::default();
        for (i, item) in v.into_iter().enumerate() {
            b.push_json(item).map_err(|e| format!("item {i}: {e}"))?;
        }
        Ok(b.finish())
    }

    pub fn from_json_lines(text: &str) -> Result<Records, String> {
        let mut b = Builder::default();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let item = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            b.push_json(item)
                .map_err(|e| format!("line {}: {e}", i + 1))?;
        }
        Ok(b.finish())
    }

    pub fn from_csv(text: &str) -> Result<Records, String> {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let fields: Vec<String> = r
            .headers()
            .map_err(|e| format!("CSV header: {e}"))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| format!("CSV record {}: {e}", i + 1))?;
            rows.push(rec.iter().map(str::to_string).collect());
        }
        Ok(Records { fields, rows })
    }
}

/// Collects JSON objects into rows; fields appear in first-seen order and a
/// record missing a field gets an empty string for it.
#[derive(Default)]
struct Builder {
    fields: Vec<String>,
    objs: Vec<serde_json::Map<String, serde_json::Value>>,
}

impl Builder {
    fn push_json(&mut self, v: serde_json::Value) -> Result<(), String> {
        let serde_json::Value::Object(o) = v else {
            return Err("expected a JSON object".into());
        };
        for k in o.keys() {
            if !self.fields.contains(k) {
                self.fields.push(k.clone());
            }
        }
        self.objs.push(o);
        Ok(())
    }

    fn finish(self) -> Records {
        let rows = self
            .objs
            .iter()
            .map(|o| {
                self.fields
                    .iter()
                    .map(|f| match o.get(f) {
                        None | Some(serde_json::Value::Null) => String::new(),
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    })
                    .collect()
            })
            .collect();
        Records {
            fields: self.fields,
            rows,
        }
    }
}

/// The rows runner `index` of `count` may use. `unique` and `mixed` hand out
/// new records, so runners get disjoint contiguous slices; `cycle` and
/// `random` share every row.
pub fn slice_for(select: Select, len: usize, index: u32, count: u32) -> Range<usize> {
    match select {
        Select::Unique | Select::Mixed => {
            let (i, n) = (index as usize, count.max(1) as usize);
            (len * i / n)..(len * (i + 1) / n)
        }
        Select::Cycle | Select::Random => 0..len,
    }
}

/// Hands out row indexes to iterations, from any number of tasks at once.
pub struct Selector {
    select: Select,
    range: Range<usize>,
    /// Cycle: the starting offset, so that runners do not march in step.
    offset: usize,
    next: AtomicU64,
    repeat: f64,
    on_exhausted: OnExhausted,
    /// One bit per row: which rows were used, for the distinct count.
    used: Vec<AtomicU64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Pick {
    Row(usize),
    /// `unique` with `onExhausted: stop` has used every row.
    Exhausted,
}

impl Selector {
    pub fn new(
        select: Select,
        repeat: f64,
        on_exhausted: OnExhausted,
        len: usize,
        index: u32,
        count: u32,
    ) -> Selector {
        let range = slice_for(select, len, index, count);
        let offset = if select == Select::Cycle && len > 0 {
            len * index as usize / count.max(1) as usize
        } else {
            0
        };
        Selector {
            select,
            range,
            offset,
            next: AtomicU64::new(0),
            repeat,
            on_exhausted,
            used: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn pick(&self) -> Pick {
        let len = self.range.len();
        if len == 0 {
            return Pick::Exhausted;
        }
        let row = match self.select {
            Select::Cycle => {
                let n = self.next.fetch_add(1, Ordering::Relaxed) as usize;
                self.range.start + (self.offset + n) % len
            }
            Select::Random => self.range.start + fastrand::usize(..len),
            Select::Unique => {
                let n = self.next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= len && self.on_exhausted == OnExhausted::Stop {
                    return Pick::Exhausted;
                }
                self.range.start + n % len
            }
            Select::Mixed => {
                let taken = (self.next.load(Ordering::Relaxed) as usize).min(len);
                if taken > 0 && (taken == len || fastrand::f64() < self.repeat) {
                    self.range.start + fastrand::usize(..taken)
                } else {
                    let n = self.next.fetch_add(1, Ordering::Relaxed) as usize;
                    // Another task may have taken the last new row meanwhile.
                    self.range.start + n.min(len - 1)
                }
            }
        };
        self.used[row / 64].fetch_or(1 << (row % 64), Ordering::Relaxed);
        Pick::Row(row)
    }

    /// How many different rows have been used so far.
    pub fn distinct_used(&self) -> u64 {
        self.used_bitmap().count()
    }

    /// Which rows have been used so far.
    pub fn used_bitmap(&self) -> Bitmap {
        Bitmap(
            self.used
                .iter()
                .map(|w| w.load(Ordering::Relaxed))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn json_array_jsonl_and_csv_load_alike() {
        let a = Records::from_json_array(
            r#"[{"id":1,"name":"ann"},{"id":2,"name":"bob","extra":true}]"#,
        )
        .unwrap();
        assert_eq!(a.fields, ["id", "name", "extra"]);
        assert_eq!(a.rows, vec![vec!["1", "ann", ""], vec!["2", "bob", "true"]]);
        let l = Records::from_json_lines(
            "{\"id\":1,\"name\":\"ann\"}\n\n{\"id\":2,\"name\":\"bob\"}\n",
        )
        .unwrap();
        assert_eq!(l.rows.len(), 2);
        let c = Records::from_csv("id,name\n1,ann\n2,bob\n").unwrap();
        assert_eq!(c.fields, ["id", "name"]);
        assert_eq!(c.rows[1], ["2", "bob"]);
    }

    #[test]
    fn parse_errors_say_where() {
        assert!(
            Records::from_json_array("[1]")
                .unwrap_err()
                .contains("item 0")
        );
        assert!(
            Records::from_json_lines("{}\n{oops\n")
                .unwrap_err()
                .contains("line 2")
        );
        assert!(
            Records::from_json_array("{")
                .unwrap_err()
                .contains("not a JSON array")
        );
    }

    #[test]
    fn unique_slices_are_disjoint_and_cover_everything() {
        let mut all = HashSet::new();
        for i in 0..3 {
            let s = Selector::new(Select::Unique, 0.0, OnExhausted::Stop, 10, i, 3);
            while let Pick::Row(r) = s.pick() {
                assert!(all.insert(r), "row {r} handed out twice");
            }
        }
        assert_eq!(all.len(), 10);
    }

    #[test]
    fn unique_wraps_when_told() {
        let s = Selector::new(Select::Unique, 0.0, OnExhausted::Wrap, 3, 0, 1);
        let picks: Vec<_> = (0..5).map(|_| s.pick()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1].map(Pick::Row));
        assert_eq!(s.distinct_used(), 3);
    }

    #[test]
    fn cycle_uses_every_row_in_turn() {
        let s = Selector::new(Select::Cycle, 0.0, OnExhausted::Stop, 4, 1, 2);
        let picks: Vec<_> = (0..8).map(|_| s.pick()).collect();
        assert_eq!(picks, [2, 3, 0, 1, 2, 3, 0, 1].map(Pick::Row));
    }

    #[test]
    fn mixed_reuses_about_the_repeat_fraction() {
        let s = Selector::new(Select::Mixed, 0.8, OnExhausted::Stop, 100_000, 0, 1);
        for _ in 0..10_000 {
            s.pick();
        }
        let new = s.distinct_used() as f64 / 10_000.0;
        assert!((0.17..0.23).contains(&new), "new fraction {new}");
    }

    #[test]
    fn random_stays_in_range() {
        let s = Selector::new(Select::Random, 0.0, OnExhausted::Stop, 5, 0, 1);
        for _ in 0..100 {
            assert!(matches!(s.pick(), Pick::Row(r) if r < 5));
        }
    }
}
