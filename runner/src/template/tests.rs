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
    let want: std::collections::BTreeSet<String> = ["red", "green", "7"].map(String::from).into();
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
