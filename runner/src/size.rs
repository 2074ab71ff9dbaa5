//! Human byte sizes as users write them in plans ("512KiB", "4MiB", "1048576").
//!
//! A newtype, like `HumanDuration`, so that serde, the JSON schema (the CRD
//! embeds plan types) and error messages all agree on one string form.

use std::{fmt, str::FromStr};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanSize(pub u64);

const UNITS: [(&str, u64); 7] = [
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

/// Parses `<integer>[unit]`; units: B, KB, MB, GB (powers of 1000) and KiB,
/// MiB, GiB (powers of 1024); no unit means bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(format!(
            "bad size {s:?}: expected a whole number of bytes, or one with a unit (e.g. 512KiB, 4MiB)"
        ));
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| format!("bad size {s:?}: too large"))?;
    let unit = t[digits..].trim_start();
    let per = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(unit))
            .map(|(_, per)| *per)
            .ok_or_else(|| {
                format!(
                    "bad size {s:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
                )
            })?
    };
    n.checked_mul(per)
        .ok_or_else(|| format!("bad size {s:?}: too large"))
}

/// The largest binary unit that divides `n` exactly: 1048576 is "1MiB".
pub fn format_size(n: u64) -> String {
    for (u, per) in &UNITS[..3] {
        if n >= *per && n.is_multiple_of(*per) {
            return format!("{}{u}", n / per);
        }
    }
    format!("{n}B")
}

impl FromStr for HumanSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_size(s).map(HumanSize)
    }
}

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_size(self.0))
    }
}

impl Serialize for HumanSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(self.0))
    }
}

/// A bare number of bytes (`maxBody: 1048576`) or a string with a unit.
impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HumanSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 512KiB, 4MiB or a number of bytes")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<HumanSize, E> {
                Ok(HumanSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<HumanSize, E> {
                u64::try_from(v)
                    .map(HumanSize)
                    .map_err(|_| E::custom(format!("{v} is not a size (it is below 0)")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// What `parse_size` accepts, as a regular expression (for tools that check
/// plans; the CRD schema takes an int or a string and leaves this to us).
pub const SIZE_PATTERN: &str = r"^\s*[0-9]+\s*([KMGkmg][Ii]?[Bb]|[Bb])?\s*$";

impl JsonSchema for HumanSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Kubernetes' int-or-string form: a bare number of bytes or a string
        // with a unit (checked by the parser, which names the field).
        // The field's own doc comment describes it.
        schemars::json_schema!({
            "x-kubernetes-int-or-string": true
        })
    }
    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_number_of_bytes_or_a_string_with_a_unit() {
        let read = |y: &str| serde_yaml_ng::from_str::<HumanSize>(y).map_err(|e| e.to_string());
        assert_eq!(read("1048576"), Ok(HumanSize(1 << 20)));
        assert_eq!(read("'4MiB'"), Ok(HumanSize(4 << 20)));
        assert_eq!(read("512KiB"), Ok(HumanSize(512 << 10)));
        assert!(read("-1").unwrap_err().contains("below 0"));
        assert!(read("1.5").is_err());
        assert!(read("4Mb/s").is_err());
        let json = |j: &str| serde_json::from_str::<HumanSize>(j).map_err(|e| e.to_string());
        assert_eq!(json("2048"), Ok(HumanSize(2048)));
    }

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size(" 4 MiB ").unwrap(), 4 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("2kb").unwrap(), 2000);
        assert_eq!(parse_size("10B").unwrap(), 10);
    }

    #[test]
    fn rejects_what_is_not_a_size() {
        assert!(parse_size("").unwrap_err().contains("whole number"));
        assert!(parse_size("1.5MiB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("4Mb/s").unwrap_err().contains("unknown unit"));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(
            parse_size("99999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_size("99999999999GiB")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn the_pattern_and_the_parser_agree() {
        let re = regex::Regex::new(SIZE_PATTERN).unwrap();
        for s in [
            "1", "512KiB", " 4 MiB ", "2kb", "10B", "", "1.5MiB", "MiB", "-1", "4Mb/s", "1TiB",
        ] {
            assert_eq!(re.is_match(s), parse_size(s).is_ok(), "{s:?}");
        }
        for n in [1, 1000, 1 << 10, 1 << 20, 3 << 30, 1536] {
            assert_eq!(parse_size(&format_size(n)).unwrap(), n);
        }
    }
}
