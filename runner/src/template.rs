//! `{{ }}` templates in paths, queries, headers and bodies.
//!
//! A template is compiled once, before the load starts, into literal and
//! variable segments; rendering only appends strings. Environment values and
//! the runner's index are resolved at compile time, so a missing env var is a
//! plan error rather than an empty header at run time.

use std::fmt::Write as _;

use percent_encoding::utf8_percent_encode;

use crate::NOT_UNRESERVED;

mod pick;
pub mod pkce;

pub use pkce::Pkce;

/// What a template may refer to, known at compile time.
pub struct Scope<'a> {
    /// Field names of the data records, if the plan has data.
    pub record_fields: Option<&'a [String]>,
    /// Names captured by earlier steps of the same journey.
    pub vars: &'a [String],
    /// The virtual user's own variables (its scenario's `onStart` vars and
    /// captures), for `user.NAME`.
    pub user: &'a [String],
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub runner_index: u32,
    pub runner_count: u32,
}

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Lit(String),
    Record(usize),
    Var(usize),
    User(usize),
    Uuid,
    Seq,
    RandInt(i64, i64),
    RandString(usize),
    Email,
    PkceVerifier,
    PkceChallenge,
    /// Unix time in seconds (`now`) or milliseconds (`nowMs`).
    Now,
    NowMs,
    /// A uniformly random item of a literal list (`pick(...)`).
    Pick(Vec<String>),
    /// A form value's variable part: rendered, then percent-encoded.
    FormEncoded(Box<Segment>),
}

/// The longest `randString(N)`.
const RAND_STRING_MAX: usize = 4096;

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    segments: Vec<Segment>,
}

/// Per-render inputs: the iteration's record, the journey's captured values,
/// a sequence number unique across all runners, and the iteration's PKCE pair
/// (made on first use, the same for every step of the iteration).
pub struct RenderCtx<'a> {
    pub record: Option<&'a [String]>,
    pub vars: &'a [Option<String>],
    /// The virtual user's variables, by the slots of `Scope::user`.
    pub user: &'a [Option<String>],
    pub seq: u64,
    pub pkce: &'a Pkce,
}

const KNOWN: &str = "record.FIELD, env.NAME, vars.NAME, user.NAME, uuid, seq, randInt(LO, HI), \
                     randString(N), email, pkce.verifier, pkce.challenge, runner.index, runner.count, \
                     now, nowMs, pick(\"a\", \"b\", 3)";

