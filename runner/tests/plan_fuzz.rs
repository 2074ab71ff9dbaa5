//! Property tests of the plan loader: random and mutated documents (YAML and
//! JSON), deep nesting, aliases, huge and odd numbers, odd encodings. For
//! every input: no panic, and either a plan that compiles or
//! `Error::Invalid` naming a field; each input is judged well under a
//! second. Seeds are fixed, so a failure names an input that reproduces.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use barrage_runner::{
    Error,
    compile::{Slot, compile_with_env},
    input, planfile,
};

const QUICKSTART: &str = include_str!("../../examples/quickstart.yaml");
const INCLUSTER: &str = include_str!("../../examples/loadtest-incluster.yaml");

const JSON_PLAN: &str = r#"{"target": {"baseUrl": "http://127.0.0.1:1", "timeout": "2s"},
 "load": {"executor": "arrival-rate", "rate": 50, "duration": "1s", "maxInFlight": 10},
 "requests": [{"name": "a", "path": "/a", "query": {"q": "{{ seq }}"}, "expect": {"status": [200]}},
              {"name": "j", "steps": [{"name": "s", "path": "/s", "capture": {"t": {"json": "/t"}}},
                                      {"name": "u", "path": "/u/{{ vars.t }}"}]}],
 "thresholds": ["p(95) < 10ms", "error_rate[each 1s] < 1%"], "reportInterval": "1s"}"#;

/// Fragments that tend to break parsers and validators.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ",",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "\t",
    "&a ",
    "*a",
    "<<: *a",
    "!x ",
    "!!str ",
    "'",
    "\"",
    "#",
    "|",
    ">",
    "---\n",
    "...\n",
    "? ",
    "1e400",
    "-1e400",
    ".nan",
    ".inf",
    "-0",
    "99999999999999999999999",
    "4294967296",
    "-1",
    "0",
    "1e-300",
    "0x1F",
    "~",
    "null",
    "true",
    "{{",
    "}}",
    "{{ record.x }}",
    "{{ env.NOPE }}",
    "%",
    "\\u0000",
    "\u{FEFF}",
    "\u{202E}",
    "é",
    "http://u:p@h:99999",
    "200h",
    "0s",
    "1 parsec",
    "p(101) <",
    "abortOnFail",
];

/// Loads `bytes` as `barrage-runner run` would after reading the file, then
/// compiles it; checks the outcome is Ok or a named invalid field. True
/// when the plan compiled.
fn judge(bytes: &[u8], what: &str) -> bool {
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let text = input::decode_utf8(bytes.to_vec()).map_err(|m| Error::invalid("(file)", m))?;
        let loaded = planfile::from_str(&text, PathBuf::from("/nonexistent"))?;
        compile_with_env(
            &loaded.plan,
            Slot::SOLO,
            Path::new("/nonexistent"),
            loaded.prefix,
            &|_| Some("x".into()),
        )
        .map(drop)
    }));
    let elapsed = started.elapsed();
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(400)]).into_owned();
    assert!(
        elapsed < Duration::from_secs(1),
        "{what}: took {elapsed:?} on {shown:?}"
    );
    match result {
        Err(_) => panic!("{what}: the loader panicked on {shown:?}"),
        Ok(Ok(())) => true,
        Ok(Err(Error::Invalid { field, message })) => {
            assert!(
                !field.is_empty() && !message.is_empty(),
                "{what}: an error without a field or message on {shown:?}"
            );
            false
        }
        Ok(Err(other)) => panic!("{what}: not Error::Invalid but {other:?} on {shown:?}"),
    }
}

fn mutate(rng: &mut fastrand::Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..rng.usize(1..6) {
        let at = rng.usize(..=b.len());
        match rng.u8(..6) {
            0 => {
                let t = TOKENS[rng.usize(..TOKENS.len())].as_bytes();
                b.splice(at..at, t.iter().copied());
            }
            1 if !b.is_empty() => {
                let end = (at + rng.usize(1..40)).min(b.len());
                b.drain(at.min(end)..end);
            }
            2 if !b.is_empty() => {
                let i = rng.usize(..b.len());
                b[i] = rng.u8(..);
            }
            3 => {
                let end = (at + rng.usize(1..200)).min(b.len());
                let slice = b[at.min(end)..end].to_vec();
                b.splice(at..at, slice);
            }
            4 => {
                let t = TOKENS[rng.usize(..TOKENS.len())];
                let n = rng.usize(1..300);
                b.splice(at..at, t.repeat(n).into_bytes());
            }
            _ => {
                // Replace a number with a huge or odd one.
                if let Some(i) = b[at..].iter().position(u8::is_ascii_digit) {
                    let t =
                        ["1e309", "18446744073709551616", "-5", "0.0000001", "NaN"][rng.usize(..5)];
                    b.splice(at + i..at + i + 1, t.bytes());
                }
            }
        }
    }
    b
}

