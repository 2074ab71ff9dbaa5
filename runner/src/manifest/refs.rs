//! Checks of references to Secrets and ConfigMaps in a spec (`caFrom`,
//! `passwordFrom`, ...): the object's name and the key are ones the API
//! server would accept, so a typo is refused with the field named before
//! anything is read or mounted.

use crate::{
    error::{Error, Result},
    plan::ValueFrom,
};

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// One `*From`: exactly one of `secret` and `configMap`, an object name
/// and a key the API server would accept (the key becomes a file name).
pub fn value_from(field: &str, v: &ValueFrom) -> Result<()> {
    let (kind, name) = match (&v.secret, &v.config_map) {
        (Some(s), None) => ("secret", s),
        (None, Some(c)) => ("configMap", c),
        _ => {
            return Err(invalid(field, "give exactly one of secret and configMap"));
        }
    };
    if let Err(why) = object_name(name) {
        return Err(invalid(
            &format!("{field}.{kind}"),
            format!("{name:?} {why}"),
        ));
    }
    let key = &v.key;
    let key_ok = !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c))
        && key != "."
        && key != "..";
    if !key_ok {
        return Err(invalid(
            &format!("{field}.key"),
            format!(
                "{key:?} is not a Secret or ConfigMap key (letters, digits, '-', '_' and '.'; not \".\" or \"..\")"
            ),
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain, as Secret and ConfigMap names are.
pub fn object_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("is not a name of 1 to 253 characters");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !name.split('.').all(label_ok) {
        return Err(
            "is not a valid object name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)",
        );
    }
    Ok(())
}