impl Template {
    /// Compiles `src`; the error gives the 1-based column of the bad `{{ }}`.
    pub fn compile(src: &str, scope: &Scope<'_>) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut lit = String::new();
        let mut rest = src;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            lit.push_str(&rest[..open]);
            let col = offset + open + 1;
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("column {col}: '{{{{' is never closed with '}}}}'"))?;
            let expr = after[..close].trim();
            match compile_expr(expr, scope).map_err(|e| format!("column {col}: {e}"))? {
                Segment::Lit(s) => lit.push_str(&s),
                seg => {
                    if !lit.is_empty() {
                        segments.push(Segment::Lit(std::mem::take(&mut lit)));
                    }
                    segments.push(seg);
                }
            }
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        lit.push_str(rest);
        if !lit.is_empty() || segments.is_empty() {
            segments.push(Segment::Lit(lit));
        }
        Ok(Template { segments })
    }

    /// A template with no variables renders to the same string every time,
    /// so callers can build it once.
    pub fn as_static(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [Segment::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub fn uses_record(&self) -> bool {
        self.segments.iter().any(Segment::uses_record)
    }

    /// Whether rendering uses the iteration's PKCE pair.
    pub fn uses_pkce(&self) -> bool {
        self.segments.iter().any(Segment::uses_pkce)
    }

    /// An `application/x-www-form-urlencoded` body from `(key, value)` pairs:
    /// keys and the literal parts of values are encoded now, the variable
    /// parts of values as they are rendered.
    pub fn form(pairs: Vec<(String, Template)>) -> Template {
        let mut segments = Vec::new();
        let mut lit = String::new();
        for (i, (k, v)) in pairs.into_iter().enumerate() {
            if i > 0 {
                lit.push('&');
            }
            lit.extend(utf8_percent_encode(&k, NOT_UNRESERVED));
            lit.push('=');
            for seg in v.segments {
                match seg {
                    Segment::Lit(s) => lit.extend(utf8_percent_encode(&s, NOT_UNRESERVED)),
                    seg => {
                        if !lit.is_empty() {
                            segments.push(Segment::Lit(std::mem::take(&mut lit)));
                        }
                        segments.push(Segment::FormEncoded(Box::new(seg)));
                    }
                }
            }
        }
        if !lit.is_empty() || segments.is_empty() {
            segments.push(Segment::Lit(lit));
        }
        Template { segments }
    }

    pub fn render_into(&self, ctx: &RenderCtx<'_>, out: &mut String) {
        for seg in &self.segments {
            seg.render_into(ctx, out);
        }
    }

    pub fn render(&self, ctx: &RenderCtx<'_>) -> String {
        let mut s = String::new();
        self.render_into(ctx, &mut s);
        s
    }
}

impl Segment {
    fn uses_record(&self) -> bool {
        match self {
            Segment::Record(_) => true,
            Segment::FormEncoded(inner) => inner.uses_record(),
            _ => false,
        }
    }

    fn uses_pkce(&self) -> bool {
        match self {
            Segment::PkceVerifier | Segment::PkceChallenge => true,
            Segment::FormEncoded(inner) => inner.uses_pkce(),
            _ => false,
        }
    }

    fn render_into(&self, ctx: &RenderCtx<'_>, out: &mut String) {
        match self {
            Segment::Lit(s) => out.push_str(s),
            Segment::Record(i) => {
                if let Some(v) = ctx.record.and_then(|r| r.get(*i)) {
                    out.push_str(v)
                }
            }
            Segment::Var(i) => {
                if let Some(Some(v)) = ctx.vars.get(*i) {
                    out.push_str(v)
                }
            }
            Segment::User(i) => {
                if let Some(Some(v)) = ctx.user.get(*i) {
                    out.push_str(v)
                }
            }
            Segment::Uuid => push_uuid_v4(out),
            Segment::Seq => {
                let _ = write!(out, "{}", ctx.seq);
            }
            Segment::RandInt(lo, hi) => {
                let _ = write!(out, "{}", fastrand::i64(*lo..=*hi));
            }
            Segment::RandString(n) => {
                out.extend(std::iter::repeat_with(fastrand::alphanumeric).take(*n));
            }
            Segment::Email => {
                let _ = write!(out, "u-{:016x}@example.test", fastrand::u64(..));
            }
            Segment::PkceVerifier => out.push_str(&ctx.pkce.get().verifier),
            Segment::PkceChallenge => out.push_str(&ctx.pkce.get().challenge),
            Segment::Now => {
                let _ = write!(out, "{}", unix_since().as_secs());
            }
            Segment::NowMs => {
                let _ = write!(out, "{}", unix_since().as_millis());
            }
            Segment::Pick(items) => out.push_str(&items[fastrand::usize(..items.len())]),
            Segment::FormEncoded(inner) => {
                let start = out.len();
                inner.render_into(ctx, out);
                // Most rendered values need no escaping: copy only when one
                // does. The encoder's first chunk is then the value itself
                // (same start, same length); else a prefix or an escape.
                let value = &out[start..];
                let first = utf8_percent_encode(value, NOT_UNRESERVED).next();
                if first.is_some_and(|chunk| !std::ptr::eq(chunk, value)) {
                    let raw = out.split_off(start);
                    out.extend(utf8_percent_encode(&raw, NOT_UNRESERVED));
                }
            }
        }
    }
}

fn compile_expr(expr: &str, scope: &Scope<'_>) -> Result<Segment, String> {
    if let Some(field) = expr.strip_prefix("record.") {
        let fields = scope
            .record_fields
            .ok_or_else(|| format!("{{{{ {expr} }}}} needs records, but the plan has no `data`"))?;
        return fields
            .iter()
            .position(|f| f == field)
            .map(Segment::Record)
            .ok_or_else(|| {
                format!(
                    "the data records have no field {field:?} (fields: {})",
                    fields.join(", ")
                )
            });
    }
    if let Some(name) = expr.strip_prefix("env.") {
        return (scope.env)(name)
            .map(Segment::Lit)
            .ok_or_else(|| format!("environment variable {name} is not set"));
    }
    if let Some(name) = expr.strip_prefix("vars.") {
        return scope
            .vars
            .iter()
            .position(|v| v == name)
            .map(Segment::Var)
            .ok_or_else(|| {
                format!(
                    "no earlier step captures {name:?} (captured so far: {})",
                    or_none(scope.vars)
                )
            });
    }
    if let Some(name) = expr.strip_prefix("user.") {
        return scope
            .user
            .iter()
            .position(|v| v == name)
            .map(Segment::User)
            .ok_or_else(|| {
                format!(
                    "the user's onStart sets no {name:?} (its vars and captures: {})",
                    or_none(scope.user)
                )
            });
    }
    match expr {
        "uuid" => return Ok(Segment::Uuid),
        "seq" => return Ok(Segment::Seq),
        "email" => return Ok(Segment::Email),
        "pkce.verifier" => return Ok(Segment::PkceVerifier),
        "pkce.challenge" => return Ok(Segment::PkceChallenge),
        "now" => return Ok(Segment::Now),
        "nowMs" => return Ok(Segment::NowMs),
        "runner.index" => return Ok(Segment::Lit(scope.runner_index.to_string())),
        "runner.count" => return Ok(Segment::Lit(scope.runner_count.to_string())),
        _ => {}
    }
    if let Some(args) = expr
        .strip_prefix("randInt(")
        .and_then(|a| a.strip_suffix(')'))
    {
        let (lo, hi) = args
            .split_once(',')
            .ok_or_else(|| "randInt takes two integers: randInt(LO, HI)".to_string())?;
        let parse = |s: &str| {
            s.trim()
                .parse::<i64>()
                .map_err(|_| format!("randInt: {:?} is not an integer", s.trim()))
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi {
            return Err(format!("randInt({lo}, {hi}): LO is greater than HI"));
        }
        return Ok(Segment::RandInt(lo, hi));
    }
    if let Some(arg) = expr
        .strip_prefix("randString(")
        .and_then(|a| a.strip_suffix(')'))
    {
        let n = arg
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("randString: {:?} is not a length", arg.trim()))?;
        if !(1..=RAND_STRING_MAX).contains(&n) {
            return Err(format!(
                "randString({n}): the length must be 1 to {RAND_STRING_MAX}"
            ));
        }
        return Ok(Segment::RandString(n));
    }
    if let Some(args) = expr.strip_prefix("pick(").and_then(|a| a.strip_suffix(')')) {
        let mut items = pick::parse(args)?;
        // One item is no choice: a literal.
        return Ok(if items.len() == 1 {
            Segment::Lit(items.remove(0))
        } else {
            Segment::Pick(items)
        });
    }
    Err(format!(
        "unknown template variable {expr:?} (known: {KNOWN})"
    ))
}

/// The time since the Unix epoch (zero on a clock set before it).
fn unix_since() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

fn or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// A random (version 4) UUID in its text form, from the fast thread-local RNG:
/// good enough for unique test data, not for secrets.
fn push_uuid_v4(out: &mut String) {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{byte:02x}");
    }
}

#[cfg(test)]
mod tests;
