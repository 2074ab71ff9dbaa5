//! Reading files a user (or anyone who can write a manifest) hands us: plans,
//! manifests, data files, `serve --config` routes. Each is read through a
//! bounded reader (a link to /dev/zero or a 4 GB file must not be read into
//! memory), must be UTF-8, and YAML goes through [`yaml_value`], which
//! refuses parser bombs before they cost time or memory.
//!
//! Why a pre-scan and a counting builder rather than another parser:
//! serde_yaml_ng (libyaml) already limits recursion to 128 levels and alias
//! jumps to 100 per event, but (1) libyaml parses the whole document into
//! events first, and its simple-key bookkeeping is quadratic in flow nesting
//! (50 000 nested `{a: ` took 15 s), and (2) 100 jumps per event still let a
//! 100 KB alias bomb expand to ~1 GB of values. So flow nesting is counted
//! first on libyaml's own token stream, which can stop at the first token
//! too deep (a scan of the raw text cannot tell a bracket in a quoted or
//! block scalar from a real one, and under-counting would let the bomb
//! through); alias expansion is cut off by counting the nodes while the
//! value is built, with a budget a document without aliases of the same
//! size never needs.

use std::{cell::Cell, fmt, io::Read, path::Path};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_yaml_ng::{Mapping, Value};

use crate::error::{Error, Result};

/// Plans and manifests: a LoadTest must fit in one Kubernetes object
/// (etcd's limit is 1.5 MiB), and real plans are a few kilobytes.
pub const MAX_PLAN_BYTES: u64 = 1 << 20;
/// Data files (records): every runner holds all of them in memory.
pub const MAX_DATA_BYTES: u64 = 64 << 20;
/// Flow collections (`[ ]`, `{ }`) nested deeper than this are refused
/// before libyaml sees them. Plans nest a handful of levels.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Reads `path` as UTF-8 text of at most `limit` bytes. Errors that are about
/// the content (too large, not a regular file, not UTF-8) are
/// `Error::Invalid` naming `field` (exit status 2); a file that cannot be
/// opened at all is `Error::Read`.
pub fn read_text(path: &Path, limit: u64, field: &str) -> Result<String> {
    let bytes = read_bounded(path, limit, field)?;
    decode_utf8(bytes).map_err(|m| Error::invalid(field, format!("{} {m}", path.display())))
}

/// The bytes of `path`, at most `limit` of them. Devices and sockets are
/// refused without reading (a link to /dev/zero never ends); pipes are read
/// through the same bound.
pub fn read_bounded(path: &Path, limit: u64, field: &str) -> Result<Vec<u8>> {
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let kind = meta.file_type();
    if !(kind.is_file() || is_fifo(&kind)) {
        return Err(Error::invalid(
            field,
            format!("{} is not a regular file", path.display()),
        ));
    }
    if kind.is_file() && meta.len() > limit {
        return Err(too_large(path, limit, field));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, limit, field));
    }
    Ok(bytes)
}

fn is_fifo(kind: &std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    kind.is_fifo()
}

fn too_large(path: &Path, limit: u64, field: &str) -> Error {
    Error::invalid(
        field,
        format!(
            "{} is larger than the limit of {}",
            path.display(),
            format_bytes(limit)
        ),
    )
}

pub fn format_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// UTF-8 text, without a UTF-8 byte-order mark. UTF-16 (recognised by its
/// BOM) and invalid UTF-8 are refused with what to do about it.
pub fn decode_utf8(mut bytes: Vec<u8>) -> std::result::Result<String, String> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err("is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8".into());
    }
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        format!("is not UTF-8 text (invalid byte at offset {at}); save it as UTF-8")
    })
}

/// Parses YAML (or JSON) into a value, refusing deep flow nesting before
/// parsing and alias expansion beyond a budget while building. The error is
/// a message for the `(file)` field.
pub fn yaml_value(text: &str) -> std::result::Result<Value, String> {
    check_flow_depth(text)?;
    let budget = Budget::new(text.len());
    let de = serde_yaml_ng::Deserializer::from_str(text);
    match Counted(&budget).deserialize(de) {
        Ok(v) => Ok(v),
        Err(_) if budget.exhausted() => Err(format!(
            "YAML aliases expand to more than {} values or {} bytes of text, more than a document of this size holds: refused",
            value_budget(text.len()),
            byte_budget(text.len())
        )),
        Err(e) => Err(format!("not valid YAML: {e}")),
    }
}

