//! `pick("a", "b", 3)`: the literal list a template picks from, parsed once
//! at compile time. Strings are in double quotes (`\"` and `\\` escape a
//! quote and a backslash), numbers are bare; the list is bounded so that a
//! plan's memory stays sized by what a person writes.

/// Items a `pick(...)` may list.
pub const MAX_ITEMS: usize = 1000;

/// The items of `pick(ARGS)`, from `args` (the text between the parentheses).
pub fn parse(args: &str) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    let mut rest = args.trim_start();
    if rest.is_empty() {
        return Err("pick needs at least one item, e.g. pick(\"a\", \"b\")".into());
    }
    loop {
        if items.len() == MAX_ITEMS {
            return Err(format!("pick lists more than {MAX_ITEMS} items"));
        }
        let (item, after) = if let Some(quoted) = rest.strip_prefix('"') {
            string(quoted)?
        } else {
            number(rest)?
        };
        items.push(item);
        rest = after.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => return Ok(items),
            None => {
                return Err(format!(
                    "pick: expected ',' or the end of the list at {:?}",
                    short(rest)
                ));
            }
        }
    }
}

/// A quoted string's value (after its opening quote) and the text after it.
fn string(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, c @ ('"' | '\\'))) => out.push(c),
                _ => return Err("pick: only \\\" and \\\\ are escapes in a string".into()),
            },
            c => out.push(c),
        }
    }
    Err("pick: a string is not closed with '\"'".into())
}

/// A bare number (as written) and the text after it.
fn number(s: &str) -> Result<(String, &str), String> {
    let end = s.find([',', ' ', '\t']).unwrap_or(s.len());
    let text = &s[..end];
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok((text.to_string(), &s[end..])),
        _ => Err(format!(
            "pick: {:?} is neither a number nor a \"quoted\" string",
            short(text)
        )),
    }
}

/// At most 32 characters of `s`, for a message.
fn short(s: &str) -> &str {
    s.char_indices().nth(32).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strings_and_numbers() {
        assert_eq!(
            parse(r#""a", "b c",3 , -1.5, "x,\"y\"\\" "#).unwrap(),
            ["a", "b c", "3", "-1.5", r#"x,"y"\"#]
        );
        assert_eq!(parse("\"\"").unwrap(), [""]);
    }

    #[test]
    fn refuses_bad_lists() {
        for (bad, says) in [
            ("", "at least one"),
            ("  ", "at least one"),
            ("a", "neither a number"),
            ("\"a", "not closed"),
            ("\"a\" \"b\"", "expected ','"),
            ("1,", "neither a number"),
            ("inf", "neither a number"),
            ("NaN", "neither a number"),
            ("\"\\n\"", "escapes"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let many = vec!["1"; MAX_ITEMS + 1].join(",");
        assert!(parse(&many).unwrap_err().contains("more than"));
        assert_eq!(
            parse(&vec!["1"; MAX_ITEMS].join(",")).unwrap().len(),
            MAX_ITEMS
        );
    }
}
