use base64::engine::general_purpose::STANDARD;
use percent_encoding::utf8_percent_encode;

use super::{
    flow::{basic_credentials, valid_challenge, valid_verifier},
    *,
};
use crate::NOT_UNRESERVED;

#[test]
fn pkce_rfc7636_appendix_b() {
    // RFC 7636 Appendix B: the verifier is base64url of the 32 octets
    // 116, 24, 223, ...; its S256 challenge is base64url of the digest
    // octets 19, 211, 30, ... listed there.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    assert!(valid_verifier(verifier));
    let challenge = s256_challenge(verifier);
    assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    assert!(valid_challenge(&challenge));
    assert_eq!(
        Sha256::digest(verifier.as_bytes())[..4],
        [19, 211, 30, 150],
        "digest octets as listed in the RFC"
    );
    assert_ne!(
        s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"),
        challenge
    );
}

#[test]
fn verifier_and_challenge_shapes() {
    assert!(!valid_verifier("short"));
    assert!(!valid_verifier(&"a".repeat(129)));
    assert!(valid_verifier(&"a-._~".repeat(9)));
    assert!(!valid_verifier(&format!("{}/", "a".repeat(43))));
    assert!(!valid_challenge(
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
    ));
    assert!(!valid_challenge(
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c="
    ));
    let t = random_token();
    assert_eq!(t.len(), 43);
    assert_ne!(t, random_token());
}

#[test]
fn form_encoding() {
    let pairs = parse_form("a=1&b=x+y%2Fz&empty=&flag&c=%zz%4&a=2");
    assert_eq!(get(&pairs, "a"), Some("2"));
    assert_eq!(get(&pairs, "b"), Some("x y/z"));
    assert_eq!(get(&pairs, "empty"), Some(""));
    assert_eq!(get(&pairs, "flag"), Some(""));
    assert_eq!(get(&pairs, "c"), Some("%zz%4"));
    assert_eq!(get(&pairs, "missing"), None);
    assert_eq!(
        utf8_percent_encode("a b&c=d/é~", NOT_UNRESERVED).to_string(),
        "a%20b%26c%3Dd%2F%C3%A9~"
    );
    let pairs = parse_form(&format!(
        "s={}",
        utf8_percent_encode("x y&z=é+", NOT_UNRESERVED)
    ));
    assert_eq!(get(&pairs, "s"), Some("x y&z=é+"));
    assert_eq!(get(&parse_form("t=a+b%2"), "t"), Some("a b%2"));
}

#[test]
fn authorization_headers() {
    let mut h = HeaderMap::new();
    assert_eq!(bearer(&h), None);
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("bearer abc"),
    );
    assert_eq!(bearer(&h), Some("abc"));
    assert_eq!(basic_credentials(&h), None);
    let v = format!("Basic {}", STANDARD.encode("a@b.c:p:w"));
    h.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
    assert_eq!(bearer(&h), None);
    assert_eq!(basic_credentials(&h), Some(("a@b.c".into(), "p:w".into())));
}
