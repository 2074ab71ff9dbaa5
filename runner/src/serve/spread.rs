//! Which requests of a route are slow or fail: spread evenly instead of drawn
//! at random, so "10%:50ms" means 10% of any run of requests, not 10% on
//! average.
//!
//! With independent random draws, 100 requests to a "10%:50ms" route have a
//! 6% chance of 5 or fewer slow ones, and their p95 is then the fast figure:
//! a test (or a demo threshold) comparing a measured percentile with what was
//! injected fails by chance. Request `n` of a route instead draws
//! `frac(n * alpha)` (a Kronecker sequence, as in Fibonacci hashing): over
//! any `N` consecutive requests a share `P` is hit `N * P` times within a
//! few (the property test below checks ±3 up to 10,000), yet the slow ones are
//! not a fixed stride that a client's own period could line up with. Latency
//! and errors use different irrationals (the golden ratio and the square root
//! of 2), which keeps the two independent: a 10% latency and a 10% error
//! share overlap on 1% of requests, as random draws would.

/// `frac(golden ratio) * 2^64`.
const LATENCY: u64 = 0x9E37_79B9_7F4A_7C15;
/// `frac(sqrt 2) * 2^64`.
const ERRORS: u64 = 0x6A09_E667_F3BC_C908;

pub(crate) const PPM: u32 = 1_000_000;

/// The latency draw in `0..PPM` for request `n` of a route (counted from 0).
pub(crate) fn latency_ppm(n: u64) -> u32 {
    to_ppm(n.wrapping_mul(LATENCY))
}

/// The error draw in `0..PPM` for request `n` of a route.
pub(crate) fn error_ppm(n: u64) -> u32 {
    to_ppm(n.wrapping_mul(ERRORS))
}

/// A fraction in 64-bit fixed point to `0..PPM` (multiply-shift, no modulo bias
/// worth naming: at most one part in 2^32).
fn to_ppm(frac: u64) -> u32 {
    (((frac >> 32) * u64::from(PPM)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most any window of `w` consecutive requests (starting anywhere in
    /// the first `len`) strays from `w * share`.
    fn worst_window(draw: fn(u64) -> u32, share: u32, w: usize, len: u64) -> f64 {
        let hits: Vec<u32> = (0..len).map(|n| u32::from(draw(n) < share)).collect();
        let mut prefix = vec![0u32; hits.len() + 1];
        for (i, h) in hits.iter().enumerate() {
            prefix[i + 1] = prefix[i] + h;
        }
        let expected = w as f64 * f64::from(share) / f64::from(PPM);
        (0..hits.len() - w)
            .map(|i| (f64::from(prefix[i + w] - prefix[i]) - expected).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn every_window_gets_its_share() {
        for draw in [latency_ppm as fn(u64) -> u32, error_ppm] {
            for share in [1_000, 10_000, 50_000, 100_000, 500_000, 900_000] {
                for w in [10, 100, 1_000, 10_000] {
                    let worst = worst_window(draw, share, w, 60_000);
                    assert!(
                        worst <= 3.0,
                        "share {share} ppm, window {w}: off by {worst}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_share_of_100_requests_is_enough_for_its_percentile() {
        // The case that failed by chance with random draws: 100 requests to
        // "10%:50ms" must have more than 5 slow ones, wherever they start.
        for start in 0..5_000u64 {
            let slow = (start..start + 100)
                .filter(|&n| latency_ppm(n) < 100_000)
                .count();
            assert!((8..=12).contains(&slow), "{slow} slow from request {start}");
        }
    }

    #[test]
    fn latency_and_errors_are_independent() {
        let both = (0..100_000u64)
            .filter(|&n| latency_ppm(n) < 100_000 && error_ppm(n) < 100_000)
            .count();
        assert!(
            (900..=1_100).contains(&both),
            "{both} of 100,000 (expected about 1,000)"
        );
    }

    #[test]
    fn draws_cover_the_range() {
        assert_eq!(latency_ppm(0), 0);
        assert!((1..100_000u64).all(|n| latency_ppm(n) < PPM && error_ppm(n) < PPM));
        let max = (0..100_000u64).map(latency_ppm).max().unwrap();
        assert!(max > PPM - 100, "{max}");
    }
}
