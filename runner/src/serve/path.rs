//! Route path patterns: `/users/{id}/orders` (a `{name}` segment matches one
//! non-empty path segment), `/static/*` (a trailing `*` makes the pattern a
//! prefix match) or an exact path. Compiled at load time; matching walks the
//! request path in place and never allocates.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    /// The pattern as written (for logs, `hits()` and serialization).
    text: String,
    segments: Vec<Segment>,
    /// The last segment is a literal prefix of the rest of the path.
    prefix: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

impl PathPattern {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `path` is the request path without the query string.
    pub fn matches(&self, path: &str) -> bool {
        let Some(mut rest) = path.strip_prefix('/') else {
            return false;
        };
        let n = self.segments.len();
        for (i, seg) in self.segments.iter().enumerate() {
            let last = i + 1 == n;
            if last && self.prefix {
                // Parsing guarantees the prefix segment is a literal.
                return matches!(seg, Segment::Literal(lit) if rest.starts_with(lit.as_str()));
            }
            let (head, tail) = match rest.split_once('/') {
                Some((h, t)) => (h, Some(t)),
                None => (rest, None),
            };
            let ok = match seg {
                Segment::Literal(lit) => head == lit,
                Segment::Param => !head.is_empty(),
            };
            if !ok {
                return false;
            }
            match tail {
                Some(t) if !last => rest = t,
                Some(_) => return false, // the path is longer than the pattern
                None => return last,     // the path is shorter unless this was the end
            }
        }
        false
    }
}

impl FromStr for PathPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some(body) = s.strip_prefix('/') else {
            return Err(format!("path {s:?} must start with '/'"));
        };
        let (body, prefix) = match body.strip_suffix('*') {
            Some(b) => (b, true),
            None => (body, false),
        };
        if body.contains('*') {
            return Err(format!("path {s:?}: '*' is only allowed at the end"));
        }
        let parts: Vec<&str> = body.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let is_param = part.len() >= 2 && part.starts_with('{') && part.ends_with('}');
            if is_param {
                let name = &part[1..part.len() - 1];
                if name.is_empty() || name.contains(['{', '}']) {
                    return Err(format!("path {s:?}: bad parameter segment {part:?}"));
                }
                if prefix && i + 1 == parts.len() {
                    return Err(format!(
                        "path {s:?}: write \"/{part}/*\"; a '*' cannot be glued to a parameter"
                    ));
                }
                segments.push(Segment::Param);
            } else if part.contains(['{', '}']) {
                return Err(format!(
                    "path {s:?}: a parameter must be a whole segment, like \"/{{id}}/\""
                ));
            } else {
                segments.push(Segment::Literal((*part).to_string()));
            }
        }
        Ok(PathPattern {
            text: s.to_string(),
            segments,
            prefix,
        })
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for PathPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for PathPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathPattern {
        s.parse().unwrap()
    }

    #[test]
    fn exact_paths() {
        assert!(p("/").matches("/"));
        assert!(!p("/").matches("/x"));
        assert!(p("/slow").matches("/slow"));
        assert!(!p("/slow").matches("/slow/"));
        assert!(!p("/slow").matches("/slower"));
        assert!(!p("/slow").matches("/"));
        assert!(!p("/a/b").matches("/a"));
        assert!(!p("/a/b").matches("/a/b/c"));
        assert!(!p("/a").matches("a"));
    }

    #[test]
    fn params_match_one_non_empty_segment() {
        let pat = p("/users/{id}/orders");
        assert!(pat.matches("/users/42/orders"));
        assert!(pat.matches("/users/x-y/orders"));
        assert!(!pat.matches("/users//orders"));
        assert!(!pat.matches("/users/42/43/orders"));
        assert!(!pat.matches("/users/42/orders/1"));
        assert!(!pat.matches("/users/42"));
        assert!(p("/{a}").matches("/anything"));
        assert!(!p("/{a}").matches("/"));
    }

    #[test]
    fn trailing_star_is_a_prefix() {
        let pat = p("/schemas/*");
        assert!(pat.matches("/schemas/1"));
        assert!(pat.matches("/schemas/ids/1/versions"));
        assert!(pat.matches("/schemas/"));
        assert!(!pat.matches("/schemas"));
        assert!(!pat.matches("/schemasx/1"));
        assert!(p("/*").matches("/"));
        assert!(p("/*").matches("/a/b"));
        assert!(p("/api*").matches("/api"));
        assert!(p("/api*").matches("/apiv2/x"));
        assert!(!p("/api*").matches("/ap"));
        let pat = p("/t/{tenant}/files/*");
        assert!(pat.matches("/t/acme/files/a/b.txt"));
        assert!(!pat.matches("/t/acme/files"));
        assert!(!pat.matches("/t//files/a"));
    }

    #[test]
    fn rejects_bad_patterns() {
        let err = |s: &str| s.parse::<PathPattern>().unwrap_err();
        assert!(err("users").contains("start with '/'"));
        assert!(err("/a/*/b").contains("only allowed at the end"));
        assert!(err("/a/{}").contains("bad parameter"));
        assert!(err("/a/x{id}").contains("whole segment"));
        assert!(err("/a/{id}*").contains("glued"));
    }
}
