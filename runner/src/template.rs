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
mod tests {
    use super::*;

    fn scope<'a>(fields: Option<&'a [String]>, vars: &'a [String]) -> Scope<'a> {
        static ENV: fn(&str) -> Option<String> = |k| (k == "API_KEY").then(|| "secret".to_string());
        Scope {
            record_fields: fields,
            vars,
            user: &[],
            env: &ENV,
            runner_index: 2,
            runner_count: 5,
        }
    }

    fn ctx<'a>(record: Option<&'a [String]>, vars: &'a [Option<String>]) -> RenderCtx<'a> {
        static PKCE: std::sync::LazyLock<Pkce> = std::sync::LazyLock::new(Pkce::default);
        RenderCtx {
            record,
            vars,
            user: &[],
            seq: 42,
            pkce: &PKCE,
        }
    }

    #[test]
    fn literals_and_static_values_fold_into_one_segment() {
        let t = Template::compile(
            "key={{ env.API_KEY }}/r{{runner.index}}of{{ runner.count }}",
            &scope(None, &[]),
        )
        .unwrap();
        assert_eq!(t.as_static(), Some("key=secret/r2of5"));
    }

    #[test]
    fn renders_records_vars_and_generated_values() {
        let fields = vec!["id".to_string(), "name".to_string()];
        let vars = vec!["token".to_string()];
        let t = Template::compile(
            "/u/{{ record.name }}?t={{vars.token}}&n={{ seq }}&r={{ randInt(5, 5) }}",
            &scope(Some(&fields), &vars),
        )
        .unwrap();
        assert!(t.as_static().is_none());
        let rec = vec!["7".to_string(), "ann".to_string()];
        let v = vec![Some("abc".to_string())];
        assert_eq!(t.render(&ctx(Some(&rec), &v)), "/u/ann?t=abc&n=42&r=5");
    }

    #[test]
    fn uuid_is_v4_shaped_and_fresh() {
        let t = Template::compile("{{uuid}}", &scope(None, &[])).unwrap();
        let a = t.render(&ctx(None, &[]));
        let b = t.render(&ctx(None, &[]));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(a, b);
    }

    #[test]
    fn errors_name_the_column_and_the_problem() {
        let e = Template::compile("/x/{{ recrd.id }}", &scope(None, &[])).unwrap_err();
        assert!(
            e.starts_with("column 4:") && e.contains("unknown template variable \"recrd.id\""),
            "{e}"
        );
        let e = Template::compile("{{ record.id }}", &scope(None, &[])).unwrap_err();
        assert!(e.contains("no `data`"), "{e}");
        let fields = vec!["id".to_string()];
        let e = Template::compile("ab{{ record.nme }}", &scope(Some(&fields), &[])).unwrap_err();
        assert!(
            e.starts_with("column 3:") && e.contains("no field \"nme\""),
            "{e}"
        );
        let e = Template::compile("{{ env.NOPE }}", &scope(None, &[])).unwrap_err();
        assert!(e.contains("NOPE is not set"), "{e}");
        let e = Template::compile("{{ vars.token }}", &scope(None, &[])).unwrap_err();
        assert!(e.contains("no earlier step captures"), "{e}");
        let e = Template::compile("a {{ uuid", &scope(None, &[])).unwrap_err();
        assert!(e.contains("never closed"), "{e}");
        let e = Template::compile("{{ randInt(9, 1) }}", &scope(None, &[])).unwrap_err();
        assert!(e.contains("greater"), "{e}");
    }