/// Refuses flow collections (`[ ]`, `{ }`) nested deeper than
/// [`MAX_FLOW_DEPTH`], counted on libyaml's own tokens (so brackets inside
/// quoted or block scalars and comments are told apart exactly as the parser
/// will), stopping at the first one too deep: up to there the scanner's cost
/// per token is bounded by the depth. Syntax errors are left to the parse
/// that follows, which reports them with their position.
fn check_flow_depth(text: &str) -> std::result::Result<(), String> {
    use std::mem::MaybeUninit;
    // SAFETY: the parser is initialised before use and deleted once; it
    // reads `text`, which outlives it; each token is deleted after its
    // type and mark are copied out.
    unsafe {
        let mut parser = MaybeUninit::<unsafe_libyaml::yaml_parser_t>::uninit();
        if !unsafe_libyaml::yaml_parser_initialize(parser.as_mut_ptr()).ok {
            return Err("cannot start the YAML parser".into());
        }
        let parser = parser.as_mut_ptr();
        unsafe_libyaml::yaml_parser_set_input_string(parser, text.as_ptr(), text.len() as u64);
        let mut depth = 0usize;
        let result = loop {
            let mut token = MaybeUninit::<unsafe_libyaml::yaml_token_t>::uninit();
            if !unsafe_libyaml::yaml_parser_scan(parser, token.as_mut_ptr()).ok {
                break Ok(());
            }
            let token = token.as_mut_ptr();
            let (kind, line) = ((*token).type_, (*token).start_mark.line + 1);
            unsafe_libyaml::yaml_token_delete(token);
            match kind {
                unsafe_libyaml::YAML_STREAM_END_TOKEN | unsafe_libyaml::YAML_NO_TOKEN => {
                    break Ok(());
                }
                unsafe_libyaml::YAML_FLOW_SEQUENCE_START_TOKEN
                | unsafe_libyaml::YAML_FLOW_MAPPING_START_TOKEN => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        break Err(format!(
                            "line {line}: [ ] and {{ }} nested more than {MAX_FLOW_DEPTH} levels deep: refused"
                        ));
                    }
                }
                unsafe_libyaml::YAML_FLOW_SEQUENCE_END_TOKEN
                | unsafe_libyaml::YAML_FLOW_MAPPING_END_TOKEN => depth = depth.saturating_sub(1),
                _ => {}
            }
        };
        unsafe_libyaml::yaml_parser_delete(parser);
        result
    }
}

/// Values left to build; 0 = exhausted (the error is then the budget's).
/// Values and string bytes that building the document may still make. Both
/// count: a few aliases of one long anchored string are few values but many
/// bytes (a 500 KB string aliased 100,000 times would be 50 GB).
struct Budget {
    values: Cell<usize>,
    bytes: Cell<usize>,
}

impl Budget {
    fn new(text_len: usize) -> Budget {
        Budget {
            values: Cell::new(value_budget(text_len)),
            bytes: Cell::new(byte_budget(text_len)),
        }
    }

    fn exhausted(&self) -> bool {
        self.values.get() == 0 || self.bytes.get() == 0
    }

    fn take<E: de::Error>(&self) -> std::result::Result<(), E> {
        match self.values.get() {
            0 => Err(E::custom("alias expansion budget exhausted")),
            n => {
                self.values.set(n - 1);
                Ok(())
            }
        }
    }

    /// A string of `len` bytes (a value, and its bytes).
    fn take_str<E: de::Error>(&self, len: usize) -> std::result::Result<(), E> {
        self.take()?;
        match self.bytes.get().checked_sub(len) {
            None => {
                self.bytes.set(0);
                Err(E::custom("alias expansion budget exhausted"))
            }
            Some(left) => {
                self.bytes.set(left);
                Ok(())
            }
        }
    }
}

/// A document without aliases has at most about one node per byte (`a:` is
/// two nodes in two bytes); twice that, plus room for a small plan's shared
/// anchors, is what aliases may add.
fn value_budget(text_len: usize) -> usize {
    2 * text_len + 4096
}

/// Its strings hold fewer bytes than the text; twice the text plus 64 KiB
/// leaves room for ordinary shared anchors.
fn byte_budget(text_len: usize) -> usize {
    2 * text_len + 64 * 1024
}

