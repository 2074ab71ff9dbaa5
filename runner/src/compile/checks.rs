//! `expect.body`: the body checks of a request, compiled once (a regex is
//! built here, not per response), each with the label its failures are
//! counted under. Labels say what was checked (`contains "ok"`,
//! `regex ^\{`, `json /status == "ok"`, `json /id present`,
//! `maxSize 64KiB`) and are cut at `limits::MAX_CHECK_LABEL` characters, so
//! the results stay sized by the plan.

use super::{Check, CheckTest};
use crate::{
    error::{Error, Result},
    limits,
    plan::BodyCheck,
    size::HumanSize,
};

/// The checks of `b` (field `bf`, e.g. `requests[0].expect.body`), in the
/// order they are judged: contains, regex, json (as listed), maxSize.
pub(super) fn compile_checks(b: &BodyCheck, bf: &str) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    if let Some(text) = &b.contains {
        if text.is_empty() {
            return Err(Error::invalid(
                format!("{bf}.contains"),
                "is empty: every body contains the empty text",
            ));
        }
        let re = regex::bytes::Regex::new(&regex::escape(text)).map_err(|e| {
            Error::invalid(
                format!("{bf}.contains"),
                format!("is too long to search for: {e}"),
            )
        })?;
        out.push(check(format!("contains {text:?}"), CheckTest::Contains(re)));
    }
    if let Some(src) = &b.regex {
        let re = regex::bytes::Regex::new(src).map_err(|e| {
            Error::invalid(
                format!("{bf}.regex"),
                format!("{src:?} is not a valid regex: {e}"),
            )
        })?;
        out.push(check(format!("regex {src}"), CheckTest::Regex(re)));
    }
    if b.json.len() > limits::MAX_JSON_CHECKS {
        return Err(Error::invalid(
            format!("{bf}.json"),
            format!(
                "lists {} checks, more than the limit of {}",
                b.json.len(),
                limits::MAX_JSON_CHECKS
            ),
        ));
    }
    for (i, j) in b.json.iter().enumerate() {
        if !j.pointer.starts_with('/') {
            return Err(Error::invalid(
                format!("{bf}.json[{i}].pointer"),
                format!(
                    "{:?} is not a JSON pointer into the body (it starts with '/', e.g. /data/status)",
                    j.pointer
                ),
            ));
        }
        let label = match &j.equals {
            Some(v) => format!("json {} == {v:?}", j.pointer),
            None => format!("json {} present", j.pointer),
        };
        out.push(check(
            label,
            CheckTest::Json {
                pointer: j.pointer.clone(),
                equals: j.equals.clone(),
            },
        ));
    }
    if let Some(size) = b.max_size {
        out.push(check(
            format!("maxSize {}", HumanSize(size.0)),
            CheckTest::MaxSize(size.0),
        ));
    }
    if out.is_empty() {
        return Err(Error::invalid(
            bf,
            "is empty: give `contains`, `regex`, `json` or `maxSize`",
        ));
    }
    Ok(out)
}

fn check(label: String, test: CheckTest) -> Check {
    Check {
        label: cut(label).into(),
        test,
    }
}

/// `label`, cut to `MAX_CHECK_LABEL` characters (the last one an ellipsis).
fn cut(mut label: String) -> String {
    if label.chars().nth(limits::MAX_CHECK_LABEL).is_some() {
        let (i, _) = label
            .char_indices()
            .nth(limits::MAX_CHECK_LABEL - 1)
            .expect("longer than that");
        label.truncate(i);
        label.push('…');
    }
    label
}