    #[test]
    fn rand_string_and_email_are_fresh_and_well_formed() {
        let t = Template::compile("{{ randString(12) }}|{{email}}", &scope(None, &[])).unwrap();
        let a = t.render(&ctx(None, &[]));
        let b = t.render(&ctx(None, &[]));
        assert_ne!(a, b);
        let (s, email) = a.split_once('|').unwrap();
        assert_eq!(s.len(), 12);
        assert!(s.bytes().all(|c| c.is_ascii_alphanumeric()), "{s}");
        let hex = email
            .strip_prefix("u-")
            .and_then(|e| e.strip_suffix("@example.test"))
            .unwrap();
        assert_eq!(hex.len(), 16);
        assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()), "{email}");
        for bad in ["randString(0)", "randString(x)", "randString(5000)"] {
            let e = Template::compile(&format!("{{{{ {bad} }}}}"), &scope(None, &[])).unwrap_err();
            assert!(e.contains("randString"), "{e}");
        }
    }

    #[test]
    fn pkce_pairs_up_within_an_iteration_and_differs_across_them() {
        let v = Template::compile("{{ pkce.verifier }}", &scope(None, &[])).unwrap();
        let c = Template::compile("c={{pkce.challenge}}", &scope(None, &[])).unwrap();
        assert!(v.uses_pkce() && c.uses_pkce());
        assert!(
            !Template::compile("{{uuid}}", &scope(None, &[]))
                .unwrap()
                .uses_pkce()
        );
        let render = |t: &Template, pkce: &Pkce| {
            t.render(&RenderCtx {
                record: None,
                vars: &[],
                user: &[],
                seq: 0,
                pkce,
            })
        };
        // One iteration: the challenge (step 1) matches the verifier (step 3).
        let first = Pkce::default();
        let challenge = render(&c, &first);
        let verifier = render(&v, &first);
        assert!(pkce::is_verifier(&verifier), "{verifier}");
        assert_eq!(challenge, format!("c={}", pkce::challenge(&verifier)));
        assert_eq!(render(&v, &first), verifier);
        // The next iteration has its own.
        let second = Pkce::default();
        assert_ne!(render(&v, &second), verifier);
        assert_ne!(render(&c, &second), challenge);
    }

    #[test]
    fn form_bodies_encode_keys_literals_and_rendered_values() {
        let fields = vec!["name".to_string()];
        let sc = scope(Some(&fields), &[]);
        let pairs = vec![
            (
                "grant type".to_string(),
                Template::compile("a&b={{ record.name }}!", &sc).unwrap(),
            ),
            ("static".to_string(), Template::compile("x y", &sc).unwrap()),
        ];
        let t = Template::form(pairs);
        assert!(t.uses_record());
        let rec = vec!["é ü&=+".to_string()];
        assert_eq!(
            t.render(&ctx(Some(&rec), &[])),
            "grant%20type=a%26b%3D%C3%A9%20%C3%BC%26%3D%2B%21&static=x%20y"
        );
        let rec = vec!["plain".to_string()];
        assert_eq!(
            t.render(&ctx(Some(&rec), &[])),
            "grant%20type=a%26b%3Dplain%21&static=x%20y"
        );
        let t = Template::form(vec![("k".into(), Template::compile("v", &sc).unwrap())]);
        assert_eq!(t.as_static(), Some("k=v"));
    }

    #[test]
    fn now_and_pick_render_fresh_values() {
        let before = unix_since();
        let t = Template::compile("{{ now }}|{{nowMs}}", &scope(None, &[])).unwrap();
        assert!(t.as_static().is_none());
        let out = t.render(&ctx(None, &[]));
        let after = unix_since();
        let (s, ms) = out.split_once('|').unwrap();
        let (s, ms): (u64, u128) = (s.parse().unwrap(), ms.parse().unwrap());
        assert!((before.as_secs()..=after.as_secs()).contains(&s), "{out}");
        assert!(
            (before.as_millis()..=after.as_millis()).contains(&ms),
            "{out}"
        );

        let t = Template::compile(r#"{{ pick("red", "green", 7) }}"#, &scope(None, &[])).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..300 {
            seen.insert(t.render(&ctx(None, &[])));
        }
        // Each of three items is missed by 300 uniform draws with odds of
        // (2/3)^300, about 1e-53.
        let want: std::collections::BTreeSet<String> =
            ["red", "green", "7"].map(String::from).into();
        assert_eq!(seen, want);
        let one = Template::compile(r#"a{{ pick("b") }}"#, &scope(None, &[])).unwrap();
        assert_eq!(one.as_static(), Some("ab"));
        for bad in ["pick()", "pick(a)", r#"pick("a" "b")"#] {
            let e = Template::compile(&format!("{{{{ {bad} }}}}"), &scope(None, &[])).unwrap_err();
            assert!(e.starts_with("column 1: pick"), "{bad}: {e}");
        }
        let e = Template::compile("{{ later }}", &scope(None, &[])).unwrap_err();
        assert!(e.contains("now, nowMs, pick("), "{e}");
    }

    /// A rendered value is escaped whenever any byte of it needs it: first,
    /// last, alone, or after an unreserved prefix; an empty one stays empty.
    #[test]
    fn form_values_escape_wherever_a_byte_needs_it() {
        let fields = vec!["name".to_string()];
        let sc = scope(Some(&fields), &[]);
        let pairs = vec![(
            "k".to_string(),
            Template::compile("{{ record.name }}", &sc).unwrap(),
        )];
        let t = Template::form(pairs);
        for (value, body) in [
            ("ab c", "k=ab%20c"),
            ("abc!", "k=abc%21"),
            ("!", "k=%21"),
            ("é!", "k=%C3%A9%21"),
            ("a-._~Z9", "k=a-._~Z9"),
            ("", "k="),
        ] {
            let rec = vec![value.to_string()];
            assert_eq!(t.render(&ctx(Some(&rec), &[])), body, "{value:?}");
        }
    }
}