/// Builds a `serde_yaml_ng::Value` as its own `Deserialize` does, counting
/// every value against the budget (aliases are replayed by the
/// deserializer, so their expansion is counted too).
#[derive(Clone, Copy)]
struct Counted<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Counted<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Counted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Value, E> {
        self.0.take()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Value, E> {
        self.0.take()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Value, E> {
        self.0.take()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        self.0.take()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Value, E> {
        self.0.take_str(v.len())?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Value, E> {
        self.0.take_str(v.len())?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Value, E> {
        self.0.take()?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        self.0.take()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Sequence(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        self.0.take()?;
        let mut out = Mapping::new();
        while let Some(k) = map.next_key_seed(self)? {
            let v = map.next_value_seed(self)?;
            if out.contains_key(&k) {
                let key = serde_yaml_ng::to_string(&k).unwrap_or_default();
                return Err(de::Error::custom(format!(
                    "duplicate entry with key {:?}",
                    key.trim_end()
                )));
            }
            out.insert(k, v);
        }
        Ok(Value::Mapping(out))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> std::result::Result<Value, A::Error> {
        Err(de::Error::custom(
            "YAML tags such as `!name` are not supported",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Refused, and fast: parser bombs cost well under a second.
    /// Refused, and before the work the text asks for: unguarded, these
    /// inputs overflow the stack or expand to gigabytes (minutes of work,
    /// or out of memory), so a bound of seconds still catches a missing
    /// guard while a busy machine running a debug build stays within it
    /// (1 s failed under load).
    fn refused_fast(text: &str, needle: &str) {
        let t = Instant::now();
        let e = yaml_value(text).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(e.contains(needle), "{e}");
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        refused_fast(&"[".repeat(200_000), "nested more than 64");
        refused_fast(&"{a: ".repeat(50_000), "nested more than 64");
        // Brackets inside quoted scalars and comments do not count.
        let quoted = format!(
            "a: '{0}'\nb: \"{0}\"\n# {0}\nc: [[1], {{d: [2]}}]\n",
            "[".repeat(500)
        );
        let v = yaml_value(&quoted).unwrap();
        assert_eq!(v["a"].as_str().unwrap().len(), 500);
        // 64 levels are fine.
        let ok = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        yaml_value(&ok).unwrap();
        // Brackets in block scalars are text; quotes there do not hide the
        // flow nesting that follows, nor do closers inside quoted scalars.
        let block = format!("a: |\n  {0}\n  \"\nb: x\n", "[".repeat(500));
        assert_eq!(yaml_value(&block).unwrap()["b"].as_str(), Some("x"));
        let hidden = format!("a: |\n  \"\nb: {}\nc: \"\n", "[".repeat(10_000));
        refused_fast(&hidden, "nested more than 64");
        let closers = format!("a: {}\n", "[ \"]\", ".repeat(20_000));
        refused_fast(&closers, "nested more than 64");
    }

    #[test]
    fn alias_bombs_are_refused_and_ordinary_anchors_work() {
        // Each level doubles nine times: 9^9 strings from ~300 bytes.
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for (p, n) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            bomb += &format!("{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n");
        }
        refused_fast(&bomb, "aliases expand");
        let v = yaml_value("h: &h {k: v}\na: *h\nb: *h\n").unwrap();
        assert_eq!(v["b"]["k"].as_str(), Some("v"));
    }

    /// Few values but many bytes: one long anchored string, aliased over and
    /// over, within the file size limit (each alias would be its own copy).
    #[test]
    fn aliases_of_a_long_string_are_refused() {
        let mut bomb = format!("s: &s \"{}\"\nl: [", "x".repeat(400_000));
        bomb += &"*s, ".repeat(100_000);
        bomb += "]\n";
        assert!((bomb.len() as u64) < MAX_PLAN_BYTES, "{}", bomb.len());
        refused_fast(&bomb, "bytes of text");
        // A long string used a few times is an ordinary plan.
        let few = format!("s: &s \"{}\"\na: *s\nb: *s\n", "x".repeat(20_000));
        assert_eq!(
            yaml_value(&few).unwrap()["b"].as_str().map(str::len),
            Some(20_000)
        );
    }

    #[test]
    fn values_match_serde_yaml_ng() {
        let text = "a: 1\nb: -2\nc: 1.5\nd: [true, null, ~, 'x']\ne: {f: !!str 12}\n200: ok\n";
        let ours = yaml_value(text).unwrap();
        let theirs: Value = serde_yaml_ng::from_str(text).unwrap();
        assert_eq!(ours, theirs);
        assert!(yaml_value("a: 1\na: 2").unwrap_err().contains("duplicate"));
        assert!(yaml_value("a: !x 1").unwrap_err().contains("tags"));
    }

    #[test]
    fn utf16_and_invalid_utf8_are_named() {
        let e = decode_utf8(vec![0xFF, 0xFE, b'a', 0]).unwrap_err();
        assert!(e.contains("UTF-16") && e.contains("UTF-8"), "{e}");
        let e = decode_utf8(vec![b'a', 0xC3, 0x28]).unwrap_err();
        assert!(e.contains("offset 1"), "{e}");
        assert_eq!(decode_utf8(b"\xEF\xBB\xBFa: 1".to_vec()).unwrap(), "a: 1");
    }

    #[test]
    fn reads_are_bounded_and_devices_refused() {
        let t = Instant::now();
        let e = read_text(Path::new("/dev/zero"), MAX_DATA_BYTES, "data.file").unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(
            matches!(&e, Error::Invalid { field, .. } if field == "data.file"),
            "{e}"
        );
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let dir = std::env::temp_dir().join(format!("barrage-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.yaml");
        std::fs::write(&big, vec![b'a'; 2049]).unwrap();
        let e = read_text(&big, 2048, "(file)").unwrap_err().to_string();
        assert!(e.contains("larger than the limit of 2 KiB"), "{e}");
        std::fs::write(&big, vec![b'a'; 2048]).unwrap();
        assert_eq!(read_text(&big, 2048, "(file)").unwrap().len(), 2048);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
