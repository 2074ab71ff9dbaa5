//! PKCE (RFC 7636) for OAuth journeys: a code verifier drawn from the OS's
//! random source, and its S256 challenge.
//!
//! One pair per iteration, made on first use: every `{{ pkce.verifier }}` and
//! `{{ pkce.challenge }}` of an iteration (a journey's steps included) render
//! the same pair, so step 1 can send the challenge and step 3 the verifier.

use std::sync::OnceLock;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// Random octets in a verifier: 32, as RFC 7636 section 4.1 recommends,
/// which base64url encodes to 43 characters of the unreserved set.
const VERIFIER_OCTETS: usize = 32;

/// An iteration's verifier and challenge, made on first use.
#[derive(Debug, Default)]
pub struct Pkce {
    pair: OnceLock<Pair>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn get(&self) -> &Pair {
        self.pair.get_or_init(Pair::generate)
    }
}

impl Pair {
    /// A fresh verifier from the OS's random source (a verifier guards a
    /// login, so not the fast non-cryptographic RNG), and its challenge.
    pub fn generate() -> Pair {
        let mut octets = [0u8; VERIFIER_OCTETS];
        getrandom::fill(&mut octets).expect("the OS random source failed");
        Pair::from_verifier(URL_SAFE_NO_PAD.encode(octets))
    }

    pub fn from_verifier(verifier: String) -> Pair {
        let challenge = challenge(&verifier);
        Pair {
            verifier,
            challenge,
        }
    }
}

/// `BASE64URL-NO-PAD(SHA256(verifier))`: the S256 code challenge.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `v` is a valid code verifier: 43 to 128 characters of
/// `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn is_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        // As published in RFC 7636 Appendix B (43 characters each; a SHA-256
        // in unpadded base64url is always 43).
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        // Its verifier is the base64url of the appendix's 32 octets.
        let octets = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        assert_eq!(
            URL_SAFE_NO_PAD.encode(octets),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
    }

    #[test]
    fn one_pair_per_holder_and_fresh_across_holders() {
        let a = Pkce::default();
        let first = a.get().clone();
        assert_eq!(a.get(), &first);
        assert!(is_verifier(&first.verifier), "{}", first.verifier);
        assert_eq!(first.challenge, challenge(&first.verifier));
        let b = Pkce::default();
        assert_ne!(b.get().verifier, first.verifier);
        assert!(!is_verifier("short"));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{}+", "a".repeat(50))));
    }
}