#[test]
fn mutated_plans_never_panic_and_name_a_field() {
    let bases = [QUICKSTART, INCLUSTER, JSON_PLAN];
    // The unmutated bases are valid (or invalid for a named reason).
    for b in bases {
        assert!(judge(b.as_bytes(), "base"), "{b}");
    }
    let mut rng = fastrand::Rng::with_seed(0x5eed_b4aa);
    let (mut ok, mut refused) = (0, 0);
    for i in 0..2500 {
        let base = bases[i % bases.len()].as_bytes();
        let doc = mutate(&mut rng, base);
        if judge(&doc, &format!("mutation {i}")) {
            ok += 1;
        } else {
            refused += 1;
        }
    }
    // Both sides are exercised: the mutations reach the compiler.
    assert!(
        ok > 100 && refused > 100,
        "{ok} compiled, {refused} refused"
    );
}

#[test]
fn random_documents_never_panic() {
    let mut rng = fastrand::Rng::with_seed(42);
    for i in 0..1500 {
        let mut doc = String::new();
        for _ in 0..rng.usize(1..60) {
            doc += TOKENS[rng.usize(..TOKENS.len())];
            if rng.bool() {
                doc += [
                    "target", "load", "requests", "baseUrl", "users", "rate", "x",
                ][rng.usize(..7)];
            }
        }
        judge(doc.as_bytes(), &format!("random {i}"));
    }
}

#[test]
fn bombs_nesting_numbers_and_encodings_are_refused_clearly() {
    let plan = "target: {baseUrl: 'http://127.0.0.1:1'}\nload: {users: 1, iterations: 1}\nrequests: [{name: a, path: /}]\n";
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("deep [".into(), "[".repeat(200_000).into_bytes()),
        ("deep {a:".into(), "{a: ".repeat(100_000).into_bytes()),
        ("deep block".into(), "- ".repeat(100_000).into_bytes()),
        (
            "deep json".into(),
            format!("{{\"a\": {}", "[".repeat(100_000)).into_bytes(),
        ),
        ("utf-16le".into(), {
            let mut b = vec![0xFF, 0xFE];
            b.extend(plan.encode_utf16().flat_map(u16::to_le_bytes));
            b
        }),
        ("utf-16be".into(), {
            let mut b = vec![0xFE, 0xFF];
            b.extend(plan.encode_utf16().flat_map(u16::to_be_bytes));
            b
        }),
        (
            "latin-1".into(),
            b"target: {baseUrl: 'http://caf\xe9'}".to_vec(),
        ),
        ("nul".into(), plan.replace('a', "\0").into_bytes()),
        (
            "utf-8 bom".into(),
            [b"\xEF\xBB\xBF".as_slice(), plan.as_bytes()].concat(),
        ),
    ];
    let mut bomb = String::from(plan) + "x0: &a0 [a, a, a, a, a, a, a, a, a, a]\n";
    for i in 1..10 {
        let p = i - 1;
        bomb += &format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        );
    }
    cases.push(("billion laughs".into(), bomb.into_bytes()));
    for n in [
        "1e400",
        "-1e400",
        "18446744073709551616",
        "1e-300",
        ".nan",
        "-0",
        "4294967296",
    ] {
        cases.push((
            format!("users {n}"),
            plan.replace("users: 1", &format!("users: {n}"))
                .into_bytes(),
        ));
        cases.push((
            format!("rate {n}"),
            plan.replace("users: 1", &format!("executor: arrival-rate, rate: {n}"))
                .into_bytes(),
        ));
    }
    for (what, doc) in &cases {
        judge(doc, what);
    }
    // And each of these is refused, not accepted.
    for (what, doc) in cases.iter().filter(|(w, _)| w != "utf-8 bom") {
        let text = match input::decode_utf8(doc.clone()) {
            Err(_) => continue,
            Ok(t) => t,
        };
        let ok = planfile::from_str(&text, PathBuf::new()).and_then(|l| {
            compile_with_env(&l.plan, Slot::SOLO, Path::new("."), "", &|_| None).map(drop)
        });
        assert!(ok.is_err(), "{what} was accepted");
    }
}
